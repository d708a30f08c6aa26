/* broker_link.h - the frontend's connections to the broker(s): one DEALER
 * socket per broker endpoint, driven by the frontend's libevent loop.
 *
 * The link keeps every job it was given until its verdict came back or the
 * caller withdraws it (fe_broker_link_withdraw): it holds a reference on
 * the body anyway. Each job carries its caller's context, handed back with
 * its verdict: the caller keeps no table of its own. Brokers heartbeat the link every second; a broker silent for
 * 3 s, or one whose instance id changed (it restarted and lost its queue),
 * has its jobs resubmitted through another broker (docs/cluster.md); after
 * a stall of the frontend itself (SIGSTOP, a VM migration) brokers get a
 * fresh 3 s before they are judged, and their jobs stay with them. A job
 * no broker can take waits in the link until one can, or until the caller
 * gives up at its deadline and withdraws it. Verdicts are matched by job
 * id; a second verdict for a resubmitted job, or one for a job already
 * withdrawn, is dropped here and counted.
 *
 * ZeroMQ's ZMQ_FD is edge-triggered: after every send and receive, and on
 * every wake-up, ZMQ_EVENTS is checked and the socket drained until nothing
 * is readable (docs/design.md, "The edge-triggered trap"). */
#ifndef SLUICE_FRONTEND_BROKER_LINK_H
#define SLUICE_FRONTEND_BROKER_LINK_H

#include <stddef.h>
#include <event2/event.h>
#include "sluice.pb-c.h"
#include "conf/sl_config.h"
#include "util/sl_body.h"

struct fe_broker_link;
struct fe_link_job;

/* Called for each verdict that arrives for a job the link holds, at most
 * once per job, with the context given to fe_broker_link_submit(); the
 * link has forgotten the job by then. verdict is valid during the call. */
typedef void fe_verdict_fn(void *job_ctx, const Sluice__Verdict *verdict);
/* Returns the weight (origins.<name>.concurrency) to put in a job. */
typedef unsigned fe_origin_weight_fn(void *ctx, const char *origin);

struct fe_broker_link_stats {
    unsigned n_brokers;             /* endpoints */
    unsigned n_alive;               /* brokers heard within the last 3 s */
    unsigned held;                  /* jobs sent, verdict pending */
    unsigned pending;               /* jobs no broker has taken yet */
    unsigned long long n_jobs, n_verdicts, n_resubmitted, n_duplicate_verdicts, n_bad;
};

/* config (NULL: no CURVE) must outlive the link: its security.* keys,
 * resolved by sl_keys_resolve(), make every tcp:// connection a CURVE
 * client of the brokers' key (sl_zsock_set_curve). */
struct fe_broker_link *fe_broker_link_new(struct event_base *base, void *zctx,
                                          char *const *endpoints, size_t n_endpoints,
                                          const struct sl_config *config,
                                          fe_verdict_fn *on_verdict, char **error_r);
/* Releases every held job's body reference and closes the sockets. */
void fe_broker_link_destroy(struct fe_broker_link **linkp);

/* Jobs sent from now on carry weight_fn(ctx, job->origin) as
 * Job.origin_concurrency (fair scheduling in the brokers). */
void fe_broker_link_set_weight_fn(struct fe_broker_link *link, fe_origin_weight_fn *weight_fn,
                                  void *ctx);

/* Takes a job (its id fresh from sl_id_new): sends it to a broker now if
 * one can take it, else keeps it until one can; the body goes zero-copy (a
 * reference is held until the verdict or the withdrawal). Returns the
 * link's handle on it, valid until its verdict is delivered or it is
 * withdrawn, or NULL if the job can never be sent (it does not pass
 * sl_wire_check; the caller tempfails). */
struct fe_link_job *fe_broker_link_submit(struct fe_broker_link *link, const Sluice__Job *job,
                                          struct sl_body *body, void *ctx);

/* The caller no longer wants the verdict (deadline, client gone): the link
 * drops the job, and any later verdict for it. *jobp may be NULL; cleared. */
void fe_broker_link_withdraw(struct fe_broker_link *link, struct fe_link_job **jobp);

void fe_broker_link_stats(const struct fe_broker_link *link, struct fe_broker_link_stats *stats_r);

#endif
