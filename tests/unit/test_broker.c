/* test_broker.c - frontend link + broker + worker pool in one process over
 * inproc:// (the `sluice all` layout), driven by a real libevent loop.
 *
 *   load:          2000 jobs submitted back to back; every verdict must come
 *                  back exactly once, CLEAN, with the Received: edit and,
 *                  no virus scanner being configured, no X-Virus-Scanned
 *                  (the edge-triggered ZMQ_FD trap
 *                  shows up here as a loop that stops short of 2000);
 *   pool_restart:  a pool stopped mid-run, a new one finishes the work;
 *   hung_worker:   a worker that takes jobs and goes silent; its jobs are
 *                  requeued after 3 missed heartbeats (attempt 2);
 *   poison:        a job whose workers die 3 times gets a failure verdict;
 *   lost_with_everyone: a job held through 3 losses of every worker at once
 *                  (the broker cut off) is requeued each time, not failed;
 *   paused_worker_back: a worker that goes silent holding a job and comes
 *                  back under its name takes its count back: 3 pauses do
 *                  not fail the job;
 *   heartbeats_answered: a worker that only answers the broker's heartbeats
 *                  keeps its job past the liveness period; once silent it
 *                  is removed after 3 s, its job requeued;
 *   deadline:      a queued job past its deadline is dropped, not run;
 *   reconfigure:   a reload swaps the pool's configuration: a job already
 *                  taken finishes with the old one, the next gets the new.
 * Every wait is bounded; a stuck test fails instead of hanging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/event.h>
#include <zmq.h>

#include "broker/broker.h"
#include "conf/sl_config.h"
#include "frontend/broker_link.h"
#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "util/sl_body.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"
#include "workers/worker.h"

#define MAX_JOBS 2000

/* ---- fixture ---------------------------------------------------------- */

struct harness {
    void *zctx;
    struct sl_config config;
    char endpoint[64];
    char *endpoints[1];
    struct broker *broker;
    struct event_base *base;
    struct fe_broker_link *link;
    struct worker_pool *pool;       /* stopped by teardown if a test failed */
    void *fake;                     /* a raw worker socket, ditto */
    void *fakes[4];                 /* more of them, ditto */
    struct fe_broker_link *extra_link;  /* a test's own, ditto */

    /* verdict bookkeeping */
    unsigned n_jobs;                /* submitted */
    unsigned seen[MAX_JOBS];        /* verdicts per job index */
    unsigned n_rcpts[MAX_JOBS];
    unsigned long long received_ms[MAX_JOBS];
    bool ok[MAX_JOBS];
    char error[MAX_JOBS][128];
    char category[MAX_JOBS][32];
    unsigned n_verdicts;
    unsigned n_bad;                 /* verdicts that failed a check */
    char first_bad[512];
    unsigned break_at;              /* loopbreak when n_verdicts reaches it */
    bool check_clean;               /* verdicts must be CLEAN with edits */
    bool abort_run;                 /* a callback failed: run_until() gives up */
    struct sl_body *bodies[MAX_JOBS];
};

static unsigned harness_serial;

static void bad(struct harness *h, const char *fmt, ...) SL_PRINTF(2, 3);

static void
bad(struct harness *h, const char *fmt, ...)
{
    va_list ap;

    if (h->n_bad++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(h->first_bad, sizeof(h->first_bad), fmt, ap);
    va_end(ap);
}

/* job ids are "job" + 9 digits: valid base64url, and the index is in them */
static int
job_index(const char *id)
{
    unsigned idx;
    if (sscanf(id, "job%9u", &idx) != 1 || idx >= MAX_JOBS)
        return -1;
    return (int)idx;
}

/* Checks the RFC 5322 date after "; " against received_ms. */
static bool
date_matches(const char *date, unsigned long long received_ms)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (end == NULL || (*end != '\0' && *end != ' '))
        return false;
    return (long long)timegm(&tm) - tm.tm_gmtoff == (long long)(received_ms / 1000);
}

static void
check_clean_verdict(struct harness *h, int idx, const Sluice__Verdict *v)
{
    char expect[512];
    const char *value;

    if (!v->ok || strcmp(v->category, "CLEAN") != 0) {
        bad(h, "%s: not ok/CLEAN: ok=%d category=%s error=%s", v->job_id, v->ok, v->category,
            v->error);
        return;
    }
    if (v->n_edits != 1) {
        bad(h, "%s: %zu edits", v->job_id, v->n_edits);
        return;
    }
    if (v->edits[0]->op != SLUICE__HEADER_EDIT__OP__PREPEND ||
        strcmp(v->edits[0]->name, "Received") != 0) {
        bad(h, "%s: first edit is not PREPEND Received", v->job_id);
        return;
    }
    if (h->n_rcpts[idx] == 1)
        snprintf(expect, sizeof(expect),
                 "from mx.example.org ([192.0.2.1]) by filter.example.org (sluice %s, port "
                 "10024) with LMTP id %s for <user%d@example.org>; ",
                 SLUICE_VERSION, v->job_id, idx);
    else
        snprintf(expect, sizeof(expect),
                 "from mx.example.org ([192.0.2.1]) by filter.example.org (sluice %s, port "
                 "10024) with LMTP id %s; ",
                 SLUICE_VERSION, v->job_id);
    value = v->edits[0]->value;
    if (strncmp(value, expect, strlen(expect)) != 0) {
        bad(h, "%s: Received is \"%s\", expected prefix \"%s\"", v->job_id, value, expect);
        return;
    }
    if (!date_matches(value + strlen(expect), h->received_ms[idx])) {
        bad(h, "%s: Received date \"%s\" is not received_ms", v->job_id, value + strlen(expect));
        return;
    }
    /* no virus scanner here: no X-Virus-Scanned (workers/worker.c) */
    for (size_t i = 1; i < v->n_edits; i++) {
        if (strcmp(v->edits[i]->name, "X-Virus-Scanned") == 0) {
            bad(h, "%s: X-Virus-Scanned without a virus scanner", v->job_id);
            return;
        }
    }
    snprintf(expect, sizeof(expect), "msg%d@example.org", idx);
    if (strcmp(v->message_id, expect) != 0 || v->mime_parts != 3 || v->worker[0] == '\0') {
        bad(h, "%s: message_id=%s parts=%u worker=%s", v->job_id, v->message_id,
            (unsigned)v->mime_parts, v->worker);
        return;
    }
}

static void
on_verdict(void *ctx, const Sluice__Verdict *v)
{
    struct harness *h = ctx;
    int idx = job_index(v->job_id);

    if (idx < 0 || (unsigned)idx >= h->n_jobs) {
        bad(h, "verdict for unknown job %s", v->job_id);
        return;
    }
    h->seen[idx]++;
    h->ok[idx] = v->ok;
    snprintf(h->error[idx], sizeof(h->error[idx]), "%s", v->error);
    snprintf(h->category[idx], sizeof(h->category[idx]), "%s", v->category);
    if (h->seen[idx] > 1)
        bad(h, "%s: verdict %u times", v->job_id, h->seen[idx]);
    if (h->check_clean)
        check_clean_verdict(h, idx, v);
    h->n_verdicts++;
    if (h->break_at != 0 && h->n_verdicts >= h->break_at)
        event_base_loopbreak(h->base);
}

