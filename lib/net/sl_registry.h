/* sl_registry.h - the cluster registry in Redis (docs/cluster.md).
 *
 * Each node (a frontend, a broker, a worker pool) publishes a hash
 * sluice:node:<id> every second with a TTL of 5 s, and the same script
 * recomputes the cluster gauges every autoscaler and `sluice status` read:
 *   sluice:nodes               sorted set: node id -> last seen (ms)
 *   sluice:cluster             hash: queue_depth, oldest_age_seconds,
 *                              worker_slots, origin_concurrency, shortfall...
 *   sluice:keda:queue          list whose LLEN is the queue depth (KEDA
 *                              "redis" scaler, listName)
 *   sluice:keda:oldest_age     list whose LLEN is the oldest job's age in s
 *   sluice:queue:depth, sluice:queue:oldest_age_seconds, sluice:shortfall
 *                              plain integers (dashboards, redis-cli)
 *
 * Advisory only: nothing about mail waits for Redis. The client is
 * hiredis' async API on the caller's libevent loop; a Redis that is down,
 * refuses or stops answering (3 s) is logged once, retried every second,
 * and every node registers again as soon as it answers. */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include <stdbool.h>
#include <event2/event.h>
#include "net/sl_redis.h"
#include "util/sl_util.h"

#define SL_REGISTRY_INTERVAL_MS 1000
#define SL_REGISTRY_TTL_MS 5000

struct sl_registry;
struct sl_registry_rec;

/* Adds this node's current fields to rec (sl_registry_put); runs on the
 * registry's loop once per interval. */
typedef void sl_registry_fill_fn(void *ctx, struct sl_registry_rec *rec);

/* url is copied. Connecting starts on the first tick. url NULL: a local
 * registry, which publishes nothing and only answers
 * sl_registry_collect() (a node without Redis, for its /status). */
struct sl_registry *sl_registry_new(struct event_base *base, const struct sl_redis_url *url);
/* Publishes a node: role ("frontend", "broker", "worker"), a cluster-wide
 * unique id, the address others know it by; fill may be NULL. */
void sl_registry_add_node(struct sl_registry *reg, const char *role, const char *id,
                          const char *address, sl_registry_fill_fn *fill, void *ctx);
void sl_registry_put(struct sl_registry_rec *rec, const char *field, const char *fmt, ...)
    SL_PRINTF(3, 4);
/* Each node's record as it would be published now: fields[2k] is a
 * name, fields[2k + 1] its value (role, address, version, pid, uptime_s,
 * then the node's own); valid during the call. On the registry's loop. */
typedef void sl_registry_record_fn(void *ctx, const char *id, const char *const *fields,
                                   size_t n_fields);
void sl_registry_collect(const struct sl_registry *reg, sl_registry_record_fn *fn, void *ctx);
/* True while the connection to Redis is up. */
bool sl_registry_connected(const struct sl_registry *reg);
/* Deletes the node keys (best effort, 300 ms) and frees. *regp may be NULL. */
void sl_registry_destroy(struct sl_registry **regp);

/* This process's node id for role: "role:host:pid", unique on a host and
 * readable in status. The ledger names its reservations with it, so a
 * reservation whose node key (sluice:node:<id>) has expired belongs to a
 * dead node. Malloc'ed. */
char *sl_registry_node_id(const char *role);

/* The Lua script each heartbeat runs (exposed for the unit test). */
extern const char sl_registry_script[];

#endif
