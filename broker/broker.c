/* broker.c - the job queue between frontends and workers (broker.h).
 *
 * One ROUTER socket serves both sides; the first Frame of a message says
 * who is talking (Job, or Heartbeat with client set: a frontend; Ready /
 * Verdict / Heartbeat / Disconnect: a worker). docs/protocol-wire.md
 * describes the exchanges, docs/cluster.md the scheduling and fail-over.
 *
 * State, all owned by the broker thread:
 *   origins   one FIFO of waiting jobs per origin (Job.origin); requeued
 *             jobs go to the front of theirs. Hand-outs are shared among
 *             the origins that have jobs waiting in proportion to their
 *             weight (Job.origin_concurrency) by stride scheduling: each
 *             origin has a "pass" that advances by STRIDE_ONE / weight per
 *             hand-out, and the origin with the smallest pass goes next. An
 *             origin that was idle starts at the current virtual time, so
 *             it neither hoards credit nor waits behind a flood: one busy
 *             Postfix cannot starve another.
 *   workers   in least-recently-used order; each holds its in-flight jobs,
 *             so a verdict is matched against the worker that sent it.
 *   clients   frontends heard from; heartbeated every second with this
 *             broker's instance id, so a frontend notices a dead or
 *             restarted broker within 3 s and resubmits its jobs elsewhere.
 *   jobs      every job held (waiting or in flight) by id: a job resubmitted
 *             by its frontend is recognised and not run twice here.
 * A job's body is the frame or frames received from the frontend, never
 * copied: each hand-out sends a zmq_msg_copy() of each (a reference on the
 * same buffer), and the broker keeps its own references until the verdict
 * is forwarded, so a job can be requeued when its worker dies. Only a
 * worker that does not take a body in pieces (an earlier version) gets
 * the pieces joined into a copy.
 *
 * Postfix's queue is the durable store (docs/design.md): a job lost here
 * (broker killed, unreachable frontend) is resubmitted by its frontend or
 * ends as the frontend's deadline and a 4xx, never as lost mail. */
#include "broker.h"
#include "broker_metrics.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "conf/sl_config.h"
#include "net/sl_keys.h"
#include "net/sl_wire.h"
#include "net/sl_zap.h"
#include "net/sl_zsock.h"
#include "sluice.pb-c.h"
#include "util/sl_bytemap.h"
#include "util/sl_id.h"
#include "util/sl_idmap.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define BROKER_MAX_QUEUE 100000     /* jobs waiting; more get a tempfail verdict */
#define BROKER_RECV_BATCH 1000      /* messages per wake-up before timers run */
#define BROKER_IDENT_MAX 255        /* ZeroMQ routing ids are 1..255 bytes */
#define BROKER_MAX_ORIGINS 1024     /* more origin names share one queue */
#define BROKER_OVERFLOW_ORIGIN "(other)"
#define BROKER_STATS_MS 100         /* snapshot refresh for broker_stats() */
#define BROKER_HB_TICK_MS 100       /* workers' heartbeats go out together on this tick, */
#define BROKER_HB_TICK_BUSY_MS 10   /* on this one while any job is held */
#define STRIDE_ONE (1ULL << 20)     /* a weight-1 origin's pass advance per hand-out */

struct bworker;
struct borigin;

struct bjob {
    struct bjob *prev, *next;       /* in an origin's queue or in a worker's in-flight list */
    char id[SL_ID_LEN + 1];
    unsigned char fe_ident[BROKER_IDENT_MAX];
    size_t fe_ident_len;
    Sluice__Frame *frame;           /* the Job frame as received; attempt updated per hand-out */
    struct sl_wire_body body;       /* our references on the body frames */
    unsigned failures;              /* workers it is counted to have taken down (worker_remove) */
    char *charged[SL_WIRE_MAX_FAILURES]; /* their names: one that comes back takes its count back */
    struct bworker *worker;         /* NULL while queued */
    struct borigin *origin;
    unsigned long long queued_ms;   /* monotonic, first arrival (the queue's age) */
    unsigned long long handed_ms;   /* monotonic, its latest hand-out to a worker */
};

struct jlist {
    struct bjob *head, *tail;
    size_t n;
};

struct borigin {
    struct borigin *next;
    char *name;
    unsigned weight;                /* the latest Job.origin_concurrency, at least 1 */
    struct jlist queue;
    size_t inflight;
    unsigned long long pass;        /* stride scheduling, see the top of the file */
};

struct bworker {
    /* what the tick's walk of every worker reads, in one cache line */
    struct bworker *prev, *next;
    unsigned long long expiry_ms;   /* monotonic; dead when passed */
    unsigned long long hb_due_ms;   /* its next heartbeat (monotonic) */
    unsigned long long heard_ms;    /* monotonic, its latest message */
    unsigned idle_hb_ms;            /* heartbeat interval while it holds no job */
    unsigned slots;                 /* jobs it can take now */
    struct jlist inflight;
    unsigned char ident[BROKER_IDENT_MAX];
    size_t ident_len;
    char *name;                     /* Ready.worker_id, for logs */
    struct bworker *fprev, *fnext;  /* b->free: while it has a free slot */
    bool in_free;
    bool body_pieces;               /* Ready.body_pieces: it takes a body in several frames */
};

/* How a worker was lost (worker_remove). */
enum wloss {
    WLOSS_GOODBYE, /* it said Disconnect */
    WLOSS_CLOSED,  /* ZeroMQ dropped its connection (it cannot be routed to) */
    WLOSS_SILENT,  /* no message for 3 heartbeats, or not reading what we send */
};

struct bclient {
    struct bclient *next;
    unsigned char ident[BROKER_IDENT_MAX];
    size_t ident_len;
    unsigned long long expiry_ms;   /* silent past this: no longer heartbeated */
};

