/* sl_registry.c - the cluster registry in Redis (sl_registry.h).
 *
 * One EVAL per node and interval does everything atomically inside Redis:
 * write the node's hash with its TTL, note it in sluice:nodes, then sum
 * what the live nodes say into the cluster gauges. Redis computes "now"
 * (TIME), so the nodes' clocks do not matter here. The cost is a walk over
 * the registered nodes per heartbeat: fine for the tens of nodes of a
 * filter cluster.
 *
 * hiredis 0.14 has no timeouts in its async API: a watchdog on the tick
 * drops a connection that has not connected, or has not answered, within
 * REG_STALL_MS, so a frozen Redis cannot pile up commands in our memory. */
#include "net/sl_registry.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "util/sl_log.h"
#include "util/sl_master.h"

#define REG_STALL_MS 3000  /* connect or reply slower than this: reconnect */
#define REG_MAX_FIELDS 256 /* per node record */

const char sl_registry_script[] =
    "local id, ttl = ARGV[1], tonumber(ARGV[2])\n"
    "local key = 'sluice:node:' .. id\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('DEL', key)\n"
    "redis.call('HSET', key, 'seen_ms', now, unpack(ARGV, 3))\n"
    "redis.call('PEXPIRE', key, ttl)\n"
    "redis.call('ZADD', 'sluice:nodes', now, id)\n"
    "redis.call('ZREMRANGEBYSCORE', 'sluice:nodes', '-inf', now - 3600000)\n"
    "local depth, oldest, inflight, slots, demand, sessions = 0, 0, 0, 0, 0, 0\n"
    "local brokers, workers, frontends = 0, 0, 0\n"
    "local conc = {}\n"
    "for _, n in ipairs(redis.call('ZRANGE', 'sluice:nodes', 0, -1)) do\n"
    "  local h = redis.call('HGETALL', 'sluice:node:' .. n)\n"
    "  local f = {}\n"
    "  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end\n"
    "  if f.role == 'broker' then\n"
    "    brokers = brokers + 1\n"
    "    depth = depth + (tonumber(f.queue_depth) or 0)\n"
    "    inflight = inflight + (tonumber(f.inflight) or 0)\n"
    "    oldest = math.max(oldest, tonumber(f.oldest_age_ms) or 0)\n"
    "  elseif f.role == 'worker' then\n"
    "    workers = workers + 1\n"
    "    slots = slots + (tonumber(f.slots) or 0)\n"
    "  elseif f.role == 'frontend' then\n"
    "    frontends = frontends + 1\n"
    "    for k, v in pairs(f) do\n"
    "      local o = string.match(k, '^origin%.(.+)%.concurrency$')\n"
    "      if o then conc[o] = math.max(conc[o] or 0, tonumber(v) or 0) end\n"
    "      if string.match(k, '^origin%..+%.sessions$') then\n"
    "        sessions = sessions + (tonumber(v) or 0)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for _, c in pairs(conc) do demand = demand + c end\n"
    "local shortfall = demand - slots\n"
    "if shortfall < 0 then shortfall = 0 end\n"
    "local oldest_s = math.floor(oldest / 1000)\n"
    "local keep = 10000\n"
    "redis.call('HSET', 'sluice:cluster', 'queue_depth', depth, 'oldest_age_ms', oldest,\n"
    "  'oldest_age_seconds', oldest_s, 'inflight', inflight, 'worker_slots', slots,\n"
    "  'origin_concurrency', demand, 'shortfall', shortfall, 'sessions', sessions,\n"
    "  'brokers', brokers, 'workers', workers, 'frontends', frontends, 'updated_ms', now)\n"
    "redis.call('PEXPIRE', 'sluice:cluster', keep)\n"
    "redis.call('SET', 'sluice:shortfall', shortfall, 'PX', keep)\n"
    "redis.call('SET', 'sluice:queue:depth', depth, 'PX', keep)\n"
    "redis.call('SET', 'sluice:queue:oldest_age_seconds', oldest_s, 'PX', keep)\n"
    "local function resize(k, n)\n"
    "  if n > 1000000 then n = 1000000 end\n"
    "  if n <= 0 then redis.call('DEL', k) return end\n"
    "  local cur = redis.call('LLEN', k)\n"
    "  if cur > n then redis.call('LTRIM', k, 0, n - 1)\n"
    "  else\n"
    "    local add = n - cur\n"
    "    while add > 0 do\n"
    "      local c = math.min(add, 1000)\n"
    "      local items = {}\n"
    "      for i = 1, c do items[i] = 'j' end\n"
    "      redis.call('RPUSH', k, unpack(items))\n"
    "      add = add - c\n"
    "    end\n"
    "  end\n"
    "  redis.call('PEXPIRE', k, keep)\n"
    "end\n"
    "resize('sluice:keda:queue', depth)\n"
    "resize('sluice:keda:demand', depth + inflight)\n"
    "resize('sluice:keda:oldest_age', oldest_s)\n"
    "return shortfall\n";

