/* worker.c - the scanner worker pool (worker.h).
 *
 * Each thread owns one DEALER socket per broker endpoint (a "connection").
 * One DEALER connected to several brokers would round-robin its sends, so a
 * Verdict could reach a broker that never saw the job and heartbeats could
 * not tell which broker is alive; per-broker sockets keep MDP's one worker
 * = one broker relation (docs/protocol-wire.md, "Several brokers").
 *
 * Per connection: Ready{slots=1} once, then every Verdict frees the slot
 * again on the broker's side. The broker's heartbeats are answered (our
 * own go out only when it has not heard from us for a while); a broker
 * silent for SL_WIRE_WORKER_LIVENESS_MS (or one that says Disconnect)
 * gets a fresh socket and a new Ready. A reconnection libzmq made on its
 * own (a handshake after the first) is greeted with a heartbeat at once:
 * a broker restarted meanwhile does not know us and answers Disconnect,
 * and we register again without waiting for our next heartbeat.
 *
 * A job runs to completion on the thread; anything slow inside a job must
 * call worker_keepalive() so the brokers do not take the worker for dead.
 * Scanning runs the message's scanner calls (clamd, spamd,
 * rspamd) and the built-in checks concurrently on helper threads
 * (scan_parallel) while this thread keeps heartbeating; policy.c turns
 * the findings into per-recipient destinies and header edits.
 *
 * A job is scanned with the settings current when it arrives (struct
 * worker_settings: the configuration and its compiled patterns); a reload
 * (worker_pool_reconfigure) swaps in new ones for the next jobs while the
 * jobs in progress finish with theirs. The sockets keep the configuration
 * the pool started with: what they use (broker.*, security.*,
 * frontend.max_message_size) changes only with a restart. */
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <magic.h>

#include "checks.h"
#include "mime_check.h"
#include "policy.h"
#include "scan.h"
#include "worker_lookup.h"
#include "worker_metrics.h"
#include "conf/sl_config.h"
#include "mail/sl_message.h"
#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "sluice.pb-c.h"
#include "util/sl_buf.h"
#include "util/sl_id.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define WORKER_POLL_MS 100          /* how quickly a thread notices worker_pool_stop() */
#define WORKER_MAX_DELAY_MS 600000  /* SLUICE_TEST_WORKER_DELAY_MS cap */
#define WORKER_INLINE_CHECKS_MAX ((size_t)256 * 1024) /* checks alone on this thread up to */

struct wconn {
    void *sock;                     /* DEALER, owned; NULL while it cannot be opened */
    void *mon;                      /* its handshakes (sl_zsock_monitor_open); NULL: none */
    unsigned handshakes;            /* since it was opened: all but the first are reconnects */
    const char *endpoint;           /* the pool's string */
    unsigned long long expiry_ms;   /* broker presumed dead when passed (monotonic) */
    unsigned long long sent_ms;     /* our latest message to it (monotonic) */
    unsigned long long down_since_ms; /* first reconnect of this outage; 0 while answering */
    unsigned long long next_down_log_ms; /* reconnects are logged once a minute, not each */
};

#define WORKER_DOWN_LOG_MS 60000

struct wthread {
    struct worker_pool *pool;
    /* "host:pid:p<pool>w<n>:<life>", Ready.worker_id and Verdict.worker;
     * <life> is random per pool, so a worker restarted with the same pid
     * (a container restarted in its pod) has a new name: a broker tells a
     * worker that comes back from one that was replaced by its name. */
    char id[SL_WIRE_MAX_WORKER_ID];
    struct wconn *conns;            /* one per endpoint */
    unsigned long long turn_ms;     /* monotonic, its latest turn (worker_keepalive) */
    pthread_t thread;
    bool started;
    unsigned long long n_jobs;
    magic_t magic;                  /* libmagic is not thread-safe: one per worker */
    struct scan_helpers *helpers;   /* this thread's scanner threads, reused */
    struct sl_lookup_session *lookup; /* its connection to lookup.sql / ldap; NULL: none */
};

/* policy.banned_names_re compiled once per distinct list (the policy's and
 * each bank's), shared read-only by all threads. */
struct compiled_re {
    char *const *list;              /* the config's array: the lookup key */
    size_t n;
    pcre2_code **res;
};

/* What jobs are scanned with; a job holds a reference from its start to
 * its verdict. Changed by nobody once made. */
struct worker_settings {
    atomic_uint refs;
    struct sl_config *config; /* a reference */
    struct compiled_re *res;
    size_t n_res;
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
    struct sl_config *config;         /* the pool's start (a reference): the sockets' */
    pthread_mutex_t settings_lock;    /* guards settings: taking a reference, swapping */
    struct worker_settings *settings; /* the current ones */
    struct sl_lookup *lookup;         /* lookup.*, its cache shared by the threads; NULL: none */
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
    c->sent_ms = sl_now_mono_ms();
    return 0;
}

static void
conn_send_ready(struct wthread *w, struct wconn *c)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ready ready = SLUICE__READY__INIT;

    ready.worker_id = w->id;
    ready.slots = 1;
    ready.idle_heartbeat_ms = SL_WIRE_WORKER_HEARTBEAT_MS;
    ready.body_pieces = 1;
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
    c->sent_ms = sl_now_mono_ms(); /* sent or not (EAGAIN), the next try an interval on */
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
    sl_zsock_monitor_close(c->sock, &c->mon);
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
    sl_zsock_set_hub(c->sock);
    const char *error;
    if (sl_zsock_set_curve(c->sock, w->pool->config, c->endpoint, false, &error) < 0) {
        *error_r = sl_asprintf("CURVE for %s: %s", c->endpoint, error);
        zmq_close(c->sock);
        c->sock = NULL;
        return -1;
    }
    /* before the connect: the first handshake must be counted */
    c->mon = sl_zsock_monitor_open(w->pool->zctx, c->sock, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    c->handshakes = 0;
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        *error_r = sl_asprintf("cannot connect to %s: %s", c->endpoint, zmq_strerror(errno));
        sl_zsock_monitor_close(c->sock, &c->mon);
        zmq_close(c->sock);
        c->sock = NULL;
        return -1;
    }
    c->expiry_ms = now + SL_WIRE_WORKER_LIVENESS_MS;
    c->sent_ms = now;
    conn_send_ready(w, c);
    return 0;
}

