/* frontend.h - the frontend role: the LMTP/SMTP server on port 10024.
 *
 * Accepts connections from the origin Postfix instances, receives each
 * message, hands it to the broker as a job, and holds the connection open
 * until the verdict came back and the reinjector has delivered the message
 * to the origin's :10025. Only then does it answer the final ".", one reply
 * per recipient (LMTP, RFC 2033) carrying the next hop's own reply. Any
 * failure on the way is a 4xx, so Postfix keeps the mail queued.
 *
 * Runs entirely inside one libevent loop (the caller's). */
#ifndef SLUICE_FRONTEND_H
#define SLUICE_FRONTEND_H

#include <stdbool.h>
#include <event2/event.h>
#include "broker_link.h"

struct sl_config;
struct frontend;

/* Accepts on listen_fds (n_listen_fds >= 1 listening, non-blocking
 * sockets: frontend.listen bound by the caller, or systemd's; the frontend
 * owns and closes them) and connects to the brokers in endpoints. The
 * frontend takes a reference to config; what the broker link, the ledger
 * and the listeners use of it stays for the frontend's life. NULL with
 * *error_r (malloc'ed). */
struct frontend *frontend_new(struct event_base *base, void *zctx,
                              const struct sl_config *config, const int *listen_fds,
                              size_t n_listen_fds, char *const *endpoints, size_t n_endpoints,
                              char **error_r);

/* A reload: connections accepted from now on are served with config
 * (frontend.acl, .timeout, .recipient_limit, the origins), messages whose
 * data ends from now on get its job.timeout and reinjection; the sessions
 * and jobs under way keep theirs (frontend/settings.h). reinject.timeout
 * applies at once. The frontend takes its own reference. */
void frontend_reconfigure(struct frontend *fe, const struct sl_config *config);

/* Graceful stop (SIGTERM): closes the listener, says 421 to idle sessions,
 * lets messages in flight finish. done_cb(ctx) runs once nothing is left. */
void frontend_shutdown(struct frontend *fe, void (*done_cb)(void *ctx), void *ctx);

void frontend_destroy(struct frontend **fep);

/* What the registry publishes (docs/cluster.md). Names point into the
 * configuration. */
#define FRONTEND_STATS_ORIGINS 64
struct frontend_stats {
    unsigned n_sessions;        /* LMTP/SMTP connections open */
    unsigned n_jobs;            /* messages waiting for a verdict */
    size_t n_origins;
    struct {
        const char *name;
        unsigned active;        /* transactions holding a slot */
        unsigned concurrency;   /* origins.<name>.concurrency */
    } origins[FRONTEND_STATS_ORIGINS];
    struct fe_broker_link_stats link;
};
void frontend_stats(const struct frontend *fe, struct frontend_stats *stats_r);

/* Can it take mail (/readyz, docs/operations.md)? A broker answers, every
 * reinjection target known answers, and it is not stopping; false with
 * the reason in why. Runs on fe's loop. */
bool frontend_ready(struct frontend *fe, char *why, size_t len);

#endif
