/* node_http.h - what a node serves on metrics.listen: /metrics (Prometheus'
 * text format), /healthz, /readyz and /status (docs/operations.md,
 * "Metrics and health"). Part of the sluice binary: it sees every role.
 *
 * SYNOPSIS
 *   n = node_http_new(config, frontend?, broker?, workers);  before the roles start
 *   ... the roles start ...
 *   node_http_serve(n, base, fe, broker, &registry, &error); before the privilege drop
 *   ... the loop runs; the roles stop ...
 *   node_http_destroy(&n);                                   after every role stopped
 *
 * The families are registered before the roles' threads start, so every
 * thread sees them from its first count; the registry is freed after the
 * last thread is joined. The server runs on the process's main loop: the
 * frontend's in `sluice all` and `sluice frontend`, in `sluice broker` and
 * `sluice worker` the loop that only waits for signals and feeds the
 * registry, so a request never waits on a role's thread, nor the other
 * way round. */
#ifndef SLUICE_NODE_HTTP_H
#define SLUICE_NODE_HTTP_H

#include <stdbool.h>
#include <event2/event.h>

struct broker;
struct frontend;
struct node_http;
struct sl_config;
struct sl_registry;

/* NULL when metrics.listen is empty (off: nothing registered, nothing
 * counted). workers: the process's worker threads, 0 for none. */
struct node_http *node_http_new(const struct sl_config *config, bool frontend, bool broker,
                                unsigned workers);
/* Serves metrics.listen on base: on fd, when the master bound it before
 * forking (it then survives this process, and scrapes wait in its backlog
 * while a child restarts; the server owns fd), else (fd -1) bound here.
 * fe and broker are the roles this process runs (NULL for the others),
 * *registry its node records (read at each /status; may still be NULL).
 * 0, or -1 with a malloc'ed *error_r. */
int node_http_serve(struct node_http *n, struct event_base *base, struct frontend *fe,
                    struct broker *broker, struct sl_registry *const *registry, int fd,
                    char **error_r);
void node_http_destroy(struct node_http **np);

#endif
