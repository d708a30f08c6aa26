/* frontend.c - the frontend role: listener, client ACL, origins and their
 * concurrency, the table of jobs waiting for a verdict.
 *
 * The protocol itself lives in session.c; this file only decides who may
 * talk to us and routes verdicts from the broker to the waiting session. */
#include "frontend.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "frontend_int.h"
#include "ledger.h"
#include "origin_match.h"
#include "net/sl_redis.h"
#include "net/sl_registry.h"
#include "util/sl_addr.h"
#include "util/sl_listen.h"
#include "util/sl_log.h"

struct fe_job_entry {
    char id[SL_ID_LEN + 1];
    struct session *session;
    struct fe_job_entry *next;
};

static size_t
job_hash(const struct frontend *fe, const char *id)
{
    /* ids are random already: a few bytes are as good as any hash */
    size_t h = 5381;
    for (const char *p = id; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h & (fe->jobs_size - 1);
}

void
frontend_job_register(struct frontend *fe, struct session *s, const char *job_id)
{
    struct fe_job_entry *e = sl_calloc(1, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", job_id);
    e->session = s;
    size_t h = job_hash(fe, job_id);
    e->next = fe->jobs[h];
    fe->jobs[h] = e;
    fe->n_jobs++;
}

void
frontend_job_unregister(struct frontend *fe, const char *job_id)
{
    for (struct fe_job_entry **pp = &fe->jobs[job_hash(fe, job_id)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, job_id) == 0) {
            struct fe_job_entry *e = *pp;
            *pp = e->next;
            free(e);
            fe->n_jobs--;
            /* the link holds the job for resubmission until now */
            fe_broker_link_forget(fe->link, job_id);
            return;
        }
    }
}

static void
frontend_on_verdict(void *ctx, const Sluice__Verdict *verdict)
{
    struct frontend *fe = ctx;
    const char *id = verdict->job_id;

    for (struct fe_job_entry *e = fe->jobs[job_hash(fe, id)]; e; e = e->next) {
        if (strcmp(e->id, id) == 0) {
            session_on_verdict(e->session, verdict);
            return;
        }
    }
    /* The session gave up (deadline, client gone) before the verdict came:
     * its recipients already got their 4xx, so the verdict must not be used. */
    sl_info("%s: verdict arrived after the job was abandoned; ignored", id);
}

/* Job.origin_concurrency: the brokers share workers among origins in
 * proportion to it (docs/cluster.md). */
static unsigned
frontend_origin_weight(void *ctx, const char *origin)
{
    const struct frontend *fe = ctx;
    for (size_t i = 0; i < fe->n_origins; i++)
        if (origin != NULL && strcmp(fe->origins[i].config->name, origin) == 0)
            return fe->origins[i].config->concurrency;
    return 1;
}

void
frontend_stats(const struct frontend *fe, struct frontend_stats *stats_r)
{
    memset(stats_r, 0, sizeof(*stats_r));
    stats_r->n_sessions = fe->n_sessions;
    stats_r->n_jobs = fe->n_jobs;
    stats_r->n_origins = fe->n_origins < FRONTEND_STATS_ORIGINS ? fe->n_origins
                                                                 : FRONTEND_STATS_ORIGINS;
    for (size_t i = 0; i < stats_r->n_origins; i++) {
        stats_r->origins[i].name = fe->origins[i].config->name;
        stats_r->origins[i].active = fe->origins[i].active;
        stats_r->origins[i].concurrency = fe->origins[i].config->concurrency;
    }
    if (fe->link != NULL)
        fe_broker_link_stats(fe->link, &stats_r->link);
}

struct fe_origin *
frontend_origin_for(struct frontend *fe, const char *ip)
{
    const struct sl_origin_config *oc = fe_origin_config_for(fe->config, ip);
    for (size_t i = 0; i < fe->n_origins; i++)
        if (fe->origins[i].config == oc)
            return &fe->origins[i];
    SL_BUG_ON("origin not in table");
    return NULL;
}

static void
frontend_on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                   int socklen, void *ctx)
{
    struct frontend *fe = ctx;
    (void)listener;
    (void)socklen;
    session_accept(fe, fd, sa);
}

#define FE_ACCEPT_PAUSE_MS 1000   /* retry accept() after running out of descriptors */

static void
frontend_listeners_enable(struct frontend *fe, bool enable)
{
    for (size_t i = 0; i < fe->n_listeners; i++) {
        if (enable)
            evconnlistener_enable(fe->listeners[i]);
        else
            evconnlistener_disable(fe->listeners[i]);
    }
}

