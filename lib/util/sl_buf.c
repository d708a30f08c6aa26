/* sl_buf.c - growable byte buffer. */
#include "util/sl_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sl_buf_init(struct sl_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void
sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    sl_buf_init(b);
}

void
sl_buf_reserve(struct sl_buf *b, size_t extra)
{
    SL_BUG_ON(b->len + extra < b->len);
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = sl_realloc(b->data, cap);
    b->cap = cap;
}

void
sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    sl_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
sl_buf_append_str(struct sl_buf *b, const char *s)
{
    sl_buf_append(b, s, strlen(s));
}

void
sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SL_BUG_ON(n < 0);
    sl_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void
sl_buf_reset(struct sl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *
sl_buf_steal(struct sl_buf *b, size_t *len_r)
{
    if (b->data == NULL)
        sl_buf_append(b, "", 0);
    char *p = b->data;
    if (len_r)
        *len_r = b->len;
    sl_buf_init(b);
    return p;
}
