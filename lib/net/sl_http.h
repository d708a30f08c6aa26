/* sl_http.h - the small HTTP server through which a node shows its
 * metrics, health and status (libevent's evhttp on the caller's loop), and
 * the client `sluice status` asks it with. Knows nothing of mail.
 *
 * SYNOPSIS
 *   struct sl_http *h = sl_http_new(base, "127.0.0.1:9100", &error);
 *   sl_http_route(h, "/metrics", serve_metrics, ctx);
 *   ... the loop runs ...
 *   sl_http_destroy(&h);
 *
 * DESIGN
 *   GET and HEAD only (others 501); a path matches exactly, the query
 *   string is ignored; an unknown path is 404. A handler fills the body
 *   and returns the status code; it runs on the loop's thread, so it may
 *   read what that loop owns without a lock. Requests are small and
 *   bounded: 8 KiB of headers, no body, 10 s to send a request. Plain
 *   HTTP without authentication (a scrape target on loopback or a
 *   management network, as Prometheus' exporters are).
 *
 * OWNERSHIP
 *   The server owns its listening socket and closes it in
 *   sl_http_destroy(). Strings given are copied. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>
#include <event2/event.h>
#include "util/sl_buf.h"
#include "util/sl_util.h"

#define SL_HTTP_BACKLOG 64 /* scrapes and probes, not mail */

struct sl_http;

/* Fills body (empty on entry) and *content_type_r (default text/plain);
 * returns the HTTP status code. */
typedef int sl_http_handler_fn(void *ctx, struct sl_buf *body, const char **content_type_r);

/* Binds "host:port" (sl_listen_tcp: SO_REUSEADDR, IPv6 in brackets) and
 * serves on base. NULL with a malloc'ed *error_r when it cannot bind. */
struct sl_http *sl_http_new(struct event_base *base, const char *listen, char **error_r);
/* Serves on a listening socket bound already (by a master that keeps it
 * across its children); the server owns fd from now on. */
struct sl_http *sl_http_new_fd(struct event_base *base, int fd);
void sl_http_route(struct sl_http *h, const char *path, sl_http_handler_fn *fn, void *ctx);
/* Stops serving and frees; *hp may be NULL. */
void sl_http_destroy(struct sl_http **hp);

/* A blocking GET of http://hostport/path with a private loop; the
 * connect and each read wait at most timeout_ms. A wildcard host (0.0.0.0, [::], *) is asked on
 * loopback. 0 with *status_r and the body (malloc'ed, NUL-terminated,
 * *len_r bytes without the NUL), or -1 with a malloc'ed *error_r (why,
 * without the URL) when no answer came. */
SL_WARN_UNUSED int sl_http_get(const char *hostport, const char *path, unsigned timeout_ms,
                               int *status_r, char **body_r, size_t *len_r, char **error_r);

#endif
