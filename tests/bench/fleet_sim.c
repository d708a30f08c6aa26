/* fleet_sim.c - a fleet of simulated workers and frontends against real
 * brokers (tests/bench/fleet_bench.sh, docs/capacity.md).
 *
 * usage: fleet_sim [OPTIONS] ENDPOINT[,ENDPOINT...]
 *
 * Speaks the real wire protocol (lib/net/sl_wire.h) to one or more running
 * `sluice broker` processes, as many nodes would:
 *   - WORKERS simulated workers, spread over WORKER_PROCS processes, each a
 *     DEALER per broker with the options real workers set
 *     (sl_zsock_set_common, sl_zsock_set_hub): Ready{slots}, an answer to
 *     each of the broker's heartbeats (one of its own only when those stop
 *     coming, as workers/worker.c), and a
 *     Verdict (the shape a real worker sends: Received:, X-Virus-Scanned:,
 *     one recipient) DELAY_MS after each job arrived;
 *   - FRONTENDS simulated frontends in this process, each a DEALER per
 *     broker, sending Job frames with a BODY-byte body and client
 *     heartbeats, jobs spread round-robin over frontends and brokers.
 * Every socket of a process is polled with one zmq_poll.
 *
 * Phases, in order:
 *   1. queue (--queue Q): Q jobs submitted before any worker exists; they
 *      wait in the brokers. The brokers' resident memory (VmRSS, /proc)
 *      before and after, once their CPU time stands still, gives the
 *      memory per waiting job.
 *   2. the workers connect; each is registered once its broker heartbeats
 *      it. The queued jobs are handed out and answered.
 *   3. idle (--idle S): S seconds with every worker connected and no job:
 *      the brokers' CPU is the cost of the heartbeats alone.
 *   4. load: INFLIGHT jobs kept in flight (a verdict makes room for the
 *      next job) until JOBS have been answered; with --rate R, at most R
 *      jobs a second go out, spread over the second (without it, every
 *      job out at once and one delay for all answers them at once: the
 *      load comes in waves of INFLIGHT jobs, and a job's wait is that of
 *      its wave). Dispatch latency is the
 *      time from the frontend's send to the worker's receipt (the send
 *      time rides in the body's first 8 bytes; CLOCK_MONOTONIC is one
 *      clock for every process of the machine), so it includes both
 *      loopback hops and the simulator's own wake-ups. The brokers' CPU
 *      per job and their memory come from /proc (--broker-pid).
 * Prints key=value lines; exits 1 when a job of the load phase got no
 * verdict or a frame was refused (a correctness check, not a speed one).
 *
 * Options (defaults in brackets):
 *   --workers N [1000]  --slots S per worker [10]  --worker-procs P [2]
 *   --delay-ms D [500]  --frontends F [4]  --inflight K [10000]
 *   --jobs J [100000]  --size B [4096]  --origins O [4]  --queue Q [0]
 *   --idle S [0]  --rate R jobs/s [0: no limit]  --broker-pid PID[,PID]
 *   --timeout SECONDS [300]  --zmtp-ivl MS: the simulated workers' ZMTP
 *   PING interval, 0 none, 1000 or 10000 as workers of earlier versions
 *   [as sl_zsock_set_hub sets it: none]  --worker-hb answer|timer: the simulated
 *   workers ask to be heartbeated every 3 s while idle, answer the
 *   broker's heartbeats and send their own only when those stop, as
 *   workers/worker.c [answer], or ask nothing, send one every second and
 *   answer none, as workers did before
 *
 * The machine's limits: every simulated socket is a TCP connection and an
 * eventfd, so the process raises its descriptor limit to the hard limit
 * and its ZeroMQ context's ZMQ_MAX_SOCKETS to what it needs. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "util/sl_idmap.h"
#include "util/sl_util.h"

#define HIST_US 100000             /* 1-us buckets up to 100 ms, then one overflow bucket */
#define MAX_BROKERS 8
#define MAX_PROCS 64

struct opts {
    unsigned workers, slots, procs, delay_ms, frontends, inflight, size, origins;
    unsigned long jobs, queue, rate;
    unsigned idle_s, timeout_s;
    int zmtp_ivl_ms;
    bool hb_timer; /* --worker-hb timer: workers as before they answered heartbeats */
    char *endpoints[MAX_BROKERS];
    unsigned n_brokers;
    int broker_pids[MAX_BROKERS];
    unsigned n_pids;
};

static struct opts O = {
    .workers = 1000, .slots = 10, .procs = 2, .delay_ms = 500, .frontends = 4,
    .inflight = 10000, .size = 4096, .origins = 4, .jobs = 100000, .timeout_s = 300,
    .zmtp_ivl_ms = -1,
};

struct hist {
    uint64_t n, sum_us;
    uint32_t b[HIST_US + 1];
};

static unsigned long long
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static unsigned long long
wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (unsigned long long)tv.tv_sec * 1000ULL + (unsigned long long)tv.tv_usec / 1000;
}

/* "fleet_sim: WHAT DETAIL" and exit 2. */
static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "fleet_sim: %s%s\n", what, detail);
    exit(2);
}

static void
hist_add(struct hist *h, unsigned long long ns)
{
    unsigned long long us = ns / 1000;
    h->b[us < HIST_US ? us : HIST_US]++;
    h->n++;
    h->sum_us += us;
}

