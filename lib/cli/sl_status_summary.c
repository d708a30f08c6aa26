/* sl_status_summary.c - what `sluice status` concludes from the registry's
 * records (sl_status.h, step 2). A pure function: no I/O, no clock, so
 * tests/unit/test_status.c feeds it records made up in a table.
 *
 * The rules follow the registry's script (net/sl_registry.c), which
 * computes the same gauges into sluice:cluster for autoscalers: only live
 * nodes count; an origin's concurrency is the largest any frontend
 * declares (every frontend of an origin declares the same limit), its
 * sessions are summed; the shortfall is the origins' concurrency the
 * workers' slots do not cover. */
#include "cli/sl_status.h"

#include <stdlib.h>
#include <string.h>

static void
summary_add_reason(struct sl_status_summary *sum, char *reason)
{
    sum->reasons = sl_realloc(sum->reasons, (sum->n_reasons + 1) * sizeof(*sum->reasons));
    sum->reasons[sum->n_reasons++] = reason;
}

/* The origin called name[0..len), added if new; NULL when there are
 * SL_STATUS_MAX_ORIGINS already. */
static struct sl_status_origin *
summary_origin(struct sl_status_summary *sum, const char *name, size_t len)
{
    struct sl_status_origin *o;

    for (size_t i = 0; i < sum->n_origins; i++)
        if (strlen(sum->origins[i].name) == len && strncmp(sum->origins[i].name, name, len) == 0)
            return &sum->origins[i];
    if (sum->n_origins == SL_STATUS_MAX_ORIGINS)
        return NULL;
    sum->origins = sl_realloc(sum->origins, (sum->n_origins + 1) * sizeof(*sum->origins));
    o = &sum->origins[sum->n_origins++];
    *o = (struct sl_status_origin){.name = sl_strndup(name, len)};
    return o;
}

/* A frontend's "origin.NAME.sessions" and "origin.NAME.concurrency". NAME
 * may hold dots (the last one ends it); other fields are not origins'. */
static void
summary_add_origin_field(struct sl_status_summary *sum, const struct sl_status_field *f)
{
    const char *name, *dot;
    struct sl_status_origin *o;
    unsigned long long v;

    if (strncmp(f->name, "origin.", strlen("origin.")) != 0)
        return;
    name = f->name + strlen("origin.");
    if ((dot = strrchr(f->name, '.')) == name - 1) /* "origin.NAME": no suffix */
        return;
    if ((o = summary_origin(sum, name, (size_t)(dot - name))) == NULL)
        return;
    v = sl_status_num(f->value);
    if (strcmp(dot, ".sessions") == 0)
        o->sessions += v;
    else if (strcmp(dot, ".concurrency") == 0 && v > o->concurrency)
        o->concurrency = v;
}

static void
summary_add_broker(struct sl_status_summary *sum, const struct sl_status_node *n)
{
    unsigned long long oldest = sl_status_node_num(n, "oldest_age_ms");

    sum->brokers_alive++;
    sum->queue_depth += sl_status_node_num(n, "queue_depth");
    sum->inflight += sl_status_node_num(n, "inflight");
    if (oldest > sum->oldest_age_ms)
        sum->oldest_age_ms = oldest;
}

static void
summary_add_frontend(struct sl_status_summary *sum, const struct sl_status_node *n,
                     unsigned *n_named)
{
    unsigned long long brokers = sl_status_node_num(n, "brokers");
    unsigned long long alive = sl_status_node_num(n, "brokers_alive");

    sum->frontends_alive++;
    if (alive < brokers && *n_named < SL_STATUS_MAX_FRONTEND_REASONS) {
        summary_add_reason(
            sum, sl_asprintf("frontend %s reaches %llu of %llu broker(s)", n->id, alive, brokers));
        (*n_named)++;
    }
    for (size_t k = 0; k < n->n_fields; k++)
        summary_add_origin_field(sum, &n->fields[k]);
}

/* The cluster-wide conclusions, once every live node is counted. */
static void
summary_conclude(struct sl_status_summary *sum)
{
    for (size_t o = 0; o < sum->n_origins; o++)
        sum->origin_concurrency += sum->origins[o].concurrency;
    if (sum->origin_concurrency > sum->worker_slots)
        sum->shortfall = sum->origin_concurrency - sum->worker_slots;
    sum->slots_busy = sum->inflight < sum->worker_slots ? sum->inflight : sum->worker_slots;
    if (sum->brokers_alive == 0)
        summary_add_reason(sum, sl_strdup("no broker alive"));
    if (sum->workers_alive == 0)
        summary_add_reason(sum, sl_strdup("no worker alive"));
    if (sum->shortfall > 0)
        summary_add_reason(sum,
                           sl_asprintf("provisioning shortfall: origins may send %llu "
                                       "messages at once, workers have %llu slot(s): "
                                       "%llu short",
                                       sum->origin_concurrency, sum->worker_slots, sum->shortfall));
    sum->exit_status = sum->n_reasons > 0 ? 1 : 0;
}

struct sl_status_summary *
sl_status_summary_new(const struct sl_status_registry *reg)
{
    struct sl_status_summary *sum = sl_calloc(1, sizeof(*sum));
    unsigned n_named = 0; /* frontends named for missing a broker */

    for (size_t i = 0; i < reg->n_nodes; i++) {
        const struct sl_status_node *n = &reg->nodes[i];
        const char *role = sl_status_node_get(n, "role");

        if (!n->alive) {
            sum->nodes_gone++;
            continue;
        }
        sum->nodes_alive++;
        if (role == NULL) /* not a node sluice wrote: no totals */
            continue;
        if (strcmp(role, "broker") == 0) {
            summary_add_broker(sum, n);
        } else if (strcmp(role, "worker") == 0) {
            sum->workers_alive++;
            sum->worker_slots += sl_status_node_num(n, "slots");
        } else if (strcmp(role, "frontend") == 0) {
            summary_add_frontend(sum, n, &n_named);
        }
    }
    summary_conclude(sum);
    return sum;
}

void
sl_status_summary_destroy(struct sl_status_summary **sump)
{
    struct sl_status_summary *sum = *sump;

    if (sum == NULL)
        return;
    for (size_t i = 0; i < sum->n_reasons; i++)
        free(sum->reasons[i]);
    free(sum->reasons);
    for (size_t o = 0; o < sum->n_origins; o++)
        free(sum->origins[o].name);
    free(sum->origins);
    free(sum);
    *sump = NULL;
}
