/* broker_link.c - the frontend's DEALERs towards the broker(s) (broker_link.h).
 *
 * One DEALER per broker endpoint, not one connected to all: the link must
 * know which broker holds which job, so that when one dies its jobs (and
 * only its jobs) go to another (active-active brokers with resubmission,
 * docs/cluster.md). Per connection:
 *   - the link sends Heartbeat{client} every second; a broker answers with
 *     Heartbeat{instance} every second (and at once to a new frontend);
 *   - anything received proves the broker alive; a connection that was
 *     heard from, or holds jobs, and stays silent for 3 s is presumed dead:
 *     its socket is replaced (a new routing id, so a broker that was only
 *     frozen cannot deliver to the old one) and its jobs are resubmitted;
 *   - a changed instance id means the broker restarted with an empty
 *     queue: the jobs sent to it are resubmitted (a broker that still holds
 *     a job recognises it by id and keeps a single copy);
 *   - after a stall of our own (ticks further apart than SL_WIRE_STALL_MS:
 *     SIGSTOP, a VM migration) every broker gets a fresh 3 s, and a broker
 *     that dropped our connection meanwhile gets its jobs again over the
 *     new one (link_check_stall): a frozen frontend is not a dead broker;
 *   - a handshake that succeeds (the socket monitor) is acted on at once:
 *     our heartbeat, so the broker answers, and the jobs waiting for a
 *     broker (conn_on_connected).
 * Jobs are spread round-robin over the brokers heard from recently, then
 * over the others ZeroMQ has a connection to (ZMQ_IMMEDIATE); a job nobody
 * takes waits in the link (retried every tick) until a broker returns or
 * the job's deadline makes the caller withdraw it.
 *
 * The edge-triggered trap (docs/design.md): ZMQ_FD only signals that the
 * socket's state *changed*, and any zmq call on the socket (a send, a
 * getsockopt) may consume that signal while messages are waiting. So:
 *   - every wake-up drains until ZMQ_EVENTS no longer has ZMQ_POLLIN;
 *   - every send is followed by a ZMQ_EVENTS check; if something is
 *     readable, the read event is activated by hand (event_active), so the
 *     drain runs from the loop and on_verdict is never called from inside
 *     fe_broker_link_submit() (callers need not be re-entrant);
 *   - a drain that stops early (batch limit) re-activates itself. */
#include "broker_link.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "util/sl_id.h"
#include "util/sl_idmap.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define LINK_DRAIN_BATCH 256    /* messages per wake-up before other events get a turn */
#define LINK_TICK_MS 200        /* heartbeats, liveness, pending jobs */

struct fe_broker_link;

struct link_conn {
    struct fe_broker_link *link;
    int index;
    char *endpoint;
    void *sock;                 /* DEALER, owned */
    struct event *ev;           /* ZMQ_FD, EV_READ | EV_PERSIST */
    unsigned long long opened_ms;       /* monotonic */
    unsigned long long heard_ms;        /* last message from the broker, 0: never */
    unsigned long long next_heartbeat_ms;
    char instance[SL_ID_LEN + 1];       /* the broker's, "" until heard */
    unsigned n_jobs;            /* jobs held by this broker (as far as we know) */
    void *mon;                  /* PAIR on the socket's monitor (ZMQ_EVENT_DISCONNECTED) */
    struct event *mon_ev;
    bool dropped;               /* the connection went away: fail over at the next tick */
    bool connected;             /* a handshake succeeded: act on it at once (link_on_monitor) */
    bool resend;                /* dropped after our own stall: send its jobs again over
                                 * the new connection (link_after_stall) */
    bool handshake_warned;      /* a failed handshake was logged; cleared when heard from */
    bool body_pieces;           /* the broker takes a body in pieces (its heartbeat says so),
                                 * and the link is not inproc://: cut big bodies */
};

struct fe_link_job {
    struct fe_link_job *prev, *next;    /* all jobs */
    char id[SL_ID_LEN + 1];
    void *ctx;                  /* the caller's, handed back with the verdict */
    zmq_msg_t frame;            /* the packed Job frame */
    struct sl_body *body;       /* our reference */
    int conn;                   /* index of the broker holding it; -1: not sent */
    unsigned submits;
};