static void
hist_merge(struct hist *into, const struct hist *h)
{
    into->n += h->n;
    into->sum_us += h->sum_us;
    for (size_t i = 0; i <= HIST_US; i++)
        into->b[i] += h->b[i];
}

/* The q-quantile in microseconds; HIST_US means "at least 100 ms". */
static unsigned long
hist_q(const struct hist *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;

    for (size_t i = 0; i <= HIST_US; i++) {
        seen += h->b[i];
        if (seen > want)
            return (unsigned long)i;
    }
    return HIST_US;
}

/* ---- /proc --------------------------------------------------------------- */

/* utime + stime of the brokers, in clock ticks. */
static unsigned long long
brokers_ticks(void)
{
    unsigned long long sum = 0;

    for (unsigned i = 0; i < O.n_pids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", O.broker_pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        /* after "(comm) ": state is field 3; utime and stime are 14 and 15 */
        if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &ut, &st) == 2)
            sum += ut + st;
    }
    return sum;
}

static unsigned long
brokers_rss_kb(void)
{
    unsigned long sum = 0;

    for (unsigned i = 0; i < O.n_pids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", O.broker_pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long kb;
            if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
                sum += kb;
        }
        fclose(f);
    }
    return sum;
}

static double
ticks_to_us(unsigned long long ticks)
{
    return (double)ticks * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- sockets ------------------------------------------------------------ */

static void *
ctx_for(unsigned n_sockets)
{
    struct rlimit rl;
    void *ctx = sl_zsock_ctx_new(); /* as a real node's */

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (ctx == NULL || zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, (int)n_sockets + 64) != 0)
        die("zmq context: ", zmq_strerror(errno));
    return ctx;
}

/* A frontend's socket, or a worker's (sl_zsock_set_hub, as workers/worker.c:
 * no ZMTP PINGs). zmtp_ivl_ms: ZMQ_HEARTBEAT_IVL if not negative (what
 * PINGs would cost the broker; workers of earlier versions sent them
 * every 1000, then every 10000 ms), timeout three of them. */
static void *
dealer(void *ctx, const char *endpoint, size_t max_body, bool worker, int zmtp_ivl_ms)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);

    if (s == NULL)
        die("zmq_socket: ", zmq_strerror(errno));
    sl_zsock_set_common(s, max_body);
    if (worker)
        sl_zsock_set_hub(s);
    sl_zsock_set_int(s, ZMQ_LINGER, 0);
    if (zmtp_ivl_ms >= 0) {
        sl_zsock_set_int(s, ZMQ_HEARTBEAT_IVL, zmtp_ivl_ms);
        sl_zsock_set_int(s, ZMQ_HEARTBEAT_TIMEOUT, 3 * zmtp_ivl_ms);
    }
    if (zmq_connect(s, endpoint) != 0)
        die("zmq_connect: ", zmq_strerror(errno));
    return s;
}

static int
send_frame(void *sock, Sluice__Frame *frame, int flags)
{
    const char *error;

    if (sl_zsock_send_frame(sock, frame, flags | ZMQ_DONTWAIT, &error) == 0)
        return 0;
    if (errno != EAGAIN)
        die("send: ", error);
    return -1;
}

static void
send_heartbeat(void *sock, bool client)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;

    hb.client = client;
    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    (void)send_frame(sock, &frame, 0);
}

/* One message: its Frame, and the body when one follows. -1: nothing. */
static int
recv_msg(void *sock, Sluice__Frame **frame_r, zmq_msg_t *body)
{
    zmq_msg_t fmsg;
    const char *error;
    int ret = 0;

    zmq_msg_init(&fmsg);
    if (zmq_msg_recv(&fmsg, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&fmsg);
        return -1;
    }
    if (sl_zsock_more(sock) && zmq_msg_recv(body, sock, ZMQ_DONTWAIT) < 0)
        ret = -2;
    sl_zsock_drain_more(sock);
    if (ret == 0 && sl_wire_unpack_msg(&fmsg, frame_r, &error) < 0) {
        fprintf(stderr, "fleet_sim: a frame from a broker was refused: %s\n", error);
        ret = -2;
    }
    zmq_msg_close(&fmsg);
    return ret;
}

/* ---- simulated workers -------------------------------------------------- */

struct wsock {
    void *sock;
    char id[SL_WIRE_MAX_WORKER_ID];
    unsigned long long next_hb_ns; /* --worker-hb timer */
    unsigned long long sent_ns;    /* our latest message to the broker */
    bool registered;
};

struct due {
    unsigned sock;
    char job_id[SL_ID_LEN + 1];
    unsigned long long due_ns;
};

struct worker_report {
    unsigned long long jobs, verdicts, reready, bad;
    double cpu_s;
    struct hist dispatch; /* jobs of the load phase only */
};

static void
worker_ready(struct wsock *w, unsigned slots)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ready ready = SLUICE__READY__INIT;

    ready.worker_id = w->id;
    ready.slots = slots;
    ready.idle_heartbeat_ms = O.hb_timer ? 0 : SL_WIRE_WORKER_HEARTBEAT_MS;
    frame.kind_case = SLUICE__FRAME__KIND_READY;
    frame.ready = &ready;
    (void)send_frame(w->sock, &frame, 0);
    w->sent_ns = mono_ns();
}

