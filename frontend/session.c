/* session.c - one LMTP/SMTP conversation with an origin Postfix.
 *
 * The protocol follows amavisd-new on port 10024: LMTP (RFC 2033) or SMTP
 * (RFC 5321) on the same port, decided by LHLO versus EHLO/HELO;
 * PIPELINING (RFC 2920); SIZE (RFC 1870); 8BITMIME (RFC 6152); DSN
 * (RFC 3461) parameters carried through to the reinjection;
 * ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463); SMTPUTF8 (RFC 6531);
 * XFORWARD (Postfix XFORWARD_README). docs/protocol.md lists every reply
 * this file sends and why.
 *
 * The rule everything here serves (DESIGN-NOTES.md): the final "." is
 * answered only after the origin's :10025 answered, one reply per recipient
 * carrying that answer. Every failure on the way - no broker, no verdict
 * in time, reinjection refused or unreachable - is a 4xx, so Postfix keeps
 * the message. If Postfix hangs up while we wait, the job is abandoned
 * before reinjection, so its retry cannot become a duplicate - unless the
 * ledger (ledger.h) is on: then the job is finished and recorded, and the
 * retry gets the recorded reply (docs/exactly-once.md).
 *
 * Hostile input (REFERENCE.md 6) is met here and in the parser:
 *   - bare CR/LF and NUL in a command line: 500, the line is dropped;
 *     in message data bare CR/LF are normalised to CRLF by the parser and
 *     the smuggling forms never end the data; NUL in data: 554, nothing
 *     is forwarded;
 *   - a command that RFC 2920 says must end a pipelined group (LHLO, EHLO,
 *     HELO, DATA, NOOP, VRFY, EXPN, BDAT, STARTTLS), followed by more input
 *     before our reply - notably message content sent before the 354 - is
 *     answered "554 5.5.0 Error: SMTP protocol synchronization" and the
 *     connection is closed without reading on, as Postfix >= 3.9 does
 *     (smtpd_forbid_unauth_pipelining); in a session without LHLO/EHLO,
 *     where PIPELINING was never offered, any command followed by more
 *     input is;
 *   - timeouts: frontend.timeout per read and per write (idle), and also
 *     for a whole command line however slowly it trickles in; a DATA phase
 *     must keep up SESSION_MIN_DATA_RATE, so one byte a minute cannot hold
 *     a concurrency slot forever (Postfix's smtpd_per_record_deadline and
 *     smtpd_min_data_rate);
 *   - a client that does not read its replies: past SESSION_MAX_OUTPUT of
 *     unsent replies we stop reading its commands until it catches up.
 *
 * Life of a session:
 *   INIT --LHLO/EHLO--> READY --MAIL--> MAIL --RCPT..DATA--> DATA
 *   DATA --"."--> WAIT (job at the broker, then reinjection) --replies--> READY
 * The input parser (lib/mail/sl_smtp_parser) does no I/O; this file feeds
 * it and acts on what it returns. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include "frontend_int.h"
#include "ledger.h"
#include "outcome.h"
#include "reply_map.h"
#include "mail/sl_smtp_parser.h"
#include "util/sl_addr.h"
#include "util/sl_body.h"
#include "util/sl_log.h"

#define SESSION_HARD_ERROR_LIMIT 20         /* Postfix smtpd_hard_error_limit */
#define SESSION_MAX_COMMAND_LINE 4096       /* RFC 5321 says 512; XFORWARD can be longer */
#define SESSION_MAX_ADDRESS 1024            /* longer paths get 501 */
#define SESSION_MAX_PENDING_WHILE_WAITING (64 * 1024)
#define SESSION_REPLY_MAX 510               /* RFC 5321 4.5.3.1.5: 512 with CRLF */
#define SESSION_JUNK_COMMAND_LIMIT 100      /* Postfix smtpd_junk_command_limit */
#define SESSION_MIN_DATA_RATE 500           /* bytes/s, Postfix smtpd_min_data_rate */
#define SESSION_MAX_OUTPUT (256 * 1024)     /* unsent replies before we stop reading */
#define SESSION_SYNC_LOG_MAX 100            /* bytes of unexpected input logged */

enum session_state {
    SESSION_INIT,       /* greeting sent; waiting for LHLO/EHLO/HELO */
    SESSION_READY,      /* greeted; no transaction */
    SESSION_MAIL,       /* MAIL accepted; RCPTs being collected */
    SESSION_DATA,       /* receiving the message */
    SESSION_WAIT,       /* message handed off; holding the connection */
    SESSION_CLOSING,    /* last reply queued; close once it is written */
};

/* XFORWARD attributes we advertise and keep, in Postfix's order. */
enum xf_attr { XF_NAME, XF_ADDR, XF_PORT, XF_PROTO, XF_HELO, XF_IDENT, XF_SOURCE, XF_COUNT };
static const char *const xf_names[XF_COUNT] = {"NAME", "ADDR",  "PORT",  "PROTO",
                                               "HELO", "IDENT", "SOURCE"};

struct rcpt {
    char *address;
    char *notify;
    char *orcpt;
};

struct session {
    struct session *next, *prev;
    struct frontend *fe;
    struct bufferevent *bev;
    struct sl_smtp_parser *parser;
    char peer_ip[64];
    unsigned peer_port;
    struct fe_origin *origin;
    enum session_state state;
    bool lmtp;
    bool esmtp;                 /* LHLO or EHLO: PIPELINING was offered */
    char *helo;
    unsigned errors;
    unsigned junk_commands;     /* NOOP, RSET, VRFY, EXPN, HELP since the last message */
    struct event *io_timer;     /* command or DATA deadline (session_arm_command_deadline) */
    unsigned long long data_deadline_ms;
    bool output_blocked;        /* reading paused until the client reads its replies */
    bool holds_slot;            /* counted in origin->active */
    bool orphan;                /* client gone; the job runs on for the ledger (bev freed) */

    char *xforward[XF_COUNT];   /* for the next transaction */

    /* the transaction */
    char *mail_from;
    char *ret, *envid, *body_type;
    bool smtputf8;
    struct rcpt *rcpts;
    size_t n_rcpts, cap_rcpts;
    struct sl_buf data;

    /* the job in flight (state WAIT) */
    char job_id[SL_ID_LEN + 1];
    bool job_registered;        /* in the frontend's job table, verdict pending */
    struct sl_body *body;
    struct event *deadline;
    struct fe_reinject_op *reinject;
    unsigned long long t_start_ms;
    char *message_id;
    char *category;
    struct fe_delivery *delivery;   /* per-recipient destinies in progress (outcome.h) */
    char ledger_key[FE_LEDGER_KEY_LEN + 1]; /* with the ledger: the message's name in it */
    struct fe_ledger_op *reserve;   /* reserving the recipients, from end of data */
    struct fe_ledger_answer *reserved; /* its answer, until the delivery takes it over */
    char *log_category;             /* the log's "INFECTED (name)"; NULL: category */
    char *hits;                     /* the log's Hits: (spam score); NULL: "-" */
    char *log_bank;                 /* the log's " ORIGINATING LOCAL"; NULL: "" */
};

static void session_process(struct session *s);
static void session_free(struct session *s);
static void session_on_read(struct bufferevent *bev, void *ctx);

