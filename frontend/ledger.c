/* ledger.c - the exactly-once reinjection ledger in Redis (ledger.h).
 *
 * Both steps are one EVAL each, so the decision "reinject or not" is
 * atomic in Redis: two copies of a message reaching two frontends at once
 * cannot both reserve a recipient. Redis' own clock (TIME) dates the
 * reservations, so the frontends' clocks play no part.
 *
 * hiredis 0.14 has no timeouts in its async API: every op carries a timer;
 * when it fires the connection is dropped (a stalled Redis must not pile up
 * commands) and the op reports an error at once. */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <sodium.h>

#include "util/sl_log.h"

#define LEDGER_RECONNECT_MS 1000 /* at most one connect attempt per second */

/* KEYS[1] message key; ARGV: node, stale ms, ttl s, recipients...
 * node is "<registry id>/<pid>". A reservation is live while it is younger
 * than stale and its node's registry key exists; one of our own registry
 * id but another pid was left by a child the master has since restarted,
 * so it is stale at once.
 * Returns {now, mine, one entry per recipient}. */
const char fe_ledger_reserve_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local mine = 'pending:' .. ARGV[1] .. ':' .. string.format('%.0f', now)\n"
    "local stale = tonumber(ARGV[2])\n"
    "local myreg = string.match(ARGV[1], '^(.*)/%d+$')\n"
    "local out = {string.format('%.0f', now), mine}\n"
    "for i = 4, #ARGV do\n"
    "  local v = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  local live = false\n"
    "  if v and string.sub(v, 1, 5) == 'done:' then\n"
    "    live = true\n"
    "  elseif v then\n"
    "    local node, ts = string.match(v, '^pending:(.*):(%d+)$')\n"
    "    if node ~= nil and now - tonumber(ts) < stale then\n"
    "      local reg = string.match(node, '^(.*)/%d+$') or node\n"
    "      if reg == myreg then\n"
    "        live = node == ARGV[1]\n"
    "      else\n"
    "        live = redis.call('EXISTS', 'sluice:node:' .. reg) == 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if live then\n"
    "    out[#out + 1] = v\n"
    "  else\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], mine)\n"
    "    out[#out + 1] = v and ('took:' .. v) or 'reserved'\n"
    "  end\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "return out\n";

/* KEYS[1] message key; ARGV: ttl s, mine, then recipient, value pairs;
 * value "" releases the recipient if still reserved by mine. */
const char fe_ledger_record_script[] =
    "for i = 3, #ARGV, 2 do\n"
    "  if ARGV[i + 1] ~= '' then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  elseif redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[2] then\n"
    "    redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return 1\n";

enum op_kind { OP_RESERVE, OP_RECORD, OP_PEEK };

struct fe_ledger_op {
    struct fe_ledger *l;
    struct fe_ledger_op *next, *prev; /* l->ops */
    enum op_kind kind;
    fe_ledger_reserved_fn *reserved;
    fe_ledger_recorded_fn *recorded;
    void *ctx;
    size_t n;             /* recipients */
    struct event *timer;  /* timeout, or "fail now" for an op never sent */
    bool sent;            /* hiredis holds it and will call back */
    bool finished;        /* the caller was answered (or cancelled) */
    const char *fail;     /* unsent op: the error to report */
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
    bool down;       /* logged as down; the next answer logs "back" */
    bool destroying; /* no callbacks any more */
    struct fe_ledger_op *ops;
};

/* ---- pure parts ------------------------------------------------------- */

static void
hash_part(crypto_generichash_state *st, const void *data, size_t len, bool present)
{
    unsigned char hdr[9];

    /* a tag and a length before every part: no two inputs hash alike by
     * shifting bytes from one part into the next */
    hdr[0] = present ? 1 : 0;
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (unsigned char)((unsigned long long)len >> (8 * i));
    crypto_generichash_update(st, hdr, sizeof(hdr));
    if (len > 0)
        crypto_generichash_update(st, data, len);
}

static void
hash_str(crypto_generichash_state *st, const char *s)
{
    bool present = s != NULL && s[0] != '\0';
    hash_part(st, present ? s : "", present ? strlen(s) : 0, present);
}

