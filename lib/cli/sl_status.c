/* sl_status.c - `sluice status`: the registry's records, reading them from
 * Redis, and the command that fetches, summarizes and prints (sl_status.h).
 * The summary is sl_status_summary.c, the printers sl_status_print.c. */
#include "cli/sl_status.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <hiredis/hiredis.h>

#define STATUS_TIMEOUT_MS 2000

/* ---- the records ---------------------------------------------------- */

struct sl_status_registry *
sl_status_registry_new(unsigned long long now_ms)
{
    struct sl_status_registry *reg = sl_calloc(1, sizeof(*reg));
    reg->now_ms = now_ms;
    return reg;
}

void
sl_status_registry_destroy(struct sl_status_registry **regp)
{
    struct sl_status_registry *reg = *regp;

    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->n_nodes; i++) {
        struct sl_status_node *n = &reg->nodes[i];
        for (size_t k = 0; k < n->n_fields; k++) {
            free(n->fields[k].name);
            free(n->fields[k].value);
        }
        free(n->fields);
        free(n->id);
    }
    free(reg->nodes);
    free(reg);
    *regp = NULL;
}

struct sl_status_node *
sl_status_registry_add_node(struct sl_status_registry *reg, const char *id,
                            unsigned long long seen_ms)
{
    struct sl_status_node *n;

    reg->nodes = sl_realloc(reg->nodes, (reg->n_nodes + 1) * sizeof(*reg->nodes));
    n = &reg->nodes[reg->n_nodes++];
    *n = (struct sl_status_node){.id = sl_strdup(id), .seen_ms = seen_ms};
    return n;
}

static int
node_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sl_status_node *)a)->id, ((const struct sl_status_node *)b)->id);
}

void
sl_status_registry_sort(struct sl_status_registry *reg)
{
    if (reg->n_nodes > 1)
        qsort(reg->nodes, reg->n_nodes, sizeof(*reg->nodes), node_cmp);
}

void
sl_status_node_add_field(struct sl_status_node *node, const char *name, const char *value)
{
    node->fields = sl_realloc(node->fields, (node->n_fields + 1) * sizeof(*node->fields));
    node->fields[node->n_fields++] =
        (struct sl_status_field){.name = sl_strdup(name), .value = sl_strdup(value)};
}

const char *
sl_status_node_get(const struct sl_status_node *node, const char *name)
{
    for (size_t i = 0; i < node->n_fields; i++)
        if (strcmp(node->fields[i].name, name) == 0)
            return node->fields[i].value;
    return NULL;
}

unsigned long long
sl_status_num(const char *s)
{
    unsigned long long v = 0;

    for (; s != NULL && *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v >= SL_STATUS_NUM_MAX)
            return SL_STATUS_NUM_MAX;
    }
    return v;
}

unsigned long long
sl_status_node_num(const struct sl_status_node *node, const char *name)
{
    return sl_status_num(sl_status_node_get(node, name));
}

/* ---- fetching them -------------------------------------------------- */

/* Redis replies are external input: a string element may be absent. */
static const char *
reply_str(const redisReply *r, const char *absent)
{
    return r->str != NULL ? r->str : absent;
}

/* Redis' clock, not ours: the nodes' scores are Redis' too. 0 if unknown. */
static unsigned long long
redis_now_ms(redisContext *c)
{
    redisReply *r = redisCommand(c, "TIME");
    unsigned long long now = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        now = strtoull(reply_str(r->element[0], "0"), NULL, 10) * 1000 +
              strtoull(reply_str(r->element[1], "0"), NULL, 10) / 1000;
    if (r != NULL)
        freeReplyObject(r);
    return now;
}

/* sluice:nodes, sorted by id. NULL and *error_r if it cannot be read. */
static struct sl_status_registry *
fetch_nodes(redisContext *c, char **error_r)
{
    unsigned long long now = redis_now_ms(c);
    redisReply *r = redisCommand(c, "ZRANGE sluice:nodes 0 -1 WITHSCORES");
    struct sl_status_registry *reg;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        *error_r = sl_strdup(r ? reply_str(r, "bad reply") : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        return NULL;
    }
    reg = sl_status_registry_new(now);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        sl_status_registry_add_node(reg, reply_str(r->element[i], ""),
                                    strtoull(reply_str(r->element[i + 1], "0"), NULL, 10));
    freeReplyObject(r);
    sl_status_registry_sort(reg);
    return reg;
}

/* The node's hash, if it still has one. -1 and *error_r if Redis stopped
 * answering; a reply that is not a hash (expired, wrong type) is a gone
 * node, not an error. */
static int
fetch_node_fields(redisContext *c, struct sl_status_node *n, char **error_r)
{
    redisReply *r = redisCommand(c, "HGETALL sluice:node:%s", n->id);

    if (r == NULL) {
        *error_r = sl_strdup(c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        n->alive = true;
        for (size_t k = 0; k + 1 < r->elements; k += 2)
            sl_status_node_add_field(n, reply_str(r->element[k], ""),
                                     reply_str(r->element[k + 1], ""));
    }
    freeReplyObject(r);
    return 0;
}

int
sl_status_fetch(const struct sl_redis_url *url, struct sl_status_registry **reg_r, char **error_r)
{
    redisContext *c = sl_redis_connect_sync(url, STATUS_TIMEOUT_MS, error_r);
    struct sl_status_registry *reg;

    *reg_r = NULL;
    if (c == NULL)
        return -1;
    reg = fetch_nodes(c, error_r);
    for (size_t i = 0; reg != NULL && i < reg->n_nodes; i++)
        if (fetch_node_fields(c, &reg->nodes[i], error_r) < 0)
            sl_status_registry_destroy(&reg); /* what was read so far, too */
    redisFree(c);
    if (reg == NULL)
        return -1;
    *reg_r = reg;
    return 0;
}

/* ---- the command ---------------------------------------------------- */

int
sl_status_report(FILE *out, const struct sl_status_registry *reg, const char *url_text, bool json)
{
    struct sl_status_summary *sum = sl_status_summary_new(reg);
    int rc;

    (json ? sl_status_print_json : sl_status_print_text)(out, reg, sum, url_text);
    rc = sum->exit_status;
    sl_status_summary_destroy(&sum);
    return rc;
}

int
sl_status_run(const struct sl_redis_url *url, const char *url_text, bool json, FILE *out)
{
    struct sl_status_registry *reg;
    char *error = NULL;
    int rc;

    if (sl_status_fetch(url, &reg, &error) < 0) {
        sl_status_print_unreachable(out, json, "registry", url_text, error);
        free(error);
        return EX_UNAVAILABLE;
    }
    rc = sl_status_report(out, reg, url_text, json);
    sl_status_registry_destroy(&reg);
    return rc;
}