/* ---------------------------------------------------------------- replies */

static void SL_PRINTF(2, 3)
session_reply(struct session *s, const char *fmt, ...)
{
    char line[SESSION_REPLY_MAX + 1];
    va_list ap;
    if (s->bev == NULL)
        return;     /* an orphan: nobody to tell */
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > SESSION_REPLY_MAX)
        n = SESSION_REPLY_MAX;   /* a quoted next-hop reply may be long: cut, never wrap */
    /* A reply must never carry a line break of its own (it would be read as
     * a second reply); quoted text from the next hop is flattened. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    struct evbuffer *out = bufferevent_get_output(s->bev);
    evbuffer_add(out, line, (size_t)n);
    evbuffer_add(out, "\r\n", 2);
}

static void
session_close_after_reply(struct session *s)
{
    s->state = SESSION_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
}

/* Counts a client error; past the limit the session ends, as Postfix's
 * smtpd_hard_error_limit does, so a confused client cannot loop forever. */
static void
session_error(struct session *s)
{
    if (++s->errors >= SESSION_HARD_ERROR_LIMIT) {
        session_reply(s, "421 4.7.0 %s Error: too many errors", s->fe->hostname);
        sl_warn("[%s]:%u: too many errors, disconnecting", s->peer_ip, s->peer_port);
        session_close_after_reply(s);
    }
}

/* --------------------------------------------------------- transactions */

static void
session_release_slot(struct session *s)
{
    if (s->holds_slot) {
        SL_BUG_ON(s->origin->active == 0);
        s->origin->active--;
        s->holds_slot = false;
    }
}

static void
session_clear_xforward(struct session *s)
{
    for (int i = 0; i < XF_COUNT; i++)
        sl_free_and_clear(&s->xforward[i]);
}

/* Ends the transaction (RSET, end of DATA, LHLO): XFORWARD attributes too,
 * as Postfix's smtpd does. */
static void
session_reset_transaction(struct session *s)
{
    sl_free_and_clear(&s->mail_from);
    sl_free_and_clear(&s->ret);
    sl_free_and_clear(&s->envid);
    sl_free_and_clear(&s->body_type);
    s->smtputf8 = false;
    for (size_t i = 0; i < s->n_rcpts; i++) {
        free(s->rcpts[i].address);
        free(s->rcpts[i].notify);
        free(s->rcpts[i].orcpt);
    }
    s->n_rcpts = 0;
    sl_buf_free(&s->data);
    session_clear_xforward(s);
    sl_body_unref(&s->body);
    sl_free_and_clear(&s->message_id);
    sl_free_and_clear(&s->category);
    sl_free_and_clear(&s->log_category);
    sl_free_and_clear(&s->hits);
    sl_free_and_clear(&s->log_bank);
    s->job_id[0] = '\0';
    session_release_slot(s);
    if (s->state != SESSION_INIT && s->state != SESSION_CLOSING)
        s->state = SESSION_READY;
}

/* Is the client still on the line? libevent may not have run our event
 * callback yet, so ask the socket: a readable EOF means Postfix gave up and
 * will retry the message, and delivering it now would make a duplicate. */
static bool
session_client_connected(struct session *s)
{
    char c;
    if (s->bev == NULL)
        return false;
    ssize_t n = recv(bufferevent_getfd(s->bev), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return false;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    return true;
}

static void
session_set_idle_timeout(struct session *s, bool on)
{
    struct timeval tv = {.tv_sec = s->fe->config->frontend.timeout_s};
    bufferevent_set_timeouts(s->bev, on ? &tv : NULL, &tv);
}

static void
session_arm_ms(struct session *s, unsigned long long ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->io_timer, &tv);
}

/* The next command line must be complete within frontend.timeout, however
 * it trickles in: the per-read timeout alone would let a client that sends
 * a byte every (timeout - 1) s hold its session, and its concurrency slot,
 * for ever. Re-armed after every command, not after every byte. */
static void
session_arm_command_deadline(struct session *s)
{
    session_arm_ms(s, (unsigned long long)s->fe->config->frontend.timeout_s * 1000);
}

/* DATA: frontend.timeout from the 354, plus 1 s for every
 * SESSION_MIN_DATA_RATE bytes received (Postfix's smtpd_min_data_rate with
 * smtpd_per_record_deadline); the per-read timeout still applies. */
static void
session_start_data_deadline(struct session *s)
{
    s->data_deadline_ms =
        sl_now_mono_ms() + (unsigned long long)s->fe->config->frontend.timeout_s * 1000;
    session_arm_command_deadline(s);
}

static void
session_extend_data_deadline(struct session *s, size_t bytes)
{
    unsigned long long now = sl_now_mono_ms();
    s->data_deadline_ms += (unsigned long long)bytes * 1000 / SESSION_MIN_DATA_RATE;
    session_arm_ms(s, s->data_deadline_ms > now ? s->data_deadline_ms - now : 0);
}

/* ------------------------------------------------------------- logging */

/* amavisd-new's one line per message (REFERENCE.md section 2), so
 * mailgraph, logwatch and existing dashboards keep working. */
static void
session_log_summary(struct session *s, const char *action, const char *queued_as,
                    const char *detail)
{
    struct sl_buf line;
    sl_buf_init(&line);
    const char *cat = s->log_category ? s->log_category : s->category ? s->category : "CLEAN";
    bool passed = strstr(action, "Relayed") != NULL;
    const char *ip = s->xforward[XF_ADDR] ? s->xforward[XF_ADDR] : s->peer_ip;
    const char *port = s->xforward[XF_PORT];

    sl_buf_printf(&line, "(%s) %s %s {%s},%s [%s]", s->job_id, passed ? "Passed" : "Blocked", cat,
                  action, s->log_bank ? s->log_bank : "", ip);
    if (port)
        sl_buf_printf(&line, ":%s", port);
    sl_buf_printf(&line, " <%s> ->", s->mail_from ? s->mail_from : "");
    for (size_t i = 0; i < s->n_rcpts; i++)
        sl_buf_printf(&line, "%s<%s>", i ? "," : " ", s->rcpts[i].address);
    sl_buf_printf(&line, ", Queue-ID: %s, Message-ID: %s, mail_id: %s, Hits: %s, size: %zu",
                  s->xforward[XF_IDENT] ? s->xforward[XF_IDENT] : "-",
                  s->message_id && *s->message_id ? s->message_id : "-", s->job_id,
                  s->hits ? s->hits : "-", s->body ? s->body->len : (size_t)0);
    if (queued_as)
        sl_buf_printf(&line, ", queued_as: %s", queued_as);
    if (detail)
        sl_buf_printf(&line, ", %s", detail);
    sl_buf_printf(&line, ", %llu ms", sl_now_mono_ms() - s->t_start_ms);
    sl_info("%s", line.data);
    sl_buf_free(&line);
}

/* ------------------------------------------------- end of a transaction */