static void
conn_reopen(struct wthread *w, struct wconn *c, const char *why)
{
    char *error = NULL;
    unsigned long long now = sl_now_mono_ms();

    /* Every 3 s per thread while a broker is away would bury the log:
     * the first reconnect of an outage, then one line a minute. */
    if (c->down_since_ms == 0) {
        c->down_since_ms = now;
        c->next_down_log_ms = now + WORKER_DOWN_LOG_MS;
        sl_notice("worker %s: broker %s %s, reconnecting", w->id, c->endpoint, why);
    } else if (now >= c->next_down_log_ms) {
        c->next_down_log_ms = now + WORKER_DOWN_LOG_MS;
        sl_notice("worker %s: broker %s still %s after %llu s, reconnecting", w->id,
                  c->endpoint, why, (now - c->down_since_ms) / 1000);
    } else {
        sl_debug("worker %s: broker %s %s, reconnecting", w->id, c->endpoint, why);
    }
    conn_close(w, c, false);
    if (conn_open(w, c, &error) < 0) {
        sl_error("worker %s: %s", w->id, error);
        free(error);
        /* retried at the next liveness check */
        c->expiry_ms = sl_now_mono_ms() + SL_WIRE_HEARTBEAT_MS;
    }
}

/* Heartbeats of our own that are due, on every connection: after ivl
 * without a send (SL_WIRE_HEARTBEAT_IDLE_MS idle, when the broker's
 * heartbeats are answered as they come; SL_WIRE_HEARTBEAT_MS in a scan,
 * when they wait unread). Safe to call from inside a job: the thread owns
 * all its sockets. Called at every turn of the loop and every 100 ms of a
 * scan: calls further apart than SL_WIRE_STALL_MS mean the process was
 * stalled (SIGSTOP, a VM migration), and the brokers, which this thread
 * could not hear meanwhile, get a fresh liveness period before their
 * silence is judged. */
static void
worker_beat(struct wthread *w, unsigned long long ivl)
{
    unsigned long long now = sl_now_mono_ms();
    unsigned long long grace = SL_WIRE_WORKER_LIVENESS_MS;
    unsigned long long stalled = sl_wire_stalled(&w->turn_ms, now);

    if (stalled != 0) {
        sl_notice("worker %s: this thread was stalled for %llu ms (paused?); brokers get %llu ms "
                  "before their silence is judged",
                  w->id, stalled, grace);
        for (size_t i = 0; i < w->pool->n_endpoints; i++)
            if (w->conns[i].expiry_ms < now + grace)
                w->conns[i].expiry_ms = now + grace;
    }
    for (size_t i = 0; i < w->pool->n_endpoints; i++) {
        struct wconn *c = &w->conns[i];
        if (c->sock != NULL && now >= c->sent_ms + ivl)
            conn_send_heartbeat(w, c);
    }
}

static void
worker_keepalive(struct wthread *w)
{
    worker_beat(w, SL_WIRE_HEARTBEAT_MS);
}

/* ---- a job ------------------------------------------------------------ */


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
    const char *addr = job->client_addr != NULL ? job->client_addr : "";
    const char *addr_open = " ([";
    bool for_one = job->n_rcpts == 1;
    char *value;

    if (addr[0] == '\0')
        addr_open = "";
    else if (strchr(addr, ':') != NULL && strncasecmp(addr, "IPv6:", 5) != 0)
        addr_open = " ([IPv6:";
    sl_rfc5322_date(job->received_ms != 0 ? job->received_ms : sl_now_wall_ms(), date,
                    sizeof(date));
    /* one formatting call a message: this runs for every message */
    value = sl_asprintf("from %s%s%s%s by %s (sluice %s, port %u) with %s id %s%s%s%s; %s",
                        or_unknown(job->helo), addr_open, addr, addr[0] != '\0' ? "])" : "",
                        or_unknown(job->by_host), SLUICE_VERSION, (unsigned)job->by_port,
                        job->proto != NULL && job->proto[0] != '\0' ? job->proto : "LMTP",
                        job->job_id, for_one ? " for <" : "", for_one ? job->rcpts[0]->address : "",
                        for_one ? ">" : "", date);
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
    if (sl_zsock_send_frame(c->sock, &frame, ZMQ_DONTWAIT, &error) == 0) {
        c->sent_ms = sl_now_mono_ms();
        return;
    }
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

/* ---- scanning --------------------------------------------------------- */

/* One message's scan: inputs, the view of the policy, and every result. */
struct job_scan {
    struct wthread *w;
    const struct sl_config *config;
    struct scan_input in;
    struct policy_view view;
    struct check_ctx cctx;
    struct scan_result clamd, spamd, rspamd;
    struct check_findings findings;
};

static void
task_clamd(void *arg)
{
    struct job_scan *js = arg;
    scan_clamd(&js->config->scanners.clamd, &js->in, &js->clamd);
}

static void
task_spamd(void *arg)
{
    struct job_scan *js = arg;
    scan_spamd(&js->config->scanners.spamd, &js->in, &js->spamd);
}

