/* test_cluster.c - the cluster mechanics (docs/cluster.md), in one process:
 *
 *   fair_share:       two origins with jobs waiting get hand-outs in
 *                     proportion to Job.origin_concurrency (3:1);
 *   trickle:          one job of a quiet origin goes out within two hand-outs
 *                     although a flooding origin has 60 jobs waiting;
 *   failover:         two brokers; the one holding the jobs (it has no
 *                     worker) is stopped: the link resubmits them through
 *                     the other within about 3 s, each verdict exactly once;
 *   duplicate:        a second verdict for a job is dropped by the link and
 *                     counted, never delivered twice;
 *   all_down:         with no broker at all a job waits in the link (no
 *                     verdict, never a success) until the caller withdraws it;
 *   resubmit_same:    a broker that already holds a job keeps one copy;
 *   redis_url:        redis.url forms.
 * Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <zmq.h>

#include "broker/broker.h"
#include "conf/sl_config.h"
#include "frontend/broker_link.h"
#include "net/sl_redis.h"
#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "util/sl_body.h"
#include "util/sl_log.h"
#include "util/sl_util.h"
#include "workers/worker.h"

#define MAX_JOBS 200

struct h {
    void *zctx;
    struct sl_config config;
    struct event_base *base;
    unsigned seen[MAX_JOBS];
    bool ok[MAX_JOBS];
    unsigned n_verdicts;
    struct sl_body *body;
};

static unsigned serial;

static struct h *
h_new(void)
{
    struct h *h = calloc(1, sizeof(*h));
    h->zctx = zmq_ctx_new();
    h->config.frontend.max_message_size = 1024 * 1024;
    /* the harness's own reference: the pools' references never free it */
    atomic_init(&h->config.refs, 1);
    h->base = event_base_new();
    h->body = sl_body_new(sl_strdup("Subject: x\r\n\r\nbody\r\n"), 21);
    return h;
}

static void
h_free(struct h *h)
{
    event_base_free(h->base);
    zmq_ctx_term(h->zctx);
    assert_int_equal(__atomic_load_n(&h->body->refs, __ATOMIC_ACQUIRE), 1);
    sl_body_unref(&h->body);
    unsetenv("SLUICE_TEST_WORKER_DELAY_MS");
    free(h);
}

static void
job_id(char *buf, unsigned i)
{
    snprintf(buf, 13, "job%09u", i);
}

static unsigned
job_idx(const char *id)
{
    unsigned i = 0;
    if (sscanf(id, "job%9u", &i) != 1 || i >= MAX_JOBS)
        fail_msg("bad job id %s", id);
    return i;
}

/* A Job frame for job i of origin, weight. */
static void
make_job(Sluice__Job *job, Sluice__Recipient *r, Sluice__Recipient **rp, char *id, unsigned i,
         const char *origin, unsigned weight, size_t size)
{
    sluice__job__init(job);
    sluice__recipient__init(r);
    job_id(id, i);
    r->address = "user@example.org";
    rp[0] = r;
    job->job_id = id;
    job->origin = (char *)origin;
    job->origin_concurrency = weight;
    job->deadline_ms = sl_now_wall_ms() + 60000;
    job->n_rcpts = 1;
    job->rcpts = rp;
    job->size = size;
}

/* ---- a raw frontend and a raw worker ---------------------------------- */

static void
raw_send_job(void *sock, unsigned i, const char *origin, unsigned weight)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Job job;
    Sluice__Recipient r, *rp[1];
    char id[16];
    const char *error;

    make_job(&job, &r, rp, id, i, origin, weight, 4);
    frame.kind_case = SLUICE__FRAME__KIND_JOB;
    frame.job = &job;
    assert_int_equal(sl_zsock_send_frame(sock, &frame, ZMQ_SNDMORE, &error), 0);
    assert_int_equal(zmq_send(sock, "body", 4, 0), 4);
}

static void *
raw_worker(struct h *h, const char *endpoint, unsigned slots)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ready ready = SLUICE__READY__INIT;
    void *sock = zmq_socket(h->zctx, ZMQ_DEALER);
    const char *error;

    sl_zsock_set_common(sock, h->config.frontend.max_message_size);
    assert_int_equal(zmq_connect(sock, endpoint), 0);
    ready.worker_id = "raw";
    ready.slots = slots;
    frame.kind_case = SLUICE__FRAME__KIND_READY;
    frame.ready = &ready;
    assert_int_equal(sl_zsock_send_frame(sock, &frame, 0, &error), 0);
    return sock;
}

