/* bev_out.h - a bufferevent's output written straight to its socket.
 *
 * The SMTP sessions' replies and the reinjection's commands are written
 * from the loop once the current callback is done, not through the
 * bufferevent's write event: that event costs three system calls a write
 * (an epoll_ctl to add it, a loop turn for it to fire, an epoll_ctl to
 * remove it), so it is enabled only while the socket cannot take it all. */
#ifndef SLUICE_FRONTEND_BEV_OUT_H
#define SLUICE_FRONTEND_BEV_OUT_H

#include <stdbool.h>
#include <event2/bufferevent.h>

/* Writes bev's output to its socket. true: all of it was written (the
 * caller goes on as its write callback would); false: the bufferevent
 * writes the rest itself and calls the write callback, or reports an error
 * to the event callback. */
bool fe_bev_write_out(struct bufferevent *bev);

#endif