void
fe_ledger_key(const struct fe_ledger_message *m, char key_r[FE_LEDGER_KEY_LEN + 1])
{
    static const char ctx[] = "sluice ledger v1";
    crypto_generichash_state st;
    unsigned char digest[32];
    size_t plen = sizeof(FE_LEDGER_KEY_PREFIX) - 1;

    crypto_generichash_init(&st, NULL, 0, sizeof(digest));
    crypto_generichash_update(&st, (const unsigned char *)ctx, sizeof(ctx) - 1);
    hash_str(&st, m->origin);
    hash_str(&st, m->ident);
    hash_str(&st, m->message_id);
    hash_part(&st, m->body, m->body_len, true);
    crypto_generichash_final(&st, digest, sizeof(digest));
    memcpy(key_r, FE_LEDGER_KEY_PREFIX, plen);
    sodium_bin2hex(key_r + plen, 64 + 1, digest, sizeof(digest));
}

const char *
fe_ledger_message_id(const char *body, size_t len, size_t *len_r)
{
    const char *p = body, *end = body + len;

    /* header lines until the empty line; continuation lines belong to the
     * header above them */
    while (p < end && !(p[0] == '\r' || p[0] == '\n')) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        while (next < end && (*next == ' ' || *next == '\t')) {
            eol = memchr(next, '\n', (size_t)(end - next));
            next = eol ? eol + 1 : end;
        }
        if ((size_t)(next - p) > 11 && strncasecmp(p, "Message-ID:", 11) == 0) {
            const char *v = p + 11, *e = next;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *len_r = (size_t)(e - v);
            return v;
        }
        p = next;
    }
    *len_r = 0;
    return NULL;
}

/* "pending:<node>:<ms>": node may hold ':' (it is "frontend:host:pid"). */
static int
parse_pending(const char *s, size_t len, unsigned long long now_ms, struct fe_ledger_entry *e)
{
    const char *p = s + 8, *end = s + len, *colon = NULL;
    unsigned long long ts = 0;

    if (len < 8 || memcmp(s, "pending:", 8) != 0)
        return -1;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (colon == NULL || colon == p || colon + 1 == end || end - colon > 20)
        return -1;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9')
            return -1;
        ts = ts * 10 + (unsigned long long)(*q - '0');
    }
    e->node = sl_strndup(p, (size_t)(colon - p));
    e->age_ms = now_ms > ts ? now_ms - ts : 0;
    return 0;
}

int
fe_ledger_parse_entry(const char *s, size_t len, unsigned long long now_ms,
                      struct fe_ledger_entry *entry_r)
{
    memset(entry_r, 0, sizeof(*entry_r));
    if (memchr(s, '\0', len) != NULL)
        return -1;
    if (len == 8 && memcmp(s, "reserved", 8) == 0) {
        entry_r->state = FE_LEDGER_RESERVED;
        return 0;
    }
    if (len > 5 && memcmp(s, "took:", 5) == 0) {
        entry_r->state = FE_LEDGER_TAKEN;
        return parse_pending(s + 5, len - 5, now_ms, entry_r);
    }
    if (len > 5 && memcmp(s, "done:", 5) == 0) {
        entry_r->state = FE_LEDGER_DONE;
        entry_r->reply = sl_strndup(s + 5, len - 5);
        /* only a success is ever recorded (fe_ledger_record) */
        if (entry_r->reply[0] != '2') {
            fe_ledger_entry_clear(entry_r);
            return -1;
        }
        return 0;
    }
    entry_r->state = FE_LEDGER_IN_FLIGHT;
    return parse_pending(s, len, now_ms, entry_r);
}

void
fe_ledger_entry_clear(struct fe_ledger_entry *entry)
{
    free(entry->reply);
    free(entry->node);
    memset(entry, 0, sizeof(*entry));
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
    free(op);
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

/* A connection, or NULL when Redis was found down less than a second ago
 * (fail fast: mail must not wait on a dead Redis message after message). */
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
    l->ac = ac;
    redisAsyncSetConnectCallback(ac, ledger_on_connect);
    redisAsyncSetDisconnectCallback(ac, ledger_on_disconnect);
    (void)sl_redis_async_login(ac, &l->url, ledger_on_login, "AUTH", "SELECT");
    return ac;
}