static int
setup(void **state)
{
    struct harness *h = calloc(1, sizeof(*h));
    char *error = NULL;

    h->zctx = zmq_ctx_new();
    h->config.frontend.max_message_size = 10 * 1024 * 1024;
    /* the harness's own reference: the pools' references never free it */
    atomic_init(&h->config.refs, 1);
    snprintf(h->endpoint, sizeof(h->endpoint), "inproc://test-broker-%u", ++harness_serial);
    h->endpoints[0] = h->endpoint;
    h->broker = broker_start(h->zctx, &h->config, h->endpoint, &error);
    if (h->broker == NULL)
        fail_msg("broker_start: %s", error);
    h->base = event_base_new();
    h->link = fe_broker_link_new(h->base, h->zctx, h->endpoints, 1, NULL, on_verdict, &error);
    if (h->link == NULL)
        fail_msg("fe_broker_link_new: %s", error);
    h->check_clean = true;
    *state = h;
    return 0;
}

static int
teardown(void **state)
{
    struct harness *h = *state;

    worker_pool_stop(&h->pool);
    if (h->fake != NULL)
        zmq_close(h->fake);
    for (size_t i = 0; i < SL_N_ELEMENTS(h->fakes); i++)
        if (h->fakes[i] != NULL)
            zmq_close(h->fakes[i]);
    fe_broker_link_destroy(&h->extra_link);
    fe_broker_link_destroy(&h->link);
    broker_stop(&h->broker);
    event_base_free(h->base);
    zmq_ctx_term(h->zctx);
    /* every reference ZeroMQ took on a body has been dropped again */
    for (unsigned i = 0; i < h->n_jobs; i++) {
        if (h->bodies[i] != NULL)
            assert_int_equal(__atomic_load_n(&h->bodies[i]->refs, __ATOMIC_ACQUIRE), 1);
        sl_body_unref(&h->bodies[i]);
    }
    unsetenv("SLUICE_TEST_WORKER_DELAY_MS");
    free(h);
    return 0;
}

static struct sl_body *
make_body(unsigned i)
{
    char *text = sl_asprintf(
        "From: Alice <alice@example.net>\r\n"
        "To: <user%u@example.org>\r\n"
        "Subject: test %u\r\n"
        "Message-ID: <msg%u@example.org>\r\n"
        "Date: Tue, 21 Nov 2023 10:04:13 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=\"=_b%u\"\r\n"
        "\r\n"
        "--=_b%u\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "Hello %u.\r\n"
        "--=_b%u\r\n"
        "Content-Type: text/html; charset=us-ascii\r\n"
        "\r\n"
        "<p>Hello %u.</p>\r\n"
        "--=_b%u--\r\n",
        i, i, i, i, i, i, i, i, i);
    return sl_body_new(text, strlen(text));
}

/* Submits job i (1 recipient, or 2 for every 10th) on link. 0 or -1 as
 * fe_broker_link_submit(). */
static int
submit_link(struct harness *h, struct fe_broker_link *link, unsigned i,
            unsigned long long deadline_ms)
{
    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Recipient r1 = SLUICE__RECIPIENT__INIT, r2 = SLUICE__RECIPIENT__INIT;
    Sluice__Recipient *rp[2] = { &r1, &r2 };
    char id[16], a1[64];

    assert_true(i < MAX_JOBS);
    snprintf(id, sizeof(id), "job%09u", i);
    snprintf(a1, sizeof(a1), "user%u@example.org", i);
    r1.address = a1;
    r2.address = "other@example.org";
    job.job_id = id;
    job.origin = "default";
    job.client_addr = "192.0.2.1";
    job.deadline_ms = deadline_ms != 0 ? deadline_ms : sl_now_wall_ms() + 120000;
    job.mail_from = "alice@example.net";
    job.n_rcpts = i % 10 == 9 ? 2 : 1;
    job.rcpts = rp;
    job.helo = "mx.example.org";
    job.proto = "LMTP";
    job.received_ms = sl_now_wall_ms() - 1000ULL * (i % 7);
    job.by_host = "filter.example.org";
    job.by_port = 10024;
    h->n_rcpts[i] = (unsigned)job.n_rcpts;
    h->received_ms[i] = job.received_ms;
    if (h->bodies[i] == NULL)
        h->bodies[i] = make_body(i);
    if (i >= h->n_jobs)
        h->n_jobs = i + 1;
    return fe_broker_link_submit(link, &job, h->bodies[i], h) != NULL ? 0 : -1;
}

static int
submit(struct harness *h, unsigned i, unsigned long long deadline_ms)
{
    return submit_link(h, h->link, i, deadline_ms);
}

static int
submit_on(struct harness *h, struct fe_broker_link *link, unsigned i)
{
    return submit_link(h, link, i, 0);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until break_at verdicts or timeout_ms. false on timeout. */
static bool
run_until(struct harness *h, unsigned break_at, unsigned timeout_ms)
{
    bool timed_out = false;
    struct event *timer = evtimer_new(h->base, on_timeout, &timed_out);
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

    if (h->n_verdicts >= break_at) {
        event_free(timer);
        return true;
    }
    h->break_at = break_at;
    evtimer_add(timer, &tv);
    /* the timer callback only sets the flag: stop the loop there too */
    while (!timed_out && !h->abort_run && h->n_verdicts < break_at)
        event_base_loop(h->base, EVLOOP_ONCE);
    event_free(timer);
    h->break_at = 0;
    return !timed_out && !h->abort_run;
}

/* Runs the loop for ms (late or duplicate verdicts would show up). */
static void
run_for(struct harness *h, unsigned ms)
{
    (void)run_until(h, UINT32_MAX, ms);
}

static void
assert_all_once(struct harness *h, unsigned n)
{
    if (h->n_bad > 0)
        fail_msg("%u bad verdict(s), first: %s", h->n_bad, h->first_bad);
    for (unsigned i = 0; i < n; i++)
        if (h->seen[i] != 1)
            fail_msg("job%09u: %u verdict(s)", i, h->seen[i]);
    assert_int_equal(h->n_verdicts, n);
}

/* ---- a raw worker the test controls ----------------------------------- */

/* A Ready for the worker named name on sock (a worker says it once per
 * connection). */
/* What fake workers ask for in Ready.idle_heartbeat_ms: as workers/worker.c
 * does, or 0 as workers before that field. */
static unsigned fake_idle_heartbeat_ms = SL_WIRE_WORKER_HEARTBEAT_MS;
/* What they say in Ready.body_pieces: as workers/worker.c, or not at all. */
static bool fake_body_pieces = true;

static void
fake_worker_ready(void *sock, const char *name, unsigned slots)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ready ready = SLUICE__READY__INIT;
    const char *error;

    ready.worker_id = (char *)name;
    ready.slots = slots;
    ready.idle_heartbeat_ms = fake_idle_heartbeat_ms;
    ready.body_pieces = fake_body_pieces;
    frame.kind_case = SLUICE__FRAME__KIND_READY;
    frame.ready = &ready;
    assert_int_equal(sl_zsock_send_frame(sock, &frame, 0, &error), 0);
}