struct fe_broker_link {
    struct event_base *base;
    void *zctx;
    const struct sl_config *config; /* security.*: CURVE keys; NULL: none (tests) */
    struct link_conn *conns;
    size_t n_conns;
    size_t rr;                  /* round-robin start */
    struct event *tick;
    unsigned long long tick_ms;         /* monotonic, the latest tick */
    unsigned long long grace_until_ms;  /* after our own stall: brokers are not judged */
    fe_verdict_fn *on_verdict;
    fe_origin_weight_fn *weight_fn;
    void *weight_ctx;
    unsigned draining;          /* inside on_verdict: destroy must wait */
    bool destroy_pending;

    struct sl_idmap *by_id;     /* job id -> struct fe_link_job, for the verdicts */
    struct fe_link_job *jobs;   /* list head */
    unsigned n_held, n_pending;
    unsigned long long n_jobs, n_verdicts, n_resubmitted, n_duplicate_verdicts, n_bad;
};

/* ---- the job table ---------------------------------------------------- */

static struct fe_link_job *
job_find(struct fe_broker_link *link, const char *id)
{
    return sl_idmap_find(link->by_id, id);
}

/* Unlinks and frees j, dropping its body reference. */
static void
job_remove(struct fe_broker_link *link, struct fe_link_job *j)
{
    SL_BUG_ON(sl_idmap_remove(link->by_id, j->id) != j);
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        link->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    if (j->conn >= 0) {
        SL_BUG_ON(link->conns[j->conn].n_jobs == 0);
        link->conns[j->conn].n_jobs--;
        link->n_held--;
    } else {
        link->n_pending--;
    }
    zmq_msg_close(&j->frame);
    sl_body_unref(&j->body);
    free(j);
}

/* ---- sockets ---------------------------------------------------------- */

static void link_on_event(evutil_socket_t fd, short what, void *arg);
static void conn_on_connected(struct link_conn *c);

static bool
conn_alive(const struct link_conn *c, unsigned long long now)
{
    return c->heard_ms != 0 && now < c->heard_ms + SL_WIRE_LIVENESS_MS;
}

/* After any operation on the socket: if a message is waiting, make sure
 * the loop comes back for it even though the fd may never fire again. */
static void
conn_rearm(struct link_conn *c)
{
    if (c->sock != NULL && sl_zsock_readable(c->sock))
        event_active(c->ev, EV_READ, 0);
}

static void
conn_close(struct link_conn *c)
{
    if (c->mon_ev != NULL)
        event_free(c->mon_ev);
    c->mon_ev = NULL;
    sl_zsock_monitor_close(c->sock, &c->mon);
    if (c->ev != NULL)
        event_free(c->ev);
    c->ev = NULL;
    if (c->sock != NULL)
        zmq_close(c->sock);
    c->sock = NULL;
}

/* A broker killed outright (its TCP connection reset) is noticed here at
 * once instead of after 3 s of silence; the tick does the fail-over
 * (never from inside a callback of the socket being replaced). A failed
 * handshake (CURVE key refused, wrong broker key, plain against CURVE) is
 * logged once. */
static void
link_on_monitor(evutil_socket_t fd, short what, void *arg)
{
    struct link_conn *c = arg;
    int event;

    (void)fd;
    (void)what;
    while (c->mon != NULL && (event = sl_zsock_monitor_event(c->mon)) != 0) {
        if (event == ZMQ_EVENT_DISCONNECTED && !c->dropped) {
            c->dropped = true;
            sl_info("frontend: connection to broker %s lost", c->endpoint);
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            c->connected = true;
        } else if (event != ZMQ_EVENT_DISCONNECTED && !c->handshake_warned) {
            /* libzmq retries a failed handshake forever and silently:
             * say once why this broker is never heard from */
            c->handshake_warned = true;
            sl_warn("frontend: broker %s: ZMTP handshake failed (%s); jobs go to other "
                    "brokers",
                    c->endpoint,
                    event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                        ? "our CURVE key was refused: is it in the broker's "
                          "security.allow_dir/frontend/?"
                        : "security.mode or security.broker_public_key differs from "
                          "the broker's");
        }
    }
    if (c->connected && c->sock != NULL) {
        c->connected = false;
        conn_on_connected(c);
    }
}