/* What a real worker answers for a clean message with one recipient. */
static int
worker_verdict(struct wsock *w, const char *job_id)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__HeaderEdit received = SLUICE__HEADER_EDIT__INIT, scanned = SLUICE__HEADER_EDIT__INIT;
    Sluice__HeaderEdit *edits[2] = {&received, &scanned};
    Sluice__RecipientVerdict rv = SLUICE__RECIPIENT_VERDICT__INIT;
    Sluice__RecipientVerdict *rvp[1] = {&rv};
    Sluice__ScanFacts facts = SLUICE__SCAN_FACTS__INIT;
    char rcvd[256];

    snprintf(rcvd, sizeof(rcvd),
             "from bench.test ([127.0.0.1]) by fleet.test (sluice fleet_sim, port 10024) with "
             "LMTP id %s for <rcpt@bench.test>; Thu, 1 Jan 2026 00:00:00 +0000",
             job_id);
    received.op = SLUICE__HEADER_EDIT__OP__PREPEND;
    received.name = "Received";
    received.value = rcvd;
    scanned.op = SLUICE__HEADER_EDIT__OP__APPEND;
    scanned.name = "X-Virus-Scanned";
    scanned.value = "sluice at fleet.test";
    rv.category = "CLEAN";
    v.job_id = (char *)job_id;
    v.ok = 1;
    v.category = "CLEAN";
    v.edits = edits;
    v.n_edits = 2;
    v.message_id = "<fleet@bench.test>";
    v.worker = w->id;
    v.mime_parts = 1;
    v.rcpts = rvp;
    v.n_rcpts = 1;
    v.facts = &facts;
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    if (send_frame(w->sock, &frame, 0) < 0)
        return -1;
    w->sent_ns = mono_ns();
    return 0;
}

/* A worker process's sockets and what it owes. One zmq_poll over hundreds
 * of sockets costs more than the messages it finds, so the process waits
 * in epoll on each socket's ZMQ_FD and drains only the sockets it names.
 * ZMQ_FD is edge-like (docs/design.md, "The ZMQ_FD edge-triggered trap"):
 * any operation on a socket may consume the signal of a message already
 * waiting, so after every send the socket's ZMQ_EVENTS is looked at and a
 * readable socket goes on the pending list too. */
struct wproc {
    struct wsock *ws;
    unsigned n_socks, per_sock;
    unsigned *pending; /* socket indexes to drain */
    bool *is_pending;
    unsigned n_pending;
    struct due *dues; /* a ring, due times in order (one delay for all) */
    size_t cap, head, count;
    unsigned n_registered;
    struct worker_report *rep;
};

static void
wproc_mark(struct wproc *wp, unsigned i)
{
    if (!wp->is_pending[i]) {
        wp->is_pending[i] = true;
        wp->pending[wp->n_pending++] = i;
    }
}

static void
wproc_after_send(struct wproc *wp, unsigned i)
{
    if (sl_zsock_readable(wp->ws[i].sock))
        wproc_mark(wp, i);
}

static void
wproc_push_due(struct wproc *wp, unsigned sock, const char *job_id, unsigned long long due_ns)
{
    if (wp->count == wp->cap) { /* a broker handed out past our slots: grow */
        struct due *bigger = sl_calloc(wp->cap * 2, sizeof(*bigger));
        for (size_t k = 0; k < wp->count; k++)
            bigger[k] = wp->dues[(wp->head + k) % wp->cap];
        free(wp->dues);
        wp->dues = bigger;
        wp->head = 0;
        wp->cap *= 2;
    }
    struct due *e = &wp->dues[(wp->head + wp->count++) % wp->cap];
    e->sock = sock;
    snprintf(e->job_id, sizeof(e->job_id), "%s", job_id);
    e->due_ns = due_ns;
}

static void
wproc_drain(struct wproc *wp, unsigned i, unsigned long long delay_ns)
{
    struct wsock *w = &wp->ws[i];

    for (;;) {
        Sluice__Frame *frame = NULL;
        zmq_msg_t body;
        zmq_msg_init(&body);
        int r = recv_msg(w->sock, &frame, &body);
        if (r == -1) {
            zmq_msg_close(&body);
            break;
        }
        unsigned long long t = mono_ns();
        if (r < 0) {
            wp->rep->bad++;
        } else if (frame->kind_case == SLUICE__FRAME__KIND_JOB) {
            const unsigned char *d = zmq_msg_data(&body);
            unsigned long long sent = 0;
            if (zmq_msg_size(&body) >= 9) {
                memcpy(&sent, d, sizeof(sent));
                if (d[8] == 1 && t > sent)
                    hist_add(&wp->rep->dispatch, t - sent);
            }
            wp->rep->jobs++;
            wproc_push_due(wp, i, frame->job->job_id, t + delay_ns);
        } else if (frame->kind_case == SLUICE__FRAME__KIND_HEARTBEAT) {
            if (!w->registered) {
                w->registered = true;
                wp->n_registered++;
            }
            /* as workers/worker.c: answered at once unless we sent
             * something just now */
            if (!O.hb_timer && t >= w->sent_ns + SL_WIRE_HEARTBEAT_ANSWERED_MS * 1000000ULL) {
                send_heartbeat(w->sock, false);
                w->sent_ns = t;
            }
        } else if (frame->kind_case == SLUICE__FRAME__KIND_DISCONNECT) {
            /* the broker forgot us (we were silent): register again */
            wp->rep->reready++;
            worker_ready(w, wp->per_sock);
        }
        sl_wire_frame_free(&frame);
        zmq_msg_close(&body);
    }
}

