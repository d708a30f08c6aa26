/* sl_wire.h - the wire format between frontend, broker and worker
 * (proto/sluice.proto, docs/protocol-wire.md).
 *
 * Every ZeroMQ message between roles is a protobuf Frame, optionally
 * followed by one raw body frame (with Job only). This module packs a Frame
 * into a zmq_msg_t and unpacks + validates one received from another node.
 *
 * Frames come from the network: nothing here asserts on their contents.
 * Invalid input gives -1 and a static error string ("job.job_id: not 12
 * base64url characters"), which the caller logs and counts: input from other nodes is never asserted on.
 *
 * The same validation runs on the sending side (sl_wire_pack), so a sender
 * learns at once that a peer would drop its frame (e.g. a Job whose
 * recipients do not fit in SL_WIRE_FRAME_MAX) and can tempfail instead of
 * waiting for a deadline. */
#ifndef SL_WIRE_H
#define SL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>
#include "sluice.pb-c.h"
#include "util/sl_util.h"

#define SL_WIRE_VERSION 1               /* SLUICE__VERSION__VERSION_1 */
/* Bytes of the packed Frame (not the body): room for frontend.recipient_limit
 * (1100) recipients with long addresses, NOTIFY and ORCPT values. */
#define SL_WIRE_FRAME_MAX (4 * 1024 * 1024)

/* Validation limits; docs/protocol-wire.md, "Validation". */
#define SL_WIRE_MAX_RCPTS 100000
#define SL_WIRE_MAX_EDITS 1000
#define SL_WIRE_MAX_STR 1024            /* any string field not listed below */
#define SL_WIRE_MAX_WORKER_ID 128
#define SL_WIRE_MAX_HEADER_NAME 76      /* RFC 5322 2.1.1: a name must fit a 78-char line */
#define SL_WIRE_MAX_HEADER_VALUE 16384
#define SL_WIRE_MAX_SLOTS 1024          /* per Ready */
#define SL_WIRE_MAX_ATTEMPT 1000
#define SL_WIRE_MAX_FACTS 1000          /* items in each list of Verdict.facts */

/* Majordomo-style liveness (docs/protocol-wire.md, "Heartbeats").
 * Frontends and brokers hear each other every SL_WIRE_HEARTBEAT_MS. A
 * worker without a job is heartbeated every SL_WIRE_WORKER_HEARTBEAT_MS
 * (it asks for it in Ready.idle_heartbeat_ms; workers that do not ask get
 * SL_WIRE_HEARTBEAT_MS): it has nothing at stake, and a thousand of them
 * heard every second cost their broker 4% of a core. A worker given a job
 * is held to SL_WIRE_HEARTBEAT_MS again from the hand-out: it heartbeats
 * every second while it scans. */
#define SL_WIRE_HEARTBEAT_MS 1000
#define SL_WIRE_WORKER_HEARTBEAT_MS 3000
#define SL_WIRE_HEARTBEAT_LIVENESS 3    /* intervals of silence before a peer is dead */
#define SL_WIRE_MAX_HEARTBEAT_MS 600000 /* Ready.idle_heartbeat_ms */
/* A worker answers each of its broker's heartbeats at once, unless it sent
 * that broker something within the last SL_WIRE_HEARTBEAT_ANSWERED_MS (a
 * verdict, or the answer to a heartbeat read late); on its own it
 * heartbeats after SL_WIRE_HEARTBEAT_MS without a send while it scans
 * (it cannot read then), after SL_WIRE_HEARTBEAT_IDLE_MS while idle: later
 * than the broker's next heartbeat, which it answers instead. */
#define SL_WIRE_HEARTBEAT_ANSWERED_MS (SL_WIRE_HEARTBEAT_MS / 2)
#define SL_WIRE_HEARTBEAT_IDLE_MS (SL_WIRE_WORKER_HEARTBEAT_MS * 3 / 2)
/* Silence after which a peer is dead: SL_WIRE_LIVENESS_MS for a frontend,
 * a broker as its frontends see it and a worker holding a job;
 * SL_WIRE_WORKER_LIVENESS_MS for a worker holding none and a broker as
 * its workers see it. */
#define SL_WIRE_LIVENESS_MS ((unsigned long long)SL_WIRE_HEARTBEAT_MS * SL_WIRE_HEARTBEAT_LIVENESS)
#define SL_WIRE_WORKER_LIVENESS_MS \
    ((unsigned long long)SL_WIRE_WORKER_HEARTBEAT_MS * SL_WIRE_HEARTBEAT_LIVENESS)
#define SL_WIRE_MAX_FAILURES 3          /* workers a job may take down before it fails */
/* A node whose own loop turns are further apart than this was stalled
 * (SIGSTOP, a VM migration, swapping): it could not hear its peers
 * meanwhile, so it gives them a fresh liveness period before it judges
 * their silence (docs/cluster.md, "Pauses and partitions"). Loops turn at
 * least every 200 ms. */
#define SL_WIRE_STALL_MS SL_WIRE_HEARTBEAT_MS

