/* broker_link.c - the frontend's DEALER towards the broker(s) (broker_link.h).
 *
 * The edge-triggered trap (DESIGN-NOTES.md): ZMQ_FD only signals that the
 * socket's state *changed*, and any zmq call on the socket (a send, a
 * getsockopt) may consume that signal while messages are waiting. So:
 *   - every wake-up drains until ZMQ_EVENTS no longer has ZMQ_POLLIN;
 *   - every send is followed by a ZMQ_EVENTS check; if something is
 *     readable, the read event is activated by hand (event_active), so the
 *     drain runs from the loop and on_verdict is never called from inside
 *     fe_broker_link_submit() (callers need not be re-entrant);
 *   - a drain that stops early (batch limit) re-activates itself.
 *
 * One DEALER connected to every endpoint: jobs are spread round-robin over
 * the brokers with a live connection (ZMQ_IMMEDIATE: with none, a submit
 * fails at once and the caller tempfails instead of queueing into the
 * void); verdicts come back from whichever broker took the job. */
#include "broker_link.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define LINK_DRAIN_BATCH 256    /* messages per wake-up before other events get a turn */

struct fe_broker_link {
    struct event_base *base;
    void *sock;                 /* DEALER, owned */
    struct event *ev;           /* ZMQ_FD, EV_READ | EV_PERSIST */
    fe_verdict_fn *on_verdict;
    void *ctx;
    bool draining;              /* inside on_verdict: destroy must wait */
    bool destroy_pending;
    unsigned long long n_jobs, n_verdicts, n_bad;
};

static void
link_free(struct fe_broker_link *link)
{
    sl_info("frontend: broker link closed: %llu job(s) sent, %llu verdict(s), %llu bad frame(s)",
            link->n_jobs, link->n_verdicts, link->n_bad);
    event_free(link->ev);
    zmq_close(link->sock);
    free(link);
}

/* After any operation on the socket: if a message is waiting, make sure
 * the loop comes back for it even though the fd may never fire again. */
static void
link_rearm(struct fe_broker_link *link)
{
    if (sl_zsock_readable(link->sock))
        event_active(link->ev, EV_READ, 0);
}

static void
link_recv_one(struct fe_broker_link *link)
{
    zmq_msg_t msg;
    Sluice__Frame *frame = NULL;
    const char *error;

    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, link->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
    }
    if (sl_zsock_drain_more(link->sock) > 0) {
        sl_warn("frontend: dropped a multipart message from a broker");
        link->n_bad++;
    } else if (sl_wire_unpack_msg(&msg, &frame, &error) < 0) {
        sl_warn("frontend: dropped a frame from a broker: %s", error);
        link->n_bad++;
    } else if (frame->kind_case == SLUICE__FRAME__KIND_VERDICT) {
        link->n_verdicts++;
        link->on_verdict(link->ctx, frame->verdict);
    } else if (frame->kind_case != SLUICE__FRAME__KIND_HEARTBEAT) {
        sl_warn("frontend: unexpected %s frame from a broker dropped", sl_wire_kind_name(frame));
        link->n_bad++;
    }
    sl_wire_frame_free(&frame);
    zmq_msg_close(&msg);
}

static void
link_drain(struct fe_broker_link *link)
{
    unsigned n = 0;

    link->draining = true;
    while (!link->destroy_pending && sl_zsock_readable(link->sock)) {
        if (n++ == LINK_DRAIN_BATCH) {
            event_active(link->ev, EV_READ, 0);
            break;
        }
        link_recv_one(link);
    }
    link->draining = false;
    if (link->destroy_pending)
        link_free(link);
}

static void
link_on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_drain(arg);
}