/* A raw worker on a new connection, named "fake-N" (a name of its own, as
 * every worker process has: the broker tells a worker that comes back
 * from a new one by its name). */
static void *
fake_worker_new(struct harness *h, unsigned slots)
{
    static unsigned n;
    void *sock = zmq_socket(h->zctx, ZMQ_DEALER);
    char name[32];

    sl_zsock_set_common(sock, h->config.frontend.max_message_size);
    assert_int_equal(zmq_connect(sock, h->endpoint), 0);
    snprintf(name, sizeof(name), "fake-%u", ++n);
    fake_worker_ready(sock, name, slots);
    return sock;
}

/* Waits up to timeout_ms for a job on a fake worker, skipping heartbeats.
 * Returns the job index and its attempt, or -1. */
static int
fake_worker_take(void *sock, unsigned timeout_ms, unsigned *attempt_r)
{
    unsigned long long end = sl_now_mono_ms() + timeout_ms;

    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        zmq_pollitem_t item = { .socket = sock, .events = ZMQ_POLLIN };
        zmq_msg_t msg;
        Sluice__Frame *frame;
        const char *error;
        int idx = -1;

        if (now >= end)
            return -1;
        if (zmq_poll(&item, 1, (long)(end - now)) <= 0)
            continue;
        zmq_msg_init(&msg);
        assert_true(zmq_msg_recv(&msg, sock, 0) >= 0);
        assert_int_equal(sl_wire_unpack_msg(&msg, &frame, &error), 0);
        zmq_msg_close(&msg);
        if (frame->kind_case == SLUICE__FRAME__KIND_JOB) {
            assert_true(sl_zsock_more(sock));
            idx = job_index(frame->job->job_id);
            *attempt_r = frame->job->attempt;
        }
        sl_zsock_drain_more(sock);
        sl_wire_frame_free(&frame);
        if (idx >= 0)
            return idx;
    }
}

static void
fake_send(void *sock, Sluice__Frame *frame)
{
    const char *error;

    assert_int_equal(sl_zsock_send_frame(sock, frame, 0, &error), 0);
}

static void
fake_heartbeat(void *sock)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;

    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    fake_send(sock, &frame);
}

static void
fake_verdict(void *sock, unsigned i)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    char id[16];

    snprintf(id, sizeof(id), "job%09u", i);
    v.job_id = id;
    v.ok = 1;
    v.category = "CLEAN";
    v.worker = "fake";
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    fake_send(sock, &frame);
}

/* Waits up to timeout_ms for a job on sock (-1: none; its index and
 * attempt otherwise), in slices of 100 ms: the frontend's loop runs
 * between them, and talking (NULL: none), a worker the broker must keep
 * hearing from, heartbeats every 500 ms. */
static int
fake_wait_job(struct harness *h, void *sock, unsigned timeout_ms, unsigned *attempt_r,
              void *talking)
{
    unsigned long long end = sl_now_mono_ms() + timeout_ms, beat = 0;

    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        int idx;

        if (talking != NULL && now >= beat) {
            fake_heartbeat(talking);
            beat = now + 500;
        }
        if (now >= end)
            return -1;
        idx = fake_worker_take(sock, end - now < 100 ? (unsigned)(end - now) : 100, attempt_r);
        if (idx >= 0)
            return idx;
        event_base_loop(h->base, EVLOOP_NONBLOCK);
    }
}

/* Waits up to timeout_ms for a verdict on a raw frontend. */
static Sluice__Frame *
raw_wait_verdict(void *fe, unsigned timeout_ms)
{
    for (unsigned long long end = sl_now_mono_ms() + timeout_ms; sl_now_mono_ms() < end;) {
        zmq_pollitem_t item = {.socket = fe, .events = ZMQ_POLLIN};
        zmq_msg_t msg;
        Sluice__Frame *in;
        const char *error;

        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        zmq_msg_init(&msg);
        assert_true(zmq_msg_recv(&msg, fe, 0) >= 0);
        assert_int_equal(sl_wire_unpack_msg(&msg, &in, &error), 0);
        zmq_msg_close(&msg);
        sl_zsock_drain_more(fe);
        if (in->kind_case == SLUICE__FRAME__KIND_VERDICT)
            return in;
        sl_wire_frame_free(&in);
    }
    return NULL;
}

/* ---- tests ------------------------------------------------------------ */

static void
load_run(struct harness *h, const char *name)
{
    unsigned long long start = sl_now_mono_ms();

    if (!run_until(h, MAX_JOBS, 60000))
        fail_msg("timeout: %u of %u verdicts, %u submitted (edge-triggered ZMQ_FD not drained?)",
                 h->n_verdicts, MAX_JOBS, h->n_jobs);
    sl_notice("%s: %u verdicts in %llu ms", name, h->n_verdicts, sl_now_mono_ms() - start);
    run_for(h, 300);
    worker_pool_stop(&h->pool);
    assert_all_once(h, MAX_JOBS);
}

/* All jobs sent before the loop runs: the verdicts pile up unread. */
static void
test_load_2000_burst(void **state)
{
    struct harness *h = *state;
    char *error = NULL;

    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 2, &error);
    if (h->pool == NULL)
        fail_msg("worker_pool_start: %s", error);
    for (unsigned i = 0; i < MAX_JOBS; i++)
        if (submit(h, i, 0) != 0)
            fail_msg("submit %u refused", i);
    load_run(h, "load burst");
}

/* Jobs sent from another event (as LMTP sessions do) while verdicts
 * stream in: a send can swallow the ZMQ_FD edge of a waiting verdict,
 * which only the ZMQ_EVENTS check after the send recovers. */
struct submitter {
    struct harness *h;
    struct event *ev;
    unsigned next;
    bool refused;
};

static void
on_submit_event(evutil_socket_t fd, short what, void *arg)
{
    struct submitter *s = arg;

    (void)fd;
    (void)what;
    for (unsigned k = 0; k < 2 && s->next < MAX_JOBS; k++, s->next++)
        if (submit(s->h, s->next, 0) != 0) {
            s->refused = true;
            s->h->abort_run = true;
            return;
        }
    if (s->next < MAX_JOBS) {
        struct timeval tv = { 0, 20 };     /* let the loop breathe: verdicts arrive meanwhile */
        evtimer_add(s->ev, &tv);
    }
}

