/* sl_smtp_parser.c - incremental LMTP/SMTP server-side input parser
 * (RFC 5321 4.1, RFC 2033, RFC 2920). See sl_smtp_parser.h for the contract.
 *
 * Design notes
 *
 *   Input bytes are kept in one sl_inbuf (lib/util), which drops consumed
 *   bytes lazily. Command mode only ever keeps one partial line pending: a
 *   line that reaches max_command_line without an LF is reported at once
 *   and the rest of it is discarded as it arrives (state skipping), so
 *   memory stays bounded by a small multiple of the limit plus the caller's
 *   last feed. Data mode consumes everything it is given on each next()
 *   call and keeps only its state, never bytes.
 *
 *   A command line ends at the first LF. It is valid only if that LF follows
 *   a CR and the line holds no other CR and no NUL (bare LF and bare CR in
 *   commands are how SMTP smuggling starts). Errors are decided on the
 *   whole line (or on the length alone), never on how the bytes were split
 *   between feeds, so feeding whole and one byte at a time give the same
 *   results. Each way of refusing a line is one enum sl_smtp_error, and
 *   error_replies[] below holds its reply and its text, once.
 *
 *   Data mode is a small state machine over "where in the line are we". A
 *   dot is special only at a *real* line start: right after begin_data() or
 *   after a CRLF. A bare LF is normalised to CRLF and counted, but the line
 *   that follows it is not a real line start; a bare CR is no line end at
 *   all: it becomes a space (Postfix does the same) and is counted. So none
 *   of the smuggling forms <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR>, <CRLF>.<LF>
 *   can end the data (CVE-2023-51764/51765/51766). A lone "." on a real
 *   line start followed by a bare LF is kept as "." (the text is not a
 *   stuffed line and dropping the dot would turn it into an empty line,
 *   which could move the header/body boundary); the reinjector stuffs it
 *   again. "." then a bare CR opens a line that starts with a space.
 *
 *   data_info.size counts the message as it would be stored (unstuffed,
 *   line ends normalised), including bytes dropped after the size cap, so
 *   it can be compared with max_message_size and RFC 1870 SIZE.
 */
#include "mail/sl_smtp_parser.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/sl_inbuf.h"

enum data_state {
    D_LINE_START,   /* at a real line start (after CRLF or begin_data) */
    D_DOT,          /* "." seen at a real line start */
    D_DOT_CR,       /* ".\r" seen at a real line start: end if LF follows */
    D_TEXT,         /* inside a line (or at a line start after a bare LF) */
    D_CR,           /* CR seen inside a line: CRLF or bare CR? */
};

struct sl_smtp_parser {
    struct sl_smtp_limits limits;

    struct sl_inbuf in; /* unconsumed input */

    char *cmd;          /* copy of the current command line, NUL-split */
    bool skipping;      /* discarding the rest of an over-long line */

    bool in_data;
    enum data_state dstate;
    struct sl_buf *sink;
    size_t stored;      /* bytes appended to sink in this data phase */
    size_t cur_line;    /* length of the current data line so far */
    struct sl_smtp_data_info info;
};

static const struct {
    const char *name;
    enum sl_smtp_verb verb;
} verbs[] = {
    { "LHLO", SL_CMD_LHLO },         { "EHLO", SL_CMD_EHLO }, { "HELO", SL_CMD_HELO },
    { "MAIL", SL_CMD_MAIL },         { "RCPT", SL_CMD_RCPT }, { "DATA", SL_CMD_DATA },
    { "BDAT", SL_CMD_BDAT },         { "RSET", SL_CMD_RSET }, { "NOOP", SL_CMD_NOOP },
    { "QUIT", SL_CMD_QUIT },         { "VRFY", SL_CMD_VRFY }, { "EXPN", SL_CMD_EXPN },
    { "HELP", SL_CMD_HELP },         { "XFORWARD", SL_CMD_XFORWARD },
    { "STARTTLS", SL_CMD_STARTTLS }, { "AUTH", SL_CMD_AUTH }, { "ETRN", SL_CMD_ETRN },
};