/* ---- ops -------------------------------------------------------------- */

static void
op_answer_error(struct fe_ledger_op *op, const char *error)
{
    if (op->kind != OP_RECORD)
        op->reserved(op->ctx, NULL, op->n, NULL, error);
    else
        op->recorded(op->ctx, error);
}

static void
op_answer_reserve(struct fe_ledger_op *op, const redisReply *reply)
{
    struct fe_ledger_entry *e;
    unsigned long long now = 0;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != op->n + 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        op_answer_error(op, "unexpected reply to the reserve script");
        return;
    }
    for (const char *p = reply->element[0]->str; *p >= '0' && *p <= '9'; p++)
        now = now * 10 + (unsigned long long)(*p - '0');
    e = sl_calloc(op->n ? op->n : 1, sizeof(*e));
    for (size_t i = 0; i < op->n; i++) {
        const redisReply *el = reply->element[i + 2];
        if (el->type != REDIS_REPLY_STRING ||
            fe_ledger_parse_entry(el->str, el->len, now, &e[i]) < 0) {
            for (size_t k = 0; k < i; k++)
                fe_ledger_entry_clear(&e[k]);
            free(e);
            op_answer_error(op, "unreadable ledger entry");
            return;
        }
    }
    op->reserved(op->ctx, e, op->n, reply->element[1]->str, NULL);
    for (size_t i = 0; i < op->n; i++)
        fe_ledger_entry_clear(&e[i]);
    free(e);
}

static void
op_answer_peek(struct fe_ledger_op *op, const redisReply *reply)
{
    struct fe_ledger_entry *e;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != op->n) {
        op_answer_error(op, "unexpected reply to HMGET");
        return;
    }
    e = sl_calloc(op->n ? op->n : 1, sizeof(*e));
    for (size_t i = 0; i < op->n; i++) {
        const redisReply *el = reply->element[i];
        if (el->type == REDIS_REPLY_NIL) {
            e[i].state = FE_LEDGER_FREE;
        } else if (el->type != REDIS_REPLY_STRING ||
                   fe_ledger_parse_entry(el->str, el->len, 0, &e[i]) < 0 ||
                   (e[i].state != FE_LEDGER_DONE && e[i].state != FE_LEDGER_IN_FLIGHT)) {
            for (size_t k = 0; k <= i; k++)
                fe_ledger_entry_clear(&e[k]);
            free(e);
            op_answer_error(op, "unreadable ledger entry");
            return;
        }
    }
    op->reserved(op->ctx, e, op->n, NULL, NULL);
    for (size_t i = 0; i < op->n; i++)
        fe_ledger_entry_clear(&e[i]);
    free(e);
}

static void
ledger_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct fe_ledger_op *op = privdata;
    struct fe_ledger *l = op->l;
    redisReply *reply = r;

    op->sent = false;
    if (op->finished || l->destroying) {
        op_free(op);
        return;
    }
    op->finished = true;
    event_del(op->timer);
    if (reply == NULL) {
        op_answer_error(op, "connection lost");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        sl_warn("ledger: Redis %s: %s", l->desc, reply->str);
        /* a master demoted by a Sentinel failover: find the new one */
        if (strncmp(reply->str, "READONLY", 8) == 0 || strncmp(reply->str, "NOAUTH", 6) == 0 ||
            strncmp(reply->str, "MASTERDOWN", 10) == 0)
            redisAsyncDisconnect(ac);
        op_answer_error(op, reply->str);
    } else {
        ledger_mark_up(l);
        if (op->kind == OP_RESERVE)
            op_answer_reserve(op, reply);
        else if (op->kind == OP_PEEK)
            op_answer_peek(op, reply);
        else
            op->recorded(op->ctx, NULL);
    }
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
    if (op->sent) {
        /* the drop makes hiredis call ledger_on_reply, which frees op */
        snprintf(why, sizeof(why), "no answer within %u ms", l->timeout_ms);
        ledger_drop(l, why);
        op_answer_error(&copy, why);
        return;
    }
    op_answer_error(&copy, op->fail);
    op_free(op);
}

