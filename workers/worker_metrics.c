/* worker_metrics.c - the workers' metrics and readiness (worker_metrics.h). */
#include "worker_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "scan.h"
#include "net/sl_wire.h"
#include "util/sl_metrics.h"
#include "util/sl_util.h"

#define SCANNER_FAILING_MS 60000 /* a failure this recent, without a success since: unready */

/* scan.h's scanners, then the built-in checks */
static const char *const scanners[] = {"clamd", "spamd", "rspamd", "checks"};
#define N_DAEMONS 3 /* the first three can fail */
static const char *const scan_results[] = {"ok", "failed"};
static const double scan_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60,  120};

static const char *const lookup_sources[] = {"sql", "ldap"};
static const char *const lookup_results[] = {"cached", "queried", "failed"};

static struct {
    struct sl_metric *scan_seconds, *scans, *scanner_errors, *job_seconds, *jobs, *slots, *busy;
    struct sl_metric *lookups, *lookup_seconds;
} m;

static _Atomic unsigned long long heard_ms;
static atomic_int busy;
static struct {
    _Atomic unsigned long long ok_ms, failed_ms;
    pthread_mutex_t lock; /* error */
    char error[200];
} state[N_DAEMONS] = {
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
};

static size_t
scanner_index(const char *name)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(scanners); i++)
        if (name != NULL && strcmp(name, scanners[i]) == 0)
            return i;
    return SL_N_ELEMENTS(scanners) - 1;
}

void
worker_metrics_register(struct sl_metrics *reg, unsigned slots)
{
    const struct sl_metric_dim scanner = SL_METRIC_DIM("scanner", scanners);
    const struct sl_metric_dim daemon = {"scanner", scanners, N_DAEMONS};
    const struct sl_metric_dim result[] = {daemon, SL_METRIC_DIM("result", scan_results)};
    const struct sl_metric_dim lookup_dims[] = {SL_METRIC_DIM("source", lookup_sources),
                                                SL_METRIC_DIM("result", lookup_results)};
    const struct sl_metric_def defs[] = {
        SL_HISTOGRAM_DEF(&m.scan_seconds, "sluice_scan_duration_seconds",
                         "Time of one message's scan by each scanner daemon (all its servers "
                         "tried), and of the built-in checks (checks).",
                         &scanner, 1, scan_bounds, SL_METRIC_SPARSE),
        SL_COUNTER_DEF(&m.scans, "sluice_scans_total",
                       "Scanner calls, one per message and daemon: ok (a server answered) or "
                       "failed (every server failed: UNCHECKED).",
                       result, 2, 0),
        SL_COUNTER_DEF(&m.scanner_errors, "sluice_scanner_errors_total",
                       "Failures of one scanner server (refused, timed out, protocol error); the "
                       "next server is tried.",
                       &daemon, 1, 0),
        SL_HISTOGRAM_DEF(&m.job_seconds, "sluice_worker_job_duration_seconds",
                         "Time a worker spends on one job: scanners, checks and policy.", NULL, 0,
                         scan_bounds, 0),
        SL_COUNTER_DEF(&m.jobs, "sluice_worker_jobs_total", "Jobs a worker took.", NULL, 0, 0),
        SL_GAUGE_DEF(&m.slots, "sluice_worker_slots",
                     "Worker threads, each scanning one message at a time.", NULL, 0),
        SL_GAUGE_DEF(&m.busy, "sluice_worker_slots_busy", "Worker threads scanning a message now.",
                     NULL, 0),
        SL_COUNTER_DEF(&m.lookups, "sluice_lookups_total",
                       "Recipients' policy lookups (lookup.sql, lookup.ldap): answered from the "
                       "cache, queried from the source, or failed (the recipient tempfailed).",
                       lookup_dims, 2, SL_METRIC_SPARSE),
        SL_HISTOGRAM_DEF(&m.lookup_seconds, "sluice_lookup_duration_seconds",
                         "Time of one recipient's query to the lookup source (cache misses).",
                         lookup_dims, 1, scan_bounds, SL_METRIC_SPARSE),
    };

    sl_metrics_add(reg, defs, SL_N_ELEMENTS(defs));
    sl_metric_set(m.slots, 0, slots);
}

