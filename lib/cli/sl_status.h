/* sl_status.h - `sluice status`: the cluster as the registry in Redis sees
 * it (docs/cluster.md, "Status").
 *
 * SYNOPSIS
 *   Three steps, so that the middle one can be tested without Redis:
 *   1. fetch (sl_status_fetch): Redis I/O only. Reads sluice:nodes (every
 *      node seen within the last hour, with when) and each node's hash
 *      sluice:node:<id>, with a blocking client and 2 s timeouts, into a
 *      struct sl_status_registry: the records as they are, no judgement.
 *   2. summarize (sl_status_summary_new): a pure function of the records:
 *      nodes alive and gone, queue depth and oldest age, sessions and
 *      concurrency per origin, worker slots, the provisioning shortfall,
 *      the reasons for "degraded" and the exit status. No I/O, no clock
 *      (the time is the one fetched from Redis).
 *   3. print (sl_status_print_text, sl_status_print_json): a table for
 *      people or one JSON object for scripts, from the records and the
 *      summary.
 *   sl_status_run does the three in order.
 *
 *   A node whose hash has expired (no heartbeat for 5 s) or was deleted
 *   at shutdown has alive == false and no fields. The totals count the
 *   live nodes only, the way the registry's script computes sluice:cluster
 *   for autoscalers (net/sl_registry.h).
 *
 * OWNERSHIP
 *   A registry and a summary belong to whoever got them from _new or
 *   sl_status_fetch, and are freed with their _destroy. A summary keeps no
 *   pointer into the registry it was made from. */
#ifndef SL_STATUS_H
#define SL_STATUS_H

#include <stdbool.h>
#include <stdio.h>
#include "net/sl_redis.h"
#include "util/sl_util.h"

/* More origins than this are left out of the summary, and more frontends
 * than this that miss a broker are not each named: the report stays
 * readable in a terminal whatever the registry holds. */
#define SL_STATUS_MAX_ORIGINS 256
#define SL_STATUS_MAX_FRONTEND_REASONS 60

/* ---- 1. the records ------------------------------------------------- */

struct sl_status_field {
    char *name, *value;
};

struct sl_status_node {
    char *id;                       /* "role:host:pid" */
    unsigned long long seen_ms;     /* its score in sluice:nodes */
    bool alive;                     /* its hash exists */
    struct sl_status_field *fields; /* the hash, in Redis' order */
    size_t n_fields;
};

struct sl_status_registry {
    unsigned long long now_ms;    /* Redis' TIME, 0 if it did not say */
    struct sl_status_node *nodes; /* sorted by id: the roles come grouped */
    size_t n_nodes;
};

struct sl_status_registry *sl_status_registry_new(unsigned long long now_ms);
void sl_status_registry_destroy(struct sl_status_registry **regp);
/* Appends a node (not alive, no fields yet); the pointer returned is valid
 * until the next sl_status_registry_add_node. Strings are copied. */
struct sl_status_node *sl_status_registry_add_node(struct sl_status_registry *reg, const char *id,
                                                   unsigned long long seen_ms);
/* Sorts the nodes by id. */
void sl_status_registry_sort(struct sl_status_registry *reg);
/* Appends one field of the node's hash. Strings are copied. */
void sl_status_node_add_field(struct sl_status_node *node, const char *name, const char *value);
/* The field's value, or NULL; as a number (sl_status_num), 0 when absent. */
const char *sl_status_node_get(const struct sl_status_node *node, const char *name);
unsigned long long sl_status_node_num(const struct sl_status_node *node, const char *name);
/* A record's value as a count: its leading decimal digits, at most
 * SL_STATUS_NUM_MAX. Records come from other nodes: a sign or a word
 * counts 0, a huge number the cap, and sums over nodes cannot wrap. */
#define SL_STATUS_NUM_MAX 1000000000000000ULL
unsigned long long sl_status_num(const char *s);

/* Reads the registry. 0 and *reg_r, or -1 and *error_r (malloc'ed: why
 * Redis could not be read, no password in it) with nothing allocated. */
