/* ledger.c - the exactly-once reinjection ledger in Redis (ledger.h).
 *
 * The decision "reinject or not" is atomic per recipient in Redis: two
 * copies of a message reaching two frontends at once cannot both reserve a
 * recipient. The common case costs no Lua (a script costs Redis ~15 us, as
 * much as the rest of a message's Redis work; docs/benchmarks.md):
 *   reserve  HSETNX per recipient + EXPIRE, pipelined; only recipients
 *            already present (a retry, a copy in flight) go on to the
 *            reserve script, which decides done / in flight / stale;
 *   record   HSET of every "done:" + EXPIRE when all were accepted; the
 *            record script when some reservation must be released (only
 *            if still ours).
 * Reservations are dated on Redis' clock: at each connect the frontend
 * reads TIME once and dates its own with the monotonic clock plus that
 * offset (until the offset is known, the script dates them), so the
 * frontends' wall clocks play no part.
 *
 * hiredis 0.14 has no timeouts in its async API: every op carries a timer;
 * when it fires the connection is dropped (a stalled Redis must not pile up
 * commands) and the op reports an error at once. */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "fe_metrics.h"
#include "util/sl_log.h"

#define LEDGER_RECONNECT_MS 1000 /* at most one connect attempt per second */
#define LEDGER_MAX_ORPHANS 10000 /* releases kept to try again; more are left to go stale */


enum op_kind {
    OP_RESERVE,        /* HSETNX per recipient, EXPIRE; then, if needed: */
    OP_RESERVE_SCRIPT, /* the reserve script for the recipients already present */
    OP_RECORD,         /* HSET + EXPIRE, or the record script */
};

struct fe_ledger_op {
    struct fe_ledger *l;
    struct fe_ledger_op *next, *prev; /* l->ops */
    enum op_kind kind;
    fe_ledger_reserved_fn *reserved;
    fe_ledger_recorded_fn *recorded; /* NULL: nobody waits; label says whose */
    void *ctx;
    char *label; /* OP_RECORD without a callback: the job id for its log line */
    size_t n;             /* recipients */
    struct event *timer;  /* timeout, or "fail now" */
    unsigned outstanding; /* replies hiredis still owes us (it calls back for each) */
    size_t replies;       /* replies seen: the index of the next one */
    bool finished;        /* the caller was answered (or cancelled) */
    bool abandoned;       /* OP_RESERVE*: nobody wants the answer; release what it took */
    const char *fail;     /* the error the timer reports instead of a timeout */
    /* OP_RESERVE, for the script's round if one is needed */
    char *key;
    char **rcpts;
    char *mine;   /* NULL: the script dates the reservation */
    bool *taken;  /* HSETNX set it: reserved */
    bool served;  /* another job of ours works on key (reserve script, ARGV[5]) */
    bool release; /* OP_RECORD from fe_ledger_release: key, rcpts, mine kept to retry it */
    unsigned long long since_ms; /* release: when it was first tried */
};

/* A key jobs of this process work on (fe_ledger_reserve to
 * fe_ledger_serve_end), with how many of them do. */
struct ledger_claim {
    char key[FE_LEDGER_KEY_LEN + 1];
    unsigned n;
};

/* A reservation of ours that could not be given back (Redis unavailable):
 * given back again every second until Redis takes it, or until it is
 * stale for everybody anyway. */
struct ledger_orphan {
    struct ledger_orphan *next;
    char *key, *mine;
    char **rcpts;
    size_t n;
    unsigned long long since_ms;
};

struct fe_ledger {
    struct event_base *base;
    struct sl_redis_url url;
    char *desc; /* for logs, no password */
    char *node;
    unsigned ttl_s;
    unsigned long long stale_ms;
    unsigned timeout_ms;
    redisAsyncContext *ac;
    unsigned long long last_connect_ms;
    bool clock_known;         /* Redis' TIME read on this connection */
    long long clock_offset_ms; /* Redis' clock minus our monotonic clock */
    bool down;       /* logged as down; the next answer logs "back" */
    bool destroying; /* no callbacks any more */
    struct fe_ledger_op *ops;
    /* fe_ledger_when_idle: called from the loop once ops is empty */
    void (*idle_cb)(void *ctx);
    void *idle_ctx;
    struct event *idle_ev;
    struct event *idle_deadline_ev; /* cancelled ops have no timer of their own */
    struct ledger_claim *claims;    /* keys our jobs work on, unordered */
    size_t n_claims, cap_claims;
    struct ledger_orphan *orphans;  /* releases to try again */
    size_t n_orphans;
    struct event *orphan_ev;        /* every LEDGER_RECONNECT_MS while there are orphans */
    struct event *write_ev;         /* writes queued commands from the loop (ledger_add_write) */
    bool write_pending;
    bool writing;                   /* in ledger_write_now() */
};

