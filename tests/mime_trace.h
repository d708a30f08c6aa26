/* mime_trace.h - one line of text for everything the built-in checks read
 * of a MIME walk (workers/mime_check.h): its leaves and its result. Two
 * walks of one message agree when their lines are equal; test_mime_check
 * and fuzz_mime hold the walk as a part against the walk as a message so.
 * Header-only, shared by the unit and the fuzz build. */
#ifndef SL_TESTS_MIME_TRACE_H
#define SL_TESTS_MIME_TRACE_H

#include <gmime/gmime.h>

#include "../workers/mime_check.h"
#include "util/sl_buf.h"

/* A leaf: where it is, what it is, and an FNV-1a hash of the bytes held. */
static inline void
mime_trace_leaf(struct sl_buf *b, const struct mime_leaf *leaf)
{
    unsigned long long h = 1469598103934665603ull;

    for (size_t i = 0; i < leaf->len; i++)
        h = (h ^ (unsigned char)leaf->data[i]) * 1099511628211ull;
    sl_buf_printf(b, "[%u %u %s %s %s %d %d %zu %llx]", leaf->index, leaf->depth, leaf->type,
                  leaf->filename != NULL ? leaf->filename : "-",
                  leaf->smime_type != NULL ? leaf->smime_type : "-", leaf->whole, leaf->encrypted,
                  leaf->len, h);
}

/* The walk's result: every parser finding but two warnings only the
 * message parse makes (address lists, a malformed message) and nothing
 * reads. */
static inline void
mime_trace_result(struct sl_buf *b, int r, const struct mime_info *info)
{
    sl_buf_printf(b, " r=%d parsed=%d parts=%u crit=%u mask=%llx trunc=%d id=%s", r, info->parsed,
                  info->parts, info->criticals,
                  info->issue_mask & ~(1ULL << GMIME_WARN_INVALID_ADDRESS_LIST |
                                       1ULL << GMIME_WARN_MALFORMED_MESSAGE),
                  info->truncated_walk, info->message_id != NULL ? info->message_id : "-");
}

#endif