static void
conn_monitor(struct link_conn *c)
{
    c->mon = sl_zsock_monitor_open(c->link->zctx, c->sock,
                                   ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    if (c->mon == NULL)
        return;     /* only an optimisation: heartbeats still decide */
    c->mon_ev =
        event_new(c->link->base, sl_zsock_fd(c->mon), EV_READ | EV_PERSIST, link_on_monitor, c);
    SL_BUG_ON(c->mon_ev == NULL);
    event_add(c->mon_ev, NULL);
    event_active(c->mon_ev, EV_READ, 0);
}

/* A fresh socket (a new routing id), connected; -1 with *error_r. */
static int
conn_open(struct link_conn *c, char **error_r)
{
    SL_BUG_ON(c->sock != NULL);
    c->body_pieces = false;     /* until this connection's broker says so */
    c->sock = zmq_socket(c->link->zctx, ZMQ_DEALER);
    if (c->sock == NULL) {
        *error_r = sl_asprintf("frontend: zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    /* Only Verdict and Heartbeat frames come back: no body allowance. */
    sl_zsock_set_common(c->sock, 0);
    /* Sends fail at once (EAGAIN) while there is no connection, instead
     * of queueing into the void: the job goes to another broker. */
    sl_zsock_set_int(c->sock, ZMQ_IMMEDIATE, 1);
    const char *error;
    if (c->link->config != NULL &&
        sl_zsock_set_curve(c->sock, c->link->config, c->endpoint, false, &error) < 0) {
        *error_r = sl_asprintf("frontend: CURVE for broker %s: %s", c->endpoint, error);
        zmq_close(c->sock);
        c->sock = NULL;
        return -1;
    }
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        *error_r = sl_asprintf("frontend: cannot connect to broker %s: %s", c->endpoint,
                               zmq_strerror(errno));
        zmq_close(c->sock);
        c->sock = NULL;
        return -1;
    }
    c->ev = event_new(c->link->base, sl_zsock_fd(c->sock), EV_READ | EV_PERSIST, link_on_event, c);
    SL_BUG_ON(c->ev == NULL);
    if (event_add(c->ev, NULL) != 0)
        sl_bug(__FILE__, __LINE__, "event_add(broker link)");
    /* start with a drain: ZMQ_FD may have been signalled before we looked */
    event_active(c->ev, EV_READ, 0);
    conn_monitor(c);
    c->dropped = false;
    c->resend = false;
    c->opened_ms = sl_now_mono_ms();
    c->heard_ms = 0;
    /* A broker learns of us from our first job or heartbeat: the first
     * heartbeat goes as soon as the handshake succeeds (conn_on_connected),
     * else at the next second. */
    c->next_heartbeat_ms = c->opened_ms + SL_WIRE_HEARTBEAT_MS;
    return 0;
}

static void
conn_send_heartbeat(struct link_conn *c)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    const char *error;

    hb.client = 1;
    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    /* EAGAIN: no connection yet; liveness decides */
    if (sl_zsock_send_frame(c->sock, &frame, ZMQ_DONTWAIT, &error) < 0 && errno != EAGAIN)
        sl_warn("frontend: heartbeat to broker %s: %s", c->endpoint, error);
}

/* The body's frames after the Job frame: one, or pieces of
 * SL_WIRE_BODY_PIECE when the broker takes them (lib/net/sl_wire.h), each
 * a reference on the body. 0, or -1 with errno. */
static int
conn_send_body(struct link_conn *c, struct sl_body *body)
{
    size_t piece = body->len;
    size_t off = 0;

    if (c->body_pieces && body->len > SL_WIRE_BODY_PIECE) {
        piece = SL_WIRE_BODY_PIECE;
        /* a body past SL_WIRE_BODY_PIECES_MAX pieces of the usual size
         * gets bigger pieces, never more of them */
        if (body->len / piece >= SL_WIRE_BODY_PIECES_MAX)
            piece = body->len / SL_WIRE_BODY_PIECES_MAX + 1;
    }
    do {
        size_t len = body->len - off < piece ? body->len - off : piece;
        bool last = off + len == body->len;
        zmq_msg_t m;

        if (len == 0) {
            zmq_msg_init(&m);
        } else if (zmq_msg_init_data(&m, body->data + off, len, sl_body_zmq_free,
                                     sl_body_ref(body)) != 0) {
            sl_bug(__FILE__, __LINE__, "zmq_msg_init_data: out of memory");
        }
        /* The first part was accepted, so the high-water mark cannot
         * refuse the rest of the message. */
        if (zmq_msg_send(&m, c->sock, (last ? 0 : ZMQ_SNDMORE) | ZMQ_DONTWAIT) < 0) {
            int saved = errno;
            zmq_msg_close(&m);  /* drops the reference it took */
            errno = saved;
            return -1;
        }
        off += len;
    } while (off < body->len);
    return 0;
}

/* [frame][body] on c. 0, or -1 if ZeroMQ cannot take it now. */
static int
conn_send_job(struct link_conn *c, struct fe_link_job *j)
{
    zmq_msg_t fmsg;

    zmq_msg_init(&fmsg);
    zmq_msg_copy(&fmsg, &j->frame);     /* shares the bytes */
    if (zmq_msg_send(&fmsg, c->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int saved = errno;
        zmq_msg_close(&fmsg);
        if (saved != EAGAIN)
            sl_error("%s: cannot send job to broker %s: %s", j->id, c->endpoint,
                     zmq_strerror(saved));
        conn_rearm(c);
        return -1;
    }
    if (conn_send_body(c, j->body) < 0) {
        sl_error("%s: cannot send job body to broker %s: %s", j->id, c->endpoint,
                 zmq_strerror(errno));
        conn_rearm(c);
        return -1;
    }
    conn_rearm(c);
    return 0;
}

/* Sends a job that no broker holds (j->conn == -1): brokers heard from
 * recently first, then the others, the one at index avoid last. 0 if
 * sent; -1 if it stays pending. */
static int
job_dispatch(struct fe_broker_link *link, struct fe_link_job *j, int avoid)
{
    unsigned long long now = sl_now_mono_ms();

    SL_BUG_ON(j->conn >= 0);
    for (int pass = 0; pass < 3; pass++) {
        for (size_t k = 0; k < link->n_conns; k++) {
            size_t i = (link->rr + k) % link->n_conns;
            struct link_conn *c = &link->conns[i];
            bool alive = conn_alive(c, now);

            if (c->sock == NULL)
                continue;
            bool eligible;

            if ((int)i == avoid)
                eligible = pass == 2;
            else if (pass == 0)
                eligible = alive;
            else if (pass == 1)
                eligible = !alive;
            else
                eligible = false;
            if (!eligible)
                continue;
            if (conn_send_job(c, j) < 0)
                continue;
            j->conn = (int)i;
            c->n_jobs++;
            link->n_pending--;
            link->n_held++;
            link->rr = i + 1;
            return 0;
        }
    }
    return -1;
}

/* The job goes out again with Job.submit + 1 (for the brokers' logs). */
static void
job_bump_submit(struct fe_link_job *j)
{
    Sluice__Frame *frame = NULL;
    const char *error;
    zmq_msg_t msg;

    if (sl_wire_unpack_msg(&j->frame, &frame, &error) < 0)
        sl_bug(__FILE__, __LINE__, "a frame we packed does not unpack");
    if (frame->job->submit < SL_WIRE_MAX_ATTEMPT)
        frame->job->submit++;
    j->submits = frame->job->submit;
    if (sl_wire_pack(frame, &msg, &error) < 0)
        sl_bug(__FILE__, __LINE__, "a frame we packed does not pack again");
    sl_wire_frame_free(&frame);
    zmq_msg_close(&j->frame);
    zmq_msg_init(&j->frame);
    if (zmq_msg_move(&j->frame, &msg) != 0)
        sl_bug(__FILE__, __LINE__, "zmq_msg_move");
    zmq_msg_close(&msg);
}

/* Every job held by conns[index] goes to another broker (or waits). */
static void
conn_resubmit_jobs(struct fe_broker_link *link, int index, const char *why)
{
    struct link_conn *c = &link->conns[index];
    unsigned n = 0, waiting = 0;

    for (struct fe_link_job *j = link->jobs; j != NULL; j = j->next) {
        if (j->conn != index)
            continue;
        j->conn = -1;
        c->n_jobs--;
        link->n_held--;
        link->n_pending++;
        job_bump_submit(j);
        n++;
        link->n_resubmitted++;
        if (job_dispatch(link, j, index) < 0)
            waiting++;
        else
            sl_info("%s: resubmitted to broker %s (submission %u): broker %s %s", j->id,
                    link->conns[j->conn].endpoint, j->submits, c->endpoint, why);
    }
    if (n > 0)
        sl_warn("frontend: broker %s %s: %u job(s) resubmitted, %u waiting for a broker",
                c->endpoint, why, n, waiting);
}

/* Jobs that no broker took yet: try again. */
static void
link_flush_pending(struct fe_broker_link *link)
{
    for (struct fe_link_job *j = link->jobs; j != NULL && link->n_pending > 0; j = j->next)
        if (j->conn < 0 && job_dispatch(link, j, -1) == 0)
            sl_info("%s: sent to broker %s after waiting for one", j->id,
                    link->conns[j->conn].endpoint);
}

/* The broker behind c dropped our connection while we were stalled (it
 * took us for dead: ZMTP heartbeats) and we are connected again: the
 * verdicts of the jobs it holds would go to our old connection, so each
 * goes again over the new one. The broker keeps its copy of a job it
 * holds (it recognises the id) and answers over the newer connection: no
 * second scan, and no resubmission to another broker. */
static void
conn_resend_jobs(struct link_conn *c)
{
    unsigned n = 0, failed = 0;

    for (struct fe_link_job *j = c->link->jobs; j != NULL; j = j->next) {
        if (j->conn != c->index)
            continue;
        if (conn_send_job(c, j) == 0)
            n++;
        else
            failed++;
    }
    /* not connected yet: conn_on_connected comes back here */
    c->resend = failed > 0;
    if (n > 0)
        sl_notice("frontend: broker %s: connected again after our stall; %u job(s) sent again "
                  "over the new connection (it keeps one copy of each)%s",
                  c->endpoint, n, failed > 0 ? "; the others when it can take them" : "");
}

/* A handshake with the broker behind c succeeded (the monitor says so):
 * a broker that comes back is used at once, not at the next heartbeat or
 * tick. Our heartbeat makes it answer (it learns of us from our first
 * message), jobs waiting for a broker go out, and after our own stall
 * the jobs it held go again over this connection. */
static void
conn_on_connected(struct link_conn *c)
{
    conn_send_heartbeat(c);
    c->next_heartbeat_ms = sl_now_mono_ms() + SL_WIRE_HEARTBEAT_MS;
    if (c->resend)
        conn_resend_jobs(c);
    if (c->link->n_pending > 0)
        link_flush_pending(c->link);
    conn_rearm(c);
}

/* ---- receiving -------------------------------------------------------- */

static void
link_free(struct fe_broker_link *link)
{
    sl_info("frontend: broker link closed: %llu job(s), %llu verdict(s), %llu resubmission(s), "
            "%llu duplicate or late verdict(s) dropped, %llu bad frame(s)",
            link->n_jobs, link->n_verdicts, link->n_resubmitted, link->n_duplicate_verdicts,
            link->n_bad);
    while (link->jobs != NULL)
        job_remove(link, link->jobs);
    for (size_t i = 0; i < link->n_conns; i++) {
        conn_close(&link->conns[i]);
        free(link->conns[i].endpoint);
    }
    if (link->tick != NULL)
        event_free(link->tick);
    free(link->conns);
    sl_idmap_destroy(&link->by_id);
    free(link);
}

static void
conn_on_heartbeat(struct link_conn *c, const Sluice__Heartbeat *hb)
{
    const char *inst = hb->instance != NULL ? hb->instance : "";

    if (inst[0] == '\0')
        return;
    c->body_pieces = hb->body_pieces && strncmp(c->endpoint, "inproc://", 9) != 0;
    if (c->instance[0] != '\0' && strcmp(c->instance, inst) != 0) {
        sl_warn("frontend: broker %s restarted (instance %s, was %s)", c->endpoint, inst,
                c->instance);
        snprintf(c->instance, sizeof(c->instance), "%s", inst);
        /* its queue is gone: resend, possibly to it again (it keeps one copy) */
        conn_resubmit_jobs(c->link, c->index, "restarted");
        return;
    }
    snprintf(c->instance, sizeof(c->instance), "%s", inst);
}

static void
conn_recv_one(struct link_conn *c)
{
    struct fe_broker_link *link = c->link;
    zmq_msg_t msg;
    Sluice__Frame *frame = NULL;
    const char *error;

    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
    }
    {
        unsigned long long now = sl_now_mono_ms();
        bool was_alive = conn_alive(c, now);
        c->heard_ms = now;
        c->handshake_warned = false;
        if (!was_alive) {
            sl_info("frontend: broker %s is up", c->endpoint);
            if (link->n_pending > 0)
                link_flush_pending(link);
        }
    }
    if (sl_zsock_drain_more(c->sock) > 0) {
        sl_warn("frontend: dropped a multipart message from broker %s", c->endpoint);
        link->n_bad++;
    } else if (sl_wire_unpack_msg(&msg, &frame, &error) < 0) {
        sl_warn("frontend: dropped a frame from broker %s: %s", c->endpoint, error);
        link->n_bad++;
    } else if (frame->kind_case == SLUICE__FRAME__KIND_VERDICT) {
        struct fe_link_job *j = job_find(link, frame->verdict->job_id);
        if (j == NULL) {
            /* a second verdict for a resubmitted job, or one for a job the
             * session gave up on: never used twice */
            link->n_duplicate_verdicts++;
            sl_info("%s: duplicate or late verdict from broker %s dropped",
                    frame->verdict->job_id, c->endpoint);
        } else {
            void *ctx = j->ctx;
            job_remove(link, j);
            link->n_verdicts++;
            link->on_verdict(ctx, frame->verdict);
        }
    } else if (frame->kind_case == SLUICE__FRAME__KIND_HEARTBEAT) {
        conn_on_heartbeat(c, frame->heartbeat);
    } else {
        sl_warn("frontend: unexpected %s frame from broker %s dropped", sl_wire_kind_name(frame),
                c->endpoint);
        link->n_bad++;
    }
    sl_wire_frame_free(&frame);
    zmq_msg_close(&msg);
}

static void
link_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct link_conn *c = arg;
    struct fe_broker_link *link = c->link;
    void *sock = c->sock;
    unsigned n = 0;

    (void)fd;
    (void)what;
    link->draining++;
    /* stop if the socket was replaced meanwhile (conn_fail from a callback) */
    while (!link->destroy_pending && c->sock == sock && sl_zsock_readable(c->sock)) {
        if (n++ == LINK_DRAIN_BATCH) {
            event_active(c->ev, EV_READ, 0);
            break;
        }
        conn_recv_one(c);
    }
    link->draining--;
    if (link->destroy_pending && link->draining == 0)
        link_free(link);
}