struct reg_node {
    char *role, *id, *address;
    sl_registry_fill_fn *fill;
    void *ctx;
};

struct sl_registry_rec {
    char *argv[2 * REG_MAX_FIELDS + 8];
    size_t argc;
    bool overflow_logged;
};

struct sl_registry {
    struct event_base *base;
    struct sl_redis_url url;
    char *desc;            /* for logs, without the password */
    redisAsyncContext *ac; /* NULL while disconnected */
    bool connected;
    unsigned long long connect_started_ms;
    unsigned outstanding;                /* commands sent, reply pending */
    unsigned long long waiting_since_ms; /* when outstanding went above 0 */
    bool down;                           /* logged as down; next success logs "back" */
    unsigned long long started_ms;
    struct event *timer;
    struct reg_node *nodes;
    size_t n_nodes;
    bool remote; /* a Redis to publish to (else local only) */
};

void
sl_registry_put(struct sl_registry_rec *rec, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (rec->argc + 2 > SL_N_ELEMENTS(rec->argv)) {
        if (!rec->overflow_logged)
            sl_warn("registry: too many fields in a node record; %s and later dropped", field);
        rec->overflow_logged = true;
        return;
    }
    rec->argv[rec->argc++] = sl_strdup(field);
    va_start(ap, fmt);
    rec->argv[rec->argc++] = sl_vasprintf(fmt, ap);
    va_end(ap);
}

static void
reg_mark_down(struct sl_registry *reg, const char *why)
{
    if (!reg->down)
        sl_warn("registry: Redis %s: %s; the registry is degraded (mail keeps flowing), "
                "retrying every second",
                reg->desc, why);
    else
        sl_debug("registry: Redis %s: %s", reg->desc, why);
    reg->down = true;
}

/* Drops the connection from our side (never from inside a hiredis
 * callback). Pending callbacks run with a NULL reply. */
static void
reg_drop(struct sl_registry *reg, const char *why)
{
    redisAsyncContext *ac = reg->ac;

    reg->ac = NULL;
    reg->connected = false;
    reg->outstanding = 0;
    reg_mark_down(reg, why);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void
reg_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sl_registry *reg = ac->data;
    redisReply *reply = r;
    const char *what = privdata;

    if (reg == NULL || reg->ac != ac)
        return; /* a connection we dropped */
    if (reg->outstanding > 0)
        reg->outstanding--;
    if (reg->outstanding > 0)
        reg->waiting_since_ms = sl_now_mono_ms();
    if (reply == NULL)
        return; /* disconnecting; the disconnect callback logs */
    if (reply->type == REDIS_REPLY_ERROR) {
        sl_warn("registry: Redis %s: %s failed: %s", reg->desc, what, reply->str);
        return;
    }
    if (reg->down) {
        sl_notice("registry: Redis %s answers again; nodes registered", reg->desc);
        reg->down = false;
    }
}

static void
reg_command(struct sl_registry *reg, const char *what, int argc, const char **argv,
            const size_t *lens)
{
    if (reg->ac == NULL)
        return;
    if (redisAsyncCommandArgv(reg->ac, reg_on_reply, (void *)what, argc, argv, lens) != REDIS_OK)
        return;
    if (reg->outstanding++ == 0)
        reg->waiting_since_ms = sl_now_mono_ms();
}

