/* sl_status.c - `sluice status` (sl_status.h).
 *
 * Reads sluice:nodes (every node seen within the last hour) and each
 * node's hash; a node whose hash has expired (no heartbeat for 5 s) or was
 * deleted at shutdown is listed with alive = false. The cluster totals
 * are computed here from the live nodes, the same way the registry
 * script computes sluice:cluster for autoscalers. */
#include "net/sl_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <hiredis/hiredis.h>

#include "util/sl_util.h"

#define STATUS_TIMEOUT_MS 2000
#define STATUS_MAX_ORIGINS 256

struct kv {
    char *k, *v;
};

struct node {
    char *id;
    unsigned long long seen_ms; /* from sluice:nodes */
    bool alive;
    struct kv *f;
    size_t n_f;
};

struct origin_sum {
    char *name;
    unsigned long long sessions, concurrency;
};

static const char *
node_get(const struct node *n, const char *k)
{
    for (size_t i = 0; i < n->n_f; i++)
        if (strcmp(n->f[i].k, k) == 0)
            return n->f[i].v;
    return NULL;
}

/* The hash's role; for a gone node, the id's prefix ("broker:host:pid"). */
static const char *
node_role(const struct node *n, char *buf, size_t len)
{
    const char *role = node_get(n, "role");
    const char *colon;
    if (role != NULL)
        return role;
    colon = strchr(n->id, ':');
    snprintf(buf, len, "%.*s", colon ? (int)(colon - n->id) : 0, n->id);
    return buf;
}

static unsigned long long
node_num(const struct node *n, const char *k)
{
    const char *v = node_get(n, k);
    return v ? strtoull(v, NULL, 10) : 0;
}

static int
node_cmp(const void *a, const void *b)
{
    return strcmp(((const struct node *)a)->id, ((const struct node *)b)->id);
}

static void
json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* A number as a JSON value when it looks like one, else a string. */
static void
json_val(FILE *out, const char *s)
{
    const char *p = s;
    if (*p == '\0' || strlen(s) > 18)
        goto str;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            goto str;
    if (s[0] == '0' && s[1] != '\0')
        goto str;
    fputs(s, out);
    return;
str:
    json_str(out, s);
}

static unsigned long long
redis_now_ms(redisContext *c)
{
    redisReply *r = redisCommand(c, "TIME");
    unsigned long long now = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        now = strtoull(r->element[0]->str, NULL, 10) * 1000 +
              strtoull(r->element[1]->str, NULL, 10) / 1000;
    if (r != NULL)
        freeReplyObject(r);
    return now;
}

static void
print_unreachable(FILE *out, bool json, const char *url_text, const char *error)
{
    if (json) {
        fputs("{\"state\":\"degraded\",\"reasons\":[", out);
        json_str(out, "registry unreachable: mail keeps flowing, status unknown");
        fputs("],\"registry\":{\"url\":", out);
        json_str(out, url_text);
        fputs(",\"reachable\":false,\"error\":", out);
        json_str(out, error);
        fputs("},\"nodes\":[],\"queue\":null,\"origins\":[]}\n", out);
    } else {
        fprintf(out,
                "sluice status: DEGRADED\n  registry unreachable (%s): %s\n"
                "  mail keeps flowing (the registry is advisory); nodes register again "
                "when Redis returns\n",
                url_text, error);
    }
}