/* ---- the tick --------------------------------------------------------- */

/* The broker behind conns[index] is presumed dead: new socket, its jobs
 * to the others. */
static void
conn_fail(struct fe_broker_link *link, int index, const char *why)
{
    struct link_conn *c = &link->conns[index];
    char *error = NULL;

    sl_warn("frontend: broker %s %s, presumed dead; reconnecting", c->endpoint, why);
    /* everything it held is resubmitted now: whoever answers there next,
     * restarted or not, owes us nothing from before */
    c->instance[0] = '\0';
    conn_close(c);
    if (conn_open(c, &error) < 0) {
        /* the endpoint was valid at start: out of sockets or memory */
        sl_error("%s", error);
        free(error);
    }
    conn_resubmit_jobs(link, index, why);
}

/* Ticks come every LINK_TICK_MS; ticks further apart than
 * SL_WIRE_STALL_MS mean this process was stalled (SIGSTOP, a VM migration,
 * swapping). Brokers' heartbeats look old then, but only because we did
 * not read them: every broker gets a fresh liveness period before it is
 * judged, and a connection a broker dropped meanwhile (it took us for dead)
 * is not a dead broker: libzmq reconnects it, and its jobs go again over
 * the new connection (conn_resend_jobs). Without this a frontend resuming
 * from a pause took every broker for dead and had every job scanned
 * twice. */