struct sl_smtp_parser *
sl_smtp_parser_new(const struct sl_smtp_limits *limits)
{
    struct sl_smtp_parser *p = sl_calloc(1, sizeof(*p));

    if (limits != NULL)
        p->limits = *limits;
    /* "CRLF" alone needs 2 bytes; anything below that is a caller bug we
     * quietly repair rather than turning every command into an error. */
    if (p->limits.max_command_line == 0)
        p->limits.max_command_line = 4096;
    if (p->limits.max_command_line < 2)
        p->limits.max_command_line = 2;
    p->cmd = sl_malloc(p->limits.max_command_line + 1);
    return p;
}

void
sl_smtp_parser_destroy(struct sl_smtp_parser **parserp)
{
    struct sl_smtp_parser *p = *parserp;

    if (p == NULL)
        return;
    sl_inbuf_free(&p->in);
    free(p->cmd);
    free(p);
    *parserp = NULL;
}

void
sl_smtp_parser_feed(struct sl_smtp_parser *p, const void *buf, size_t len)
{
    sl_inbuf_feed(&p->in, buf, len);
}

size_t
sl_smtp_parser_pending(const struct sl_smtp_parser *p)
{
    return sl_inbuf_pending(&p->in);
}

const char *
sl_smtp_parser_pending_data(const struct sl_smtp_parser *p)
{
    return sl_inbuf_head(&p->in);
}

void
sl_smtp_parser_begin_data(struct sl_smtp_parser *p, struct sl_buf *sink)
{
    SL_BUG_ON(sink == NULL);
    SL_BUG_ON(p->in_data);
    p->in_data = true;
    p->dstate = D_LINE_START;
    p->sink = sink;
    p->stored = 0;
    p->cur_line = 0;
    p->skipping = false;
    memset(&p->info, 0, sizeof(p->info));
}

bool
sl_smtp_parser_in_data(const struct sl_smtp_parser *p)
{
    return p->in_data;
}

const struct sl_smtp_data_info *
sl_smtp_parser_data_info(const struct sl_smtp_parser *p)
{
    return &p->info;
}

/* ---- command mode ---- */

/* The reason is written once: the reply text is "Error: " and it. */
#define ERROR_REPLY(code, enhanced, reason) {code, enhanced, "Error: " reason, reason}

static const struct sl_smtp_error_reply error_replies[SL_SMTP_ERR_COUNT] = {
    [SL_SMTP_ERR_LINE_TOO_LONG] = ERROR_REPLY(500, "5.5.2", "line too long"),
    [SL_SMTP_ERR_BARE_LF] = ERROR_REPLY(500, "5.5.2", "bare LF in command"),
    [SL_SMTP_ERR_BARE_CR] = ERROR_REPLY(500, "5.5.2", "bare CR in command"),
    [SL_SMTP_ERR_NUL] = ERROR_REPLY(500, "5.5.2", "NUL in command"),
};

const struct sl_smtp_error_reply *
sl_smtp_error_reply(enum sl_smtp_error kind)
{
    SL_BUG_ON(kind <= SL_SMTP_ERR_NONE || kind >= SL_SMTP_ERR_COUNT);
    return &error_replies[kind];
}

static int
command_error(enum sl_smtp_error kind, enum sl_smtp_error *error_kind_r, const char **error_r)
{
    *error_kind_r = kind;
    *error_r = error_replies[kind].reason;
    return -1;
}

static enum sl_smtp_verb
verb_lookup(const char *s)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(verbs); i++) {
        if (strcasecmp(s, verbs[i].name) == 0)
            return verbs[i].verb;
    }
    return SL_CMD_UNKNOWN;
}

/* Discards the rest of an over-long line: up to and including its LF if
 * buffered, else all buffered bytes (skipping stays set). */
static void
skip_line(struct sl_smtp_parser *p)
{
    const char *start = sl_inbuf_head(&p->in);
    const char *lf = memchr(start, '\n', sl_inbuf_pending(&p->in));

    if (lf == NULL) {
        sl_inbuf_clear(&p->in);
        return;
    }
    sl_inbuf_consume(&p->in, (size_t)(lf - start) + 1);
    p->skipping = false;
}