/* Releases, of rcpts[0..n), those entries[] says we hold. */
static void
release_ours(struct fe_ledger *l, const char *key, const char *mine, const char *const *rcpts,
             const struct fe_ledger_entry *entries, size_t n)
{
    const char **ours = sl_calloc(n ? n : 1, sizeof(*ours));
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (fe_ledger_entry_is_ours(&entries[i]))
            ours[k++] = rcpts[i];
    fe_ledger_release(l, key, mine, ours, k);
    free(ours);
}

void
fe_ledger_answer_release(struct fe_ledger *l, const char *key, const char *const *rcpts,
                         struct fe_ledger_answer **ap)
{
    struct fe_ledger_answer *a = *ap;

    if (a == NULL)
        return;
    if (a->error == NULL)
        release_ours(l, key, a->mine, rcpts, a->entries, a->n);
    else if (a->mine != NULL)
        /* unanswered: whatever of it Redis wrote is given back (only what
         * still holds our value is deleted) */
        fe_ledger_release(l, key, a->mine, rcpts, a->n);
    fe_ledger_answer_free(ap);
}

/* ---- the connection --------------------------------------------------- */

static void
ledger_mark_down(struct fe_ledger *l, const char *why)
{
    if (!l->down)
        sl_warn("ledger: Redis %s: %s; duplicate suppression unavailable "
                "(dedup.on_unavailable applies), reconnecting on demand",
                l->desc, why);
    else
        sl_debug("ledger: Redis %s: %s", l->desc, why);
    l->down = true;
    l->last_connect_ms = sl_now_mono_ms(); /* the next attempt in a second, not at once */
}

static void
ledger_mark_up(struct fe_ledger *l)
{
    if (l->down)
        sl_notice("ledger: Redis %s answers again", l->desc);
    l->down = false;
}

/* Drops the connection from our side (never from a hiredis callback):
 * hiredis answers every command still queued with a NULL reply. */
static void
ledger_drop(struct fe_ledger *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    l->ac = NULL;
    ledger_mark_down(l, why);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void
ledger_on_connect(const redisAsyncContext *ac, int status)
{
    struct fe_ledger *l = ac->data;

    if (l == NULL || l->ac != ac)
        return;
    if (status != REDIS_OK) {
        l->ac = NULL; /* hiredis frees it after this callback */
        ledger_mark_down(l, ac->errstr[0] ? ac->errstr : "cannot connect");
        return;
    }
    sl_debug("ledger: connected to Redis %s", l->desc);
}

static void
ledger_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct fe_ledger *l = ac->data;

    if (l == NULL || l->ac != ac)
        return;
    l->ac = NULL;
    ledger_mark_down(l, status == REDIS_OK ? "connection closed"
                                           : (ac->errstr[0] ? ac->errstr : "connection lost"));
}