static void
link_check_stall(struct fe_broker_link *link, unsigned long long now)
{
    unsigned long long gap = sl_wire_stalled(&link->tick_ms, now);

    if (gap == 0)
        return;
    sl_warn("frontend: this process was stalled for %llu ms (paused?); brokers get %llu ms before "
            "their silence is judged",
            gap, SL_WIRE_LIVENESS_MS);
    link->grace_until_ms = now + SL_WIRE_LIVENESS_MS;
    for (size_t i = 0; i < link->n_conns; i++) {
        struct link_conn *c = &link->conns[i];
        if (c->heard_ms != 0)
            c->heard_ms = now;
        c->opened_ms = now;
    }
}

static void
link_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fe_broker_link *link = arg;
    unsigned long long now = sl_now_mono_ms();

    (void)fd;
    (void)what;
    link_check_stall(link, now);
    for (size_t i = 0; i < link->n_conns; i++) {
        struct link_conn *c = &link->conns[i];
        unsigned long long since = c->heard_ms > c->opened_ms ? c->heard_ms : c->opened_ms;

        if (c->sock == NULL) {      /* a reopen failed: try again */
            char *error = NULL;
            if (conn_open(c, &error) < 0) {
                free(error);
                continue;
            }
        }
        if (now >= c->next_heartbeat_ms) {
            conn_send_heartbeat(c);
            c->next_heartbeat_ms = now + SL_WIRE_HEARTBEAT_MS;
        }
        if (c->dropped && c->n_jobs > 0 && now < link->grace_until_ms) {
            /* the broker gave up on us while we were stalled: ZeroMQ
             * reconnects by itself, then the jobs go again over the new
             * connection; its silence past the grace still fails over */
            sl_notice("frontend: broker %s dropped our connection while we were stalled; "
                      "reconnecting to it",
                      c->endpoint);
            conn_resend_jobs(c);
        } else if (c->dropped && c->n_jobs > 0) {
            conn_fail(link, (int)i, "connection lost");
            continue;
        }
        c->dropped = false;     /* holds nothing: ZeroMQ reconnects by itself */
        /* A broker that never answered and holds nothing is simply down:
         * ZeroMQ keeps reconnecting; nothing to do until it answers. */
        if (now >= since + SL_WIRE_LIVENESS_MS && (c->heard_ms != 0 || c->n_jobs > 0))
            conn_fail(link, (int)i, c->heard_ms != 0 ? "silent for 3 heartbeats"
                                                     : "never answered");
        conn_rearm(c);
    }
    if (link->n_pending > 0)
        link_flush_pending(link);
}