static void
task_rspamd(void *arg)
{
    struct job_scan *js = arg;
    scan_rspamd(&js->config->scanners.rspamd, &js->in, &js->rspamd);
}

static void
task_checks(void *arg)
{
    struct job_scan *js = arg;
    unsigned long long start = worker_metrics_now();
    checks_run(&js->cctx, js->in.data, js->in.len, &js->findings);
    worker_metrics_checks(start);
}

static void
keepalive_cb(void *ctx)
{
    worker_keepalive(ctx);
}

static const struct compiled_re *
compiled_for(const struct worker_settings *ws, char *const *list)
{
    for (size_t i = 0; i < ws->n_res; i++)
        if (ws->res[i].list == list)
            return &ws->res[i];
    return NULL;
}

static bool
usable_str(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Collected findings, as lists the policy and the verdict point into. */
struct facts_store {
    struct policy_facts pf;
    char **unchecked;
    size_t n_unchecked;
    char **tests;
    size_t n_tests;
};

static void
strv_push(char ***v, size_t *n, char *owned)
{
    *v = sl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = owned;
}

static void
facts_store_free(struct facts_store *fs)
{
    for (size_t i = 0; i < fs->n_unchecked; i++)
        free(fs->unchecked[i]);
    free(fs->unchecked);
    for (size_t i = 0; i < fs->n_tests; i++)
        free(fs->tests[i]);
    free(fs->tests);
}

/* A failed scanner is never silent: it makes the message UNCHECKED, or
 * with on_failure "pass" the message goes on unscanned, with a log line. */
static void
note_failure(const Sluice__Job *job, const struct sl_scanner_config *cfg,
             const struct scan_result *r, struct facts_store *fs)
{
    if (r->status != SCAN_FAILED)
        return;
    if (cfg->on_failure != NULL && strcmp(cfg->on_failure, "pass") == 0) {
        sl_warn("%s: %s failed on every server (%s); passing the message without it "
                "(scanners.%s.on_failure: pass)",
                job->job_id, r->scanner, r->error, r->scanner);
        return;
    }
    sl_warn("%s: %s failed on every server (%s): message is UNCHECKED", job->job_id, r->scanner,
            r->error);
    fs->pf.unchecked = POLICY_UNCHECKED_FAILED;
    strv_push(&fs->unchecked, &fs->n_unchecked,
              sl_asprintf("%s failed: %s", r->scanner, r->error != NULL ? r->error : "?"));
}

static void
note_unchecked(enum policy_unchecked u, const char *reason, struct facts_store *fs)
{
    if (u > fs->pf.unchecked)
        fs->pf.unchecked = u;
    strv_push(&fs->unchecked, &fs->n_unchecked, sl_strdup(reason));
}

static void
gather_facts(const Sluice__Job *job, struct job_scan *js, struct facts_store *fs)
{
    const struct sl_config *cfg = js->config;
    struct check_findings *f = &js->findings;

    memset(fs, 0, sizeof(*fs));
    note_failure(job, &cfg->scanners.clamd, &js->clamd, fs);
    note_failure(job, &cfg->scanners.spamd, &js->spamd, fs);
    note_failure(job, &cfg->scanners.rspamd, &js->rspamd, fs);
    if (js->clamd.status == SCAN_OK && js->clamd.unchecked == SCAN_UNCHECKED_OVERLIMIT)
        note_unchecked(POLICY_UNCHECKED_OVERLIMIT, js->clamd.unchecked_reason, fs);
    if (js->clamd.status == SCAN_OK && js->clamd.unchecked == SCAN_UNCHECKED_ENCRYPTED)
        note_unchecked(POLICY_UNCHECKED_ENCRYPTED, js->clamd.unchecked_reason, fs);
    for (size_t i = 0; i < f->n_overlimit; i++)
        note_unchecked(POLICY_UNCHECKED_OVERLIMIT, f->overlimit[i], fs);
    for (size_t i = 0; i < f->n_encrypted; i++) {
        char *r = sl_asprintf("encrypted: %s", f->encrypted[i]);
        note_unchecked(POLICY_UNCHECKED_ENCRYPTED, r, fs);
        free(r);
    }
    fs->pf.unchecked_reasons = fs->unchecked;
    fs->pf.n_unchecked_reasons = fs->n_unchecked;
    fs->pf.viruses = js->clamd.viruses;
    fs->pf.n_viruses = js->clamd.n_viruses;
    fs->pf.banned = f->banned;
    fs->pf.n_banned = f->n_banned;
    fs->pf.bad_headers = f->bad_headers;
    fs->pf.n_bad_headers = f->n_bad_headers;
    fs->pf.size = js->in.len;
    /* spam: the scores of the scanners that answered add up (amavis does
     * the same with several spam scanners); tests are listed together */
    const struct scan_result *spam[] = { &js->spamd, &js->rspamd };
    for (size_t k = 0; k < SL_N_ELEMENTS(spam); k++) {
        if (spam[k]->status != SCAN_OK || !spam[k]->spam_scanned)
            continue;
        fs->pf.spam_scanned = true;
        fs->pf.spam_score += spam[k]->score;
        for (size_t i = 0; i < spam[k]->n_tests; i++)
            strv_push(&fs->tests, &fs->n_tests, sl_strdup(spam[k]->tests[i]));
        if (spam[k]->truncated)
            sl_info("%s: %s scanned the first %zu bytes of %zu (scanners.%s.max_size)",
                    job->job_id, spam[k]->scanner,
                    k == 0 ? cfg->scanners.spamd.max_size : cfg->scanners.rspamd.max_size,
                    js->in.len, spam[k]->scanner);
    }
    fs->pf.spam_tests = fs->tests;
    fs->pf.n_spam_tests = fs->n_tests;
}

/* Runs the scanners and checks the view asks for, concurrently. */
static void
scan_message(struct wthread *w, const struct worker_settings *ws, const Sluice__Job *job,
             const char *data, size_t len, const struct job_lookups *jl, struct job_scan *js)
{
    const struct sl_config *cfg = ws->config;
    const Sluice__Xforward *xf = job->xforward;
    struct scan_task tasks[SCAN_MAX_TASKS];
    size_t n = 0;
    unsigned long long now_wall = sl_now_wall_ms();
    const char **rcpts = sl_calloc(job->n_rcpts, sizeof(*rcpts));

    for (size_t i = 0; i < job->n_rcpts; i++)
        rcpts[i] = job->rcpts[i]->address;
    memset(js, 0, sizeof(*js));
    js->w = w;
    js->config = cfg;
    policy_select(cfg, job->origin, job->by_port, xf != NULL ? xf->addr : NULL, &js->view);
    js->in = (struct scan_input){
        .job_id = job->job_id,
        .data = data,
        .len = len,
        .client_addr = xf != NULL ? xf->addr : NULL,
        .client_name = xf != NULL ? xf->name : NULL,
        .helo = xf != NULL ? xf->helo : NULL,
        .mail_from = job->mail_from,
        .queue_id = xf != NULL && usable_str(xf->ident) ? xf->ident : job->job_id,
        .rcpts = rcpts,
        .n_rcpts = job->n_rcpts,
        /* the frontend's deadline (wall clock) on our monotonic clock */
        .deadline_ms = job->deadline_ms > now_wall
                           ? sl_now_mono_ms() + (job->deadline_ms - now_wall)
                           : sl_now_mono_ms() + 1000,
    };
    const struct compiled_re *cre = compiled_for(ws, js->view.p.banned_names_re);
    js->cctx = (struct check_ctx){
        .p = &js->view.p,
        .res = cre != NULL ? cre->res : NULL,
        .n_res = cre != NULL ? cre->n : 0,
        .magic = w->magic,
        .banned = !js->view.p.bypass_banned_checks,
        .headers = !js->view.p.bypass_header_checks,
        .smtputf8 = job->smtputf8,
        .deadline_ms = js->in.deadline_ms,
    };
    /* a scanner runs unless every recipient's policy bypasses it */
    bool no_virus = job_lookups_all(jl, SL_LF_BYPASS_VIRUS_CHECKS, js->view.p.bypass_virus_checks);
    bool no_spam = job_lookups_all(jl, SL_LF_BYPASS_SPAM_CHECKS, js->view.p.bypass_spam_checks);
    js->cctx.banned = !job_lookups_all(jl, SL_LF_BYPASS_BANNED_CHECKS,
                                       js->view.p.bypass_banned_checks);
    js->cctx.headers = !job_lookups_all(jl, SL_LF_BYPASS_HEADER_CHECKS,
                                        js->view.p.bypass_header_checks);
    tasks[n++] = (struct scan_task){ task_checks, js };
    if (!no_virus && cfg->scanners.clamd.n_servers > 0)
        tasks[n++] = (struct scan_task){ task_clamd, js };
    if (!no_spam && cfg->scanners.spamd.n_servers > 0)
        tasks[n++] = (struct scan_task){ task_spamd, js };
    if (!no_spam && cfg->scanners.rspamd.n_servers > 0)
        tasks[n++] = (struct scan_task){ task_rspamd, js };
    /* The built-in checks alone, on a message this small, take far less than
     * a heartbeat interval: run here, without the hand-off to a helper and
     * back (two wake-ups and two context switches a message). */
    if (n == 1 && len <= WORKER_INLINE_CHECKS_MAX)
        task_checks(js);
    else
        scan_parallel(w->helpers, tasks, n, keepalive_cb, w);
    worker_metrics_scan(&js->clamd);
    worker_metrics_scan(&js->spamd);
    worker_metrics_scan(&js->rspamd);
    js->in.rcpts = NULL;
    free(rcpts);
}

static void
job_scan_free(struct job_scan *js)
{
    scan_result_free(&js->clamd);
    scan_result_free(&js->spamd);
    scan_result_free(&js->rspamd);
    checks_findings_free(&js->findings);
}

/* Wire edits pointing into the policy's (no copies). */
static Sluice__HeaderEdit **
wire_edits(const struct policy_edit *e, size_t n, Sluice__HeaderEdit *store)
{
    Sluice__HeaderEdit **v = sl_calloc(n > 0 ? n : 1, sizeof(*v));

    for (size_t i = 0; i < n; i++) {
        sluice__header_edit__init(&store[i]);
        store[i].op = sl_wire_header_op_from_mail(e[i].op);
        store[i].name = e[i].name;
        store[i].value = e[i].value;
        v[i] = &store[i];
    }
    return v;
}

/* ---- settings --------------------------------------------------------- */

static struct worker_settings *
settings_new(const struct sl_config *config)
{
    struct worker_settings *ws = sl_calloc(1, sizeof(*ws));

    atomic_init(&ws->refs, 1);
    ws->config = sl_config_ref(config);
    /* banned_names_re: the policy's list and every bank's own */
    ws->res = sl_calloc(1 + config->n_banks, sizeof(*ws->res));
    ws->res[ws->n_res++] = (struct compiled_re){
        config->policy.banned_names_re, config->policy.n_banned_names_re,
        banned_compile(config->policy.banned_names_re, config->policy.n_banned_names_re)};
    for (size_t i = 0; i < config->n_banks; i++) {
        const struct sl_policy_bank *b = &config->banks[i];
        if (b->p.n_banned_names_re > 0)
            ws->res[ws->n_res++] =
                (struct compiled_re){b->p.banned_names_re, b->p.n_banned_names_re,
                                     banned_compile(b->p.banned_names_re, b->p.n_banned_names_re)};
    }
    return ws;
}

static void
settings_unref(struct worker_settings **wsp)
{
    struct worker_settings *ws = *wsp;

    if (ws == NULL)
        return;
    *wsp = NULL;
    if (atomic_fetch_sub_explicit(&ws->refs, 1, memory_order_acq_rel) > 1)
        return;
    for (size_t i = 0; i < ws->n_res; i++)
        banned_free_compiled(ws->res[i].res, ws->res[i].n);
    free(ws->res);
    sl_config_unref(&ws->config);
    free(ws);
}

/* The current settings, with a reference for the caller. The lock makes
 * taking the reference and a reload's swap (which drops the pool's) one
 * step each: a reference is never taken on settings already freed. */
static struct worker_settings *
settings_get(struct worker_pool *pool)
{
    pthread_mutex_lock(&pool->settings_lock);
    struct worker_settings *ws = pool->settings;
    atomic_fetch_add_explicit(&ws->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->settings_lock);
    return ws;
}

static void
scanner_describe(struct sl_buf *b, const char *name, const struct sl_scanner_config *sc)
{
    if (sc->n_servers == 0)
        return;
    sl_buf_printf(b, "%s%s at ", b->len > 0 ? ", " : "", name);
    for (size_t i = 0; i < sc->n_servers; i++)
        sl_buf_printf(b, "%s%s", i > 0 ? " then " : "", sc->servers[i]);
}

/* Which scanners the jobs use, said at start and when a reload changes
 * them: a node without any scans for nothing but the built-in checks, and
 * that must not pass unnoticed. */
static void
log_scanners(const struct sl_config *c)
{
    struct sl_buf b;

    sl_buf_init(&b);
    scanner_describe(&b, "clamd", &c->scanners.clamd);
    scanner_describe(&b, "spamd", &c->scanners.spamd);
    scanner_describe(&b, "rspamd", &c->scanners.rspamd);
    if (b.len == 0)
        sl_warn("workers: no virus or spam scanner configured (scanners.clamd, .spamd, "
                ".rspamd): messages are only checked by the built-in checks (banned files, "
                "headers)");
    else
        sl_info("workers: scanners: %s", b.data);
    if (b.len > 0 && c->scanners.clamd.n_servers == 0)
        sl_notice("workers: no virus scanner configured (scanners.clamd.servers): messages "
                  "are not checked for viruses and get no X-Virus-Scanned header");
    sl_buf_free(&b);
}

static bool
scanners_equal(const struct sl_scanner_config *a, const struct sl_scanner_config *b)
{
    if (a->n_servers != b->n_servers)
        return false;
    for (size_t i = 0; i < a->n_servers; i++)
        if (strcmp(a->servers[i], b->servers[i]) != 0)
            return false;
    return true;
}

/* Did clamd look at the message? Only then does it get X-Virus-Scanned:
 * not without a virus scanner, nor when clamd was bypassed, failed (with
 * on_failure: pass), or did not get the message (above its max_size). */
static bool
virus_scanned(const struct scan_result *clamd)
{
    return clamd->status == SCAN_OK && clamd->unchecked != SCAN_UNCHECKED_OVERLIMIT;
}

/* One recipient's part of the Verdict; its edits are stored in *store_r
 * (freed by the caller), the strings are r's. */
static void
rcpt_verdict_fill(Sluice__RecipientVerdict *rv, uint32_t index, const struct policy_rcpt *r,
                  Sluice__HeaderEdit **store_r)
{
    sluice__recipient_verdict__init(rv);
    rv->index = index;
    rv->destiny = (Sluice__Destiny)r->destiny;
    rv->category = r->category;
    rv->reason = r->reason;
    rv->tagged = r->tagged;
    rv->dsn_suppressed = r->dsn_suppressed;
    rv->remote = r->remote;
    rv->quarantine = (char *)(r->quarantine != NULL ? r->quarantine : "");
    rv->admin = (char *)(r->admin != NULL ? r->admin : "");
    rv->warn = r->warn;
    *store_r = sl_calloc(r->n_edits > 0 ? r->n_edits : 1, sizeof(**store_r));
    rv->edits = wire_edits(r->edits, r->n_edits, *store_r);
    rv->n_edits = r->n_edits;
}

/* The scan's findings for the frontend's log and the quarantine; the
 * strings stay js's and fs's. */
static void
wire_facts_fill(Sluice__ScanFacts *wf, const struct job_scan *js, const struct facts_store *fs)
{
    wf->spam_scanned = fs->pf.spam_scanned;
    wf->spam_score = fs->pf.spam_score;
    wf->spam_tests = fs->tests;
    wf->n_spam_tests = fs->n_tests < SL_WIRE_MAX_FACTS ? fs->n_tests : SL_WIRE_MAX_FACTS;
    wf->virus_names = js->clamd.viruses;
    wf->n_virus_names = js->clamd.n_viruses;
    wf->banned = js->findings.banned;
    wf->n_banned = js->findings.n_banned;
    wf->bad_headers = js->findings.bad_headers;
    wf->n_bad_headers = js->findings.n_bad_headers;
    wf->unchecked = fs->unchecked;
    wf->n_unchecked = fs->n_unchecked;
    wf->rspamd_action = js->rspamd.action != NULL ? js->rspamd.action : "";
}

static void
process_job(struct wthread *w, struct wconn *c, const Sluice__Job *job, zmq_msg_t *body)
{
    unsigned long long start = sl_now_mono_ms();
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__ScanFacts wf = SLUICE__SCAN_FACTS__INIT;
    Sluice__HeaderEdit received = SLUICE__HEADER_EDIT__INIT;
    Sluice__HeaderEdit scanned = SLUICE__HEADER_EDIT__INIT;
    const char *data = zmq_msg_data(body);
    size_t len = zmq_msg_size(body);
    struct job_scan js;
    struct facts_store fs;
    struct policy_result pr;
    struct worker_settings *ws;
    struct job_lookups jl;
    char *received_text, *scanned_text, *subject, *banks;

    v.job_id = job->job_id;
    v.worker = w->id;
    if (len != job->size) {
        sl_warn("%s: worker %s: body is %zu bytes, job says %llu", job->job_id, w->id, len,
                (unsigned long long)job->size);
        v.ok = 0;
        v.error = "protocol error: body size does not match job";
        send_verdict(w, c, &v);
        return;
    }
    ws = settings_get(w->pool); /* this job's, whatever a reload does meanwhile */
    if (w->pool->delay_ms > 0)
        worker_test_delay(w, w->pool->delay_ms);

    job_lookups_run(w->lookup, ws->config, job, data, len, &jl);
    scan_message(w, ws, job, data, len, &jl, &js);
    gather_facts(job, &js, &fs);
    subject = sl_message_header(data, len, "Subject");
    {
        const char **rcpts = sl_calloc(job->n_rcpts, sizeof(*rcpts));
        for (size_t i = 0; i < job->n_rcpts; i++)
            rcpts[i] = job->rcpts[i]->address;
        policy_decide_lookups(&js.view, &fs.pf, job->mail_from, rcpts, job->n_rcpts, subject,
                              jl.pl, &pr);
        free(rcpts);
    }
    free(subject);
    banks = job_lookups_banks(&jl, js.view.banks);

    /* Edits for everyone: our trace headers, then the policy's. */
    received_text = received_value(job);
    scanned_text = sl_asprintf("sluice at %s", or_unknown(job->by_host));
    received.op = SLUICE__HEADER_EDIT__OP__PREPEND;
    received.name = "Received";
    received.value = received_text;
    scanned.op = SLUICE__HEADER_EDIT__OP__APPEND;
    scanned.name = "X-Virus-Scanned";
    scanned.value = scanned_text;
    size_t n_trace = virus_scanned(&js.clamd) ? 2 : 1;
    size_t n_common = n_trace + pr.n_edits;
    Sluice__HeaderEdit *common_store = sl_calloc(pr.n_edits > 0 ? pr.n_edits : 1,
                                                 sizeof(*common_store));
    Sluice__HeaderEdit **common_pol = wire_edits(pr.edits, pr.n_edits, common_store);
    Sluice__HeaderEdit **edits = sl_calloc(n_common, sizeof(*edits));
    edits[0] = &received;
    if (n_trace == 2)
        edits[1] = &scanned;
    for (size_t i = 0; i < pr.n_edits; i++)
        edits[n_trace + i] = common_pol[i];

    /* Per recipient. */
    Sluice__RecipientVerdict *rv = sl_calloc(pr.n_rcpts > 0 ? pr.n_rcpts : 1, sizeof(*rv));
    Sluice__RecipientVerdict **rvp = sl_calloc(pr.n_rcpts > 0 ? pr.n_rcpts : 1, sizeof(*rvp));
    Sluice__HeaderEdit **rstores = sl_calloc(pr.n_rcpts > 0 ? pr.n_rcpts : 1, sizeof(*rstores));
    for (size_t i = 0; i < pr.n_rcpts; i++) {
        rcpt_verdict_fill(&rv[i], (uint32_t)i, &pr.rcpts[i], &rstores[i]);
        rvp[i] = &rv[i];
    }
    wire_facts_fill(&wf, &js, &fs);

    v.ok = 1;
    v.category = pr.category;
    v.message_id = js.findings.message_id != NULL ? js.findings.message_id : "";
    v.mime_parts = js.findings.parts;
    v.n_edits = n_common;
    v.edits = edits;
    v.n_rcpts = pr.n_rcpts;
    v.rcpts = rvp;
    v.facts = &wf;
    v.originating = js.view.originating;
    v.policy_bank = banks;
    v.scan_ms = sl_now_mono_ms() - start;
    send_verdict(w, c, &v);
    w->n_jobs++;
    {
        char score[32] = "-";
        if (fs.pf.spam_scanned)
            sl_format_score(fs.pf.spam_score, score, sizeof(score));
        sl_debug("%s: worker %s: %s, %u part(s), Message-ID <%s>, hits %s, clamd %llu ms, "
                 "spamd %llu ms, rspamd %llu ms, %llu ms, attempt %u",
                 job->job_id, w->id, pr.category, js.findings.parts, v.message_id, score,
                 js.clamd.ms, js.spamd.ms, js.rspamd.ms, (unsigned long long)v.scan_ms,
                 (unsigned)job->attempt);
    }
    for (size_t i = 0; i < pr.n_rcpts; i++) {
        free(rv[i].edits);
        free(rstores[i]);
    }
    free(rstores);
    free(rvp);
    free(rv);
    free(edits);
    free(common_pol);
    free(common_store);
    free(received_text);
    free(scanned_text);
    policy_result_free(&pr);
    free(banks);
    job_lookups_free(&jl); /* after the verdict: the policy points into it */
    facts_store_free(&fs);
    job_scan_free(&js);
    settings_unref(&ws);
}

/* Receives and handles one message on c. false when nothing was waiting
 * or the socket was replaced (stop draining it). */
static bool
conn_recv_one(struct wthread *w, struct wconn *c)
{
    zmq_msg_t fmsg, body;
    struct sl_wire_body pieces;
    Sluice__Frame *frame = NULL;
    const char *error;
    bool again = true;
    unsigned long long job_start;

    zmq_msg_init(&fmsg);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&fmsg, c->sock, ZMQ_DONTWAIT) < 0) {
        again = false;
        goto out;
    }
    /* any traffic proves the broker alive */
    worker_metrics_heard();
    c->expiry_ms = sl_now_mono_ms() + SL_WIRE_WORKER_LIVENESS_MS;
    if (c->down_since_ms != 0) {
        sl_notice("worker %s: broker %s answers again after %llu s", w->id, c->endpoint,
                  (sl_now_mono_ms() - c->down_since_ms) / 1000);
        c->down_since_ms = 0;
    }
    if (sl_wire_unpack_msg(&fmsg, &frame, &error) < 0) {
        sl_warn("worker %s: dropped a frame from %s: %s", w->id, c->endpoint, error);
        goto out;
    }
    switch (frame->kind_case) {
    case SLUICE__FRAME__KIND_JOB:
        if (sl_wire_body_recv(c->sock, frame->job->size, &pieces, &error) < 0) {
            sl_warn("%s: worker %s: %s, job dropped", frame->job->job_id, w->id, error);
            break;
        }
        /* one frame is used in place; pieces are joined, each freed once
         * copied (ZeroMQ hands over a message only whole) */
        zmq_msg_close(&body);
        if (sl_wire_body_join(&pieces, &body) < 0) {
            sl_error("%s: worker %s: no memory for a body of %llu bytes, job dropped",
                     frame->job->job_id, w->id, (unsigned long long)frame->job->size);
            sl_wire_body_close(&pieces);
            zmq_msg_init(&body);
            break;
        }
        /* after a quiet second, say at once that the job arrived: the
         * broker counts a worker's later silence against the message
         * only if it heard the worker since shortly before the hand-out
         * (docs/protocol-wire.md 5.3) */
        worker_keepalive(w);
        job_start = worker_metrics_job_start();
        process_job(w, c, frame->job, &body);
        worker_metrics_job_done(job_start);
        break;
    case SLUICE__FRAME__KIND_HEARTBEAT:
        /* answered at once: the broker sends a tenth of its workers'
         * heartbeats together, and their answers then reach it together
         * (docs/protocol-wire.md 5.1) */
        if (sl_now_mono_ms() >= c->sent_ms + SL_WIRE_HEARTBEAT_ANSWERED_MS)
            conn_send_heartbeat(w, c);
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

/* Handshakes on c since the last look: each one after the first is a
 * reconnection, and the broker may be a new one that does not know us. */
static void
conn_on_monitor(struct wthread *w, struct wconn *c)
{
    int event;
    bool reconnected = false;

    while (c->mon != NULL && (event = sl_zsock_monitor_event(c->mon)) != 0)
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && c->handshakes++ > 0)
            reconnected = true;
    if (reconnected && c->sock != NULL)
        conn_send_heartbeat(w, c);
}

