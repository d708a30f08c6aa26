/* test_reply_map.c - the replies Postfix gets for each reinjection outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "frontend/reply_map.h"

#define MTA "smtp:[127.0.0.1]:10025"

static struct fe_reinject_result
result(const char *stage, struct fe_reinject_rcpt_result *r, size_t n)
{
    struct fe_reinject_result res = {.mta = MTA, .stage = stage, .rcpts = r, .n_rcpts = n};
    return res;
}

struct rcpt_case {
    int code;
    const char *reply;
    bool from_mta;
    const char *stage;
    const char *expect;
};

static const struct rcpt_case rcpt_cases[] = {
    /* accepted: amavisd-new's exact words, plus our id */
    {250, "250 2.0.0 Ok: queued as 4Xyz", true, NULL,
     "250 2.0.0 from MTA(" MTA "): 250 2.0.0 Ok: queued as 4Xyz (id=JOB)"},
    /* refused by :10025: its code and enhanced code, quoted */
    {550, "550 5.1.1 <u@x>: Recipient address rejected", true, "fwd-rcpt-to",
     "550 5.1.1 id=JOB, Rejected by next-hop MTA on relaying, from MTA(" MTA
     ") during fwd-rcpt-to: 550 5.1.1 <u@x>: Recipient address rejected"},
    {452, "452 4.5.3 Error: too many recipients", true, "fwd-rcpt-to",
     "452 4.5.3 id=JOB, Temporarily rejected by next-hop MTA on relaying, from MTA(" MTA
     ") during fwd-rcpt-to: 452 4.5.3 Error: too many recipients"},
    /* no enhanced code in the next hop's reply: derive one from the class */
    {554, "554 Transaction failed", true, "fwd-end-data",
     "554 5.0.0 id=JOB, Rejected by next-hop MTA on relaying, from MTA(" MTA
     ") during fwd-end-data: 554 Transaction failed"},
    /* a mismatched enhanced code is not trusted */
    {451, "451 5.0.0 odd", true, "fwd-data-cmd",
     "451 4.0.0 id=JOB, Temporarily rejected by next-hop MTA on relaying, from MTA(" MTA
     ") during fwd-data-cmd: 451 5.0.0 odd"},
    /* local failures are always 451, whatever code the caller filled in */
    {451, "Connection refused", false, "fwd-connect",
     "451 4.5.0 id=JOB, Temporary MTA failure on relaying, from MTA(" MTA
     ") during fwd-connect (Connection refused)"},
    {250, "bogus", false, "fwd-end-data",
     "451 4.5.0 id=JOB, Temporary MTA failure on relaying, from MTA(" MTA
     ") during fwd-end-data (bogus)"},
    /* a 2xx code not marked as from the MTA must never become a 250 */
    {250, NULL, false, NULL,
     "451 4.5.0 id=JOB, Temporary MTA failure on relaying, from MTA(" MTA ") during fwd (failed)"},
};

static void
test_rcpt_replies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
        const struct rcpt_case *c = &rcpt_cases[i];
        struct fe_reinject_rcpt_result r = {.code = c->code, .reply = (char *)c->reply,
                                            .from_mta = c->from_mta};
        struct fe_reinject_result res = result(c->stage, &r, 1);
        char out[512];
        fe_reply_for_rcpt("JOB", &res, &r, out, sizeof(out));
        assert_string_equal(out, c->expect);
    }
}

static void
assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", s, prefix);
}

/* a 421 closes :10025's connection, not ours: our client gets 451 */
static void
test_421_becomes_451(void **state)
{
    (void)state;
    char out[512];
    struct fe_reinject_rcpt_result r = {421, "421 4.3.2 Service shutting down", true};
    struct fe_reinject_result res = result("fwd-rcpt-to", &r, 1);

    fe_reply_for_rcpt("JOB", &res, &r, out, sizeof(out));
    assert_string_equal(out, "451 4.3.2 id=JOB, Temporarily rejected by next-hop MTA on "
                             "relaying, from MTA(" MTA ") during fwd-rcpt-to: 421 4.3.2 Service "
                             "shutting down");
}

static void
test_combined(void **state)
{
    (void)state;
    char out[512];
    const char *ok_lines[2] = {"250 2.7.0 Ok, discarded, id=JOB - BANNED",
                               "250 2.0.0 from MTA(" MTA "): 250 2.0.0 Ok: queued as A (id=JOB)"};
    int all_ok[2] = {250, 250};

    /* all accepted: the line of the recipient that was reinjected */
    fe_reply_combined("JOB", all_ok, ok_lines, 2, 1, out, sizeof(out));
    assert_string_equal(out, ok_lines[1]);

    /* split outcome: never 250 (that would lose the refused recipient) */
    const char *split_lines[2] = {ok_lines[1], "550 5.1.1 id=JOB, Rejected by next-hop MTA"};
    int split[2] = {250, 550};
    fe_reply_combined("JOB", split, split_lines, 2, 0, out, sizeof(out));
    assert_prefix(out, "451 4.5.0 id=JOB, not every recipient could be handled");

    /* all refused permanently: the first refusal */
    const char *none_lines[2] = {"550 5.1.1 id=JOB, Rejected by next-hop MTA",
                                 "554 5.7.0 Reject, id=JOB - INFECTED"};
    int none[2] = {550, 554};
    fe_reply_combined("JOB", none, none_lines, 2, 2, out, sizeof(out));
    assert_prefix(out, "550 5.1.1 id=JOB, Rejected by next-hop MTA");

    /* refused, but some only for now: a 4xx, or the temporary refusal
     * would become a bounce */
    const char *mixed_lines[2] = {"550 5.1.1 id=JOB, Rejected by next-hop MTA",
                                  "451 4.5.0 id=JOB, Temporary MTA failure"};
    int mixed[2] = {550, 451};
    fe_reply_combined("JOB", mixed, mixed_lines, 2, 2, out, sizeof(out));
    assert_prefix(out, "451 4.5.0 id=JOB, not every recipient could be handled");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rcpt_replies),
        cmocka_unit_test(test_421_becomes_451),
        cmocka_unit_test(test_combined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
