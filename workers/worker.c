/* worker.c - the scanner worker pool (worker.h).
 *
 * Each thread owns one DEALER socket per broker endpoint (a "connection").
 * One DEALER connected to several brokers would round-robin its sends, so a
 * Verdict could reach a broker that never saw the job and heartbeats could
 * not tell which broker is alive; per-broker sockets keep MDP's one worker
 * = one broker relation (docs/protocol-wire.md, "Several brokers").
 *
 * Per connection: Ready{slots=1} once, then every Verdict frees the slot
 * again on the broker's side. Heartbeat every SL_WIRE_HEARTBEAT_MS; a broker
 * silent for SL_WIRE_HEARTBEAT_LIVENESS intervals (or one that says
 * Disconnect) gets a fresh socket and a new Ready.
 *
 * A job runs to completion on the thread; anything slow inside a job must
 * call worker_keepalive() so the brokers do not take the worker for dead
 * (today only the test delay is slow). */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mime_check.h"
#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "sluice.pb-c.h"
#include "util/sl_config.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define WORKER_POLL_MS 100          /* how quickly a thread notices worker_pool_stop() */
#define WORKER_MAX_DELAY_MS 600000  /* SLUICE_TEST_WORKER_DELAY_MS cap */

struct wconn {
    void *sock;                     /* DEALER, owned; NULL while it cannot be opened */
    const char *endpoint;           /* the pool's string */
    unsigned long long expiry_ms;   /* broker presumed dead when passed (monotonic) */
    unsigned long long next_heartbeat_ms;
};

struct wthread {
    struct worker_pool *pool;
    char id[SL_WIRE_MAX_WORKER_ID]; /* "host:pid:p<pool>w<n>", Ready.worker_id and Verdict.worker */
    struct wconn *conns;            /* one per endpoint */
    pthread_t thread;
    bool started;
    unsigned long long n_jobs;
};

struct worker_pool {
    void *zctx;
    char **endpoints;
    size_t n_endpoints;
    size_t max_body;
    unsigned delay_ms;              /* SLUICE_TEST_WORKER_DELAY_MS */
    atomic_bool stop;
    struct wthread *threads;
    unsigned count;
};

static atomic_uint pool_serial;

/* ---- connections ------------------------------------------------------ */

static int
conn_send_simple(struct wthread *w, struct wconn *c, Sluice__Frame *frame)
{
    const char *error;

    if (c->sock == NULL)
        return -1;
    if (sl_zsock_send_frame(c->sock, frame, ZMQ_DONTWAIT, &error) < 0) {
        /* EAGAIN: the broker is not reading; liveness will decide */
        if (errno != EAGAIN)
            sl_warn("worker %s: send %s to %s: %s", w->id, sl_wire_kind_name(frame), c->endpoint,
                    error);
        return -1;
    }
    return 0;
}

static void
conn_send_ready(struct wthread *w, struct wconn *c)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ready ready = SLUICE__READY__INIT;

    ready.worker_id = w->id;
    ready.slots = 1;
    frame.kind_case = SLUICE__FRAME__KIND_READY;
    frame.ready = &ready;
    (void)conn_send_simple(w, c, &frame);
}

static void
conn_send_heartbeat(struct wthread *w, struct wconn *c)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;

    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    (void)conn_send_simple(w, c, &frame);
}

static void
conn_close(struct wthread *w, struct wconn *c, bool say_goodbye)
{
    if (c->sock == NULL)
        return;
    if (say_goodbye) {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        Sluice__Disconnect d = SLUICE__DISCONNECT__INIT;
        frame.kind_case = SLUICE__FRAME__KIND_DISCONNECT;
        frame.disconnect = &d;
        (void)conn_send_simple(w, c, &frame);
    }
    zmq_close(c->sock);
    c->sock = NULL;
}

/* Fresh socket, connect, Ready. -1 with *error_r (malloc'ed) if the
 * endpoint is unusable. */
