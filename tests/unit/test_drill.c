/* test_drill.c - the drill's pure parts (cli/sl_drill.h): the tally that
 * turns replies and copies into sent/accepted/delivered/lost/duplicates/
 * tempfails, the latency percentiles, and the parsers of the Message-IDs
 * and recipients the sink reads. tests/e2e/t_drill.sh runs the drill
 * against a cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/sl_drill.h"

static void
test_percentile(void **state)
{
    unsigned long long v[100], one[1] = {7};

    (void)state;
    assert_int_equal(sl_drill_percentile(NULL, 0, 50), 0);
    assert_int_equal(sl_drill_percentile(one, 1, 50), 7);
    assert_int_equal(sl_drill_percentile(one, 1, 99), 7);
    /* 100..1 in reverse: nearest rank */
    for (int i = 0; i < 100; i++)
        v[i] = (unsigned long long)(100 - i);
    assert_int_equal(sl_drill_percentile(v, 100, 50), 50);
    assert_int_equal(sl_drill_percentile(v, 100, 99), 99);
    assert_int_equal(sl_drill_percentile(v, 100, 100), 100);
    assert_int_equal(sl_drill_percentile(v, 100, 1), 1);
    /* 10 values: p99 is the largest, p50 the 5th */
    unsigned long long ten[10] = {9, 1, 8, 2, 7, 3, 6, 4, 5, 1000};
    assert_int_equal(sl_drill_percentile(ten, 10, 50), 5);
    assert_int_equal(sl_drill_percentile(ten, 10, 99), 1000);
    assert_int_equal(sl_drill_percentile(ten, 10, 90), 9);
}