static void
frontend_accept_resume(struct frontend *fe)
{
    if (!fe->accept_paused)
        return;
    fe->accept_paused = false;
    evtimer_del(fe->accept_timer);
    if (!fe->shutting_down)
        frontend_listeners_enable(fe, true);
}

static void
frontend_on_accept_timer(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd;
    (void)what;
    frontend_accept_resume(ctx);
}

/* Out of descriptors (EMFILE, ENFILE) or kernel memory: the connection
 * stays in the listen backlog and the socket stays readable, so libevent
 * would call accept() again at once, for ever, at 100% CPU while the
 * sessions we already have starve. Instead the listener pauses until a
 * session ends or FE_ACCEPT_PAUSE_MS pass; the waiting clients see a slow
 * connect, not a refusal (which Postfix would take for a dead filter). */
static void
frontend_on_accept_error(struct evconnlistener *listener, void *ctx)
{
    struct frontend *fe = ctx;
    int err = EVUTIL_SOCKET_ERROR();
    unsigned long long now = sl_now_mono_ms();
    bool resource = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;

    if (now - fe->accept_warned_ms >= 10000 || fe->accept_warned_ms == 0) {
        fe->accept_warned_ms = now;
        sl_warn("accept: %s (%u sessions open)%s", evutil_socket_error_to_string(err),
                fe->n_sessions,
                resource ? "; not accepting until a session ends; raise the file descriptor "
                           "limit (LimitNOFILE=) if this persists"
                         : "");
    }
    if (!resource || fe->accept_paused)
        return;
    (void)listener;
    fe->accept_paused = true;
    frontend_listeners_enable(fe, false);
    struct timeval tv = {.tv_sec = FE_ACCEPT_PAUSE_MS / 1000,
                         .tv_usec = (FE_ACCEPT_PAUSE_MS % 1000) * 1000};
    evtimer_add(fe->accept_timer, &tv);
}

/* The FQDN, as amavisd-new wants it for its greeting and Received: lines;
 * inside containers there may be none, so the short name is the fallback. */