/* Next job handed to the raw worker: its origin in origin_r. -1 on timeout. */
static int
raw_take(void *sock, unsigned timeout_ms, char *origin_r, size_t len)
{
    unsigned long long end = sl_now_mono_ms() + timeout_ms;

    while (sl_now_mono_ms() < end) {
        zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
        zmq_msg_t msg;
        Sluice__Frame *frame;
        const char *error;
        int idx = -1;

        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        zmq_msg_init(&msg);
        assert_true(zmq_msg_recv(&msg, sock, 0) >= 0);
        assert_int_equal(sl_wire_unpack_msg(&msg, &frame, &error), 0);
        zmq_msg_close(&msg);
        if (frame->kind_case == SLUICE__FRAME__KIND_JOB) {
            idx = (int)job_idx(frame->job->job_id);
            snprintf(origin_r, len, "%s", frame->job->origin);
        }
        sl_zsock_drain_more(sock);
        sl_wire_frame_free(&frame);
        if (idx >= 0)
            return idx;
    }
    return -1;
}

static void
raw_verdict(void *sock, unsigned i)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    char id[16];
    const char *error;

    job_id(id, i);
    v.job_id = id;
    v.ok = 1;
    v.category = "CLEAN";
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    assert_int_equal(sl_zsock_send_frame(sock, &frame, 0, &error), 0);
}

/* ---- fair scheduling -------------------------------------------------- */

static void
test_fair_share(void **state)
{
    struct h *h = h_new();
    char ep[64], *error = NULL, origin[64];
    struct broker *b;
    void *fe, *w;
    unsigned got_a = 0, got_b = 0;

    (void)state;
    snprintf(ep, sizeof(ep), "inproc://test-cluster-%u", ++serial);
    b = broker_start(h->zctx, &h->config, ep, &error);
    assert_non_null(b);
    fe = zmq_socket(h->zctx, ZMQ_DEALER);
    sl_zsock_set_common(fe, 0);
    assert_int_equal(zmq_connect(fe, ep), 0);
    /* both origins have 40 jobs waiting before any worker exists */
    for (unsigned i = 0; i < 40; i++) {
        raw_send_job(fe, i, "a", 3);
        raw_send_job(fe, 100 + i, "b", 1);
    }
    usleep(200 * 1000);
    w = raw_worker(h, ep, 1);
    for (unsigned k = 0; k < 40; k++) {
        int idx = raw_take(w, 5000, origin, sizeof(origin));
        assert_true(idx >= 0);
        if (strcmp(origin, "a") == 0)
            got_a++;
        else
            got_b++;
        raw_verdict(w, (unsigned)idx);
    }
    sl_notice("fair share 3:1 over 40 hand-outs: a %u, b %u", got_a, got_b);
    assert_in_range(got_a, 29, 31);
    assert_in_range(got_b, 9, 11);
    zmq_close(w);
    zmq_close(fe);
    broker_stop(&b);
    h_free(h);
}

static void
test_trickle_not_starved(void **state)
{
    struct h *h = h_new();
    char ep[64], *error = NULL, origin[64];
    struct broker *b;
    void *fe, *w;
    int idx;
    unsigned pos = 0;

    (void)state;
    snprintf(ep, sizeof(ep), "inproc://test-cluster-%u", ++serial);
    b = broker_start(h->zctx, &h->config, ep, &error);
    assert_non_null(b);
    fe = zmq_socket(h->zctx, ZMQ_DEALER);
    sl_zsock_set_common(fe, 0);
    assert_int_equal(zmq_connect(fe, ep), 0);
    w = raw_worker(h, ep, 1);
    for (unsigned i = 0; i < 60; i++)
        raw_send_job(fe, i, "flood", 30);
    /* the flood is being served */
    for (unsigned k = 0; k < 5; k++) {
        idx = raw_take(w, 5000, origin, sizeof(origin));
        assert_true(idx >= 0);
        raw_verdict(w, (unsigned)idx);
    }
    raw_send_job(fe, 150, "trickle", 2);
    usleep(100 * 1000);
    for (pos = 1; pos <= 60; pos++) {
        idx = raw_take(w, 5000, origin, sizeof(origin));
        assert_true(idx >= 0);
        raw_verdict(w, (unsigned)idx);
        if (idx == 150)
            break;
    }
    sl_notice("trickle job handed out %u hand-out(s) after it arrived (55 flood jobs waiting)",
              pos);
    assert_true(pos <= 2);
    zmq_close(w);
    zmq_close(fe);
    broker_stop(&b);
    h_free(h);
}