/* Answers every recipient with the same reply (LMTP) or once (SMTP). */
static void SL_PRINTF(2, 3)
session_reply_all(struct session *s, const char *fmt, ...)
{
    char text[SESSION_REPLY_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    size_t n = s->lmtp ? s->n_rcpts : 1;
    for (size_t i = 0; i < n; i++)
        session_reply(s, "%s", text);
}

/* The transaction ends without a delivery taking the reservation over:
 * give back what it reserved (a retry must not wait for it to go stale). */
static void
session_ledger_stop(struct session *s)
{
    fe_ledger_abandon(&s->reserve);
    if (s->reserved != NULL) {
        const char **rcpts = sl_calloc(s->n_rcpts ? s->n_rcpts : 1, sizeof(*rcpts));
        for (size_t i = 0; i < s->n_rcpts; i++)
            rcpts[i] = s->rcpts[i].address;
        fe_ledger_answer_release(s->fe->ledger, s->ledger_key, rcpts, &s->reserved);
        free(rcpts);
    }
}

/* The transaction is answered: back to READY and on with any pipelined
 * input that arrived meanwhile. */
static void
session_transaction_done(struct session *s)
{
    session_ledger_stop(s);
    if (s->deadline)
        evtimer_del(s->deadline);
    if (s->job_registered) {
        frontend_job_unregister(s->fe, s->job_id);
        s->job_registered = false;
    }
    if (s->orphan) {
        session_free(s);
        return;
    }
    session_reset_transaction(s);
    if (s->fe->shutting_down) {
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      s->fe->hostname);
        session_close_after_reply(s);
        return;
    }
    session_set_idle_timeout(s, true);
    session_arm_command_deadline(s);
    bufferevent_enable(s->bev, EV_READ);
    /* input that arrived while we waited (pipelined or held back) */
    session_on_read(s->bev, s);
}

static void
session_tempfail(struct session *s, const char *why)
{
    session_reply_all(s, "451 4.5.0 id=%s, %s", s->job_id, why);
    session_log_summary(s, "TempFailedInbound", NULL, why);
    session_transaction_done(s);
}

static void
session_on_reinjected(void *ctx, const struct fe_reinject_result *res)
{
    struct session *s = ctx;
    s->reinject = NULL;
    SL_BUG_ON(res->n_rcpts != s->n_rcpts);

    if (res->cancelled) {
        /* Our client left before the final dot went out: nothing was
         * delivered, Postfix retries. The session is gone with it. */
        sl_info("%s: client left during reinjection; aborted before end of data, "
                "nothing delivered", s->job_id);
        session_free(s);
        return;
    }

    char text[SESSION_REPLY_MAX + 1];
    unsigned ok = 0, temp = 0, perm = 0;
    for (size_t i = 0; i < res->n_rcpts; i++) {
        int code = res->rcpts[i].code;
        ok += code >= 200 && code < 300;
        temp += code >= 400 && code < 500;
        perm += code >= 500;
    }
    /* A 421 from :10025 means that connection is closing, not ours (RFC
     * 5321 3.8: 421 obliges the sender to close the channel): our client
     * gets 451 with the next hop's text quoted. */
    struct fe_reinject_rcpt_result *mapped = sl_calloc(res->n_rcpts, sizeof(*mapped));
    for (size_t i = 0; i < res->n_rcpts; i++) {
        mapped[i] = res->rcpts[i];
        if (mapped[i].code == 421)
            mapped[i].code = 451;
    }
    struct fe_reinject_result mres = *res;
    mres.rcpts = mapped;
    if (s->lmtp) {
        /* RFC 2033 4.2: one reply per successful RCPT, in RCPT order */
        for (size_t i = 0; i < mres.n_rcpts; i++) {
            fe_reply_for_rcpt(s->job_id, &mres, &mapped[i], text, sizeof(text));
            session_reply(s, "%s", text);
        }
    } else {
        fe_reply_combined(s->job_id, &mres, text, sizeof(text));
        session_reply(s, "%s", text);
    }
    free(mapped);

    char detail[SESSION_REPLY_MAX + 64];
    const char *action;
    if (ok == res->n_rcpts) {
        action = "RelayedInbound";
        detail[0] = '\0';
    } else {
        action = ok ? (temp ? "RelayedInbound,TempFailedInbound" : "RelayedInbound,RejectedInbound")
                    : (temp ? "TempFailedInbound" : "RejectedInbound");
        size_t first_bad = 0;
        while (first_bad < res->n_rcpts && res->rcpts[first_bad].code < 400)
            first_bad++;
        snprintf(detail, sizeof(detail), "reinject %s: %d %s",
                 res->stage ? res->stage : "fwd", res->rcpts[first_bad].code,
                 res->rcpts[first_bad].reply ? res->rcpts[first_bad].reply : "");
    }
    session_log_summary(s, action, res->queued_as, detail[0] ? detail : NULL);
    session_transaction_done(s);
}

static bool
session_reinject_wanted(void *ctx)
{
    struct session *s = ctx;
    return session_client_connected(s);
}

/* Per-recipient destinies done (outcome.h): replies in RCPT order, the
 * log line. */
static void
session_on_delivered(void *ctx, const struct fe_delivery_result *res)
{
    struct session *s = ctx;
    s->delivery = NULL;

    if (res->cancelled) {
        sl_info("%s: client left during reinjection; aborted before end of data", s->job_id);
        session_free(s);
        return;
    }
    if (s->fe->test_kill_after_reinject && res->reinjected) {
        sl_warn("%s: SLUICE_TEST_KILL_AFTER_REINJECT: killing myself before the reply",
                s->job_id);
        raise(SIGKILL);
    }
    if (s->orphan)
        sl_info("%s: finished after the client left; the ledger holds the result for its "
                "retry", s->job_id);
    if (s->lmtp) {
        for (size_t i = 0; i < res->n_replies; i++)
            session_reply(s, "%s", res->replies[i]);
    } else {
        session_reply(s, "%s", res->combined);
    }
    session_log_summary(s, res->action, res->queued_as, res->detail);
    session_transaction_done(s);
}

/* A verdict with per-recipient results: pass, discard, bounce, reject or
 * tempfail each recipient (outcome.h). */
static void
session_deliver(struct session *s, const Sluice__Verdict *v, const struct fe_reinject_request *req)
{
    const char *error;
    struct fe_delivery_params p = {
        .base = s->fe->base,
        .reinjector = s->fe->reinjector,
        .req = req,
        .verdict = v,
        .lmtp = s->lmtp,
        .hostname = s->fe->hostname,
        .message_id = s->message_id,
        .arrival_ms = sl_now_wall_ms() - (sl_now_mono_ms() - s->t_start_ms),
    };

    if (s->fe->ledger != NULL) {
        p.ledger = s->fe->ledger;
        p.ledger_key = s->ledger_key;
        p.tempfail_unavailable = s->fe->dedup_tempfail;
    }
    fe_verdict_log_parts(v, &s->log_category, &s->hits);
    s->log_bank = fe_verdict_log_bank(v);
    s->delivery = fe_delivery_start(&p, session_on_delivered, session_reinject_wanted, s, &error);
    if (s->delivery == NULL) {
        sl_warn("%s: unusable verdict from worker %s: %s", s->job_id, v->worker ? v->worker : "?",
                error);
        session_tempfail(s, "message could not be scanned, try again later");
        return;
    }
    if (s->fe->ledger == NULL || s->reserve != NULL)
        return; /* no ledger, or session_on_reserved hands the answer over */
    struct fe_ledger_answer *a = s->reserved;
    s->reserved = NULL;
    if (a != NULL)
        fe_delivery_ledger_answer(s->delivery, a->entries, a->n, a->mine, a->error);
    else
        fe_delivery_ledger_answer(s->delivery, NULL, 0, NULL, "no reservation was made");
    fe_ledger_answer_free(&a);
}

