/* sl_status_print.c - `sluice status` output (sl_status.h, step 3): a
 * table for people, one JSON object for scripts. Both print the same
 * records and summary; neither decides anything. The JSON's keys are an
 * interface (docs/cluster.md, "Status"): scripts and tests read them. */
#include "cli/sl_status.h"

#include <string.h>

static unsigned long long
seconds_ago(const struct sl_status_registry *reg, const struct sl_status_node *n)
{
    return reg->now_ms > n->seen_ms ? (reg->now_ms - n->seen_ms) / 1000 : 0;
}

/* The hash's role; for a gone node, the id's prefix ("broker:host:pid"). */
static const char *
node_role(const struct sl_status_node *n, char *buf, size_t len)
{
    const char *role = sl_status_node_get(n, "role");
    const char *colon;
    if (role != NULL)
        return role;
    colon = strchr(n->id, ':');
    snprintf(buf, len, "%.*s", colon ? (int)(colon - n->id) : 0, n->id);
    return buf;
}

/* ---- JSON ----------------------------------------------------------- */

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

/* One node: id, role, address, alive, age, then the rest of its hash. */
static void
json_node(FILE *out, const struct sl_status_registry *reg, const struct sl_status_node *n)
{
    char rbuf[32];

    fputs("{\"id\":", out);
    json_str(out, n->id);
    fputs(",\"role\":", out);
    json_str(out, node_role(n, rbuf, sizeof(rbuf)));
    fputs(",\"address\":", out);
    json_str(out, sl_status_node_get(n, "address"));
    fprintf(out, ",\"alive\":%s,\"last_seen_seconds_ago\":%llu", n->alive ? "true" : "false",
            seconds_ago(reg, n));
    for (size_t k = 0; k < n->n_fields; k++) {
        if (strcmp(n->fields[k].name, "role") == 0 || strcmp(n->fields[k].name, "address") == 0)
            continue;
        fputc(',', out);
        json_str(out, n->fields[k].name);
        fputc(':', out);
        json_val(out, n->fields[k].value);
    }
    fputc('}', out);
}

void
sl_status_print_json(FILE *out, const struct sl_status_registry *reg,
                     const struct sl_status_summary *sum, const char *url_text)
{
    fprintf(out, "{\"state\":\"%s\",\"reasons\":[", sum->exit_status ? "degraded" : "ok");
    for (size_t i = 0; i < sum->n_reasons; i++) {
        if (i)
            fputc(',', out);
        json_str(out, sum->reasons[i]);
    }
    fputs("],\"registry\":{\"url\":", out);
    json_str(out, url_text);
    fputs(",\"reachable\":true},\"nodes\":[", out);
    for (size_t i = 0; i < reg->n_nodes; i++) {
        if (i)
            fputc(',', out);
        json_node(out, reg, &reg->nodes[i]);
    }
    fprintf(out, "],\"queue\":{\"depth\":%llu,\"oldest_age_seconds\":%llu,\"inflight\":%llu},",
            sum->queue_depth, sum->oldest_age_ms / 1000, sum->inflight);
    fprintf(out, "\"workers\":{\"slots\":%llu,\"busy\":%llu,\"free\":%llu},", sum->worker_slots,
            sum->slots_busy, sum->worker_slots - sum->slots_busy);
    fputs("\"origins\":[", out);
    for (size_t o = 0; o < sum->n_origins; o++) {
        if (o)
            fputc(',', out);
        fputs("{\"name\":", out);
        json_str(out, sum->origins[o].name);
        fprintf(out, ",\"sessions\":%llu,\"concurrency\":%llu}", sum->origins[o].sessions,
                sum->origins[o].concurrency);
    }
    fprintf(out,
            "],\"provisioning\":{\"origin_concurrency\":%llu,\"worker_slots\":%llu,"
            "\"shortfall\":%llu}}\n",
            sum->origin_concurrency, sum->worker_slots, sum->shortfall);
}

/* ---- text ----------------------------------------------------------- */