static void
ledger_on_login(redisAsyncContext *ac, void *r, void *privdata)
{
    struct fe_ledger *l = ac->data;
    redisReply *reply = r;

    if (l == NULL || l->ac != ac || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    /* the reply names the failure (WRONGPASS...), never the password */
    sl_error("ledger: Redis %s: %s failed: %s", l->desc, (const char *)privdata, reply->str);
    redisAsyncDisconnect(ac);
}

static void
ledger_on_time(redisAsyncContext *ac, void *r, void *privdata)
{
    struct fe_ledger *l = ac->data;
    redisReply *reply = r;
    unsigned long long sec = 0, usec = 0;

    (void)privdata;
    if (l == NULL || l->destroying || l->ac != ac || reply == NULL ||
        reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return; /* the reserve script dates reservations meanwhile */
    for (const char *p = reply->element[0]->str; *p >= '0' && *p <= '9'; p++)
        sec = sec * 10 + (unsigned long long)(*p - '0');
    for (const char *p = reply->element[1]->str; *p >= '0' && *p <= '9'; p++)
        usec = usec * 10 + (unsigned long long)(*p - '0');
    l->clock_offset_ms = (long long)(sec * 1000 + usec / 1000) - (long long)sl_now_mono_ms();
    l->clock_known = true;
}

/* A connection, or NULL when Redis was found down less than a second ago
 * (fail fast: mail must not wait on a dead Redis message after message). */
static void ledger_add_write(void *privdata);

static redisAsyncContext *
ledger_conn(struct fe_ledger *l)
{
    unsigned long long now = sl_now_mono_ms();
    redisAsyncContext *ac;
    char *why = NULL;

    if (l->ac != NULL)
        return l->ac;
    if (l->last_connect_ms != 0 && now - l->last_connect_ms < LEDGER_RECONNECT_MS)
        return NULL;
    l->last_connect_ms = now;
    ac = sl_redis_async_connect(&l->url, &why);
    if (ac == NULL) {
        ledger_mark_down(l, why);
        free(why);
        return NULL;
    }
    ac->data = l;
    if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
        redisAsyncFree(ac);
        ledger_mark_down(l, "cannot attach to the event loop");
        return NULL;
    }
    ac->ev.addWrite = ledger_add_write;
    l->ac = ac;
    l->clock_known = false; /* after a Sentinel failover, another server's clock */
    redisAsyncSetConnectCallback(ac, ledger_on_connect);
    redisAsyncSetDisconnectCallback(ac, ledger_on_disconnect);
    (void)sl_redis_async_login(ac, &l->url, ledger_on_login, "AUTH", "SELECT");
    (void)redisAsyncCommand(ac, ledger_on_time, NULL, "TIME");
    return ac;
}

/* ---- ops -------------------------------------------------------------- */

/* What op owns besides itself. */
static void
op_strings_free(struct fe_ledger_op *op)
{
    free(op->key);
    for (size_t i = 0; op->rcpts != NULL && i < op->n; i++)
        free(op->rcpts[i]);
    free(op->rcpts);
    free(op->mine);
    free(op->taken);
    free(op->label);
}

static void
op_free(struct fe_ledger_op *op)
{
    struct fe_ledger *l = op->l;

    if (op->prev)
        op->prev->next = op->next;
    else
        l->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    event_free(op->timer);
    op_strings_free(op);
    free(op);
    if (l->ops == NULL && l->idle_cb != NULL && !l->destroying) {
        struct timeval now = {0, 0};
        evtimer_add(l->idle_ev, &now); /* maybe inside a hiredis callback: not from here */
    }
}

static void ledger_keep_orphan(struct fe_ledger *l, struct fe_ledger_op *op);

static void
op_answer_error(struct fe_ledger_op *op, const char *error)
{
    fe_metrics_ledger(op->kind != OP_RECORD, true);
    if (op->abandoned) {
        /* nobody waits: what Redis may have written is given back */
        if (op->mine != NULL)
            fe_ledger_release(op->l, op->key, op->mine, (const char *const *)op->rcpts, op->n);
        return;
    }
    if (op->kind != OP_RECORD)
        /* with our value, if we made it: the reservation may be in Redis */
        op->reserved(op->ctx, NULL, op->n, op->mine, error);
    else if (op->release)
        ledger_keep_orphan(op->l, op);
    else if (op->recorded != NULL)
        op->recorded(op->ctx, error);
    else if (op->label != NULL)
        /* Postfix has its replies: the reinjection stands, only a retry
         * (its reply lost) could now duplicate it */
        sl_warn("%s: ledger: cannot record the reinjection (%s); a retry of this message "
                "would be reinjected again",
                op->label, error);
    else
        sl_debug("ledger: cannot record: %s", error);
}

/* Marks op answered; the caller answers it. */
static void
op_finish(struct fe_ledger_op *op)
{
    op->finished = true;
    event_del(op->timer);
}

static void
op_answer_entries(struct fe_ledger_op *op, struct fe_ledger_entry *e, const char *mine)
{
    if (op->abandoned)
        release_ours(op->l, op->key, mine, (const char *const *)op->rcpts, e, op->n);
    else
        op->reserved(op->ctx, e, op->n, mine, NULL);
    for (size_t i = 0; i < op->n; i++)
        fe_ledger_entry_clear(&e[i]);
    free(e);
}

/* The script's answer covers the recipients HSETNX did not take (all of
 * them when it ran alone), in order. */
static void
op_answer_reserve(struct fe_ledger_op *op, const redisReply *reply)
{
    struct fe_ledger_entry *e;
    unsigned long long now = 0;
    size_t n_rest = 0, k = 2;

    for (size_t i = 0; i < op->n; i++)
        n_rest += op->taken == NULL || !op->taken[i];
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n_rest + 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        op_answer_error(op, "unexpected reply to the reserve script");
        return;
    }
    for (const char *p = reply->element[0]->str; *p >= '0' && *p <= '9'; p++)
        now = now * 10 + (unsigned long long)(*p - '0');
    e = sl_calloc(op->n ? op->n : 1, sizeof(*e));
    for (size_t i = 0; i < op->n; i++) {
        if (op->taken != NULL && op->taken[i]) {
            e[i].state = FE_LEDGER_RESERVED;
            continue;
        }
        const redisReply *el = reply->element[k++];
        if (el->type != REDIS_REPLY_STRING ||
            fe_ledger_parse_entry(el->str, el->len, now, &e[i]) < 0) {
            for (size_t j = 0; j <= i; j++)
                fe_ledger_entry_clear(&e[j]);
            free(e);
            op_answer_error(op, "unreadable ledger entry");
            return;
        }
    }
    op_answer_entries(op, e, reply->element[1]->str);
}

