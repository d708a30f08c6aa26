/* reinject.c - the reinjector: an event-driven SMTP client that returns
 * approved mail to the origin Postfix's reinjection listener (see
 * reinject.h for the contract).
 *
 * Structure (one event loop, no threads):
 *
 *   fe_reinjector ─┬─ target (host:port) ─┬─ conns: every open connection (<= max_conns)
 *                  │                      ├─ idle: the pooled ones, most recently used first
 *                  │                      └─ queue: ops waiting for a connection (FIFO)
 *                  └─ ops: every op not yet handed back (for destroy)
 *
 * A connection goes CONNECTING -> GREETING -> EHLO (-> HELO) -> ready; ready
 * means it starts the transaction of the op bound to it or joins the idle
 * pool. A transaction is a list of commands (XFORWARD..., MAIL, RCPT...,
 * DATA): with PIPELINING all of them in one write, as Postfix's own SMTP
 * client sends them (RFC 2920 3.1: only DATA must end a group; a refused
 * XFORWARD fails the op, and the connection is closed before any body is
 * sent); without, one by one. After 354 the
 * message goes out in chunks (each chunk restarts the timeout); when it has
 * left our buffer, wanted() is asked and only then is the final "." sent.
 *
 * The no-loss rule, in code: a recipient's code is 2xx only in
 * txn_on_final_reply(), for a recipient whose RCPT got 2xx, after the
 * server answered the final "." with 2xx; op_finish() re-checks this.
 * Everything else that ends an op early is a 4xx (or the server's own
 * 4xx/5xx reply to that recipient's command).
 *
 * Results are never delivered from inside a call of ours: op_finish()
 * activates a per-op event, and the callback runs from the loop. The
 * process must ignore SIGPIPE (libevent writes with writev()).
 */
#include "reinject.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/util.h>

#include "bev_out.h"
#include "fe_metrics.h"
#include "mail/sl_smtp_parser.h" /* XFORWARD attribute names */
#include "mail/sl_smtp_reply.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define RJ_IDLE_TIMEOUT_S 60               /* Postfix smtpd's own idle timeout is 300 s */
#define RJ_XFORWARD_LINE_MAX 512           /* Postfix XFORWARD_README: incl. CRLF */
#define RJ_BODY_CHUNK ((size_t)256 * 1024) /* one write; each restarts the timeout */
#define RJ_PROBE_MS 2000                   /* a failing target is tried again this often */

enum conn_state {
    CONN_CONNECTING,
    CONN_GREETING,
    CONN_EHLO,
    CONN_HELO,
    CONN_IDLE, /* in the pool, no op */
    CONN_TXN,  /* XFORWARD/MAIL/RCPT/DATA replies expected */
    CONN_BODY, /* writing the message after 354 */
    CONN_DOT,  /* final "." sent, its reply expected */
    CONN_RSET, /* after a failed transaction, RSET's reply expected */
};

enum cmd_kind { CMD_XFORWARD, CMD_MAIL, CMD_RCPT, CMD_DATA };

struct rj_cmd {
    enum cmd_kind kind;
    size_t rcpt; /* CMD_RCPT: index in the request */
    char *line;  /* with CRLF */
};

enum rcpt_state {
    RCPT_PENDING,  /* no RCPT reply yet */
    RCPT_ACCEPTED, /* RCPT got 2xx, no final answer yet */
    RCPT_DONE,     /* result.rcpts[i] holds the final answer */
};

enum op_state { OP_NEW, OP_QUEUED, OP_ACTIVE, OP_FINISHED };

struct rj_target;
struct rj_conn;

struct fe_reinject_op {
    struct fe_reinjector *r;
    struct rj_target *t;
    enum op_state state;
    TAILQ_ENTRY(fe_reinject_op) all_entry;   /* r->ops */
    TAILQ_ENTRY(fe_reinject_op) queue_entry; /* t->queue while OP_QUEUED */
    struct rj_conn *conn;                    /* while OP_ACTIVE */

    /* the request, copied */
    char *job_id, *mail_from, *ret, *envid, *body_type;
    bool smtputf8;
    struct fe_reinject_rcpt *rcpts;
    size_t n_rcpts;
    char *xf[SL_XF_COUNT]; /* by enum sl_xforward_attr */
    struct sl_body *body;
    struct sl_header_edit *edits;
    size_t n_edits;

    fe_reinject_done_fn *done;
    fe_reinject_wanted_fn *wanted;
    void *ctx;
    struct event *done_ev;
    unsigned long long started_ms; /* for the metrics */

    bool retried;    /* the one retry on a fresh connection is used */
    bool need_fresh; /* the retry: do not take an idle connection */
    bool final_ok;   /* the server answered the final "." with 2xx */
    bool in_wanted, cancel_in_wanted;
    bool cancelled; /* wanted() said no */

    /* the transaction in progress */
    struct rj_cmd *cmds;
    size_t n_cmds, cmd_sent, cmd_replied;
    /* The message goes out as the edited, stuffed header section (wire)
     * and then the body stuffed from op->body a chunk at a time (chunk),
     * never as a second whole copy of the message. */
    struct sl_buf wire; /* the header section, edited and stuffed */
    size_t wire_dots;   /* the stuffing dots in it */
    size_t size;        /* the message's size as RFC 1870 counts it */
    size_t body_off;    /* where the body starts in op->body */
    bool wire_ready;
    size_t wire_off;
    size_t body_pos;    /* the next body byte to stuff */
    bool body_end;      /* the body's last chunk is written */
    struct sl_stuffer stuff;
    struct sl_buf chunk;
    enum rcpt_state *rstate;
    size_t n_accepted;

    char *mta;
    char *queued_as;
    const char *stage;
    struct fe_reinject_rcpt_result *res;
};

struct rj_conn {
    struct rj_target *t;
    TAILQ_ENTRY(rj_conn) entry;      /* t->conns */
    TAILQ_ENTRY(rj_conn) idle_entry; /* t->idle while CONN_IDLE */
    struct bufferevent *bev;
    struct event *timer;
    struct event *flush_ev; /* writes what conn_write() queued (conn_flush_cb) */
    bool flush_pending;
    struct event *read_ev; /* once connected: reads replies (conn_on_readable) */
    struct sl_smtp_reply_parser *parser;
    enum conn_state state;
    bool in_idle;      /* on t->idle */
    char *pending_err; /* a failure to report from the loop */
    struct fe_reinject_op *op;
    bool reused; /* the current transaction runs on a pooled connection */
    unsigned n_txn;

    /* EHLO extensions */
    bool pipelining, size, dsn, eightbitmime, smtputf8;
    unsigned xforward; /* bit per enum sl_xforward_attr */
};

struct rj_target {
    struct fe_reinjector *r;
    TAILQ_ENTRY(rj_target) entry;
    char *host; /* without [] */
    unsigned port;
    char *mta; /* "smtp:[host]:port" */
    unsigned max_conns;
    unsigned n_conns;
    TAILQ_HEAD(, rj_conn) conns;
    TAILQ_HEAD(, rj_conn) idle;
    TAILQ_HEAD(, fe_reinject_op) queue;
    char *failing; /* why its last connection failed before EHLO was answered; NULL: fine */
    unsigned long long probe_ms;
};

