/* sl_body.c - reference-counted message bodies. */
#include "util/sl_body.h"

#include <stdlib.h>
#include "util/sl_util.h"

struct sl_body *
sl_body_new(char *data, size_t len)
{
    struct sl_body *b = sl_calloc(1, sizeof(*b));
    b->data = data;
    b->len = len;
    b->refs = 1;
    return b;
}

struct sl_body *
sl_body_ref(struct sl_body *body)
{
    int old = __atomic_fetch_add(&body->refs, 1, __ATOMIC_RELAXED);
    SL_BUG_ON(old <= 0);
    return body;
}

void
sl_body_unref(struct sl_body **bodyp)
{
    struct sl_body *b = *bodyp;
    *bodyp = NULL;
    if (b == NULL)
        return;
    int old = __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL);
    SL_BUG_ON(old <= 0);
    if (old == 1) {
        free(b->data);
        free(b);
    }
}

void
sl_body_zmq_free(void *data, void *hint)
{
    struct sl_body *b = hint;
    (void)data;
    sl_body_unref(&b);
}
