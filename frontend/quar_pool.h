/* quar_pool.h - the quarantine store's calls off the frontend's event
 * loop: a few threads (quarantine.threads), each with its own store handle
 * (lib/quar: fsync, libpq are blocking), and the answer back on the loop.
 *
 * Every call has a deadline on the loop (quarantine.timeout, from its
 * submission, queueing included): past it the caller hears "timed out"
 * at once and the call's own result, whenever it comes, is dropped. The
 * store functions bound themselves too (libpq's statement and TCP
 * timeouts), so a thread is not lost for long.
 *
 * Runs in the frontend's libevent loop; work() runs on a pool thread and
 * must touch nothing of the loop's. */
#ifndef SLUICE_FRONTEND_QUAR_POOL_H
#define SLUICE_FRONTEND_QUAR_POOL_H

#include <stdbool.h>
#include <event2/event.h>

struct sl_config;
struct sl_quar_store;
struct fe_qpool;
struct fe_qcall;

/* On a pool thread, with that thread's store. Returns a status for
 * done(). */
typedef int fe_qpool_work_fn(struct sl_quar_store *store, void *arg);
/* On the loop: status is work()'s, or -1 with timed_out. arg is still
 * the caller's; freeing it is free_arg's job (below). */
typedef void fe_qpool_done_fn(void *arg, int status, bool timed_out);

/* Opens each thread's store now (before the frontend gives up root: the
 * key). NULL with *error_r when one cannot be opened. */
struct fe_qpool *fe_qpool_new(struct event_base *base, const struct sl_config *config,
                              char **error_r);
/* Joins the threads; calls still queued are dropped (their arg freed). */
void fe_qpool_destroy(struct fe_qpool **poolp);

/* Queues work(arg). done() is called once, from the loop, never from
 * inside this call, unless the call is cancelled first. free_arg(arg) is
 * called once both sides are through with it (possibly on a pool thread;
 * NULL: arg is not freed). */
struct fe_qcall *fe_qpool_submit(struct fe_qpool *pool, fe_qpool_work_fn *work,
                                 fe_qpool_done_fn *done, void (*free_arg)(void *arg), void *arg,
                                 unsigned timeout_s);
/* done() will not be called; the work may still run. *callp may be NULL. */
void fe_qpool_cancel(struct fe_qcall **callp);

#endif