static void ledger_on_reply(redisAsyncContext *ac, void *r, void *privdata);

static void
ledger_write_now(struct fe_ledger *l)
{
    l->writing = true;
    redisAsyncHandleWrite(l->ac);   /* what the socket does not take: ledger_add_write */
    l->writing = false;
}

static void
ledger_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct fe_ledger *l = arg;

    (void)fd;
    (void)what;
    l->write_pending = false;
    if (l->ac != NULL && (l->ac->c.flags & REDIS_CONNECTED))
        ledger_write_now(l);
}

/* hiredis adds its write event for every command and removes it once the
 * command is written: two epoll_ctl a command, though ledger_on_write()
 * writes it within the same loop turn. Once connected, the write event is
 * added only for what the socket could not take. */
static void
ledger_add_write(void *privdata)
{
    redisLibeventEvents *e = privdata;
    struct fe_ledger *l = e->context->data;

    if (!(e->context->c.flags & REDIS_CONNECTED) || l->writing) {
        redisLibeventAddWrite(privdata);
        return;
    }
    if (!l->write_pending) {
        l->write_pending = true;
        event_active(l->write_ev, EV_WRITE, 0);
    }
}

/* Queues one command of op (argv: C strings); false if hiredis refused it. */
static bool
op_command(redisAsyncContext *ac, struct fe_ledger_op *op, size_t argc, const char **argv)
{
    size_t *lens = sl_calloc(argc, sizeof(*lens));
    int rc;

    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    rc = redisAsyncCommandArgv(ac, ledger_on_reply, op, (int)argc, argv, lens);
    free(lens);
    if (rc != REDIS_OK)
        return false;
    op->outstanding++;
    return true;
}

/* Makes op's timer report why from the loop (never from inside a call);
 * commands already queued still call back and free op at the end. */
static void
op_fail_soon(struct fe_ledger_op *op, const char *why)
{
    struct timeval now = {0, 0};

    op->fail = why;
    evtimer_add(op->timer, &now);
}

/* The reserve script for the recipients HSETNX did not take (all of them
 * when op->taken is NULL). */
static bool
op_send_reserve_script(redisAsyncContext *ac, struct fe_ledger_op *op)
{
    struct fe_ledger *l = op->l;
    const char **argv = sl_calloc(9 + op->n, sizeof(*argv));
    char stale[32], ttl[32];
    size_t argc = 9;
    bool ok;

    snprintf(stale, sizeof(stale), "%llu", l->stale_ms);
    snprintf(ttl, sizeof(ttl), "%u", l->ttl_s);
    argv[0] = "EVAL";
    argv[1] = fe_ledger_reserve_script;
    argv[2] = "1";
    argv[3] = op->key;
    argv[4] = l->node;
    argv[5] = stale;
    argv[6] = ttl;
    argv[7] = op->mine != NULL ? op->mine : "";
    argv[8] = op->served ? "1" : "0";
    for (size_t i = 0; i < op->n; i++)
        if (op->taken == NULL || !op->taken[i])
            argv[argc++] = op->rcpts[i];
    op->kind = OP_RESERVE_SCRIPT;
    ok = op_command(ac, op, argc, argv);
    free(argv);
    return ok;
}

