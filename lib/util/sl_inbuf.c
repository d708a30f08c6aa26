/* sl_inbuf.c - a parser's input buffer (sl_inbuf.h). */
#include "util/sl_inbuf.h"

#include <stdlib.h>
#include <string.h>

#include "util/sl_util.h"

#define INBUF_MIN_CAP 1024

void
sl_inbuf_init(struct sl_inbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void
sl_inbuf_free(struct sl_inbuf *b)
{
    free(b->data);
    sl_inbuf_init(b);
}

/* Moving the pending bytes to the front costs as many bytes as are
 * pending. Doing it only when the dead prefix is at least that large, and
 * only when the tail is full, keeps the total bytes moved below the total
 * consumed; the buffer then holds at most twice the pending bytes plus a
 * feed, so it stays bounded wherever the parser bounds what is pending. */
void
sl_inbuf_feed(struct sl_inbuf *b, const void *buf, size_t len)
{
    if (len == 0)
        return;
    if (b->pos == b->len) {
        b->pos = b->len = 0; /* nothing pending: start over at no cost */
    } else if (b->len + len > b->cap && b->pos >= b->len - b->pos) {
        memmove(b->data, b->data + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
    }
    SL_BUG_ON(b->len + len < b->len);
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : INBUF_MIN_CAP;
        while (cap < b->len + len) {
            SL_BUG_ON(cap * 2 < cap);
            cap *= 2;
        }
        b->data = sl_realloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
}

void
sl_inbuf_consume(struct sl_inbuf *b, size_t n)
{
    SL_BUG_ON(n > b->len - b->pos);
    b->pos += n;
}

void
sl_inbuf_clear(struct sl_inbuf *b)
{
    b->pos = b->len = 0;
}