/* ---- the frontend link ------------------------------------------------ */

static void
on_verdict(void *ctx, const Sluice__Verdict *v)
{
    struct h *h = ctx;
    unsigned i = job_idx(v->job_id);
    h->seen[i]++;
    h->ok[i] = v->ok;
    h->n_verdicts++;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

static bool
run_until(struct h *h, unsigned n, unsigned timeout_ms)
{
    bool timed_out = false;
    struct event *t = evtimer_new(h->base, on_timer, &timed_out);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

    evtimer_add(t, &tv);
    while (!timed_out && h->n_verdicts < n)
        event_base_loop(h->base, EVLOOP_ONCE);
    event_free(t);
    return h->n_verdicts >= n;
}

static struct fe_link_job *
link_submit(struct h *h, struct fe_broker_link *link, unsigned i)
{
    Sluice__Job job;
    Sluice__Recipient r, *rp[1];
    char id[16];
    struct fe_link_job *lj;

    make_job(&job, &r, rp, id, i, "default", 0, h->body->len);
    lj = fe_broker_link_submit(link, &job, h->body, h);
    assert_non_null(lj);
    return lj;
}

static void
test_failover(void **state)
{
    struct h *h = h_new();
    char ep1[64], ep2[64], *error = NULL;
    char *eps[2] = {ep1, ep2}, *ep2only[1] = {ep2};
    struct broker *b1, *b2;
    struct worker_pool *pool;
    struct fe_broker_link *link;
    struct fe_broker_link_stats st;
    const unsigned n = 20;
    unsigned long long stopped;

    (void)state;
    snprintf(ep1, sizeof(ep1), "inproc://test-cluster-%u", ++serial);
    snprintf(ep2, sizeof(ep2), "inproc://test-cluster-%u", ++serial);
    b1 = broker_start(h->zctx, &h->config, ep1, &error);
    b2 = broker_start(h->zctx, &h->config, ep2, &error);
    assert_non_null(b1);
    assert_non_null(b2);
    /* workers only on broker 2: what goes to broker 1 stays there */
    pool = worker_pool_start(h->zctx, &h->config, ep2only, 1, 2, &error);
    assert_non_null(pool);
    link = fe_broker_link_new(h->base, h->zctx, eps, 2, NULL, on_verdict, &error);
    assert_non_null(link);
    (void)run_until(h, 1000, 1500); /* heartbeats both ways */
    for (unsigned i = 0; i < n; i++)
        link_submit(h, link, i);
    (void)run_until(h, n, 1000);
    assert_true(h->n_verdicts < n); /* broker 1 holds some */
    assert_true(h->n_verdicts > 0); /* broker 2 answered its share */
    sl_notice("failover: %u of %u verdicts before broker 1 stops", h->n_verdicts, n);
    broker_stop(&b1);
    stopped = sl_now_mono_ms();
    if (!run_until(h, n, 8000))
        fail_msg("only %u of %u verdicts after broker 1 stopped", h->n_verdicts, n);
    unsigned long long took = sl_now_mono_ms() - stopped;
    sl_notice("failover: all %u verdicts %llu ms after broker 1 stopped", n, took);
    assert_true(took <= 4500);
    (void)run_until(h, 1000, 500); /* nothing more may come */
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(h->seen[i], 1);
        assert_true(h->ok[i]);
    }
    fe_broker_link_stats(link, &st);
    assert_true(st.n_resubmitted > 0);
    assert_int_equal(st.held + st.pending, 0);
    fe_broker_link_destroy(&link);
    worker_pool_stop(&pool);
    broker_stop(&b2);
    h_free(h);
}