static enum sl_header_op
header_op_from_wire(Sluice__HeaderEdit__Op op)
{
    switch (op) {
    case SLUICE__HEADER_EDIT__OP__APPEND:
        return SL_HDR_APPEND;
    case SLUICE__HEADER_EDIT__OP__REPLACE:
        return SL_HDR_REPLACE;
    case SLUICE__HEADER_EDIT__OP__DELETE:
        return SL_HDR_DELETE;
    default:
        return SL_HDR_PREPEND;
    }
}

void
session_on_verdict(struct session *s, const Sluice__Verdict *v)
{
    SL_BUG_ON(s->state != SESSION_WAIT || !s->job_registered);
    frontend_job_unregister(s->fe, s->job_id);
    s->job_registered = false;
    evtimer_del(s->deadline);

    /* logged as amavisd-new does: with angle brackets */
    if (v->message_id && *v->message_id && *v->message_id != '<')
        s->message_id = sl_asprintf("<%s>", v->message_id);
    else
        s->message_id = sl_strdup(v->message_id ? v->message_id : "");
    s->category = sl_strdup(v->category && *v->category ? v->category : "CLEAN");
    if (!v->ok) {
        sl_warn("%s: worker %s could not process the message: %s", s->job_id,
                v->worker ? v->worker : "?", v->error ? v->error : "unknown error");
        session_tempfail(s, "message could not be scanned, try again later");
        return;
    }
    if (!session_client_connected(s) && (s->fe->ledger == NULL || v->n_rcpts == 0)) {
        sl_info("%s: client left while the message was scanned; not reinjected "
                "(Postfix keeps it and retries)", s->job_id);
        session_free(s);
        return;
    }

    const struct sl_origin_config *oc = s->origin->config;
    struct fe_reinject_rcpt *rcpts = sl_calloc(s->n_rcpts, sizeof(*rcpts));
    for (size_t i = 0; i < s->n_rcpts; i++) {
        rcpts[i].address = s->rcpts[i].address;
        rcpts[i].notify = s->rcpts[i].notify;
        rcpts[i].orcpt = s->rcpts[i].orcpt;
    }
    struct sl_header_edit *edits = sl_calloc(v->n_edits, sizeof(*edits));
    for (size_t i = 0; i < v->n_edits; i++) {
        edits[i].op = header_op_from_wire(v->edits[i]->op);
        edits[i].name = v->edits[i]->name;
        edits[i].value = v->edits[i]->value;
    }
    struct fe_xforward xf = {
        .name = s->xforward[XF_NAME],   .addr = s->xforward[XF_ADDR],
        .port = s->xforward[XF_PORT],   .proto = s->xforward[XF_PROTO],
        .helo = s->xforward[XF_HELO],   .ident = s->xforward[XF_IDENT],
        .source = s->xforward[XF_SOURCE],
    };
    struct fe_reinject_request req = {
        .job_id = s->job_id,
        .host = oc->reinject_to_client ? s->peer_ip : oc->reinject_host,
        .port = oc->reinject_port,
        .max_conns = oc->concurrency,
        .mail_from = s->mail_from,
        .ret = s->ret,
        .envid = s->envid,
        .body_type = s->body_type,
        .smtputf8 = s->smtputf8,
        .rcpts = rcpts,
        .n_rcpts = s->n_rcpts,
        .xforward = &xf,
        .body = s->body,
        .edits = edits,
        .n_edits = v->n_edits,
    };
    if (v->n_rcpts > 0)
        session_deliver(s, v, &req);        /* per-recipient destinies (issue 4) */
    else                                    /* all pass, as before scanning existed */
        s->reinject = fe_reinject_start(s->fe->reinjector, &req, session_on_reinjected,
                                        session_reinject_wanted, s);
    free(edits);
    free(rcpts);
}

static void
session_on_deadline(evutil_socket_t fd, short what, void *ctx)
{
    struct session *s = ctx;
    (void)fd;
    (void)what;
    sl_warn("%s: no verdict within job.timeout (%u s); tempfailing", s->job_id,
            s->fe->config->job.timeout_s);
    session_tempfail(s, "no scanner verdict in time, try again later");
}

/* The reservation made at end of data has its answer. When the verdict
 * came first, the delivery waits for it. Before: if every recipient is
 * already reinjected, Postfix is retrying a message whose reply it never
 * got (it gave up waiting, lmtp_data_done_timeout): the stored replies go
 * out now, and the verdict of the scan started meanwhile is ignored when
 * it comes - the retry does not wait for a slow scan again. Otherwise the
 * answer waits for the verdict. */
static void
session_on_reserved(void *ctx, const struct fe_ledger_entry *entries, size_t n, const char *mine,
                    const char *error)
{
    struct session *s = ctx;

    s->reserve = NULL;
    if (s->delivery != NULL) {
        fe_delivery_ledger_answer(s->delivery, entries, n, mine, error);
        return;
    }
    bool all_done = error == NULL && s->job_registered && n > 0;
    for (size_t i = 0; all_done && i < n; i++)
        all_done = entries[i].state == FE_LEDGER_DONE;
    if (!all_done) {
        s->reserved = fe_ledger_answer_new(entries, n, mine, error);
        return;
    }
    sl_info("%s: ledger: all %zu recipient(s) already reinjected; stored replies given, "
            "not scanned or reinjected again", s->job_id, n);
    frontend_job_unregister(s->fe, s->job_id);
    s->job_registered = false;
    if (s->lmtp)
        for (size_t i = 0; i < n; i++)
            session_reply(s, "%s", entries[i].reply);
    else
        session_reply(s, "%s", entries[0].reply);
    session_log_summary(s, "RelayedInbound", NULL, "ledger: already delivered");
    session_transaction_done(s);
}

/* Names the message in the ledger and reserves its recipients, while the
 * message is scanned: the Redis round trip is off the path Postfix waits
 * on, and an answer of "all done" ends a retry before the scan. */
static void
session_ledger_start(struct session *s)
{
    size_t mid_len;
    const char *mid = fe_ledger_message_id(s->body->data, s->body->len, &mid_len);
    char *mid_copy = mid ? sl_strndup(mid, mid_len) : NULL;
    struct fe_ledger_message m = {
        .origin = s->origin->config->name,
        .ident = s->xforward[XF_IDENT],
        .message_id = mid_copy,
        .body = s->body->data,
        .body_len = s->body->len,
    };
    const char **rcpts = sl_calloc(s->n_rcpts ? s->n_rcpts : 1, sizeof(*rcpts));

    fe_ledger_key(&m, s->ledger_key);
    free(mid_copy);
    for (size_t i = 0; i < s->n_rcpts; i++)
        rcpts[i] = s->rcpts[i].address;
    s->reserve = fe_ledger_reserve(s->fe->ledger, s->ledger_key, rcpts, s->n_rcpts,
                                   session_on_reserved, s);
    free(rcpts);
}

/* End of data: the message is complete. Hand it to the broker and hold the
 * connection until the verdict and the reinjection are through. */
