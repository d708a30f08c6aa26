/* scan_net.c - connecting to scanner daemons, deadline-bound I/O, server
 * failover and concurrent scans (scan.h).
 *
 * Sockets are non-blocking and every wait is a poll() against the
 * caller's deadline, so a daemon that accepts and then hangs costs at
 * most its timeout. send() uses MSG_NOSIGNAL: a scanner closing early
 * (clamd past StreamMaxLength) must not SIGPIPE the whole process, which
 * in `sluice all` also holds the frontend. */
#include "scan.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "worker_metrics.h"
#include "conf/sl_config.h"
#include "util/sl_addr.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define SCAN_MAX_ERROR 900 /* bytes of collected failure text */

void
scan_strv_add(char ***v, size_t *n, const char *s)
{
    *v = sl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = sl_strdup(s);
}

void
scan_result_free(struct scan_result *r)
{
    sl_free_and_clear(&r->error);
    sl_free_and_clear(&r->server);
    sl_free_and_clear(&r->unchecked_reason);
    sl_free_and_clear(&r->action);
    sl_strv_free(r->viruses, r->n_viruses);
    sl_strv_free(r->tests, r->n_tests);
    const char *scanner = r->scanner;
    memset(r, 0, sizeof(*r));
    r->scanner = scanner;
}

unsigned long long
scan_deadline(const struct scan_input *in, unsigned timeout_s)
{
    unsigned long long d = sl_now_mono_ms() + (unsigned long long)timeout_s * 1000;

    if (in->deadline_ms != 0 && in->deadline_ms < d)
        d = in->deadline_ms;
    return d;
}

/* Spam scoring is about the text, not about large attachments: scanning
 * the head, cut at a line end so that the scanner sees whole lines, is
 * what amavisd-new >= 2.7 does and spamc's -s limit intends. */
size_t
scan_spam_len(const struct scan_input *in, size_t max_size, bool *truncated_r)
{
    size_t len = in->len;

    *truncated_r = max_size > 0 && len > max_size;
    if (!*truncated_r)
        return len;
    len = max_size;
    while (len > 0 && in->data[len - 1] != '\n')
        len--;
    return len > 0 ? len : max_size;
}

/* poll for ev until deadline: 1 ready, 0 timed out, -1 error (errno) */
static int
wait_fd(int fd, short ev, unsigned long long deadline_ms)
{
    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        struct pollfd p = {.fd = fd, .events = ev};
        int r;

        if (now >= deadline_ms)
            return 0;
        r = poll(&p, 1, (int)(deadline_ms - now > 1000000 ? 1000000 : deadline_ms - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            continue; /* loop re-checks the clock */
        return 1;
    }
}

static int
connect_addr(const struct sockaddr *sa, socklen_t salen, unsigned long long deadline_ms, int *fd_r,
             int *errno_r)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t elen = sizeof(err);

    if (fd < 0) {
        *errno_r = errno;
        return -1;
    }
    if (connect(fd, sa, salen) == 0)
        goto done;
    if (errno != EINPROGRESS && errno != EAGAIN) {
        *errno_r = errno;
        close(fd);
        return -1;
    }
    switch (wait_fd(fd, POLLOUT, deadline_ms)) {
    case 0:
        *errno_r = ETIMEDOUT;
        close(fd);
        return -1;
    case -1:
        *errno_r = errno;
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
        *errno_r = err != 0 ? err : errno;
        close(fd);
        return -1;
    }
done:
    *fd_r = fd;
    return 0;
}

