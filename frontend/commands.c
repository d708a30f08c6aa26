/* commands.c - what each LMTP/SMTP command does on port 10024.
 *
 * One table, as Postfix's smtpd has (smtpd_cmd_table): for each command
 * its handler and the facts the dispatcher acts on - whether RFC 2920
 * wants it last in a pipelined group, which state it needs (the 503
 * replies), whether it takes arguments (the 501 replies), whether it
 * counts as junk. The handlers then only do their own work. The
 * conversation itself (I/O, timeouts, pipelining) is session.c's;
 * docs/protocol.md lists every reply. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "context.h"
#include "session_int.h"
#include "util/sl_addr.h"
#include "conf/sl_config.h"
#include "util/sl_id.h"
#include "util/sl_log.h"

#define SESSION_MAX_ADDRESS 1024       /* longer paths get 501 */
/* The longest LHLO/EHLO/HELO name kept and XFORWARD value accepted: RFC
 * 5321 4.5.3.1.2 (a domain is at most 255 octets), and what Postfix's
 * smtpd takes in XFORWARD ("501 5.5.4 Error: attribute value too long"
 * above it). Below the job's 1024-octet strings on the wire
 * (SL_WIRE_MAX_STR), so nothing accepted here can fail there later. */
#define SESSION_MAX_NAME 255
#define SESSION_JUNK_COMMAND_LIMIT 100 /* Postfix smtpd_junk_command_limit */
#define DATA_ROOM_ANNOUNCED_MAX (1024 * 1024)

enum {
    /* RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP "can only
     * appear as the last command in a group"; LHLO is EHLO's LMTP twin
     * (RFC 2033 4.1), HELO learns nothing of PIPELINING, and after BDAT or
     * STARTTLS (neither offered) what follows is chunk data or a TLS
     * handshake, not commands. */
    CMD_ENDS_GROUP = 1 << 0,
    /* never checked for pipelining: QUIT (we close after it and read
     * nothing more) and the end of data (not a command) */
    CMD_NO_SYNC = 1 << 1,
    CMD_JUNK = 1 << 2,        /* NOOP, RSET, VRFY, EXPN, HELP: Postfix's junk commands */
    CMD_NEEDS_HELLO = 1 << 3, /* 503 before LHLO/EHLO/HELO */
    CMD_NO_TXN = 1 << 4,      /* 503 (the row's text) inside a transaction */
    CMD_NEEDS_MAIL = 1 << 5,  /* 503 outside a transaction */
    CMD_NEEDS_RCPT = 1 << 6,  /* 503 before the first recipient */
    CMD_NO_ARGS = 1 << 7,     /* 501 with an argument */
    CMD_NEEDS_ARG = 1 << 8,   /* 501 without one */
    CMD_IS_ERROR = 1 << 9,    /* a client error (smtpd_hard_error_limit) */
};

struct session_command {
    void (*handler)(struct session *s, const struct sl_smtp_cmd *cmd);
    unsigned flags;
    const char *usage;  /* CMD_NO_ARGS, CMD_NEEDS_ARG: "Syntax: <usage>" */
    const char *in_txn; /* CMD_NO_TXN: why not now */
};

/* ---- parameter syntax ------------------------------------------------- */

/* Anything >= 0x80 (RFC 6531 3.3: such addresses need SMTPUTF8). */
static bool
has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* RFC 3461 4: xtext = *( xchar / hexchar ); xchar is %d33-126 except "+"
 * and "=", hexchar is "+" and two hex digits. With SMTPUTF8, RFC 6533's
 * utf-8-addr-xtext also allows UTF-8 (checked for well-formedness). */
static bool
xtext_ok(const char *v, bool utf8)
{
    for (const unsigned char *s = (const unsigned char *)v; *s; s++) {
        if (*s == '+') {
            if (!isxdigit(s[1]) || !isxdigit(s[2]))
                return false;
            s += 2;
        } else if (*s >= 0x80) {
            if (!utf8)
                return false;
        } else if (*s < 33 || *s > 126 || *s == '=') {
            return false;
        }
    }
    return !utf8 || sl_utf8_valid(v);
}