static int
conn_open(struct wthread *w, struct wconn *c, char **error_r)
{
    unsigned long long now = sl_now_mono_ms();

    SL_BUG_ON(c->sock != NULL);
    c->sock = zmq_socket(w->pool->zctx, ZMQ_DEALER);
    if (c->sock == NULL) {
        *error_r = sl_asprintf("zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    /* A worker receives whole messages: cap them like the broker does. */
    sl_zsock_set_common(c->sock, w->pool->max_body);
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        *error_r = sl_asprintf("cannot connect to %s: %s", c->endpoint, zmq_strerror(errno));
        zmq_close(c->sock);
        c->sock = NULL;
        return -1;
    }
    c->expiry_ms = now + (unsigned long long)SL_WIRE_HEARTBEAT_MS * SL_WIRE_HEARTBEAT_LIVENESS;
    c->next_heartbeat_ms = now + SL_WIRE_HEARTBEAT_MS;
    conn_send_ready(w, c);
    return 0;
}

static void
conn_reopen(struct wthread *w, struct wconn *c, const char *why)
{
    char *error = NULL;

    sl_notice("worker %s: broker %s %s, reconnecting", w->id, c->endpoint, why);
    conn_close(w, c, false);
    if (conn_open(w, c, &error) < 0) {
        sl_error("worker %s: %s", w->id, error);
        free(error);
        /* retried at the next liveness check */
        c->expiry_ms = sl_now_mono_ms() + SL_WIRE_HEARTBEAT_MS;
    }
}

/* Heartbeats that are due, on every connection. Safe to call from inside
 * a job: the thread owns all its sockets. */
static void
worker_keepalive(struct wthread *w)
{
    unsigned long long now = sl_now_mono_ms();

    for (size_t i = 0; i < w->pool->n_endpoints; i++) {
        struct wconn *c = &w->conns[i];
        if (c->sock != NULL && now >= c->next_heartbeat_ms) {
            conn_send_heartbeat(w, c);
            c->next_heartbeat_ms = now + SL_WIRE_HEARTBEAT_MS;
        }
    }
}

/* ---- a job ------------------------------------------------------------ */

static const char *const wday_names[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* RFC 5322 3.3 date-time in local time, with the zone name as a comment
 * as amavisd-new writes it: "Tue, 21 Nov 2023 10:04:13 +0100 (CET)".
 * Day and month names are fixed, never the locale's. */
static void
rfc5322_date(unsigned long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    long off;
    char sign = '+';

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    if (off < 0) {
        sign = '-';
        off = -off;
    }
    snprintf(buf, len, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld", wday_names[tm.tm_wday % 7],
             tm.tm_mday, month_names[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, sign, off / 60, off % 60);
    if (tm.tm_zone != NULL && tm.tm_zone[0] != '\0' && strlen(buf) + strlen(tm.tm_zone) + 4 < len) {
        bool plain = true;
        for (const char *p = tm.tm_zone; *p != '\0'; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                  *p == '+' || *p == '-'))
                plain = false;
        if (plain) {
            strcat(buf, " (");
            strcat(buf, tm.tm_zone);
            strcat(buf, ")");
        }
    }
}

static const char *
or_unknown(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "unknown";
}

/* The filter hop's Received: value, amavisd-new style:
 *   from HELO ([ADDR]) by BY_HOST (sluice VERSION, port PORT) with PROTO
 *   id JOB_ID for <RCPT>; DATE
 * RFC 5321 4.4; an IPv6 literal is written [IPv6:...] (RFC 5321 4.1.3).
 * "for" only with exactly one recipient (more would disclose Bcc's). */
static char *
received_value(const Sluice__Job *job)
{
    char date[80];
    char *from_addr, *for_clause, *value;
    const char *addr = job->client_addr != NULL ? job->client_addr : "";

    rfc5322_date(job->received_ms != 0 ? job->received_ms : sl_now_wall_ms(), date, sizeof(date));
    if (addr[0] == '\0')
        from_addr = sl_strdup("");
    else if (strchr(addr, ':') != NULL && strncasecmp(addr, "IPv6:", 5) != 0)
        from_addr = sl_asprintf(" ([IPv6:%s])", addr);
    else
        from_addr = sl_asprintf(" ([%s])", addr);
    if (job->n_rcpts == 1)
        for_clause = sl_asprintf(" for <%s>", job->rcpts[0]->address);
    else
        for_clause = sl_strdup("");
    value = sl_asprintf("from %s%s by %s (sluice %s, port %u) with %s id %s%s; %s",
                        or_unknown(job->helo), from_addr, or_unknown(job->by_host), SLUICE_VERSION,
                        (unsigned)job->by_port, job->proto != NULL && job->proto[0] != '\0'
                                                    ? job->proto : "LMTP",
                        job->job_id, for_clause, date);
    free(from_addr);
    free(for_clause);
    return value;
}

/* Sleeps ms in short steps, heartbeating; stops early on pool stop. */
static void
worker_test_delay(struct wthread *w, unsigned ms)
{
    unsigned long long end = sl_now_mono_ms() + ms;

    while (!atomic_load(&w->pool->stop)) {
        unsigned long long now = sl_now_mono_ms();
        if (now >= end)
            break;
        unsigned long long step = end - now < 50 ? end - now : 50;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
        nanosleep(&ts, NULL);
        worker_keepalive(w);
    }
}

static void
send_verdict(struct wthread *w, struct wconn *c, Sluice__Verdict *v)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    const char *error;

    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = v;
    if (sl_zsock_send_frame(c->sock, &frame, ZMQ_DONTWAIT, &error) == 0)
        return;
    if (errno != EINVAL) {
        sl_error("%s: worker %s: cannot send verdict to %s: %s", v->job_id, w->id, c->endpoint,
                 error);
        return;
    }
    /* Our own verdict does not pass validation: an internal failure, so a
     * tempfail verdict without the offending fields. */
    sl_error("%s: worker %s: invalid verdict (%s), sending tempfail", v->job_id, w->id, error);
    Sluice__Verdict fail = SLUICE__VERDICT__INIT;
    fail.job_id = v->job_id;
    fail.ok = 0;
    fail.error = "internal error: worker built an invalid verdict";
    fail.worker = w->id;
    frame.verdict = &fail;
    if (sl_zsock_send_frame(c->sock, &frame, ZMQ_DONTWAIT, &error) < 0)
        sl_error("%s: worker %s: cannot send verdict: %s", v->job_id, w->id, error);
}

static void
process_job(struct wthread *w, struct wconn *c, const Sluice__Job *job, zmq_msg_t *body)
{
    unsigned long long start = sl_now_mono_ms();
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__HeaderEdit received = SLUICE__HEADER_EDIT__INIT;
    Sluice__HeaderEdit scanned = SLUICE__HEADER_EDIT__INIT;
    Sluice__HeaderEdit *edits[2] = { &received, &scanned };
    struct mime_info info;
    char *received_text, *scanned_text;

    v.job_id = job->job_id;
    v.worker = w->id;
    if (zmq_msg_size(body) != job->size) {
        sl_warn("%s: worker %s: body is %zu bytes, job says %llu", job->job_id, w->id,
                zmq_msg_size(body), (unsigned long long)job->size);
        v.ok = 0;
        v.error = "protocol error: body size does not match job";
        send_verdict(w, c, &v);
        return;
    }
    if (w->pool->delay_ms > 0)
        worker_test_delay(w, w->pool->delay_ms);

    if (mime_check(zmq_msg_data(body), zmq_msg_size(body), &info) < 0)
        sl_warn("%s: worker %s: MIME parsing failed (%zu bytes), passed as CLEAN", job->job_id,
                w->id, zmq_msg_size(body));
    else if (info.criticals > 0 || info.truncated_walk)
        sl_notice("%s: worker %s: MIME structure suspicious: %u critical issue(s), mask %#llx%s",
                  job->job_id, w->id, info.criticals, info.issue_mask,
                  info.truncated_walk ? ", walk truncated" : "");

    received_text = received_value(job);
    scanned_text = sl_asprintf("sluice at %s", or_unknown(job->by_host));
    received.op = SLUICE__HEADER_EDIT__OP__PREPEND;
    received.name = "Received";
    received.value = received_text;
    scanned.op = SLUICE__HEADER_EDIT__OP__APPEND;
    scanned.name = "X-Virus-Scanned";
    scanned.value = scanned_text;

    v.ok = 1;
    v.category = "CLEAN";
    v.message_id = info.message_id != NULL ? info.message_id : "";
    v.mime_parts = info.parts;
    v.n_edits = SL_N_ELEMENTS(edits);
    v.edits = edits;
    v.scan_ms = sl_now_mono_ms() - start;
    send_verdict(w, c, &v);
    w->n_jobs++;
    sl_debug("%s: worker %s: CLEAN, %u part(s), Message-ID <%s>, %llu ms, attempt %u",
             job->job_id, w->id, info.parts, v.message_id, (unsigned long long)v.scan_ms,
             (unsigned)job->attempt);
    free(received_text);
    free(scanned_text);
    mime_info_free(&info);
}

/* Receives and handles one message on c. false when nothing was waiting
 * or the socket was replaced (stop draining it). */
static bool
conn_recv_one(struct wthread *w, struct wconn *c)
{
    zmq_msg_t fmsg, body;
    Sluice__Frame *frame = NULL;
    const char *error;
    bool again = true;

    zmq_msg_init(&fmsg);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&fmsg, c->sock, ZMQ_DONTWAIT) < 0) {
        again = false;
        goto out;
    }
    /* any traffic proves the broker alive */
    c->expiry_ms =
        sl_now_mono_ms() + (unsigned long long)SL_WIRE_HEARTBEAT_MS * SL_WIRE_HEARTBEAT_LIVENESS;
    if (sl_wire_unpack_msg(&fmsg, &frame, &error) < 0) {
        sl_warn("worker %s: dropped a frame from %s: %s", w->id, c->endpoint, error);
        goto out;
    }
    switch (frame->kind_case) {
    case SLUICE__FRAME__KIND_JOB:
        if (!sl_zsock_more(c->sock) || zmq_msg_recv(&body, c->sock, ZMQ_DONTWAIT) < 0) {
            sl_warn("%s: worker %s: job without body frame dropped", frame->job->job_id, w->id);
            break;
        }
        if (sl_zsock_drain_more(c->sock) > 0) {
            sl_warn("%s: worker %s: job with extra frames dropped", frame->job->job_id, w->id);
            break;
        }
        process_job(w, c, frame->job, &body);
        break;
    case SLUICE__FRAME__KIND_HEARTBEAT:
        break;
    case SLUICE__FRAME__KIND_DISCONNECT:
        sl_zsock_drain_more(c->sock);
        conn_reopen(w, c, "sent disconnect");
        again = false;
        goto out;
    case SLUICE__FRAME__KIND_READY:
    case SLUICE__FRAME__KIND_VERDICT:
    case SLUICE__FRAME__KIND__NOT_SET:
    default:
        sl_warn("worker %s: unexpected %s frame from %s dropped", w->id, sl_wire_kind_name(frame),
                c->endpoint);
        break;
    }
    if (c->sock != NULL)
        sl_zsock_drain_more(c->sock);
