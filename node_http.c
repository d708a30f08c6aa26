/* node_http.c - a node's metrics, health and status over HTTP
 * (node_http.h). */
#include "node_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "broker_metrics.h"
#include "cli/sl_status.h"
#include "conf/sl_config.h"
#include "fe_metrics.h"
#include "frontend.h"
#include "net/sl_http.h"
#include "net/sl_registry.h"
#include "util/sl_log.h"
#include "util/sl_master.h"
#include "util/sl_metrics.h"
#include "worker_metrics.h"

#define NODE_REASON_MAX 512

struct node_http {
    const struct sl_config *config;
    struct sl_metrics *metrics;
    struct sl_http *http;
    struct frontend *fe;
    struct broker *broker;
    bool workers;
    struct sl_registry *const *registry;
    char *status_url;
};

/* ---- the handlers ---------------------------------------------------------- */

static int
serve_metrics(void *ctx, struct sl_buf *body, const char **ctype_r)
{
    struct node_http *n = ctx;

    sl_metrics_write(n->metrics, body);
    *ctype_r = SL_METRICS_CONTENT_TYPE;
    return 200;
}

/* The process answers: its loop runs this. A broker's thread is checked
 * too (its snapshot is refreshed every 100 ms). */
static int
serve_healthz(void *ctx, struct sl_buf *body, const char **ctype_r)
{
    struct node_http *n = ctx;
    char why[NODE_REASON_MAX];

    (void)ctype_r;
    if (n->broker != NULL && !broker_metrics_alive(n->broker, why, sizeof(why))) {
        sl_buf_printf(body, "unhealthy: %s\n", why);
        return 503;
    }
    sl_buf_append_str(body, "ok\n");
    return 200;
}

/* Can the node take work: every role it runs says so. */
static int
serve_readyz(void *ctx, struct sl_buf *body, const char **ctype_r)
{
    struct node_http *n = ctx;
    char why[NODE_REASON_MAX];
    bool ready = true;

    (void)ctype_r;
    if (n->fe != NULL && !frontend_ready(n->fe, why, sizeof(why))) {
        sl_buf_printf(body, "%s%s", ready ? "not ready: " : "; ", why);
        ready = false;
    }
    if (n->broker != NULL && !broker_metrics_ready(n->broker, why, sizeof(why))) {
        sl_buf_printf(body, "%s%s", ready ? "not ready: " : "; ", why);
        ready = false;
    }
    if (n->workers && !worker_metrics_ready(why, sizeof(why))) {
        sl_buf_printf(body, "%s%s", ready ? "not ready: " : "; ", why);
        ready = false;
    }
    sl_buf_append_str(body, ready ? "ready\n" : "\n");
    return ready ? 200 : 503;
}

/* The node's records as `sluice status --json` prints a cluster. */
static int
serve_status(void *ctx, struct sl_buf *body, const char **ctype_r)
{
    struct node_http *n = ctx;
    size_t len;
    char *json;

    if (*n->registry == NULL) {
        sl_buf_append_str(body, "starting\n");
        return 503;
    }
    json = sl_status_local_json(*n->registry, sl_now_wall_ms(), n->status_url, &len);
    sl_buf_append(body, json, len);
    free(json);
    *ctype_r = "application/json";
    return 200;
}

/* ---- the node ------------------------------------------------------------- */

/* What every node says about itself, fixed for the process's life. */
static void
node_metrics_register(struct sl_metrics *reg)
{
    static const char *const version[] = {SLUICE_VERSION};
    struct sl_metric_dim dim = SL_METRIC_DIM("version", version);
    struct sl_metric *m;
    struct timespec ts;

    m = sl_metrics_gauge(reg, "sluice_build_info", "The running sluice's version; always 1.", &dim,
                         1);
    sl_metric_set(m, 0, 1);
    m = sl_metrics_gauge(reg, "sluice_process_start_time_seconds",
                         "When this process started, in seconds since the Unix epoch.", NULL, 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    sl_metric_set(m, 0, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    m = sl_metrics_counter(reg, "sluice_child_restarts_total",
                           "Processes before this one that died and were restarted by the "
                           "master (sluice all, sluice frontend).",
                           NULL, 0, 0);
    sl_metric_set(m, 0, sl_master_restarts());
}

struct node_http *
node_http_new(const struct sl_config *config, bool frontend, bool broker, unsigned workers)
{
    struct node_http *n;

    if (config->metrics.listen == NULL || config->metrics.listen[0] == '\0')
        return NULL;
    n = sl_calloc(1, sizeof(*n));
    n->config = config;
    n->metrics = sl_metrics_new();
    n->workers = workers > 0;
    node_metrics_register(n->metrics);
    if (frontend)
        fe_metrics_register(n->metrics, config);
    if (broker)
        broker_metrics_register(n->metrics);
    if (workers > 0)
        worker_metrics_register(n->metrics, workers);
    return n;
}

int
node_http_serve(struct node_http *n, struct event_base *base, struct frontend *fe,
                struct broker *broker, struct sl_registry *const *registry, int fd, char **error_r)
{
    char *error = NULL;

    n->fe = fe;
    n->broker = broker;
    n->registry = registry;
    if (fe != NULL)
        fe_metrics_watch(n->metrics, fe);
    if (broker != NULL)
        broker_metrics_watch(n->metrics, broker);
    n->http =
        fd >= 0 ? sl_http_new_fd(base, fd) : sl_http_new(base, n->config->metrics.listen, &error);
    if (n->http == NULL) {
        *error_r = sl_asprintf("metrics.listen: %s", error);
        free(error);
        return -1;
    }
    n->status_url = sl_asprintf("http://%s/status", n->config->metrics.listen);
    sl_http_route(n->http, "/metrics", serve_metrics, n);
    sl_http_route(n->http, "/healthz", serve_healthz, n);
    sl_http_route(n->http, "/readyz", serve_readyz, n);
    sl_http_route(n->http, "/status", serve_status, n);
    sl_info("metrics: http://%s/metrics, /healthz, /readyz, /status", n->config->metrics.listen);
    return 0;
}

void
node_http_destroy(struct node_http **np)
{
    struct node_http *n = *np;

    if (n == NULL)
        return;
    *np = NULL;
    sl_http_destroy(&n->http);
    sl_metrics_destroy(&n->metrics);
    free(n->status_url);
    free(n);
}