SL_WARN_UNUSED int sl_status_fetch(const struct sl_redis_url *url,
                                   struct sl_status_registry **reg_r, char **error_r);

/* ---- 2. the summary ------------------------------------------------- */

struct sl_status_origin {
    char *name;
    unsigned long long sessions;    /* summed over the live frontends */
    unsigned long long concurrency; /* the largest any live frontend declares */
};

struct sl_status_summary {
    unsigned nodes_alive, nodes_gone;
    unsigned brokers_alive, workers_alive, frontends_alive;
    unsigned long long queue_depth;        /* summed over the live brokers */
    unsigned long long oldest_age_ms;      /* the oldest job of any live broker */
    unsigned long long inflight;           /* summed over the live brokers */
    unsigned long long worker_slots;       /* summed over the live workers */
    unsigned long long slots_busy;         /* in flight, at most worker_slots */
    unsigned long long origin_concurrency; /* summed over the origins */
    unsigned long long shortfall;          /* concurrency beyond the slots, or 0 */
    struct sl_status_origin *origins;      /* in the order first seen */
    size_t n_origins;
    char **reasons; /* why degraded, one line each; none when ok */
    size_t n_reasons;
    int exit_status; /* 0 ok, 1 degraded */
};

/* The summary of reg; no I/O. */
struct sl_status_summary *sl_status_summary_new(const struct sl_status_registry *reg);
void sl_status_summary_destroy(struct sl_status_summary **sump);

/* ---- 3. the printers ------------------------------------------------ */

/* url_text names the registry (no password), for the JSON's "registry". */
typedef void sl_status_print_fn(FILE *out, const struct sl_status_registry *reg,
                                const struct sl_status_summary *sum, const char *url_text);
void sl_status_print_text(FILE *out, const struct sl_status_registry *reg,
                          const struct sl_status_summary *sum, const char *url_text);
void sl_status_print_json(FILE *out, const struct sl_status_registry *reg,
                          const struct sl_status_summary *sum, const char *url_text);
/* When Redis (what: "registry": mail keeps flowing) or the node ("node")
 * cannot be read: "degraded", and why. */
void sl_status_print_unreachable(FILE *out, bool json, const char *what, const char *url_text,
                                 const char *error);

/* ---- all three ------------------------------------------------------ */

/* Steps 2 and 3 for records got either way: prints the summary of reg as
 * text or JSON and returns its exit status (0 ok, 1 degraded). */
int sl_status_report(FILE *out, const struct sl_status_registry *reg, const char *url_text,
                     bool json);

/* Exit status for the command: the summary's (0 ok, 1 degraded, reasons
 * printed), or 69 (EX_UNAVAILABLE) when Redis cannot be read (also
 * printed, as degraded). */
int sl_status_run(const struct sl_redis_url *url, const char *url_text, bool json, FILE *out);

/* ---- one node, without Redis (sl_status_node.c) ---------------------- */

/* The node's side (GET /status on metrics.listen): its own records (the
 * local registry's, alive, seen now_ms), summarized and printed as
 * sl_status_print_json does for a cluster; url_text names the node.
 * Malloc'ed, *len_r bytes. */
struct sl_registry;
char *sl_status_local_json(const struct sl_registry *records, unsigned long long now_ms,
                           const char *url_text, size_t *len_r);
/* The records in a status JSON (the node's answer: outside input), as
 * sl_status_print_json wrote them: each node's id, role, alive and age,
 * every key but id, alive and age a field (strings and integers only). NULL and a static
 * *error_r when it is not that JSON; owned by the caller. */
struct sl_status_registry *sl_status_registry_from_json(const char *body, size_t len,
                                                        unsigned long long now_ms,
                                                        const char **error_r);
/* The command's side: asks the node at listen (metrics.listen) for its
 * /status and prints it as sl_status_run does; the same exit status, 69
 * when the node cannot be asked or does not answer with the status
 * JSON. */
int sl_status_run_node(const char *listen, bool json, FILE *out);

#endif
