/* bev_out.c - a bufferevent's output written straight to its socket (bev_out.h). */
#include "bev_out.h"

#include <event2/buffer.h>
#include <event2/event.h>

bool
fe_bev_write_out(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    if (bufferevent_get_enabled(bev) & EV_WRITE)
        return false; /* the bufferevent writes already */
    /* the bufferevent keeps its output's front frozen but while it writes */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, bufferevent_getfd(bev)) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) == 0)
        return true;
    /* the socket is full, or an error: the bufferevent deals with both */
    bufferevent_enable(bev, EV_WRITE);
    return false;
}