int
scan_connect(const char *server, unsigned timeout_ms, int *fd_r, char **error_r)
{
    unsigned long long deadline = sl_now_mono_ms() + timeout_ms;
    const char *path = sl_strcase_prefix(server, "unix:");
    int err = 0;

    *fd_r = -1;
    if (path != NULL) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sun.sun_path)) {
            *error_r = sl_asprintf("%s: path too long", server);
            return -1;
        }
        strcpy(sun.sun_path, path);
        if (connect_addr((struct sockaddr *)&sun, sizeof(sun), deadline, fd_r, &err) == 0)
            return 0;
        *error_r = sl_asprintf("%s: connect: %s", server, strerror(err));
        return -1;
    }

    char *host;
    unsigned port;
    char portbuf[8];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (sl_hostport_parse(server, &host, &port) < 0) {
        *error_r = sl_asprintf("%s: not unix:/path or host:port", server);
        return -1;
    }
    snprintf(portbuf, sizeof(portbuf), "%u", port);
    int gai = getaddrinfo(host, portbuf, &hints, &res);
    free(host);
    if (gai != 0) {
        *error_r = sl_asprintf("%s: %s", server, gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (connect_addr(ai->ai_addr, ai->ai_addrlen, deadline, fd_r, &err) == 0)
            break;
    freeaddrinfo(res);
    if (*fd_r >= 0)
        return 0;
    *error_r = sl_asprintf("%s: connect: %s", server, strerror(err != 0 ? err : EHOSTUNREACH));
    return -1;
}

int
scan_send_all(int fd, const void *buf, size_t len, unsigned long long deadline_ms, char **error_r)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline_ms);
            if (r == 1)
                continue;
            *error_r = sl_asprintf("send: %s", r == 0 ? "timed out" : strerror(errno));
            return -1;
        }
        *error_r = sl_asprintf("send: %s", n == 0 ? "nothing sent" : strerror(errno));
        return -1;
    }
    return 0;
}

ssize_t
scan_recv(int fd, void *buf, size_t len, unsigned long long deadline_ms, char **error_r)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(fd, POLLIN, deadline_ms);
            if (r == 1)
                continue;
            *error_r = sl_asprintf("read: %s", r == 0 ? "timed out" : strerror(errno));
            return -1;
        }
        int e = errno;
        *error_r = sl_asprintf("read: %s", strerror(e));
        errno = e;
        return -1;
    }
}

