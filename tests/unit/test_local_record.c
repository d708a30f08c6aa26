/* test_local_record.c - frontend/local_record.c through the record
 * interface (record.h), as job.c and outcome.c use it without Redis: a
 * retry finds the replies of the recipients accepted before, only while
 * the answer left the message to be retried; answers come from the loop;
 * the count and time bounds; abandon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "frontend/local_record.h"
#include "util/sl_util.h"

#define KEY_A                                                                                      \
    FE_LEDGER_KEY_PREFIX "aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000"
#define KEY_B                                                                                      \
    FE_LEDGER_KEY_PREFIX "bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000"

struct answer {
    bool called;
    size_t n;
    enum fe_ledger_state state[4];
    char *reply[4];
    char *mine;
};

static void
on_reserved(void *ctx, const struct fe_ledger_entry *entries, size_t n, const char *mine,
            const char *error)
{
    struct answer *a = ctx;

    assert_null(error);
    assert_true(n <= 4);
    a->called = true;
    a->n = n;
    a->mine = sl_strdup(mine);
    for (size_t i = 0; i < n; i++) {
        a->state[i] = entries[i].state;
        a->reply[i] = entries[i].reply != NULL ? sl_strdup(entries[i].reply) : NULL;
    }
}

static void
answer_free(struct answer *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->reply[i]);
    free(a->mine);
    memset(a, 0, sizeof(*a));
}

/* Reserves rcpts of key and runs the loop until the answer is in. */
static void
reserve(struct event_base *base, const struct fe_record *rec, const char *key,
        const char *const *rcpts, size_t n, struct answer *a)
{
    memset(a, 0, sizeof(*a));
    void *op = fe_record_reserve(rec, key, rcpts, n, on_reserved, a);
    assert_non_null(op);
    assert_false(a->called); /* never from inside the call */
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_true(a->called);
}

static void
test_retry_finds_accepted(void **state)
{
    struct event_base *base = event_base_new();
    struct fe_local_record *lr = fe_local_record_new(base, 100, 3600);
    struct fe_record rec = fe_record_of_local(lr);
    const char *rcpts[] = {"a@example.com", "b@example.com", "c@example.com"};
    const char *first[] = {"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok (id=X)", NULL,
                           "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok (id=X)"};
    struct answer a;

    (void)state;
    assert_false(rec.ops->finish_detached); /* lost with the process: abandon */
    /* first attempt: nothing known, all ours */
    reserve(base, &rec, KEY_A, rcpts, 3, &a);
    assert_string_equal(a.mine, "local");
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(a.state[i], FE_LEDGER_RESERVED);
    answer_free(&a);
    /* a and c accepted, b tempfailed: SMTP mode answers 451, Postfix
     * retries with all three */
    fe_record_record(&rec, "job1", KEY_A, "local", rcpts, first, 3);
    fe_record_release(&rec, KEY_A, "local", &rcpts[1], 1); /* nothing held: no-op */
    fe_record_answered(&rec, KEY_A, true);
    assert_int_equal(fe_local_record_count(lr), 2);
    reserve(base, &rec, KEY_A, rcpts, 3, &a);
    assert_int_equal(a.state[0], FE_LEDGER_DONE);
    assert_string_equal(a.reply[0], first[0]);
    assert_int_equal(a.state[1], FE_LEDGER_RESERVED);
    assert_null(a.reply[1]);
    assert_int_equal(a.state[2], FE_LEDGER_DONE);
    answer_free(&a);
    /* another message is another key */
    reserve(base, &rec, KEY_B, rcpts, 1, &a);
    assert_int_equal(a.state[0], FE_LEDGER_RESERVED);
    answer_free(&a);
    /* the retry got b through and was answered 250: forgotten */
    const char *second[] = {"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok (id=Y)"};
    fe_record_record(&rec, "job2", KEY_A, "local", &rcpts[1], second, 1);
    assert_int_equal(fe_local_record_count(lr), 3);
    fe_record_answered(&rec, KEY_A, false);
    assert_int_equal(fe_local_record_count(lr), 0);
    reserve(base, &rec, KEY_A, rcpts, 3, &a);
    assert_int_equal(a.state[0], FE_LEDGER_RESERVED);
    answer_free(&a);

    fe_local_record_destroy(&lr);
    assert_null(lr);
    event_base_free(base);
}

static void
test_bounds(void **state)
{
    struct event_base *base = event_base_new();
    struct fe_local_record *lr = fe_local_record_new(base, 3, 1);
    struct fe_record rec = fe_record_of_local(lr);
    const char *rcpts[] = {"a@example.com", "b@example.com"};
    const char *ok[] = {"250 ok a", "250 ok b"};
    struct answer a;

    (void)state;
    /* count: 2 + 2 recipients over a bound of 3: the older message goes */
    fe_record_record(&rec, "job1", KEY_A, "local", rcpts, ok, 2);
    fe_record_record(&rec, "job2", KEY_B, "local", rcpts, ok, 2);
    assert_int_equal(fe_local_record_count(lr), 2);
    reserve(base, &rec, KEY_A, rcpts, 2, &a);
    assert_int_equal(a.state[0], FE_LEDGER_RESERVED);
    answer_free(&a);
    reserve(base, &rec, KEY_B, rcpts, 2, &a);
    assert_int_equal(a.state[1], FE_LEDGER_DONE);
    answer_free(&a);
    /* time: after ttl nothing is left */
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    reserve(base, &rec, KEY_B, rcpts, 2, &a);
    assert_int_equal(a.state[0], FE_LEDGER_RESERVED);
    assert_int_equal(a.state[1], FE_LEDGER_RESERVED);
    answer_free(&a);
    assert_int_equal(fe_local_record_count(lr), 0);
    fe_local_record_destroy(&lr);
    event_base_free(base);
}

static void
test_abandon_and_destroy(void **state)
{
    struct event_base *base = event_base_new();
    struct fe_local_record *lr = fe_local_record_new(base, 100, 3600);
    struct fe_record rec = fe_record_of_local(lr);
    const char *rcpts[] = {"a@example.com"};
    struct answer a;

    (void)state;
    memset(&a, 0, sizeof(a));
    void *op = fe_record_reserve(&rec, KEY_A, rcpts, 1, on_reserved, &a);
    fe_record_abandon(&rec, &op);
    assert_null(op);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_false(a.called);
    /* an answer kept and given back: nothing to release, it is freed */
    struct fe_ledger_entry e = {.state = FE_LEDGER_RESERVED};
    struct fe_ledger_answer *ans = fe_ledger_answer_new(&e, 1, "local", NULL);
    fe_record_answer_release(&rec, KEY_A, rcpts, &ans);
    assert_null(ans);
    /* a pending answer at destroy is never given */
    (void)fe_record_reserve(&rec, KEY_A, rcpts, 1, on_reserved, &a);
    fe_local_record_destroy(&lr);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_false(a.called);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_finds_accepted),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_abandon_and_destroy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
