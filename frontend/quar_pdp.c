/* quar_pdp.c - the AM.PDP release socket (quar_pdp.h). */
#include "quar_pdp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include "quar_pool.h"
#include "conf/sl_config.h"
#include "quar/sl_quar.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define PDP_LINE_MAX 8192  /* amavis' lines are short; more is not AM.PDP */
#define PDP_ATTRS_MAX 2000 /* attributes in one request */
#define PDP_IDLE_S 300     /* a connection with nothing to say */

struct pdp_conn;

struct fe_pdp_server {
    struct event_base *base;
    const struct sl_config *config;
    struct fe_qpool *pool;
    char *hostname;
    char *path;
    struct evconnlistener *listener;
    struct pdp_conn *conns;
};

struct pdp_conn {
    struct pdp_conn *next, *prev;
    struct fe_pdp_server *srv;
    struct bufferevent *bev;
    struct sl_pdp_request req; /* being read */
    struct fe_qcall *call;     /* the request being answered */
    bool eof;                  /* the client is done: close after the answer */
};

/* One request on a store thread; the connection waits (c is not touched
 * on the thread, and the call is cancelled if c goes). */
struct pdp_job {
    struct pdp_conn *c;
    const struct sl_config *config;
    const char *hostname;
    struct sl_pdp_request req;
    struct sl_buf out;
};

static void
conn_free(struct pdp_conn *c)
{
    struct fe_pdp_server *s = c->srv;

    fe_qpool_cancel(&c->call);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    sl_pdp_request_clear(&c->req);
    free(c);
}

static int
pdp_work(struct sl_quar_store *store, void *arg)
{
    struct pdp_job *j = arg;

    if (store == NULL) {
        sl_pdp_encode(&j->out, "setreply", "450 4.5.0 Failure: quarantine store unavailable");
        sl_buf_append(&j->out, "\r\n", 2);
        return -1;
    }
    sl_pdp_answer(store, j->config, j->hostname, &j->req, &j->out);
    return 0;
}

static void
pdp_job_free(void *arg)
{
    struct pdp_job *j = arg;

    sl_pdp_request_clear(&j->req);
    sl_buf_free(&j->out);
    free(j);
}

static void conn_on_read(struct bufferevent *bev, void *arg);

/* The answer is in: written, and the next request read. */
static void
pdp_done(void *arg, int status, bool timed_out)
{
    struct pdp_job *j = arg;
    struct pdp_conn *c = j->c;

    (void)status;
    c->call = NULL;
    if (timed_out) {
        struct sl_buf b;
        sl_buf_init(&b);
        sl_pdp_encode(&b, "setreply", "450 4.5.0 Failure: timed out");
        sl_buf_append(&b, "\r\n", 2);
        bufferevent_write(c->bev, b.data, b.len);
        sl_buf_free(&b);
    } else {
        bufferevent_write(c->bev, j->out.data, j->out.len);
    }
    bufferevent_enable(c->bev, EV_READ);
    conn_on_read(c->bev, c); /* a next request may be in the buffer already */
}

static void
conn_on_read(struct bufferevent *bev, void *arg)
{
    struct pdp_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line;

    while (c->call == NULL && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
        const char *error;
        int r = len > PDP_LINE_MAX || c->req.n >= PDP_ATTRS_MAX
                    ? -2
                    : sl_pdp_feed_line(&c->req, line, len, &error);
        free(line);
        if (r == -2) {
            sl_warn("quarantine: AM.PDP: request too large; connection closed");
            conn_free(c);
            return;
        }
        if (r < 0) {
            /* as amavis: logged and skipped */
            sl_warn("quarantine: AM.PDP: %s", error);
            continue;
        }
        if (r == 0)
            continue;
        struct pdp_job *j = sl_calloc(1, sizeof(*j));
        j->c = c;
        j->config = c->srv->config;
        j->hostname = c->srv->hostname;
        j->req = c->req;
        memset(&c->req, 0, sizeof(c->req));
        sl_buf_init(&j->out);
        bufferevent_disable(bev, EV_READ); /* one request at a time, in order */
        c->call = fe_qpool_submit(c->srv->pool, pdp_work, pdp_done, pdp_job_free, j,
                                  c->srv->config->quarantine.timeout_s +
                                      c->srv->config->reinject.timeout_s + 5);
        return;
    }
    if (c->call == NULL && evbuffer_get_length(in) > PDP_LINE_MAX) {
        sl_warn("quarantine: AM.PDP: line too long; connection closed");
        conn_free(c);
        return;
    }
    if (c->call == NULL && c->eof && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void
conn_on_write(struct bufferevent *bev, void *arg)
{
    struct pdp_conn *c = arg;

    if (c->eof && c->call == NULL && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct pdp_conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_EOF) {
        c->eof = true;
        if (c->call == NULL)
            conn_free(c); /* nothing to answer any more */
        return;
    }
    conn_free(c); /* error or idle timeout */
}

static void
pdp_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
    struct fe_pdp_server *s = arg;
    struct pdp_conn *c = sl_calloc(1, sizeof(*c));
    struct timeval idle = {.tv_sec = PDP_IDLE_S};

    (void)l;
    (void)sa;
    (void)salen;
    c->srv = s;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    SL_BUG_ON(c->bev == NULL);
    bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
}

struct fe_pdp_server *
fe_pdp_server_new(struct event_base *base, const struct sl_config *config, struct fe_qpool *pool,
                  const char *hostname, char **error_r)
{
    const char *path = config->quarantine.release_socket;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        *error_r = sl_asprintf("quarantine.release_socket %s: path too long", path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    /* a socket left by a process that died; anything else stays */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 16) < 0 ||
        chmod(path, 0660) < 0) {
        *error_r = sl_asprintf("quarantine.release_socket %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct fe_pdp_server *s = sl_calloc(1, sizeof(*s));
    s->base = base;
    s->config = config;
    s->pool = pool;
    s->hostname = sl_strdup(hostname);
    s->path = sl_strdup(path);
    s->listener = evconnlistener_new(base, pdp_on_accept, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    SL_BUG_ON(s->listener == NULL);
    return s;
}

void
fe_pdp_server_destroy(struct fe_pdp_server **sp)
{
    struct fe_pdp_server *s = *sp;

    if (s == NULL)
        return;
    *sp = NULL;
    while (s->conns != NULL)
        conn_free(s->conns);
    evconnlistener_free(s->listener);
    unlink(s->path);
    free(s->path);
    free(s->hostname);
    free(s);
}