static int
parse_command(struct sl_smtp_parser *p, struct sl_smtp_cmd *cmd_r,
              enum sl_smtp_error *error_kind_r, const char **error_r)
{
    for (;;) {
        size_t avail = sl_inbuf_pending(&p->in);

        if (avail == 0)
            return 0;
        const char *start = sl_inbuf_head(&p->in);
        if (p->skipping) {
            skip_line(p);
            continue;
        }

        /* Look for the LF only within the limit: a longer line is an error
         * whatever comes later, and this way whole and trickled input reach
         * the same verdict at the same byte. */
        size_t max = p->limits.max_command_line;
        size_t scan = avail < max ? avail : max;
        const char *lf = memchr(start, '\n', scan);
        if (lf == NULL) {
            if (avail < max)
                return 0;
            /* Drop the line up to its end if we have it, else everything
             * buffered and the rest of the line as it arrives. */
            sl_inbuf_consume(&p->in, max);
            p->skipping = true;
            skip_line(p);
            return command_error(SL_SMTP_ERR_LINE_TOO_LONG, error_kind_r, error_r);
        }

        size_t linelen = (size_t)(lf - start);     /* without the LF */
        sl_inbuf_consume(&p->in, linelen + 1);
        /* RFC 5321 2.3.8: lines end in CRLF, and CR and LF must not appear
         * alone. Report the first offending byte from the left. */
        size_t textlen = linelen > 0 && start[linelen - 1] == '\r' ? linelen - 1 : linelen;
        for (size_t i = 0; i < textlen; i++) {
            if (start[i] == '\r')
                return command_error(SL_SMTP_ERR_BARE_CR, error_kind_r, error_r);
            if (start[i] == '\0')
                return command_error(SL_SMTP_ERR_NUL, error_kind_r, error_r);
        }
        if (textlen == linelen)
            return command_error(SL_SMTP_ERR_BARE_LF, error_kind_r, error_r);

        memcpy(p->cmd, start, textlen);
        p->cmd[textlen] = '\0';
        char *sp = memchr(p->cmd, ' ', textlen);
        if (sp != NULL) {
            *sp = '\0';
            cmd_r->arg = sp + 1;
        } else {
            cmd_r->arg = p->cmd + textlen;
        }
        cmd_r->verb_text = p->cmd;
        cmd_r->verb = verb_lookup(p->cmd);
        return 1;
    }
}

/* ---- data mode ---- */

/* Appends body bytes, honouring the size cap. Called once per segment,
 * never per byte. */
static void
data_emit(struct sl_smtp_parser *p, const char *s, size_t n)
{
    if (n == 0)
        return;
    p->info.size += n;
    if (p->info.too_big)
        return;
    size_t max = p->limits.max_message_size;
    if (max != 0 && p->stored + n > max) {
        sl_buf_append(p->sink, s, max - p->stored);
        p->stored = max;
        p->info.too_big = true;
        return;
    }
    sl_buf_append(p->sink, s, n);
    p->stored += n;
}

static void
data_line_end(struct sl_smtp_parser *p)
{
    data_emit(p, "\r\n", 2);
    if (p->cur_line > p->info.longest_line)
        p->info.longest_line = p->cur_line;
    p->cur_line = 0;
}

/* A CR not followed by LF is no line end: it becomes a space, as Postfix's
 * smtpd and cleanup make it, in the header section and the body alike.
 * Taken as a line break it would let "X-Note: a<CR>From: ceo@victim"
 * add a From: header that the sender's MTA never saw as one. */
static void
data_bare_cr(struct sl_smtp_parser *p)
{
    p->info.bare_cr++;
    data_emit(p, " ", 1);
    p->cur_line++;
}

/* Byte classes for the text scanner: 0 plain, 1 NUL, 2 8-bit, 3 CR/LF. */
static const unsigned char byte_class[256] = {
    [0] = 1, ['\r'] = 3, ['\n'] = 3, [0x80 ... 0xff] = 2,    /* GNU range, C extensions are on */
};