/* RFC 3461 4.1: NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY. */
static bool
notify_ok(const char *v)
{
    if (strcasecmp(v, "NEVER") == 0)
        return true;
    unsigned seen = 0;
    const char *p = v;
    for (;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = n == 7 && strncasecmp(p, "SUCCESS", 7) == 0   ? 1u
                       : n == 7 && strncasecmp(p, "FAILURE", 7) == 0 ? 2u
                       : n == 5 && strncasecmp(p, "DELAY", 5) == 0   ? 4u
                                                                      : 0u;
        if (bit == 0 || (seen & bit))
            return false;
        seen |= bit;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

/* RFC 3461 4.2: ORCPT=addr-type ";" xtext, at most 500 characters. */
static bool
orcpt_ok(const char *v, bool utf8)
{
    const char *semi = strchr(v, ';');
    if (semi == NULL || semi == v || strlen(v) > 500 || semi[1] == '\0')
        return false;
    for (const char *p = v; p < semi; p++)
        if (!isalnum((unsigned char)*p) && *p != '-')
            return false;
    return xtext_ok(semi + 1, utf8);
}

/* The address checks RFC 6531 3.4 asks for; false after a reply. */
static bool
address_charset_ok(struct session *s, const char *address)
{
    if (!has_8bit(address))
        return true;
    if (!s->env.smtputf8) {
        session_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        return false;
    }
    if (!sl_utf8_valid(address)) {
        session_reply(s, "501 5.5.2 Error: bad UTF-8 syntax in address");
        return false;
    }
    return true;
}

/* RFC 5321 4.5.3.1.10 "501 Path too long"; otherwise a syntax error. */
static void
reply_path_error(struct session *s, bool rcpt, const char *error)
{
    if (strcmp(error, "address too long") == 0)
        session_reply(s, "501 %s Path too long", rcpt ? "5.1.3" : "5.1.7");
    else if (rcpt)
        session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address> (%s)", error);
    else
        session_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address> (%s)", error);
}

/* A parameter keyword given twice (RFC 3461 4: "MUST NOT appear more than
 * once"; the same holds sensibly for SIZE, BODY, SMTPUTF8). */
static bool
param_duplicate(const struct sl_smtp_path *path, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(path->params[j].keyword, path->params[i].keyword) == 0)
            return true;
    return false;
}

/* MAIL's SIZE= (RFC 1870); false after a reply. */
static bool
mail_size_ok(struct session *s, const char *v)
{
    /* RFC 1870 3: size-value = 1*20DIGIT */
    if (v == NULL || strspn(v, "0123456789") != strlen(v)) {
        session_reply(s, "501 5.5.4 Bad message size syntax");
        return false;
    }
    errno = 0;
    unsigned long long size = strtoull(v, NULL, 10);
    if (errno == ERANGE || size > session_size_limit(s)) {
        /* RFC 1870 6.1 */
        session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        return false;
    }
    s->env.size = size;
    return true;
}

/* MAIL's BODY= (RFC 6152 2); false after a reply. */
static bool
mail_body_ok(struct session *s, const char *v)
{
    if (v && (strcasecmp(v, "7BIT") == 0 || strcasecmp(v, "8BITMIME") == 0)) {
        free(s->env.body_type);
        s->env.body_type = sl_strdup(v);
        for (char *c = s->env.body_type; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        return true;
    }
    if (v && strcasecmp(v, "BINARYMIME") == 0)
        /* RFC 3030: needs CHUNKING, which we do not offer */
        session_reply(s, "555 5.5.4 Unsupported option: BODY=BINARYMIME");
    else
        session_reply(s, "501 5.5.4 Bad BODY parameter syntax");
    return false;
}

/* Only the parameters we advertise (RFC 5321 4.1.1.11: 555 otherwise),
 * each checked against its RFC's syntax (501 otherwise). False after a
 * reply. */
static bool
mail_params_ok(struct session *s, const struct sl_smtp_path *path)
{
    /* SMTPUTF8 may come after the parameters it widens */
    bool utf8;
    (void)sl_smtp_path_param(path, "SMTPUTF8", &utf8);
    for (size_t i = 0; i < path->n_params; i++) {
        const struct sl_smtp_param *p = &path->params[i];
        const char *v = p->value;
        bool ok;
        if (param_duplicate(path, i)) {
            session_reply(s, "501 5.5.4 Error: duplicate %s parameter", p->keyword);
            return false;
        }
        if (strcmp(p->keyword, "SIZE") == 0) {
            ok = mail_size_ok(s, v);
        } else if (strcmp(p->keyword, "BODY") == 0) {
            ok = mail_body_ok(s, v);
        } else if (strcmp(p->keyword, "RET") == 0) {
            /* RFC 3461 4.3 */
            ok = v != NULL && (strcasecmp(v, "FULL") == 0 || strcasecmp(v, "HDRS") == 0);
            if (ok)
                s->env.ret = sl_strdup(v);
            else
                session_reply(s, "501 5.5.4 Bad RET parameter syntax");
        } else if (strcmp(p->keyword, "ENVID") == 0) {
            /* RFC 3461 4.4: xtext, at most 100 characters */
            ok = v != NULL && strlen(v) <= 100 && xtext_ok(v, utf8);
            if (ok)
                s->env.envid = sl_strdup(v);
            else
                session_reply(s, "501 5.5.4 Bad ENVID parameter syntax");
        } else if (strcmp(p->keyword, "SMTPUTF8") == 0) {
            /* RFC 6531 3.4: no value */
            ok = v == NULL;
            if (ok)
                s->env.smtputf8 = true;
            else
                session_reply(s, "501 5.5.4 Bad SMTPUTF8 parameter syntax");
        } else {
            session_reply(s, "555 5.5.4 Unsupported option: %s", p->keyword);
            ok = false;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* RCPT parameters: DSN's NOTIFY and ORCPT only. False after a reply. */
static bool
rcpt_params_ok(struct session *s, const struct sl_smtp_path *path, struct fe_rcpt *r)
{
    for (size_t i = 0; i < path->n_params; i++) {
        const struct sl_smtp_param *p = &path->params[i];
        if (param_duplicate(path, i)) {
            session_reply(s, "501 5.5.4 Error: duplicate %s parameter", p->keyword);
            return false;
        }
        if (strcmp(p->keyword, "NOTIFY") == 0) {
            if (p->value == NULL || !notify_ok(p->value)) {
                session_reply(s, "501 5.5.4 Error: Bad NOTIFY parameter syntax");
                return false;
            }
            r->notify = sl_strdup(p->value);
        } else if (strcmp(p->keyword, "ORCPT") == 0) {
            if (p->value == NULL || !orcpt_ok(p->value, s->env.smtputf8)) {
                session_reply(s, "501 5.5.4 Error: Bad ORCPT parameter syntax");
                return false;
            }
            r->orcpt = sl_strdup(p->value);
        } else {
            session_reply(s, "555 5.5.4 Unsupported option: %s", p->keyword);
            return false;
        }
    }
    return true;
}

/* ---- the handlers ----------------------------------------------------- */

/* The name a client greets with, as the job keeps it (it becomes our
 * Received: line's "from"). Postfix's smtpd takes any name that fits its
 * line and turns control characters into '?'; so do we, and keep at most
 * SESSION_MAX_NAME octets: a longer name is not a reason to refuse the
 * greeting, and must not become one to refuse every message after it
 * (the job's strings on the wire are limited). Malloc'ed. */
static char *
hello_name(const struct session *s, const struct sl_smtp_cmd *cmd)
{
    size_t len = strcspn(cmd->arg, " ");
    char *name;

    if (len > SESSION_MAX_NAME) {
        sl_info("[%s]:%u: %s name of %zu octets; its first %d kept", s->peer_ip, s->peer_port,
                cmd->verb_text, len, SESSION_MAX_NAME);
        len = SESSION_MAX_NAME;
    }
    name = sl_strndup(cmd->arg, len);
    for (char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return name;
}

static void
cmd_hello(struct session *s, const struct sl_smtp_cmd *cmd)
{
    const char *host = s->fe->hostname;

    /* RFC 5321 4.1.4: a new greeting also resets any transaction */
    session_reset_transaction(s);
    free(s->helo);
    s->helo = hello_name(s, cmd);
    s->lmtp = cmd->verb == SL_CMD_LHLO;
    s->esmtp = cmd->verb != SL_CMD_HELO;
    s->state = SESSION_READY;
    if (cmd->verb == SL_CMD_HELO) {
        session_reply(s, "250 %s", host);
        return;
    }
    /* What amavisd-new advertises on 10024, plus SMTPUTF8 (passed on to
     * :10025) and PORT IDENT SOURCE so Postfix passes the origin's queue id
     * (IDENT) for log correlation. */
    session_reply(s, "250-%s", host);
    session_reply(s, "250-PIPELINING");
    session_reply(s, "250-SIZE %zu", session_size_limit(s));
    session_reply(s, "250-ENHANCEDSTATUSCODES");
    session_reply(s, "250-8BITMIME");
    session_reply(s, "250-DSN");
    session_reply(s, "250-SMTPUTF8");
    session_reply(s, "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE");
}

static void
xforward_store(void *ctx, const char *name, const char *value)
{
    struct session *s = ctx;
    int i = sl_xforward_attr_lookup(name);

    /* DOMAIN and future attributes: not advertised, so not expected; ignore */
    if (i < 0 || i == SL_XF_DOMAIN)
        return;
    free(s->env.xforward[i]);
    s->env.xforward[i] = sl_strdup(value);
}

/* A first pass over the line: is any value longer than we keep? */
static void
xforward_measure(void *ctx, const char *name, const char *value)
{
    bool *too_long = ctx;

    (void)name;
    if (strlen(value) > SESSION_MAX_NAME)
        *too_long = true;
}

static void
cmd_xforward(struct session *s, const struct sl_smtp_cmd *cmd)
{
    const char *error;
    bool too_long = false;

    if (sl_smtp_parse_xforward(cmd->arg, xforward_measure, &too_long, &error) != 0) {
        session_reply(s, "501 5.5.4 Syntax: XFORWARD attribute=value... (%s)", error);
        session_error(s);
        return;
    }
    if (too_long) {
        /* Postfix's smtpd: the whole line refused, nothing stored */
        session_reply(s, "501 5.5.4 Error: attribute value too long");
        session_error(s);
        return;
    }
    /* the same line again, known good: it cannot fail now */
    int ret = sl_smtp_parse_xforward(cmd->arg, xforward_store, s, &error);
    SL_BUG_ON(ret != 0);
    session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_mail(struct session *s, const struct sl_smtp_cmd *cmd)
{
    struct sl_smtp_path path;
    const char *error;

    if (s->fe->shutting_down) {
        session_reply(s, "421 4.3.2 %s Service shutting down", s->fe->hostname);
        session_close_after_reply(s);
        return;
    }
    if (sl_smtp_parse_path(cmd->arg, "FROM:", SESSION_MAX_ADDRESS, &path, &error) != 0) {
        reply_path_error(s, false, error);
        session_error(s);
        return;
    }
    if (!mail_params_ok(s, &path) || !address_charset_ok(s, path.address)) {
        sl_smtp_path_free(&path);
        session_reset_transaction(s);
        session_error(s);
        return;
    }
    s->env.mail_from = sl_strdup(path.address);
    sl_smtp_path_free(&path);
    s->state = SESSION_MAIL;
    session_reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const struct sl_smtp_cmd *cmd)
{
    struct sl_smtp_path path;
    struct fe_rcpt r = {0};
    const char *error;

    if (s->env.n_rcpts >= s->config->frontend.recipient_limit) {
        /* RFC 5321 4.5.3.1.10: the client sends the rest in another
         * transaction; not a client error */
        session_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (sl_smtp_parse_path(cmd->arg, "TO:", SESSION_MAX_ADDRESS, &path, &error) != 0) {
        reply_path_error(s, true, error);
        session_error(s);
        return;
    }
    if (!rcpt_params_ok(s, &path, &r) || !address_charset_ok(s, path.address)) {
        free(r.notify);
        free(r.orcpt);
        sl_smtp_path_free(&path);
        session_error(s);
        return;
    }
    r.address = sl_strdup(path.address);
    sl_smtp_path_free(&path);
    fe_envelope_add_rcpt(&s->env, &r);
    session_reply(s, "250 2.1.5 Ok");
}

/* The body's first room: what MAIL's SIZE= announced (Postfix sends the
 * size of its queue file) and a little over, so the body does not move
 * again and again as it grows. Announced sizes are trusted only up to a
 * mebibyte: a client could announce the limit for every session and send
 * a few lines. Without SIZE= the body starts small: many sessions held at
 * once with small messages would pay for a bigger start. */
static size_t
data_room(unsigned long long announced)
{
    if (announced > DATA_ROOM_ANNOUNCED_MAX)
        announced = DATA_ROOM_ANNOUNCED_MAX;
    return announced == 0 ? 0 : (size_t)(announced + announced / 16 + 1024);
}

static void
cmd_data(struct session *s, const struct sl_smtp_cmd *cmd)
{
    (void)cmd;
    sl_buf_init(&s->data);
    sl_buf_reserve(&s->data, data_room(s->env.size));
    sl_smtp_parser_begin_data(s->parser, &s->data);
    s->state = SESSION_DATA;
    session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* The final "." : a message that may go on is handed to its job. */
static void
cmd_data_end(struct session *s, const struct sl_smtp_cmd *cmd)
{
    const struct sl_smtp_data_info *info = sl_smtp_parser_data_info(s->parser);
    char id[SL_ID_LEN + 1];

    (void)cmd;
    sl_id_new(id);
    if (info->bare_lf || info->bare_cr)
        sl_info("%s: from [%s]:%u: %u bare LF in the message normalised to CRLF, %u bare CR "
                "replaced by a space",
                id, s->peer_ip, s->peer_port, info->bare_lf, info->bare_cr);
    if (info->too_big) {
        /* RFC 1870 section 6.3; one reply per recipient in LMTP */
        session_reply_all(s, "552 5.3.4 Error: message file too big");
        sl_info("%s: rejected: message size %zu exceeds %zu (frontend.max_message_size %zu less "
                "the room for sluice's header fields)",
                id, info->size, session_size_limit(s), s->config->frontend.max_message_size);
        session_reset_transaction(s);
        return;
    }
    if (info->nul_bytes) {
        /* NUL is not allowed in any message (RFC 5322 3.5 "text", and RFC
         * 2045 2.8: not even in 8bit data, so 8BITMIME does not allow it),
         * and C-string parsers downstream would cut lines at it: an
         * interpretation gap, so it is never forwarded. */
        session_reply_all(s, "554 5.6.0 Error: message content contains NUL characters");
        sl_info("%s: rejected: %u NUL byte(s) in the message from [%s]:%u", id,
                info->nul_bytes, s->peer_ip, s->peer_port);
        session_reset_transaction(s);
        return;
    }
    s->junk_commands = 0;
    session_hand_off(s, id);
}

static void
cmd_rset(struct session *s, const struct sl_smtp_cmd *cmd)
{
    (void)cmd;
    session_reset_transaction(s);
    session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, const struct sl_smtp_cmd *cmd)
{
    /* RFC 5321 4.1.1.9: an argument is allowed and ignored */
    (void)cmd;
    session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, const struct sl_smtp_cmd *cmd)
{
    (void)cmd;
    session_reply(s, "221 2.0.0 %s sluice closing transmission channel", s->fe->hostname);
    session_close_after_reply(s);
}

static void
cmd_vrfy(struct session *s, const struct sl_smtp_cmd *cmd)
{
    /* RFC 5321 3.5.3: a server that cannot verify says 252; we take mail
     * for any recipient and let :10025 decide */
    (void)cmd;
    session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_help(struct session *s, const struct sl_smtp_cmd *cmd)
{
    (void)cmd;
    session_reply(s, "214 2.0.0 sluice content filter: LHLO EHLO HELO XFORWARD MAIL RCPT "
                     "DATA RSET NOOP QUIT VRFY HELP; see RFC 2033 and RFC 5321");
}

/* EXPN (RFC 5321 3.5.2/7.3: optional, and we have no lists), and commands
 * recognised but never advertised (RFC 5321 4.2.4). */
static void
cmd_not_implemented(struct session *s, const struct sl_smtp_cmd *cmd)
{
    (void)cmd;
    session_reply(s, "502 5.5.1 Error: command not implemented");
}

static void
cmd_unknown(struct session *s, const struct sl_smtp_cmd *cmd)
{
    (void)cmd;
    session_reply(s, "500 5.5.2 Error: command not recognized");
}

/* ---- the table -------------------------------------------------------- */

static const struct session_command commands[] = {
    [SL_CMD_UNKNOWN] = {cmd_unknown, CMD_IS_ERROR, NULL, NULL},
    [SL_CMD_LHLO] = {cmd_hello, CMD_ENDS_GROUP | CMD_NEEDS_ARG, "LHLO hostname", NULL},
    [SL_CMD_EHLO] = {cmd_hello, CMD_ENDS_GROUP | CMD_NEEDS_ARG, "EHLO hostname", NULL},
    [SL_CMD_HELO] = {cmd_hello, CMD_ENDS_GROUP | CMD_NEEDS_ARG, "HELO hostname", NULL},
    [SL_CMD_XFORWARD] = {cmd_xforward, CMD_NEEDS_HELLO | CMD_NO_TXN, NULL,
                         "XFORWARD not allowed within a transaction"},
    [SL_CMD_MAIL] = {cmd_mail, CMD_NEEDS_HELLO | CMD_NO_TXN, NULL, "nested MAIL command"},
    [SL_CMD_RCPT] = {cmd_rcpt, CMD_NEEDS_MAIL, NULL, NULL},
    [SL_CMD_DATA] = {cmd_data, CMD_ENDS_GROUP | CMD_NEEDS_MAIL | CMD_NEEDS_RCPT |
                                           CMD_NO_ARGS, "DATA", NULL},
    [SL_CMD_DATA_END] = {cmd_data_end, CMD_NO_SYNC, NULL, NULL},
    /* RFC 5321 4.1.1.5: RSET takes no arguments */
    [SL_CMD_RSET] = {cmd_rset, CMD_JUNK | CMD_NO_ARGS, "RSET", NULL},
    [SL_CMD_NOOP] = {cmd_noop, CMD_ENDS_GROUP | CMD_JUNK, NULL, NULL},
    [SL_CMD_QUIT] = {cmd_quit, CMD_NO_SYNC, NULL, NULL},
    [SL_CMD_VRFY] = {cmd_vrfy, CMD_ENDS_GROUP | CMD_JUNK | CMD_NEEDS_ARG, "VRFY address",
                     NULL},
    [SL_CMD_EXPN] = {cmd_not_implemented, CMD_ENDS_GROUP | CMD_JUNK, NULL, NULL},
    [SL_CMD_HELP] = {cmd_help, CMD_JUNK, NULL, NULL},
    [SL_CMD_BDAT] = {cmd_not_implemented, CMD_ENDS_GROUP | CMD_IS_ERROR, NULL, NULL},
    [SL_CMD_STARTTLS] = {cmd_not_implemented, CMD_ENDS_GROUP | CMD_IS_ERROR, NULL, NULL},
    [SL_CMD_AUTH] = {cmd_not_implemented, CMD_IS_ERROR, NULL, NULL},
    [SL_CMD_ETRN] = {cmd_not_implemented, CMD_IS_ERROR, NULL, NULL},
};

static const struct session_command *
command_for(enum sl_smtp_verb verb)
{
    if ((size_t)verb >= SL_N_ELEMENTS(commands) || commands[verb].handler == NULL)
        return &commands[SL_CMD_UNKNOWN];
    return &commands[verb];
}

bool
session_cmd_must_end_group(const struct session *s, const struct sl_smtp_cmd *cmd)
{
    const struct session_command *c = command_for(cmd->verb);

    if (c->flags & CMD_NO_SYNC)
        return false;
    /* without LHLO/EHLO PIPELINING was never offered: every command must
     * wait for its reply */
    return (c->flags & CMD_ENDS_GROUP) || !s->esmtp;
}

/* The replies the table decides: false after a 503 or 501. */
static bool
command_allowed(struct session *s, const struct session_command *c, const struct sl_smtp_cmd *cmd)
{
    if ((c->flags & CMD_NEEDS_HELLO) && s->state == SESSION_INIT)
        session_reply(s, "503 5.5.1 Error: send LHLO/EHLO first");
    else if ((c->flags & CMD_NO_TXN) && s->state != SESSION_READY)
        session_reply(s, "503 5.5.1 Error: %s", c->in_txn);
    else if ((c->flags & CMD_NEEDS_MAIL) && s->state != SESSION_MAIL)
        session_reply(s, "503 5.5.1 Error: need MAIL command");
    else if ((c->flags & CMD_NEEDS_RCPT) && s->env.n_rcpts == 0)
        /* RFC 2033 4.2, RFC 5321 3.3 */
        session_reply(s, "503 5.5.1 Error: need RCPT command");
    else if ((c->flags & CMD_NO_ARGS) && *cmd->arg != '\0')
        session_reply(s, "501 5.5.4 Syntax: %s", c->usage);
    else if ((c->flags & CMD_NEEDS_ARG) && *cmd->arg == '\0')
        session_reply(s, "501 5.5.4 Syntax: %s", c->usage);
    else
        return true;
    session_error(s);
    return false;
}

void
session_dispatch(struct session *s, const struct sl_smtp_cmd *cmd)
{
    const struct session_command *c = command_for(cmd->verb);

    if (!command_allowed(s, c, cmd))
        return;
    c->handler(s, cmd);
    if (c->flags & CMD_IS_ERROR)
        session_error(s);
    /* fine now and then, but past Postfix's smtpd_junk_command_limit each
     * one counts as an error, so a client cannot keep a session alive for
     * ever without sending mail */
    if ((c->flags & CMD_JUNK) && ++s->junk_commands > SESSION_JUNK_COMMAND_LIMIT)
        session_error(s);
}
