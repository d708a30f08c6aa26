/* sl_inbuf.h - the input buffer of an incremental parser: the bytes fed
 * to it and not yet consumed, data[pos .. len).
 *
 * A parser appends what it is fed with sl_inbuf_feed() and consumes from
 * the front by advancing pos (sl_inbuf_consume(), sl_inbuf_clear()). The
 * consumed prefix is dropped lazily, inside feed(): only when this feed
 * does not fit behind the pending bytes and the prefix is at least as
 * large as they are, so that no byte is moved more often than bytes are
 * consumed (a pipelined client feeding small pieces would otherwise pay a
 * memmove of its pending line on every read). Otherwise the buffer grows.
 *
 * Pointers into data[pos .. len) stay valid until the next feed(); only
 * feed() moves or reallocates the bytes. The struct may be zero-initialised
 * instead of sl_inbuf_init(). */
#ifndef SL_INBUF_H
#define SL_INBUF_H

#include <stddef.h>

struct sl_inbuf {
    char *data; /* owned; NULL until the first feed */
    size_t pos; /* first unconsumed byte */
    size_t len; /* end of the bytes fed */
    size_t cap;
};

void sl_inbuf_init(struct sl_inbuf *b);
/* Releases the bytes; b may be reused after sl_inbuf_init(). */
void sl_inbuf_free(struct sl_inbuf *b);
void sl_inbuf_feed(struct sl_inbuf *b, const void *buf, size_t len);

/* Bytes fed and not consumed. */
static inline size_t
sl_inbuf_pending(const struct sl_inbuf *b)
{
    return b->len - b->pos;
}

/* The first of them ("" before the first feed: never NULL, so that
 * memchr(head, c, 0) and the like are defined). */
static inline const char *
sl_inbuf_head(const struct sl_inbuf *b)
{
    return b->data != NULL ? b->data + b->pos : "";
}

/* Consumes n pending bytes (n <= sl_inbuf_pending(b)). */
void sl_inbuf_consume(struct sl_inbuf *b, size_t n);
/* Consumes all of them. */
void sl_inbuf_clear(struct sl_inbuf *b);

#endif