static void
session_submit(struct session *s)
{
    struct frontend *fe = s->fe;
    const struct sl_smtp_data_info *info = sl_smtp_parser_data_info(s->parser);

    sl_id_new(s->job_id);
    s->t_start_ms = sl_now_mono_ms();
    if (info->bare_lf || info->bare_cr)
        sl_info("%s: from [%s]:%u: %u bare LF and %u bare CR in the message normalised to CRLF",
                s->job_id, s->peer_ip, s->peer_port, info->bare_lf, info->bare_cr);
    if (info->too_big) {
        /* RFC 1870 section 6.3; one reply per recipient in LMTP */
        session_reply_all(s, "552 5.3.4 Error: message file too big");
        sl_info("%s: rejected: message size %zu exceeds frontend.max_message_size %zu",
                s->job_id, info->size, fe->config->frontend.max_message_size);
        session_reset_transaction(s);
        session_arm_command_deadline(s);
        return;
    }
    if (info->nul_bytes) {
        /* NUL is not allowed in any message (RFC 5322 3.5 "text", and RFC
         * 2045 2.8: not even in 8bit data, so 8BITMIME does not allow it),
         * and C-string parsers downstream would cut lines at it: an
         * interpretation gap, so it is never forwarded. */
        session_reply_all(s, "554 5.6.0 Error: message content contains NUL characters");
        sl_info("%s: rejected: %u NUL byte(s) in the message from [%s]:%u", s->job_id,
                info->nul_bytes, s->peer_ip, s->peer_port);
        session_reset_transaction(s);
        session_arm_command_deadline(s);
        return;
    }
    s->junk_commands = 0;
    evtimer_del(s->io_timer);
    size_t len;
    char *bytes = sl_buf_steal(&s->data, &len);
    s->body = sl_body_new(bytes, len);
    s->state = SESSION_WAIT;
    session_set_idle_timeout(s, false);   /* we hold the line; Postfix waits up to 1200 s */

    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Xforward xf = SLUICE__XFORWARD__INIT;
    char *xf_vals[XF_COUNT];
    for (int i = 0; i < XF_COUNT; i++)
        xf_vals[i] = s->xforward[i] ? s->xforward[i] : (char *)"";
    xf.name = xf_vals[XF_NAME];
    xf.addr = xf_vals[XF_ADDR];
    xf.port = xf_vals[XF_PORT];
    xf.proto = xf_vals[XF_PROTO];
    xf.helo = xf_vals[XF_HELO];
    xf.ident = xf_vals[XF_IDENT];
    xf.source = xf_vals[XF_SOURCE];
    Sluice__Recipient *rcpt_store = sl_calloc(s->n_rcpts, sizeof(*rcpt_store));
    Sluice__Recipient **rcpt_ptrs = sl_calloc(s->n_rcpts, sizeof(*rcpt_ptrs));
    for (size_t i = 0; i < s->n_rcpts; i++) {
        sluice__recipient__init(&rcpt_store[i]);
        rcpt_store[i].address = s->rcpts[i].address;
        rcpt_store[i].notify = s->rcpts[i].notify ? s->rcpts[i].notify : (char *)"";
        rcpt_store[i].orcpt = s->rcpts[i].orcpt ? s->rcpts[i].orcpt : (char *)"";
        rcpt_ptrs[i] = &rcpt_store[i];
    }
    job.job_id = s->job_id;
    job.origin = s->origin->config->name;
    job.client_addr = s->peer_ip;
    job.deadline_ms = sl_now_wall_ms() + (unsigned long long)fe->config->job.timeout_s * 1000;
    job.mail_from = s->mail_from;
    job.ret = s->ret ? s->ret : (char *)"";
    job.envid = s->envid ? s->envid : (char *)"";
    job.body_type = s->body_type ? s->body_type : (char *)"";
    job.smtputf8 = s->smtputf8;
    job.n_rcpts = s->n_rcpts;
    job.rcpts = rcpt_ptrs;
    job.xforward = &xf;
    job.size = len;
    job.attempt = 0;             /* the broker numbers hand-outs from 1 */
    job.helo = s->helo;
    job.proto = s->lmtp ? "LMTP" : "ESMTP";
    job.received_ms = sl_now_wall_ms();
    job.by_host = fe->hostname;
    job.by_port = frontend_local_port(fe, bufferevent_getfd(s->bev));

    frontend_job_register(fe, s, s->job_id);
    s->job_registered = true;
    int rc = fe_broker_link_submit(fe->link, &job, s->body);
    free(rcpt_ptrs);
    free(rcpt_store);
    if (rc != 0) {
        sl_warn("%s: cannot hand the message to a broker", s->job_id);
        session_tempfail(s, "cannot queue the message for scanning, try again later");
        return;
    }
    if (s->deadline == NULL)
        s->deadline = evtimer_new(fe->base, session_on_deadline, s);
    struct timeval tv = {.tv_sec = fe->config->job.timeout_s};
    evtimer_add(s->deadline, &tv);
    if (fe->ledger != NULL)
        session_ledger_start(s);
    sl_debug("%s: queued for scanning, %zu bytes, %zu recipient(s), Queue-ID %s", s->job_id,
             len, s->n_rcpts, s->xforward[XF_IDENT] ? s->xforward[XF_IDENT] : "-");
}