struct fe_broker_link *
fe_broker_link_new(struct event_base *base, void *zctx, char *const *endpoints, size_t n_endpoints,
                   fe_verdict_fn *on_verdict, void *ctx, char **error_r)
{
    struct fe_broker_link *link;
    int fd;     /* ZMQ_FD is an int on POSIX */
    size_t fd_len = sizeof(fd);

    SL_BUG_ON(base == NULL || zctx == NULL || on_verdict == NULL);
    if (n_endpoints == 0) {
        *error_r = sl_strdup("frontend: no broker endpoint configured");
        return NULL;
    }
    link = sl_calloc(1, sizeof(*link));
    link->base = base;
    link->on_verdict = on_verdict;
    link->ctx = ctx;
    link->sock = zmq_socket(zctx, ZMQ_DEALER);
    if (link->sock == NULL) {
        *error_r = sl_asprintf("frontend: zmq_socket: %s", zmq_strerror(errno));
        free(link);
        return NULL;
    }
    /* Only Verdict frames come back: no body allowance in the size cap. */
    sl_zsock_set_common(link->sock, 0);
    sl_zsock_set_int(link->sock, ZMQ_IMMEDIATE, 1);
    for (size_t i = 0; i < n_endpoints; i++)
        if (zmq_connect(link->sock, endpoints[i]) != 0) {
            *error_r = sl_asprintf("frontend: cannot connect to broker %s: %s", endpoints[i],
                                   zmq_strerror(errno));
            zmq_close(link->sock);
            free(link);
            return NULL;
        }
    if (zmq_getsockopt(link->sock, ZMQ_FD, &fd, &fd_len) != 0)
        sl_bug(__FILE__, __LINE__, "zmq_getsockopt(ZMQ_FD)");
    link->ev = event_new(base, fd, EV_READ | EV_PERSIST, link_on_event, link);
    SL_BUG_ON(link->ev == NULL);
    if (event_add(link->ev, NULL) != 0)
        sl_bug(__FILE__, __LINE__, "event_add(broker link)");
    /* start with a drain: ZMQ_FD may have been signalled before we looked */
    event_active(link->ev, EV_READ, 0);
    return link;
}

void
fe_broker_link_destroy(struct fe_broker_link **linkp)
{
    struct fe_broker_link *link = *linkp;

    if (link == NULL)
        return;
    *linkp = NULL;
    if (link->draining) {   /* called from on_verdict: free when the drain unwinds */
        link->destroy_pending = true;
        return;
    }
    link_free(link);
}

int
fe_broker_link_submit(struct fe_broker_link *link, const Sluice__Job *job, struct sl_body *body)
{
    Sluice__Job copy = *job;    /* shallow: only to fill in size */
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    const char *id = sl_wire_job_id_valid(job->job_id) ? job->job_id : "-";
    const char *error;
    zmq_msg_t fmsg, bmsg;

    SL_BUG_ON(link->destroy_pending);
    copy.size = body->len;
    frame.kind_case = SLUICE__FRAME__KIND_JOB;
    frame.job = &copy;
    if (sl_wire_pack(&frame, &fmsg, &error) < 0) {
        sl_error("%s: cannot send job to broker: %s", id, error);
        return -1;
    }
    if (zmq_msg_send(&fmsg, link->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int saved = errno;
        zmq_msg_close(&fmsg);
        if (saved == EAGAIN)
            sl_warn("%s: no broker can take the job now (none connected or queue full)", id);
        else
            sl_error("%s: cannot send job to broker: %s", id, zmq_strerror(saved));
        link_rearm(link);
        return -1;
    }
    if (body->len == 0) {
        zmq_msg_init(&bmsg);
    } else if (zmq_msg_init_data(&bmsg, body->data, body->len, sl_body_zmq_free,
                                 sl_body_ref(body)) != 0) {
        sl_bug(__FILE__, __LINE__, "zmq_msg_init_data: out of memory");
    }
    /* The first part was accepted, so the high-water mark cannot refuse
     * the rest of the message. */
    if (zmq_msg_send(&bmsg, link->sock, ZMQ_DONTWAIT) < 0) {
        sl_error("%s: cannot send job body to broker: %s", id, zmq_strerror(errno));
        zmq_msg_close(&bmsg);   /* drops our body reference */
        link_rearm(link);
        return -1;
    }
    link->n_jobs++;
    link_rearm(link);
    return 0;
}
