/* sl_buf.h - a growable byte buffer (always NUL-terminated for convenience). */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stddef.h>
#include "util/sl_util.h"

struct sl_buf {
    char *data;
    size_t len;
    size_t cap;
};

void sl_buf_init(struct sl_buf *b);
void sl_buf_free(struct sl_buf *b);            /* releases data; b may be reused after init */
void sl_buf_reserve(struct sl_buf *b, size_t extra);
void sl_buf_append(struct sl_buf *b, const void *p, size_t n);
void sl_buf_append_str(struct sl_buf *b, const char *s);
void sl_buf_printf(struct sl_buf *b, const char *fmt, ...) SL_PRINTF(2, 3);
void sl_buf_reset(struct sl_buf *b);           /* len = 0, keeps capacity */
/* Hands the bytes to the caller (who frees them); b is left empty. */
char *sl_buf_steal(struct sl_buf *b, size_t *len_r);

#endif
