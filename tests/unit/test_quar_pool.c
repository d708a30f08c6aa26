/* test_quar_pool.c - frontend/quar_pool.c: calls run on the store threads
 * and answer on the loop, never from inside the submit; a call past its
 * deadline answers "timed out" at once and its late result is dropped
 * (its argument freed once the thread is through); a cancelled call
 * never answers; the pool stops with calls still queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "conf/sl_config.h"
#include "frontend/quar_pool.h"
#include "quar/sl_quar.h"

struct arg {
    int value;
    unsigned sleep_ms;
    int *freed; /* counts free_arg calls */
};

struct seen {
    int n, status, timed_out;
};
static struct seen seen;
static int in_submit;

static int
work(struct sl_quar_store *store, void *p)
{
    struct arg *a = p;
    assert_non_null(store); /* the thread opened its own */
    usleep(a->sleep_ms * 1000);
    return a->value;
}

static void
done(void *p, int status, bool timed_out)
{
    (void)p;
    assert_false(in_submit);
    seen.n++;
    seen.status = status;
    seen.timed_out += timed_out;
}

static void
free_arg(void *p)
{
    struct arg *a = p;
    __atomic_add_fetch(a->freed, 1, __ATOMIC_SEQ_CST);
    free(a);
}

static struct arg *
arg_new(int value, unsigned sleep_ms, int *freed)
{
    struct arg *a = calloc(1, sizeof(*a));
    a->value = value;
    a->sleep_ms = sleep_ms;
    a->freed = freed;
    return a;
}

static void
run_until(struct event_base *base, int n)
{
    for (int i = 0; i < 500 && seen.n < n; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(10 * 1000);
    }
}

static void
test_pool(void **state)
{
    char *ov = "quarantine.store=local:/tmp/sluice-test-pool", *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test", "", 0, &ov, 1, &error);
    struct event_base *base;
    struct fe_qpool *pool;
    int freed = 0;

    (void)state;
    assert_non_null(c);
    evthread_use_pthreads();
    base = event_base_new();
    pool = fe_qpool_new(base, c, &error);
    assert_non_null(pool);

    in_submit = 1;
    fe_qpool_submit(pool, work, done, free_arg, arg_new(7, 0, &freed), 5);
    in_submit = 0;
    run_until(base, 1);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.status, 7);
    assert_int_equal(freed, 1);

    /* past the deadline: "timed out" now, the thread's result dropped */
    fe_qpool_submit(pool, work, done, free_arg, arg_new(8, 2500, &freed), 1);
    run_until(base, 2);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.timed_out, 1);
    assert_int_equal(seen.status, -1);
    for (int i = 0; i < 300 && __atomic_load_n(&freed, __ATOMIC_SEQ_CST) < 2; i++)
        usleep(10 * 1000);
    assert_int_equal(freed, 2); /* freed by the thread, once through */

    /* cancelled: never answers, still freed */
    struct fe_qcall *call = fe_qpool_submit(pool, work, done, free_arg, arg_new(9, 100, &freed), 5);
    fe_qpool_cancel(&call);
    assert_null(call);
    for (int i = 0; i < 30; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(10 * 1000);
    }
    assert_int_equal(seen.n, 2);

    /* stopped with calls queued behind slow ones: all freed */
    for (int i = 0; i < 6; i++) {
        struct fe_qcall *q = fe_qpool_submit(pool, work, done, free_arg, arg_new(1, 50, &freed), 5);
        fe_qpool_cancel(&q);
    }
    fe_qpool_destroy(&pool);
    assert_int_equal(freed, 9);
    assert_int_equal(seen.n, 2);
    event_base_free(base);
    sl_config_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