struct fe_reinjector {
    struct event_base *base;
    char *helo_name;
    unsigned timeout_s;
    TAILQ_HEAD(, rj_target) targets;
    TAILQ_HEAD(, fe_reinject_op) ops;
};

static void conn_close(struct rj_conn *c);
static void conn_free(struct rj_conn *c);
static int conn_fail(struct rj_conn *c, const char *reason, bool timeout);
static void target_dispatch(struct rj_target *t);
static int txn_send_more(struct rj_conn *c);

/* ---------------------------------------------------------------- helpers */

static char *
dup_or_null(const char *s)
{
    return s ? sl_strdup(s) : NULL;
}

/* No CR, LF or other control characters: these strings become command
 * lines, and a CRLF inside one would inject commands. They were parsed
 * from one LMTP line, so this should never trigger. */
static bool
envelope_ok(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool
xforward_value_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* A reply code to pass on for a failure: the server's 4xx/5xx, else 451. */
static int
fail_code(int code)
{
    return code >= 400 && code <= 599 ? code : 451;
}

static void
timer_arm(struct rj_conn *c, unsigned secs)
{
    struct timeval tv = {.tv_sec = secs, .tv_usec = 0};
    evtimer_add(c->timer, &tv);
}

/* Once connected, what is queued is written from the loop when the current
 * callback is done, straight to the socket (conn_flush_cb, bev_out.h). */
static void
conn_write(struct rj_conn *c, const char *s, size_t len)
{
    if (bufferevent_write(c->bev, s, len) != 0)
        sl_error("reinject: %s: bufferevent_write failed", c->t->mta); /* out of memory */
    if (!c->flush_pending && !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
        c->flush_pending = true;
        event_active(c->flush_ev, EV_WRITE, 0);
    }
}

/* ---------------------------------------------------------------- ops */

static void
op_txn_clear(struct fe_reinject_op *op)
{
    for (size_t i = 0; i < op->n_cmds; i++)
        free(op->cmds[i].line);
    sl_free_and_clear(&op->cmds);
    op->n_cmds = op->cmd_sent = op->cmd_replied = 0;
    /* a retry sends the message again from its first byte */
    op->wire_off = 0;
    op->body_pos = op->body_off;
    op->body_end = false;
    sl_stuffer_init(&op->stuff);
    sl_buf_free(&op->chunk);
}

static void
op_free(struct fe_reinject_op *op)
{
    if (!op)
        return;
    op_txn_clear(op);
    if (op->done_ev)
        event_free(op->done_ev);
    free(op->job_id);
    free(op->mail_from);
    free(op->ret);
    free(op->envid);
    free(op->body_type);
    for (size_t i = 0; i < op->n_rcpts; i++) {
        free((char *)op->rcpts[i].address);
        free((char *)op->rcpts[i].notify);
        free((char *)op->rcpts[i].orcpt);
        if (op->res)
            free(op->res[i].reply);
    }
    free(op->rcpts);
    free(op->res);
    free(op->rstate);
    for (int i = 0; i < SL_XF_COUNT; i++)
        free(op->xf[i]);
    sl_body_unref(&op->body);
    for (size_t i = 0; i < op->n_edits; i++) {
        free((char *)op->edits[i].name);
        free((char *)op->edits[i].value);
    }
    free(op->edits);
    sl_buf_free(&op->wire);
    sl_buf_free(&op->chunk);
    free(op->mta);
    free(op->queued_as);
    free(op);
}

static void
rcpt_set(struct fe_reinject_op *op, size_t i, int code, const char *reply, bool from_mta)
{
    free(op->res[i].reply);
    op->res[i].code = code;
    op->res[i].reply = sl_strdup(reply);
    op->res[i].from_mta = from_mta;
    op->rstate[i] = RCPT_DONE;
}

static void
op_set_stage(struct fe_reinject_op *op, const char *stage)
{
    if (!op->stage)
        op->stage = stage;
}

/* Every recipient without a final answer gets code + text. */
static void
op_fail_unanswered(struct fe_reinject_op *op, int code, const char *stage, const char *text,
                   bool from_mta)
{
    SL_BUG_ON(code < 400 || code > 599);
    op_set_stage(op, stage);
    for (size_t i = 0; i < op->n_rcpts; i++)
        if (op->rstate[i] != RCPT_DONE)
            rcpt_set(op, i, code, text, from_mta);
}

static void
op_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fe_reinject_op *op = arg;
    struct fe_reinject_result result;

    SL_BUG_ON(op->state != OP_FINISHED);
    /* detach first: done() may destroy the reinjector */
    TAILQ_REMOVE(&op->r->ops, op, all_entry);
    result = (struct fe_reinject_result){
        .mta = op->mta,
        .stage = op->stage,
        .queued_as = op->queued_as,
        .rcpts = op->res,
        .n_rcpts = op->n_rcpts,
        .cancelled = op->cancelled,
    };
    op->done(op->ctx, &result);
    op_free(op);
}

/* Ends an op (it leaves its connection and queue) and schedules done(). */
static void
op_finish(struct fe_reinject_op *op)
{
    size_t n_ok = 0, n_5xx = 0, first_bad = 0;

    SL_BUG_ON(op->state == OP_FINISHED);
    if (op->state == OP_QUEUED)
        TAILQ_REMOVE(&op->t->queue, op, queue_entry);
    if (op->conn)
        op->conn->op = NULL;
    op->conn = NULL;
    op->state = OP_FINISHED;
    op_txn_clear(op);
    sl_buf_free(&op->wire);
    op->wire_ready = false;
    for (size_t i = 0; i < op->n_rcpts; i++) {
        if (op->rstate[i] != RCPT_DONE) { /* cannot happen; never leave one unanswered */
            sl_error("%s: reinject: internal error: recipient <%s> without an answer", op->job_id,
                     op->rcpts[i].address);
            rcpt_set(op, i, 451, "internal error in the reinjector", false);
        }
        if (op->res[i].code / 100 == 2) {
            if (!op->final_ok) { /* the no-loss rule, checked once more */
                sl_error("%s: reinject: internal error: 2xx for <%s> without the server's 2xx",
                         op->job_id, op->rcpts[i].address);
                rcpt_set(op, i, 451, "internal error in the reinjector", false);
            } else
                n_ok++;
        }
        if (op->res[i].code / 100 != 2 && op->res[first_bad].code / 100 == 2)
            first_bad = i;
        n_5xx += op->res[i].code / 100 == 5;
    }
    fe_metrics_reinjection(n_ok, n_5xx, op->n_rcpts, op->stage, op->cancelled, op->started_ms);
    if (op->n_rcpts == 0)
        sl_error("%s: reinject: request without recipients", op->job_id);
    else if (n_ok == op->n_rcpts)
        sl_debug("%s: reinjected to %s, %zu recipient(s), queued_as: %s", op->job_id, op->mta,
                op->n_rcpts, op->queued_as ? op->queued_as : "-");
    else
        sl_notice(
            "%s: reinjection to %s: %zu of %zu recipient(s) accepted%s%s, first failure: %d %s",
            op->job_id, op->mta, n_ok, op->n_rcpts, op->stage ? " at " : "",
            op->stage ? op->stage : "", op->res[first_bad].code, op->res[first_bad].reply);
    event_active(op->done_ev, 0, 0);
}

