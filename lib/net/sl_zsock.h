/* sl_zsock.h - ZeroMQ socket helpers shared by frontend, broker and worker.
 *
 * Options every role sets the same way, sending a Frame in one call, and
 * the multipart bookkeeping that is easy to get wrong (a malformed message
 * must be drained to its last part, or the next recv starts mid-message). */
#ifndef SL_ZSOCK_H
#define SL_ZSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>
#include "sluice.pb-c.h"
#include "conf/sl_config.h"
#include "util/sl_util.h"

#define SL_ZSOCK_HWM 10000          /* messages; a job (frame + body) counts as one */
#define SL_ZSOCK_LINGER_MS 200      /* a Disconnect can still leave; shutdown stays quick */

/* zmq_ctx_new() with what every role wants of its context:
 * ZMQ_ZERO_COPY_RECV off. With it on (libzmq's default) the tcp decoder
 * reads into 8 KiB buffers and hands out messages that point into them,
 * so a 4 KiB body held while its job waits keeps a whole buffer alive,
 * and the buffers churn through malloc; off, each message larger than a
 * small one gets an allocation of its own size (bodies larger than the
 * buffer are read into theirs directly either way). The broker's memory
 * per waiting job: docs/capacity.md. NULL as zmq_ctx_new(). */
void *sl_zsock_ctx_new(void);

/* Sets LINGER, SNDHWM/RCVHWM, TCP-level heartbeats (dead peers behind a
 * silent network) and ZMQ_MAXMSGSIZE = max_body + SL_WIRE_FRAME_MAX.
 * max_body is the largest body frame this socket may receive
 * (frontend.max_message_size); 0 for a socket that receives no bodies.
 * (ZMQ_MAXMSGSIZE applies to tcp:// only; inproc:// peers are trusted
 * threads of the same process.) */
void sl_zsock_set_common(void *sock, size_t max_body);

/* After sl_zsock_set_common, on a socket with up to thousands of peers
 * (the broker's ROUTER) and on a worker's socket (one of those peers): no
 * ZMTP PINGs; the kernel frees the connection of a peer that vanished
 * without a FIN (TCP keepalive probes after SL_ZSOCK_HUB_IDLE_S idle,
 * and unacknowledged data given up after SL_ZSOCK_HUB_MAXRT_MS). The
 * application heartbeats decide liveness in both directions. ZMTP PINGs
 * cost more than they were worth here: libzmq 4.3 keeps an I/O thread's
 * timers in one ordered map and cancels one by walking the map
 * (poller_base_t::cancel_timer), the first message after each PING
 * cancels its timeout, and a worker's PING and the broker's PONG, and the
 * broker's PING and the worker's PONG, were four of the frames a worker
 * cost its broker (docs/capacity.md). */
#define SL_ZSOCK_HUB_IDLE_S 30
#define SL_ZSOCK_HUB_MAXRT_MS 60000
void sl_zsock_set_hub(void *sock);

/* CURVE on a socket that binds (server: the broker) or connects to
 * endpoint, as config->security says after sl_keys_resolve(): nothing for
 * inproc:// or plain mode. A server gets ZMQ_ZAP_DOMAIN = SL_ZAP_DOMAIN
 * and ZMQ_ZAP_ENFORCE_DOMAIN, so that with no ZAP handler running every
 * handshake fails rather than passes. Call before bind/connect.
 * 1: CURVE set; 0: plain; -1 with *error_r (static) if libzmq refused. */
SL_WARN_UNUSED int sl_zsock_set_curve(void *sock, const struct sl_config *config,
                                      const char *endpoint, bool server, const char **error_r);

/* setsockopt for an int option; a failure is a programming error. */
void sl_zsock_set_int(void *sock, int option, int value);

/* Packs frame (sl_wire_pack) and sends it as one part with flags (as
 * zmq_msg_send: ZMQ_SNDMORE, ZMQ_DONTWAIT). 0, or -1 with errno (EAGAIN,
 * EHOSTUNREACH..., EINVAL for an invalid frame) and *error_r (static). */
SL_WARN_UNUSED int sl_zsock_send_frame(void *sock, Sluice__Frame *frame, int flags,
                                       const char **error_r);

/* Sends len bytes as one part (a ROUTER identity). 0 or -1 with errno. */
SL_WARN_UNUSED int sl_zsock_send_bytes(void *sock, const void *data, size_t len, int flags);

/* True if the part last received on sock has more parts after it. */
bool sl_zsock_more(void *sock);

/* Receives and discards the rest of the current multipart message.
 * Returns how many parts were discarded. */
size_t sl_zsock_drain_more(void *sock);

/* ZMQ_EVENTS has ZMQ_POLLIN: a whole message can be received now. */
bool sl_zsock_readable(void *sock);

/* sock's ZMQ_FD, to poll(2) with other descriptors. It is edge-triggered:
 * it says only that the socket's state changed, and any operation on the
 * socket (a send too) may take that signal, so ask sl_zsock_readable()
 * before sleeping on it and after waking (docs/design.md). */
int sl_zsock_fd(void *sock);

/* Starts monitoring sock for events (ZMQ_EVENT_*) on an inproc PAIR of
 * zctx, returned: poll it (its ZMQ_FD is edge-triggered: read every
 * event with sl_zsock_monitor_event until 0), then end both with
 * sl_zsock_monitor_close before closing sock. NULL if libzmq refused: a
 * monitor only hastens what heartbeats find out anyway. */
void *sl_zsock_monitor_open(void *zctx, void *sock, int events);

/* The next event waiting on mon (a ZMQ_EVENT_* value), 0 if none. */
int sl_zsock_monitor_event(void *mon);

/* Stops the monitor of sock and closes *mon (NULL after; NULL is fine). */
void sl_zsock_monitor_close(void *sock, void **mon);

#endif