/* One reply of a command op sent (they come in order); not an error. */
static void
op_on_answer(redisAsyncContext *ac, struct fe_ledger_op *op, size_t index,
             const redisReply *reply)
{
    switch (op->kind) {
    case OP_RESERVE_SCRIPT:
        op_finish(op);
        op_answer_reserve(op, reply);
        break;
    case OP_RECORD:
        if (op->outstanding > 0)
            break; /* the HSET; the EXPIRE's reply is the last */
        op_finish(op);
        if (op->recorded != NULL)
            op->recorded(op->ctx, NULL);
        break;
    case OP_RESERVE:
        if (index < op->n) {
            op->taken[index] = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
            break;
        }
        if (op->outstanding > 0)
            break;
        for (size_t i = 0; i < op->n; i++) {
            if (op->taken[i])
                continue;
            /* present already: a retry, or another copy in flight */
            if (!op_send_reserve_script(ac, op)) {
                op_finish(op);
                op_answer_error(op, "cannot send to Redis");
            }
            return;
        }
        op_finish(op);
        op_answer_entries(op, sl_calloc(op->n ? op->n : 1, sizeof(struct fe_ledger_entry)),
                          op->mine); /* calloc: all FE_LEDGER_RESERVED (0) */
        break;
    }
}

static void
ledger_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct fe_ledger_op *op = privdata;
    struct fe_ledger *l = op->l;
    redisReply *reply = r;
    size_t index = op->replies++;

    op->outstanding--;
    if (!op->finished && !l->destroying) {
        if (reply == NULL) {
            op_finish(op);
            op_answer_error(op, "connection lost");
        } else if (reply->type == REDIS_REPLY_ERROR) {
            sl_warn("ledger: Redis %s: %s", l->desc, reply->str);
            /* a master demoted by a Sentinel failover: find the new one */
            if (strncmp(reply->str, "READONLY", 8) == 0 || strncmp(reply->str, "NOAUTH", 6) == 0 ||
                strncmp(reply->str, "MASTERDOWN", 10) == 0)
                redisAsyncDisconnect(ac);
            op_finish(op);
            op_answer_error(op, reply->str);
        } else {
            ledger_mark_up(l);
            op_on_answer(ac, op, index, reply);
        }
    }
    if (op->outstanding == 0 && (op->finished || l->destroying))
        op_free(op);
}

static void
op_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fe_ledger_op *op = arg;
    struct fe_ledger *l = op->l;
    struct fe_ledger_op copy = *op;
    char why[96];

    (void)fd;
    (void)what;
    op->finished = true;
    /* the copy's now: op may be freed before they are used */
    op->label = op->key = op->mine = NULL;
    op->rcpts = NULL;
    op->taken = NULL;
    if (op->fail != NULL) {
        if (op->outstanding == 0)
            op_free(op);
        op_answer_error(&copy, copy.fail);
        op_strings_free(&copy);
        return;
    }
    /* no answer in time: the drop makes hiredis call back every queued
     * command with NULL, the last of op's frees it */
    snprintf(why, sizeof(why), "no answer within %u ms", l->timeout_ms);
    ledger_drop(l, why);
    op_answer_error(&copy, why);
    op_strings_free(&copy);
}

static unsigned ledger_claim(struct fe_ledger *l, const char *key);

/* A new op, linked in, its timeout armed; *ac_r the connection to send on,
 * or NULL: the op then fails from the loop. */
static struct fe_ledger_op *
op_new(struct fe_ledger *l, enum op_kind kind, size_t n, void *ctx, redisAsyncContext **ac_r)
{
    struct fe_ledger_op *op = sl_calloc(1, sizeof(*op));
    struct timeval tv = {.tv_sec = l->timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(l->timeout_ms % 1000) * 1000};

    op->l = l;
    op->kind = kind;
    op->n = n;
    op->ctx = ctx;
    fe_metrics_ledger(kind != OP_RECORD, false);
    op->next = l->ops;
    if (l->ops)
        l->ops->prev = op;
    l->ops = op;
    op->timer = evtimer_new(l->base, op_on_timer, op);
    SL_BUG_ON(op->timer == NULL);
    *ac_r = ledger_conn(l);
    if (*ac_r == NULL)
        op_fail_soon(op, "Redis unavailable");
    else
        evtimer_add(op->timer, &tv);
    return op;
}