/* What one poll(2) entry of worker_wait() stands for. */
struct wpoll {
    size_t conn; /* index in w->conns */
    bool mon;    /* the connection's monitor, not its socket */
    bool ready;  /* the socket had a message before we slept */
};

/* Waits up to timeout ms for w's sockets and monitors, and serves what
 * came. Not zmq_poll(): it polls once without waiting first and asks
 * every socket's ZMQ_EVENTS before and after, each a system call. Here a
 * socket is asked before sleeping (a send may have taken its ZMQ_FD's
 * signal), and read after waking only if it was ready or its descriptor
 * fired; a monitor, which nothing but conn_on_monitor() touches and which
 * that reads to the end, only if its descriptor fired. pfd and wp hold 2
 * entries per connection. -1 if poll(2) failed. */
static int
worker_wait(struct wthread *w, long timeout, struct pollfd *pfd, struct wpoll *wp)
{
    struct worker_pool *pool = w->pool;
    nfds_t nfds = 0;

    for (size_t i = 0; i < pool->n_endpoints; i++) {
        struct wconn *c = &w->conns[i];
        if (c->sock == NULL)
            continue;
        wp[nfds] = (struct wpoll){.conn = i, .ready = sl_zsock_readable(c->sock)};
        if (wp[nfds].ready)
            timeout = 0;
        pfd[nfds++] = (struct pollfd){.fd = sl_zsock_fd(c->sock), .events = POLLIN};
        if (c->mon != NULL) {
            wp[nfds] = (struct wpoll){.conn = i, .mon = true};
            pfd[nfds++] = (struct pollfd){.fd = sl_zsock_fd(c->mon), .events = POLLIN};
        }
    }
    if (poll(pfd, nfds, (int)timeout) < 0) {
        if (errno != EINTR)
            return -1;
        for (nfds_t k = 0; k < nfds; k++)
            pfd[k].revents = 0;
    }
    for (nfds_t k = 0; k < nfds; k++) {
        struct wconn *c = &w->conns[wp[k].conn];
        void *sock = c->sock;

        if (pfd[k].revents == 0 && !wp[k].ready)
            continue;
        if (wp[k].mon) {
            if (c->mon != NULL)
                conn_on_monitor(w, c);
            continue;
        }
        /* until it is empty; conn_recv_one may replace the socket */
        while (sock != NULL && c->sock == sock && !atomic_load(&pool->stop) && conn_recv_one(w, c))
            ;
    }
    return 0;
}