/* Workers [first, first + n): a DEALER to each broker, watched by ep,
 * and their Ready. */
static void
wproc_connect(struct wproc *wp, void *ctx, int ep, unsigned first, unsigned n,
              unsigned long long now)
{
    for (unsigned w = 0; w < n; w++)
        for (unsigned b = 0; b < O.n_brokers; b++) {
            unsigned i = w * O.n_brokers + b;
            struct wsock *ws = &wp->ws[i];
            snprintf(ws->id, sizeof(ws->id), "fleet:%d:w%u", (int)getpid(), first + w);
            ws->sock = dealer(ctx, O.endpoints[b], O.size, true, O.zmtp_ivl_ms);
            struct epoll_event sev = {.events = EPOLLIN, .data.u32 = i};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, sl_zsock_fd(ws->sock), &sev) != 0)
                die("epoll_ctl: ", strerror(errno));
            worker_ready(ws, wp->per_sock);
            wproc_mark(wp, i);
            /* heartbeats spread over the second */
            ws->next_hb_ns = now + 1000000000ULL * (w % 1000) / 1000;
        }
}

/* Verdicts that are due, then heartbeats that are due. */
static void
wproc_tick(struct wproc *wp, bool connected)
{
    unsigned long long now = mono_ns();

    while (wp->count > 0 && wp->dues[wp->head].due_ns <= now) {
        struct due *e = &wp->dues[wp->head];
        if (worker_verdict(&wp->ws[e->sock], e->job_id) < 0)
            break; /* EAGAIN: later */
        wproc_after_send(wp, e->sock);
        wp->rep->verdicts++;
        wp->head = (wp->head + 1) % wp->cap;
        wp->count--;
    }
    if (!connected)
        return;
    for (unsigned i = 0; i < wp->n_socks; i++) {
        struct wsock *w = &wp->ws[i];
        if (O.hb_timer ? w->next_hb_ns <= now
                       : now >= w->sent_ns + SL_WIRE_HEARTBEAT_IDLE_MS * 1000000ULL) {
            /* timer: every second, as workers did; else only when the
             * broker's heartbeats stopped coming (workers/worker.c) */
            send_heartbeat(w->sock, false);
            wproc_after_send(wp, i);
            w->next_hb_ns += 1000000000ULL;
            w->sent_ns = now;
        }
    }
}

/* A worker process: workers [first, first + n) of the fleet. Commands on
 * cmd_fd: 'g' connect, 'q' finish and report on rep_fd; reports 'r' once
 * every socket is registered. */
static void
worker_proc(unsigned first, unsigned n, int cmd_fd, int rep_fd)
{
    struct wproc wpv = {0}, *wp = &wpv;
    bool connected = false, told = false;
    unsigned long long delay_ns = (unsigned long long)O.delay_ms * 1000000ULL;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX}, evs[256];

    wp->per_sock = (O.slots + O.n_brokers - 1) / O.n_brokers;
    wp->n_socks = n * O.n_brokers;
    wp->ws = sl_calloc(wp->n_socks, sizeof(*wp->ws));
    wp->pending = sl_calloc(wp->n_socks, sizeof(*wp->pending));
    wp->is_pending = sl_calloc(wp->n_socks, sizeof(*wp->is_pending));
    wp->cap = (size_t)wp->n_socks * wp->per_sock + 16;
    wp->dues = sl_calloc(wp->cap, sizeof(*wp->dues));
    wp->rep = sl_calloc(1, sizeof(*wp->rep));
    void *ctx = ctx_for(wp->n_socks);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, cmd_fd, &ev) != 0)
        die("epoll: ", strerror(errno));

    for (;;) {
        unsigned long long now = mono_ns();
        int timeout = 100;
        if (wp->count > 0) {
            unsigned long long d = wp->dues[wp->head].due_ns;
            int ms = d > now ? (int)((d - now + 999999ULL) / 1000000ULL) : 0;
            if (ms < timeout)
                timeout = ms;
        }
        if (wp->n_pending > 0)
            timeout = 0;
        int ne = epoll_wait(ep, evs, (int)SL_N_ELEMENTS(evs), timeout);
        if (ne < 0 && errno != EINTR)
            die("epoll_wait: ", strerror(errno));
        bool quit = false;
        for (int k = 0; k < ne; k++) {
            if (evs[k].data.u32 != UINT32_MAX) {
                wproc_mark(wp, evs[k].data.u32);
                continue;
            }
            char c;
            if (read(cmd_fd, &c, 1) != 1 || c == 'q') {
                quit = true;
                break;
            }
            if (c != 'g' || connected)
                continue;
            wproc_connect(wp, ctx, ep, first, n, now);
            connected = true;
        }
        if (quit)
            break;
        /* drain what is pending; a drained socket is marked again only
         * by epoll or by a send */
        unsigned np = wp->n_pending;
        unsigned *batch = sl_malloc((np ? np : 1) * sizeof(*batch));
        memcpy(batch, wp->pending, np * sizeof(*batch));
        wp->n_pending = 0;
        for (unsigned k = 0; k < np; k++)
            wp->is_pending[batch[k]] = false;
        for (unsigned k = 0; k < np; k++)
            wproc_drain(wp, batch[k], delay_ns);
        free(batch);
        wproc_tick(wp, connected);
        if (connected && !told && wp->n_registered == wp->n_socks) {
            told = true;
            if (write(rep_fd, "r", 1) != 1)
                exit(2);
        }
    }
    for (unsigned i = 0; i < wp->n_socks; i++)
        if (wp->ws[i].sock != NULL) {
            Sluice__Frame frame = SLUICE__FRAME__INIT;
            Sluice__Disconnect d = SLUICE__DISCONNECT__INIT;
            frame.kind_case = SLUICE__FRAME__KIND_DISCONNECT;
            frame.disconnect = &d;
            (void)send_frame(wp->ws[i].sock, &frame, 0);
            zmq_close(wp->ws[i].sock);
        }
    wp->rep->cpu_s = self_cpu_s(RUSAGE_SELF);
    const char *p = (const char *)wp->rep;
    for (size_t left = sizeof(*wp->rep); left > 0;) {
        ssize_t w = write(rep_fd, p, left);
        if (w <= 0)
            exit(2);
        p += w;
        left -= (size_t)w;
    }
    zmq_ctx_term(ctx);
    exit(0);
}