out:
    sl_wire_frame_free(&frame);
    zmq_msg_close(&body);
    zmq_msg_close(&fmsg);
    return again;
}

static void *
worker_thread(void *arg)
{
    struct wthread *w = arg;
    struct worker_pool *pool = w->pool;
    size_t n = pool->n_endpoints;
    zmq_pollitem_t *items = sl_calloc(n, sizeof(*items));
    size_t *map = sl_calloc(n, sizeof(*map));     /* poll item -> connection */

    while (!atomic_load(&pool->stop)) {
        unsigned long long now = sl_now_mono_ms();
        long timeout = WORKER_POLL_MS;
        int nitems = 0;

        for (size_t i = 0; i < n; i++) {
            struct wconn *c = &w->conns[i];
            if (c->sock == NULL)
                continue;
            if (c->next_heartbeat_ms <= now)
                timeout = 0;
            else if ((long)(c->next_heartbeat_ms - now) < timeout)
                timeout = (long)(c->next_heartbeat_ms - now);
            items[nitems] = (zmq_pollitem_t){ .socket = c->sock, .events = ZMQ_POLLIN };
            map[nitems++] = i;
        }
        if (zmq_poll(items, nitems, timeout) < 0 && errno != EINTR) {
            sl_error("worker %s: zmq_poll: %s", w->id, zmq_strerror(errno));
            break;
        }
        for (int k = 0; k < nitems; k++)
            if (items[k].revents & ZMQ_POLLIN) {
                struct wconn *c = &w->conns[map[k]];
                while (c->sock != NULL && !atomic_load(&pool->stop) && conn_recv_one(w, c))
                    ;
            }
        worker_keepalive(w);
        now = sl_now_mono_ms();
        for (size_t i = 0; i < n; i++) {
            struct wconn *c = &w->conns[i];
            if (c->sock == NULL) {
                if (now >= c->expiry_ms)
                    conn_reopen(w, c, "unavailable");
                continue;
            }
            /* Messages that arrived while we were busy count as traffic:
             * read them before judging the broker. */
            if (now >= c->expiry_ms && !sl_zsock_readable(c->sock))
                conn_reopen(w, c, "silent for 3 heartbeats");
        }
    }
    for (size_t i = 0; i < n; i++)
        conn_close(w, &w->conns[i], true);
    free(items);
    free(map);
    sl_debug("worker %s: stopped after %llu job(s)", w->id, w->n_jobs);
    return NULL;
}

