/* fuzz_mime.c - libFuzzer target for workers/mime_check: the worker's MIME
 * pass over a message as it comes from Postfix, whose leaves the banned
 * checks read and whose parser warnings become bad-header findings.
 *
 * INPUT
 *   the message, any bytes.
 *
 * INVARIANTS
 *   1. The walk the worker runs (the top level parsed as a MIME part) and
 *      the walk over GMime's message object give the same leaves (index,
 *      depth, type, file name, smime-type, whole, encrypted, length and
 *      bytes), the same result, part count, critical warnings, warning kinds
 *      (but the two only the message parse makes: address lists, a
 *      malformed message), truncation and Message-ID.
 *   2. Leaves come in walk order (indexes rise) within the depth limit; a
 *      type is lowercase; a leaf holds at most MIME_LEAF_HEAD bytes unless
 *      they lie in the message itself, and a leaf that is not whole holds
 *      exactly MIME_LEAF_HEAD.
 *   3. A Message-ID is 1 to 255 bytes of printable ASCII.
 */
#include <gmime/gmime.h>
#include <string.h>

#include "fuzz_common.h"
#include "../mime_trace.h"

struct trace {
    const char *msg;
    size_t len;
    unsigned last_index;
    struct sl_buf b;
};

static void
on_leaf(void *ctx, const struct mime_leaf *leaf)
{
    struct trace *t = ctx;
    bool in_place = leaf->data >= t->msg && leaf->data + leaf->len <= t->msg + t->len;

    FUZZ_CHECK(leaf->index > t->last_index, "leaf %u after leaf %u", leaf->index, t->last_index);
    t->last_index = leaf->index;
    FUZZ_CHECK(leaf->depth < MIME_CHECK_MAX_DEPTH, "leaf at depth %u", leaf->depth);
    for (const char *p = leaf->type; *p != '\0'; p++)
        FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "type \"%s\" not lowercase", leaf->type);
    FUZZ_CHECK(in_place || leaf->len <= MIME_LEAF_HEAD, "leaf of %zu bytes held", leaf->len);
    FUZZ_CHECK(leaf->whole || leaf->len == MIME_LEAF_HEAD, "a partial leaf of %zu bytes",
               leaf->len);
    mime_trace_leaf(&t->b, leaf);
}

static char *
walk(const char *msg, size_t len, bool as_message)
{
    struct trace t = {.msg = msg, .len = len};
    struct mime_info info;
    int r;

    sl_buf_init(&t.b);
    r = as_message ? mime_check_walk_as_message(msg, len, &info, on_leaf, &t)
                   : mime_check_walk(msg, len, &info, on_leaf, &t);
    if (info.message_id != NULL) {
        size_t n = strlen(info.message_id);
        FUZZ_CHECK(n >= 1 && n <= 255, "Message-ID of %zu bytes", n);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(info.message_id[i] > 0x20 && info.message_id[i] < 0x7f,
                       "Message-ID byte 0x%02x", (unsigned char)info.message_id[i]);
    }
    mime_trace_result(&t.b, r, &info);
    mime_info_free(&info);
    return sl_buf_steal(&t.b, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    char *msg, *part, *whole;

    if (!ready) {
        mime_check_init();
        ready = true;
    }
    msg = malloc(size + 1); /* its own block: ASan sees any read past the end */
    if (msg == NULL)
        return 0;
    memcpy(msg, data, size);
    part = walk(msg, size, false);
    whole = walk(msg, size, true);
    if (strcmp(part, whole) != 0) {
        fuzz_dump("message", msg, size);
        FUZZ_CHECK(false, "as a part:    %s\n  as a message: %s", part, whole);
    }
    free(part);
    free(whole);
    free(msg);
    return 0;
}