/* A node's record as it is now: the common fields, then its own. */
static void
reg_record(const struct sl_registry *reg, const struct reg_node *n, struct sl_registry_rec *rec)
{
    sl_registry_put(rec, "role", "%s", n->role);
    sl_registry_put(rec, "address", "%s", n->address);
    sl_registry_put(rec, "version", "%s", SLUICE_VERSION);
    sl_registry_put(rec, "pid", "%ld", (long)getpid());
    sl_registry_put(rec, "uptime_s", "%llu", (sl_now_mono_ms() - reg->started_ms) / 1000);
    if (n->fill != NULL)
        n->fill(n->ctx, rec);
}

static void
reg_rec_free(struct sl_registry_rec *rec)
{
    for (size_t k = 0; k < rec->argc; k++)
        free(rec->argv[k]);
}

static void
reg_publish(struct sl_registry *reg)
{
    char ttl[32];

    snprintf(ttl, sizeof(ttl), "%u", SL_REGISTRY_TTL_MS);
    for (size_t i = 0; i < reg->n_nodes; i++) {
        struct reg_node *n = &reg->nodes[i];
        struct sl_registry_rec rec = {0};
        const char **argv;
        size_t *lens;
        size_t argc;

        reg_record(reg, n, &rec);
        argc = rec.argc + 5;
        argv = sl_calloc(argc, sizeof(*argv));
        lens = sl_calloc(argc, sizeof(*lens));
        argv[0] = "EVAL";
        argv[1] = sl_registry_script;
        argv[2] = "0";
        argv[3] = n->id;
        argv[4] = ttl;
        for (size_t k = 0; k < rec.argc; k++)
            argv[5 + k] = rec.argv[k];
        for (size_t k = 0; k < argc; k++)
            lens[k] = strlen(argv[k]);
        reg_command(reg, "node heartbeat", (int)argc, argv, lens);
        reg_rec_free(&rec);
        free(argv);
        free(lens);
    }
}

static void
reg_on_connect(const redisAsyncContext *ac, int status)
{
    struct sl_registry *reg = ac->data;

    if (reg == NULL || reg->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        reg->ac = NULL;
        reg->connected = false;
        reg->outstanding = 0;
        reg_mark_down(reg, ac->errstr[0] ? ac->errstr : "cannot connect");
        return;
    }
    reg->connected = true;
    sl_info("registry: connected to Redis %s", reg->desc);
    reg_publish(reg); /* at once: a returning Redis sees us without waiting a tick */
}

static void
reg_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct sl_registry *reg = ac->data;

    if (reg == NULL || reg->ac != ac)
        return;
    reg->ac = NULL;
    reg->connected = false;
    reg->outstanding = 0;
    reg_mark_down(reg, status == REDIS_OK ? "connection closed"
                                          : (ac->errstr[0] ? ac->errstr : "connection lost"));
}

static void
reg_connect(struct sl_registry *reg)
{
    redisAsyncContext *ac;
    char *why = NULL;

    ac = sl_redis_async_connect(&reg->url, &why);
    if (ac == NULL) {
        reg_mark_down(reg, why);
        free(why);
        return;
    }
    ac->data = reg;
    reg->ac = ac;
    reg->connected = false;
    reg->outstanding = 0;
    reg->connect_started_ms = sl_now_mono_ms();
    if (redisLibeventAttach(ac, reg->base) != REDIS_OK) {
        reg->ac = NULL;
        redisAsyncFree(ac);
        reg_mark_down(reg, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, reg_on_connect);
    redisAsyncSetDisconnectCallback(ac, reg_on_disconnect);
    /* queued until the connection is up, answered before anything else */
    unsigned queued = sl_redis_async_login(ac, &reg->url, reg_on_reply, "AUTH", "SELECT");
    if (queued > 0 && reg->outstanding == 0)
        reg->waiting_since_ms = sl_now_mono_ms();
    reg->outstanding += queued;
}

static void
reg_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sl_registry *reg = arg;
    unsigned long long now = sl_now_mono_ms();

    (void)fd;
    (void)what;
    if (reg->ac == NULL) {
        reg_connect(reg);
        return;
    }
    if (!reg->connected) {
        if (now - reg->connect_started_ms >= REG_STALL_MS)
            reg_drop(reg, "connect timed out");
        return;
    }
    if (reg->outstanding > 0) {
        if (now - reg->waiting_since_ms >= REG_STALL_MS)
            reg_drop(reg, "not answering");
        return; /* one heartbeat in flight at a time */
    }
    reg_publish(reg);
}