/* ---- API -------------------------------------------------------------- */

static unsigned
read_test_delay(void)
{
    const char *s = getenv("SLUICE_TEST_WORKER_DELAY_MS");
    char *end;
    unsigned long v;

    if (s == NULL || s[0] == '\0')
        return 0;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > WORKER_MAX_DELAY_MS) {
        sl_warn("workers: ignoring bad SLUICE_TEST_WORKER_DELAY_MS=%s", s);
        return 0;
    }
    if (v > 0)
        sl_notice("workers: test delay of %lu ms per job (SLUICE_TEST_WORKER_DELAY_MS)", v);
    return (unsigned)v;
}

struct worker_pool *
worker_pool_start(void *zctx, const struct sl_config *config, char *const *endpoints,
                  size_t n_endpoints, unsigned count, char **error_r)
{
    struct worker_pool *pool;
    char host[64];
    unsigned serial = atomic_fetch_add(&pool_serial, 1) + 1;

    SL_BUG_ON(zctx == NULL || config == NULL);
    if (n_endpoints == 0 || count == 0) {
        *error_r = sl_strdup("workers: need at least one broker endpoint and one worker");
        return NULL;
    }
    mime_check_init();
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';

    pool = sl_calloc(1, sizeof(*pool));
    pool->zctx = zctx;
    pool->n_endpoints = n_endpoints;
    pool->endpoints = sl_calloc(n_endpoints, sizeof(char *));
    for (size_t i = 0; i < n_endpoints; i++)
        pool->endpoints[i] = sl_strdup(endpoints[i]);
    pool->max_body = config->frontend.max_message_size;
    pool->delay_ms = read_test_delay();
    atomic_init(&pool->stop, false);
    pool->count = count;
    pool->threads = sl_calloc(count, sizeof(*pool->threads));

    for (unsigned t = 0; t < count; t++) {
        struct wthread *w = &pool->threads[t];
        w->pool = pool;
        snprintf(w->id, sizeof(w->id), "%s:%d:p%uw%u", host, (int)getpid(), serial, t);
        w->conns = sl_calloc(n_endpoints, sizeof(*w->conns));
        for (size_t i = 0; i < n_endpoints; i++) {
            char *error = NULL;
            w->conns[i].endpoint = pool->endpoints[i];
            if (conn_open(w, &w->conns[i], &error) < 0) {
                *error_r = sl_asprintf("workers: %s", error);
                free(error);
                worker_pool_stop(&pool);
                return NULL;
            }
        }
    }
    for (unsigned t = 0; t < count; t++) {
        struct wthread *w = &pool->threads[t];
        int ret = pthread_create(&w->thread, NULL, worker_thread, w);
        if (ret != 0) {
            *error_r = sl_asprintf("workers: pthread_create: %s", strerror(ret));
            worker_pool_stop(&pool);
            return NULL;
        }
        w->started = true;
    }
    sl_info("workers: %u worker(s) connected to %zu broker(s)", count, n_endpoints);
    return pool;
}

void
worker_pool_stop(struct worker_pool **poolp)
{
    struct worker_pool *pool = *poolp;

    if (pool == NULL)
        return;
    *poolp = NULL;
    atomic_store(&pool->stop, true);
    for (unsigned t = 0; t < pool->count; t++) {
        struct wthread *w = &pool->threads[t];
        if (w->started)
            pthread_join(w->thread, NULL);
        else if (w->conns != NULL)      /* start failed before this thread ran */
            for (size_t i = 0; i < pool->n_endpoints; i++)
                conn_close(w, &w->conns[i], true);
        free(w->conns);
    }
    for (size_t i = 0; i < pool->n_endpoints; i++)
        free(pool->endpoints[i]);
    free(pool->endpoints);
    free(pool->threads);
    free(pool);
}