static void
test_duplicate_verdict_dropped(void **state)
{
    struct h *h = h_new();
    char ep[64], *error = NULL, *eps[1] = {ep};
    void *router = zmq_socket(h->zctx, ZMQ_ROUTER);
    struct fe_broker_link *link;
    struct fe_broker_link_stats st;
    zmq_msg_t ident;

    (void)state;
    snprintf(ep, sizeof(ep), "inproc://test-cluster-%u", ++serial);
    assert_int_equal(zmq_bind(router, ep), 0);
    link = fe_broker_link_new(h->base, h->zctx, eps, 1, NULL, on_verdict, &error);
    assert_non_null(link);
    link_submit(h, link, 7);
    zmq_msg_init(&ident);
    assert_true(zmq_msg_recv(&ident, router, 0) >= 0);
    assert_int_equal(sl_zsock_drain_more(router), 2);
    for (int k = 0; k < 2; k++) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &ident);
        assert_true(zmq_msg_send(&copy, router, ZMQ_SNDMORE) >= 0);
        raw_verdict(router, 7);
    }
    (void)run_until(h, 1000, 500);
    assert_int_equal(h->seen[7], 1);
    fe_broker_link_stats(link, &st);
    assert_int_equal(st.n_duplicate_verdicts, 1);
    assert_int_equal(st.held, 0);
    zmq_msg_close(&ident);
    fe_broker_link_destroy(&link);
    zmq_close(router);
    h_free(h);
}

static void
test_all_brokers_down_waits(void **state)
{
    struct h *h = h_new();
    char ep[64], *error = NULL, *eps[1] = {ep};
    struct fe_broker_link *link;
    struct fe_broker_link_stats st;
    struct broker *b;
    struct worker_pool *pool;

    (void)state;
    /* nothing bound there yet: the job cannot be sent */
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%u", 29000 + (unsigned)(getpid() % 900));
    link = fe_broker_link_new(h->base, h->zctx, eps, 1, NULL, on_verdict, &error);
    assert_non_null(link);
    link_submit(h, link, 3);
    (void)run_until(h, 1, 1200);
    assert_int_equal(h->n_verdicts, 0);
    fe_broker_link_stats(link, &st);
    assert_int_equal(st.pending, 1);
    /* a broker appears: the waiting job goes out and is answered */
    b = broker_start(h->zctx, &h->config, ep, &error);
    if (b == NULL)
        skip(); /* the port is taken on this machine */
    pool = worker_pool_start(h->zctx, &h->config, eps, 1, 1, &error);
    assert_non_null(pool);
    if (!run_until(h, 1, 8000))
        fail_msg("the waiting job was not sent when a broker came up");
    assert_int_equal(h->seen[3], 1);
    /* a job the caller withdraws is dropped with its body reference */
    worker_pool_stop(&pool);
    struct fe_link_job *lj = link_submit(h, link, 4);
    fe_broker_link_withdraw(link, &lj);
    assert_null(lj);
    fe_broker_link_stats(link, &st);
    assert_int_equal(st.held + st.pending, 0);
    fe_broker_link_destroy(&link);
    broker_stop(&b);
    h_free(h);
}

static void
test_resubmitted_job_kept_once(void **state)
{
    struct h *h = h_new();
    char ep[64], *error = NULL, origin[64];
    struct broker *b;
    struct broker_stats st;
    void *fe1, *fe2, *w;

    (void)state;
    snprintf(ep, sizeof(ep), "inproc://test-cluster-%u", ++serial);
    b = broker_start(h->zctx, &h->config, ep, &error);
    assert_non_null(b);
    fe1 = zmq_socket(h->zctx, ZMQ_DEALER);
    fe2 = zmq_socket(h->zctx, ZMQ_DEALER);
    sl_zsock_set_common(fe1, 0);
    sl_zsock_set_common(fe2, 0);
    assert_int_equal(zmq_connect(fe1, ep), 0);
    assert_int_equal(zmq_connect(fe2, ep), 0);
    raw_send_job(fe1, 9, "default", 1);
    usleep(100 * 1000);
    raw_send_job(fe2, 9, "default", 1); /* the same job over a new connection */
    usleep(300 * 1000);
    broker_stats(b, &st);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.n_duplicates, 1);
    w = raw_worker(h, ep, 2);
    assert_int_equal(raw_take(w, 3000, origin, sizeof(origin)), 9);
    assert_int_equal(raw_take(w, 500, origin, sizeof(origin)), -1);
    zmq_close(w);
    zmq_close(fe1);
    zmq_close(fe2);
    broker_stop(&b);
    h_free(h);
}

/* ZMQ_MAXMSGSIZE over tcp://: a peer sending a part larger than the
 * largest body + 4 MiB is disconnected by ZeroMQ before the broker sees
 * anything; the broker goes on serving everybody else. */
