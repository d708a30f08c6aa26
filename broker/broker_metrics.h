/* broker_metrics.h - what a broker counts for Prometheus (docs/operations.md,
 * "Metrics and health"): how long jobs wait for a worker, and at scrape
 * time, from broker_stats()' snapshot, the jobs waiting and the oldest
 * one's age, jobs in flight, workers and free slots, and the broker's
 * counters; CURVE handshakes (net/sl_zap.h). Health and readiness too.
 *
 * Process-wide (one broker per process), registered by
 * broker_metrics_register(); before that every call is a NULL test. */
#ifndef SLUICE_BROKER_METRICS_H
#define SLUICE_BROKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct sl_metrics;

/* Adds the families to reg, before the broker starts. */
void broker_metrics_register(struct sl_metrics *reg);
/* Adds the scrape hook that reads broker's snapshot (on any thread);
 * broker must outlive reg's scrapes. */
void broker_metrics_watch(struct sl_metrics *reg, struct broker *broker);

/* A job that reached the broker at queued_ms (monotonic) was handed to a
 * worker now (broker thread). */
void broker_metrics_waited(unsigned long long queued_ms);

/* Health: the broker thread refreshed its snapshot within the last 5 s
 * (it loops every 100 ms). Readiness: a worker is registered. false with
 * the reason in why. */
bool broker_metrics_alive(struct broker *broker, char *why, size_t len);
bool broker_metrics_ready(struct broker *broker, char *why, size_t len);

#endif