static void
test_msgid(void **state)
{
    unsigned seq = 99;

    (void)state;
    assert_int_equal(sl_drill_msgid_seq("<drill-AbC_-9-17@drill.invalid>", "AbC_-9", &seq), 0);
    assert_int_equal(seq, 17);
    /* as sl_message_header gives it: a leading blank */
    assert_int_equal(sl_drill_msgid_seq(" <drill-R1-0@DRILL.invalid> ", "R1", &seq), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(sl_drill_msgid_seq("drill-R1-5@drill.invalid", "R1", &seq), 0);
    assert_int_equal(seq, 5);
    /* another run, other shapes, too large */
    assert_int_equal(sl_drill_msgid_seq("<drill-R2-5@drill.invalid>", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("<drill-R1-@drill.invalid>", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("<drill-R1-5x@drill.invalid>", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("<drill-R1-5@example.com>", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("<drill-R1-5@drill.invalid", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("<drill-R1-99999999999@drill.invalid>", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("", "R1", &seq), -1);
    assert_int_equal(sl_drill_msgid_seq("<x@y>", "R1", &seq), -1);
}

static void
test_rcpt_index(void **state)
{
    unsigned r = 99;

    (void)state;
    assert_int_equal(sl_drill_rcpt_index("rcpt1@drill.invalid", &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(sl_drill_rcpt_index("RCPT12@Drill.Invalid", &r), 0);
    assert_int_equal(r, 11);
    assert_int_equal(sl_drill_rcpt_index("rcpt0@drill.invalid", &r), -1);
    assert_int_equal(sl_drill_rcpt_index("rcpt101@drill.invalid", &r), -1);
    assert_int_equal(sl_drill_rcpt_index("rcpt1@example.com", &r), -1);
    assert_int_equal(sl_drill_rcpt_index("drill@drill.invalid", &r), -1);
    assert_int_equal(sl_drill_rcpt_index("rcpt", &r), -1);
}

/* The tally's summary has the counts of want (latencies: p50 and p99 of
 * want unless they are 0). */
static void
expect_summary(const struct sl_drill_tally *t, struct sl_drill_summary want)
{
    struct sl_drill_summary s;

    sl_drill_tally_summary(t, &s);
    assert_int_equal(s.sent, want.sent);
    assert_int_equal(s.accepted, want.accepted);
    assert_int_equal(s.delivered, want.delivered);
    assert_int_equal(s.lost, want.lost);
    assert_int_equal(s.duplicates, want.duplicates);
    assert_int_equal(s.tempfails, want.tempfails);
    assert_int_equal(s.rejected, want.rejected);
    assert_int_equal(s.unfinished, want.unfinished);
    assert_int_equal(s.foreign, want.foreign);
    if (want.p50_ms)
        assert_int_equal(s.p50_ms, want.p50_ms);
    if (want.p99_ms)
        assert_int_equal(s.p99_ms, want.p99_ms);
}

/* One message of each fate; the figures count messages. */
static void
test_tally_fates(void **state)
{
    struct sl_drill_tally *t = sl_drill_tally_new(6, 1);
    struct sl_drill_progress p;

    (void)state;
    /* 0: accepted at once, delivered */
    sl_drill_tally_attempt(t, 0, 100);
    sl_drill_tally_reply(t, 0, 0, 250, 110);
    assert_int_equal(sl_drill_tally_delivered(t, 0, 0), 1);
    /* 1: 4xx, retried, accepted: counts once; two tempfails */
    sl_drill_tally_attempt(t, 1, 200);
    sl_drill_tally_reply(t, 1, 0, 451, 210);
    assert_false(sl_drill_tally_final(t, 1));
    sl_drill_tally_deferred(t, 1);
    sl_drill_tally_attempt(t, 1, 1210);
    sl_drill_tally_deferred(t, 1); /* a lost connection */
    sl_drill_tally_attempt(t, 1, 3210);
    sl_drill_tally_reply(t, 1, 0, 250, 3300);
    assert_true(sl_drill_tally_final(t, 1));
    assert_int_equal(sl_drill_tally_delivered(t, 1, 0), 1);
    /* 2: accepted, two copies arrive: a duplicate */
    sl_drill_tally_attempt(t, 2, 300);
    sl_drill_tally_reply(t, 2, 0, 250, 320);
    assert_int_equal(sl_drill_tally_delivered(t, 2, 0), 1);
    assert_int_equal(sl_drill_tally_delivered(t, 2, 0), 2);
    /* 3: accepted, never arrives: lost */
    sl_drill_tally_attempt(t, 3, 400);
    sl_drill_tally_reply(t, 3, 0, 250, 430);
    assert_false(sl_drill_tally_all_delivered(t));
    /* 4: rejected (5xx is final: a later 250 changes nothing) */
    sl_drill_tally_attempt(t, 4, 500);
    sl_drill_tally_reply(t, 4, 0, 550, 510);
    sl_drill_tally_reply(t, 4, 0, 250, 520);
    assert_int_equal(sl_drill_tally_rcpt(t, 4, 0), SL_DRILL_REJECTED);
    /* 5: never sent. A copy of something else, and a number out of range */
    sl_drill_tally_foreign(t);
    assert_int_equal(sl_drill_tally_delivered(t, 6, 0), 0);
    assert_int_equal(sl_drill_tally_delivered(t, 0, 1), 0);

    sl_drill_tally_progress(t, &p);
    assert_int_equal(p.sent, 5);
    assert_int_equal(p.accepted, 4);
    assert_int_equal(p.delivered, 3);
    assert_int_equal(p.tempfails, 2);
    /* latencies 10, 3100, 20, 30 ms: p50 20, p99 3100 */
    expect_summary(t, (struct sl_drill_summary){.sent = 5,
                                                .accepted = 4,
                                                .delivered = 3,
                                                .lost = 1,
                                                .duplicates = 1,
                                                .tempfails = 2,
                                                .rejected = 1,
                                                .foreign = 3,
                                                .p50_ms = 20,
                                                .p99_ms = 3100});

    /* the lost one arrives after all */
    assert_int_equal(sl_drill_tally_delivered(t, 3, 0), 1);
    assert_true(sl_drill_tally_all_delivered(t));
    expect_summary(t, (struct sl_drill_summary){.sent = 5,
                                                .accepted = 4,
                                                .delivered = 4,
                                                .duplicates = 1,
                                                .tempfails = 2,
                                                .rejected = 1,
                                                .foreign = 3});
    sl_drill_tally_destroy(&t);
    assert_null(t);
    sl_drill_tally_destroy(&t); /* NULL is fine */
}

/* Several recipients: a message is accepted once every recipient is, and
 * a retry carries only those still pending (the client asks the tally). */
static void
test_tally_recipients(void **state)
{
    struct sl_drill_tally *t = sl_drill_tally_new(2, 3);

    (void)state;
    sl_drill_tally_attempt(t, 0, 0);
    sl_drill_tally_reply(t, 0, 0, 250, 5);
    sl_drill_tally_reply(t, 0, 1, 452, 5);
    sl_drill_tally_reply(t, 0, 2, 250, 5);
    assert_false(sl_drill_tally_final(t, 0));
    assert_int_equal(sl_drill_tally_rcpt(t, 0, 0), SL_DRILL_ACCEPTED);
    assert_int_equal(sl_drill_tally_rcpt(t, 0, 1), SL_DRILL_PENDING);
    sl_drill_tally_deferred(t, 0);
    assert_int_equal(sl_drill_tally_delivered(t, 0, 0), 1);
    assert_int_equal(sl_drill_tally_delivered(t, 0, 2), 1);
    /* recipient 1 has no copy yet: not delivered, not lost */
    expect_summary(t, (struct sl_drill_summary){.sent = 1, .unfinished = 1, .tempfails = 1});
    /* the retry: the pending recipient only */
    sl_drill_tally_attempt(t, 0, 1000);
    sl_drill_tally_reply(t, 0, 1, 250, 1040);
    assert_true(sl_drill_tally_final(t, 0));
    assert_false(sl_drill_tally_all_delivered(t));
    assert_int_equal(sl_drill_tally_delivered(t, 0, 1), 1);
    assert_true(sl_drill_tally_all_delivered(t));
    /* message 1: one recipient accepted, its copy lost, another rejected */
    sl_drill_tally_attempt(t, 1, 2000);
    sl_drill_tally_reply(t, 1, 0, 250, 2010);
    sl_drill_tally_reply(t, 1, 1, 550, 2010);
    sl_drill_tally_reply(t, 1, 2, 250, 2010);
    assert_int_equal(sl_drill_tally_delivered(t, 1, 2), 1);
    assert_int_equal(sl_drill_tally_delivered(t, 1, 2), 2);
    expect_summary(t, (struct sl_drill_summary){.sent = 2,
                                                .accepted = 1,
                                                .delivered = 1,
                                                .lost = 1,
                                                .rejected = 1,
                                                .duplicates = 1,
                                                .tempfails = 1,
                                                .p50_ms = 1040});
    sl_drill_tally_destroy(&t);
}

/* What a run with nothing sent yet reports. */
static void
test_tally_empty(void **state)
{
    struct sl_drill_tally *t = sl_drill_tally_new(3, 1);
    struct sl_drill_summary s;

    (void)state;
    assert_true(sl_drill_tally_all_delivered(t));
    sl_drill_tally_summary(t, &s);
    assert_int_equal(s.p50_ms + s.p99_ms, 0);
    expect_summary(t, (struct sl_drill_summary){0});
    sl_drill_tally_destroy(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile),       cmocka_unit_test(test_msgid),
        cmocka_unit_test(test_rcpt_index),       cmocka_unit_test(test_tally_fates),
        cmocka_unit_test(test_tally_recipients), cmocka_unit_test(test_tally_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