/* ------------------------------------------------------------ commands */

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
    if (!s->smtputf8) {
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

static void
cmd_hello(struct session *s, const struct sl_smtp_cmd *cmd)
{
    if (*cmd->arg == '\0') {
        session_reply(s, "501 5.5.4 Syntax: %s hostname", cmd->verb_text);
        session_error(s);
        return;
    }
    /* RFC 5321 4.1.4: a new greeting also resets any transaction */
    session_reset_transaction(s);
    free(s->helo);
    s->helo = sl_strndup(cmd->arg, strcspn(cmd->arg, " "));
    s->lmtp = cmd->verb == SL_CMD_LHLO;
    s->esmtp = cmd->verb != SL_CMD_HELO;
    s->state = SESSION_READY;
    const char *host = s->fe->hostname;
    if (cmd->verb == SL_CMD_HELO) {
        session_reply(s, "250 %s", host);
        return;
    }
    /* What amavisd-new advertises on 10024, plus SMTPUTF8 (passed on to
     * :10025) and PORT IDENT SOURCE so Postfix passes the origin's queue id
     * (IDENT) for log correlation. */
    session_reply(s, "250-%s", host);
    session_reply(s, "250-PIPELINING");
    session_reply(s, "250-SIZE %zu", s->fe->config->frontend.max_message_size);
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
    for (int i = 0; i < XF_COUNT; i++) {
        if (strcasecmp(name, xf_names[i]) == 0) {
            free(s->xforward[i]);
            s->xforward[i] = sl_strdup(value);
            return;
        }
    }
    /* DOMAIN and future attributes: not advertised, so not expected; ignore */
}

static void
cmd_xforward(struct session *s, const struct sl_smtp_cmd *cmd)
{
    const char *error;
    if (s->state == SESSION_INIT) {
        session_reply(s, "503 5.5.1 Error: send LHLO/EHLO first");
        session_error(s);
        return;
    }
    if (s->state != SESSION_READY) {
        session_reply(s, "503 5.5.1 Error: XFORWARD not allowed within a transaction");
        session_error(s);
        return;
    }
    if (sl_smtp_parse_xforward(cmd->arg, xforward_store, s, &error) != 0) {
        session_reply(s, "501 5.5.4 Syntax: XFORWARD attribute=value... (%s)", error);
        session_error(s);
        return;
    }
    session_reply(s, "250 2.0.0 Ok");
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
        if (param_duplicate(path, i)) {
            session_reply(s, "501 5.5.4 Error: duplicate %s parameter", p->keyword);
            return false;
        }
        if (strcmp(p->keyword, "SIZE") == 0) {
            /* RFC 1870 3: size-value = 1*20DIGIT */
            if (v == NULL || strspn(v, "0123456789") != strlen(v)) {
                session_reply(s, "501 5.5.4 Bad message size syntax");
                return false;
            }
            errno = 0;
            unsigned long long size = strtoull(v, NULL, 10);
            if (errno == ERANGE || size > s->fe->config->frontend.max_message_size) {
                /* RFC 1870 6.1 */
                session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return false;
            }
        } else if (strcmp(p->keyword, "BODY") == 0) {
            /* RFC 6152 2 */
            if (v && (strcasecmp(v, "7BIT") == 0 || strcasecmp(v, "8BITMIME") == 0)) {
                free(s->body_type);
                s->body_type = sl_strdup(v);
                for (char *c = s->body_type; *c; c++)
                    *c = (char)toupper((unsigned char)*c);
            } else if (v && strcasecmp(v, "BINARYMIME") == 0) {
                /* RFC 3030: needs CHUNKING, which we do not offer */
                session_reply(s, "555 5.5.4 Unsupported option: BODY=BINARYMIME");
                return false;
            } else {
                session_reply(s, "501 5.5.4 Bad BODY parameter syntax");
                return false;
            }
        } else if (strcmp(p->keyword, "RET") == 0) {
            /* RFC 3461 4.3 */
            if (v == NULL || (strcasecmp(v, "FULL") != 0 && strcasecmp(v, "HDRS") != 0)) {
                session_reply(s, "501 5.5.4 Bad RET parameter syntax");
                return false;
            }
            s->ret = sl_strdup(v);
        } else if (strcmp(p->keyword, "ENVID") == 0) {
            /* RFC 3461 4.4: xtext, at most 100 characters */
            if (v == NULL || strlen(v) > 100 || !xtext_ok(v, utf8)) {
                session_reply(s, "501 5.5.4 Bad ENVID parameter syntax");
                return false;
            }
            s->envid = sl_strdup(v);
        } else if (strcmp(p->keyword, "SMTPUTF8") == 0) {
            /* RFC 6531 3.4: no value */
            if (v != NULL) {
                session_reply(s, "501 5.5.4 Bad SMTPUTF8 parameter syntax");
                return false;
            }
            s->smtputf8 = true;
        } else {
            session_reply(s, "555 5.5.4 Unsupported option: %s", p->keyword);
            return false;
        }
    }
    return true;
}

/* Per-origin concurrency (origins.<name>.concurrency). Over the limit the
 * connection stays up and MAIL gets a 4xx: a refused connection or
 * greeting would make Postfix mark the whole filter dead. */
static bool
session_take_slot(struct session *s)
{
    struct fe_origin *o = s->origin;
    if (s->holds_slot)
        return true;
    if (o->active >= o->config->concurrency) {
        unsigned long long now = sl_now_mono_ms();
        if (now - o->last_warning_ms > 10000 || o->last_warning_ms == 0) {
            o->last_warning_ms = now;
            sl_warn("origin %s: more than %u concurrent transactions from [%s]; set "
                    "amavisfeed_destination_concurrency_limit (or the amavisfeed maxproc) "
                    "on that Postfix to %u, or raise origins.%s.concurrency",
                    o->config->name, o->config->concurrency, s->peer_ip,
                    o->config->concurrency, o->config->name);
        }
        return false;
    }
    o->active++;
    s->holds_slot = true;
    return true;
}

static void
cmd_mail(struct session *s, const struct sl_smtp_cmd *cmd)
{
    struct sl_smtp_path path;
    const char *error;

    if (s->state == SESSION_INIT) {
        session_reply(s, "503 5.5.1 Error: send LHLO/EHLO first");
        session_error(s);
        return;
    }
    if (s->state != SESSION_READY) {
        session_reply(s, "503 5.5.1 Error: nested MAIL command");
        session_error(s);
        return;
    }
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
    if (!session_take_slot(s)) {
        sl_smtp_path_free(&path);
        session_reset_transaction(s);
        session_reply(s, "451 4.3.2 Too many concurrent sessions from this origin (limit %u), "
                         "try again later", s->origin->config->concurrency);
        return;
    }
    s->mail_from = sl_strdup(path.address);
    sl_smtp_path_free(&path);
    s->state = SESSION_MAIL;
    session_reply(s, "250 2.1.0 Ok");
}