static void
test_load_2000_interleaved(void **state)
{
    struct harness *h = *state;
    struct submitter s = { .h = h };
    char *error = NULL;

    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 2, &error);
    if (h->pool == NULL)
        fail_msg("worker_pool_start: %s", error);
    s.ev = evtimer_new(h->base, on_submit_event, &s);
    event_active(s.ev, EV_TIMEOUT, 0);
    load_run(h, "load interleaved");
    assert_false(s.refused);    /* (a refusal also fails load_run) */
    assert_int_equal(s.next, MAX_JOBS);
    event_free(s.ev);
}

/* The trap in its smallest form, against a raw ROUTER the test drives: a
 * verdict arrives (ZMQ_FD fires), then, before the loop looks, a submit
 * runs; its send processes ZeroMQ's command mailbox and swallows the
 * signal. Only the ZMQ_EVENTS check after the send gets the verdict read;
 * without it the loop sleeps with the verdict waiting. */
static void
test_link_send_swallows_edge(void **state)
{
    struct harness *h = *state;
    char endpoint[96], *error = NULL, *eps[1] = { endpoint };
    void *router = zmq_socket(h->zctx, ZMQ_ROUTER);
    struct fe_broker_link *link;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    zmq_msg_t ident, part;
    const char *werror;
    struct timespec pause = { 0, 20 * 1000000L };   /* > ZeroMQ's 1 ms command throttle */

    h->check_clean = false;
    snprintf(endpoint, sizeof(endpoint), "%s-edge", h->endpoint);
    assert_int_equal(zmq_bind(router, endpoint), 0);
    link = fe_broker_link_new(h->base, h->zctx, eps, 1, NULL, on_verdict, &error);
    assert_non_null(link);
    run_for(h, 50);

    /* job 0 reaches the "broker" */
    assert_int_equal(submit_on(h, link, 0), 0);
    zmq_msg_init(&ident);
    assert_true(zmq_msg_recv(&ident, router, 0) >= 0);
    assert_int_equal(sl_zsock_drain_more(router), 2);     /* frame + body */

    /* its verdict comes back while nobody runs the loop */
    v.job_id = "job000000000";
    v.ok = 0;
    v.error = "test";
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    zmq_msg_init(&part);
    zmq_msg_copy(&part, &ident);
    assert_true(zmq_msg_send(&part, router, ZMQ_SNDMORE) >= 0);
    assert_int_equal(sl_zsock_send_frame(router, &frame, 0, &werror), 0);
    nanosleep(&pause, NULL);

    /* another session submits first */
    assert_int_equal(submit_on(h, link, 1), 0);
    nanosleep(&pause, NULL);
    assert_int_equal(submit_on(h, link, 2), 0);

    if (!run_until(h, 1, 2000))
        fail_msg("verdict waiting in the socket was not read: ZMQ_FD edge lost after a send");
    assert_int_equal(h->seen[0], 1);
    fe_broker_link_destroy(&link);
    zmq_msg_close(&ident);
    zmq_close(router);
}

/* Hostile or broken MIME must still give a verdict (CLEAN for now: the MIME
 * policy comes later), never a crash: empty body, binary noise, NUL bytes,
 * a multipart without boundary, 5000 nested multiparts. */
static void
test_hostile_mime_still_clean(void **state)
{
    struct harness *h = *state;
    struct sl_buf nest;
    char *error = NULL;
    char noise[4096];
    unsigned seed = 7;
    const unsigned n = 5;

    h->check_clean = false;
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (char)rand_r(&seed);
    sl_buf_init(&nest);
    for (unsigned d = 0; d < 5000; d++)
        sl_buf_printf(&nest, "Content-Type: multipart/mixed; boundary=\"b%u\"\r\n\r\n--b%u\r\n", d,
                      d);
    sl_buf_append_str(&nest, "\r\nleaf\r\n");

    h->bodies[0] = sl_body_new(sl_strdup(""), 0);
    h->bodies[1] = sl_body_new(sl_strndup(noise, sizeof(noise)), sizeof(noise));
    static const char with_nuls[] = "Subject: a\r\n\r\nb\0c\0\0d\r\n";
    char *nul_copy = sl_malloc(sizeof(with_nuls) - 1);
    memcpy(nul_copy, with_nuls, sizeof(with_nuls) - 1);
    h->bodies[2] = sl_body_new(nul_copy, sizeof(with_nuls) - 1);
    h->bodies[3] = sl_body_new(sl_strdup("Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\n--x--\r\n"),
                               strlen("Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\n--x--\r\n"));
    {
        size_t len;
        char *data = sl_buf_steal(&nest, &len);
        h->bodies[4] = sl_body_new(data, len);
    }
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 2, &error);
    assert_non_null(h->pool);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(submit(h, i, 0), 0);
    if (!run_until(h, n, 30000))
        fail_msg("timeout: %u of %u verdicts for hostile bodies", h->n_verdicts, n);
    for (unsigned i = 0; i < n; i++)
        if (h->seen[i] != 1 || !h->ok[i])
            fail_msg("hostile body %u: seen %u, ok %d, error %s", i, h->seen[i], h->ok[i],
                     h->error[i]);
    worker_pool_stop(&h->pool);
}

static void
test_pool_restart(void **state)
{
    struct harness *h = *state;
    char *error = NULL;
    const unsigned n = 200;

    setenv("SLUICE_TEST_WORKER_DELAY_MS", "10", 1);
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 2, &error);
    assert_non_null(h->pool);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(submit(h, i, 0), 0);
    assert_true(run_until(h, 20, 20000));
    worker_pool_stop(&h->pool);
    assert_true(h->n_verdicts < n);     /* really stopped mid-run */

    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 2, &error);
    assert_non_null(h->pool);
    if (!run_until(h, n, 30000))
        fail_msg("timeout: %u of %u verdicts after the pool restart", h->n_verdicts, n);
    run_for(h, 200);
    worker_pool_stop(&h->pool);
    assert_all_once(h, n);
}

static void
test_hung_worker_requeued(void **state)
{
    struct harness *h = *state;
    char *error = NULL;
    const unsigned n = 50, held = 5;
    int held_idx[5];
    unsigned attempt = 0;
    unsigned long long hung_at;

    h->fake = fake_worker_new(h, held);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(submit(h, i, 0), 0);
    for (unsigned k = 0; k < held; k++) {
        held_idx[k] = fake_worker_take(h->fake, 5000, &attempt);
        assert_true(held_idx[k] >= 0);
        assert_int_equal(attempt, 1);
    }
    hung_at = sl_now_mono_ms();
    /* from here the fake worker neither answers nor heartbeats */
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 2, &error);
    assert_non_null(h->pool);
    if (!run_until(h, n, 20000))
        fail_msg("timeout: %u of %u verdicts (held jobs not requeued?)", h->n_verdicts, n);
    /* the held jobs needed the 3-heartbeat expiry */
    assert_true(sl_now_mono_ms() - hung_at >=
                (unsigned long long)SL_WIRE_HEARTBEAT_MS * (SL_WIRE_HEARTBEAT_LIVENESS - 1));
    for (unsigned k = 0; k < held; k++)
        assert_int_equal(h->seen[held_idx[k]], 1);
    run_for(h, 200);
    worker_pool_stop(&h->pool);
    zmq_close(h->fake);
    h->fake = NULL;
    assert_all_once(h, n);
}