/* ---------------------------------------------------------------- targets */

static struct rj_target *
target_get(struct fe_reinjector *r, const char *host, unsigned port)
{
    struct rj_target *t;
    size_t hlen = strlen(host);

    /* accept "[addr]" as well */
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    TAILQ_FOREACH(t, &r->targets, entry)
    if (t->port == port && strlen(t->host) == hlen && strncasecmp(t->host, host, hlen) == 0)
        return t;
    t = sl_calloc(1, sizeof(*t));
    t->r = r;
    t->host = sl_strndup(host, hlen);
    t->port = port;
    t->mta = sl_asprintf("smtp:[%s]:%u", t->host, port);
    t->max_conns = 1;
    TAILQ_INIT(&t->conns);
    TAILQ_INIT(&t->idle);
    TAILQ_INIT(&t->queue);
    TAILQ_INSERT_TAIL(&r->targets, t, entry);
    return t;
}

/* The readiness of t (fe_reinjector_ready): set by every connection that
 * fails before it is ready, cleared by every one that becomes ready. */
static void
target_failing(struct rj_target *t, const char *why)
{
    free(t->failing);
    t->failing = why != NULL ? sl_strdup(why) : NULL;
}

static void
target_free(struct rj_target *t)
{
    struct rj_conn *c;
    struct fe_reinject_op *op;

    while ((c = TAILQ_FIRST(&t->conns)) != NULL)
        conn_free(c);
    while ((op = TAILQ_FIRST(&t->queue)) != NULL)
        TAILQ_REMOVE(&t->queue, op, queue_entry); /* freed through r->ops */
    free(t->failing);
    free(t->host);
    free(t->mta);
    free(t);
}

/* ---------------------------------------------------------------- transaction */

static const char *
conn_stage(const struct rj_conn *c)
{
    const struct fe_reinject_op *op = c->op;

    switch (c->state) {
    case CONN_CONNECTING:
    case CONN_GREETING:
    case CONN_EHLO:
    case CONN_HELO:
        return "fwd-connect";
    case CONN_TXN:
        if (!op || op->cmd_replied >= op->n_cmds)
            return "fwd-data-cmd";
        switch (op->cmds[op->cmd_replied].kind) {
        case CMD_XFORWARD:
            return "fwd-xforward";
        case CMD_MAIL:
            return "fwd-mail-from";
        case CMD_RCPT:
            return "fwd-rcpt-to";
        case CMD_DATA:
            return "fwd-data-cmd";
        }
        return "fwd-data-cmd";
    case CONN_BODY:
        return "fwd-data-contents";
    case CONN_DOT:
        return "fwd-end-data";
    case CONN_IDLE:
    case CONN_RSET:
        break;
    }
    return "fwd-connect";
}

/* What we were doing, for failure texts (Postfix's wording). */
static const char *
conn_doing(const struct rj_conn *c)
{
    const char *stage = conn_stage(c);

    if (c->state == CONN_CONNECTING)
        return "connecting";
    if (c->state == CONN_GREETING)
        return "receiving the initial server greeting";
    if (c->state == CONN_EHLO)
        return "sending EHLO";
    if (c->state == CONN_HELO)
        return "sending HELO";
    if (c->state == CONN_RSET)
        return "sending RSET";
    if (c->state == CONN_IDLE)
        return "idle";
    if (strcmp(stage, "fwd-xforward") == 0)
        return "sending XFORWARD";
    if (strcmp(stage, "fwd-mail-from") == 0)
        return "sending MAIL FROM";
    if (strcmp(stage, "fwd-rcpt-to") == 0)
        return "sending RCPT TO";
    if (strcmp(stage, "fwd-data-cmd") == 0)
        return "sending DATA";
    if (strcmp(stage, "fwd-data-contents") == 0)
        return "sending message body";
    return "sending end of data -- message may be sent more than once";
}

static void
cmds_add(struct fe_reinject_op *op, size_t *cap, enum cmd_kind kind, size_t rcpt, char *line)
{
    if (op->n_cmds == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        op->cmds = sl_realloc(op->cmds, *cap * sizeof(*op->cmds));
    }
    op->cmds[op->n_cmds++] = (struct rj_cmd){.kind = kind, .rcpt = rcpt, .line = line};
}

/* XFORWARD with the attributes the server listed, in lines of at most 512
 * bytes. Postfix forgets them after each transaction, so every one gets them. */
static void
txn_build_xforward(struct rj_conn *c, struct fe_reinject_op *op, size_t *cap)
{
    struct sl_buf line;
    bool have = false;

    if (!c->xforward)
        return;
    sl_buf_init(&line);
    sl_buf_append_str(&line, "XFORWARD");
    for (int i = 0; i < SL_XF_COUNT; i++) {
        const char *name = sl_xforward_attr_names[i];
        size_t add;

        if (!(c->xforward & (1u << i)) || !op->xf[i])
            continue;
        if (!xforward_value_ok(op->xf[i])) {
            sl_warn("%s: reinject: XFORWARD %s value not sent: contains spaces or controls",
                    op->job_id, name);
            continue;
        }
        add = 1 + strlen(name) + 1 + strlen(op->xf[i]);
        if (strlen("XFORWARD") + add + 2 > RJ_XFORWARD_LINE_MAX) {
            sl_warn("%s: reinject: XFORWARD %s value too long, not sent", op->job_id, name);
            continue;
        }
        if (line.len + add + 2 > RJ_XFORWARD_LINE_MAX) {
            sl_buf_append_str(&line, "\r\n");
            cmds_add(op, cap, CMD_XFORWARD, 0, sl_buf_steal(&line, NULL));
            sl_buf_append_str(&line, "XFORWARD");
        }
        sl_buf_printf(&line, " %s=%s", name, op->xf[i]);
        have = true;
    }
    if (have && line.len > strlen("XFORWARD")) {
        sl_buf_append_str(&line, "\r\n");
        cmds_add(op, cap, CMD_XFORWARD, 0, sl_buf_steal(&line, NULL));
    }
    sl_buf_free(&line);
}

