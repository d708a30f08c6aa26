/* sl_status_node.c - `sluice status` for a node without Redis (sl_status.h,
 * "One node"): the node serves its own records as the status JSON (GET
 * /status on metrics.listen), and the command reads them back into a
 * registry, so the summary and the printers are the cluster's, unchanged.
 * The same exit status: 0 ok, 1 degraded, 69 the node cannot be asked. */
#include "cli/sl_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <jansson.h>

#include "net/sl_http.h"
#include "net/sl_registry.h"

#define NODE_TIMEOUT_MS 2000
#define NODE_MAX_NODES 64 /* a node answers for its own roles: a few */

/* ---- the node's side -------------------------------------------------- */

static void
add_record(void *ctx, const char *id, const char *const *fields, size_t n_fields)
{
    struct sl_status_registry *reg = ctx;
    struct sl_status_node *n = sl_status_registry_add_node(reg, id, reg->now_ms);

    n->alive = true;
    for (size_t k = 0; k < n_fields; k++)
        sl_status_node_add_field(n, fields[2 * k], fields[2 * k + 1]);
}

char *
sl_status_local_json(const struct sl_registry *records, unsigned long long now_ms,
                     const char *url_text, size_t *len_r)
{
    struct sl_status_registry *reg = sl_status_registry_new(now_ms);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    SL_BUG_ON(out == NULL);
    sl_registry_collect(records, add_record, reg);
    sl_status_registry_sort(reg);
    (void)sl_status_report(out, reg, url_text, true);
    fclose(out);
    sl_status_registry_destroy(&reg);
    *len_r = len;
    return text;
}

/* ---- the command's side ----------------------------------------------- */

/* One node object of the JSON back into a record: every key but the ones
 * the printer adds (alive, last_seen_seconds_ago) is a field again, as
 * the registry had it. The node's answer is outside input: anything
 * unexpected is an error, never a crash. */
static int
node_from_json(struct sl_status_registry *reg, json_t *jn, const char **error_r)
{
    json_t *id = json_object_get(jn, "id"), *alive = json_object_get(jn, "alive");
    json_t *role = json_object_get(jn, "role"), *ago = json_object_get(jn, "last_seen_seconds_ago");
    struct sl_status_node *n;
    const char *key;
    json_t *v;

    /* the printer writes all three for every node */
    if (!json_is_string(id) || !json_is_string(role) || !json_is_boolean(alive)) {
        *error_r = "a node without id, role or alive";
        return -1;
    }
    /* an age that does not fit before now is as old as can be */
    json_int_t ago_s = json_is_integer(ago) ? json_integer_value(ago) : 0;
    unsigned long long ago_ms = 0;

    if (ago_s > 0)
        ago_ms = (unsigned long long)ago_s <= reg->now_ms / 1000 ? (unsigned long long)ago_s * 1000
                                                                 : reg->now_ms;
    n = sl_status_registry_add_node(reg, json_string_value(id), reg->now_ms - ago_ms);
    n->alive = json_is_true(alive);
    json_object_foreach(jn, key, v)
    {
        char num[32];

        if (strcmp(key, "id") == 0 || strcmp(key, "alive") == 0 ||
            strcmp(key, "last_seen_seconds_ago") == 0)
            continue;
        /* the printer writes "" for a node without an address */
        if (strcmp(key, "address") == 0 && json_is_string(v) && json_string_length(v) == 0)
            continue;
        if (json_is_string(v)) {
            sl_status_node_add_field(n, key, json_string_value(v));
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            sl_status_node_add_field(n, key, num);
        } else {
            *error_r = "a node field that is neither a string nor an integer";
            return -1;
        }
    }
    return 0;
}

struct sl_status_registry *
sl_status_registry_from_json(const char *body, size_t len, unsigned long long now_ms,
                             const char **error_r)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *nodes = root != NULL ? json_object_get(root, "nodes") : NULL;
    struct sl_status_registry *reg;
    size_t i;
    json_t *jn;

    if (!json_is_array(nodes) || json_array_size(nodes) > NODE_MAX_NODES) {
        *error_r = "not the status JSON";
        json_decref(root);
        return NULL;
    }
    reg = sl_status_registry_new(now_ms);
    json_array_foreach(nodes, i, jn)
    {
        if (!json_is_object(jn) || node_from_json(reg, jn, error_r) < 0) {
            if (!json_is_object(jn))
                *error_r = "a node that is not an object";
            sl_status_registry_destroy(&reg);
            break;
        }
    }
    json_decref(root);
    if (reg != NULL)
        sl_status_registry_sort(reg);
    return reg;
}

int
sl_status_run_node(const char *listen, bool json, FILE *out)
{
    char *url_text = sl_asprintf("http://%s/status", listen), *body = NULL, *error = NULL;
    const char *why = NULL;
    struct sl_status_registry *reg = NULL;
    size_t len;
    int status, rc;

    if (sl_http_get(listen, "/status", NODE_TIMEOUT_MS, &status, &body, &len, &error) < 0) {
        sl_status_print_unreachable(out, json, "node", url_text, error);
        free(error);
        free(url_text);
        return EX_UNAVAILABLE;
    }
    if (status != 200)
        why = "the node did not answer 200";
    else
        reg = sl_status_registry_from_json(body, len, sl_now_wall_ms(), &why);
    free(body);
    if (reg == NULL) {
        sl_status_print_unreachable(out, json, "node", url_text, why);
        free(url_text);
        return EX_UNAVAILABLE;
    }
    rc = sl_status_report(out, reg, url_text, json);
    sl_status_registry_destroy(&reg);
    free(url_text);
    return rc;
}
