/* sl_zsock.c - ZeroMQ socket helpers. */
#include "net/sl_zsock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "net/sl_keys.h"
#include "net/sl_wire.h"
#include "net/sl_zap.h"

/* Draft options in libzmq 4.3 (zmq.h hides them without
 * ZMQ_BUILD_DRAFT_API); Debian 12's libzmq5 4.3.4 accepts them. */
#ifndef ZMQ_ZERO_COPY_RECV
#define ZMQ_ZERO_COPY_RECV 10
#endif
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

void
sl_zsock_set_int(void *sock, int option, int value)
{
    int ret = zmq_setsockopt(sock, option, &value, sizeof(value));
    SL_BUG_ON(ret != 0);
}

void *
sl_zsock_ctx_new(void)
{
    void *ctx = zmq_ctx_new();

    /* a draft option: refused by a libzmq without it, and then the
     * default stays (more memory per waiting job, nothing else) */
    if (ctx != NULL)
        (void)zmq_ctx_set(ctx, ZMQ_ZERO_COPY_RECV, 0);
    return ctx;
}

void
sl_zsock_set_common(void *sock, size_t max_body)
{
    int64_t cap = (int64_t)max_body + SL_WIRE_FRAME_MAX;
    int ret;

    sl_zsock_set_int(sock, ZMQ_LINGER, SL_ZSOCK_LINGER_MS);
    sl_zsock_set_int(sock, ZMQ_SNDHWM, SL_ZSOCK_HWM);
    sl_zsock_set_int(sock, ZMQ_RCVHWM, SL_ZSOCK_HWM);
    /* ZMTP 3.1 PING/PONG: a tcp peer that vanished without a FIN (power
     * loss, partition) is dropped and reconnected; the application-level
     * heartbeats then take care of the jobs. */
    sl_zsock_set_int(sock, ZMQ_HEARTBEAT_IVL, 1000);
    sl_zsock_set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, 3000);
    /* Reconnects every 100 ms, backing off to 250 ms (libzmq adds up to
     * 100 ms of jitter), and a connect that gets no answer is given up after
     * 500 ms and tried again: a broker that comes back, or a network that
     * heals, is used within about half a second. A back-off to 2 s made
     * every node wait up to 2 s after a broker's return (0.6-1.1 s
     * measured, tests/bench/fault_latency.sh), and a connect into a
     * partition waited for the kernel's SYN retries (1, 2, 4, 8 s apart).
     * A down broker costs each socket a refused connect every 250-350 ms. */
    sl_zsock_set_int(sock, ZMQ_RECONNECT_IVL, 100);
    sl_zsock_set_int(sock, ZMQ_RECONNECT_IVL_MAX, 250);
    sl_zsock_set_int(sock, ZMQ_CONNECT_TIMEOUT, 500);
    ret = zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &cap, sizeof(cap));
    SL_BUG_ON(ret != 0);
}

void
sl_zsock_set_hub(void *sock)
{
    sl_zsock_set_int(sock, ZMQ_HEARTBEAT_IVL, 0);
    sl_zsock_set_int(sock, ZMQ_TCP_KEEPALIVE, 1);
    sl_zsock_set_int(sock, ZMQ_TCP_KEEPALIVE_IDLE, SL_ZSOCK_HUB_IDLE_S);
    sl_zsock_set_int(sock, ZMQ_TCP_KEEPALIVE_INTVL, SL_ZSOCK_HUB_IDLE_S / 3);
    sl_zsock_set_int(sock, ZMQ_TCP_KEEPALIVE_CNT, 3);
    sl_zsock_set_int(sock, ZMQ_TCP_MAXRT, SL_ZSOCK_HUB_MAXRT_MS);
}

int
sl_zsock_send_frame(void *sock, Sluice__Frame *frame, int flags, const char **error_r)
{
    zmq_msg_t msg;

    if (sl_wire_pack(frame, &msg, error_r) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        int saved = errno;
        zmq_msg_close(&msg);
        *error_r = zmq_strerror(saved);
        errno = saved;
        return -1;
    }
    return 0;
}