/* Queues the commands of op; on a refusal the op fails from the loop. */
static void
op_send(redisAsyncContext *ac, struct fe_ledger_op *op, size_t argc, const char **argv)
{
    if (ac != NULL && !op_command(ac, op, argc, argv))
        op_fail_soon(op, "cannot send to Redis");
}

struct fe_ledger_op *
fe_ledger_reserve(struct fe_ledger *l, const char *key, const char *const *rcpts, size_t n,
                  fe_ledger_reserved_fn *cb, void *ctx)
{
    redisAsyncContext *ac;
    struct fe_ledger_op *op = op_new(l, OP_RESERVE, n, ctx, &ac);
    char ttl[32];

    op->reserved = cb;
    op->served = ledger_claim(l, key) > 1;
    op->key = sl_strdup(key);
    op->rcpts = sl_calloc(n ? n : 1, sizeof(*op->rcpts));
    for (size_t i = 0; i < n; i++)
        op->rcpts[i] = sl_strdup(rcpts[i]);
    if (ac == NULL)
        return op;
    if (!l->clock_known) {
        /* just connected: the script dates the reservation on Redis' TIME */
        if (!op_send_reserve_script(ac, op))
            op_fail_soon(op, "cannot send to Redis");
        return op;
    }
    op->mine = sl_asprintf("pending:%s:%lld", l->node,
                           (long long)sl_now_mono_ms() + l->clock_offset_ms);
    op->taken = sl_calloc(n ? n : 1, sizeof(*op->taken));
    snprintf(ttl, sizeof(ttl), "%u", l->ttl_s);
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"HSETNX", key, rcpts[i], op->mine};
        if (!op_command(ac, op, 4, argv)) {
            op_fail_soon(op, "cannot send to Redis");
            return op;
        }
    }
    const char *expire[] = {"EXPIRE", key, ttl};
    op_send(ac, op, 3, expire);
    /* written at the end of this turn of the loop (the write event), so
     * the reservations of the messages this turn ended go out in one
     * write; the answer is wanted only when the verdict comes */
    return op;
}

struct fe_ledger_op *
fe_ledger_record(struct fe_ledger *l, const char *key, const char *mine, const char *const *rcpts,
                 const char *const *replies, size_t n, fe_ledger_recorded_fn *cb, void *ctx)
{
    redisAsyncContext *ac;
    struct fe_ledger_op *op = op_new(l, OP_RECORD, n, ctx, &ac);
    const char **argv = sl_calloc(6 + 2 * n, sizeof(*argv));
    char **owned = sl_calloc(n ? n : 1, sizeof(*owned));
    bool all_done = true;
    char ttl[32];

    op->recorded = cb;
    snprintf(ttl, sizeof(ttl), "%u", l->ttl_s);
    for (size_t i = 0; i < n; i++) {
        owned[i] = replies[i] != NULL ? sl_asprintf("done:%s", replies[i]) : NULL;
        all_done &= owned[i] != NULL;
    }
    if (all_done) {
        /* nothing to release: no need to compare with mine in a script */
        argv[0] = "HSET";
        argv[1] = key;
        for (size_t i = 0; i < n; i++) {
            argv[2 + 2 * i] = rcpts[i];
            argv[3 + 2 * i] = owned[i];
        }
        const char *expire[] = {"EXPIRE", key, ttl};
        if (ac != NULL && op_command(ac, op, 2 + 2 * n, argv))
            op_send(ac, op, 3, expire);
        else if (ac != NULL)
            op_fail_soon(op, "cannot send to Redis");
    } else {
        argv[0] = "EVAL";
        argv[1] = fe_ledger_record_script;
        argv[2] = "1";
        argv[3] = key;
        argv[4] = ttl;
        argv[5] = mine;
        for (size_t i = 0; i < n; i++) {
            argv[6 + 2 * i] = rcpts[i];
            argv[7 + 2 * i] = owned[i] != NULL ? owned[i] : "";
        }
        op_send(ac, op, 6 + 2 * n, argv);
    }
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return op;
}

void
fe_ledger_record_nowait(struct fe_ledger *l, const char *label, const char *key, const char *mine,
                        const char *const *rcpts, const char *const *replies, size_t n)
{
    struct fe_ledger_op *op = fe_ledger_record(l, key, mine, rcpts, replies, n, NULL, NULL);

    op->label = sl_strdup(label);
    /* written when this turn of the loop ends, with the other records and
     * reservations of the turn, and before Postfix's replies: they are
     * queued after it, and the loop runs its write event first */
}

