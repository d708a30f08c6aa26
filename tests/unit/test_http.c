/* test_http.c - lib/net/sl_http: a server on a loopback port (its loop on
 * a thread of its own) asked by the blocking client: a route's body,
 * status and content type; the query string ignored; 404 for an unknown
 * path; 501 for a method other than GET and HEAD (a plain socket); the client's error when
 * nothing listens; a bind that fails names the address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "net/sl_http.h"

/* A server on a loopback port nobody else holds: ports are tried in a
 * spread of 20000..31999 until one binds; its address in addr. */
static struct sl_http *
http_on_some_port(struct event_base *base, char *addr, size_t len)
{
    for (unsigned n = 0; n < 500; n++) {
        char *error = NULL;
        struct sl_http *h;

        snprintf(addr, len, "127.0.0.1:%u", 20000 + ((unsigned)getpid() * 7 + n * 131) % 12000);
        if ((h = sl_http_new(base, addr, &error)) != NULL)
            return h;
        free(error);
    }
    fail_msg("no loopback port to listen on");
    return NULL;
}

/* Sends req on a plain socket; the answer's first bytes into buf. */
static void
raw_request(int port, const char *req, char *buf, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

static int
serve_hello(void *ctx, struct sl_buf *body, const char **ctype_r)
{
    int *calls = ctx;

    (*calls)++;
    sl_buf_append_str(body, "hello\n");
    *ctype_r = "text/x-test";
    return 200;
}

static int
serve_unready(void *ctx, struct sl_buf *body, const char **ctype_r)
{
    (void)ctx;
    (void)ctype_r;
    sl_buf_append_str(body, "not ready: no broker\n");
    return 503;
}

static void *
loop_thread(void *arg)
{
    event_base_dispatch(arg);
    return NULL;
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void
test_routes(void **state)
{
    struct event_base *base;
    struct sl_http *h;
    struct event *stop;
    pthread_t t;
    char addr[64], *body = NULL, *error = NULL;
    size_t len;
    int status, calls = 0;

    (void)state;
    evthread_use_pthreads();
    base = event_base_new();
    h = http_on_some_port(base, addr, sizeof(addr));
    sl_http_route(h, "/hello", serve_hello, &calls);
    sl_http_route(h, "/readyz", serve_unready, NULL);
    stop = event_new(base, -1, EV_PERSIST, on_stop, base);
    struct timeval tv = {3600, 0};
    event_add(stop, &tv); /* keeps the loop alive until we stop it */
    assert_int_equal(pthread_create(&t, NULL, loop_thread, base), 0);

    assert_int_equal(sl_http_get(addr, "/hello", 2000, &status, &body, &len, &error), 0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "hello\n");
    assert_int_equal(len, 6);
    free(body);
    assert_int_equal(sl_http_get(addr, "/hello?x=1", 2000, &status, &body, &len, &error), 0);
    assert_int_equal(status, 200);
    free(body);
    assert_int_equal(calls, 2);
    assert_int_equal(sl_http_get(addr, "/readyz", 2000, &status, &body, &len, &error), 0);
    assert_int_equal(status, 503);
    assert_string_equal(body, "not ready: no broker\n");
    free(body);
    assert_int_equal(sl_http_get(addr, "/nothing", 2000, &status, &body, &len, &error), 0);
    assert_int_equal(status, 404);
    free(body);

    /* another method: refused by the server, no handler runs */
    char line[256];
    raw_request(atoi(strchr(addr, ':') + 1), "POST /hello HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
                line, sizeof(line));
    assert_non_null(strstr(line, " 501 ")); /* evhttp: "Not Implemented" */
    assert_int_equal(calls, 2);

    event_active(stop, EV_TIMEOUT, 0);
    pthread_join(t, NULL);
    sl_http_destroy(&h);
    assert_null(h);
    event_free(stop);
    event_base_free(base);

    /* nothing listens there any more */
    assert_int_equal(sl_http_get(addr, "/hello", 1000, &status, &body, &len, &error), -1);
    assert_string_equal(error, "cannot connect");
    free(error);
}

static void
test_bind_error(void **state)
{
    struct event_base *base = event_base_new();
    char *error = NULL;

    (void)state;
    assert_null(sl_http_new(base, "192.0.2.1:9", &error)); /* not our address */
    assert_non_null(strstr(error, "192.0.2.1:9"));
    free(error);
    error = NULL;
    assert_null(sl_http_new(base, "nonsense", &error));
    assert_non_null(error);
    free(error);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_bind_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
