/* broker_link.h - the frontend's connection to the broker(s): a DEALER
 * socket driven by the frontend's libevent loop.
 *
 * ZeroMQ's ZMQ_FD is edge-triggered: after every send and receive, and on
 * every wake-up, ZMQ_EVENTS is checked and the socket drained until nothing
 * is readable (DESIGN-NOTES.md, "Edge-triggered trap"). */
#ifndef SLUICE_FRONTEND_BROKER_LINK_H
#define SLUICE_FRONTEND_BROKER_LINK_H

#include <stddef.h>
#include <event2/event.h>
#include "sluice.pb-c.h"
#include "util/sl_body.h"

struct fe_broker_link;

/* Called for each verdict that arrives; verdict is valid during the call. */
typedef void fe_verdict_fn(void *ctx, const Sluice__Verdict *verdict);

struct fe_broker_link *fe_broker_link_new(struct event_base *base, void *zctx,
                                          char *const *endpoints, size_t n_endpoints,
                                          fe_verdict_fn *on_verdict, void *ctx, char **error_r);
void fe_broker_link_destroy(struct fe_broker_link **linkp);

/* Queues a job for the broker; the body goes zero-copy (a reference is
 * taken and dropped when ZeroMQ is done with it). Returns 0, or -1 if the
 * job could not be queued (the caller tempfails its recipients). */
int fe_broker_link_submit(struct fe_broker_link *link, const Sluice__Job *job,
                          struct sl_body *body);

#endif