static struct fe_ledger_op *
op_new(enum op_kind kind, size_t n, void *ctx)
{
    struct fe_ledger_op *op = sl_calloc(1, sizeof(*op));

    op->kind = kind;
    op->n = n;
    op->ctx = ctx;
    return op;
}

/* Sends argv (C strings) for op, or arms its timer to fail it from the
 * loop; frees argv (not the strings). */
static struct fe_ledger_op *
op_send(struct fe_ledger *l, struct fe_ledger_op *op, size_t argc, const char **argv)
{
    redisAsyncContext *ac = ledger_conn(l);
    struct timeval tv = {.tv_sec = l->timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(l->timeout_ms % 1000) * 1000};
    size_t *lens = sl_calloc(argc, sizeof(*lens));

    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    op->l = l;
    op->next = l->ops;
    if (l->ops)
        l->ops->prev = op;
    l->ops = op;
    op->timer = evtimer_new(l->base, op_on_timer, op);
    SL_BUG_ON(op->timer == NULL);
    if (ac == NULL) {
        op->fail = "Redis unavailable";
        tv = (struct timeval){0, 0}; /* answer from the loop, never from inside the call */
    } else if (redisAsyncCommandArgv(ac, ledger_on_reply, op, (int)argc, argv, lens) != REDIS_OK) {
        op->fail = "cannot send to Redis";
        tv = (struct timeval){0, 0};
    } else {
        op->sent = true;
    }
    evtimer_add(op->timer, &tv);
    free(lens);
    free(argv);
    return op;
}

struct fe_ledger_op *
fe_ledger_reserve(struct fe_ledger *l, const char *key, const char *const *rcpts, size_t n,
                  fe_ledger_reserved_fn *cb, void *ctx)
{
    struct fe_ledger_op *op = op_new(OP_RESERVE, n, ctx);
    size_t argc = 7 + n;
    const char **argv = sl_calloc(argc, sizeof(*argv));
    char stale[32], ttl[32];

    snprintf(stale, sizeof(stale), "%llu", l->stale_ms);
    snprintf(ttl, sizeof(ttl), "%u", l->ttl_s);
    argv[0] = "EVAL";
    argv[1] = fe_ledger_reserve_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = l->node;
    argv[5] = stale;
    argv[6] = ttl;
    for (size_t i = 0; i < n; i++)
        argv[7 + i] = rcpts[i];
    op->reserved = cb;
    return op_send(l, op, argc, argv);
}

struct fe_ledger_op *
fe_ledger_peek(struct fe_ledger *l, const char *key, const char *const *rcpts, size_t n,
               fe_ledger_reserved_fn *cb, void *ctx)
{
    struct fe_ledger_op *op = op_new(OP_PEEK, n, ctx);
    size_t argc = 2 + n;
    const char **argv = sl_calloc(argc, sizeof(*argv));

    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = rcpts[i];
    op->reserved = cb;
    return op_send(l, op, argc, argv);
}

struct fe_ledger_op *
fe_ledger_record(struct fe_ledger *l, const char *key, const char *mine, const char *const *rcpts,
                 const char *const *replies, size_t n, fe_ledger_recorded_fn *cb, void *ctx)
{
    struct fe_ledger_op *op = op_new(OP_RECORD, n, ctx);
    size_t argc = 6 + 2 * n;
    const char **argv = sl_calloc(argc, sizeof(*argv));
    char **owned = sl_calloc(n ? n : 1, sizeof(*owned));
    char ttl[32];

    snprintf(ttl, sizeof(ttl), "%u", l->ttl_s);
    argv[0] = "EVAL";
    argv[1] = fe_ledger_record_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = ttl;
    argv[5] = mine;
    for (size_t i = 0; i < n; i++) {
        argv[6 + 2 * i] = rcpts[i];
        owned[i] = replies[i] != NULL ? sl_asprintf("done:%s", replies[i]) : NULL;
        argv[7 + 2 * i] = owned[i] != NULL ? owned[i] : "";
    }
    op->recorded = cb;
    op_send(l, op, argc, argv);
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    return op;
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
    if (!op->sent)
        op_free(op); /* else freed when hiredis calls back */
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
    free(l->desc);
    free(l->node);
    sl_redis_url_free(&l->url);
    free(l);
}