static void
txn_build(struct rj_conn *c, struct fe_reinject_op *op)
{
    struct sl_buf line;
    size_t cap = 0;

    if (!op->wire_ready) {
        struct sl_stuffer count;
        sl_buf_init(&op->wire);
        op->wire_dots = sl_message_write_head(op->body->data, op->body->len, op->edits,
                                              op->n_edits, &op->wire, &op->body_off);
        /* SIZE= before the body is stuffed: a pass that only counts */
        sl_stuffer_init(&count);
        if (op->body_off < op->body->len)
            sl_stuffer_feed(&count, op->body->data + op->body_off,
                            op->body->len - op->body_off, NULL);
        sl_stuffer_finish(&count, NULL);
        op->size = op->wire.len - op->wire_dots + count.out_len - count.dots;
        op->wire_ready = true;
    }
    op_txn_clear(op);
    txn_build_xforward(c, op, &cap);

    sl_buf_init(&line);
    sl_buf_printf(&line, "MAIL FROM:<%s>", op->mail_from);
    if (c->size) /* RFC 1870 4: without the stuffing dots */
        sl_buf_printf(&line, " SIZE=%zu", op->size);
    if (op->body_type && c->eightbitmime)
        sl_buf_printf(&line, " BODY=%s", op->body_type);
    if (op->ret && c->dsn)
        sl_buf_printf(&line, " RET=%s", op->ret);
    if (op->envid && c->dsn)
        sl_buf_printf(&line, " ENVID=%s", op->envid);
    if (op->smtputf8 && c->smtputf8)
        sl_buf_append_str(&line, " SMTPUTF8");
    sl_buf_append_str(&line, "\r\n");
    cmds_add(op, &cap, CMD_MAIL, 0, sl_buf_steal(&line, NULL));

    for (size_t i = 0; i < op->n_rcpts; i++) {
        sl_buf_printf(&line, "RCPT TO:<%s>", op->rcpts[i].address);
        if (op->rcpts[i].notify && c->dsn)
            sl_buf_printf(&line, " NOTIFY=%s", op->rcpts[i].notify);
        if (op->rcpts[i].orcpt && c->dsn)
            sl_buf_printf(&line, " ORCPT=%s", op->rcpts[i].orcpt);
        sl_buf_append_str(&line, "\r\n");
        cmds_add(op, &cap, CMD_RCPT, i, sl_buf_steal(&line, NULL));
    }
    cmds_add(op, &cap, CMD_DATA, 0, sl_strdup("DATA\r\n"));
    sl_buf_free(&line);
}

/* Starts op's transaction on a ready connection. */
static void
conn_start_txn(struct rj_conn *c, struct fe_reinject_op *op, bool reused)
{
    c->op = op;
    op->conn = c;
    op->state = OP_ACTIVE;
    c->reused = reused;
    c->state = CONN_TXN;
    c->n_txn++;
    for (size_t i = 0; i < op->n_rcpts; i++)
        SL_BUG_ON(op->rstate[i] != RCPT_PENDING);
    txn_build(c, op);
    sl_debug("%s: reinject: transaction %u on %s connection to %s", op->job_id, c->n_txn,
             reused ? "a pooled" : "a new", c->t->mta);
    (void)txn_send_more(c); /* only writes: cannot close c */
}

/* Sends the next group of commands if nothing is outstanding. Returns -1
 * if c was closed (op finished: nothing to send and no recipient left). */
static int
txn_send_more(struct rj_conn *c)
{
    struct fe_reinject_op *op = c->op;
    struct sl_buf out;

    if (op->cmd_sent != op->cmd_replied || op->cmd_sent == op->n_cmds)
        return 0;
    if (!c->pipelining && op->cmds[op->cmd_sent].kind == CMD_DATA && op->n_accepted == 0) {
        /* every RCPT refused: all recipients have their answer */
        op_finish(op);
        c->state = CONN_RSET;
        conn_write(c, "RSET\r\n", 6);
        timer_arm(c, c->t->r->timeout_s);
        return 0;
    }
    sl_buf_init(&out);
    do {
        sl_buf_append_str(&out, op->cmds[op->cmd_sent].line);
        op->cmd_sent++;
    } while (c->pipelining && op->cmd_sent < op->n_cmds);
    conn_write(c, out.data, out.len);
    sl_buf_free(&out);
    timer_arm(c, c->t->r->timeout_s);
    return 0;
}

/* The transaction failed before "." with replies possibly outstanding:
 * RSET if the dialogue is in step, else close. Returns -1 if c was closed. */
static int
txn_abort_conn(struct rj_conn *c, bool outstanding)
{
    if (outstanding) {
        conn_close(c);
        return -1;
    }
    c->state = CONN_RSET;
    conn_write(c, "RSET\r\n", 6);
    timer_arm(c, c->t->r->timeout_s);
    return 0;
}

static int body_done(struct rj_conn *c);

static size_t
min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Writes the next pieces of the message: the header section, then the
 * body stuffed as it goes, until the output buffer holds RJ_BODY_CHUNK
 * bytes; the rest once that has left it (conn_write_cb), so what is held
 * besides op->body stays about a chunk. After the last piece, body_done():
 * a message under a chunk goes out with its "." in one write, where a
 * write each for header, body and "." cost two more system calls and two
 * more deliveries on the connection. Returns -1 if c was closed. */
static int
body_write_more(struct rj_conn *c)
{
    struct fe_reinject_op *op = c->op;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t room;

    while ((room = RJ_BODY_CHUNK - min_size(evbuffer_get_length(out), RJ_BODY_CHUNK)) > 0) {
        size_t n = op->wire.len - op->wire_off;

        if (n > 0) {
            n = min_size(n, room);
            conn_write(c, op->wire.data + op->wire_off, n);
            op->wire_off += n;
            continue;
        }
        if (op->body_end)
            return body_done(c);
        n = min_size(op->body->len - op->body_pos, room);
        sl_buf_reset(&op->chunk);
        if (n > 0)
            sl_stuffer_feed(&op->stuff, op->body->data + op->body_pos, n, &op->chunk);
        op->body_pos += n;
        if (op->body_pos == op->body->len) {
            sl_stuffer_finish(&op->stuff, &op->chunk);
            op->body_end = true;
        }
        if (op->chunk.len > 0)
            conn_write(c, op->chunk.data, op->chunk.len);
    }
    timer_arm(c, c->t->r->timeout_s);
    return 0;
}

/* The body is written or on its way: ask whether it is still wanted, then
 * "." (without it, what was sent delivers nothing). */
static int
body_done(struct rj_conn *c)
{
    struct fe_reinject_op *op = c->op;
    bool wanted = true;

    if (op->wanted) {
        op->in_wanted = true;
        wanted = op->wanted(op->ctx);
        op->in_wanted = false;
    }
    if (op->cancel_in_wanted) { /* fe_reinject_cancel() from inside wanted() */
        c->op = NULL;
        TAILQ_REMOVE(&op->r->ops, op, all_entry);
        op_free(op);
        conn_close(c);
        return -1;
    }
    if (!wanted) {
        sl_notice("%s: reinject: no longer wanted, transaction to %s aborted before end of data",
                  op->job_id, c->t->mta);
        /* the result says cancelled; every recipient gets a 4xx */
        for (size_t i = 0; i < op->n_rcpts; i++)
            rcpt_set(op, i, 451, "transaction cancelled before end of data, nothing delivered",
                     false);
        op->cancelled = true;
        op_set_stage(op, "fwd-data-contents");
        op_finish(op);
        conn_close(c); /* an unterminated DATA delivers nothing */
        return -1;
    }
    sl_buf_free(&op->wire);
    sl_buf_free(&op->chunk);
    op->wire_ready = false;
    c->state = CONN_DOT;
    conn_write(c, ".\r\n", 3);
    timer_arm(c, c->t->r->timeout_s);
    return 0;
}