/* ---- simulated frontends ------------------------------------------------ */

struct fjob {
    unsigned long long sent_ns;
    bool timed;
};

struct fleet {
    void *ctx;
    void **socks; /* frontends x brokers */
    unsigned n_socks;
    unsigned long long next_hb_ns;
    unsigned rr;
    unsigned long long seq;
    char prefix[5];
    struct sl_idmap *jobs;
    unsigned long inflight, answered, answered_timed, sent_timed, failed, late;
    bool timed; /* jobs sent now belong to the load phase */
    unsigned long long timed_t0_ns; /* when the load phase began (--rate) */
    struct hist e2e;
    unsigned char *body;
    pid_t kids[MAX_PROCS];
    int cmd[MAX_PROCS], rep[MAX_PROCS];
    unsigned n_kids, n_ready;
};

static void
job_id_next(struct fleet *f, char id[SL_ID_LEN + 1])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned long long v = f->seq++;

    memcpy(id, f->prefix, 4);
    for (int i = SL_ID_LEN - 1; i >= 4; i--) {
        id[i] = b64[v & 63];
        v >>= 6;
    }
    id[SL_ID_LEN] = '\0';
}

/* One job, as frontend/job.c builds it; -1 if ZeroMQ cannot take it now. */
static int
fleet_submit(struct fleet *f)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Xforward xf = SLUICE__XFORWARD__INIT;
    Sluice__Recipient rcpt = SLUICE__RECIPIENT__INIT;
    Sluice__Recipient *rcpts[1] = {&rcpt};
    char id[SL_ID_LEN + 1], origin[16];
    unsigned k = f->rr++ % f->n_socks;
    void *sock = f->socks[k];
    zmq_msg_t body;

    job_id_next(f, id);
    snprintf(origin, sizeof(origin), "o%llu", f->seq % O.origins);
    rcpt.address = "rcpt@bench.test";
    xf.name = "client.example";
    xf.addr = "192.0.2.1";
    xf.port = "40000";
    xf.proto = "ESMTP";
    xf.helo = "client.example";
    xf.ident = "4XyzAbCdEf";
    xf.source = "REMOTE";
    job.job_id = id;
    job.origin = origin;
    job.client_addr = "127.0.0.1";
    job.deadline_ms = wall_ms() + 600000;
    job.mail_from = "sender@bench.test";
    job.rcpts = rcpts;
    job.n_rcpts = 1;
    job.xforward = &xf;
    job.size = O.size;
    job.helo = "mx.bench.test";
    job.proto = "LMTP";
    job.received_ms = wall_ms();
    job.by_host = "fleet.test";
    job.by_port = 10024;
    job.origin_concurrency = 8;
    job.submit = 1;
    frame.kind_case = SLUICE__FRAME__KIND_JOB;
    frame.job = &job;

    unsigned long long now = mono_ns();
    memcpy(f->body, &now, sizeof(now));
    f->body[8] = f->timed ? 1 : 0;
    if (send_frame(sock, &frame, ZMQ_SNDMORE) < 0)
        return -1;
    zmq_msg_init_size(&body, O.size);
    memcpy(zmq_msg_data(&body), f->body, O.size);
    if (zmq_msg_send(&body, sock, ZMQ_DONTWAIT) < 0)
        die("send body: ", zmq_strerror(errno));
    struct fjob *j = sl_calloc(1, sizeof(*j));
    j->sent_ns = now;
    j->timed = f->timed;
    SL_BUG_ON(sl_idmap_insert(f->jobs, id, j) != 0);
    f->inflight++;
    if (f->timed)
        f->sent_timed++;
    return 0;
}

/* Whether the load phase may send one more job now (--rate). */
static bool
fleet_paced(const struct fleet *f, unsigned long long now)
{
    if (!f->timed || O.rate == 0)
        return true;
    return (double)f->sent_timed < (double)O.rate * (double)(now - f->timed_t0_ns) / 1e9;
}

