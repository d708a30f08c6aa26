/* quar_pool.c - store calls on threads, answers on the loop (quar_pool.h).
 *
 * A call is shared by its loop side and its thread side; whoever is
 * through last frees it. Both sides change its state under the pool's
 * mutex: the thread activates the call's event only while the loop side
 * still holds it, and the loop side frees the event only after marking
 * itself gone, so neither touches what the other freed. The event is both
 * the deadline (EV_TIMEOUT) and the completion (activated by the thread;
 * libevent is made thread-safe in main(), evthread_use_pthreads). */
#include "quar_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include "conf/sl_config.h"
#include "quar/sl_quar.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

struct fe_qcall {
    struct fe_qcall *next; /* the queue */
    struct fe_qpool *pool;
    fe_qpool_work_fn *work;
    fe_qpool_done_fn *done;
    void (*free_arg)(void *arg);
    void *arg;
    struct event *ev;
    int status;
    bool thread_done; /* work() returned (or was dropped) */
    bool loop_gone;   /* done() called or the call cancelled */
};

/* One thread and the store handle it owns. */
struct pool_thread {
    struct fe_qpool *pool;
    pthread_t tid;
    struct sl_quar_store *store;
};

struct fe_qpool {
    struct event_base *base;
    const struct sl_config *config;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fe_qcall *head, *tail;
    bool stopping;
    struct pool_thread *threads;
    unsigned n_threads;
};

static void
call_free(struct fe_qcall *c)
{
    if (c->free_arg != NULL)
        c->free_arg(c->arg);
    free(c);
}

static void *
pool_thread(void *arg)
{
    struct pool_thread *pt = arg;
    struct fe_qpool *p = pt->pool;
    struct sl_quar_store *store = pt->store;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->head == NULL)
            break;
        struct fe_qcall *c = p->head;
        p->head = c->next;
        if (p->head == NULL)
            p->tail = NULL;
        bool skip = c->loop_gone; /* nobody waits for it any more */
        pthread_mutex_unlock(&p->mu);
        int status = skip ? -1 : c->work(store, c->arg);
        pthread_mutex_lock(&p->mu);
        c->status = status;
        c->thread_done = true;
        if (c->loop_gone) {
            pthread_mutex_unlock(&p->mu);
            call_free(c);
            pthread_mutex_lock(&p->mu);
        } else {
            event_active(c->ev, EV_READ, 0);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct fe_qpool *
fe_qpool_new(struct event_base *base, const struct sl_config *config, char **error_r)
{
    unsigned n = config->quarantine.threads > 0 ? config->quarantine.threads : 1;
    struct pool_thread *threads = sl_calloc(n, sizeof(*threads));
    struct fe_qpool *p;

    /* Every thread's store is opened here, before the frontend gives up
     * root (its key may be readable by root only), and a bad key or
     * store name stops the start rather than the first virus. A sql:
     * store connects at its first use. */
    for (unsigned i = 0; i < n; i++) {
        if ((threads[i].store = sl_quar_store_open(config, error_r)) == NULL) {
            for (unsigned k = 0; k < i; k++)
                sl_quar_store_close(&threads[k].store);
            free(threads);
            return NULL;
        }
    }
    p = sl_calloc(1, sizeof(*p));
    p->base = base;
    p->config = config;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->n_threads = n;
    p->threads = threads;
    for (unsigned i = 0; i < n; i++) {
        threads[i].pool = p;
        SL_BUG_ON(pthread_create(&threads[i].tid, NULL, pool_thread, &threads[i]) != 0);
    }
    return p;
}

void
fe_qpool_destroy(struct fe_qpool **pp)
{
    struct fe_qpool *p = *pp;

    if (p == NULL)
        return;
    *pp = NULL;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    /* the queue is dropped: its loop sides are gone (the jobs were freed) */
    while (p->head != NULL) {
        struct fe_qcall *c = p->head;
        p->head = c->next;
        SL_BUG_ON(!c->loop_gone);
        call_free(c);
    }
    p->tail = NULL;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i].tid, NULL);
        sl_quar_store_close(&p->threads[i].store);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

/* The loop side is through: free the call if the thread is too. */
static void
call_loop_gone(struct fe_qcall *c)
{
    struct fe_qpool *p = c->pool;
    bool free_now;

    pthread_mutex_lock(&p->mu);
    c->loop_gone = true;
    free_now = c->thread_done;
    event_free(c->ev); /* under the mutex: the thread activates it only under it */
    c->ev = NULL;
    pthread_mutex_unlock(&p->mu);
    if (free_now)
        call_free(c);
}

static void
call_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct fe_qcall *c = arg;
    struct fe_qpool *p = c->pool;
    bool finished;
    int status;

    (void)fd;
    pthread_mutex_lock(&p->mu);
    finished = c->thread_done;
    status = c->status;
    pthread_mutex_unlock(&p->mu);
    fe_qpool_done_fn *done = c->done;
    void *done_arg = c->arg;
    /* the call is over for the caller once done() runs (it must not
     * cancel it); it is freed by whoever is through last */
    bool timed_out = !finished && (what & EV_TIMEOUT);
    if (!finished && !timed_out)
        return; /* cannot happen: activated only when finished */
    /* done() before the free: arg must still be valid in it */
    done(done_arg, finished ? status : -1, timed_out);
    call_loop_gone(c);
}

struct fe_qcall *
fe_qpool_submit(struct fe_qpool *p, fe_qpool_work_fn *work, fe_qpool_done_fn *done,
                void (*free_arg)(void *arg), void *arg, unsigned timeout_s)
{
    struct fe_qcall *c = sl_calloc(1, sizeof(*c));
    struct timeval tv = {.tv_sec = timeout_s > 0 ? timeout_s : 1};

    c->pool = p;
    c->work = work;
    c->done = done;
    c->free_arg = free_arg;
    c->arg = arg;
    c->ev = event_new(p->base, -1, 0, call_on_event, c);
    SL_BUG_ON(c->ev == NULL);
    event_add(c->ev, &tv);
    pthread_mutex_lock(&p->mu);
    if (p->tail != NULL)
        p->tail->next = c;
    else
        p->head = c;
    p->tail = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return c;
}

void
fe_qpool_cancel(struct fe_qcall **cp)
{
    struct fe_qcall *c = *cp;

    if (c == NULL)
        return;
    *cp = NULL;
    call_loop_gone(c);
}