static char *
parse_queued_as(const char *line)
{
    const char *p = strcasestr(line, "queued as ");
    size_t n;

    if (!p)
        return NULL;
    p += strlen("queued as ");
    n = strcspn(p, " \t\r\n");
    return n ? sl_strndup(p, n) : NULL;
}

/* The reply to ".": the only place where recipients get a 2xx. */
static int
txn_on_final_reply(struct rj_conn *c, const struct sl_smtp_reply *reply, const char *line)
{
    struct fe_reinject_op *op = c->op;

    if (reply->code / 100 == 2) {
        op->final_ok = true;
        free(op->queued_as);
        op->queued_as = parse_queued_as(line);
        for (size_t i = 0; i < op->n_rcpts; i++)
            if (op->rstate[i] == RCPT_ACCEPTED)
                rcpt_set(op, i, 250, line, true);
        op_finish(op);
    } else {
        op_fail_unanswered(op, fail_code(reply->code), "fwd-end-data", line, true);
        op_finish(op);
        if (reply->code == 421 || reply->code / 100 < 4) {
            conn_close(c);
            return -1;
        }
    }
    /* the transaction is over either way: the connection is ready again */
    c->state = CONN_IDLE;
    return 1;
}

/* One reply while CONN_TXN. Returns -1 if c was closed, 1 if it went idle. */
static int
txn_on_reply(struct rj_conn *c, const struct sl_smtp_reply *reply, const char *line)
{
    struct fe_reinject_op *op = c->op;
    const char *stage = conn_stage(c);
    const struct rj_cmd *cmd;
    bool outstanding;

    if (op->cmd_replied >= op->cmd_sent) {
        op_fail_unanswered(op, 451, stage, "unexpected reply from the server", false);
        op_finish(op);
        conn_close(c);
        return -1;
    }
    cmd = &op->cmds[op->cmd_replied++];
    outstanding = op->cmd_replied < op->cmd_sent;

    if (reply->code == 421) { /* the server is going away */
        op_fail_unanswered(op, 421, stage, line, true);
        op_finish(op);
        conn_close(c);
        return -1;
    }
    switch (cmd->kind) {
    case CMD_XFORWARD:
        if (reply->code / 100 != 2) {
            /* our own relay refuses the attributes: a configuration error,
             * never a reason to bounce mail */
            op_fail_unanswered(op, reply->code / 100 == 4 ? reply->code : 451, "fwd-xforward", line,
                               true);
            op_finish(op);
            return txn_abort_conn(c, outstanding);
        }
        break;
    case CMD_MAIL:
        if (reply->code / 100 != 2) {
            op_fail_unanswered(op, fail_code(reply->code), "fwd-mail-from", line, true);
            op_finish(op);
            return txn_abort_conn(c, outstanding);
        }
        break;
    case CMD_RCPT:
        if (reply->code / 100 == 2) {
            op->rstate[cmd->rcpt] = RCPT_ACCEPTED;
            op->n_accepted++;
        } else {
            op_set_stage(op, "fwd-rcpt-to");
            rcpt_set(op, cmd->rcpt, fail_code(reply->code), line, true);
        }
        break;
    case CMD_DATA:
        if (reply->code == 354) {
            if (op->n_accepted == 0) {
                /* a 354 with no recipient: never send the message */
                op_finish(op);
                conn_close(c);
                return -1;
            }
            c->state = CONN_BODY;
            return body_write_more(c);
        }
        if (op->n_accepted > 0)
            op_fail_unanswered(op, fail_code(reply->code), "fwd-data-cmd", line, true);
        op_finish(op);
        if (reply->code / 100 < 4) { /* 2xx to DATA: out of step */
            conn_close(c);
            return -1;
        }
        return txn_abort_conn(c, outstanding);
    }
    return txn_send_more(c);
}

/* ---------------------------------------------------------------- connection setup */

static void
conn_parse_ehlo(struct rj_conn *c, const struct sl_smtp_reply *reply)
{
    c->pipelining = c->size = c->dsn = c->eightbitmime = c->smtputf8 = false;
    c->xforward = 0;
    for (size_t i = 1; i < reply->n_lines; i++) {
        char *copy = sl_strdup(reply->lines[i]);
        char *save = NULL;
        const char *kw = strtok_r(copy, " ", &save);

        if (!kw) {
            free(copy);
            continue;
        }
        if (strcasecmp(kw, "PIPELINING") == 0)
            c->pipelining = true;
        else if (strcasecmp(kw, "SIZE") == 0)
            c->size = true;
        else if (strcasecmp(kw, "DSN") == 0)
            c->dsn = true;
        else if (strcasecmp(kw, "8BITMIME") == 0)
            c->eightbitmime = true;
        else if (strcasecmp(kw, "SMTPUTF8") == 0)
            c->smtputf8 = true;
        else if (strcasecmp(kw, "XFORWARD") == 0) {
            const char *attr;

            while ((attr = strtok_r(NULL, " ", &save)) != NULL) {
                int a = sl_xforward_attr_lookup(attr);
                if (a >= 0)
                    c->xforward |= 1u << a;
            }
        }
        free(copy);
    }
}

static void
conn_send_hello(struct rj_conn *c, const char *verb)
{
    char *line = sl_asprintf("%s %s\r\n", verb, c->t->r->helo_name);

    conn_write(c, line, strlen(line));
    free(line);
    timer_arm(c, c->t->r->timeout_s);
}