/* RCPT parameters: DSN's NOTIFY and ORCPT only. False after a reply. */
static bool
rcpt_params_ok(struct session *s, const struct sl_smtp_path *path, struct rcpt *r)
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
            if (p->value == NULL || !orcpt_ok(p->value, s->smtputf8)) {
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

static void
cmd_rcpt(struct session *s, const struct sl_smtp_cmd *cmd)
{
    struct sl_smtp_path path;
    const char *error;

    if (s->state != SESSION_MAIL) {
        session_reply(s, "503 5.5.1 Error: need MAIL command");
        session_error(s);
        return;
    }
    if (s->n_rcpts >= s->fe->config->frontend.recipient_limit) {
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
    struct rcpt r = {0};
    if (!rcpt_params_ok(s, &path, &r) || !address_charset_ok(s, path.address)) {
        free(r.notify);
        free(r.orcpt);
        sl_smtp_path_free(&path);
        session_error(s);
        return;
    }
    r.address = sl_strdup(path.address);
    sl_smtp_path_free(&path);
    if (s->n_rcpts == s->cap_rcpts) {
        s->cap_rcpts = s->cap_rcpts ? s->cap_rcpts * 2 : 8;
        s->rcpts = sl_realloc(s->rcpts, s->cap_rcpts * sizeof(*s->rcpts));
    }
    s->rcpts[s->n_rcpts++] = r;
    session_reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(struct session *s, const struct sl_smtp_cmd *cmd)
{
    if (s->state != SESSION_MAIL) {
        session_reply(s, "503 5.5.1 Error: need MAIL command");
        session_error(s);
        return;
    }
    if (s->n_rcpts == 0) {
        /* RFC 2033 4.2, RFC 5321 3.3 */
        session_reply(s, "503 5.5.1 Error: need RCPT command");
        session_error(s);
        return;
    }
    if (*cmd->arg) {
        session_reply(s, "501 5.5.4 Syntax: DATA");
        session_error(s);
        return;
    }
    sl_buf_init(&s->data);
    sl_smtp_parser_begin_data(s->parser, &s->data);
    s->state = SESSION_DATA;
    session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* NOOP, RSET, VRFY, EXPN, HELP: fine now and then, but past Postfix's
 * smtpd_junk_command_limit each one counts as an error, so a client cannot
 * keep a session alive for ever without sending mail. */
static void
session_junk(struct session *s)
{
    if (++s->junk_commands > SESSION_JUNK_COMMAND_LIMIT)
        session_error(s);
}

static void
session_dispatch(struct session *s, const struct sl_smtp_cmd *cmd)
{
    switch (cmd->verb) {
    case SL_CMD_LHLO:
    case SL_CMD_EHLO:
    case SL_CMD_HELO:
        cmd_hello(s, cmd);
        break;
    case SL_CMD_XFORWARD:
        cmd_xforward(s, cmd);
        break;
    case SL_CMD_MAIL:
        cmd_mail(s, cmd);
        break;
    case SL_CMD_RCPT:
        cmd_rcpt(s, cmd);
        break;
    case SL_CMD_DATA:
        cmd_data(s, cmd);
        break;
    case SL_CMD_DATA_END:
        session_submit(s);
        break;
    case SL_CMD_RSET:
        /* RFC 5321 4.1.1.5: no arguments */
        if (*cmd->arg) {
            session_reply(s, "501 5.5.4 Syntax: RSET");
            session_error(s);
            break;
        }
        session_reset_transaction(s);
        session_reply(s, "250 2.0.0 Ok");
        session_junk(s);
        break;
    case SL_CMD_NOOP:
        /* RFC 5321 4.1.1.9: an argument is allowed and ignored */
        session_reply(s, "250 2.0.0 Ok");
        session_junk(s);
        break;
    case SL_CMD_QUIT:
        session_reply(s, "221 2.0.0 %s sluice closing transmission channel", s->fe->hostname);
        session_close_after_reply(s);
        break;
    case SL_CMD_VRFY:
        /* RFC 5321 3.5.3: a server that cannot verify says 252; we take
         * mail for any recipient and let :10025 decide */
        if (*cmd->arg == '\0') {
            session_reply(s, "501 5.5.4 Syntax: VRFY address");
            session_error(s);
            break;
        }
        session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt "
                         "delivery");
        session_junk(s);
        break;
    case SL_CMD_EXPN:
        /* RFC 5321 3.5.2/7.3: optional, and we have no lists */
        session_reply(s, "502 5.5.1 Error: command not implemented");
        session_junk(s);
        break;
    case SL_CMD_HELP:
        session_reply(s, "214 2.0.0 sluice content filter: LHLO EHLO HELO XFORWARD MAIL RCPT "
                         "DATA RSET NOOP QUIT VRFY HELP; see RFC 2033 and RFC 5321");
        session_junk(s);
        break;
    case SL_CMD_BDAT:
    case SL_CMD_STARTTLS:
    case SL_CMD_AUTH:
    case SL_CMD_ETRN:
        /* recognised, never advertised (RFC 5321 4.2.4: 502) */
        session_reply(s, "502 5.5.1 Error: command not implemented");
        session_error(s);
        break;
    case SL_CMD_UNKNOWN:
    default:
        session_reply(s, "500 5.5.2 Error: command not recognized");
        session_error(s);
        break;
    }
}

/* RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP "can only
 * appear as the last command in a group"; LHLO is EHLO's LMTP twin (RFC
 * 2033 4.1), HELO learns nothing of PIPELINING, and after BDAT or STARTTLS
 * (neither offered) what follows is chunk data or a TLS handshake, not
 * commands. QUIT is left out: we close after it anyway and read nothing
 * more. */
static bool
verb_ends_group(enum sl_smtp_verb verb)
{
    switch (verb) {
    case SL_CMD_LHLO:
    case SL_CMD_EHLO:
    case SL_CMD_HELO:
    case SL_CMD_DATA:
    case SL_CMD_NOOP:
    case SL_CMD_VRFY:
    case SL_CMD_EXPN:
    case SL_CMD_BDAT:
    case SL_CMD_STARTTLS:
        return true;
    default:
        return false;
    }
}

/* Did the client send anything after the command just parsed? Asks the
 * parser, libevent's buffer and the socket itself. Called before the
 * command's reply is even queued, so a client that waits for replies, as
 * RFC 2920 requires after these commands, cannot have sent anything yet. */
static bool
session_input_pending(struct session *s)
{
    if (sl_smtp_parser_pending(s->parser) > 0 ||
        evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        return true;
    char c;
    return recv(bufferevent_getfd(s->bev), &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Commands pipelined where RFC 2920 forbids it. After DATA that is message
 * content sent before our 354, the classic way to make a server and a
 * filter disagree on where a message ends; after LHLO/EHLO it is a client
 * that did not wait for our extensions. Nothing more is read: the reply is
 * the one of Postfix >= 3.9 (smtpd_forbid_unauth_pipelining = yes) and the
 * connection closes, so no part of the unexpected input is ever acted on. */
static void
session_sync_error(struct session *s, const struct sl_smtp_cmd *cmd)
{
    char seen[SESSION_SYNC_LOG_MAX * 4 + 1];
    size_t n = 0;
    /* what the parser holds is what we show; escaped, for one log line */
    const char *pending = sl_smtp_parser_pending_data(s->parser);
    size_t len = sl_smtp_parser_pending(s->parser);
    for (size_t i = 0; i < len && i < SESSION_SYNC_LOG_MAX; i++) {
        unsigned char c = (unsigned char)pending[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            seen[n++] = (char)c;
        else
            n += (size_t)snprintf(seen + n, sizeof(seen) - n, "\\x%02x", c);
    }
    seen[n] = '\0';
    sl_warn("improper command pipelining after %s from [%s]:%u: %s", cmd->verb_text,
            s->peer_ip, s->peer_port, seen);
    session_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
    session_close_after_reply(s);
}

/* Runs parsed input until it is used up or the session must wait. */
static void
session_process(struct session *s)
{
    struct sl_smtp_cmd cmd;
    const char *error;
    int ret;

    while (s->state != SESSION_WAIT && s->state != SESSION_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SESSION_MAX_OUTPUT) {
            /* the client does not read its replies: neither do we read its
             * commands until it has (session_on_write resumes) */
            s->output_blocked = true;
            bufferevent_disable(s->bev, EV_READ);
            break;
        }
        enum sl_smtp_error kind;
        ret = sl_smtp_parser_next(s->parser, &cmd, &kind, &error);
        if (ret == 0)
            break;
        if (ret < 0) {
            /* the client's fault: answer as lib/mail's table says for this
             * kind of bad line, and go on with the next line */
            const struct sl_smtp_error_reply *r = sl_smtp_error_reply(kind);
            session_reply(s, "%d %s %s", r->code, r->enhanced, r->text);
            session_error(s);
            continue;
        }
        if (cmd.verb != SL_CMD_DATA_END && cmd.verb != SL_CMD_QUIT &&
            (verb_ends_group(cmd.verb) || !s->esmtp) && session_input_pending(s)) {
            session_sync_error(s, &cmd);
            break;
        }
        enum session_state before = s->state;
        session_dispatch(s, &cmd);
        if (s->state == SESSION_DATA && before != SESSION_DATA)
            session_start_data_deadline(s);
        else if (s->state == SESSION_INIT || s->state == SESSION_READY ||
                 s->state == SESSION_MAIL)
            session_arm_command_deadline(s);
    }
}

/* ----------------------------------------------------- libevent glue */

static void
session_on_read(struct bufferevent *bev, void *ctx)
{
    struct session *s = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (s->state == SESSION_WAIT &&
        sl_smtp_parser_pending(s->parser) > SESSION_MAX_PENDING_WHILE_WAITING) {
        /* A client that keeps talking while we hold its message gets no more
         * of our memory; it is read again once the message is answered. */
        bufferevent_disable(bev, EV_READ);
        return;
    }
    struct evbuffer_iovec vec[8];
    int n = evbuffer_peek(in, -1, NULL, vec, SL_N_ELEMENTS(vec));
    size_t total = 0;
    for (int i = 0; i < n && i < (int)SL_N_ELEMENTS(vec); i++) {
        sl_smtp_parser_feed(s->parser, vec[i].iov_base, vec[i].iov_len);
        total += vec[i].iov_len;
    }
    evbuffer_drain(in, total);
    if (s->state == SESSION_DATA && total > 0)
        session_extend_data_deadline(s, total);
    if (s->state != SESSION_WAIT)
        session_process(s);
}

static void
session_on_write(struct bufferevent *bev, void *ctx)
{
    struct session *s = ctx;
    if (s->state == SESSION_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        session_free(s);
        return;
    }
    if (s->output_blocked && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        /* the client caught up with its replies: on with its commands */
        s->output_blocked = false;
        if (s->state != SESSION_WAIT)
            bufferevent_enable(bev, EV_READ);
        session_on_read(bev, s);
    }
}

/* Idle (per read), command or DATA deadline passed: RFC 5321 4.5.3.2
 * timeouts end the session with 421; what was received of a message is
 * dropped, nothing is forwarded, the concurrency slot is freed. */
static void
session_timeout(struct session *s)
{
    if (s->state == SESSION_CLOSING) {
        /* even the last reply could not be written in time */
        session_free(s);
        return;
    }
    sl_info("timeout after %s from [%s]:%u%s", s->state == SESSION_DATA ? "DATA" : "command",
            s->peer_ip, s->peer_port,
            s->state == SESSION_DATA ? "; message dropped, not forwarded" : "");
    session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->fe->hostname);
    session_close_after_reply(s);
    /* if the 421 cannot be written either, the next firing drops the line */
    session_arm_command_deadline(s);
}

static void
session_on_io_timer(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd;
    (void)what;
    session_timeout(ctx);
}

static void
session_on_event(struct bufferevent *bev, short what, void *ctx)
{
    struct session *s = ctx;
    (void)bev;

    if (what & BEV_EVENT_TIMEOUT) {
        /* a write timeout means the peer does not read: drop it at once */
        if ((what & BEV_EVENT_WRITING) || s->state == SESSION_CLOSING) {
            sl_info("timeout writing to [%s]:%u; connection dropped", s->peer_ip, s->peer_port);
            session_free(s);
            return;
        }
        session_timeout(s);
        return;
    }
    /* EOF or error: the client is gone */
    if (s->state == SESSION_WAIT && s->fe->ledger != NULL && (s->job_registered || s->delivery)) {
        /* With the ledger the job runs on and its result is recorded, so
         * Postfix's retry gets the reply instead of a second copy. */
        sl_info("%s: client disconnected %s; finishing the job for the ledger", s->job_id,
                s->job_registered ? "while the message was scanned" : "during reinjection");
        s->orphan = true;
        bufferevent_free(s->bev);
        s->bev = NULL;
        evtimer_del(s->io_timer);
        return;
    }
    if (s->state == SESSION_WAIT) {
        if (s->job_registered)
            sl_info("%s: client disconnected while the message was scanned; abandoned "
                    "(Postfix keeps it and retries)", s->job_id);
        else if (s->reinject || s->delivery)
            sl_info("%s: client disconnected during reinjection", s->job_id);
    } else if (s->state == SESSION_DATA) {
        sl_info("lost connection after DATA from [%s]:%u; message dropped, not forwarded",
                s->peer_ip, s->peer_port);
    }
    session_free(s);
}

static void
session_free(struct session *s)
{
    struct frontend *fe = s->fe;
    session_ledger_stop(s);
    if (s->job_registered) {
        frontend_job_unregister(fe, s->job_id);
        s->job_registered = false;
    }
    if (s->reinject)
        fe_reinject_cancel(&s->reinject);
    if (s->delivery)
        fe_delivery_cancel(&s->delivery);
    if (s->deadline)
        event_free(s->deadline);
    event_free(s->io_timer);
    session_reset_transaction(s);
    if (s->bev != NULL)
        bufferevent_free(s->bev);
    sl_smtp_parser_destroy(&s->parser);
    free(s->rcpts);
    free(s->helo);
    if (s->prev)
        s->prev->next = s->next;
    else
        fe->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    fe->n_sessions--;
    free(s);
    frontend_session_gone(fe);
}

void
session_accept(struct frontend *fe, evutil_socket_t fd, const struct sockaddr *sa)
{
    char ip[64];
    unsigned port = 0;
    sl_sockaddr_ip(sa, ip, sizeof(ip), &port);

    if (!sl_cidr_list_match(&fe->config->frontend.acl, sa)) {
        /* amavisd-new's @inet_acl: outsiders are turned away at connect */
        static const char msg[] = "554 5.7.1 Access denied\r\n";
        sl_warn("connect from [%s]:%u refused: not in frontend.acl", ip, port);
        (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        evutil_closesocket(fd);
        return;
    }
    if (fe->shutting_down) {
        evutil_closesocket(fd);
        return;
    }

    /* replies are small and the client waits for each batch: no Nagle delay */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct session *s = sl_calloc(1, sizeof(*s));
    s->fe = fe;
    snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", ip);
    s->peer_port = port;
    s->origin = frontend_origin_for(fe, ip);
    struct sl_smtp_limits lim = {
        .max_command_line = SESSION_MAX_COMMAND_LINE,
        .max_message_size = fe->config->frontend.max_message_size,
    };
    s->parser = sl_smtp_parser_new(&lim);
    sl_buf_init(&s->data);
    s->bev = bufferevent_socket_new(fe->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->bev, session_on_read, session_on_write, session_on_event, s);
    s->io_timer = evtimer_new(fe->base, session_on_io_timer, s);
    SL_BUG_ON(s->bev == NULL || s->io_timer == NULL);
    session_set_idle_timeout(s, true);
    session_arm_command_deadline(s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);

    s->next = fe->sessions;
    if (fe->sessions)
        fe->sessions->prev = s;
    fe->sessions = s;
    fe->n_sessions++;

    sl_debug("connect from [%s]:%u (origin %s)", ip, port, s->origin->config->name);
    /* Never refuse the greeting, even over the origin's limit: Postfix would
     * take a refused greeting as a dead filter (REFERENCE.md section 1). */
    session_reply(s, "220 %s ESMTP sluice service ready", fe->hostname);
}

void
session_shutdown_all(struct frontend *fe)
{
    for (struct session *s = fe->sessions; s; s = s->next) {
        if (s->state == SESSION_WAIT || s->state == SESSION_CLOSING)
            continue;    /* a message in flight finishes; its session closes after */
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      fe->hostname);
        session_close_after_reply(s);
    }
}

void
session_destroy_all(struct frontend *fe)
{
    while (fe->sessions)
        session_free(fe->sessions);
}