/* ---- API -------------------------------------------------------------- */

struct fe_broker_link *
fe_broker_link_new(struct event_base *base, void *zctx, char *const *endpoints, size_t n_endpoints,
                   const struct sl_config *config, fe_verdict_fn *on_verdict, char **error_r)
{
    struct fe_broker_link *link;
    struct timeval tv = {.tv_sec = 0, .tv_usec = LINK_TICK_MS * 1000};

    SL_BUG_ON(base == NULL || zctx == NULL || on_verdict == NULL);
    if (n_endpoints == 0) {
        *error_r = sl_strdup("frontend: no broker endpoint configured");
        return NULL;
    }
    link = sl_calloc(1, sizeof(*link));
    link->base = base;
    link->zctx = zctx;
    link->config = config;
    link->on_verdict = on_verdict;
    link->by_id = sl_idmap_new();
    link->n_conns = n_endpoints;
    link->conns = sl_calloc(n_endpoints, sizeof(*link->conns));
    for (size_t i = 0; i < n_endpoints; i++) {
        struct link_conn *c = &link->conns[i];
        c->link = link;
        c->index = (int)i;
        c->endpoint = sl_strdup(endpoints[i]);
    }
    for (size_t i = 0; i < n_endpoints; i++)
        if (conn_open(&link->conns[i], error_r) < 0) {
            link_free(link);
            return NULL;
        }
    link->tick = event_new(base, -1, EV_PERSIST, link_on_tick, link);
    SL_BUG_ON(link->tick == NULL);
    event_add(link->tick, &tv);
    return link;
}

