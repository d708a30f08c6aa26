/* broker.h - the broker role: one logical job queue between frontends and
 * scanner workers (Majordomo-style, zguide ch. 4 / rfc.zeromq.org spec 7).
 *
 * One ROUTER socket bound to an endpoint; frontends (DEALER) send Job
 * frames (+ the body's frames) and client Heartbeats, workers (DEALER) send Ready
 * / Verdict / Heartbeat. The broker hands each job to a worker with a free
 * slot, choosing among origins in proportion to their concurrency (fair
 * scheduling, docs/cluster.md), forwards the verdict to the frontend that
 * sent the job, heartbeats workers and frontends, and never touches the
 * body bytes (zero-copy forwarding of its zmq_msg_t frames).
 *
 * Runs in its own thread; the caller keeps the ZeroMQ context alive. */
#ifndef SLUICE_BROKER_H
#define SLUICE_BROKER_H

#include <stddef.h>
#include "util/sl_id.h"
#include "util/sl_util.h"

struct sl_config;
struct broker;

/* A snapshot of the broker's state, refreshed by the broker thread about
 * every 100 ms (broker_stats copies it under a lock). */
struct broker_stats {
    char instance[SL_ID_LEN + 1];       /* random id of this broker's life */
    size_t depth;                       /* jobs waiting for a worker */
    unsigned long long oldest_age_ms;   /* age of the oldest waiting job, 0 if none */
    size_t inflight;                    /* jobs held by workers */
    unsigned n_workers;                 /* registered worker connections */
    unsigned slots_free;                /* worker slots free now */
    unsigned n_clients;                 /* frontends heard within the liveness window */
    unsigned n_origins;                 /* origins with a queue */
    unsigned long long n_jobs, n_verdicts, n_requeued, n_expired, n_failed, n_bad_frames,
        n_duplicates;
    unsigned long long updated_ms;      /* monotonic, when the thread took it; 0: not yet */
};

/* Binds endpoint (inproc:// in `sluice all`, tcp:// between nodes) and
 * starts the broker thread. NULL with *error_r (malloc'ed) on failure. */
struct broker *broker_start(void *zctx, const struct sl_config *config, const char *endpoint,
                            char **error_r);
/* Copies the latest snapshot; safe from any thread. */
void broker_stats(struct broker *broker, struct broker_stats *stats_r);
/* Stops the thread, closes the socket, frees. *brokerp may be NULL. */
void broker_stop(struct broker **brokerp);

/* SIGHUP: re-reads the allow-list (security.allow_dir) of a CURVE broker;
 * keys added are admitted, keys removed refused, at their next connect.
 * 0 (also when there is no allow-list), or -1 and a malloc'ed *error_r
 * (the previous list stays). Called from any thread. */
SL_WARN_UNUSED int broker_reload(struct broker *broker, char **error_r);

#endif