static int
parse_data(struct sl_smtp_parser *p, struct sl_smtp_cmd *cmd_r)
{
    /* the hot loop works on the buffer's fields directly */
    struct sl_inbuf *in = &p->in;
    const char *buf = in->data;

    while (in->pos < in->len) {
        char c = buf[in->pos];

        switch (p->dstate) {
        case D_LINE_START:
            if (c == '.') {
                in->pos++;
                p->dstate = D_DOT;
            } else {
                p->dstate = D_TEXT;
            }
            break;
        case D_DOT:
            if (c == '\r') {
                in->pos++;
                p->dstate = D_DOT_CR;
                break;
            }
            if (c == '\n') {
                /* <CRLF>.<LF>: not the end; a lone dot, kept as text. */
                data_emit(p, ".", 1);
                p->cur_line = 1;
            }
            /* Otherwise a stuffed dot (RFC 5321 4.5.2): drop it. */
            p->dstate = D_TEXT;
            break;
        case D_DOT_CR:
            if (c == '\n') {
                in->pos++;
                p->in_data = false;
                p->sink = NULL;
                cmd_r->verb = SL_CMD_DATA_END;
                cmd_r->verb_text = "";
                cmd_r->arg = "";
                return 1;
            }
            /* ".<CR>x" is no end: a line opened by a stuffing dot
             * (dropped), then a bare CR, a space like any other. */
            data_bare_cr(p);
            p->dstate = D_TEXT;
            break;
        case D_CR:
            if (c == '\n') {
                in->pos++;
                data_line_end(p);
                p->dstate = D_LINE_START;
            } else {
                data_bare_cr(p); /* c is looked at again, as text */
                p->dstate = D_TEXT;
            }
            break;
        case D_TEXT: {
            /* The hot loop: scan a run of text with one table lookup per
             * byte, then append the run, with its CRLF when it has one, in
             * one call. */
            const unsigned char *s = (const unsigned char *)buf + in->pos;
            const unsigned char *e = (const unsigned char *)buf + in->len;
            const unsigned char *q = s;
            unsigned nul = 0;
            bool eight = false;
            while (q < e) {
                unsigned cls = byte_class[*q];
                if (cls != 0) {
                    if (cls == 3)
                        break;
                    if (cls == 1)
                        nul++;
                    else
                        eight = true;
                }
                q++;
            }
            p->info.nul_bytes += nul;
            if (eight)
                p->info.eight_bit = true;
            size_t n = (size_t)(q - s);
            if (q + 1 < e && q[0] == '\r' && q[1] == '\n') {
                /* the common case: a whole CRLF line */
                data_emit(p, (const char *)s, n + 2);
                p->cur_line += n;
                if (p->cur_line > p->info.longest_line)
                    p->info.longest_line = p->cur_line;
                p->cur_line = 0;
                in->pos += n + 2;
                p->dstate = D_LINE_START;
                break;
            }
            data_emit(p, (const char *)s, n);
            p->cur_line += n;
            in->pos += n;
            if (q == e)
                break;
            in->pos++;
            if (*q == '\r') {
                p->dstate = D_CR;
            } else {
                p->info.bare_lf++;
                data_line_end(p);
                /* stays D_TEXT: a line after a bare LF is not a real
                 * line start, so "." there is plain text */
            }
            break;
        }
        }
    }
    sl_inbuf_clear(in);
    return 0;
}

int
sl_smtp_parser_next(struct sl_smtp_parser *p, struct sl_smtp_cmd *cmd_r,
                    enum sl_smtp_error *error_kind_r, const char **error_r)
{
    *error_kind_r = SL_SMTP_ERR_NONE;
    if (p->in_data)
        return parse_data(p, cmd_r);
    return parse_command(p, cmd_r, error_kind_r, error_r);
}

/* ---- argument parsers ---- */