/* Runs the frontends for up to ms milliseconds, or until done(f) holds;
 * keeps `keep` jobs in flight while fewer than `limit` load jobs went out.
 * Returns whether done(f) held. */
static bool
fleet_pump(struct fleet *f, unsigned long long ms, bool (*done)(const struct fleet *),
           unsigned long keep, unsigned long limit)
{
    unsigned long long end = mono_ns() + ms * 1000000ULL;
    zmq_pollitem_t *items = sl_calloc(f->n_socks + f->n_kids, sizeof(*items));

    for (;;) {
        while (f->inflight < keep && (!f->timed || f->sent_timed < limit) &&
               fleet_paced(f, mono_ns()) && fleet_submit(f) == 0)
            ;
        if (done != NULL && done(f)) {
            free(items);
            return true;
        }
        unsigned long long now = mono_ns();
        if (now >= end)
            break;
        if (now >= f->next_hb_ns) {
            for (unsigned i = 0; i < f->n_socks; i++)
                send_heartbeat(f->socks[i], true);
            f->next_hb_ns = now + 1000000000ULL;
        }
        for (unsigned i = 0; i < f->n_socks; i++)
            items[i] = (zmq_pollitem_t){.socket = f->socks[i], .events = ZMQ_POLLIN};
        for (unsigned i = 0; i < f->n_kids; i++)
            items[f->n_socks + i] = (zmq_pollitem_t){.fd = f->rep[i], .events = ZMQ_POLLIN};
        /* paced: back within a millisecond for the next jobs */
        int wait_ms = f->timed && O.rate > 0 ? 1 : 20;
        if (zmq_poll(items, (int)(f->n_socks + f->n_kids), wait_ms) < 0 && errno != EINTR)
            die("zmq_poll: ", zmq_strerror(errno));
        for (unsigned i = 0; i < f->n_kids; i++)
            if (items[f->n_socks + i].revents & ZMQ_POLLIN) {
                char c;
                if (read(f->rep[i], &c, 1) != 1 || c != 'r')
                    die("a worker process failed", "");
                f->n_ready++;
            }
        for (unsigned i = 0; i < f->n_socks; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            for (;;) {
                Sluice__Frame *frame = NULL;
                zmq_msg_t body;
                zmq_msg_init(&body);
                int r = recv_msg(f->socks[i], &frame, &body);
                zmq_msg_close(&body);
                if (r == -1)
                    break;
                if (r < 0) {
                    f->failed++;
                    continue;
                }
                if (frame->kind_case == SLUICE__FRAME__KIND_VERDICT) {
                    struct fjob *j = sl_idmap_remove(f->jobs, frame->verdict->job_id);
                    if (j == NULL) {
                        f->late++;
                    } else {
                        if (!frame->verdict->ok) {
                            fprintf(stderr, "fleet_sim: %s: failure verdict: %s\n",
                                    frame->verdict->job_id, frame->verdict->error);
                            f->failed++;
                        }
                        f->inflight--;
                        f->answered++;
                        if (j->timed) {
                            f->answered_timed++;
                            hist_add(&f->e2e, mono_ns() - j->sent_ns);
                        }
                        free(j);
                    }
                }
                sl_wire_frame_free(&frame);
            }
        }
    }
    free(items);
    return false;
}

static bool
all_ready(const struct fleet *f)
{
    return f->n_ready == f->n_kids;
}

static bool
none_in_flight(const struct fleet *f)
{
    return f->inflight == 0;
}

static bool
load_done(const struct fleet *f)
{
    return f->answered_timed >= O.jobs;
}

/* Waits until the brokers' CPU time stood still for 300 ms: what was sent
 * to them has been taken in. */
static void
brokers_settle(struct fleet *f)
{
    unsigned long long last = brokers_ticks();
    int still = 0;

    for (int i = 0; i < 300 && still < 3; i++) {
        fleet_pump(f, 100, NULL, 0, 0);
        unsigned long long now = brokers_ticks();
        still = now == last ? still + 1 : 0;
        last = now;
    }
}

/* ---- main --------------------------------------------------------------- */

static unsigned long
num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        die("not a number: ", s);
    return v;
}