static void
test_poison_job_fails(void **state)
{
    struct harness *h = *state;
    unsigned attempt = 0;

    h->check_clean = false;
    assert_int_equal(submit(h, 0, 0), 0);
    for (unsigned round = 1; round <= SL_WIRE_MAX_FAILURES; round++) {
        h->fake = fake_worker_new(h, 1);
        int idx = fake_worker_take(h->fake, 10000, &attempt);
        assert_int_equal(idx, 0);
        assert_int_equal(attempt, round);
        zmq_close(h->fake);     /* the worker "crashes" holding the job */
        h->fake = NULL;
    }
    if (!run_until(h, 1, 10000))
        fail_msg("no failure verdict for the poison job");
    assert_int_equal(h->seen[0], 1);
    assert_false(h->ok[0]);
    assert_string_equal(h->error[0], "job failed on 3 workers (poison message?)");
    run_for(h, 200);
    assert_int_equal(h->n_verdicts, 1);
}

/* The broker loses touch with every worker at once (a partition of the
 * broker, here its only worker going silent): that says nothing about the
 * message. A job held through three such losses is requeued each time and
 * still scanned, never given up as a poison message. */
static void
test_lost_with_everyone_not_counted(void **state)
{
    struct harness *h = *state;
    void **silent = h->fakes; /* closed by teardown */
    unsigned attempt = 0;
    char *error = NULL;

    h->check_clean = false;
    assert_int_equal(submit(h, 0, 0), 0);
    for (unsigned round = 1; round <= SL_WIRE_MAX_FAILURES; round++) {
        /* takes the job and is never heard from again: removed after 3
         * heartbeats, with no other worker talking */
        silent[round - 1] = fake_worker_new(h, 1);
        assert_int_equal(fake_wait_job(h, silent[round - 1], 10000, &attempt, NULL), 0);
        assert_int_equal(attempt, round);
        (void)fake_wait_job(h, silent[round - 1], 4000, &attempt, NULL);
    }
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 1, &error);
    assert_non_null(h->pool);
    if (!run_until(h, 1, 15000))
        fail_msg("no verdict for the job after its workers were lost");
    assert_int_equal(h->seen[0], 1);
    if (!h->ok[0])
        fail_msg("the job was given up: %s", h->error[0]);
    worker_pool_stop(&h->pool);
}

/* A worker that goes silent while others keep talking counts against its
 * job (a hang may be the message's doing) until it comes back under its
 * own name: then it was paused or cut off, and the count is taken back.
 * Three such pauses do not make a poison message. */
static void
test_paused_worker_back_not_counted(void **state)
{
    struct harness *h = *state;
    void *other = h->fakes[0] = fake_worker_new(h, 1); /* closed by teardown */
    void **paused = &h->fakes[1];
    unsigned attempt = 0;

    h->check_clean = false;
    /* job 1 keeps the other worker busy (it never answers, but talks) */
    assert_int_equal(submit(h, 1, 0), 0);
    assert_int_equal(fake_wait_job(h, other, 5000, &attempt, NULL), 1);
    assert_int_equal(submit(h, 0, 0), 0);
    for (unsigned round = 1; round <= SL_WIRE_MAX_FAILURES; round++) {
        /* the same worker, back on a new connection after each pause */
        if (*paused != NULL)
            zmq_close(*paused);
        *paused = zmq_socket(h->zctx, ZMQ_DEALER);
        sl_zsock_set_common(*paused, h->config.frontend.max_message_size);
        assert_int_equal(zmq_connect(*paused, h->endpoint), 0);
        fake_worker_ready(*paused, "fake-paused", 1);
        assert_int_equal(fake_wait_job(h, *paused, 10000, &attempt, other), 0);
        assert_int_equal(attempt, round);
        /* paused: silent until the broker removes it (3 heartbeats) */
        (void)fake_wait_job(h, *paused, 4000, &attempt, other);
    }
    fake_verdict(*paused, 0);
    if (!run_until(h, 1, 5000))
        fail_msg("no verdict for the job after its worker's pauses");
    if (!h->ok[0])
        fail_msg("the job was given up: %s", h->error[0]);
}

/* What a fake worker heard in ms: the broker's heartbeats (answered at
 * once if answer, as workers/worker.c does), Disconnects, jobs (the last
 * one's index and attempt). The frontend's loop runs every 100 ms
 * meanwhile, and talking (NULL: none) heartbeats every 500 ms on its own
 * without reading, as workers did before they answered. */
struct heard {
    unsigned beats, disconnects, jobs;
    int job;
    unsigned attempt;
};

static void
fake_listen(struct harness *h, void *sock, unsigned ms, bool answer, void *talking,
            struct heard *r)
{
    unsigned long long end = sl_now_mono_ms() + ms, talk = 0;

    memset(r, 0, sizeof(*r));
    r->job = -1;
    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        zmq_pollitem_t item = { .socket = sock, .events = ZMQ_POLLIN };

        if (talking != NULL && now >= talk) {
            fake_heartbeat(talking);
            talk = now + 500;
        }
        if (now >= end)
            return;
        if (zmq_poll(&item, 1, end - now < 100 ? (long)(end - now) : 100) > 0) {
            zmq_msg_t msg;
            Sluice__Frame *frame;
            const char *error;

            zmq_msg_init(&msg);
            assert_true(zmq_msg_recv(&msg, sock, 0) >= 0);
            assert_int_equal(sl_wire_unpack_msg(&msg, &frame, &error), 0);
            zmq_msg_close(&msg);
            if (frame->kind_case == SLUICE__FRAME__KIND_HEARTBEAT) {
                r->beats++;
                if (answer)
                    fake_heartbeat(sock);
            } else if (frame->kind_case == SLUICE__FRAME__KIND_DISCONNECT) {
                r->disconnects++;
            } else if (frame->kind_case == SLUICE__FRAME__KIND_JOB) {
                r->jobs++;
                r->job = job_index(frame->job->job_id);
                r->attempt = frame->job->attempt;
            }
            sl_zsock_drain_more(sock);
            sl_wire_frame_free(&frame);
        }
        event_base_loop(h->base, EVLOOP_NONBLOCK);
    }
}

/* The broker heartbeats each worker every 3 s and the worker only answers
 * (docs/protocol-wire.md 5.1): a worker without a job that answers stays
 * registered past the 9 s it may be silent, heartbeated about every 3 s.
 * Given a job it is held to 3 s again: silent from there, it is removed
 * well before 9 s, its job handed to the other worker (which heartbeats
 * on its own, unasked, as workers did before), and its next heartbeat is
 * told to register again. A worker that does not ask for 3 s (one of an
 * earlier version, which judges its broker by 3 s of silence) is
 * heartbeated every second. */