static bool
has_8bit(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* RFC 6531 3.4: a message whose envelope needs SMTPUTF8 must not go to a
 * server that does not offer it. That server is the origin's own :10025,
 * so this is a configuration matter (smtputf8_enable = no there, yes on the
 * listener that took the mail): 451, never a bounce, and the mail waits in
 * Postfix's queue until it is fixed. A request with SMTPUTF8 but an ASCII
 * envelope goes out without the parameter, as Postfix's smtp client does.
 * Returns false when op was finished here. */
static bool
op_smtputf8_ok(struct rj_conn *c, struct fe_reinject_op *op)
{
    bool needed = has_8bit(op->mail_from);
    for (size_t i = 0; i < op->n_rcpts && !needed; i++)
        needed = has_8bit(op->rcpts[i].address);
    if (!op->smtputf8 || c->smtputf8 || !needed)
        return true;
    char *text = sl_asprintf("SMTPUTF8 is required, but was not offered by %s", c->t->mta);
    sl_warn("%s: reinject: %s", op->job_id, text);
    op_fail_unanswered(op, 451, "fwd-mail-from", text, false);
    free(text);
    op_finish(op);
    return false;
}

/* Greeting and EHLO done: run the bound op, or the next queued one, or idle. */
static int
conn_ready(struct rj_conn *c)
{
    target_failing(c->t, NULL);
    sl_debug("reinject: connected to %s:%s%s%s%s%s%s", c->t->mta,
             c->pipelining ? " PIPELINING" : "", c->size ? " SIZE" : "", c->dsn ? " DSN" : "",
             c->eightbitmime ? " 8BITMIME" : "", c->smtputf8 ? " SMTPUTF8" : "",
             c->xforward ? " XFORWARD" : "");
    if (c->op && !op_smtputf8_ok(c, c->op)) {
        c->state = CONN_IDLE;   /* op_finish() detached it; the caller pools c */
        return 1;
    }
    if (c->op) {
        conn_start_txn(c, c->op, false);
        return 0;
    }
    c->state = CONN_IDLE;
    return 1;
}

/* Failure before the connection is ready: the bound op (if any) gets the
 * server's code as a 4xx; returns -1 (c closed). */
static int
conn_setup_failed(struct rj_conn *c, const struct sl_smtp_reply *reply, const char *line)
{
    struct fe_reinject_op *op = c->op;
    char *text = sl_asprintf("%s rejected %s: %s", c->t->mta, conn_doing(c), line);

    sl_warn("reinject: %s", text);
    target_failing(c->t, line);
    if (op) {
        op_fail_unanswered(op, reply->code / 100 == 4 ? reply->code : 451, "fwd-connect", line,
                           true);
        op_finish(op);
    }
    free(text);
    conn_close(c);
    return -1;
}

/* Returns -1 if c was closed, 1 if it became idle (caller dispatches), else 0. */
static int
conn_on_reply(struct rj_conn *c, const struct sl_smtp_reply *reply)
{
    char *line = sl_smtp_reply_first_line(reply);
    int ret = 0;

    switch (c->state) {
    case CONN_CONNECTING:
    case CONN_GREETING:
        if (reply->code / 100 != 2)
            ret = conn_setup_failed(c, reply, line);
        else {
            c->state = CONN_EHLO;
            conn_send_hello(c, "EHLO");
        }
        break;
    case CONN_EHLO:
        if (reply->code / 100 == 2) {
            conn_parse_ehlo(c, reply);
            ret = conn_ready(c);
        } else if (reply->code == 421)
            ret = conn_setup_failed(c, reply, line);
        else {
            c->state = CONN_HELO;
            conn_send_hello(c, "HELO");
        }
        break;
    case CONN_HELO:
        if (reply->code / 100 == 2)
            ret = conn_ready(c);
        else
            ret = conn_setup_failed(c, reply, line);
        break;
    case CONN_IDLE:
        /* typically "421 ... timeout exceeded" before the server closes */
        sl_info("reinject: %s said while idle: %s", c->t->mta, line);
        conn_close(c);
        ret = -1;
        break;
    case CONN_RSET:
        if (reply->code / 100 == 2) {
            c->state = CONN_IDLE;
            ret = 1;
        } else {
            conn_close(c);
            ret = -1;
        }
        break;
    case CONN_TXN:
        if (reply->code == 421 && c->reused && c->op->cmd_replied == 0 && !c->op->retried) {
            /* the server's idle-timeout notice, not an answer to us */
            free(line);
            return conn_fail(c, "server closed the pooled connection", false);
        }
        ret = txn_on_reply(c, reply, line);
        break;
    case CONN_BODY:
        /* a reply before "." (e.g. smtp-sink -A): the server gave up */
        op_fail_unanswered(c->op, fail_code(reply->code), "fwd-data-contents", line, true);
        op_finish(c->op);
        conn_close(c);
        ret = -1;
        break;
    case CONN_DOT:
        ret = txn_on_final_reply(c, reply, line);
        break;
    }
    free(line);
    return ret;
}

/* ---------------------------------------------------------------- connection events */

static void
idle_remove(struct rj_conn *c)
{
    if (c->in_idle)
        TAILQ_REMOVE(&c->t->idle, c, idle_entry);
    c->in_idle = false;
}

/* Most recently used first: the others age out after RJ_IDLE_TIMEOUT_S. */
static void
conn_go_idle(struct rj_conn *c)
{
    SL_BUG_ON(c->op != NULL || c->in_idle);
    c->state = CONN_IDLE;
    c->reused = false;
    c->in_idle = true;
    TAILQ_INSERT_HEAD(&c->t->idle, c, idle_entry);
    timer_arm(c, RJ_IDLE_TIMEOUT_S);
}

/* Acts on the replies the parser holds. */
static void
conn_take_replies(struct rj_conn *c)
{
    struct rj_target *t = c->t;
    struct sl_smtp_reply reply;
    const char *error;
    int ret;

    for (;;) {
        ret = sl_smtp_reply_parser_next(c->parser, &reply, &error);
        if (ret == 0)
            return;
        if (ret < 0) {
            char *text = sl_asprintf("unparseable reply (%s)", error);

            (void)conn_fail(c, text, false);
            free(text);
            return;
        }
        idle_remove(c);
        timer_arm(c, t->r->timeout_s); /* each reply restarts the command timeout */
        ret = conn_on_reply(c, &reply);
        sl_smtp_reply_free(&reply);
        if (ret < 0)
            return;
        if (ret == 1)
            break;
    }
    /* ready for the next transaction; a further reply now would be out of step */
    ret = sl_smtp_reply_parser_next(c->parser, &reply, &error);
    if (ret != 0) {
        if (ret == 1)
            sl_smtp_reply_free(&reply);
        sl_warn("reinject: %s: reply out of step, closing the connection", t->mta);
        conn_close(c);
        return;
    }
    conn_go_idle(c);
    target_dispatch(t); /* may hand c a new op */
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* Until connected, the bufferevent reads (its connect needs it). */
static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct rj_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[4096];
    int n;

    while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0)
        sl_smtp_reply_parser_feed(c->parser, buf, (size_t)n);
    conn_take_replies(c);
}

/* Once connected, replies go from recv(2) straight into the parser: the
 * bufferevent would ask the kernel how much is waiting (ioctl FIONREAD)
 * before every read and stage it in an evbuffer. */