static void *
worker_thread(void *arg)
{
    struct wthread *w = arg;
    struct worker_pool *pool = w->pool;
    size_t n = pool->n_endpoints;
    /* each connection's socket, then its monitor if it has one */
    struct pollfd *pfd = sl_calloc(2 * n, sizeof(*pfd));
    struct wpoll *wp = sl_calloc(2 * n, sizeof(*wp));
    /* A broker that refuses our CURVE key looks exactly like a dead one
     * from here (libzmq retries the handshake silently): name both. */
    char *silent_why = pool->config->security.curve
                           ? sl_asprintf("silent for 3 heartbeats (down, or refusing this "
                                         "node's CURVE key id %.8s)",
                                         pool->config->security.public_key)
                           : sl_strdup("silent for 3 heartbeats");

    while (!atomic_load(&pool->stop)) {
        unsigned long long now = sl_now_mono_ms();
        long timeout = WORKER_POLL_MS;

        for (size_t i = 0; i < n; i++) {
            struct wconn *c = &w->conns[i];
            if (c->sock == NULL)
                continue;
            unsigned long long due = c->sent_ms + SL_WIRE_HEARTBEAT_IDLE_MS;
            if (due <= now)
                timeout = 0;
            else if ((long)(due - now) < timeout)
                timeout = (long)(due - now);
        }
        if (worker_wait(w, timeout, pfd, wp) < 0) {
            sl_error("worker %s: poll: %s", w->id, strerror(errno));
            break;
        }
        worker_beat(w, SL_WIRE_HEARTBEAT_IDLE_MS);
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
                conn_reopen(w, c, silent_why);
        }
    }
    for (size_t i = 0; i < n; i++)
        conn_close(w, &w->conns[i], true);
    free(silent_why);
    free(pfd);
    free(wp);
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
    char life[SL_ID_LEN + 1];

    SL_BUG_ON(zctx == NULL || config == NULL);
    if (n_endpoints == 0 || count == 0) {
        *error_r = sl_strdup("workers: need at least one broker endpoint and one worker");
        return NULL;
    }
    mime_check_init();
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    sl_id_new(life);

    pool = sl_calloc(1, sizeof(*pool));
    pool->zctx = zctx;
    pool->n_endpoints = n_endpoints;
    pool->endpoints = sl_calloc(n_endpoints, sizeof(char *));
    for (size_t i = 0; i < n_endpoints; i++)
        pool->endpoints[i] = sl_strdup(endpoints[i]);
    pool->max_body = config->frontend.max_message_size;
    pool->delay_ms = read_test_delay();
    pool->config = sl_config_ref(config);
    atomic_init(&pool->stop, false);
    pthread_mutex_init(&pool->settings_lock, NULL);
    pool->settings = settings_new(config);
    {
        char *error = NULL;
        pool->lookup = sl_lookup_new(config, &error);
        if (error != NULL) {
            *error_r = sl_asprintf("workers: %s", error);
            free(error);
            pool->count = 0;
            worker_pool_stop(&pool);
            return NULL;
        }
    }
    pool->count = count;
    pool->threads = sl_calloc(count, sizeof(*pool->threads));

    for (unsigned t = 0; t < count; t++) {
        struct wthread *w = &pool->threads[t];
        w->pool = pool;
        snprintf(w->id, sizeof(w->id), "%s:%d:p%uw%u:%.6s", host, (int)getpid(), serial, t, life);
        /* MIME types only; compressed files are reported as such (gzip),
         * the archive checks look inside themselves. The text, encoding,
         * token, JSON, CSV, CDF and ELF tests are skipped: the checks look
         * for executables and archives, and the text tests alone cost ~3 ms
         * per 4 KiB part (10x the rest; measured with file 5.44). */
        w->magic = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | MAGIC_NO_CHECK_TEXT |
                              MAGIC_NO_CHECK_ENCODING | MAGIC_NO_CHECK_TOKENS |
                              MAGIC_NO_CHECK_JSON | MAGIC_NO_CHECK_CSV | MAGIC_NO_CHECK_CDF |
                              MAGIC_NO_CHECK_ELF);
        if (w->magic != NULL && magic_load(w->magic, NULL) != 0) {
            sl_warn("workers: libmagic: %s; file types are not checked", magic_error(w->magic));
            magic_close(w->magic);
            w->magic = NULL;
        }
        w->helpers = scan_helpers_new();
        if (pool->lookup != NULL)
            w->lookup = sl_lookup_session_new(pool->lookup);
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
    if (pool->lookup != NULL)
        sl_info("workers: each recipient's policy from %s lookups (cached %u s, %u recipients)",
                sl_lookup_source(pool->lookup), config->lookup.cache_ttl_s,
                config->lookup.cache_size);
    log_scanners(config);
    return pool;
}

void
worker_pool_reconfigure(struct worker_pool *pool, const struct sl_config *config)
{
    struct worker_settings *next = settings_new(config), *old;

    pthread_mutex_lock(&pool->settings_lock);
    old = pool->settings;
    pool->settings = next;
    pthread_mutex_unlock(&pool->settings_lock);
    const struct sl_config *was = old->config;
    if (!scanners_equal(&was->scanners.clamd, &config->scanners.clamd) ||
        !scanners_equal(&was->scanners.spamd, &config->scanners.spamd) ||
        !scanners_equal(&was->scanners.rspamd, &config->scanners.rspamd))
        log_scanners(config);
    settings_unref(&old); /* freed when the last job scanning with it is done */
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
        if (w->magic != NULL)
            magic_close(w->magic);
        scan_helpers_destroy(&w->helpers);
        sl_lookup_session_destroy(&w->lookup);
    }
    sl_lookup_destroy(&pool->lookup);
    settings_unref(&pool->settings);
    pthread_mutex_destroy(&pool->settings_lock);
    sl_config_unref(&pool->config);
    for (size_t i = 0; i < pool->n_endpoints; i++)
        free(pool->endpoints[i]);
    free(pool->endpoints);
    free(pool->threads);
    free(pool);
}