void
worker_metrics_lookup(const char *source, const char *result, double seconds)
{
    if (m.lookups == NULL)
        return;
    size_t s = sl_metric_value_index(m.lookups, 0, source);
    size_t r = sl_metric_value_index(m.lookups, 1, result);
    sl_metric_inc(m.lookups, sl_metric_index(m.lookups, s, r, 0));
    if (strcmp(result, "cached") != 0)
        sl_metric_observe(m.lookup_seconds, sl_metric_index(m.lookup_seconds, s, 0, 0), seconds);
}

void
worker_metrics_heard(void)
{
    if (m.jobs != NULL)
        atomic_store_explicit(&heard_ms, sl_now_mono_ms(), memory_order_relaxed);
}

unsigned long long
worker_metrics_now(void)
{
    return m.jobs != NULL ? sl_now_mono_ms() : 0;
}

unsigned long long
worker_metrics_job_start(void)
{
    if (m.jobs == NULL)
        return 0;
    atomic_fetch_add_explicit(&busy, 1, memory_order_relaxed);
    sl_metric_gauge_add(m.busy, 0, 1);
    return sl_now_mono_ms();
}

void
worker_metrics_job_done(unsigned long long started_ms)
{
    if (m.jobs == NULL)
        return;
    atomic_fetch_sub_explicit(&busy, 1, memory_order_relaxed);
    sl_metric_gauge_add(m.busy, 0, -1);
    sl_metric_inc(m.jobs, 0);
    sl_metric_observe(m.job_seconds, 0, (double)(sl_now_mono_ms() - started_ms) / 1000);
}

void
worker_metrics_scan(const struct scan_result *res)
{
    size_t s = scanner_index(res->scanner);
    bool ok = res->status == SCAN_OK;

    if (m.scans == NULL || res->status == SCAN_OFF || s >= N_DAEMONS)
        return;
    sl_metric_observe(m.scan_seconds, s, (double)res->ms / 1000);
    sl_metric_inc(m.scans, sl_metric_index(m.scans, s, ok ? 0 : 1, 0));
    if (ok) {
        atomic_store_explicit(&state[s].ok_ms, sl_now_mono_ms(), memory_order_relaxed);
        return;
    }
    pthread_mutex_lock(&state[s].lock);
    snprintf(state[s].error, sizeof(state[s].error), "%s", res->error ? res->error : "?");
    pthread_mutex_unlock(&state[s].lock);
    atomic_store_explicit(&state[s].failed_ms, sl_now_mono_ms(), memory_order_relaxed);
}

void
worker_metrics_scanner_error(const char *scanner)
{
    size_t s = scanner_index(scanner);

    if (s < N_DAEMONS)
        sl_metric_inc(m.scanner_errors, s);
}

void
worker_metrics_checks(unsigned long long start_ms)
{
    if (m.scan_seconds != NULL)
        sl_metric_observe(m.scan_seconds, SL_N_ELEMENTS(scanners) - 1,
                          (double)(sl_now_mono_ms() - start_ms) / 1000);
}

bool
worker_metrics_ready(char *why, size_t len)
{
    unsigned long long now = sl_now_mono_ms();
    unsigned long long heard = atomic_load_explicit(&heard_ms, memory_order_relaxed);

    /* a thread busy with a job got it from a broker: registered, even if
     * no thread has read a heartbeat lately */
    if (atomic_load_explicit(&busy, memory_order_relaxed) == 0 &&
        (heard == 0 || now - heard > SL_WIRE_WORKER_LIVENESS_MS)) {
        snprintf(why, len, "worker: no broker heard from within %llu s (not registered)",
                 SL_WIRE_WORKER_LIVENESS_MS / 1000);
        return false;
    }
    for (size_t s = 0; s < N_DAEMONS; s++) {
        unsigned long long failed = atomic_load_explicit(&state[s].failed_ms, memory_order_relaxed);
        unsigned long long ok = atomic_load_explicit(&state[s].ok_ms, memory_order_relaxed);
        if (failed == 0 || failed <= ok || now - failed > SCANNER_FAILING_MS)
            continue;
        pthread_mutex_lock(&state[s].lock);
        snprintf(why, len, "worker: %s failed on every server %llu s ago: %s", scanners[s],
                 (now - failed) / 1000, state[s].error);
        pthread_mutex_unlock(&state[s].lock);
        return false;
    }
    return true;
}