static void
conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct rj_conn *c = arg;
    char buf[4096];
    size_t got = 0;
    ssize_t n;

    (void)what;
    do {
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            sl_smtp_reply_parser_feed(c->parser, buf, (size_t)n);
            got += (size_t)n;
        }
    } while (n == (ssize_t)sizeof(buf));
    if (got > 0) {
        conn_take_replies(c); /* EOF or an error after them: the next turn's */
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    conn_event_cb(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct rj_conn *c = arg;

    if (c->state != CONN_CONNECTING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE); /* written: back to conn_flush_cb */
    if (c->state != CONN_BODY)
        return;
    (void)body_write_more(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct rj_conn *c = arg;
    char *text;

    if (what & BEV_EVENT_CONNECTED) {
        /* commands and replies are small and strictly alternating: Nagle
         * plus delayed ACKs would add ~40 ms per message */
        int one = 1;
        (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        bufferevent_disable(bev, EV_READ | EV_WRITE); /* conn_write(), conn_on_readable() */
        c->read_ev = event_new(c->t->r->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                               conn_on_readable, c);
        SL_BUG_ON(c->read_ev == NULL);
        event_add(c->read_ev, NULL);
        c->state = CONN_GREETING;
        timer_arm(c, c->t->r->timeout_s);
        return;
    }
    if (c->state == CONN_CONNECTING)
        text = sl_strdup(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else if (what & BEV_EVENT_EOF)
        text = sl_strdup("lost connection");
    else
        text = sl_asprintf("lost connection (%s)",
                           evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    (void)conn_fail(c, text, false);
    free(text);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rj_conn *c = arg;

    (void)fd;
    (void)what;
    c->flush_pending = false;
    /* not all written: the bufferevent writes the rest (conn_write_cb) or
     * reports the error (conn_event_cb) */
    if (fe_bev_write_out(c->bev))
        conn_write_cb(c->bev, c);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rj_conn *c = arg;

    if (c->pending_err) {
        char *text = c->pending_err;

        c->pending_err = NULL;
        (void)conn_fail(c, text, false);
        free(text);
        return;
    }
    if (c->state == CONN_IDLE) {
        sl_debug("reinject: closing idle connection to %s", c->t->mta);
        idle_remove(c);
        conn_close(c);
        return;
    }
    (void)conn_fail(c, "timed out", true);
}

/* The connection is unusable. Its op is retried once on a fresh connection
 * if this was a pooled connection that failed before any reply to the new
 * transaction (the server closed it while idle); else every recipient
 * without an answer gets 451. Always returns -1 (c closed). */
static int
conn_fail(struct rj_conn *c, const char *reason, bool timeout)
{
    struct fe_reinject_op *op = c->op;
    struct rj_target *t = c->t;

    if (c->state == CONN_IDLE) {
        sl_debug("reinject: pooled connection to %s gone: %s", t->mta, reason);
        idle_remove(c);
        conn_close(c);
        return -1;
    }
    if (c->state <= CONN_HELO)
        target_failing(t, reason);
    if (op && !timeout && c->reused && c->state == CONN_TXN && op->cmd_replied == 0 &&
        !op->retried) {
        sl_info("%s: reinject: pooled connection to %s failed (%s), retrying on a new one",
                op->job_id, t->mta, reason);
        op->retried = true;
        op->need_fresh = true;
        op_txn_clear(op);
        c->op = NULL;
        op->conn = NULL;
        op->state = OP_QUEUED;
        TAILQ_INSERT_HEAD(&t->queue, op, queue_entry);
        conn_close(c);
        return -1;
    }
    if (op) {
        char *text = sl_asprintf("%s with %s while %s", reason, t->mta, conn_doing(c));

        sl_warn("%s: reinject: %s", op->job_id, text);
        op_fail_unanswered(op, 451, conn_stage(c), text, false);
        free(text);
        op_finish(op);
    } else
        sl_info("reinject: %s: %s while %s", t->mta, reason, conn_doing(c));
    conn_close(c);
    return -1;
}

/* Resolves the target: numeric addresses without a lookup; names with a
 * blocking getaddrinfo() (names are not the normal case). */
static int
target_resolve(const struct rj_target *t, struct sockaddr_storage *ss, socklen_t *len_r,
               char **error_r)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", t->port);
    rc = getaddrinfo(t->host, port, &hints, &res);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
        rc = getaddrinfo(t->host, port, &hints, &res);
    }
    if (rc != 0) {
        *error_r = sl_asprintf("cannot resolve %s: %s", t->host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len_r = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Opens a connection; op (may be NULL) is bound to it. Never reports
 * synchronously: a failure here is delivered through the timer. */
static void
conn_new(struct rj_target *t, struct fe_reinject_op *op)
{
    struct fe_reinjector *r = t->r;
    struct rj_conn *c = sl_calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    char *error = NULL;

    c->t = t;
    c->state = CONN_CONNECTING;
    c->parser = sl_smtp_reply_parser_new();
    c->timer = evtimer_new(r->base, conn_timer_cb, c);
    c->flush_ev = event_new(r->base, -1, 0, conn_flush_cb, c);
    c->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
    SL_BUG_ON(!c->timer || !c->flush_ev || !c->bev);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    TAILQ_INSERT_TAIL(&t->conns, c, entry);
    t->n_conns++;
    if (op) {
        c->op = op;
        op->conn = c;
        op->state = OP_ACTIVE;
    }
    if (target_resolve(t, &ss, &sslen, &error) == 0 &&
        bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)sslen) != 0)
        error = sl_strdup(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    if (error) {
        c->pending_err = error;
        event_active(c->timer, EV_TIMEOUT, 0);
        return;
    }
    timer_arm(c, r->timeout_s);
}

/* Frees c without touching the queue. */
static void
conn_free(struct rj_conn *c)
{
    struct rj_target *t = c->t;

    idle_remove(c);
    if (c->op) { /* only from destroy: the op goes with r->ops */
        c->op->conn = NULL;
        c->op = NULL;
    }
    TAILQ_REMOVE(&t->conns, c, entry);
    t->n_conns--;
    if (c->read_ev != NULL)
        event_free(c->read_ev);
    bufferevent_free(c->bev);
    event_free(c->timer);
    event_free(c->flush_ev);
    sl_smtp_reply_parser_destroy(&c->parser);
    free(c->pending_err);
    free(c);
}

/* Closes c (its op must be finished or detached) and lets the queue move. */
static void
conn_close(struct rj_conn *c)
{
    struct rj_target *t = c->t;

    SL_BUG_ON(c->op != NULL);
    conn_free(c);
    target_dispatch(t);
}

/* Hands queued ops to idle connections, or opens new ones up to max_conns. */
static void
target_dispatch(struct rj_target *t)
{
    struct fe_reinject_op *op;
    struct rj_conn *c;

    while ((op = TAILQ_FIRST(&t->queue)) != NULL) {
        c = TAILQ_FIRST(&t->idle);
        if (c && !op->need_fresh) {
            if (!op_smtputf8_ok(c, op))
                continue;   /* op_finish() took it off the queue; c stays idle */
            TAILQ_REMOVE(&t->queue, op, queue_entry);
            idle_remove(c);
            evtimer_del(c->timer);
            conn_start_txn(c, op, true);
        } else if (t->n_conns < t->max_conns) {
            TAILQ_REMOVE(&t->queue, op, queue_entry);
            op->need_fresh = false;
            conn_new(t, op);
        } else if (c) {
            /* the retry wants a fresh connection: make room */
            conn_free(c);
        } else
            break;
    }
}

/* ---------------------------------------------------------------- API */

struct fe_reinjector *
fe_reinjector_new(struct event_base *base, const char *helo_name, unsigned timeout_s)
{
    struct fe_reinjector *r = sl_calloc(1, sizeof(*r));

    r->base = base;
    r->helo_name = sl_strdup(helo_name);
    r->timeout_s = timeout_s ? timeout_s : 1;
    TAILQ_INIT(&r->targets);
    TAILQ_INIT(&r->ops);
    return r;
}

void
fe_reinjector_set_timeout(struct fe_reinjector *r, unsigned timeout_s)
{
    r->timeout_s = timeout_s ? timeout_s : 1;
}

void
fe_reinjector_destroy(struct fe_reinjector **reinjectorp)
{
    struct fe_reinjector *r = *reinjectorp;
    struct rj_target *t;
    struct fe_reinject_op *op;

    if (!r)
        return;
    *reinjectorp = NULL;
    while ((t = TAILQ_FIRST(&r->targets)) != NULL) {
        TAILQ_REMOVE(&r->targets, t, entry);
        target_free(t);
    }
    while ((op = TAILQ_FIRST(&r->ops)) != NULL) {
        TAILQ_REMOVE(&r->ops, op, all_entry);
        op_free(op);
    }
    free(r->helo_name);
    free(r);
}

struct fe_reinject_op *
fe_reinject_start(struct fe_reinjector *r, const struct fe_reinject_request *req,
                  fe_reinject_done_fn *done, fe_reinject_wanted_fn *wanted, void *ctx)
{
    struct fe_reinject_op *op = sl_calloc(1, sizeof(*op));
    const char *bad = NULL;

    SL_BUG_ON(!done || !req->host || !req->body || (req->n_rcpts && !req->rcpts));
    op->r = r;
    op->started_ms = fe_metrics_now();
    op->t = target_get(r, req->host, req->port);
    op->t->max_conns = req->max_conns ? req->max_conns : 1;
    op->job_id = sl_strdup(req->job_id ? req->job_id : "-");
    op->mail_from = sl_strdup(req->mail_from ? req->mail_from : "");
    op->ret = dup_or_null(req->ret);
    op->envid = dup_or_null(req->envid);
    op->body_type = dup_or_null(req->body_type);
    op->smtputf8 = req->smtputf8;
    op->n_rcpts = req->n_rcpts;
    op->rcpts = sl_calloc(req->n_rcpts ? req->n_rcpts : 1, sizeof(*op->rcpts));
    op->res = sl_calloc(req->n_rcpts ? req->n_rcpts : 1, sizeof(*op->res));
    op->rstate = sl_calloc(req->n_rcpts ? req->n_rcpts : 1, sizeof(*op->rstate));
    for (size_t i = 0; i < req->n_rcpts; i++) {
        op->rcpts[i].address = sl_strdup(req->rcpts[i].address ? req->rcpts[i].address : "");
        op->rcpts[i].notify = dup_or_null(req->rcpts[i].notify);
        op->rcpts[i].orcpt = dup_or_null(req->rcpts[i].orcpt);
        if (!envelope_ok(op->rcpts[i].address) || !envelope_ok(op->rcpts[i].notify) ||
            !envelope_ok(op->rcpts[i].orcpt))
            bad = "recipient";
    }
    if (req->xforward) {
        char *const *v = req->xforward;

        for (int i = 0; i < SL_XF_COUNT; i++)
            op->xf[i] = dup_or_null(v[i]);
    }
    op->body = sl_body_ref(req->body);
    op->n_edits = req->n_edits;
    op->edits = sl_calloc(req->n_edits ? req->n_edits : 1, sizeof(*op->edits));
    for (size_t i = 0; i < req->n_edits; i++) {
        op->edits[i].op = req->edits[i].op;
        op->edits[i].name = sl_strdup(req->edits[i].name);
        op->edits[i].value = dup_or_null(req->edits[i].value);
    }
    op->done = done;
    op->wanted = wanted;
    op->ctx = ctx;
    op->done_ev = event_new(r->base, -1, 0, op_done_cb, op);
    SL_BUG_ON(!op->done_ev);
    op->mta = sl_strdup(op->t->mta);
    sl_buf_init(&op->wire);
    sl_buf_init(&op->chunk);
    TAILQ_INSERT_TAIL(&r->ops, op, all_entry);

    if (!envelope_ok(op->mail_from) || !envelope_ok(op->ret) || !envelope_ok(op->envid) ||
        !envelope_ok(op->body_type))
        bad = "sender or MAIL parameter";
    if (bad || op->n_rcpts == 0) {
        char *text = bad ? sl_asprintf("invalid %s: contains control characters", bad)
                         : sl_strdup("no recipients");

        sl_error("%s: reinject: %s", op->job_id, text);
        op_fail_unanswered(op, 451, "fwd-mail-from", text, false);
        free(text);
        op_finish(op); /* done() from the loop */
        return op;
    }
    op->state = OP_QUEUED;
    TAILQ_INSERT_TAIL(&op->t->queue, op, queue_entry);
    target_dispatch(op->t);
    return op;
}

void
fe_reinject_cancel(struct fe_reinject_op **opp)
{
    struct fe_reinject_op *op = *opp;

    if (!op)
        return;
    *opp = NULL;
    if (op->in_wanted) { /* body_done() frees it when wanted() returns */
        op->cancel_in_wanted = true;
        return;
    }
    switch (op->state) {
    case OP_QUEUED:
        TAILQ_REMOVE(&op->t->queue, op, queue_entry);
        break;
    case OP_ACTIVE: {
        struct rj_conn *c = op->conn;

        c->op = NULL;
        op->conn = NULL;
        if (c->state == CONN_CONNECTING || c->state == CONN_GREETING || c->state == CONN_EHLO ||
            c->state == CONN_HELO) {
            /* no transaction yet: the connection goes on and joins the pool */
        } else {
            /* before "." this aborts the DATA; after it, only the answer is lost */
            sl_info("%s: reinject: cancelled, closing the connection to %s", op->job_id, c->t->mta);
            conn_close(c);
        }
        break;
    }
    case OP_FINISHED: /* done() not called yet: it never will be */
    case OP_NEW:
        break;
    }
    TAILQ_REMOVE(&op->r->ops, op, all_entry);
    op_free(op);
}

void
fe_reinjector_watch(struct fe_reinjector *r, const char *host, unsigned port)
{
    struct rj_target *t = target_get(r, host, port);

    if (t->n_conns == 0 && t->probe_ms == 0 && t->failing == NULL) {
        t->probe_ms = sl_now_mono_ms();
        conn_new(t, NULL); /* ready: it joins the pool */
    }
}

bool
fe_reinjector_ready(struct fe_reinjector *r, char *why, size_t len)
{
    unsigned long long now = sl_now_mono_ms();
    struct rj_target *t;
    struct rj_conn *c;
    bool ready = true;

    for (t = TAILQ_FIRST(&r->targets); t != NULL; t = TAILQ_NEXT(t, entry)) {
        bool trying = false;

        if (t->failing == NULL)
            continue;
        if (ready)
            snprintf(why, len, "reinjection to %s failing: %s", t->mta, t->failing);
        ready = false;
        for (c = TAILQ_FIRST(&t->conns); c != NULL; c = TAILQ_NEXT(c, entry))
            trying |= c->state <= CONN_HELO;
        /* nothing else may try it while it fails (no mail comes to a
         * frontend that is not ready): a connection of our own, which
         * joins the pool if the target answers */
        if (!trying && t->n_conns < t->max_conns && now - t->probe_ms >= RJ_PROBE_MS) {
            t->probe_ms = now;
            conn_new(t, NULL);
        }
    }
    return ready;
}