static bool
is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static void
path_add_param(struct sl_smtp_path *path, const char *kw, size_t kwlen, const char *val,
               size_t vallen, bool has_val)
{
    path->params = sl_realloc(path->params, (path->n_params + 1) * sizeof(*path->params));
    struct sl_smtp_param *pr = &path->params[path->n_params++];
    pr->keyword = sl_strndup(kw, kwlen);
    for (char *k = pr->keyword; *k != '\0'; k++)
        *k = (char)toupper((unsigned char)*k);
    pr->value = has_val ? sl_strndup(val, vallen) : NULL;
}

/* RFC 5321 4.1.2: Mail-parameters / Rcpt-parameters, space separated,
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"),
 * esmtp-value = 1*(%d33-60 / %d62-126), widened to UTF-8 by RFC 6531. */
static int
parse_params(const char *s, struct sl_smtp_path *path, const char **error_r)
{
    for (;;) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            return 0;
        const char *kw = s;
        if (!isalnum((unsigned char)*s)) {
            *error_r = "bad parameter keyword";
            return -1;
        }
        while (isalnum((unsigned char)*s) || *s == '-')
            s++;
        size_t kwlen = (size_t)(s - kw);
        if (*s == ' ' || *s == '\0') {
            path_add_param(path, kw, kwlen, NULL, 0, false);
            continue;
        }
        if (*s != '=') {
            *error_r = "bad parameter keyword";
            return -1;
        }
        s++;
        const char *val = s;
        while (*s != ' ' && *s != '\0') {
            if (is_ctl((unsigned char)*s) || *s == '=') {
                *error_r = "bad parameter value";
                return -1;
            }
            s++;
        }
        if (s == val) {
            *error_r = "empty parameter value";
            return -1;
        }
        path_add_param(path, kw, kwlen, val, (size_t)(s - val), true);
    }
}

int
sl_smtp_parse_path(const char *arg, const char *prefix, size_t max_address,
                   struct sl_smtp_path *path_r, const char **error_r)
{
    memset(path_r, 0, sizeof(*path_r));

    const char *s = sl_strcase_prefix(arg, prefix);
    if (s == NULL) {
        *error_r = "syntax error: missing FROM:/TO:";
        return -1;
    }
    /* Postfix accepts "MAIL FROM: <a@b>"; so do we (one or more spaces). */
    while (*s == ' ')
        s++;
    if (*s != '<') {
        *error_r = "syntax error: missing '<'";
        return -1;
    }
    s++;

    /* RFC 5321 4.1.2 / C: an obsolete source route "@a,@b:" before the
     * mailbox is accepted and ignored. */
    if (*s == '@') {
        const char *colon = s;
        while (*colon != '\0' && *colon != ':' && *colon != '>')
            colon++;
        if (*colon != ':' || colon[1] == '>') {
            *error_r = "syntax error: bad source route";
            return -1;
        }
        s = colon + 1;
    }

    const char *addr = s;
    bool quoted = false;
    for (;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\0') {
            *error_r = quoted ? "syntax error: unterminated quoted string"
                              : "syntax error: missing '>'";
            return -1;
        }
        if (is_ctl(c)) {
            *error_r = "syntax error: control character in address";
            return -1;
        }
        if (quoted) {
            /* quoted-pairSMTP = %d92 %d32-126 (RFC 5321 4.1.2) */
            if (c == '\\') {
                if (is_ctl((unsigned char)s[1]) || s[1] == '\0') {
                    *error_r = "syntax error: bad quoted pair";
                    return -1;
                }
                s++;
            } else if (c == '"') {
                quoted = false;
            }
            continue;
        }
        if (c == '"') {
            quoted = true;
        } else if (c == '>') {
            break;
        } else if (c == '<') {
            *error_r = "syntax error: unbalanced '<'";
            return -1;
        } else if (c == ' ') {
            *error_r = "syntax error: space in address";
            return -1;
        }
    }
    size_t addrlen = (size_t)(s - addr);
    s++;                                /* past '>' */

    if (addrlen > max_address) {
        *error_r = "address too long";
        return -1;
    }
    /* The null reverse-path is for MAIL only (RFC 5321 4.5.5); RCPT TO:<>
     * means nothing. */
    if (addrlen == 0 && strcasecmp(prefix, "FROM:") != 0) {
        *error_r = "syntax error: empty recipient";
        return -1;
    }
    if (*s != '\0' && *s != ' ') {
        *error_r = "syntax error: garbage after address";
        return -1;
    }
    path_r->address = sl_strndup(addr, addrlen);
    if (parse_params(s, path_r, error_r) < 0) {
        sl_smtp_path_free(path_r);
        return -1;
    }
    return 0;
}

