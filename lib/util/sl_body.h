/* sl_body.h - a reference-counted, immutable message body.
 *
 * A message is held in memory by the frontend session from end-of-data
 * until the reinjection answered. The same bytes are handed zero-copy to
 * ZeroMQ (inproc passes the pointer to the broker and worker threads), so
 * whoever is last - session, ZeroMQ's free callback, a worker - frees them.
 * Thread-safe reference counting (atomics). */
#ifndef SL_BODY_H
#define SL_BODY_H

#include <stddef.h>

struct sl_body {
    char *data;     /* CRLF line ends, not dot-stuffed */
    size_t len;
    int refs;       /* atomic; use the functions */
};

/* Takes ownership of data (malloc'ed). refs = 1. */
struct sl_body *sl_body_new(char *data, size_t len);
struct sl_body *sl_body_ref(struct sl_body *body);
/* Drops one reference and clears *bodyp; frees on the last. *bodyp may be NULL. */
void sl_body_unref(struct sl_body **bodyp);
/* Signature of zmq_free_fn: pass body as hint after sl_body_ref(). */
void sl_body_zmq_free(void *data, void *hint);

#endif
