/* test_policy_quarantine.c - workers/policy_quarantine.c: which recipient
 * is quarantined under which of amavis' types, per category, per policy
 * bank and per recipient (the _quarantine_to maps); who is notified
 * (virus_admin and its kin, banned_admin falling back to virus_admin) and
 * who is warned (local recipients only); nothing for a tempfail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "conf/sl_config.h"
#include "workers/policy.h"

static struct sl_config *
config_with(char *const *ov, size_t n)
{
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test", "", 0, ov, n, &error);

    if (c == NULL)
        fail_msg("config: %s", error);
    return c;
}

static void
decide(const struct sl_config *c, const struct policy_facts *f, const char *origin,
       const char *const *rcpts, size_t n, struct policy_result *res)
{
    struct policy_view view;

    policy_select(c, origin, 10024, "192.0.2.1", &view);
    policy_decide(&view, f, "s@example.org", rcpts, n, "Hello", res);
}

static char *viruses[] = {"Eicar-Test-Signature"};
static char *banned[] = {"application/octet-stream,a.exe"};
static char *bad[] = {"Duplicate header field: \"Subject\""};
static char *why[] = {"clamd failed: connect: refused"};

static void
test_types_by_category(void **state)
{
    struct sl_config *c = config_with(NULL, 0);
    const char *rcpts[] = {"a@example.com"};
    struct policy_result res;
    struct policy_facts clean = {.size = 10};
    struct policy_facts virus = {.viruses = viruses, .n_viruses = 1, .size = 10};
    struct policy_facts ban = {.banned = banned, .n_banned = 1, .size = 10};
    struct policy_facts spam = {.spam_scanned = true, .spam_score = 1000, .size = 10};
    struct policy_facts spammy = {.spam_scanned = true, .spam_score = 6.5, .size = 10};
    struct policy_facts badh = {.bad_headers = bad, .n_bad_headers = 1, .size = 10};

    (void)state;
    decide(c, &clean, "default", rcpts, 1, &res);
    assert_null(res.rcpts[0].quarantine);
    assert_null(res.rcpts[0].admin);
    policy_result_free(&res);
    decide(c, &virus, "default", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].quarantine, "virus");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_DISCARD);
    policy_result_free(&res);
    decide(c, &ban, "default", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].quarantine, "banned");
    policy_result_free(&res);
    /* passed spam and bad headers are kept too, as amavis keeps them */
    decide(c, &spam, "default", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    assert_string_equal(res.rcpts[0].quarantine, "spam");
    policy_result_free(&res);
    {
        char *ov[] = {"policy.spam_kill_level=10"};
        struct sl_config *c2 = config_with(ov, 1);
        decide(c2, &spammy, "default", rcpts, 1, &res);
        assert_string_equal(res.rcpts[0].category, "SPAMMY");
        assert_null(res.rcpts[0].quarantine); /* no spammy quarantine in amavis */
        policy_result_free(&res);
        sl_config_destroy(&c2);
    }
    decide(c, &badh, "default", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].quarantine, "badh");
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_tempfail_and_off(void **state)
{
    char *ov[] = {"policy.final_virus_destiny=tempfail", "policy.banned_quarantine_to="};
    struct sl_config *c = config_with(ov, 2);
    const char *rcpts[] = {"a@example.com"};
    struct policy_result res;
    struct policy_facts virus = {.viruses = viruses, .n_viruses = 1, .size = 10};
    struct policy_facts ban = {.banned = banned, .n_banned = 1, .size = 10};
    struct policy_facts unchecked = {.unchecked = POLICY_UNCHECKED_FAILED,
                                     .unchecked_reasons = why,
                                     .n_unchecked_reasons = 1,
                                     .size = 10};

    (void)state;
    decide(c, &virus, "default", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_TEMPFAIL);
    assert_null(res.rcpts[0].quarantine); /* it comes back: nothing kept now */
    policy_result_free(&res);
    decide(c, &ban, "default", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_DISCARD);
    assert_null(res.rcpts[0].quarantine); /* banned_quarantine_to "" */
    policy_result_free(&res);
    decide(c, &unchecked, "default", rcpts, 1, &res);
    assert_null(res.rcpts[0].quarantine);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Per recipient: the map's most specific item wins, "" turns it off. */
static void
test_per_recipient_map(void **state)
{
    char *ov[] = {"policy.virus_quarantine_to_map=boss@example.com= .example.org=virus-q"
                  " .=virus-quarantine",
                  "policy.virus_quarantine_to="};
    struct sl_config *c = config_with(ov, 2);
    const char *rcpts[] = {"boss@example.com", "x@sub.example.org", "y@example.net"};
    struct policy_result res;
    struct policy_facts virus = {.viruses = viruses, .n_viruses = 1, .size = 10};

    (void)state;
    decide(c, &virus, "default", rcpts, 3, &res);
    assert_null(res.rcpts[0].quarantine);
    assert_string_equal(res.rcpts[1].quarantine, "virus");
    assert_string_equal(res.rcpts[2].quarantine, "virus"); /* "." */
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Administrators and warnings, and a bank that changes them. */
static void
test_admins_warnings_banks(void **state)
{
    char *ov[] = {"policy.virus_admin=postmaster@example.com",
                  "policy.spam_admin=spamadmin@example.com",
                  "policy.warn_virus_recip=yes",
                  "policy.local_domains=example.com",
                  "origins.o2.match=127.0.0.2",
                  "policy_banks.B.match_origin=o2",
                  "policy_banks.B.virus_quarantine_to=",
                  "policy_banks.B.virus_admin=other@example.com"};
    struct sl_config *c = config_with(ov, 8);
    const char *rcpts[] = {"a@example.com", "b@elsewhere.test"};
    struct policy_result res;
    struct policy_facts virus = {.viruses = viruses, .n_viruses = 1, .size = 10};
    struct policy_facts ban = {.banned = banned, .n_banned = 1, .size = 10};
    struct policy_facts spam = {.spam_scanned = true, .spam_score = 1000, .size = 10};

    (void)state;
    decide(c, &virus, "default", rcpts, 2, &res);
    assert_string_equal(res.rcpts[0].admin, "postmaster@example.com");
    assert_true(res.rcpts[0].warn);
    assert_false(res.rcpts[1].warn); /* not local: amavis' $warn_offsite */
    policy_result_free(&res);
    decide(c, &ban, "default", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].admin, "postmaster@example.com"); /* banned_admin "" */
    assert_false(res.rcpts[0].warn);
    policy_result_free(&res);
    decide(c, &spam, "default", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].admin, "spamadmin@example.com");
    policy_result_free(&res);
    decide(c, &virus, "o2", rcpts, 1, &res);
    assert_null(res.rcpts[0].quarantine);
    assert_string_equal(res.rcpts[0].admin, "other@example.com");
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_map_checked_at_load(void **state)
{
    char *ov[] = {"policy.spam_quarantine_to_map=nokey"};
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test", "", 0, ov, 1, &error);

    (void)state;
    assert_null(c);
    assert_non_null(strstr(error, "policy.spam_quarantine_to_map"));
    free(error);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_by_category),   cmocka_unit_test(test_tempfail_and_off),
        cmocka_unit_test(test_per_recipient_map),   cmocka_unit_test(test_admins_warnings_banks),
        cmocka_unit_test(test_map_checked_at_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