void
sl_smtp_path_free(struct sl_smtp_path *path)
{
    if (path == NULL)
        return;
    for (size_t i = 0; i < path->n_params; i++) {
        free(path->params[i].keyword);
        free(path->params[i].value);
    }
    free(path->params);
    free(path->address);
    memset(path, 0, sizeof(*path));
}

const char *
sl_smtp_path_param(const struct sl_smtp_path *path, const char *keyword, bool *present_r)
{
    for (size_t i = 0; i < path->n_params; i++) {
        if (strcasecmp(path->params[i].keyword, keyword) == 0) {
            if (present_r != NULL)
                *present_r = true;
            return path->params[i].value;
        }
    }
    if (present_r != NULL)
        *present_r = false;
    return NULL;
}

const char *const sl_xforward_attr_names[SL_XF_COUNT] = {
    [SL_XF_NAME] = "NAME",     [SL_XF_ADDR] = "ADDR",     [SL_XF_PORT] = "PORT",
    [SL_XF_PROTO] = "PROTO",   [SL_XF_HELO] = "HELO",     [SL_XF_IDENT] = "IDENT",
    [SL_XF_SOURCE] = "SOURCE", [SL_XF_DOMAIN] = "DOMAIN",
};

int
sl_xforward_attr_lookup(const char *name)
{
    for (int i = 0; i < SL_XF_COUNT; i++)
        if (strcasecmp(name, sl_xforward_attr_names[i]) == 0)
            return i;
    return -1;
}

/* Postfix XFORWARD_README: "XFORWARD name=value ...". Names are letters
 * (NAME ADDR PORT PROTO HELO IDENT SOURCE LOGIN); values are xtext and may
 * be empty or "[UNAVAILABLE]". The whole line is checked before the first
 * callback so a bad line changes nothing. */
int
sl_smtp_parse_xforward(const char *arg, void (*cb)(void *ctx, const char *name, const char *value),
                       void *ctx, const char **error_r)
{
    size_t n_pairs = 0;

    for (const char *s = arg;;) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            break;
        const char *name = s;
        while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
            s++;
        if (s == name) {
            *error_r = *s == '=' ? "XFORWARD: empty attribute name"
                                 : "XFORWARD: bad attribute name";
            return -1;
        }
        if (*s != '=') {
            *error_r = "XFORWARD: missing '='";
            return -1;
        }
        s++;
        while (*s != ' ' && *s != '\0') {
            if (is_ctl((unsigned char)*s)) {
                *error_r = "XFORWARD: control character in value";
                return -1;
            }
            s++;
        }
        n_pairs++;
    }
    if (n_pairs == 0) {
        *error_r = "XFORWARD: no attributes";
        return -1;
    }

    struct sl_buf tmp;
    sl_buf_init(&tmp);
    for (const char *s = arg;;) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            break;
        const char *eq = strchr(s, '=');
        const char *end = eq;
        while (*end != ' ' && *end != '\0')
            end++;
        sl_buf_reset(&tmp);
        sl_buf_append(&tmp, s, (size_t)(end - s));
        size_t namelen = (size_t)(eq - s);
        tmp.data[namelen] = '\0';
        for (size_t i = 0; i < namelen; i++)
            tmp.data[i] = (char)toupper((unsigned char)tmp.data[i]);
        cb(ctx, tmp.data, tmp.data + namelen + 1);
        s = end;
    }
    sl_buf_free(&tmp);
    return 0;
}