struct broker {
    void *zctx;
    void *router;
    struct sl_zap *zap;             /* CURVE: the allow-list; NULL for inproc:// or plain */
    unsigned long long next_role_warn_ms;
    unsigned long long n_role_refused;      /* frames from a key of the wrong role */
    int stop_fd;                    /* eventfd, written by broker_stop() */
    char *endpoint;
    pthread_t thread;
    char instance[SL_ID_LEN + 1];

    struct borigin *origins;
    unsigned n_origins;
    size_t depth;                   /* jobs waiting, all origins */
    unsigned long long vtime;       /* pass of the latest hand-out */
    struct sl_idmap *jobs;          /* id -> struct bjob, every job held */
    struct bworker *whead, *wtail;
    size_t n_workers;
    struct sl_bytemap *by_ident;    /* routing id -> struct bworker */
    struct bworker *fhead, *ftail;  /* workers with a free slot, least recently used first */
    struct bclient *clients;
    unsigned n_clients;
    unsigned long long next_heartbeat_ms;
    unsigned long long next_hb_tick_ms;
    unsigned long long walk_due_ms; /* no worker's heartbeat or expiry is due before this */
    unsigned long long next_purge_ms;
    unsigned long long next_stats_ms;
    unsigned long long now_ms;      /* monotonic time of this turn of the loop */
    unsigned long long grace_until_ms; /* after our own stall: nobody is judged before this */

    pthread_mutex_t stats_lock;
    struct broker_stats stats;      /* under stats_lock */