static void
test_heartbeats_answered(void **state)
{
    struct harness *h = *state;
    void *idle, *other, *earlier;
    const unsigned listen_ms = (unsigned)SL_WIRE_WORKER_LIVENESS_MS + 2000;
    unsigned attempt = 0;
    struct heard r;
    unsigned long long given_at;

    fake_idle_heartbeat_ms = 0;
    earlier = fake_worker_new(h, 1);
    fake_idle_heartbeat_ms = SL_WIRE_WORKER_HEARTBEAT_MS;
    fake_listen(h, earlier, 3500, true, NULL, &r);
    zmq_close(earlier);
    if (r.beats < 2)
        fail_msg("%u heartbeats in 3.5 s for a worker that asks for none", r.beats);
    idle = h->fakes[0] = fake_worker_new(h, 1); /* closed by teardown */

    h->check_clean = false;
    /* no job: answering only, for longer than an idle worker's liveness */
    fake_listen(h, idle, listen_ms, true, NULL, &r);
    assert_int_equal(r.disconnects, 0);
    if (r.beats < listen_ms / SL_WIRE_WORKER_HEARTBEAT_MS - 1 ||
        r.beats > listen_ms / SL_WIRE_WORKER_HEARTBEAT_MS + 1)
        fail_msg("%u heartbeats from the broker in %u ms, one each %u ms expected", r.beats,
                 listen_ms, SL_WIRE_WORKER_HEARTBEAT_MS);

    /* given a job, it falls silent; the other worker takes the job once
     * the silent one is removed, 3 s after the hand-out, not 9 */
    assert_int_equal(submit(h, 0, 0), 0);
    assert_int_equal(fake_wait_job(h, idle, 3000, &attempt, NULL), 0);
    assert_int_equal(attempt, 1);
    given_at = sl_now_mono_ms();
    other = h->fakes[1] = fake_worker_new(h, 1);
    assert_int_equal(fake_wait_job(h, other, (unsigned)SL_WIRE_LIVENESS_MS + 3000, &attempt,
                                   other),
                     0);
    assert_int_equal(attempt, 2);
    if (sl_now_mono_ms() - given_at < SL_WIRE_LIVENESS_MS - SL_WIRE_HEARTBEAT_MS)
        fail_msg("the silent worker was removed %llu ms into its silence",
                 sl_now_mono_ms() - given_at);
    /* unknown now: its next heartbeat is told to register again */
    fake_listen(h, idle, 100, false, NULL, &r);
    assert_int_equal(r.disconnects, 0);
    fake_heartbeat(idle);
    fake_listen(h, idle, 1000, false, NULL, &r);
    assert_int_equal(r.disconnects, 1);
    assert_int_equal(r.beats, 0);
}

/* A hand-out renews the broker in the worker's eyes as a heartbeat does,
 * so a worker handed a job every 200 ms is not heartbeated as well: under
 * load the heartbeats no longer come in bursts that jobs wait behind. */
static void
test_hand_out_is_heartbeat(void **state)
{
    struct harness *h = *state;
    void *w = h->fakes[0] = fake_worker_new(h, 20); /* closed by teardown */
    unsigned beats = 0, jobs = 0;
    struct heard r;

    h->check_clean = false;
    /* registered, and past its first heartbeat */
    fake_listen(h, w, (unsigned)SL_WIRE_WORKER_HEARTBEAT_MS + 500, true, NULL, &r);
    assert_true(r.beats >= 1);
    for (unsigned i = 0; i < 15; i++) {
        assert_int_equal(submit(h, i, 0), 0);
        fake_listen(h, w, 200, false, w, &r); /* it talks on its own, as it scans */
        beats += r.beats;
        jobs += r.jobs;
    }
    assert_int_equal(jobs, 15);
    if (beats != 0)
        fail_msg("%u heartbeats in 3 s to a worker handed a job every 200 ms", beats);
}

/* Workers that froze while idle are removed only 9 s into their silence,
 * and a job handed to one meanwhile waits 3 s before it is requeued. Their
 * silence began before the job came: it says nothing about the message,
 * even with another worker talking. Three such hand-outs in a row do not
 * make a poison message. */
static void
test_silent_before_job_not_counted(void **state)
{
    struct harness *h = *state;
    void *other = h->fakes[0] = fake_worker_new(h, 1); /* all closed by teardown */
    unsigned attempt = 0, attempts = 0;
    struct heard r;
    char *error = NULL;

    h->check_clean = false;
    /* job 1 keeps the other worker busy (it never answers, but talks) */
    assert_int_equal(submit(h, 1, 0), 0);
    assert_int_equal(fake_wait_job(h, other, 5000, &attempt, NULL), 1);
    for (unsigned k = 1; k <= SL_WIRE_MAX_FAILURES; k++)
        h->fakes[k] = fake_worker_new(h, 1); /* registered, then frozen */
    fake_listen(h, other, 1500, true, other, &r);
    assert_int_equal(submit(h, 0, 0), 0);
    /* handed to each frozen worker in turn, 3 s each (the last one's 9 s
     * run out first) */
    fake_listen(h, other, (unsigned)SL_WIRE_WORKER_LIVENESS_MS, true, other, &r);
    for (unsigned k = 1; k <= SL_WIRE_MAX_FAILURES; k++) {
        fake_listen(h, h->fakes[k], 100, false, NULL, &r);
        assert_int_equal(r.jobs, 1);
        assert_int_equal(r.job, 0);
        attempts |= 1u << r.attempt;
    }
    assert_int_equal(attempts, 0x0e); /* attempts 1, 2 and 3 */
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 1, &error);
    assert_non_null(h->pool);
    if (!run_until(h, 1, 15000))
        fail_msg("no verdict for the job after its frozen workers");
    if (!h->ok[0])
        fail_msg("the job was given up: %s", h->error[0]);
    worker_pool_stop(&h->pool);
}

static void
test_deadline_drops_queued_job(void **state)
{
    struct harness *h = *state;
    char *error = NULL;

    /* no worker yet: job 0 waits in the queue past its deadline */
    assert_int_equal(submit(h, 0, sl_now_wall_ms() + 200), 0);
    run_for(h, 1500);
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 1, &error);
    assert_non_null(h->pool);
    assert_int_equal(submit(h, 1, 0), 0);
    assert_true(run_until(h, 1, 10000));
    run_for(h, 300);
    worker_pool_stop(&h->pool);
    assert_int_equal(h->seen[0], 0);
    assert_int_equal(h->seen[1], 1);
    assert_int_equal(h->n_bad, 0);
}