int
scan_recv_all(int fd, size_t max, unsigned long long deadline_ms, char **buf_r, size_t *len_r,
              char **error_r)
{
    size_t cap = 4096, len = 0;
    char *buf = sl_malloc(cap + 1);

    for (;;) {
        if (len == cap) {
            if (cap >= max) {
                free(buf);
                *error_r = sl_asprintf("reply larger than %zu bytes", max);
                return -1;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = sl_realloc(buf, cap + 1);
        }
        ssize_t n = scan_recv(fd, buf + len, cap - len, deadline_ms, error_r);
        if (n < 0 && errno == ECONNRESET && len > 0) {
            /* the peer answered, then closed with our data unread (clamd
             * past StreamMaxLength): the answer stands */
            sl_free_and_clear(error_r);
            n = 0;
        }
        if (n < 0) {
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *buf_r = buf;
    *len_r = len;
    return 0;
}

void
scan_with_failover(const char *scanner, const struct sl_scanner_config *cfg,
                   const struct scan_input *in, scan_try_fn *try_fn, struct scan_result *res)
{
    unsigned long long start = sl_now_mono_ms();
    char *errors = NULL;

    res->scanner = scanner;
    if (cfg->n_servers == 0) {
        res->status = SCAN_OFF;
        return;
    }
    for (size_t i = 0; i < cfg->n_servers; i++) {
        char *error = NULL;
        struct scan_result one = {.scanner = scanner};

        if (in->deadline_ms != 0 && sl_now_mono_ms() >= in->deadline_ms) {
            error = sl_strdup("message deadline passed");
            i = cfg->n_servers - 1; /* no point in trying the others */
        } else if (try_fn(cfg->servers[i], cfg, in, &one, &error) == 0) {
            scan_result_free(res);
            *res = one;
            res->scanner = scanner;
            res->status = SCAN_OK;
            res->server = sl_strdup(cfg->servers[i]);
            res->ms = sl_now_mono_ms() - start;
            free(errors);
            return;
        }
        scan_result_free(&one);
        if (strncmp(error, cfg->servers[i], strlen(cfg->servers[i])) != 0) {
            char *t = sl_asprintf("%s: %s", cfg->servers[i], error); /* say which */
            free(error);
            error = t;
        }
        sl_warn("%s: %s failed: %s%s", in->job_id, scanner, error,
                i + 1 < cfg->n_servers ? "; trying the next server" : "");
        worker_metrics_scanner_error(scanner);
        if (errors == NULL) {
            errors = sl_asprintf("%s", error);
        } else if (strlen(errors) < SCAN_MAX_ERROR) {
            char *t = sl_asprintf("%s; %s", errors, error);
            free(errors);
            errors = t;
        }
        free(error);
    }
    res->status = SCAN_FAILED;
    res->error = errors;
    res->ms = sl_now_mono_ms() - start;
}

/* ---- concurrency ------------------------------------------------------ */

/* A worker thread's helpers are created once and reused for every message:
 * creating and joining a thread per scanner call cost about a tenth of
 * sluice's CPU per message in the clamd benchmark (pthread_create, fresh
 * stacks and TLS; docs/benchmarks.md). */
struct scan_helper {
    struct scan_helpers *h;
    pthread_t thread;
    const struct scan_task *task; /* set by scan_parallel, cleared when done */
};

struct scan_helpers {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a task was handed out, or quit */
    pthread_cond_t done; /* a task finished (CLOCK_MONOTONIC) */
    struct scan_helper slots[SCAN_MAX_TASKS];
    size_t n_threads;
    size_t running;
    bool quit;
};

static void *
helper_main(void *arg)
{
    struct scan_helper *slot = arg;
    struct scan_helpers *h = slot->h;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (slot->task == NULL && !h->quit)
            pthread_cond_wait(&h->work, &h->lock);
        if (slot->task == NULL)
            break;
        const struct scan_task *t = slot->task;
        pthread_mutex_unlock(&h->lock);
        t->fn(t->arg);
        pthread_mutex_lock(&h->lock);
        slot->task = NULL;
        h->running--;
        pthread_cond_signal(&h->done);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

struct scan_helpers *
scan_helpers_new(void)
{
    struct scan_helpers *h = sl_calloc(1, sizeof(*h));
    pthread_condattr_t ca;

    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->work, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->done, &ca);
    pthread_condattr_destroy(&ca);
    return h;
}

void
scan_helpers_destroy(struct scan_helpers **hp)
{
    struct scan_helpers *h = *hp;

    if (h == NULL)
        return;
    *hp = NULL;
    pthread_mutex_lock(&h->lock);
    h->quit = true;
    pthread_cond_broadcast(&h->work);
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < h->n_threads; i++)
        pthread_join(h->slots[i].thread, NULL);
    pthread_cond_destroy(&h->work);
    pthread_cond_destroy(&h->done);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void
scan_parallel(struct scan_helpers *h, const struct scan_task *tasks, size_t n,
              void (*keepalive)(void *ctx), void *ctx)
{
    SL_BUG_ON(n > SCAN_MAX_TASKS);
    /* Helpers are started on first need, outside the lock. */
    while (h->n_threads < n) {
        struct scan_helper *slot = &h->slots[h->n_threads];
        slot->h = h;
        int ret = pthread_create(&slot->thread, NULL, helper_main, slot);
        if (ret != 0) {
            sl_warn("scan: pthread_create: %s; scanning inline", strerror(ret));
            break;
        }
        h->n_threads++;
    }
    pthread_mutex_lock(&h->lock);
    SL_BUG_ON(h->running != 0); /* one scan_parallel at a time per helpers */
    h->running = n;
    for (size_t i = 0; i < n && i < h->n_threads; i++)
        h->slots[i].task = &tasks[i];
    pthread_cond_broadcast(&h->work);
    /* No thread for the rest: run them here (the brokers may miss
     * heartbeats while they run, but the message is still scanned). */
    for (size_t i = h->n_threads; i < n; i++) {
        pthread_mutex_unlock(&h->lock);
        tasks[i].fn(tasks[i].arg);
        pthread_mutex_lock(&h->lock);
        h->running--;
    }
    while (h->running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->done, &h->lock, &ts);
        if (h->running > 0 && keepalive != NULL) {
            pthread_mutex_unlock(&h->lock);
            keepalive(ctx);
            pthread_mutex_lock(&h->lock);
        }
    }
    pthread_mutex_unlock(&h->lock);
}
