/* fe_metrics.h - what the frontend counts for Prometheus (docs/operations.md,
 * "Metrics and health"): messages by category, destiny and origin, the
 * replies Postfix gets, reinjections, the ledger's calls, and at scrape
 * time its connections, jobs, brokers and each origin's sessions against
 * its concurrency.
 *
 * The families are process-wide (one frontend per process) and registered
 * by fe_metrics_register(); before that, or with metrics off, every
 * fe_metrics_* call does nothing but a NULL test. The calls are made from
 * the frontend's loop. Label values come from the configuration (origin
 * names) and from fixed lists (categories, destinies, classes, stages):
 * what a worker or the next hop sends is mapped onto them, never used as
 * a label. */
#ifndef SLUICE_FRONTEND_FE_METRICS_H
#define SLUICE_FRONTEND_FE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include "sluice.pb-c.h"

struct frontend;
struct sl_metrics;
struct sl_config;
struct sl_origin_config;

/* Adds the frontend's families to reg, one origin label value per origin
 * of config (which must outlive reg), before the frontend starts. */
void fe_metrics_register(struct sl_metrics *reg, const struct sl_config *config);
/* Adds the scrape hook that reads fe's live state: it runs on the thread
 * that writes the metrics, which must be fe's loop thread. fe must
 * outlive reg's scrapes. */
void fe_metrics_watch(struct sl_metrics *reg, struct frontend *fe);

/* One message (a job) as the metrics see it: the verdict's category and
 * destiny, as indexes into fe_metrics.c's lists. Zeroed: no verdict. */
struct fe_metrics_msg {
    unsigned char category;
    unsigned char destiny;
    bool verdict;
};
/* The verdict came. */
void fe_metrics_msg_verdict(struct fe_metrics_msg *m, const Sluice__Verdict *v);
/* The job ended: counted once, with the replies Postfix gets (NULL: the
 * client left), the origin and when its data ended (sl_now_mono_ms). */
void fe_metrics_msg_done(const struct fe_metrics_msg *m, const struct sl_origin_config *origin,
                         const char *const *replies, size_t n, unsigned long long start_ms);

/* A reply line written to Postfix (any command). */
void fe_metrics_reply(const char *line);

/* sl_now_mono_ms(), or 0 with metrics off (no clock read for nothing). */
unsigned long long fe_metrics_now(void);
/* A reinjection transaction that began at start_ms (fe_metrics_now())
 * ended: n_ok of n recipients accepted, n_5xx refused for good; stage:
 * the first failure's ("fwd-connect", ...) or NULL. */
void fe_metrics_reinjection(size_t n_ok, size_t n_5xx, size_t n, const char *stage, bool cancelled,
                            unsigned long long start_ms);

/* A call to the ledger (reserve: true, record or release: false), and a
 * call that failed (Redis unavailable, timed out, an error reply). */
void fe_metrics_ledger(bool reserve, bool failed);

#endif
