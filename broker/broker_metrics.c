/* broker_metrics.c - a broker's metrics, health and readiness
 * (broker_metrics.h). */
#include "broker_metrics.h"

#include <stdio.h>

#include "broker.h"
#include "net/sl_zap.h"
#include "util/sl_metrics.h"
#include "util/sl_util.h"

#define BROKER_STALLED_MS 5000

static const double wait_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60,  300};

static struct {
    struct broker *broker;
    struct sl_metric *wait, *waiting, *oldest, *inflight, *workers, *slots_free, *frontends;
    struct sl_metric *jobs, *verdicts, *requeued, *expired, *failed, *bad_frames, *duplicates;
} m;

static void
broker_metrics_scrape(void *ctx)
{
    struct broker_stats st;

    (void)ctx;
    broker_stats(m.broker, &st);
    sl_metric_set(m.waiting, 0, (double)st.depth);
    sl_metric_set(m.oldest, 0, (double)st.oldest_age_ms / 1000);
    sl_metric_set(m.inflight, 0, (double)st.inflight);
    sl_metric_set(m.workers, 0, st.n_workers);
    sl_metric_set(m.slots_free, 0, st.slots_free);
    sl_metric_set(m.frontends, 0, st.n_clients);
    sl_metric_set(m.jobs, 0, (double)st.n_jobs);
    sl_metric_set(m.verdicts, 0, (double)st.n_verdicts);
    sl_metric_set(m.requeued, 0, (double)st.n_requeued);
    sl_metric_set(m.expired, 0, (double)st.n_expired);
    sl_metric_set(m.failed, 0, (double)st.n_failed);
    sl_metric_set(m.bad_frames, 0, (double)st.n_bad_frames);
    sl_metric_set(m.duplicates, 0, (double)st.n_duplicates);
}

void
broker_metrics_watch(struct sl_metrics *reg, struct broker *broker)
{
    m.broker = broker;
    sl_metrics_on_scrape(reg, broker_metrics_scrape, NULL);
}

void
broker_metrics_register(struct sl_metrics *reg)
{
    static const struct sl_metric_def defs[] = {
        SL_HISTOGRAM_DEF(&m.wait, "sluice_broker_queue_wait_seconds",
                         "Time a job waited for a worker: from its arrival at the broker to its "
                         "hand-out.",
                         NULL, 0, wait_bounds, 0),
        SL_GAUGE_DEF(&m.waiting, "sluice_broker_jobs_waiting", "Jobs waiting for a worker.", NULL,
                     0),
        SL_GAUGE_DEF(&m.oldest, "sluice_broker_oldest_job_age_seconds",
                     "Age of the oldest job waiting for a worker; 0 when none waits.", NULL, 0),
        SL_GAUGE_DEF(&m.inflight, "sluice_broker_jobs_in_flight", "Jobs held by workers.", NULL, 0),
        SL_GAUGE_DEF(&m.workers, "sluice_broker_workers", "Worker connections registered.", NULL,
                     0),
        SL_GAUGE_DEF(&m.slots_free, "sluice_broker_worker_slots_free", "Worker slots free now.",
                     NULL, 0),
        SL_GAUGE_DEF(&m.frontends, "sluice_broker_frontends",
                     "Frontends heard from within 3 heartbeats.", NULL, 0),
        SL_COUNTER_DEF(&m.jobs, "sluice_broker_jobs_total", "Jobs received from frontends.", NULL,
                       0, 0),
        SL_COUNTER_DEF(&m.verdicts, "sluice_broker_verdicts_total", "Verdicts passed to frontends.",
                       NULL, 0, 0),
        SL_COUNTER_DEF(&m.requeued, "sluice_broker_requeued_total",
                       "Jobs requeued because their worker died or left.", NULL, 0, 0),
        SL_COUNTER_DEF(&m.expired, "sluice_broker_expired_total",
                       "Jobs dropped because their deadline passed while queued.", NULL, 0, 0),
        SL_COUNTER_DEF(&m.failed, "sluice_broker_failed_total",
                       "Jobs answered with an error verdict (a poison message, a full queue).",
                       NULL, 0, 0),
        SL_COUNTER_DEF(&m.bad_frames, "sluice_broker_bad_frames_total",
                       "Frames from peers that failed validation.", NULL, 0, 0),
        SL_COUNTER_DEF(&m.duplicates, "sluice_broker_duplicate_jobs_total",
                       "Resubmitted jobs the broker held already.", NULL, 0, 0),
    };

    sl_metrics_add(reg, defs, SL_N_ELEMENTS(defs));
    sl_zap_metrics_register(reg);
}

void
broker_metrics_waited(unsigned long long queued_ms)
{
    if (m.wait != NULL)
        sl_metric_observe(m.wait, 0, (double)(sl_now_mono_ms() - queued_ms) / 1000);
}

bool
broker_metrics_alive(struct broker *broker, char *why, size_t len)
{
    struct broker_stats st;
    unsigned long long now = sl_now_mono_ms();

    broker_stats(broker, &st);
    if (st.updated_ms != 0 && now - st.updated_ms > BROKER_STALLED_MS) {
        snprintf(why, len, "broker: its thread has not run for %llu ms", now - st.updated_ms);
        return false;
    }
    return true;
}

bool
broker_metrics_ready(struct broker *broker, char *why, size_t len)
{
    struct broker_stats st;

    broker_stats(broker, &st);
    if (st.n_workers == 0) {
        snprintf(why, len, "broker: no worker registered");
        return false;
    }
    return true;
}
