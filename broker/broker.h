/* broker.h - the broker role: one logical job queue between frontends and
 * scanner workers (Majordomo-style, zguide ch. 4 / rfc.zeromq.org spec 7).
 *
 * One ROUTER socket bound to an endpoint; frontends (DEALER) send Job
 * frames (+ body frame), workers (DEALER) send Ready / Verdict / Heartbeat.
 * The broker hands each job to a worker with a free slot, forwards the
 * verdict to the frontend that sent the job, and never touches the body
 * bytes (zero-copy forwarding of the zmq_msg_t).
 *
 * Runs in its own thread; the caller keeps the ZeroMQ context alive. */
#ifndef SLUICE_BROKER_H
#define SLUICE_BROKER_H

struct sl_config;
struct broker;

/* Binds endpoint (inproc:// in `sluice all`, tcp:// between nodes) and
 * starts the broker thread. NULL with *error_r (malloc'ed) on failure. */
struct broker *broker_start(void *zctx, const struct sl_config *config, const char *endpoint,
                            char **error_r);
/* Stops the thread, closes the socket, frees. *brokerp may be NULL. */
void broker_stop(struct broker **brokerp);

#endif
