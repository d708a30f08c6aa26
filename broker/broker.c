/* broker.c - the job queue between frontends and workers (broker.h).
 *
 * One ROUTER socket serves both sides; the first Frame of a message says
 * who is talking (Job: a frontend; Ready / Verdict / Heartbeat / Disconnect:
 * a worker). docs/protocol-wire.md describes the exchanges.
 *
 * State, all owned by the broker thread:
 *   queue     FIFO of jobs waiting for a worker (requeued jobs go first);
 *   workers   in least-recently-used order; each holds its in-flight jobs,
 *             so a verdict is matched against the worker that sent it.
 * A job's body is a zmq_msg_t received from the frontend and never copied:
 * each hand-out sends a zmq_msg_copy() of it (a reference on the same
 * buffer), and the broker keeps its own reference until the verdict is
 * forwarded, so a job can be requeued when its worker dies.
 *
 * Postfix's queue is the durable store (DESIGN-NOTES.md): a job lost here
 * (broker restart, unreachable frontend) ends as the frontend's deadline
 * and a 4xx, never as lost mail. */
#include "broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "sluice.pb-c.h"
#include "util/sl_config.h"
#include "util/sl_id.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define BROKER_MAX_QUEUE 100000     /* jobs waiting; more get a tempfail verdict */
#define BROKER_RECV_BATCH 1000      /* messages per wake-up before timers run */
#define BROKER_IDENT_MAX 255        /* ZeroMQ routing ids are 1..255 bytes */

struct bworker;

struct bjob {
    struct bjob *prev, *next;       /* in the queue or in a worker's in-flight list */
    char id[SL_ID_LEN + 1];
    unsigned char fe_ident[BROKER_IDENT_MAX];
    size_t fe_ident_len;
    Sluice__Frame *frame;           /* the Job frame as received; attempt updated per hand-out */
    zmq_msg_t body;                 /* our reference on the body bytes */
    unsigned failures;              /* workers that died holding this job */
    struct bworker *worker;         /* NULL while queued */
};

struct jlist {
    struct bjob *head, *tail;
    size_t n;
};

struct bworker {
    struct bworker *prev, *next;
    unsigned char ident[BROKER_IDENT_MAX];
    size_t ident_len;
    char *name;                     /* Ready.worker_id, for logs */
    unsigned slots;                 /* jobs it can take now */
    struct jlist inflight;
    unsigned long long expiry_ms;   /* monotonic; dead when passed */
};

struct broker {
    void *zctx;
    void *router;
    void *ctl_thread;               /* PAIR, broker thread side */
    void *ctl_main;                 /* PAIR, broker_stop() side */
    char *endpoint;
    pthread_t thread;

    struct jlist queue;
    struct bworker *whead, *wtail;
    size_t n_workers;
    unsigned long long next_heartbeat_ms;
    unsigned long long next_purge_ms;

    /* counters for the stop line (metrics come later) */
    unsigned long long n_jobs, n_verdicts, n_requeued, n_expired, n_failed, n_bad_frames;
};

/* ---- lists ------------------------------------------------------------ */

static void
jlist_unlink(struct jlist *l, struct bjob *j)
{
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    l->n--;
}