/* A loop's turn at monotonic time now: how long the node was stalled (the
 * time since its previous turn, *turn_ms) if that is more than
 * SL_WIRE_STALL_MS, else 0. *turn_ms becomes now; 0 means no turn yet. */
static inline unsigned long long
sl_wire_stalled(unsigned long long *turn_ms, unsigned long long now)
{
    unsigned long long gap = *turn_ms != 0 && now > *turn_ms ? now - *turn_ms : 0;

    *turn_ms = now;
    return gap > SL_WIRE_STALL_MS ? gap : 0;
}

/* A job's body on the wire (proto/sluice.proto): one frame, or pieces to
 * a peer that said it takes them. A sender over TCP cuts a body longer
 * than SL_WIRE_BODY_PIECE: libzmq's CURVE encrypts a frame whole, in
 * buffers of the frame's size, so one 50 MB frame briefly cost its sender
 * the body three times. Pieces are never cut over inproc:// (no
 * encryption there, and the receiver would have to join them: a copy). */
#define SL_WIRE_BODY_PIECE ((size_t)1024 * 1024)
#define SL_WIRE_BODY_PIECES_MAX 4096

/* A received body: its first frame, and the pieces after it if any. */
struct sl_wire_body {
    zmq_msg_t first;
    zmq_msg_t *more;                    /* n - 1 of them; NULL if n == 1 */
    size_t n;                           /* 0: nothing received */
    size_t size;                        /* bytes of all frames */
};

/* Receives the body frames that follow a Job frame (the part last
 * received on sock had more parts): all remaining parts of the message.
 * 0; -1 with *error_r (static) if there is none, more than
 * SL_WIRE_BODY_PIECES_MAX, or they do not add up to size (the rest of the
 * message is drained and *body is empty). */
SL_WARN_UNUSED int sl_wire_body_recv(void *sock, uint64_t size, struct sl_wire_body *body,
                                     const char **error_r);
/* Moves *from into *to (which needs no closing); *from is left empty. */
void sl_wire_body_move(struct sl_wire_body *to, struct sl_wire_body *from);
/* Frees the frames; the body is left empty. */
void sl_wire_body_close(struct sl_wire_body *body);
/* The body as one message in *out (initialised here): the first frame
 * itself when there is one frame, else the pieces copied into a new one,
 * each freed once copied. *body is left empty. -1 if out of memory. */
SL_WARN_UNUSED int sl_wire_body_join(struct sl_wire_body *body, zmq_msg_t *out);
/* Sends the body as the last part(s) of a message: references on its
 * frames if pieces, else one frame (the pieces joined into a copy when
 * there are several). 0, or -1 with errno. */
SL_WARN_UNUSED int sl_wire_body_send(void *sock, const struct sl_wire_body *body, bool pieces);

/* Sets frame->version = SL_WIRE_VERSION, validates the frame exactly as
 * sl_wire_unpack() would on the other side, and packs it into *msg_r
 * (initialised here; the caller sends or closes it). -1 with *error_r (a
 * static string) if the frame is invalid or packs to more than
 * SL_WIRE_FRAME_MAX bytes; *msg_r is then not initialised. */
SL_WARN_UNUSED int sl_wire_pack(Sluice__Frame *frame, zmq_msg_t *msg_r, const char **error_r);

/* Unpacks and validates len bytes received from a peer. 0 and *frame_r
 * (owned by the caller: sl_wire_frame_free), or -1 with *error_r (static). */
SL_WARN_UNUSED int sl_wire_unpack(const void *data, size_t len, Sluice__Frame **frame_r,
                                  const char **error_r);
/* The same on a received message part; msg is not closed. */
SL_WARN_UNUSED int sl_wire_unpack_msg(zmq_msg_t *msg, Sluice__Frame **frame_r,
                                      const char **error_r);
/* Frees a frame from sl_wire_unpack*() and clears *framep; may be NULL. */
void sl_wire_frame_free(Sluice__Frame **framep);

/* Validates a frame (also one built locally). 0, or -1 with *error_r. */
SL_WARN_UNUSED int sl_wire_check(const Sluice__Frame *frame, const char **error_r);

/* True if id is exactly SL_ID_LEN characters of [A-Za-z0-9_-]. */
bool sl_wire_job_id_valid(const char *id);

/* "ready", "job", ... for log lines; "unset" if none. */
const char *sl_wire_kind_name(const Sluice__Frame *frame);

/* Header edits: HeaderEdit.Op on the wire <-> enum sl_header_op
 * (lib/mail/sl_message.h), both directions here. The mail side is a plain
 * int because sl_net may not depend on lib/mail: the broker links sl_net
 * without it (docs/architecture.md, "Layering"). To make an int enough,
 * enum sl_header_op gives each operation the number HeaderEdit.Op gives it
 * (proto/sluice.proto: numbers on the wire never change), and
 * tests/unit/test_wire.c, which sees both, checks that at compile time.
 * A number either side does not know maps to PREPEND, as before; a
 * received frame cannot carry one (sl_wire_check refuses it). */
int sl_wire_header_op_to_mail(Sluice__HeaderEdit__Op op);
Sluice__HeaderEdit__Op sl_wire_header_op_from_mail(int op);

#endif
