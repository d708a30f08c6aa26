/* worker.h - the scanner worker role: takes jobs from the broker, scans
 * each message (clamd, spamd, rspamd per scanners.*, and the built-in
 * checks of checks.h, concurrently), decides per recipient with
 * amavisd-new's policy (policy.h) and returns a Verdict with header edits
 * (sluice's Received: line, X-Virus-Scanned, X-Spam-*...) and destinies.
 *
 * A pool of `count` threads, each with its own DEALER socket connected to
 * every broker endpoint, each taking one job at a time. */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <stddef.h>

struct sl_config;
struct worker_pool;

/* The pool takes a reference to config; it logs which scanners the jobs
 * use (a warning when there is none). */
struct worker_pool *worker_pool_start(void *zctx, const struct sl_config *config,
                                      char *const *endpoints, size_t n_endpoints, unsigned count,
                                      char **error_r);
/* A reload: jobs that arrive from now on are scanned with config
 * (scanners.*, policy.*, policy_banks); jobs in progress finish with the
 * configuration they started with. The pool takes its own reference. What
 * the sockets use (broker.*, security.*, frontend.max_message_size) stays
 * as at start. Called from any one thread. */
void worker_pool_reconfigure(struct worker_pool *pool, const struct sl_config *config);
/* Stops and joins every thread (a job in progress is finished or dropped;
 * the frontend's deadline covers a dropped one). *poolp may be NULL. */
void worker_pool_stop(struct worker_pool **poolp);

#endif