static void
test_tcp_oversize_part_dropped(void **state)
{
    struct h *h = h_new();
    char ep[64], *error = NULL, *eps[1] = {ep};
    size_t len = sizeof(ep);
    struct broker *b;
    struct broker_stats st;
    struct worker_pool *pool;
    struct fe_broker_link *link;
    void *raw, *probe;
    size_t big = 6 * 1024 * 1024;   /* > 1 MiB + 4 MiB */
    char *junk;

    (void)state;
    h->config.frontend.max_message_size = 1024 * 1024;
    /* a free port: bind a probe to port 0, read it back, release it */
    probe = zmq_socket(h->zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(probe, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(probe, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    zmq_close(probe);
    usleep(100 * 1000);
    b = broker_start(h->zctx, &h->config, ep, &error);
    if (b == NULL)
        skip();
    raw = zmq_socket(h->zctx, ZMQ_DEALER);
    sl_zsock_set_int(raw, ZMQ_LINGER, 0);
    assert_int_equal(zmq_connect(raw, ep), 0);
    junk = calloc(1, big);
    assert_int_equal(zmq_send(raw, junk, big, 0), (int)big);
    free(junk);
    usleep(500 * 1000);
    broker_stats(b, &st);
    assert_int_equal(st.n_jobs, 0);
    assert_int_equal(st.n_bad_frames, 0);   /* never reached the broker */
    pool = worker_pool_start(h->zctx, &h->config, eps, 1, 1, &error);
    assert_non_null(pool);
    link = fe_broker_link_new(h->base, h->zctx, eps, 1, NULL, on_verdict, &error);
    assert_non_null(link);
    link_submit(h, link, 11);
    if (!run_until(h, 1, 8000))
        fail_msg("the broker stopped serving after an oversize part");
    assert_int_equal(h->seen[11], 1);
    fe_broker_link_destroy(&link);
    worker_pool_stop(&pool);
    zmq_close(raw);
    broker_stop(&b);
    h_free(h);
}

/* ---- redis.url -------------------------------------------------------- */

static void
test_redis_url(void **state)
{
    struct sl_redis_url u;
    char *error = NULL;
    static const char *bad[] = {"",
                                "http://x",
                                "redis://",
                                "redis://:6379",
                                "redis://h:0",
                                "redis://h:99999",
                                "redis://h:12/x",
                                "unix:relative",
                                "redis://user@h",
                                "redis://:p%4@h",
                                "redis://[::1",
                                "unix:/"};

    (void)state;
    assert_int_equal(sl_redis_url_parse("redis://127.0.0.1:6380/2", &u, &error), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_null(u.password);
    sl_redis_url_free(&u);
    assert_int_equal(sl_redis_url_parse("redis://:s%40cret@redis.example:6379", &u, &error), 0);
    assert_string_equal(u.password, "s@cret");
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.db, 0);
    sl_redis_url_free(&u);
    assert_int_equal(sl_redis_url_parse("redis://redis", &u, &error), 0);
    assert_int_equal(u.port, 6379);
    sl_redis_url_free(&u);
    assert_int_equal(sl_redis_url_parse("redis://[::1]:7000/", &u, &error), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    sl_redis_url_free(&u);
    assert_int_equal(sl_redis_url_parse("unix:/run/redis/redis.sock", &u, &error), 0);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_null(u.host);
    sl_redis_url_free(&u);
    assert_int_equal(sl_redis_url_parse("unix:///run/r.sock?db=3", &u, &error), 0);
    assert_string_equal(u.path, "/run/r.sock");
    assert_int_equal(u.db, 3);
    sl_redis_url_free(&u);
    for (size_t i = 0; i < SL_N_ELEMENTS(bad); i++) {
        if (sl_redis_url_parse(bad[i], &u, &error) == 0)
            fail_msg("accepted bad redis.url \"%s\"", bad[i]);
        assert_non_null(error);
        free(error);
        error = NULL;
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_fair_share),
        cmocka_unit_test(test_trickle_not_starved),
        cmocka_unit_test(test_resubmitted_job_kept_once),
        cmocka_unit_test(test_duplicate_verdict_dropped),
        cmocka_unit_test(test_all_brokers_down_waits),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_tcp_oversize_part_dropped),
    };

    sl_log_open("test_cluster", SL_LOG_STDERR, LOG_NOTICE);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
