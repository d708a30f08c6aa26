/* sl_http.c - a node's HTTP server and `sluice status`'s client
 * (sl_http.h), both libevent's evhttp. */
#include "net/sl_http.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "util/sl_addr.h"
#include "util/sl_listen.h"
#include "util/sl_log.h"

#define HTTP_TIMEOUT_S 10
#define HTTP_MAX_HEADERS 8192

struct route {
    char *path;
    sl_http_handler_fn *fn;
    void *ctx;
};

struct sl_http {
    struct evhttp *http;
    struct route *routes;
    size_t n_routes;
};

static void
http_reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();

    SL_BUG_ON(b == NULL);
    evbuffer_add(b, text, strlen(text));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static const char *
status_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 404:
        return "Not Found";
    case 503:
        return "Service Unavailable";
    default:
        return code < 400 ? "OK" : code < 500 ? "Bad Request" : "Internal Server Error";
    }
}

static void
http_dispatch(struct evhttp_request *req, void *arg)
{
    struct sl_http *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *ctype = "text/plain; charset=utf-8";
    struct sl_buf body;
    struct evbuffer *out;
    int code;

    if (path == NULL || path[0] == '\0')
        path = "/";
    for (size_t i = 0; i < h->n_routes; i++) {
        if (strcmp(h->routes[i].path, path) != 0)
            continue;
        sl_buf_init(&body);
        code = h->routes[i].fn(h->routes[i].ctx, &body, &ctype);
        out = evbuffer_new();
        SL_BUG_ON(out == NULL);
        evbuffer_add(out, body.data != NULL ? body.data : "", body.len);
        sl_buf_free(&body);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
        evhttp_send_reply(req, code, status_reason(code), out);
        evbuffer_free(out);
        return;
    }
    http_reply_text(req, 404, "Not Found", "not found\n");
}

struct sl_http *
sl_http_new(struct event_base *base, const char *listen, char **error_r)
{
    int fd = sl_listen_tcp(listen, SL_HTTP_BACKLOG, error_r);

    return fd < 0 ? NULL : sl_http_new_fd(base, fd);
}

struct sl_http *
sl_http_new_fd(struct event_base *base, int fd)
{
    struct sl_http *h = sl_calloc(1, sizeof(*h));

    h->http = evhttp_new(base);
    SL_BUG_ON(h->http == NULL);
    /* only allocation can fail here: the socket listens already */
    SL_BUG_ON(evhttp_accept_socket_with_handle(h->http, fd) == NULL);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
    evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->http, 0);
    evhttp_set_gencb(h->http, http_dispatch, h);
    return h;
}

void
sl_http_route(struct sl_http *h, const char *path, sl_http_handler_fn *fn, void *ctx)
{
    SL_BUG_ON(path == NULL || path[0] != '/' || fn == NULL);
    h->routes = sl_realloc(h->routes, (h->n_routes + 1) * sizeof(*h->routes));
    h->routes[h->n_routes++] = (struct route){sl_strdup(path), fn, ctx};
}

void
sl_http_destroy(struct sl_http **hp)
{
    struct sl_http *h = *hp;

    if (h == NULL)
        return;
    *hp = NULL;
    evhttp_free(h->http); /* closes the listening socket and the connections */
    for (size_t i = 0; i < h->n_routes; i++)
        free(h->routes[i].path);
    free(h->routes);
    free(h);
}

/* ---- the client ----------------------------------------------------------- */

struct get {
    struct event_base *base;
    int status;
    char *body;
    size_t len;
    char *error;
};

static void
get_on_error(enum evhttp_request_error e, void *arg)
{
    struct get *g = arg;

    if (g->error != NULL)
        return;
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        g->error = sl_strdup("timed out");
        break;
    case EVREQ_HTTP_EOF:
        g->error = sl_strdup("connection closed before an answer");
        break;
    case EVREQ_HTTP_INVALID_HEADER:
    case EVREQ_HTTP_DATA_TOO_LONG:
        g->error = sl_strdup("invalid answer");
        break;
    default:
        g->error = sl_strdup("cannot connect");
        break;
    }
}

static void
get_on_done(struct evhttp_request *req, void *arg)
{
    struct get *g = arg;

    event_base_loopexit(g->base, NULL);
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        if (g->error == NULL)
            g->error = sl_strdup("cannot connect");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    g->status = evhttp_request_get_response_code(req);
    g->len = evbuffer_get_length(in);
    g->body = sl_malloc(g->len + 1);
    evbuffer_remove(in, g->body, g->len);
    g->body[g->len] = '\0';
}

int
sl_http_get(const char *hostport, const char *path, unsigned timeout_ms, int *status_r,
            char **body_r, size_t *len_r, char **error_r)
{
    struct get g = {0};
    struct evhttp_connection *conn;
    struct evhttp_request *req;
    char *host, hostname[300];
    unsigned port;

    if (sl_hostport_parse(hostport, &host, &port) != 0) {
        *error_r = sl_asprintf("bad address \"%s\" (expected host:port)", hostport);
        return -1;
    }
    /* a node listening everywhere answers on loopback */
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0 || host[0] == '\0') {
        free(host);
        host = sl_strdup("127.0.0.1");
    } else if (strcmp(host, "::") == 0) {
        free(host);
        host = sl_strdup("::1");
    }
    snprintf(hostname, sizeof(hostname), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    g.base = event_base_new();
    SL_BUG_ON(g.base == NULL);
    conn = evhttp_connection_base_new(g.base, NULL, host, (unsigned short)port);
    SL_BUG_ON(conn == NULL);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(conn, &tv);
    evhttp_connection_set_retries(conn, 0);
    req = evhttp_request_new(get_on_done, &g);
    SL_BUG_ON(req == NULL);
    evhttp_request_set_error_cb(req, get_on_error);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hostname);
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, path) != 0)
        g.error = sl_strdup("cannot send the request");
    else
        event_base_dispatch(g.base);
    evhttp_connection_free(conn);
    event_base_free(g.base);
    free(host);
    if (g.body == NULL) {
        *error_r = g.error != NULL ? g.error : sl_strdup("no answer");
        return -1;
    }
    free(g.error);
    *status_r = g.status;
    *body_r = g.body;
    *len_r = g.len;
    return 0;
}