/* fe_ledger_release, first tried at since_ms. */
static void
ledger_release_since(struct fe_ledger *l, const char *key, const char *mine,
                     const char *const *rcpts, size_t n, unsigned long long since_ms)
{
    const char **none = sl_calloc(n ? n : 1, sizeof(*none));

    if (n > 0) {
        struct fe_ledger_op *op = fe_ledger_record(l, key, mine, rcpts, none, n, NULL, NULL);
        /* kept to try again if Redis cannot take it now */
        op->release = true;
        op->since_ms = since_ms;
        op->key = sl_strdup(key);
        op->mine = sl_strdup(mine);
        op->rcpts = sl_calloc(n, sizeof(*op->rcpts));
        for (size_t i = 0; i < n; i++)
            op->rcpts[i] = sl_strdup(rcpts[i]);
    }
    free(none);
}

void
fe_ledger_release(struct fe_ledger *l, const char *key, const char *mine,
                  const char *const *rcpts, size_t n)
{
    ledger_release_since(l, key, mine, rcpts, n, sl_now_mono_ms());
}

/* ---- what this process serves, what it could not give back ------------ */

/* One more job of ours works on key; how many do now. */
static unsigned
ledger_claim(struct fe_ledger *l, const char *key)
{
    for (size_t i = 0; i < l->n_claims; i++)
        if (strcmp(l->claims[i].key, key) == 0)
            return ++l->claims[i].n;
    if (l->n_claims == l->cap_claims) {
        l->cap_claims = l->cap_claims ? l->cap_claims * 2 : 16;
        l->claims = sl_realloc(l->claims, l->cap_claims * sizeof(*l->claims));
    }
    snprintf(l->claims[l->n_claims].key, sizeof(l->claims[0].key), "%s", key);
    l->claims[l->n_claims].n = 1;
    l->n_claims++;
    return 1;
}

void
fe_ledger_serve_end(struct fe_ledger *l, const char *key)
{
    for (size_t i = 0; i < l->n_claims; i++) {
        if (strcmp(l->claims[i].key, key) != 0)
            continue;
        if (--l->claims[i].n == 0)
            l->claims[i] = l->claims[--l->n_claims];
        return;
    }
    SL_BUG_ON(true); /* an end without its fe_ledger_reserve */
}

/* A release op Redis did not take: its key, value and recipients are
 * kept (op gives them up) and given back again within a second. */
static void
ledger_keep_orphan(struct fe_ledger *l, struct fe_ledger_op *op)
{
    struct timeval tv = {.tv_sec = LEDGER_RECONNECT_MS / 1000,
                         .tv_usec = (suseconds_t)(LEDGER_RECONNECT_MS % 1000) * 1000};
    struct ledger_orphan *o;

    if (l->destroying)
        return;
    if (l->n_orphans >= LEDGER_MAX_ORPHANS) {
        sl_warn("ledger: %zu reservations of ours wait to be given back; this one is left to go "
                "stale (dedup.pending_timeout)",
                l->n_orphans);
        return;
    }
    o = sl_calloc(1, sizeof(*o));
    o->key = op->key;
    o->mine = op->mine;
    o->rcpts = op->rcpts;
    o->n = op->n;
    op->key = op->mine = NULL;
    op->rcpts = NULL;
    o->since_ms = op->since_ms;
    sl_debug("ledger: cannot give a reservation back to Redis %s now; trying again in a second",
             l->desc);
    o->next = l->orphans;
    l->orphans = o;
    l->n_orphans++;
    if (!evtimer_pending(l->orphan_ev, NULL))
        evtimer_add(l->orphan_ev, &tv);
}

static void
orphan_free(struct ledger_orphan *o)
{
    free(o->key);
    free(o->mine);
    for (size_t i = 0; i < o->n; i++)
        free(o->rcpts[i]);
    free(o->rcpts);
    free(o);
}

/* Gives back, again, what could not be given back: each that fails once
 * more returns to the list; one older than dedup.pending_timeout is stale
 * for everybody and is dropped. */
static void
ledger_on_orphans(evutil_socket_t fd, short what, void *arg)
{
    struct fe_ledger *l = arg;
    struct ledger_orphan *list = l->orphans, *o;
    unsigned long long now = sl_now_mono_ms();

    (void)fd;
    (void)what;
    l->orphans = NULL;
    l->n_orphans = 0;
    while ((o = list) != NULL) {
        list = o->next;
        if (now - o->since_ms < l->stale_ms)
            ledger_release_since(l, o->key, o->mine, (const char *const *)o->rcpts, o->n,
                                 o->since_ms);
        orphan_free(o);
    }
}