struct sl_registry *
sl_registry_new(struct event_base *base, const struct sl_redis_url *url)
{
    struct sl_registry *reg = sl_calloc(1, sizeof(*reg));
    struct timeval tv = {.tv_sec = SL_REGISTRY_INTERVAL_MS / 1000,
                         .tv_usec = (SL_REGISTRY_INTERVAL_MS % 1000) * 1000};

    reg->base = base;
    reg->started_ms = sl_now_mono_ms();
    if (url == NULL)
        return reg; /* local: sl_registry_collect() only */
    reg->remote = true;
    sl_redis_url_copy(&reg->url, url);
    reg->desc = sl_redis_url_describe(&reg->url);
    reg->timer = event_new(base, -1, EV_PERSIST, reg_on_tick, reg);
    SL_BUG_ON(reg->timer == NULL);
    event_add(reg->timer, &tv);
    /* the first connect right away, not after an interval */
    event_active(reg->timer, EV_TIMEOUT, 0);
    sl_info("registry: publishing to Redis %s every %u ms (TTL %u ms)", reg->desc,
            SL_REGISTRY_INTERVAL_MS, SL_REGISTRY_TTL_MS);
    return reg;
}

void
sl_registry_add_node(struct sl_registry *reg, const char *role, const char *id, const char *address,
                     sl_registry_fill_fn *fill, void *ctx)
{
    struct reg_node *n;

    reg->nodes = sl_realloc(reg->nodes, (reg->n_nodes + 1) * sizeof(*reg->nodes));
    n = &reg->nodes[reg->n_nodes++];
    n->role = sl_strdup(role);
    n->id = sl_strdup(id);
    n->address = sl_strdup(address);
    n->fill = fill;
    n->ctx = ctx;
}

bool
sl_registry_connected(const struct sl_registry *reg)
{
    return reg->connected;
}

void
sl_registry_destroy(struct sl_registry **regp)
{
    struct sl_registry *reg = *regp;
    struct redisContext *c;
    char *error = NULL;

    if (reg == NULL)
        return;
    *regp = NULL;
    if (reg->timer != NULL)
        event_free(reg->timer);
    if (reg->ac != NULL) {
        redisAsyncContext *ac = reg->ac;
        reg->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    /* A node that stops says so, rather than lingering until its TTL. */
    if (reg->remote && reg->n_nodes > 0 &&
        (c = sl_redis_connect_sync(&reg->url, 300, &error)) != NULL) {
        for (size_t i = 0; i < reg->n_nodes; i++) {
            redisReply *r = redisCommand(c, "DEL sluice:node:%s", reg->nodes[i].id);
            if (r != NULL)
                freeReplyObject(r);
        }
        redisFree(c);
    }
    free(error);
    for (size_t i = 0; i < reg->n_nodes; i++) {
        free(reg->nodes[i].role);
        free(reg->nodes[i].id);
        free(reg->nodes[i].address);
    }
    free(reg->nodes);
    free(reg->desc);
    if (reg->remote)
        sl_redis_url_free(&reg->url);
    free(reg);
}

void
sl_registry_collect(const struct sl_registry *reg, sl_registry_record_fn *fn, void *ctx)
{
    for (size_t i = 0; i < reg->n_nodes; i++) {
        struct sl_registry_rec rec = {0};

        reg_record(reg, &reg->nodes[i], &rec);
        fn(ctx, reg->nodes[i].id, (const char *const *)rec.argv, rec.argc / 2);
        reg_rec_free(&rec);
    }
}

char *
sl_registry_node_id(const char *role)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    /* the master's pid: a child it restarts is the same node (sl_master.h) */
    return sl_asprintf("%s:%s:%ld", role, host, sl_master_node_pid());
}
