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

struct worker_pool *worker_pool_start(void *zctx, const struct sl_config *config,
                                      char *const *endpoints, size_t n_endpoints, unsigned count,
                                      char **error_r);
/* Stops and joins every thread (a job in progress is finished or dropped;
 * the frontend's deadline covers a dropped one). *poolp may be NULL. */
void worker_pool_stop(struct worker_pool **poolp);

#endif
