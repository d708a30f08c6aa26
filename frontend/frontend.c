/* frontend.c - the frontend role: the listening sockets, the client ACL,
 * the origins, and what sessions and jobs share (context.h): the broker
 * link, the reinjector, the ledger. Also the graceful stop.
 *
 * The protocol lives in session.c and commands.c, a message in flight in
 * job.c; this file only decides who may talk to us and starts their
 * sessions. */
#include "frontend.h"

#include <errno.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/listener.h>
#include "context.h"
#include "job.h"
#include "ledger.h"
#include "local_record.h"
#include "origins.h"
#include "quarantine.h"
#include "reinject.h"
#include "session.h"
#include "settings.h"
#include "net/sl_redis.h"
#include "net/sl_registry.h"
#include "util/sl_addr.h"
#include "conf/sl_config.h"
#include "util/sl_listen.h"
#include "util/sl_log.h"

struct frontend {
    struct fe_context ctx;              /* what sessions and jobs share */
    char *hostname;
    unsigned listen_port;               /* of the first socket */
    struct evconnlistener **listeners;  /* one per listening socket */
    size_t n_listeners;
    struct event *accept_timer;         /* resumes a listener paused on EMFILE */
    bool accept_paused;
    unsigned long long accept_warned_ms;
    struct fe_origin_slots *slots;  /* every origin name's slot counter (origins.h) */
    struct sl_config *start_config; /* a reference: the broker link's and the ledger's */
    void (*shutdown_done)(void *ctx);
    void *shutdown_ctx;
};

/* Job.origin_concurrency: the brokers share workers among origins in
 * proportion to it (docs/cluster.md). */
static unsigned
frontend_origin_weight(void *ctx, const char *origin)
{
    const struct frontend *fe = ctx;
    const struct fe_origin *o = fe_origins_find(&fe->ctx.settings->origins, origin);

    return o != NULL ? o->config->concurrency : 1;
}

void
frontend_stats(const struct frontend *fe, struct frontend_stats *stats_r)
{
    const struct fe_origins *origins = &fe->ctx.settings->origins;

    memset(stats_r, 0, sizeof(*stats_r));
    stats_r->n_sessions = fe->ctx.n_sessions;
    stats_r->n_origins = origins->n < FRONTEND_STATS_ORIGINS ? origins->n : FRONTEND_STATS_ORIGINS;
    for (size_t i = 0; i < stats_r->n_origins; i++) {
        stats_r->origins[i].name = origins->v[i].config->name;
        stats_r->origins[i].active = origins->v[i].slots->active;
        stats_r->origins[i].concurrency = origins->v[i].config->concurrency;
    }
    if (fe->ctx.link != NULL) {
        fe_broker_link_stats(fe->ctx.link, &stats_r->link);
        stats_r->n_jobs = stats_r->link.held + stats_r->link.pending;
    }
}

bool
frontend_ready(struct frontend *fe, char *why, size_t len)
{
    const struct sl_config *cfg = fe->ctx.config;
    struct fe_broker_link_stats ls;

    if (fe->ctx.shutting_down) {
        snprintf(why, len, "frontend stopping");
        return false;
    }
    fe_broker_link_stats(fe->ctx.link, &ls);
    if (ls.n_alive == 0) {
        snprintf(why, len, "frontend: no broker answers (0 of %u in broker.endpoints)",
                 ls.n_brokers);
        return false;
    }
    for (size_t i = 0; i < cfg->n_origins; i++)
        if (!cfg->origins[i].reinject_to_client)
            fe_reinjector_watch(fe->ctx.reinjector, cfg->origins[i].reinject_host,
                                cfg->origins[i].reinject_port);
    return fe_reinjector_ready(fe->ctx.reinjector, why, len);
}

/* The port a client connected to (Received: "port N", policy banks'
 * match_listener): with several sockets from systemd, not always the
 * first. */
static unsigned
frontend_local_port(const struct frontend *fe, evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    unsigned port = 0;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        sl_sockaddr_ip((struct sockaddr *)&ss, NULL, 0, &port);
    return port ? port : fe->listen_port;
}

