/* fuzz_status_json.c - libFuzzer target for lib/cli/sl_status_node: the
 * status JSON a node answers on GET /status, read back by `sluice status`
 * without Redis (docs/cluster.md, "sluice status").
 *
 * INPUT
 *   The body of the node's answer.
 *
 * INVARIANTS
 *   1. sl_status_registry_from_json() gives records, or NULL and an error
 *      string.
 *   2. Records read are summarized and printed, as text and as JSON,
 *      without fault; the JSON printed reads back, and printing that again
 *      gives the same bytes (a fixed point after one round), the text too.
 *   3. The nodes read back are sorted by id, and no node was seen after
 *      the clock it was read with.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"
#include "cli/sl_status.h"

#define NOW_MS 1700000000000ULL

static char *
print(const struct sl_status_registry *reg, sl_status_print_fn *fn, size_t *len_r)
{
    struct sl_status_summary *sum = sl_status_summary_new(reg);
    char *buf = NULL;
    FILE *fp = open_memstream(&buf, len_r);

    FUZZ_CHECK(fp != NULL, "open_memstream");
    fn(fp, reg, sum, "http://127.0.0.1:9100/status");
    fclose(fp);
    sl_status_summary_destroy(&sum);
    return buf;
}

static void
check_records(const struct sl_status_registry *reg)
{
    for (size_t i = 0; i < reg->n_nodes; i++) {
        FUZZ_CHECK(reg->nodes[i].seen_ms <= NOW_MS, "node %zu seen at %llu", i,
                   reg->nodes[i].seen_ms);
        FUZZ_CHECK(i == 0 || strcmp(reg->nodes[i - 1].id, reg->nodes[i].id) <= 0,
                   "nodes %zu and %zu out of order", i - 1, i);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *error = NULL;
    struct sl_status_registry *reg, *again;
    char *json, *json2, *text, *text2;
    size_t len, len2, tlen, tlen2;

    reg = sl_status_registry_from_json((const char *)data, size, NOW_MS, &error);
    if (reg == NULL) {
        FUZZ_CHECK(error != NULL && error[0] != '\0', "refused without a reason");
        return 0;
    }
    check_records(reg);
    json = print(reg, sl_status_print_json, &len);
    text = print(reg, sl_status_print_text, &tlen);
    again = sl_status_registry_from_json(json, len, NOW_MS, &error);
    if (again == NULL) {
        fuzz_dump("printed", json, len);
        FUZZ_CHECK(again != NULL, "the JSON printed does not read back: %s", error);
    }
    check_records(again);
    json2 = print(again, sl_status_print_json, &len2);
    text2 = print(again, sl_status_print_text, &tlen2);
    if (len2 != len || memcmp(json, json2, len) != 0) {
        fuzz_dump("first", json, len);
        fuzz_dump("again", json2, len2);
        FUZZ_CHECK(false, "printing the JSON read back is not a fixed point");
    }
    FUZZ_CHECK(tlen2 == tlen && memcmp(text, text2, tlen) == 0,
               "the text of the JSON read back differs");
    free(json);
    free(json2);
    free(text);
    free(text2);
    sl_status_registry_destroy(&again);
    sl_status_registry_destroy(&reg);
    return 0;
}