/* The DETAILS column: what matters about a node of that role. */
static void
text_details(char *buf, size_t len, const struct sl_status_registry *reg,
             const struct sl_status_node *n, const char *role)
{
    buf[0] = '\0';
    if (!n->alive)
        snprintf(buf, len, "gone, last seen %llu s ago", seconds_ago(reg, n));
    else if (strcmp(role, "broker") == 0)
        snprintf(buf, len,
                 "queue %llu, oldest %llu s, in flight %llu, workers %llu, slots free %llu",
                 sl_status_node_num(n, "queue_depth"),
                 sl_status_node_num(n, "oldest_age_ms") / 1000, sl_status_node_num(n, "inflight"),
                 sl_status_node_num(n, "workers"), sl_status_node_num(n, "slots_free"));
    else if (strcmp(role, "worker") == 0)
        snprintf(buf, len, "slots %llu, brokers %llu", sl_status_node_num(n, "slots"),
                 sl_status_node_num(n, "brokers"));
    else if (strcmp(role, "frontend") == 0)
        snprintf(buf, len,
                 "sessions %llu, waiting %llu, brokers %llu/%llu, resubmitted %llu, "
                 "duplicate verdicts %llu",
                 sl_status_node_num(n, "sessions"), sl_status_node_num(n, "jobs_waiting"),
                 sl_status_node_num(n, "brokers_alive"), sl_status_node_num(n, "brokers"),
                 sl_status_node_num(n, "resubmitted"), sl_status_node_num(n, "duplicate_verdicts"));
}

static void
text_nodes(FILE *out, const struct sl_status_registry *reg)
{
    fprintf(out, "\n%-34s %-9s %-26s %-6s %s\n", "NODE", "ROLE", "ADDRESS", "ALIVE", "DETAILS");
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const struct sl_status_node *n = &reg->nodes[i];
        const char *address = sl_status_node_get(n, "address");
        char rbuf[32], details[256];
        const char *role = node_role(n, rbuf, sizeof(rbuf));

        text_details(details, sizeof(details), reg, n, role);
        fprintf(out, "%-34s %-9s %-26s %-6s %s\n", n->id, role, address ? address : "-",
                n->alive ? "yes" : "no", details);
    }
}

void
sl_status_print_text(FILE *out, const struct sl_status_registry *reg,
                     const struct sl_status_summary *sum, const char *url_text)
{
    (void)url_text; /* named only when it cannot be read */
    fprintf(out, "sluice status: %s\n", sum->exit_status ? "DEGRADED" : "ok");
    for (size_t i = 0; i < sum->n_reasons; i++)
        fprintf(out, "  ! %s\n", sum->reasons[i]);
    text_nodes(out, reg);
    fprintf(out, "\nqueue: %llu waiting, oldest %llu s, %llu in flight\n", sum->queue_depth,
            sum->oldest_age_ms / 1000, sum->inflight);
    fprintf(out, "worker slots: %llu (busy %llu, free %llu)\n", sum->worker_slots, sum->slots_busy,
            sum->worker_slots - sum->slots_busy);
    fprintf(out, "\n%-24s %9s %12s\n", "ORIGIN", "SESSIONS", "CONCURRENCY");
    for (size_t o = 0; o < sum->n_origins; o++)
        fprintf(out, "%-24s %9llu %12llu\n", sum->origins[o].name, sum->origins[o].sessions,
                sum->origins[o].concurrency);
    fprintf(out, "\nprovisioning: origins %llu vs worker slots %llu: ", sum->origin_concurrency,
            sum->worker_slots);
    if (sum->shortfall)
        fprintf(out, "SHORTFALL %llu (add worker slots)\n", sum->shortfall);
    else
        fputs("no shortfall\n", out);
}

/* ---- Redis cannot be read ------------------------------------------- */

void
sl_status_print_unreachable(FILE *out, bool json, const char *what, const char *url_text,
                            const char *error)
{
    bool node = strcmp(what, "node") == 0;

    if (json) {
        fputs("{\"state\":\"degraded\",\"reasons\":[", out);
        json_str(out, node ? "node unreachable: status unknown"
                           : "registry unreachable: mail keeps flowing, status unknown");
        fputs("],\"registry\":{\"url\":", out);
        json_str(out, url_text);
        fputs(",\"reachable\":false,\"error\":", out);
        json_str(out, error);
        fputs("},\"nodes\":[],\"queue\":null,\"origins\":[]}\n", out);
    } else if (node) {
        fprintf(out,
                "sluice status: DEGRADED\n  node unreachable (%s): %s\n"
                "  is it running, with this metrics.listen?\n",
                url_text, error);
    } else {
        fprintf(out,
                "sluice status: DEGRADED\n  registry unreachable (%s): %s\n"
                "  mail keeps flowing (the registry is advisory); nodes register again "
                "when Redis returns\n",
                url_text, error);
    }
}