    unsigned long long n_jobs, n_verdicts, n_requeued, n_expired, n_failed, n_bad_frames,
        n_duplicates;
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

/* ---- the job table ---------------------------------------------------- */

static struct bjob *
job_find(struct broker *b, const char *id)
{
    return sl_idmap_find(b->jobs, id);
}

static void
job_table_add(struct broker *b, struct bjob *j)
{
    int ret = sl_idmap_insert(b->jobs, j->id, j);
    SL_BUG_ON(ret != 0); /* on_job looked it up first */
}

static void
job_table_remove(struct broker *b, struct bjob *j)
{
    struct bjob *was = sl_idmap_remove(b->jobs, j->id);
    SL_BUG_ON(was != j);
}

/* Forgets a job that is in no list any more and frees it. */
static void
bjob_destroy(struct broker *b, struct bjob **jobp)
{
    struct bjob *j = *jobp;

    if (j == NULL)
        return;
    *jobp = NULL;
    job_table_remove(b, j);
    for (unsigned i = 0; i < j->failures; i++)
        free(j->charged[i]);
    sl_wire_frame_free(&j->frame);
    sl_wire_body_close(&j->body);
    free(j);
}

/* ---- origins and the fair queue --------------------------------------- */

static struct borigin *
origin_get(struct broker *b, const char *name, unsigned weight)
{
    struct borigin *o;

    if (name == NULL || name[0] == '\0')
        name = "default";
    for (o = b->origins; o != NULL; o = o->next)
        if (strcmp(o->name, name) == 0)
            break;
    if (o == NULL && b->n_origins >= BROKER_MAX_ORIGINS) {
        /* names come from other nodes: bound what they can make us hold */
        name = BROKER_OVERFLOW_ORIGIN;
        for (o = b->origins; o != NULL; o = o->next)
            if (strcmp(o->name, name) == 0)
                break;
    }
    if (o == NULL) {
        o = sl_calloc(1, sizeof(*o));
        o->name = sl_strdup(name);
        o->next = b->origins;
        o->pass = b->vtime;
        b->origins = o;
        b->n_origins++;
        sl_info("broker: origin %s, weight %u", o->name, weight ? weight : 1);
    }
    /* 0: a frontend that does not say; every origin counts at least once */
    o->weight = weight ? weight : 1;
    return o;
}

/* Puts j (not in any list) into its origin's queue, at the front for a
 * requeued job. An origin that had nothing waiting joins at the current
 * virtual time. */
static void
queue_put(struct broker *b, struct bjob *j, bool front)
{
    struct borigin *o = j->origin;

    if (o->queue.n == 0 && o->pass < b->vtime)
        o->pass = b->vtime;
    if (front)
        jlist_push_head(&o->queue, j);
    else
        jlist_push_tail(&o->queue, j);
    b->depth++;
}

static void
queue_unlink(struct broker *b, struct bjob *j)
{
    jlist_unlink(&j->origin->queue, j);
    b->depth--;
}

/* The origin whose turn it is: smallest pass among those with jobs
 * waiting; on a tie, the one whose first job waited longest. */
static struct borigin *
queue_next_origin(struct broker *b)
{
    struct borigin *best = NULL;

    for (struct borigin *o = b->origins; o != NULL; o = o->next) {
        if (o->queue.n == 0)
            continue;
        if (best == NULL || o->pass < best->pass ||
            (o->pass == best->pass && o->queue.head->queued_ms < best->queue.head->queued_ms))
            best = o;
    }
    return best;
}

/* Takes the origin's turn: advances its pass by its stride. */
static void
queue_charge(struct broker *b, struct borigin *o)
{
    b->vtime = o->pass;
    o->pass += STRIDE_ONE / o->weight;
}

/* ---- workers list ----------------------------------------------------- */

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

static bool
ident_eq(const unsigned char *a, size_t alen, const zmq_msg_t *ident)
{
    return alen == zmq_msg_size((zmq_msg_t *)ident) &&
           memcmp(a, zmq_msg_data((zmq_msg_t *)ident), alen) == 0;
}

static struct bworker *
worker_find(struct broker *b, const zmq_msg_t *ident)
{
    return sl_bytemap_find(b->by_ident, zmq_msg_data((zmq_msg_t *)ident),
                           zmq_msg_size((zmq_msg_t *)ident));
}

/* w was heard at now: dead after 3 s more of silence while it holds a job
 * (it heartbeats every second as it scans), after 3 of its idle intervals
 * while it holds none (9 s; docs/protocol-wire.md 5.1). */
static void
worker_heard(struct bworker *w, unsigned long long now)
{
    w->heard_ms = now;
    w->expiry_ms = now + (w->inflight.n > 0 ? SL_WIRE_LIVENESS_MS
                                            : (unsigned long long)w->idle_hb_ms *
                                                  SL_WIRE_HEARTBEAT_LIVENESS);
}

/* w's next heartbeat at due, unless one is due sooner. */
static void
worker_hb_due(struct broker *b, struct bworker *w, unsigned long long due)
{
    if (w->hb_due_ms == 0 || due < w->hb_due_ms)
        w->hb_due_ms = due;
    if (w->hb_due_ms < b->walk_due_ms)
        b->walk_due_ms = w->hb_due_ms;
}

/* w, idle until now, is handed a job: from here it heartbeats every
 * second while it scans, is heartbeated every second (worker_handed), and
 * is dead after 3 s of silence at the latest. */
static void
worker_busy(struct broker *b, struct bworker *w)
{
    if (w->expiry_ms > b->now_ms + SL_WIRE_LIVENESS_MS)
        w->expiry_ms = b->now_ms + SL_WIRE_LIVENESS_MS;
    if (w->expiry_ms < b->walk_due_ms)
        b->walk_due_ms = w->expiry_ms;
}

/* w was handed a job. A hand-out is as good as a heartbeat (a worker
 * renews us on any frame), so its next heartbeat is due a second from
 * now: under load few heartbeats are left to send. */
static void
worker_handed(struct broker *b, struct bworker *w)
{
    w->hb_due_ms = b->now_ms + SL_WIRE_HEARTBEAT_MS;
    if (w->hb_due_ms < b->walk_due_ms)
        b->walk_due_ms = w->hb_due_ms;
}

/* ---- workers with a free slot ------------------------------------------ */

/* dispatch() hands the next job to the first of them; one that took a job
 * goes to the end (least recently used first: jobs spread over workers), or
 * leaves the list when its slots are used up; a verdict or a Ready brings
 * it back. With a thousand workers, most of them busy, no hand-out walks
 * the busy ones. */
static void
free_unlink(struct broker *b, struct bworker *w)
{
    if (!w->in_free)
        return;
    if (w->fprev != NULL)
        w->fprev->fnext = w->fnext;
    else
        b->fhead = w->fnext;
    if (w->fnext != NULL)
        w->fnext->fprev = w->fprev;
    else
        b->ftail = w->fprev;
    w->fprev = w->fnext = NULL;
    w->in_free = false;
}

/* After w's slots changed: on the list if it has one free (at the end
 * when requeue or not there yet), off it otherwise. */
static void
free_update(struct broker *b, struct bworker *w, bool requeue)
{
    if (w->slots == 0 || requeue)
        free_unlink(b, w);
    if (w->slots == 0 || w->in_free)
        return;
    w->fnext = NULL;
    w->fprev = b->ftail;
    if (b->ftail != NULL)
        b->ftail->fnext = w;
    else
        b->fhead = w;
    b->ftail = w;
    w->in_free = true;
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

/* Heartbeat with our instance id (workers ignore it; frontends compare). */
static int
send_heartbeat(struct broker *b, const unsigned char *ident, size_t ident_len)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    const char *error;

    hb.instance = b->instance;
    hb.body_pieces = 1;
    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    return send_to(b, ident, ident_len, &frame, &error);
}

/* ---- clients (frontends) ---------------------------------------------- */

static void
client_seen(struct broker *b, const zmq_msg_t *ident, unsigned long long now)
{
    size_t len = zmq_msg_size((zmq_msg_t *)ident);
    struct bclient *c;

    if (len == 0 || len > BROKER_IDENT_MAX)
        return;
    for (c = b->clients; c != NULL; c = c->next)
        if (ident_eq(c->ident, c->ident_len, ident))
            break;
    if (c == NULL) {
        c = sl_calloc(1, sizeof(*c));
        memcpy(c->ident, zmq_msg_data((zmq_msg_t *)ident), len);
        c->ident_len = len;
        c->next = b->clients;
        b->clients = c;
        b->n_clients++;
        sl_debug("broker: frontend connection %u joined", b->n_clients);
        /* at once, so the frontend learns our instance without waiting a tick */
        (void)send_heartbeat(b, c->ident, c->ident_len);
    }
    c->expiry_ms = now + SL_WIRE_LIVENESS_MS;
}

/* The frontend's connection is gone (ZeroMQ cannot route to it): nobody
 * can receive verdicts for its waiting jobs any more (a reconnecting
 * frontend has a new routing id and resubmits), so they are dropped rather
 * than scanned for nothing. */
static void
client_gone(struct broker *b, struct bclient *c)
{
    unsigned dropped = 0;

    for (struct borigin *o = b->origins; o != NULL; o = o->next) {
        struct bjob *j = o->queue.head, *next;
        for (; j != NULL; j = next) {
            next = j->next;
            if (j->fe_ident_len != c->ident_len || memcmp(j->fe_ident, c->ident, c->ident_len) != 0)
                continue;
            queue_unlink(b, j);
            bjob_destroy(b, &j);
            dropped++;
        }
    }
    sl_notice("broker: a frontend connection is gone; %u of its waiting job(s) dropped", dropped);
}

static void
clients_heartbeat(struct broker *b, unsigned long long now)
{
    struct bclient **pp = &b->clients;

    while (*pp != NULL) {
        struct bclient *c = *pp;
        bool gone = false;

        if (send_heartbeat(b, c->ident, c->ident_len) < 0 && errno == EHOSTUNREACH) {
            gone = true;
            client_gone(b, c);
        } else if (c->expiry_ms <= now) {
            /* silent but still connected: stop heartbeating it; it comes
             * back with its next message */
            gone = true;
        }
        if (gone) {
            *pp = c->next;
            b->n_clients--;
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* ---- workers ---------------------------------------------------------- */

/* Does losing w count against the jobs it held? A poison message is one
 * that takes down the workers scanning it, so only evidence that points
 * at the message counts, never the broker's own trouble:
 *   - nothing counts right after our own stall (every worker looks dead
 *     to a broker that was frozen: it was us who did not listen);
 *   - a connection that closed before the worker's silence could explain
 *     it (ZMTP heartbeats end a silent peer's connection more than 3
 *     heartbeats after its last message, never sooner) counts: its
 *     process died, or dropped its socket, under the job;
 *   - silence (a hang, a pause, a partition), or a connection closed
 *     after one, counts only while other workers keep talking (heard
 *     within 2 s): a broker that lost touch with every worker at once is
 *     cut off itself. Workers without a job are heard only every 3 s, so
 *     in a small cluster the evidence may be missing: then nothing
 *     counts, the safe side (a poison message takes a few more tries).
 * A worker counted here that comes back under its own name (the same
 * process: names carry a random tag per process life) was paused or cut
 * off, not killed, and takes its count back (jobs_absolve). NULL: not
 * counted; else the evidence, for the log. */
static const char LOSS_CLOSED_TALKING[] = "its connection closed while it was talking";

static const char *
worker_loss_counts(const struct broker *b, const struct bworker *w, enum wloss loss)
{
    unsigned long long now = b->now_ms, recent = 2ULL * SL_WIRE_HEARTBEAT_MS;

    if (loss == WLOSS_GOODBYE || now < b->grace_until_ms)
        return NULL;
    for (const struct bworker *o = b->whead; o != NULL; o = o->next)
        if (o != w && strcmp(o->name, w->name) == 0)
            return NULL; /* the same process, back on a new connection */
    if (loss == WLOSS_CLOSED && now < w->expiry_ms)
        return LOSS_CLOSED_TALKING;
    for (const struct bworker *o = b->whead; o != NULL; o = o->next)
        if (o != w && now < o->heard_ms + recent)
            return "other workers keep talking";
    return NULL;
}

/* Removes w; its jobs go back to the front of their queues in their order.
 * Each job w held may be counted one failure (worker_loss_counts); a job
 * counted SL_WIRE_MAX_FAILURES times is given up with a failure verdict
 * (a poison message must not take down the whole pool). */
static void
worker_remove(struct broker *b, struct bworker *w, const char *why, enum wloss loss)
{
    const char *counts = w->inflight.n > 0 ? worker_loss_counts(b, w, loss) : NULL;
    struct bjob *j;

    sl_notice("broker: worker %s removed (%s), %zu job(s) in flight", w->name, why,
              w->inflight.n);
    while ((j = w->inflight.tail) != NULL) {
        /* Silence counts only if the worker was heard within a second
         * before the hand-out or after it: a worker acknowledges a job
         * that reaches it after a quiet second (workers/worker.c), so one
         * silent since before was gone before the job came. */
        bool counted = counts != NULL && (counts == LOSS_CLOSED_TALKING ||
                                          w->heard_ms + SL_WIRE_HEARTBEAT_MS >= j->handed_ms);
        jlist_unlink(&w->inflight, j);
        j->worker = NULL;
        j->origin->inflight--;
        if (counted)
            j->charged[j->failures++] = sl_strdup(w->name);
        if (j->failures >= SL_WIRE_MAX_FAILURES) {
            sl_error("%s: job failed on %u workers, giving up (poison message?): %s, %s, %s",
                     j->id, j->failures, j->charged[0], j->charged[1], j->charged[2]);
            send_error_verdict(b, j->fe_ident, j->fe_ident_len, j->id,
                               "job failed on 3 workers (poison message?)");
            b->n_failed++;
            bjob_destroy(b, &j);
            continue;
        }
        if (counted)
            sl_notice("%s: requeued after attempt %u (worker %s %s; counted against the "
                      "message, %u of %u: %s)",
                      j->id, (unsigned)j->frame->job->attempt, w->name, why, j->failures,
                      SL_WIRE_MAX_FAILURES, counts);
        else if (counts != NULL)
            sl_notice("%s: requeued after attempt %u (worker %s %s; not counted against the "
                      "message: silent since before it got the job)",
                      j->id, (unsigned)j->frame->job->attempt, w->name, why);
        else
            sl_notice("%s: requeued after attempt %u (worker %s %s; not counted against the "
                      "message)",
                      j->id, (unsigned)j->frame->job->attempt, w->name, why);
        queue_put(b, j, true);
        b->n_requeued++;
    }
    workers_unlink(b, w);
    free_unlink(b, w);
    (void)sl_bytemap_remove(b->by_ident, w->ident, w->ident_len);
    free(w->name);
    free(w);
}

/* A worker registered under name: if jobs were counted as having taken
 * it down, it is back (the same process), so it was paused or cut off,
 * not killed by them: the counts are taken back. */
static void
jobs_absolve(struct broker *b, const char *name)
{
    size_t it = 0;
    void *value;

    while (sl_idmap_next(b->jobs, &it, NULL, &value)) {
        struct bjob *j = value;
        for (unsigned i = 0; i < j->failures; i++) {
            if (strcmp(j->charged[i], name) != 0)
                continue;
            free(j->charged[i]);
            memmove(&j->charged[i], &j->charged[i + 1],
                    (j->failures - i - 1) * sizeof(j->charged[0]));
            j->failures--;
            sl_notice("%s: worker %s is back: it was paused or cut off, not taken down by the "
                      "message; %u failure(s) counted",
                      j->id, name, j->failures);
            break;
        }
    }
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
        w->body_pieces = ready->body_pieces;
        /* as often as it asks while idle, within our bounds; a worker that
         * does not ask (an earlier version) judges us by 3 s of silence */
        w->idle_hb_ms = ready->idle_heartbeat_ms < SL_WIRE_HEARTBEAT_MS ? SL_WIRE_HEARTBEAT_MS
                        : ready->idle_heartbeat_ms > SL_WIRE_WORKER_HEARTBEAT_MS
                            ? SL_WIRE_WORKER_HEARTBEAT_MS
                            : ready->idle_heartbeat_ms;
        worker_hb_due(b, w, now + w->idle_hb_ms);
        workers_push_tail(b, w);
        SL_BUG_ON(sl_bytemap_insert(b->by_ident, w->ident, w->ident_len, w) != 0);
        sl_info("broker: worker %s ready, %u slot(s)", w->name, (unsigned)ready->slots);
        jobs_absolve(b, w->name);
    }
    w->slots += ready->slots;
    if (w->slots > SL_WIRE_MAX_SLOTS)
        w->slots = SL_WIRE_MAX_SLOTS;
    free_update(b, w, false);
    worker_heard(w, now);
}

static void
on_verdict(struct broker *b, struct bworker *w, zmq_msg_t *fmsg, const Sluice__Verdict *v)
{
    struct bjob *j = job_find(b, v->job_id);
    const char *error;

    if (j != NULL && j->worker != NULL && j->worker == w) {
        jlist_unlink(&w->inflight, j);
        j->origin->inflight--;
        w->slots++;         /* a verdict frees the slot (docs/protocol-wire.md) */
        free_update(b, w, false);
        if (w->inflight.n == 0)
            worker_heard(w, w->heard_ms);   /* idle again: the longer liveness */
    } else if (j != NULL && j->worker == NULL) {
        /* A worker we gave up on answered after all: the job waits in the
         * queue (requeued); take this answer rather than scan again. */
        queue_unlink(b, j);
        sl_info("%s: broker: verdict from a worker presumed dead, taken", v->job_id);
    } else {
        /* unknown, or held by another worker now */
        sl_info("%s: broker: late or unknown verdict from %s dropped", v->job_id,
                w != NULL ? w->name : "an unregistered worker");
        return;
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
    bjob_destroy(b, &j);
}

/* ---- jobs ------------------------------------------------------------- */

static void
on_job(struct broker *b, zmq_msg_t *ident, Sluice__Frame **framep, unsigned long long now)
{
    Sluice__Frame *frame = *framep;
    Sluice__Job *job = frame->job;
    size_t ident_len = zmq_msg_size(ident);
    struct bjob *j;
    struct sl_wire_body body;
    const char *error;

    if (ident_len == 0 || ident_len > BROKER_IDENT_MAX)
        return;
    client_seen(b, ident, now);
    if (sl_wire_body_recv(b->router, job->size, &body, &error) < 0) {
        sl_warn("%s: broker: %s (job.size %llu), rejected", job->job_id, error,
                (unsigned long long)job->size);
        send_error_verdict(b, zmq_msg_data(ident), ident_len, job->job_id,
                           "protocol error: bad body frame");
        return;
    }
    j = job_find(b, job->job_id);
    if (j != NULL) {
        /* The frontend resubmitted a job we hold (it took us for dead, or
         * its connection was renewed): keep our copy, waiting or in
         * flight, and send the verdict over the connection it used last. */
        memcpy(j->fe_ident, zmq_msg_data(ident), ident_len);
        j->fe_ident_len = ident_len;
        b->n_duplicates++;
        sl_info("%s: broker: resubmitted job already held (%s), not queued twice", j->id,
                j->worker != NULL ? "in flight" : "waiting");
        sl_wire_body_close(&body);
        return;
    }
    if (b->depth >= BROKER_MAX_QUEUE) {
        sl_warn("%s: broker: queue full (%zu jobs), rejected", job->job_id, b->depth);
        send_error_verdict(b, zmq_msg_data(ident), ident_len, job->job_id, "broker queue full");
        sl_wire_body_close(&body);
        return;
    }
    j = sl_calloc(1, sizeof(*j));
    memcpy(j->id, job->job_id, SL_ID_LEN + 1);
    memcpy(j->fe_ident, zmq_msg_data(ident), ident_len);
    j->fe_ident_len = ident_len;
    sl_wire_body_move(&j->body, &body);
    j->frame = frame;
    *framep = NULL;
    j->origin = origin_get(b, job->origin, job->origin_concurrency);
    j->queued_ms = now;
    job_table_add(b, j);
    queue_put(b, j, false);
    b->n_jobs++;
    sl_debug("%s: broker: queued for origin %s (%zu waiting, %llu bytes)", j->id,
             j->origin->name, b->depth, (unsigned long long)job->size);
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

    for (struct borigin *o = b->origins; o != NULL; o = o->next) {
        struct bjob *j = o->queue.head, *next;
        for (; j != NULL; j = next) {
            next = j->next;
            if (!job_expired(j, now_wall))
                continue;
            sl_warn("%s: broker: deadline passed while queued, dropped", j->id);
            queue_unlink(b, j);
            b->n_expired++;
            bjob_destroy(b, &j);
        }
    }
}

/* [ident][frame with attempt][body references]. 0; -1 if the worker
 * cannot be reached (nothing was sent); -2 with *error_r if the job cannot
 * be sent at all (nothing was sent, attempt unchanged). */
static int
send_job(struct broker *b, struct bworker *w, struct bjob *j, const char **error_r)
{
    Sluice__Job *job = j->frame->job;
    uint32_t old_attempt = job->attempt;
    zmq_msg_t fmsg;

    /* The frame was validated on receipt, but it came from another node:
     * with attempt + 1 it can fail validation (a frontend sent attempt
     * 1000) or outgrow SL_WIRE_FRAME_MAX (proto3 omits attempt 0, so the
     * first hand-out adds two bytes). Not a bug of ours: outside input. */
    job->attempt = old_attempt + 1;
    if (sl_wire_pack(j->frame, &fmsg, error_r) < 0) {
        job->attempt = old_attempt;
        return -2;
    }
    if (sl_zsock_send_bytes(b->router, w->ident, w->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        job->attempt = old_attempt;
        zmq_msg_close(&fmsg);
        return -1;
    }
    if (zmq_msg_send(&fmsg, b->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        sl_wire_body_send(b->router, &j->body, w->body_pieces) < 0) {
        /* cannot happen once the routing part is accepted; be safe */
        sl_error("%s: broker: send to worker %s failed mid-message: %s", j->id, w->name,
                 zmq_strerror(errno));
        zmq_msg_close(&fmsg);
    }
    return 0;
}

static void
dispatch(struct broker *b)
{
    unsigned long long now_wall = sl_now_wall_ms();

    while (b->depth > 0) {
        struct bworker *w;
        struct borigin *o;
        struct bjob *j;

        if ((w = b->fhead) == NULL)
            return;
        o = queue_next_origin(b);
        SL_BUG_ON(o == NULL);       /* depth > 0 */
        j = o->queue.head;
        queue_unlink(b, j);
        if (job_expired(j, now_wall)) {
            sl_warn("%s: broker: deadline passed while queued, dropped", j->id);
            b->n_expired++;
            bjob_destroy(b, &j);
            continue;
        }
        const char *error;
        int sent = send_job(b, w, j, &error);
        if (sent == -2) {
            sl_error("%s: broker: job cannot be handed out: %s", j->id, error);
            send_error_verdict(b, j->fe_ident, j->fe_ident_len, j->id,
                               "protocol error: job cannot be handed out");
            b->n_failed++;
            bjob_destroy(b, &j);
            continue;
        }
        if (sent < 0) {
            const char *why = errno == EHOSTUNREACH ? "unreachable" : "not reading";
            queue_put(b, j, true);
            worker_remove(b, w, why, errno == EHOSTUNREACH ? WLOSS_CLOSED : WLOSS_SILENT);
            continue;
        }
        queue_charge(b, o);
        broker_metrics_waited(j->queued_ms);
        sl_debug("%s: broker: attempt %u to worker %s (origin %s)", j->id,
                 (unsigned)j->frame->job->attempt, w->name, o->name);
        j->worker = w;
        j->handed_ms = b->now_ms;
        o->inflight++;
        if (w->inflight.n == 0)
            worker_busy(b, w);
        jlist_push_tail(&w->inflight, j);
        w->slots--;
        free_update(b, w, true);
        worker_handed(b, w);
    }
}

/* ---- the loop --------------------------------------------------------- */

/* CURVE: one ROUTER serves frontends and workers, so the ZAP handler
 * admits both and each frame is held to the role its key was admitted
 * with (User-Id): a worker key cannot submit jobs, a frontend key cannot
 * take them. Refusals are logged at most once a second, with a count. */
static bool
peer_role_ok(struct broker *b, zmq_msg_t *fmsg, const Sluice__Frame *frame,
             unsigned long long now)
{
    const char *user_id;
    unsigned have = sl_zap_msg_roles(fmsg, &user_id);
    bool from_frontend = frame->kind_case == SLUICE__FRAME__KIND_JOB ||
                         (frame->kind_case == SLUICE__FRAME__KIND_HEARTBEAT &&
                          frame->heartbeat->client);
    unsigned need = from_frontend ? SL_ROLE_FRONTEND : SL_ROLE_WORKER;

    if (have & need)
        return true;
    b->n_role_refused++;
    if (now >= b->next_role_warn_ms) {
        sl_warn("broker: dropped a %s frame from key %s: a %s frame needs a %s key "
                "(%llu dropped so far)",
                sl_wire_kind_name(frame), user_id[0] ? user_id : "(none)",
                from_frontend ? "frontend" : "worker", from_frontend ? "frontend" : "worker",
                b->n_role_refused);
        b->next_role_warn_ms = now + 1000;
    }
    return false;
}

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
    if (b->zap != NULL && !peer_role_ok(b, &fmsg, frame, now))
        goto out;
    if (frame->kind_case == SLUICE__FRAME__KIND_JOB) {
        on_job(b, &ident, &frame, now);
        goto out;
    }
    if (sl_zsock_drain_more(b->router) > 0) {
        sl_warn("broker: dropped a %s frame with extra parts", sl_wire_kind_name(frame));
        b->n_bad_frames++;
        goto out;
    }
    if (frame->kind_case == SLUICE__FRAME__KIND_HEARTBEAT && frame->heartbeat->client) {
        client_seen(b, &ident, now);
        goto out;
    }
    w = worker_find(b, &ident);
    if (w != NULL)      /* any traffic proves the worker alive */
        worker_heard(w, now);
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
            worker_remove(b, w, "disconnected", WLOSS_GOODBYE);
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

/* The loop's turns are normally at most BROKER_STATS_MS apart. Turns
 * further apart than SL_WIRE_STALL_MS mean this process was stalled
 * (SIGSTOP, a VM migration, swapping): what its peers sent meanwhile may
 * not even be read yet, so every worker and frontend gets a fresh
 * liveness period before its silence is judged, and no worker lost during
 * that period counts against its jobs (worker_loss_counts). */
static void
check_own_stall(struct broker *b, unsigned long long now)
{
    unsigned long long grace = SL_WIRE_LIVENESS_MS;
    unsigned long long gap = sl_wire_stalled(&b->now_ms, now);

    if (gap == 0)
        return;
    sl_warn("broker: this process was stalled for %llu ms (paused?); workers and frontends get "
            "%llu ms before their silence is judged",
            gap, grace);
    b->grace_until_ms = now + grace;
    for (struct bworker *w = b->whead; w != NULL; w = w->next)
        if (w->expiry_ms < now + grace)
            w->expiry_ms = now + grace;
    for (struct bclient *c = b->clients; c != NULL; c = c->next)
        if (c->expiry_ms < now + grace)
            c->expiry_ms = now + grace;
}

/* The walk of every worker, on a tick when one is due (b->walk_due_ms):
 * the silent ones are removed, and the heartbeats due go out, each worker
 * at its own time from its registration: every 3 s while it holds no job
 * and every second while it holds one (a send to a worker whose process
 * died finds its connection gone, and its jobs go back to the queue at
 * once). Renewals only move a worker's times later, so walk_due_ms, the
 * soonest of them at the last walk, may come early but never late. */
static void
workers_walk(struct broker *b, unsigned long long now)
{
    struct bworker *w, *next;
    unsigned long long soonest = ULLONG_MAX;

    if (now < b->walk_due_ms)
        return;
    for (w = b->whead; w != NULL; w = next) {
        next = w->next;
        if (w->expiry_ms <= now) {
            worker_remove(b, w, "silent for 3 heartbeats", WLOSS_SILENT);
            continue;
        }
        if (w->hb_due_ms <= now) {
            w->hb_due_ms = now + (w->inflight.n > 0 ? SL_WIRE_HEARTBEAT_MS : w->idle_hb_ms);
            if (send_heartbeat(b, w->ident, w->ident_len) < 0 && errno == EHOSTUNREACH) {
                worker_remove(b, w, "connection gone", WLOSS_CLOSED);
                continue;
            }
            /* EAGAIN: not reading (busy or hung); its own silence decides */
        }
        if (w->hb_due_ms < soonest)
            soonest = w->hb_due_ms;
        if (w->expiry_ms < soonest)
            soonest = w->expiry_ms;
    }
    b->walk_due_ms = soonest;
}

/* A tick's heartbeats go out in one burst, and their answers come back in
 * one: a job that arrives meanwhile waits behind both. With a thousand
 * busy workers a 100 ms tick's burst was a hundred heartbeats, and it put
 * the 99th percentile of hand-outs at 3-5 ms (docs/capacity.md). While
 * nothing is held nobody waits, and the longer tick costs less idle. */
static unsigned long long
hb_tick_ms(const struct broker *b)
{
    return sl_idmap_count(b->jobs) > 0 ? BROKER_HB_TICK_BUSY_MS : BROKER_HB_TICK_MS;
}

static void
heartbeat_and_expire(struct broker *b, unsigned long long now)
{
    /* Each worker at its own time (from its registration), not all at
     * once: a thousand heartbeats in one go held up the jobs behind them
     * for milliseconds. But on a tick (hb_tick_ms), those due together: the
     * workers answer at once (docs/protocol-wire.md 5.1), so their
     * answers arrive together too, and the ZeroMQ I/O thread and this one
     * wake up a few times a tick instead of three times a heartbeat. Not
     * at every wake-up: with a thousand workers the walk would cost more
     * than the message that woke us. */
    if (now >= b->next_hb_tick_ms) {
        b->next_hb_tick_ms = now + hb_tick_ms(b);
        workers_walk(b, now);
    }
    if (now < b->next_heartbeat_ms)
        return;
    b->next_heartbeat_ms = now + SL_WIRE_HEARTBEAT_MS;
    clients_heartbeat(b, now);
    if (now >= b->next_purge_ms) {
        b->next_purge_ms = now + SL_WIRE_HEARTBEAT_MS;
        purge_expired(b);
    }
}

static void
stats_update(struct broker *b, unsigned long long now)
{
    struct broker_stats st;
    unsigned long long oldest = 0;

    memset(&st, 0, sizeof(st));
    memcpy(st.instance, b->instance, sizeof(st.instance));
    st.depth = b->depth;
    for (struct borigin *o = b->origins; o != NULL; o = o->next) {
        /* a queue's head is its oldest job (requeued jobs go first) */
        if (o->queue.head != NULL && (oldest == 0 || o->queue.head->queued_ms < oldest))
            oldest = o->queue.head->queued_ms;
        st.inflight += o->inflight;
    }
    st.oldest_age_ms = oldest != 0 && now > oldest ? now - oldest : 0;
    st.n_workers = (unsigned)b->n_workers;
    for (struct bworker *w = b->whead; w != NULL; w = w->next)
        st.slots_free += w->slots;
    st.n_clients = b->n_clients;
    st.n_origins = b->n_origins;
    st.n_jobs = b->n_jobs;
    st.n_verdicts = b->n_verdicts;
    st.n_requeued = b->n_requeued;
    st.n_expired = b->n_expired;
    st.n_failed = b->n_failed;
    st.n_bad_frames = b->n_bad_frames;
    st.n_duplicates = b->n_duplicates;
    st.updated_ms = now;
    pthread_mutex_lock(&b->stats_lock);
    b->stats = st;
    pthread_mutex_unlock(&b->stats_lock);
}

#define WAIT_STOP 1
#define WAIT_ROUTER 2

/* Waits up to timeout ms for the router's input or broker_stop(). Not
 * zmq_poll(): for two sockets it asks each one's ZMQ_EVENTS twice a call
 * and polls once without waiting first, six system calls a wait; a stop
 * signal on an eventfd costs none of those, and the router's ZMQ_EVENTS,
 * asked before sleeping on its edge-triggered ZMQ_FD and after waking,
 * makes three. */
static int
broker_wait(struct broker *b, int router_fd, long timeout)
{
    struct pollfd p[2] = {
        { .fd = b->stop_fd, .events = POLLIN },
        { .fd = router_fd, .events = POLLIN },
    };

    if (sl_zsock_readable(b->router))
        timeout = 0;    /* still look at the stop signal */
    if (poll(p, 2, (int)timeout) < 0)
        return errno == EINTR ? 0 : -1;
    if (p[0].revents != 0)
        return WAIT_STOP;
    return sl_zsock_readable(b->router) ? WAIT_ROUTER : 0;
}

static void *
broker_thread(void *arg)
{
    struct broker *b = arg;
    int router_fd = sl_zsock_fd(b->router);

    b->next_heartbeat_ms = sl_now_mono_ms() + SL_WIRE_HEARTBEAT_MS;
    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        unsigned long long due = b->next_heartbeat_ms;
        if (b->whead != NULL && b->walk_due_ms < due)
            due = b->walk_due_ms > b->next_hb_tick_ms ? b->walk_due_ms : b->next_hb_tick_ms;
        long timeout = due > now ? (long)(due - now) : 0;

        if (timeout > BROKER_STATS_MS)
            timeout = BROKER_STATS_MS;
        int ready = broker_wait(b, router_fd, timeout);
        if (ready < 0) {
            sl_error("broker: poll: %s", strerror(errno));
            break;
        }
        if (ready & WAIT_STOP)
            break;
        now = sl_now_mono_ms();
        check_own_stall(b, now);
        /* a job goes out as soon as it is in, not after the batch: its
         * wait for a hand-out is its own, not that of the messages behind it */
        if (ready & WAIT_ROUTER)
            for (int i = 0; i < BROKER_RECV_BATCH && recv_one(b, now); i++)
                if (b->depth > 0 && b->fhead != NULL)
                    dispatch(b);
        heartbeat_and_expire(b, now);
        dispatch(b);
        if (now >= b->next_stats_ms) {
            b->next_stats_ms = now + BROKER_STATS_MS;
            stats_update(b, now);
        }
    }
    return NULL;
}

/* ---- API -------------------------------------------------------------- */

struct broker *
broker_start(void *zctx, const struct sl_config *config, const char *endpoint, char **error_r)
{
    struct broker *b = sl_calloc(1, sizeof(*b));
    int ret;

    SL_BUG_ON(zctx == NULL || config == NULL || endpoint == NULL);
    b->zctx = zctx;
    b->endpoint = sl_strdup(endpoint);
    sl_id_new(b->instance);
    b->jobs = sl_idmap_new();
    b->by_ident = sl_bytemap_new();
    pthread_mutex_init(&b->stats_lock, NULL);
    memcpy(b->stats.instance, b->instance, sizeof(b->instance));
    b->router = zmq_socket(zctx, ZMQ_ROUTER);
    SL_BUG_ON(b->router == NULL);
    sl_zsock_set_common(b->router, config->frontend.max_message_size);
    sl_zsock_set_hub(b->router);
    sl_zsock_set_int(b->router, ZMQ_ROUTER_MANDATORY, 1);
    const char *zerror;
    int curve = sl_zsock_set_curve(b->router, config, endpoint, true, &zerror);
    if (curve < 0) {
        *error_r = sl_asprintf("broker: CURVE on %s: %s", endpoint, zerror);
        zmq_close(b->router);
        goto fail;
    }
    if (curve == 1) {
        /* the handler answers before the first handshake can start */
        b->zap = sl_zap_start(zctx, config->security.allow_dir,
                              SL_ROLE_FRONTEND | SL_ROLE_WORKER, error_r);
        if (b->zap == NULL) {
            zmq_close(b->router);
            goto fail;
        }
    }
    if (zmq_bind(b->router, endpoint) != 0) {
        *error_r = sl_asprintf("broker: cannot bind %s: %s", endpoint, zmq_strerror(errno));
        zmq_close(b->router);
        sl_zap_stop(&b->zap);
        goto fail;
    }
    b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->stop_fd < 0) {
        *error_r = sl_asprintf("broker: eventfd: %s", strerror(errno));
        zmq_close(b->router);
        sl_zap_stop(&b->zap);
        goto fail;
    }
    ret = pthread_create(&b->thread, NULL, broker_thread, b);
    if (ret != 0) {
        *error_r = sl_asprintf("broker: pthread_create: %s", strerror(ret));
        close(b->stop_fd);
        zmq_close(b->router);
        sl_zap_stop(&b->zap);
        goto fail;
    }
    sl_info("broker: listening on %s (%s), instance %s", endpoint,
            b->zap != NULL ? "CURVE" : sl_keys_endpoint_remote(endpoint) ? "PLAIN" : "inproc",
            b->instance);
    return b;
fail:
    pthread_mutex_destroy(&b->stats_lock);
    sl_idmap_destroy(&b->jobs);
    sl_bytemap_destroy(&b->by_ident);
    free(b->endpoint);
    free(b);
    return NULL;
}

int
broker_reload(struct broker *b, char **error_r)
{
    if (b->zap == NULL)
        return 0;
    return sl_zap_reload(b->zap, error_r);
}

void
broker_stats(struct broker *b, struct broker_stats *stats_r)
{
    pthread_mutex_lock(&b->stats_lock);
    *stats_r = b->stats;
    pthread_mutex_unlock(&b->stats_lock);
}

void
broker_stop(struct broker **brokerp)
{
    struct broker *b = *brokerp;
    struct bjob *j;

    if (b == NULL)
        return;
    *brokerp = NULL;
    uint64_t one = 1;
    if (write(b->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        sl_bug(__FILE__, __LINE__, "broker stop eventfd");
    pthread_join(b->thread, NULL);

    /* Jobs still held are resubmitted by their frontends to another broker,
     * or end as the frontends' deadline (a 4xx, Postfix retries). */
    while (b->origins != NULL) {
        struct borigin *o = b->origins;
        while ((j = o->queue.head) != NULL) {
            queue_unlink(b, j);
            bjob_destroy(b, &j);
        }
        b->origins = o->next;
        free(o->name);
        free(o);
    }
    while (b->whead != NULL) {
        struct bworker *w = b->whead;
        while ((j = w->inflight.head) != NULL) {
            jlist_unlink(&w->inflight, j);
            bjob_destroy(b, &j);
        }
        workers_unlink(b, w);
        free(w->name);
        free(w);
    }
    while (b->clients != NULL) {
        struct bclient *c = b->clients;
        b->clients = c->next;
        free(c);
    }
    sl_info("broker: stopped on %s: %llu jobs, %llu verdicts, %llu requeued, %llu expired, "
            "%llu failed, %llu resubmitted duplicates, %llu bad frames, %llu wrong-role frames",
            b->endpoint, b->n_jobs, b->n_verdicts, b->n_requeued, b->n_expired, b->n_failed,
            b->n_duplicates, b->n_bad_frames, b->n_role_refused);
    close(b->stop_fd);
    zmq_close(b->router);
    sl_zap_stop(&b->zap);
    pthread_mutex_destroy(&b->stats_lock);
    sl_idmap_destroy(&b->jobs);
    sl_bytemap_destroy(&b->by_ident);
    free(b->endpoint);
    free(b);
}