void
fe_broker_link_destroy(struct fe_broker_link **linkp)
{
    struct fe_broker_link *link = *linkp;

    if (link == NULL)
        return;
    *linkp = NULL;
    if (link->draining > 0) {   /* called from on_verdict: free when the drain unwinds */
        link->destroy_pending = true;
        return;
    }
    link_free(link);
}

void
fe_broker_link_set_weight_fn(struct fe_broker_link *link, fe_origin_weight_fn *weight_fn,
                             void *ctx)
{
    link->weight_fn = weight_fn;
    link->weight_ctx = ctx;
}

struct fe_link_job *
fe_broker_link_submit(struct fe_broker_link *link, const Sluice__Job *job, struct sl_body *body,
                      void *ctx)
{
    Sluice__Job copy = *job;    /* shallow: only to fill in size, weight, submission */
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    const char *id = sl_wire_job_id_valid(job->job_id) ? job->job_id : "-";
    const char *error;
    struct fe_link_job *j;

    SL_BUG_ON(link->destroy_pending);
    copy.size = body->len;
    copy.submit = 1;
    if (link->weight_fn != NULL)
        copy.origin_concurrency = link->weight_fn(link->weight_ctx, job->origin);
    frame.kind_case = SLUICE__FRAME__KIND_JOB;
    frame.job = &copy;
    j = sl_calloc(1, sizeof(*j));
    if (sl_wire_pack(&frame, &j->frame, &error) < 0) {
        sl_error("%s: cannot send job to broker: %s", id, error);
        free(j);
        return NULL;
    }
    snprintf(j->id, sizeof(j->id), "%s", job->job_id);
    /* ids are fresh random ones (sl_id_new): verdicts are matched by them */
    SL_BUG_ON(sl_idmap_insert(link->by_id, j->id, j) != 0);
    j->ctx = ctx;
    j->body = sl_body_ref(body);
    j->conn = -1;
    j->submits = 1;
    j->next = link->jobs;
    if (link->jobs != NULL)
        link->jobs->prev = j;
    link->jobs = j;
    link->n_pending++;
    link->n_jobs++;
    if (job_dispatch(link, j, -1) < 0)
        sl_warn("%s: no broker can take the job now; it waits for one (until its deadline)", id);
    return j;
}

void
fe_broker_link_withdraw(struct fe_broker_link *link, struct fe_link_job **jp)
{
    if (*jp != NULL)
        job_remove(link, *jp);
    *jp = NULL;
}

void
fe_broker_link_stats(const struct fe_broker_link *link, struct fe_broker_link_stats *stats_r)
{
    unsigned long long now = sl_now_mono_ms();

    memset(stats_r, 0, sizeof(*stats_r));
    stats_r->n_brokers = (unsigned)link->n_conns;
    for (size_t i = 0; i < link->n_conns; i++)
        if (conn_alive(&link->conns[i], now))
            stats_r->n_alive++;
    stats_r->held = link->n_held;
    stats_r->pending = link->n_pending;
    stats_r->n_jobs = link->n_jobs;
    stats_r->n_verdicts = link->n_verdicts;
    stats_r->n_resubmitted = link->n_resubmitted;
    stats_r->n_duplicate_verdicts = link->n_duplicate_verdicts;
    stats_r->n_bad = link->n_bad;
}