/* A job that validates on receipt but not once the broker numbers the
 * hand-out (a frontend sent attempt = SL_WIRE_MAX_ATTEMPT): the broker
 * used to sl_bug() there; now the frontend gets a failure verdict, nothing
 * reaches a worker and the broker carries on. */
static void
test_unsendable_job_fails(void **state)
{
    struct harness *h = *state;
    void *fe = zmq_socket(h->zctx, ZMQ_DEALER);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Recipient r = SLUICE__RECIPIENT__INIT;
    Sluice__Recipient *rp[1] = {&r};
    Sluice__Frame *v;
    const char *error;
    unsigned attempt;

    sl_zsock_set_common(fe, h->config.frontend.max_message_size);
    assert_int_equal(zmq_connect(fe, h->endpoint), 0);
    h->fake = fake_worker_new(h, 1);
    r.address = "user@example.org";
    job.job_id = "job000000007";
    job.origin = "default";
    job.deadline_ms = sl_now_wall_ms() + 60000;
    job.n_rcpts = 1;
    job.rcpts = rp;
    job.size = 4;
    job.attempt = SL_WIRE_MAX_ATTEMPT;
    frame.kind_case = SLUICE__FRAME__KIND_JOB;
    frame.job = &job;
    assert_int_equal(sl_zsock_send_frame(fe, &frame, ZMQ_SNDMORE, &error), 0);
    assert_int_equal(zmq_send(fe, "body", 4, 0), 4);

    v = raw_wait_verdict(fe, 10000);
    assert_non_null(v);
    assert_string_equal(v->verdict->job_id, "job000000007");
    assert_false(v->verdict->ok);
    assert_string_equal(v->verdict->error, "protocol error: job cannot be handed out");
    sl_wire_frame_free(&v);
    assert_int_equal(fake_worker_take(h->fake, 300, &attempt), -1);
    zmq_close(fe);
}

/* ---- a body in pieces ------------------------------------------------- */

/* A raw frontend's job i, its body text cut into n pieces. */
static void
raw_send_job_pieces(void *fe, unsigned i, const struct sl_body *body, size_t n)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Recipient r = SLUICE__RECIPIENT__INIT;
    Sluice__Recipient *rp[1] = {&r};
    const char *error;
    char id[16];
    size_t off = 0;

    snprintf(id, sizeof(id), "job%09u", i);
    r.address = "user@example.org";
    job.job_id = id;
    job.origin = "default";
    job.client_addr = "192.0.2.1";
    job.deadline_ms = sl_now_wall_ms() + 60000;
    job.mail_from = "alice@example.net";
    job.n_rcpts = 1;
    job.rcpts = rp;
    job.helo = "mx.example.org";
    job.proto = "LMTP";
    job.received_ms = sl_now_wall_ms();
    job.by_host = "filter.example.org";
    job.by_port = 10024;
    job.size = body->len;
    frame.kind_case = SLUICE__FRAME__KIND_JOB;
    frame.job = &job;
    assert_int_equal(sl_zsock_send_frame(fe, &frame, ZMQ_SNDMORE, &error), 0);
    for (size_t k = 0; k < n; k++) {
        size_t len = k + 1 < n ? body->len / n : body->len - off;
        assert_int_equal(zmq_send(fe, body->data + off, len, k + 1 < n ? ZMQ_SNDMORE : 0),
                         (int)len);
        off += len;
    }
}

/* Waits up to timeout_ms for a job on a fake worker; its body frames are
 * checked against body and counted. The job's index, or -1. */
static int
fake_take_body(void *sock, unsigned timeout_ms, const struct sl_body *body, size_t *parts_r)
{
    unsigned long long end = sl_now_mono_ms() + timeout_ms;

    while (sl_now_mono_ms() < end) {
        zmq_pollitem_t item = { .socket = sock, .events = ZMQ_POLLIN };
        zmq_msg_t msg;
        Sluice__Frame *frame;
        const char *error;
        size_t off = 0;
        int idx;

        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        zmq_msg_init(&msg);
        assert_true(zmq_msg_recv(&msg, sock, 0) >= 0);
        assert_int_equal(sl_wire_unpack_msg(&msg, &frame, &error), 0);
        zmq_msg_close(&msg);
        if (frame->kind_case != SLUICE__FRAME__KIND_JOB) {
            sl_wire_frame_free(&frame);
            continue;
        }
        idx = job_index(frame->job->job_id);
        *parts_r = 0;
        while (sl_zsock_more(sock)) {
            zmq_msg_init(&msg);
            assert_true(zmq_msg_recv(&msg, sock, 0) >= 0);
            assert_true(off + zmq_msg_size(&msg) <= body->len);
            assert_memory_equal(zmq_msg_data(&msg), body->data + off, zmq_msg_size(&msg));
            off += zmq_msg_size(&msg);
            ++*parts_r;
            zmq_msg_close(&msg);
        }
        assert_int_equal(off, body->len);
        assert_int_equal(frame->job->size, body->len);
        sl_wire_frame_free(&frame);
        return idx;
    }
    return -1;
}

/* A body that comes in pieces is handed out in pieces to a worker that
 * takes them, joined for one that does not (an earlier version), and a
 * real worker scans the pieces as the message. */
static void
test_body_in_pieces(void **state)
{
    struct harness *h = *state;
    void *fe = h->fakes[1] = zmq_socket(h->zctx, ZMQ_DEALER);
    Sluice__Frame *v;
    char *error = NULL;
    size_t parts = 0;

    sl_zsock_set_common(fe, h->config.frontend.max_message_size);
    assert_int_equal(zmq_connect(fe, h->endpoint), 0);
    for (unsigned i = 0; i < 3; i++)
        h->bodies[i] = make_body(i);
    h->n_jobs = 3;

    /* a worker that takes pieces gets the three frames, unchanged */
    h->fake = fake_worker_new(h, 1);
    raw_send_job_pieces(fe, 0, h->bodies[0], 3);
    assert_int_equal(fake_take_body(h->fake, 5000, h->bodies[0], &parts), 0);
    assert_int_equal(parts, 3);
    fake_verdict(h->fake, 0);
    v = raw_wait_verdict(fe, 5000);
    assert_non_null(v);
    assert_string_equal(v->verdict->job_id, "job000000000");
    sl_wire_frame_free(&v);
    zmq_close(h->fake);
    h->fake = NULL;

    /* one that does not gets them joined into one frame */
    fake_body_pieces = false;
    h->fakes[0] = fake_worker_new(h, 1);
    fake_body_pieces = true;
    raw_send_job_pieces(fe, 1, h->bodies[1], 4);
    assert_int_equal(fake_take_body(h->fakes[0], 5000, h->bodies[1], &parts), 1);
    assert_int_equal(parts, 1);
    fake_verdict(h->fakes[0], 1);
    v = raw_wait_verdict(fe, 5000);
    assert_non_null(v);
    sl_wire_frame_free(&v);
    zmq_close(h->fakes[0]);
    h->fakes[0] = NULL;

    /* a real worker joins them and scans the message */
    h->pool = worker_pool_start(h->zctx, &h->config, h->endpoints, 1, 1, &error);
    if (h->pool == NULL)
        fail_msg("worker_pool_start: %s", error);
    raw_send_job_pieces(fe, 2, h->bodies[2], 5);
    v = raw_wait_verdict(fe, 10000);
    assert_non_null(v);
    assert_string_equal(v->verdict->job_id, "job000000002");
    assert_true(v->verdict->ok);
    assert_string_equal(v->verdict->category, "CLEAN");
    assert_string_equal(v->verdict->message_id, "msg2@example.org");
    assert_int_equal(v->verdict->mime_parts, 3);
    sl_wire_frame_free(&v);
    worker_pool_stop(&h->pool);
}