static void
parse_args(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        const char *k = argv[i] + 2, *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            die("a value is missing after ", argv[i]);
        if (strcmp(k, "workers") == 0)
            O.workers = (unsigned)num(v);
        else if (strcmp(k, "slots") == 0)
            O.slots = (unsigned)num(v);
        else if (strcmp(k, "worker-procs") == 0)
            O.procs = (unsigned)num(v);
        else if (strcmp(k, "delay-ms") == 0)
            O.delay_ms = (unsigned)num(v);
        else if (strcmp(k, "frontends") == 0)
            O.frontends = (unsigned)num(v);
        else if (strcmp(k, "inflight") == 0)
            O.inflight = (unsigned)num(v);
        else if (strcmp(k, "jobs") == 0)
            O.jobs = num(v);
        else if (strcmp(k, "size") == 0)
            O.size = (unsigned)num(v);
        else if (strcmp(k, "origins") == 0)
            O.origins = (unsigned)num(v);
        else if (strcmp(k, "queue") == 0)
            O.queue = num(v);
        else if (strcmp(k, "zmtp-ivl") == 0)
            O.zmtp_ivl_ms = (int)num(v);
        else if (strcmp(k, "worker-hb") == 0 &&
                 (strcmp(v, "timer") == 0 || strcmp(v, "answer") == 0))
            O.hb_timer = strcmp(v, "timer") == 0;
        else if (strcmp(k, "rate") == 0)
            O.rate = num(v);
        else if (strcmp(k, "idle") == 0)
            O.idle_s = (unsigned)num(v);
        else if (strcmp(k, "timeout") == 0)
            O.timeout_s = (unsigned)num(v);
        else if (strcmp(k, "broker-pid") == 0) {
            char *copy = sl_strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && O.n_pids < MAX_BROKERS;
                 t = strtok_r(NULL, ",", &save))
                O.broker_pids[O.n_pids++] = (int)num(t);
            free(copy);
        } else
            die("unknown option --", k);
    }
    if (i != argc - 1)
        die("usage: fleet_sim [OPTIONS] ENDPOINT[,ENDPOINT...]", "");
    char *copy = sl_strdup(argv[i]), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (O.n_brokers == MAX_BROKERS)
            die("at most 8 brokers", "");
        O.endpoints[O.n_brokers++] = sl_strdup(t);
    }
    free(copy);
    if (O.workers == 0 || O.slots == 0 || O.procs == 0 || O.procs > MAX_PROCS ||
        O.frontends == 0 || O.inflight == 0 || O.size < 9 || O.origins == 0 || O.n_brokers == 0)
        die("bad numbers", "");
    if (O.procs > O.workers)
        O.procs = O.workers;
}

/* Phase 1: the brokers' memory before and after O.queue waiting jobs. */
static void
phase_queue(struct fleet *f)
{
    brokers_settle(f);
    unsigned long rss0 = brokers_rss_kb();
    while (f->inflight < O.queue)
        if (fleet_submit(f) < 0)
            fleet_pump(f, 10, NULL, 0, 0);
    brokers_settle(f);
    unsigned long rss1 = brokers_rss_kb();
    printf("queue_jobs=%lu broker_rss_kb_before=%lu broker_rss_kb_after=%lu "
           "rss_per_waiting_job_bytes=%.0f\n",
           f->inflight, rss0, rss1,
           f->inflight ? (double)(rss1 - rss0) * 1024.0 / (double)f->inflight : 0.0);
}

/* Phase 3: the brokers' CPU while only heartbeats flow. */
static void
phase_idle(struct fleet *f)
{
    fleet_pump(f, 1500, NULL, 0, 0);
    unsigned long long c0 = brokers_ticks(), i0 = mono_ns();
    fleet_pump(f, (unsigned long long)O.idle_s * 1000, NULL, 0, 0);
    double secs = (double)(mono_ns() - i0) / 1e9;
    printf("idle_s=%.1f idle_broker_cpu_pct=%.2f broker_rss_kb=%lu\n", secs,
           ticks_to_us(brokers_ticks() - c0) / 1e4 / secs, brokers_rss_kb());
}

/* Stops the worker processes, merges their reports and prints the load
 * phase's figures; the number of bad frames the workers saw. */
static unsigned long long
workers_report(struct fleet *f, double secs)
{
    struct hist *dispatch = sl_calloc(1, sizeof(*dispatch));
    struct worker_report *rep = sl_malloc(sizeof(*rep));
    unsigned long long wjobs = 0, wverdicts = 0, reready = 0, bad = 0;
    double wcpu = 0;
    for (unsigned p = 0; p < f->n_kids; p++) {
        if (write(f->cmd[p], "q", 1) != 1)
            die("pipe: ", strerror(errno));
        char *q = (char *)rep;
        for (size_t left = sizeof(*rep); left > 0;) {
            ssize_t r = read(f->rep[p], q, left);
            if (r <= 0)
                die("a worker process did not report", "");
            q += r;
            left -= (size_t)r;
        }
        hist_merge(dispatch, &rep->dispatch);
        wjobs += rep->jobs;
        wverdicts += rep->verdicts;
        reready += rep->reready;
        bad += rep->bad;
        wcpu += rep->cpu_s;
        waitpid(f->kids[p], NULL, 0);
    }
    printf("jobs=%lu answered=%lu failed=%lu late=%lu still_in_flight=%lu seconds=%.2f "
           "rate=%.0f\n",
           O.jobs, f->answered_timed, f->failed, f->late, f->inflight, secs,
           (double)f->answered_timed / secs);
    printf("dispatch_p50_us=%lu dispatch_p90_us=%lu dispatch_p99_us=%lu dispatch_p999_us=%lu "
           "dispatch_mean_us=%.0f dispatch_n=%llu\n",
           hist_q(dispatch, 0.5), hist_q(dispatch, 0.9), hist_q(dispatch, 0.99),
           hist_q(dispatch, 0.999), dispatch->n ? (double)dispatch->sum_us / dispatch->n : 0.0,
           (unsigned long long)dispatch->n);
    /* the round trip includes the scan delay: past the histogram's range */
    printf("roundtrip_mean_ms=%.1f\n", f->e2e.n ? (double)f->e2e.sum_us / f->e2e.n / 1e3 : 0.0);
    printf("sim_workers_cpu_s=%.2f worker_jobs=%llu worker_verdicts=%llu reregistered=%llu "
           "bad_frames=%llu\n",
           wcpu, wjobs, wverdicts, reready, bad + f->failed);
    free(dispatch);
    free(rep);
    return bad;
}