static void
jlist_push_tail(struct jlist *l, struct bjob *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static void
jlist_push_head(struct jlist *l, struct bjob *j)
{
    j->prev = NULL;
    j->next = l->head;
    if (l->head != NULL)
        l->head->prev = j;
    else
        l->tail = j;
    l->head = j;
    l->n++;
}

static struct bjob *
jlist_find(const struct jlist *l, const char *id)
{
    for (struct bjob *j = l->head; j != NULL; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void
bjob_destroy(struct bjob **jobp)
{
    struct bjob *j = *jobp;

    if (j == NULL)
        return;
    *jobp = NULL;
    sl_wire_frame_free(&j->frame);
    zmq_msg_close(&j->body);
    free(j);
}

static void
workers_unlink(struct broker *b, struct bworker *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        b->whead = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        b->wtail = w->prev;
    w->prev = w->next = NULL;
    b->n_workers--;
}

static void
workers_push_tail(struct broker *b, struct bworker *w)
{
    w->next = NULL;
    w->prev = b->wtail;
    if (b->wtail != NULL)
        b->wtail->next = w;
    else
        b->whead = w;
    b->wtail = w;
    b->n_workers++;
}

static struct bworker *
worker_find(struct broker *b, const zmq_msg_t *ident)
{
    size_t len = zmq_msg_size((zmq_msg_t *)ident);
    const void *data = zmq_msg_data((zmq_msg_t *)ident);

    for (struct bworker *w = b->whead; w != NULL; w = w->next)
        if (w->ident_len == len && memcmp(w->ident, data, len) == 0)
            return w;
    return NULL;
}

/* ---- sending ---------------------------------------------------------- */

/* [ident][frame] to one peer. ROUTER_MANDATORY: an unknown or gone peer
 * gives EHOSTUNREACH instead of a silent drop. */
static int
send_to(struct broker *b, const void *ident, size_t ident_len, Sluice__Frame *frame,
        const char **error_r)
{
    zmq_msg_t msg;

    if (sl_wire_pack(frame, &msg, error_r) < 0)
        return -1;
    if (sl_zsock_send_bytes(b->router, ident, ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        *error_r = zmq_strerror(errno);
        zmq_msg_close(&msg);
        return -1;
    }
    /* After the routing part was accepted the rest of the message cannot
     * hit the high-water mark. */
    if (zmq_msg_send(&msg, b->router, ZMQ_DONTWAIT) < 0) {
        *error_r = zmq_strerror(errno);
        zmq_msg_close(&msg);
        return -1;
    }
    return 0;
}

/* A tempfail verdict from the broker itself (queue full, poison message). */
static void
send_error_verdict(struct broker *b, const unsigned char *fe_ident, size_t fe_ident_len,
                   const char *job_id, const char *why)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    const char *error;

    v.job_id = (char *)job_id;
    v.ok = 0;
    v.error = (char *)why;
    v.worker = "broker";
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    if (send_to(b, fe_ident, fe_ident_len, &frame, &error) < 0)
        sl_warn("%s: broker: cannot send failure verdict to frontend: %s", job_id, error);
}

static void
send_disconnect(struct broker *b, const zmq_msg_t *ident)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Disconnect d = SLUICE__DISCONNECT__INIT;
    const char *error;

    frame.kind_case = SLUICE__FRAME__KIND_DISCONNECT;
    frame.disconnect = &d;
    (void)send_to(b, zmq_msg_data((zmq_msg_t *)ident), zmq_msg_size((zmq_msg_t *)ident), &frame,
                  &error);
}

/* ---- workers ---------------------------------------------------------- */

/* Removes w; its jobs go back to the front of the queue in their order.
 * died: the worker vanished (counts against each job, which fails after
 * SL_WIRE_MAX_FAILURES); !died: it said Disconnect. */
static void
worker_remove(struct broker *b, struct bworker *w, const char *why, bool died)
{
    struct bjob *j;

    sl_notice("broker: worker %s removed (%s), %zu job(s) in flight", w->name, why,
              w->inflight.n);
    while ((j = w->inflight.tail) != NULL) {
        jlist_unlink(&w->inflight, j);
        j->worker = NULL;
        if (died)
            j->failures++;
        if (j->failures >= SL_WIRE_MAX_FAILURES) {
            sl_error("%s: job failed on %u workers, giving up (poison message?)", j->id,
                     j->failures);
            send_error_verdict(b, j->fe_ident, j->fe_ident_len, j->id,
                               "job failed on 3 workers (poison message?)");
            b->n_failed++;
            bjob_destroy(&j);
            continue;
        }
        sl_notice("%s: requeued after attempt %u (worker %s %s)", j->id,
                  (unsigned)j->frame->job->attempt, w->name, why);
        jlist_push_head(&b->queue, j);
        b->n_requeued++;
    }
    workers_unlink(b, w);
    free(w->name);
    free(w);
}

static void
worker_ready(struct broker *b, const zmq_msg_t *ident, const Sluice__Ready *ready,
             unsigned long long now)
{
    struct bworker *w = worker_find(b, ident);
    size_t len = zmq_msg_size((zmq_msg_t *)ident);

    if (w == NULL) {
        if (len == 0 || len > BROKER_IDENT_MAX)
            return;
        w = sl_calloc(1, sizeof(*w));
        memcpy(w->ident, zmq_msg_data((zmq_msg_t *)ident), len);
        w->ident_len = len;
        w->name = sl_strdup(ready->worker_id);
        workers_push_tail(b, w);
        sl_info("broker: worker %s ready, %u slot(s)", w->name, (unsigned)ready->slots);
    }
    w->slots += ready->slots;
    if (w->slots > SL_WIRE_MAX_SLOTS)
        w->slots = SL_WIRE_MAX_SLOTS;
    w->expiry_ms = now + (unsigned long long)SL_WIRE_HEARTBEAT_MS * SL_WIRE_HEARTBEAT_LIVENESS;
}

static void
on_verdict(struct broker *b, struct bworker *w, zmq_msg_t *fmsg, const Sluice__Verdict *v)
{
    struct bjob *j = w != NULL ? jlist_find(&w->inflight, v->job_id) : NULL;
    const char *error;

    if (j != NULL) {
        jlist_unlink(&w->inflight, j);
        w->slots++;         /* a verdict frees the slot (docs/protocol-wire.md) */
    } else {
        /* A worker we gave up on answered after all: the job may still wait
         * in the queue (requeued); take this answer rather than scan again. */
        j = jlist_find(&b->queue, v->job_id);
        if (j == NULL) {
            sl_info("%s: broker: late or unknown verdict from %s dropped", v->job_id,
                    w != NULL ? w->name : "an unregistered worker");
            return;
        }
        jlist_unlink(&b->queue, j);
        sl_info("%s: broker: verdict from a worker presumed dead, taken", v->job_id);
    }
    /* Forward the frame bytes as received: the broker validated them and
     * has nothing to add. */
    if (sl_zsock_send_bytes(b->router, j->fe_ident, j->fe_ident_len,
                            ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        error = zmq_strerror(errno);
        sl_warn("%s: broker: frontend unreachable, verdict dropped: %s", j->id, error);
    } else if (zmq_msg_send(fmsg, b->router, ZMQ_DONTWAIT) < 0) {
        sl_warn("%s: broker: verdict send failed: %s", j->id, zmq_strerror(errno));
    } else {
        sl_debug("%s: broker: verdict from %s forwarded", j->id, w != NULL ? w->name : "?");
        b->n_verdicts++;
    }
    bjob_destroy(&j);
}

/* ---- jobs ------------------------------------------------------------- */

static void
on_job(struct broker *b, zmq_msg_t *ident, zmq_msg_t *fmsg, Sluice__Frame **framep)
{
    Sluice__Frame *frame = *framep;
    Sluice__Job *job = frame->job;
    size_t ident_len = zmq_msg_size(ident);
    struct bjob *j;
    zmq_msg_t body;

    (void)fmsg;
    if (ident_len == 0 || ident_len > BROKER_IDENT_MAX)
        return;
    if (!sl_zsock_more(b->router)) {
        sl_warn("%s: broker: job without body frame, rejected", job->job_id);
        send_error_verdict(b, zmq_msg_data(ident), ident_len, job->job_id,
                           "protocol error: job without body frame");
        return;
    }
    zmq_msg_init(&body);
    if (zmq_msg_recv(&body, b->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&body);
        return;
    }
    if (sl_zsock_drain_more(b->router) > 0 || zmq_msg_size(&body) != job->size) {
        sl_warn("%s: broker: body frame does not match job.size %llu, rejected", job->job_id,
                (unsigned long long)job->size);
        send_error_verdict(b, zmq_msg_data(ident), ident_len, job->job_id,
                           "protocol error: bad body frame");
        zmq_msg_close(&body);
        return;
    }
    if (b->queue.n >= BROKER_MAX_QUEUE) {
        sl_warn("%s: broker: queue full (%zu jobs), rejected", job->job_id, b->queue.n);
        send_error_verdict(b, zmq_msg_data(ident), ident_len, job->job_id, "broker queue full");
        zmq_msg_close(&body);
        return;
    }
    j = sl_calloc(1, sizeof(*j));
    memcpy(j->id, job->job_id, SL_ID_LEN + 1);
    memcpy(j->fe_ident, zmq_msg_data(ident), ident_len);
    j->fe_ident_len = ident_len;
    zmq_msg_init(&j->body);
    zmq_msg_move(&j->body, &body);
    zmq_msg_close(&body);
    j->frame = frame;
    *framep = NULL;
    jlist_push_tail(&b->queue, j);
    b->n_jobs++;
    sl_debug("%s: broker: queued (%zu waiting, %llu bytes)", j->id, b->queue.n,
             (unsigned long long)job->size);
}

static bool
job_expired(const struct bjob *j, unsigned long long now_wall)
{
    return j->frame->job->deadline_ms <= now_wall;
}

/* Jobs nobody will use any more (the frontend has tempfailed them). */
static void
purge_expired(struct broker *b)
{
    unsigned long long now_wall = sl_now_wall_ms();
    struct bjob *j = b->queue.head, *next;

    for (; j != NULL; j = next) {
        next = j->next;
        if (!job_expired(j, now_wall))
            continue;
        sl_warn("%s: broker: deadline passed while queued, dropped", j->id);
        jlist_unlink(&b->queue, j);
        b->n_expired++;
        bjob_destroy(&j);
    }
}

/* [ident][frame with attempt][body reference]. 0, or -1 if the worker
 * cannot be reached (nothing was sent). */
static int
send_job(struct broker *b, struct bworker *w, struct bjob *j)
{
    Sluice__Job *job = j->frame->job;
    uint32_t old_attempt = job->attempt;
    zmq_msg_t fmsg, body;
    const char *error;

    job->attempt = old_attempt + 1;
    if (sl_wire_pack(j->frame, &fmsg, &error) < 0) {
        /* validated on receipt: only attempt changed */
        sl_bug(__FILE__, __LINE__, error);
    }
    if (sl_zsock_send_bytes(b->router, w->ident, w->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        job->attempt = old_attempt;
        zmq_msg_close(&fmsg);
        return -1;
    }
    zmq_msg_init(&body);
    zmq_msg_copy(&body, &j->body);      /* a reference, not a copy of the bytes */
    if (zmq_msg_send(&fmsg, b->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&body, b->router, ZMQ_DONTWAIT) < 0) {
        /* cannot happen once the routing part is accepted; be safe */
        sl_error("%s: broker: send to worker %s failed mid-message: %s", j->id, w->name,
                 zmq_strerror(errno));
        zmq_msg_close(&fmsg);
        zmq_msg_close(&body);
    }
    return 0;
}

static void
dispatch(struct broker *b)
{
    unsigned long long now_wall = sl_now_wall_ms();

    while (b->queue.head != NULL) {
        struct bworker *w;
        struct bjob *j;

        for (w = b->whead; w != NULL && w->slots == 0; w = w->next)
            ;
        if (w == NULL)
            return;
        j = b->queue.head;
        jlist_unlink(&b->queue, j);
        if (job_expired(j, now_wall)) {
            sl_warn("%s: broker: deadline passed while queued, dropped", j->id);
            b->n_expired++;
            bjob_destroy(&j);
            continue;
        }
        if (send_job(b, w, j) < 0) {
            const char *why = errno == EHOSTUNREACH ? "unreachable" : "not reading";
            jlist_push_head(&b->queue, j);
            worker_remove(b, w, why, true);
            continue;
        }
        sl_debug("%s: broker: attempt %u to worker %s", j->id, (unsigned)j->frame->job->attempt,
                 w->name);
        j->worker = w;
        jlist_push_tail(&w->inflight, j);
        w->slots--;
        /* least recently used first: spread jobs over workers */
        workers_unlink(b, w);
        workers_push_tail(b, w);
    }
}

/* ---- the loop --------------------------------------------------------- */

/* Receives one message. false when nothing was waiting. */
static bool
recv_one(struct broker *b, unsigned long long now)
{
    zmq_msg_t ident, fmsg;
    Sluice__Frame *frame = NULL;
    const char *error;
    struct bworker *w;

    zmq_msg_init(&ident);
    if (zmq_msg_recv(&ident, b->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ident);
        return false;
    }
    zmq_msg_init(&fmsg);
    if (!sl_zsock_more(b->router) || zmq_msg_recv(&fmsg, b->router, ZMQ_DONTWAIT) < 0) {
        b->n_bad_frames++;
        goto out;
    }
    if (sl_wire_unpack_msg(&fmsg, &frame, &error) < 0) {
        sl_warn("broker: dropped a frame from a peer: %s", error);
        b->n_bad_frames++;
        goto out;
    }
    if (frame->kind_case == SLUICE__FRAME__KIND_JOB) {
        on_job(b, &ident, &fmsg, &frame);
        goto out;
    }
    if (sl_zsock_drain_more(b->router) > 0) {
        sl_warn("broker: dropped a %s frame with extra parts", sl_wire_kind_name(frame));
        b->n_bad_frames++;
        goto out;
    }
    w = worker_find(b, &ident);
    if (w != NULL)      /* any traffic proves the worker alive */
        w->expiry_ms = now + (unsigned long long)SL_WIRE_HEARTBEAT_MS * SL_WIRE_HEARTBEAT_LIVENESS;
    switch (frame->kind_case) {
    case SLUICE__FRAME__KIND_READY:
        worker_ready(b, &ident, frame->ready, now);
        break;
    case SLUICE__FRAME__KIND_VERDICT:
        on_verdict(b, w, &fmsg, frame->verdict);
        if (w == NULL)      /* MDP: an unknown worker must register again */
            send_disconnect(b, &ident);
        break;
    case SLUICE__FRAME__KIND_HEARTBEAT:
        if (w == NULL)
            send_disconnect(b, &ident);
        break;
    case SLUICE__FRAME__KIND_DISCONNECT:
        if (w != NULL)
            worker_remove(b, w, "disconnected", false);
        break;
    case SLUICE__FRAME__KIND_JOB:
    case SLUICE__FRAME__KIND__NOT_SET:
    default:
        break;
    }
out:
    sl_zsock_drain_more(b->router);
    sl_wire_frame_free(&frame);
    zmq_msg_close(&fmsg);
    zmq_msg_close(&ident);
    return true;
}

static void
heartbeat_and_expire(struct broker *b, unsigned long long now)
{
    struct bworker *w, *next;

    for (w = b->whead; w != NULL; w = next) {
        next = w->next;
        if (w->expiry_ms <= now)
            worker_remove(b, w, "silent for 3 heartbeats", true);
    }
    if (now < b->next_heartbeat_ms)
        return;
    b->next_heartbeat_ms = now + SL_WIRE_HEARTBEAT_MS;
    for (w = b->whead; w != NULL; w = next) {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
        const char *error;

        next = w->next;
        frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
        frame.heartbeat = &hb;
        if (send_to(b, w->ident, w->ident_len, &frame, &error) < 0 && errno == EHOSTUNREACH)
            worker_remove(b, w, "connection gone", true);
        /* EAGAIN: not reading (busy or hung); its own silence decides */
    }
    if (now >= b->next_purge_ms) {
        b->next_purge_ms = now + SL_WIRE_HEARTBEAT_MS;
        purge_expired(b);
    }
}

static void *
broker_thread(void *arg)
{
    struct broker *b = arg;

    b->next_heartbeat_ms = sl_now_mono_ms() + SL_WIRE_HEARTBEAT_MS;
    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        long timeout = b->next_heartbeat_ms > now ? (long)(b->next_heartbeat_ms - now) : 0;
        zmq_pollitem_t items[2] = {
            { .socket = b->ctl_thread, .events = ZMQ_POLLIN },
            { .socket = b->router, .events = ZMQ_POLLIN },
        };

        if (zmq_poll(items, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            sl_error("broker: zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            break;
        now = sl_now_mono_ms();
        if (items[1].revents & ZMQ_POLLIN)
            for (int i = 0; i < BROKER_RECV_BATCH && recv_one(b, now); i++)
                ;
        heartbeat_and_expire(b, now);
        dispatch(b);
    }
    return NULL;
}

/* ---- API -------------------------------------------------------------- */

struct broker *
broker_start(void *zctx, const struct sl_config *config, const char *endpoint, char **error_r)
{
    struct broker *b = sl_calloc(1, sizeof(*b));
    char ctl[64];
    int ret;

    SL_BUG_ON(zctx == NULL || config == NULL || endpoint == NULL);
    b->zctx = zctx;
    b->endpoint = sl_strdup(endpoint);
    b->router = zmq_socket(zctx, ZMQ_ROUTER);
    SL_BUG_ON(b->router == NULL);
    sl_zsock_set_common(b->router, config->frontend.max_message_size);
    sl_zsock_set_int(b->router, ZMQ_ROUTER_MANDATORY, 1);
    if (zmq_bind(b->router, endpoint) != 0) {
        *error_r = sl_asprintf("broker: cannot bind %s: %s", endpoint, zmq_strerror(errno));
        zmq_close(b->router);
        free(b->endpoint);
        free(b);
        return NULL;
    }
    snprintf(ctl, sizeof(ctl), "inproc://sluice-broker-ctl-%p", (void *)b);
    b->ctl_thread = zmq_socket(zctx, ZMQ_PAIR);
    b->ctl_main = zmq_socket(zctx, ZMQ_PAIR);
    SL_BUG_ON(b->ctl_thread == NULL || b->ctl_main == NULL);
    sl_zsock_set_int(b->ctl_thread, ZMQ_LINGER, 0);
    sl_zsock_set_int(b->ctl_main, ZMQ_LINGER, 0);
    ret = zmq_bind(b->ctl_thread, ctl);
    SL_BUG_ON(ret != 0);
    ret = zmq_connect(b->ctl_main, ctl);
    SL_BUG_ON(ret != 0);
    ret = pthread_create(&b->thread, NULL, broker_thread, b);
    if (ret != 0) {
        *error_r = sl_asprintf("broker: pthread_create: %s", strerror(ret));
        zmq_close(b->ctl_thread);
        zmq_close(b->ctl_main);
        zmq_close(b->router);
        free(b->endpoint);
        free(b);
        return NULL;
    }
    sl_info("broker: listening on %s", endpoint);
    return b;
}

void
broker_stop(struct broker **brokerp)
{
    struct broker *b = *brokerp;
    struct bjob *j;

    if (b == NULL)
        return;
    *brokerp = NULL;
    if (zmq_send(b->ctl_main, "", 0, 0) < 0)
        sl_bug(__FILE__, __LINE__, "broker control socket");
    pthread_join(b->thread, NULL);

    /* Jobs still held end as the frontends' deadline (a 4xx, Postfix retries). */
    while ((j = b->queue.head) != NULL) {
        jlist_unlink(&b->queue, j);
        bjob_destroy(&j);
    }
    while (b->whead != NULL) {
        struct bworker *w = b->whead;
        while ((j = w->inflight.head) != NULL) {
            jlist_unlink(&w->inflight, j);
            bjob_destroy(&j);
        }
        workers_unlink(b, w);
        free(w->name);
        free(w);
    }
    sl_info("broker: stopped on %s: %llu jobs, %llu verdicts, %llu requeued, %llu expired, "
            "%llu failed, %llu bad frames",
            b->endpoint, b->n_jobs, b->n_verdicts, b->n_requeued, b->n_expired, b->n_failed,
            b->n_bad_frames);
    zmq_close(b->ctl_thread);
    zmq_close(b->ctl_main);
    zmq_close(b->router);
    free(b->endpoint);
    free(b);
}