/* Receives a job on a raw broker, skipping the frontend's heartbeats: the
 * number of its body frames and their sizes (up to 8); *ident
 * (initialised) the sender's routing id. */
static size_t
raw_broker_take(void *router, zmq_msg_t *ident, size_t *sizes)
{
    zmq_pollitem_t item = { .socket = router, .events = ZMQ_POLLIN };
    Sluice__Frame *frame = NULL;
    const char *error;
    zmq_msg_t m;
    size_t n = 0;

    zmq_msg_init(&m);
    for (int skipped = 0; frame == NULL || frame->kind_case != SLUICE__FRAME__KIND_JOB;
         skipped++) {
        assert_true(skipped < 20);
        sl_wire_frame_free(&frame);
        sl_zsock_drain_more(router);
        assert_int_equal(zmq_poll(&item, 1, 5000), 1);
        assert_true(zmq_msg_recv(ident, router, 0) >= 0);
        assert_true(sl_zsock_more(router));
        assert_true(zmq_msg_recv(&m, router, 0) >= 0);
        assert_int_equal(sl_wire_unpack_msg(&m, &frame, &error), 0);
    }
    sl_wire_frame_free(&frame);
    while (sl_zsock_more(router)) {
        assert_true(zmq_msg_recv(&m, router, 0) >= 0);
        if (n < 8)
            sizes[n] = zmq_msg_size(&m);
        n++;
    }
    zmq_msg_close(&m);
    return n;
}

/* A frontend cuts a body longer than SL_WIRE_BODY_PIECE into pieces over
 * TCP once the broker said it takes them, and only then; each piece holds
 * a reference on the body (teardown checks they are all dropped). */
static void
test_link_cuts_big_body(void **state)
{
    struct harness *h = *state;
    char endpoint[96], *error = NULL, *eps[1] = { endpoint };
    void *router = h->fakes[0] = zmq_socket(h->zctx, ZMQ_ROUTER);
    struct fe_broker_link *link;
    size_t len = SL_WIRE_BODY_PIECE * 5 / 2, sizes[8], endpoint_len = sizeof(endpoint);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    const char *werror;
    zmq_msg_t ident;

    h->check_clean = false;
    sl_zsock_set_common(router, h->config.frontend.max_message_size);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, endpoint, &endpoint_len), 0);
    link = h->extra_link = fe_broker_link_new(h->base, h->zctx, eps, 1, NULL, on_verdict, &error);
    assert_non_null(link);
    for (unsigned i = 0; i < 2; i++) {
        char *data = sl_malloc(len);
        for (size_t k = 0; k < len; k++)
            data[k] = (char)('a' + (k * 7 + i) % 26);
        h->bodies[i] = sl_body_new(data, len);
    }
    run_for(h, 100);    /* the TCP handshake */

    /* nothing heard from the broker yet: one frame */
    assert_int_equal(submit_on(h, link, 0), 0);
    zmq_msg_init(&ident);
    assert_int_equal(raw_broker_take(router, &ident, sizes), 1);
    assert_int_equal(sizes[0], len);

    /* the broker says it takes pieces: 1 MiB, 1 MiB and the rest */
    hb.instance = "instance0001";
    hb.body_pieces = 1;
    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    assert_true(zmq_msg_send(&ident, router, ZMQ_SNDMORE) >= 0);
    assert_int_equal(sl_zsock_send_frame(router, &frame, 0, &werror), 0);
    run_for(h, 200);
    assert_int_equal(submit_on(h, link, 1), 0);
    zmq_msg_init(&ident);
    assert_int_equal(raw_broker_take(router, &ident, sizes), 3);
    assert_int_equal(sizes[0], SL_WIRE_BODY_PIECE);
    assert_int_equal(sizes[1], SL_WIRE_BODY_PIECE);
    assert_int_equal(sizes[2], len - 2 * SL_WIRE_BODY_PIECE);
    zmq_msg_close(&ident);
}

static struct sl_config *
config_from(const char *yaml)
{
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test.yaml", yaml, strlen(yaml), NULL, 0, &error);

    if (c == NULL)
        fail_msg("config: %s", error);
    return c;
}

/* worker_pool_reconfigure: the policy of the configuration current when a
 * job arrives. Job 0 is taken (and held 600 ms by the test delay) under a
 * 100-byte policy.message_size_limit, so it is OVERSIZED although the
 * limit is gone before it is scanned; job 1 comes after the reload and
 * passes CLEAN. The pool holds its own references: the test drops its
 * own at once (the sanitizer build sees a use after free or a leak). */
static void
test_reconfigure_next_job(void **state)
{
    struct harness *h = *state;
    char *error = NULL;
    struct sl_config *before = config_from("policy:\n  message_size_limit: 100\n");
    struct sl_config *after = config_from("policy:\n  message_size_limit: 0\n");

    h->check_clean = false;
    setenv("SLUICE_TEST_WORKER_DELAY_MS", "600", 1);
    h->pool = worker_pool_start(h->zctx, before, h->endpoints, 1, 2, &error);
    if (h->pool == NULL)
        fail_msg("worker_pool_start: %s", error);
    sl_config_unref(&before);
    assert_int_equal(submit(h, 0, 0), 0);
    run_for(h, 200); /* the broker hands job 0 to a worker */
    worker_pool_reconfigure(h->pool, after);
    sl_config_unref(&after);
    assert_int_equal(submit(h, 1, 0), 0);
    if (!run_until(h, 2, 10000))
        fail_msg("timeout: %u of 2 verdicts", h->n_verdicts);
    assert_all_once(h, 2);
    assert_true(h->ok[0] && h->ok[1]);
    assert_string_equal(h->category[0], "OVERSIZED");
    assert_string_equal(h->category[1], "CLEAN");
    worker_pool_stop(&h->pool);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_2000_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_2000_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_send_swallows_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_mime_still_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_worker_requeued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_job_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_with_everyone_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_worker_back_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeats_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_before_job_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_out_is_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_drops_queued_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsendable_job_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_in_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_cuts_big_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_next_job, setup, teardown),
    };

    sl_log_open("test_broker", SL_LOG_STDERR, LOG_NOTICE);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