static char *
system_hostname(void)
{
    char name[256];
    if (gethostname(name, sizeof(name)) != 0)
        return sl_strdup("localhost");
    name[sizeof(name) - 1] = '\0';
    if (strchr(name, '.') == NULL) {
        struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *res = NULL;
        if (getaddrinfo(name, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
            strchr(res->ai_canonname, '.')) {
            char *fqdn = sl_strdup(res->ai_canonname);
            freeaddrinfo(res);
            return fqdn;
        }
        if (res)
            freeaddrinfo(res);
    }
    return sl_strdup(name);
}

unsigned
frontend_local_port(const struct frontend *fe, evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    unsigned port = 0;

    if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        sl_sockaddr_ip((struct sockaddr *)&ss, NULL, 0, &port);
    return port ? port : fe->listen_port;
}

/* The sockets were bound by the caller (sluice.c: by itself or by the
 * master, or passed in by systemd), so that they outlive this process. */
static int
frontend_listen(struct frontend *fe, const int *fds, size_t n_fds, char **error_r)
{
    fe->listeners = sl_calloc(n_fds, sizeof(*fe->listeners));
    for (size_t i = 0; i < n_fds; i++) {
        char where[96];
        unsigned port;
        sl_listen_describe(fds[i], where, sizeof(where), &port);
        /* backlog 0: listen() was called already, with SL_LISTEN_BACKLOG */
        fe->listeners[i] = evconnlistener_new(fe->base, frontend_on_accept, fe,
                                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                              0, fds[i]);
        if (fe->listeners[i] == NULL) {
            *error_r = sl_asprintf("cannot accept on %s: %s", where, strerror(errno));
            return -1;
        }
        fe->n_listeners = i + 1;
        evconnlistener_set_error_cb(fe->listeners[i], frontend_on_accept_error);
        if (i == 0)
            fe->listen_port = port;
        sl_info("frontend accepting on %s", where);
    }
    fe->accept_timer = evtimer_new(fe->base, frontend_on_accept_timer, fe);
    SL_BUG_ON(fe->accept_timer == NULL);
    return 0;
}

struct frontend *
frontend_new(struct event_base *base, void *zctx, const struct sl_config *config,
             const int *listen_fds, size_t n_listen_fds, char *const *endpoints,
             size_t n_endpoints, char **error_r)
{
    struct frontend *fe = sl_calloc(1, sizeof(*fe));
    fe->base = base;
    fe->config = config;
    fe->hostname = config->frontend.hostname && *config->frontend.hostname
                       ? sl_strdup(config->frontend.hostname)
                       : system_hostname();
    fe->jobs_size = 1024;
    fe->jobs = sl_calloc(fe->jobs_size, sizeof(*fe->jobs));
    fe->n_origins = config->n_origins;
    fe->origins = sl_calloc(fe->n_origins, sizeof(*fe->origins));
    for (size_t i = 0; i < fe->n_origins; i++)
        fe->origins[i].config = &config->origins[i];

    SL_BUG_ON(n_listen_fds == 0);
    if (frontend_listen(fe, listen_fds, n_listen_fds, error_r) != 0)
        goto fail;
    fe->link = fe_broker_link_new(base, zctx, endpoints, n_endpoints, config,
                                  frontend_on_verdict, fe, error_r);
    if (fe->link == NULL)
        goto fail;
    fe_broker_link_set_weight_fn(fe->link, frontend_origin_weight, fe);
    fe->reinjector = fe_reinjector_new(base, fe->hostname, config->reinject.timeout_s);
    if (sl_config_dedup_on(config)) {
        struct sl_redis_url url;
        if (sl_redis_url_from_config(config, &url, error_r) < 0)
            goto fail;
        /* The registry id names the node (its master's pid: stable across
         * child restarts); "/pid" names this incarnation, so a restarted
         * child can tell its dead predecessor's reservations from its own. */
        char *reg = sl_registry_node_id("frontend");
        char *node = sl_asprintf("%s/%ld", reg, (long)getpid());
        fe->ledger = fe_ledger_new(base, &url, node, config->dedup.ttl_s,
                                   config->dedup.pending_timeout_s);
        free(node);
        free(reg);
        sl_redis_url_free(&url);
        fe->dedup_tempfail = strcmp(config->dedup.on_unavailable, "tempfail") == 0;
    }
    /* Test-only (docs/exactly-once.md): die between the reinjection's 250
     * and our reply, the window the ledger exists for. */
    const char *kill_env = getenv("SLUICE_TEST_KILL_AFTER_REINJECT");
    fe->test_kill_after_reinject = kill_env != NULL && strcmp(kill_env, "1") == 0;
    if (fe->test_kill_after_reinject)
        sl_warn("SLUICE_TEST_KILL_AFTER_REINJECT=1: this frontend kills itself after the first "
                "reinjection (a test hook, never for production)");
    sl_info("frontend ready (LMTP and SMTP), hostname %s", fe->hostname);
    return fe;
fail:
    frontend_destroy(&fe);
    return NULL;
}

static void
frontend_shutdown_done(void *arg)
{
    struct frontend *fe = arg;
    void (*cb)(void *) = fe->shutdown_done;

    fe->shutdown_done = NULL;
    cb(fe->shutdown_ctx);
}

void
frontend_session_gone(struct frontend *fe)
{
    frontend_accept_resume(fe);     /* a descriptor is free again */
    if (fe->shutting_down && fe->n_sessions == 0 && fe->shutdown_done) {
        if (fe->ledger != NULL)
            /* the records sent after the last replies reach Redis first */
            fe_ledger_when_idle(fe->ledger, frontend_shutdown_done, fe);
        else
            frontend_shutdown_done(fe);
    }
}

void
frontend_shutdown(struct frontend *fe, void (*done_cb)(void *ctx), void *ctx)
{
    if (fe->shutting_down)
        return;
    fe->shutting_down = true;
    fe->shutdown_done = done_cb;
    fe->shutdown_ctx = ctx;
    frontend_listeners_enable(fe, false);
    sl_info("shutting down: %u session(s), %u message(s) in flight", fe->n_sessions,
            fe->n_jobs);
    session_shutdown_all(fe);
    frontend_session_gone(fe);
}

void
frontend_destroy(struct frontend **fep)
{
    struct frontend *fe = *fep;
    if (fe == NULL)
        return;
    *fep = NULL;
    session_destroy_all(fe);
    for (size_t i = 0; i < fe->n_listeners; i++)
        evconnlistener_free(fe->listeners[i]);
    free(fe->listeners);
    if (fe->accept_timer)
        event_free(fe->accept_timer);
    fe_reinjector_destroy(&fe->reinjector);
    fe_ledger_destroy(&fe->ledger);
    fe_broker_link_destroy(&fe->link);
    for (size_t i = 0; i < fe->jobs_size; i++) {
        for (struct fe_job_entry *e = fe->jobs[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    }
    free(fe->jobs);
    free(fe->origins);
    free(fe->hostname);
    free(fe);
}