/* A root for LeakSanitizer: the worker processes fork with it and exit()
 * from their loop. */
static struct fleet *the_fleet;

int
main(int argc, char **argv)
{
    struct fleet *f = the_fleet = sl_calloc(1, sizeof(*f));
    unsigned char rnd[4];

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    f->body = sl_malloc(O.size);
    for (unsigned i = 0; i < O.size; i++)
        f->body[i] = (unsigned char)(i % 78 == 76 ? '\r' : i % 78 == 77 ? '\n' : 'x');
    f->jobs = sl_idmap_new();
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        die("getrandom", "");
    for (int i = 0; i < 4; i++)
        f->prefix[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[rnd[i] & 63];

    /* the worker processes first: forked before this process has threads */
    for (unsigned p = 0; p < O.procs; p++) {
        int cmd[2], rep[2];
        unsigned first = O.workers * p / O.procs, last = O.workers * (p + 1) / O.procs;
        if (pipe(cmd) != 0 || pipe(rep) != 0)
            die("pipe: ", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            die("fork: ", strerror(errno));
        if (pid == 0) {
            close(cmd[1]);
            close(rep[0]);
            worker_proc(first, last - first, cmd[0], rep[1]);
        }
        close(cmd[0]);
        close(rep[1]);
        f->kids[p] = pid;
        f->cmd[p] = cmd[1];
        f->rep[p] = rep[0];
        f->n_kids++;
    }
    f->n_socks = O.frontends * O.n_brokers;
    f->ctx = ctx_for(f->n_socks);
    f->socks = sl_calloc(f->n_socks, sizeof(*f->socks));
    for (unsigned i = 0; i < f->n_socks; i++) {
        f->socks[i] = dealer(f->ctx, O.endpoints[i % O.n_brokers], 0, false, -1);
        sl_zsock_set_int(f->socks[i], ZMQ_SNDHWM, 0); /* in flight is bounded by --inflight */
    }
    printf("workers=%u slots=%u worker_procs=%u brokers=%u frontends=%u inflight=%u size=%u "
           "delay_ms=%u rate=%lu\n",
           O.workers, O.slots, O.procs, O.n_brokers, O.frontends, O.inflight, O.size, O.delay_ms,
           O.rate);
    fleet_pump(f, 500, NULL, 0, 0); /* connections up, first heartbeats */

    /* 1. jobs waiting in the brokers, no worker yet */
    if (O.queue > 0)
        phase_queue(f);

    /* 2. the workers connect and take what waits */
    unsigned long long t0 = mono_ns();
    for (unsigned p = 0; p < f->n_kids; p++)
        if (write(f->cmd[p], "g", 1) != 1)
            die("pipe: ", strerror(errno));
    if (!fleet_pump(f, (unsigned long long)O.timeout_s * 1000, all_ready, 0, 0))
        die("the workers were not all registered in time", "");
    printf("registered_workers=%u register_ms=%.0f\n", O.workers,
           (double)(mono_ns() - t0) / 1e6);
    if (!fleet_pump(f, (unsigned long long)O.timeout_s * 1000, none_in_flight, 0, 0))
        die("the queued jobs were not all answered in time", "");
    if (O.queue > 0)
        printf("queue_drained_ms=%.0f\n", (double)(mono_ns() - t0) / 1e6);

    /* 3. idle: heartbeats only */
    if (O.idle_s > 0)
        phase_idle(f);

    /* 4. load */
    unsigned long long c0 = brokers_ticks();
    double s0 = self_cpu_s(RUSAGE_SELF);
    f->timed = true;
    t0 = f->timed_t0_ns = mono_ns();
    bool ok = fleet_pump(f, (unsigned long long)O.timeout_s * 1000, load_done, O.inflight,
                         O.jobs);
    double secs = (double)(mono_ns() - t0) / 1e9;
    unsigned long long c1 = brokers_ticks();
    double fe_cpu = self_cpu_s(RUSAGE_SELF) - s0;
    unsigned long rss = brokers_rss_kb();
    f->timed = false;
    /* what is still out (jobs past JOBS) comes back before the workers go */
    fleet_pump(f, 30000, none_in_flight, 0, 0);

    unsigned long long bad = workers_report(f, secs);
    if (O.n_pids > 0)
        printf("broker_cpu_us_per_job=%.1f broker_cpu_pct=%.1f broker_rss_kb=%lu\n",
               ticks_to_us(c1 - c0) / (double)(f->answered_timed ? f->answered_timed : 1),
               ticks_to_us(c1 - c0) / 1e4 / secs, rss);
    printf("sim_frontend_cpu_s=%.2f\n", fe_cpu);
    for (unsigned i = 0; i < f->n_socks; i++)
        zmq_close(f->socks[i]);
    zmq_ctx_term(f->ctx);
    int status = ok && f->failed == 0 && bad == 0 && f->inflight == 0 ? 0 : 1;
    free(f->socks);
    sl_idmap_destroy(&f->jobs);
    free(f->body);
    free(f);
    the_fleet = NULL;
    return status;
}