static void
ledger_on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct fe_ledger *l = arg;
    void (*cb)(void *) = l->idle_cb;

    (void)fd;
    (void)what;
    if (cb == NULL)
        return;
    if (l->ops != NULL) {
        if (!evtimer_pending(l->idle_deadline_ev, NULL))
            sl_warn("ledger: Redis %s has not answered every command after %u ms; going on "
                    "without its answers", l->desc, l->timeout_ms);
        else
            return;
    }
    l->idle_cb = NULL;
    event_del(l->idle_ev);
    event_del(l->idle_deadline_ev);
    cb(l->idle_ctx);
}

void
fe_ledger_when_idle(struct fe_ledger *l, void (*cb)(void *ctx), void *ctx)
{
    struct timeval now = {0, 0};
    struct timeval deadline = {.tv_sec = l->timeout_ms / 1000,
                               .tv_usec = (suseconds_t)(l->timeout_ms % 1000) * 1000};

    l->idle_cb = cb;
    l->idle_ctx = ctx;
    evtimer_add(l->idle_ev, &now);
    if (!evtimer_pending(l->idle_deadline_ev, NULL))
        evtimer_add(l->idle_deadline_ev, &deadline);
}

void
fe_ledger_abandon(struct fe_ledger_op **opp)
{
    struct fe_ledger_op *op = *opp;

    if (op == NULL)
        return;
    if (op->kind != OP_RESERVE && op->kind != OP_RESERVE_SCRIPT) {
        fe_ledger_cancel(opp);
        return;
    }
    *opp = NULL;
    op->abandoned = true; /* runs on; its answer releases (op_answer_entries) */
}

void
fe_ledger_cancel(struct fe_ledger_op **opp)
{
    struct fe_ledger_op *op = *opp;

    if (op == NULL)
        return;
    *opp = NULL;
    op->finished = true;
    event_del(op->timer);
    if (op->outstanding == 0)
        op_free(op); /* else freed when hiredis has called back for each command */
}

struct fe_ledger *
fe_ledger_new(struct event_base *base, const struct sl_redis_url *url, const char *node,
              unsigned ttl_s, unsigned pending_timeout_s)
{
    struct fe_ledger *l = sl_calloc(1, sizeof(*l));

    l->base = base;
    sl_redis_url_copy(&l->url, url);
    l->desc = sl_redis_url_describe(url);
    l->node = sl_strdup(node);
    l->ttl_s = ttl_s;
    l->stale_ms = (unsigned long long)pending_timeout_s * 1000;
    l->timeout_ms = url->timeout_ms ? url->timeout_ms : 2000;
    l->idle_ev = evtimer_new(base, ledger_on_idle, l);
    l->idle_deadline_ev = evtimer_new(base, ledger_on_idle, l);
    l->orphan_ev = evtimer_new(base, ledger_on_orphans, l);
    l->write_ev = event_new(base, -1, 0, ledger_on_write, l);
    SL_BUG_ON(l->idle_ev == NULL || l->idle_deadline_ev == NULL || l->orphan_ev == NULL ||
              l->write_ev == NULL);
    sl_info("ledger: exactly-once reinjection through Redis %s (node %s, kept %u s)", l->desc,
            node, ttl_s);
    (void)ledger_conn(l); /* connect now; the first message need not wait for it */
    return l;
}

void
fe_ledger_destroy(struct fe_ledger **lp)
{
    struct fe_ledger *l = *lp;

    if (l == NULL)
        return;
    *lp = NULL;
    l->destroying = true;
    if (l->ac != NULL) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac); /* sent ops are freed by their callbacks */
    }
    while (l->ops != NULL)
        op_free(l->ops);
    while (l->orphans != NULL) {
        struct ledger_orphan *o = l->orphans;
        l->orphans = o->next;
        orphan_free(o);
    }
    event_free(l->orphan_ev);
    event_free(l->write_ev);
    free(l->claims);
    event_free(l->idle_ev);
    event_free(l->idle_deadline_ev);
    free(l->desc);
    free(l->node);
    sl_redis_url_free(&l->url);
    free(l);
}