static void
frontend_on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                   int socklen, void *arg)
{
    struct frontend *fe = arg;
    char ip[64];
    unsigned port = 0;

    (void)listener;
    (void)socklen;
    sl_sockaddr_ip(sa, ip, sizeof(ip), &port);
    if (!sl_cidr_list_match(&fe->ctx.config->frontend.acl, sa)) {
        /* amavisd-new's @inet_acl: outsiders are turned away at connect */
        static const char msg[] = "554 5.7.1 Access denied\r\n";
        sl_warn("connect from [%s]:%u refused: not in frontend.acl", ip, port);
        (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        evutil_closesocket(fd);
        return;
    }
    if (fe->ctx.shutting_down) {
        evutil_closesocket(fd);
        return;
    }
    session_new(&fe->ctx, fd, ip, port,
                fe_origins_for(&fe->ctx.settings->origins, fe->ctx.config, ip),
                frontend_local_port(fe, fd));
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
    if (!fe->ctx.shutting_down)
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
                fe->ctx.n_sessions,
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
        fe->listeners[i] = evconnlistener_new(fe->ctx.base, frontend_on_accept, fe,
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
    fe->accept_timer = evtimer_new(fe->ctx.base, frontend_on_accept_timer, fe);
    SL_BUG_ON(fe->accept_timer == NULL);
    return 0;
}

static void
frontend_shutdown_done(void *arg)
{
    struct frontend *fe = arg;
    void (*cb)(void *) = fe->shutdown_done;

    fe->shutdown_done = NULL;
    cb(fe->shutdown_ctx);
}

/* A session or a job ended (context.h): a descriptor is free again, and
 * a stop may be complete. */
static void
frontend_on_idle(struct fe_context *ctx)
{
    struct frontend *fe = (struct frontend *)((char *)ctx - offsetof(struct frontend, ctx));

    frontend_accept_resume(fe);
    if (!ctx->shutting_down || ctx->n_sessions > 0 || ctx->n_jobs > 0 ||
        fe->shutdown_done == NULL)
        return;
    if (ctx->ledger != NULL)
        /* the records sent after the last replies reach Redis first */
        fe_ledger_when_idle(ctx->ledger, frontend_shutdown_done, fe);
    else
        frontend_shutdown_done(fe);
}

/* The exactly-once ledger (dedup.*), when on; else the local record
 * (local_record.h), kept as long as the ledger keeps its entries. */
static int
frontend_ledger_open(struct frontend *fe, char **error_r)
{
    const struct sl_config *config = fe->ctx.config;
    struct sl_redis_url url;

    if (!sl_config_dedup_on(config)) {
        fe->ctx.local_record =
            fe_local_record_new(fe->ctx.base, FE_LOCAL_RECORD_MAX_RCPTS, config->dedup.ttl_s);
        return 0;
    }
    if (sl_redis_url_from_config(config, &url, error_r) < 0)
        return -1;
    /* The registry id names the node (its master's pid: stable across
     * child restarts); "/pid" names this incarnation, so a restarted
     * child can tell its dead predecessor's reservations from its own. */
    char *reg = sl_registry_node_id("frontend");
    char *node = sl_asprintf("%s/%ld", reg, (long)getpid());
    fe->ctx.ledger = fe_ledger_new(fe->ctx.base, &url, node, config->dedup.ttl_s,
                                   config->dedup.pending_timeout_s);
    free(node);
    free(reg);
    sl_redis_url_free(&url);
    fe->ctx.dedup_tempfail = strcmp(config->dedup.on_unavailable, "tempfail") == 0;
    return 0;
}

struct frontend *
frontend_new(struct event_base *base, void *zctx, const struct sl_config *config,
             const int *listen_fds, size_t n_listen_fds, char *const *endpoints,
             size_t n_endpoints, char **error_r)
{
    struct frontend *fe = sl_calloc(1, sizeof(*fe));
    struct fe_context *ctx = &fe->ctx;

    fe->hostname = config->frontend.hostname && *config->frontend.hostname
                       ? sl_strdup(config->frontend.hostname)
                       : system_hostname();
    ctx->base = base;
    fe->start_config = sl_config_ref(config);
    ctx->settings = fe_settings_new(config, &fe->slots);
    ctx->config = ctx->settings->config;
    ctx->hostname = fe->hostname;
    ctx->on_idle = frontend_on_idle;

    SL_BUG_ON(n_listen_fds == 0);
    if (frontend_listen(fe, listen_fds, n_listen_fds, error_r) != 0)
        goto fail;
    ctx->link = fe_broker_link_new(base, zctx, endpoints, n_endpoints, config, fe_job_on_verdict,
                                   error_r);
    if (ctx->link == NULL)
        goto fail;
    fe_broker_link_set_weight_fn(ctx->link, frontend_origin_weight, fe);
    ctx->reinjector = fe_reinjector_new(base, fe->hostname, config->reinject.timeout_s);
    if (frontend_ledger_open(fe, error_r) < 0)
        goto fail;
    if ((ctx->quar = fe_quar_new(base, config, fe->hostname, error_r)) == NULL)
        goto fail;
    /* Test-only (docs/exactly-once.md): die between the reinjection's 250
     * and our reply, the window the ledger exists for. */
    const char *kill_env = getenv("SLUICE_TEST_KILL_AFTER_REINJECT");
    ctx->test_kill_after_reinject = kill_env != NULL && strcmp(kill_env, "1") == 0;
    if (ctx->test_kill_after_reinject)
        sl_warn("SLUICE_TEST_KILL_AFTER_REINJECT=1: this frontend kills itself after the first "
                "reinjection (a test hook, never for production)");
    sl_info("frontend ready (LMTP and SMTP), hostname %s", fe->hostname);
    return fe;
fail:
    frontend_destroy(&fe);
    return NULL;
}

void
frontend_reconfigure(struct frontend *fe, const struct sl_config *config)
{
    struct fe_settings *next = fe_settings_new(config, &fe->slots);

    fe_settings_unref(&fe->ctx.settings); /* freed with its last session or job */
    fe->ctx.settings = next;
    fe->ctx.config = next->config;
    fe_reinjector_set_timeout(fe->ctx.reinjector, config->reinject.timeout_s);
}

void
frontend_shutdown(struct frontend *fe, void (*done_cb)(void *ctx), void *ctx)
{
    if (fe->ctx.shutting_down)
        return;
    fe->ctx.shutting_down = true;
    fe->shutdown_done = done_cb;
    fe->shutdown_ctx = ctx;
    frontend_listeners_enable(fe, false);
    sl_info("shutting down: %u session(s), %u message(s) in flight", fe->ctx.n_sessions,
            fe->ctx.n_jobs);
    session_shutdown_all(&fe->ctx);
    frontend_on_idle(&fe->ctx);
}

void
frontend_destroy(struct frontend **fep)
{
    struct frontend *fe = *fep;
    if (fe == NULL)
        return;
    *fep = NULL;
    fe->ctx.on_idle = NULL; /* nothing to resume or complete any more */
    session_destroy_all(&fe->ctx);
    fe_job_destroy_all(&fe->ctx);
    for (size_t i = 0; i < fe->n_listeners; i++)
        evconnlistener_free(fe->listeners[i]);
    free(fe->listeners);
    if (fe->accept_timer)
        event_free(fe->accept_timer);
    fe_quar_destroy(&fe->ctx.quar); /* its tasks went with the jobs */
    fe_reinjector_destroy(&fe->ctx.reinjector);
    fe_ledger_destroy(&fe->ctx.ledger);
    fe_local_record_destroy(&fe->ctx.local_record);
    fe_broker_link_destroy(&fe->ctx.link);
    fe_settings_unref(&fe->ctx.settings); /* sessions and jobs dropped theirs above */
    fe_origin_slots_free(&fe->slots);
    sl_config_unref(&fe->start_config);
    free(fe->hostname);
    free(fe);
}