int
sl_zsock_send_bytes(void *sock, const void *data, size_t len, int flags)
{
    return zmq_send(sock, data, len, flags) < 0 ? -1 : 0;
}

bool
sl_zsock_more(void *sock)
{
    int more = 0;
    size_t len = sizeof(more);

    if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) != 0)
        return false;
    return more != 0;
}

size_t
sl_zsock_drain_more(void *sock)
{
    size_t n = 0;

    while (sl_zsock_more(sock)) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        /* The rest of a message is delivered atomically with its first
         * part, so this never waits. */
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        zmq_msg_close(&part);
        n++;
    }
    return n;
}

bool
sl_zsock_readable(void *sock)
{
    int events = 0;
    size_t len = sizeof(events);

    if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) != 0)
        return false;
    return (events & ZMQ_POLLIN) != 0;
}

int
sl_zsock_fd(void *sock)
{
    int fd;
    size_t len = sizeof(fd);

    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        sl_bug(__FILE__, __LINE__, "zmq_getsockopt(ZMQ_FD)");
    return fd;
}

int
sl_zsock_set_curve(void *sock, const struct sl_config *config, const char *endpoint, bool server,
                   const char **error_r)
{
    const char *k;
    int one = 1;

    if (!config->security.curve || !sl_keys_endpoint_remote(endpoint))
        return 0;
    k = config->security.secret_key;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k, strlen(k)) != 0)
        goto fail;
    k = config->security.public_key;
    if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k, strlen(k)) != 0)
        goto fail;
    if (server) {
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
            zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, SL_ZAP_DOMAIN, strlen(SL_ZAP_DOMAIN)) != 0)
            goto fail;
        if (zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0) {
            *error_r = "ZMQ_ZAP_ENFORCE_DOMAIN not supported by this libzmq (built without "
                       "draft options)";
            return -1;
        }
        return 1;
    }
    k = config->security.server_key;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k, strlen(k)) != 0)
        goto fail;
    return 1;
fail:
    *error_r = zmq_strerror(errno);
    return -1;
}

void *
sl_zsock_monitor_open(void *zctx, void *sock, int events)
{
    static atomic_uint seq; /* names never reused, even by a socket at the same address */
    char name[80];
    void *mon;

    snprintf(name, sizeof(name), "inproc://sluice-monitor-%p-%u", sock,
             atomic_fetch_add(&seq, 1));
    if (zmq_socket_monitor(sock, name, events) != 0)
        return NULL;
    mon = zmq_socket(zctx, ZMQ_PAIR);
    if (mon == NULL) {
        zmq_socket_monitor(sock, NULL, 0);
        return NULL;
    }
    sl_zsock_set_int(mon, ZMQ_LINGER, 0);
    if (zmq_connect(mon, name) != 0) {
        zmq_close(mon);
        zmq_socket_monitor(sock, NULL, 0);
        return NULL;
    }
    return mon;
}

/* Monitor events: [uint16 event, uint32 value][endpoint]. */
int
sl_zsock_monitor_event(void *mon)
{
    while (sl_zsock_readable(mon)) {
        zmq_msg_t msg;
        uint16_t event = 0;

        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return 0;
        }
        if (zmq_msg_size(&msg) >= sizeof(event))
            memcpy(&event, zmq_msg_data(&msg), sizeof(event));
        zmq_msg_close(&msg);
        sl_zsock_drain_more(mon);
        if (event != 0)
            return event;   /* a malformed one is skipped */
    }
    return 0;
}

void
sl_zsock_monitor_close(void *sock, void **mon)
{
    if (*mon == NULL)
        return;
    zmq_close(*mon);
    *mon = NULL;
    if (sock != NULL)
        zmq_socket_monitor(sock, NULL, 0);
}
