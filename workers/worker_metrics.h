/* worker_metrics.h - what the workers count for Prometheus (docs/operations.md,
 * "Metrics and health"): each scanner's time, results and failed servers,
 * the jobs and their time, the slots and how many are busy; and what their
 * readiness says: heard from a broker lately, no scanner failing.
 *
 * Process-wide, like the pool (one per process); registered by
 * worker_metrics_register(), before which (metrics off) every call does
 * nothing but a NULL test. Called from the worker threads and their
 * scanner helpers at once: everything is an atomic. */
#ifndef SLUICE_WORKERS_WORKER_METRICS_H
#define SLUICE_WORKERS_WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct sl_metrics;
struct scan_result;

/* slots: the pool's threads. */
void worker_metrics_register(struct sl_metrics *reg, unsigned slots);

/* A frame from a broker arrived (any: heartbeats prove it alive). */
void worker_metrics_heard(void);
/* sl_now_mono_ms(), or 0 with metrics off (no clock read for nothing). */
unsigned long long worker_metrics_now(void);
/* One job: started (returns worker_metrics_now()), then done. */
unsigned long long worker_metrics_job_start(void);
void worker_metrics_job_done(unsigned long long started_ms);
/* A scanner's call for one message ended (res->status SCAN_OK or
 * SCAN_FAILED; SCAN_OFF is not counted), and one server of it failed
 * (refused, timed out, a protocol error: failover may still save the
 * call). */
void worker_metrics_scan(const struct scan_result *res);
void worker_metrics_scanner_error(const char *scanner);
/* The built-in checks of one message, begun at start_ms
 * (worker_metrics_now()), are done. */
void worker_metrics_checks(unsigned long long start_ms);

/* One recipient's policy lookup (lookup.sql, lookup.ldap): source "sql"
 * or "ldap"; result "cached", "queried" or "failed"; seconds: the time
 * spent asking (queried, failed). */
void worker_metrics_lookup(const char *source, const char *result, double seconds);

/* Readiness: a broker answered within the liveness window (3 heartbeats),
 * and no scanner failed on every server within the last minute without
 * answering since. false with the reason in why. */
bool worker_metrics_ready(char *why, size_t len);

#endif