int
sl_status_run(const struct sl_redis_url *url, const char *url_text, bool json, FILE *out)
{
    char *error = NULL;
    redisContext *c = sl_redis_connect_sync(url, STATUS_TIMEOUT_MS, &error);
    redisReply *r;
    struct node *nodes = NULL;
    size_t n_nodes = 0;
    struct origin_sum origins[STATUS_MAX_ORIGINS];
    size_t n_origins = 0;
    unsigned long long now, depth = 0, oldest_ms = 0, inflight = 0, slots = 0, demand = 0;
    unsigned alive_brokers = 0, alive_workers = 0, alive_frontends = 0;
    char *reasons[64];
    size_t n_reasons = 0;
    int rc;

    if (c == NULL) {
        print_unreachable(out, json, url_text, error);
        free(error);
        return EX_UNAVAILABLE;
    }
    now = redis_now_ms(c);
    r = redisCommand(c, "ZRANGE sluice:nodes 0 -1 WITHSCORES");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        print_unreachable(out, json, url_text, r ? (r->str ? r->str : "bad reply") : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        redisFree(c);
        return EX_UNAVAILABLE;
    }
    n_nodes = r->elements / 2;
    nodes = sl_calloc(n_nodes ? n_nodes : 1, sizeof(*nodes));
    for (size_t i = 0; i < n_nodes; i++) {
        nodes[i].id = sl_strdup(r->element[2 * i]->str ? r->element[2 * i]->str : "");
        nodes[i].seen_ms =
            strtoull(r->element[2 * i + 1]->str ? r->element[2 * i + 1]->str : "0", NULL, 10);
    }
    freeReplyObject(r);
    /* ids are "role:host:pid": sorting groups the roles */
    qsort(nodes, n_nodes, sizeof(*nodes), node_cmp);
    for (size_t i = 0; i < n_nodes; i++) {
        struct node *n = &nodes[i];
        r = redisCommand(c, "HGETALL sluice:node:%s", n->id);
        if (r == NULL) {
            print_unreachable(out, json, url_text, c->errstr);
            redisFree(c);
            return EX_UNAVAILABLE;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
            n->alive = true;
            n->n_f = r->elements / 2;
            n->f = sl_calloc(n->n_f, sizeof(*n->f));
            for (size_t k = 0; k < n->n_f; k++) {
                n->f[k].k = sl_strdup(r->element[2 * k]->str ? r->element[2 * k]->str : "");
                n->f[k].v = sl_strdup(r->element[2 * k + 1]->str ? r->element[2 * k + 1]->str : "");
            }
        }
        freeReplyObject(r);
    }
    redisFree(c);

    /* totals over the live nodes */
    for (size_t i = 0; i < n_nodes; i++) {
        const struct node *n = &nodes[i];
        const char *role = node_get(n, "role");
        if (!n->alive || role == NULL)
            continue;
        if (strcmp(role, "broker") == 0) {
            alive_brokers++;
            depth += node_num(n, "queue_depth");
            inflight += node_num(n, "inflight");
            if (node_num(n, "oldest_age_ms") > oldest_ms)
                oldest_ms = node_num(n, "oldest_age_ms");
        } else if (strcmp(role, "worker") == 0) {
            alive_workers++;
            slots += node_num(n, "slots");
        } else if (strcmp(role, "frontend") == 0) {
            alive_frontends++;
            if (node_num(n, "brokers_alive") < node_num(n, "brokers") && n_reasons < 60)
                reasons[n_reasons++] =
                    sl_asprintf("frontend %s reaches %llu of %llu broker(s)", n->id,
                                node_num(n, "brokers_alive"), node_num(n, "brokers"));
            for (size_t k = 0; k < n->n_f; k++) {
                const char *key = n->f[k].k, *dot;
                if (strncmp(key, "origin.", 7) != 0 || (dot = strrchr(key, '.')) == key + 6)
                    continue;
                size_t nl = (size_t)(dot - (key + 7));
                size_t o;
                for (o = 0; o < n_origins; o++)
                    if (strlen(origins[o].name) == nl && strncmp(origins[o].name, key + 7, nl) == 0)
                        break;
                if (o == n_origins) {
                    if (n_origins == STATUS_MAX_ORIGINS)
                        continue;
                    origins[o].name = sl_strndup(key + 7, nl);
                    origins[o].sessions = origins[o].concurrency = 0;
                    n_origins++;
                }
                unsigned long long v = strtoull(n->f[k].v, NULL, 10);
                if (strcmp(dot, ".sessions") == 0)
                    origins[o].sessions += v;
                else if (strcmp(dot, ".concurrency") == 0 && v > origins[o].concurrency)
                    origins[o].concurrency = v;
            }
        }
    }
    for (size_t o = 0; o < n_origins; o++)
        demand += origins[o].concurrency;
    unsigned long long shortfall = demand > slots ? demand - slots : 0;
    unsigned long long busy = inflight < slots ? inflight : slots;
    if (alive_brokers == 0)
        reasons[n_reasons++] = sl_strdup("no broker alive");
    if (alive_workers == 0)
        reasons[n_reasons++] = sl_strdup("no worker alive");
    if (shortfall > 0)
        reasons[n_reasons++] = sl_asprintf(
            "provisioning shortfall: origins may send %llu messages at once, workers have "
            "%llu slot(s): %llu short",
            demand, slots, shortfall);
    rc = n_reasons > 0 ? 1 : 0;

    if (json) {
        fprintf(out, "{\"state\":\"%s\",\"reasons\":[", rc ? "degraded" : "ok");
        for (size_t i = 0; i < n_reasons; i++) {
            if (i)
                fputc(',', out);
            json_str(out, reasons[i]);
        }
        fputs("],\"registry\":{\"url\":", out);
        json_str(out, url_text);
        fputs(",\"reachable\":true},\"nodes\":[", out);
        for (size_t i = 0; i < n_nodes; i++) {
            const struct node *n = &nodes[i];
            if (i)
                fputc(',', out);
            fputs("{\"id\":", out);
            json_str(out, n->id);
            fputs(",\"role\":", out);
            char rbuf[32];
            json_str(out, node_role(n, rbuf, sizeof(rbuf)));
            fputs(",\"address\":", out);
            json_str(out, node_get(n, "address"));
            fprintf(out, ",\"alive\":%s,\"last_seen_seconds_ago\":%llu",
                    n->alive ? "true" : "false", now > n->seen_ms ? (now - n->seen_ms) / 1000 : 0);
            for (size_t k = 0; k < n->n_f; k++) {
                if (strcmp(n->f[k].k, "role") == 0 || strcmp(n->f[k].k, "address") == 0)
                    continue;
                fputc(',', out);
                json_str(out, n->f[k].k);
                fputc(':', out);
                json_val(out, n->f[k].v);
            }
            fputc('}', out);
        }
        fprintf(out, "],\"queue\":{\"depth\":%llu,\"oldest_age_seconds\":%llu,\"inflight\":%llu},",
                depth, oldest_ms / 1000, inflight);
        fprintf(out, "\"workers\":{\"slots\":%llu,\"busy\":%llu,\"free\":%llu},", slots, busy,
                slots - busy);
        fputs("\"origins\":[", out);
        for (size_t o = 0; o < n_origins; o++) {
            if (o)
                fputc(',', out);
            fputs("{\"name\":", out);
            json_str(out, origins[o].name);
            fprintf(out, ",\"sessions\":%llu,\"concurrency\":%llu}", origins[o].sessions,
                    origins[o].concurrency);
        }
        fprintf(out,
                "],\"provisioning\":{\"origin_concurrency\":%llu,\"worker_slots\":%llu,"
                "\"shortfall\":%llu}}\n",
                demand, slots, shortfall);
    } else {
        fprintf(out, "sluice status: %s\n", rc ? "DEGRADED" : "ok");
        for (size_t i = 0; i < n_reasons; i++)
            fprintf(out, "  ! %s\n", reasons[i]);
        fprintf(out, "\n%-34s %-9s %-26s %-6s %s\n", "NODE", "ROLE", "ADDRESS", "ALIVE", "DETAILS");
        for (size_t i = 0; i < n_nodes; i++) {
            const struct node *n = &nodes[i];
            char rbuf[32];
            const char *role = node_role(n, rbuf, sizeof(rbuf));
            char details[256] = "";
            if (!n->alive)
                snprintf(details, sizeof(details), "gone, last seen %llu s ago",
                         now > n->seen_ms ? (now - n->seen_ms) / 1000 : 0);
            else if (role && strcmp(role, "broker") == 0)
                snprintf(details, sizeof(details),
                         "queue %llu, oldest %llu s, in flight %llu, workers %llu, slots free %llu",
                         node_num(n, "queue_depth"), node_num(n, "oldest_age_ms") / 1000,
                         node_num(n, "inflight"), node_num(n, "workers"),
                         node_num(n, "slots_free"));
            else if (role && strcmp(role, "worker") == 0)
                snprintf(details, sizeof(details), "slots %llu, brokers %llu", node_num(n, "slots"),
                         node_num(n, "brokers"));
            else if (role && strcmp(role, "frontend") == 0)
                snprintf(details, sizeof(details),
                         "sessions %llu, waiting %llu, brokers %llu/%llu, resubmitted %llu, "
                         "duplicate verdicts %llu",
                         node_num(n, "sessions"), node_num(n, "jobs_waiting"),
                         node_num(n, "brokers_alive"), node_num(n, "brokers"),
                         node_num(n, "resubmitted"), node_num(n, "duplicate_verdicts"));
            fprintf(out, "%-34s %-9s %-26s %-6s %s\n", n->id, role ? role : "-",
                    node_get(n, "address") ? node_get(n, "address") : "-", n->alive ? "yes" : "no",
                    details);
        }
        fprintf(out, "\nqueue: %llu waiting, oldest %llu s, %llu in flight\n", depth,
                oldest_ms / 1000, inflight);
        fprintf(out, "worker slots: %llu (busy %llu, free %llu)\n", slots, busy, slots - busy);
        fprintf(out, "\n%-24s %9s %12s\n", "ORIGIN", "SESSIONS", "CONCURRENCY");
        for (size_t o = 0; o < n_origins; o++)
            fprintf(out, "%-24s %9llu %12llu\n", origins[o].name, origins[o].sessions,
                    origins[o].concurrency);
        fprintf(out, "\nprovisioning: origins %llu vs worker slots %llu: %s", demand, slots,
                shortfall ? "" : "no shortfall\n");
        if (shortfall)
            fprintf(out, "SHORTFALL %llu (add worker slots)\n", shortfall);
    }
    for (size_t i = 0; i < n_reasons; i++)
        free(reasons[i]);
    for (size_t o = 0; o < n_origins; o++)
        free(origins[o].name);
    for (size_t i = 0; i < n_nodes; i++) {
        for (size_t k = 0; k < nodes[i].n_f; k++) {
            free(nodes[i].f[k].k);
            free(nodes[i].f[k].v);
        }
        free(nodes[i].f);
        free(nodes[i].id);
    }
    free(nodes);
    return rc;
}
