/* test_lookup.c - lib/lookup without a server: the keys a recipient is
 * looked up by (amavisd-new's make_query_keys, with the examples of its
 * README.lookups: extensions, subdomains, the catch-all, the null
 * address, bare user names for local recipients only, address literals),
 * amavis' booleans, the sender lists' verdict (SQL: per record in order,
 * by mailaddr priority, soft listing adding up; LDAP: black and white
 * lists). The policy made from an answer is test_policy.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookup/sl_lookup.h"

static void
expect_keys(const char *addr, bool bare, const char *delim, const char *want)
{
    char *keys[SL_LOOKUP_MAX_KEYS];
    size_t n = sl_lookup_keys(addr, bare, delim, keys);
    char got[1024] = "";

    for (size_t i = 0; i < n; i++) {
        strcat(got, i > 0 ? " | " : "");
        strcat(got, keys[i]);
    }
    sl_lookup_keys_free(keys, n);
    if (strcmp(got, want) != 0)
        fail_msg("keys of \"%s\" (bare %d, delimiter \"%s\"):\n  got  %s\n  want %s", addr, bare,
                 delim, got, want);
}

static void
test_keys_readme_lookups(void **state)
{
    (void)state;
    /* README.lookups, "SQL LOOKUPS": the order for user+foo@sub.example.com */
    expect_keys("user+foo@sub.example.com", true, "+",
                "user+foo@sub.example.com | user@sub.example.com | user+foo | user | "
                "@sub.example.com | @.sub.example.com | @.example.com | @.com | @.");
    /* bare names only for local recipients */
    expect_keys("user+foo@sub.example.com", false, "+",
                "user+foo@sub.example.com | user@sub.example.com | @sub.example.com | "
                "@.sub.example.com | @.example.com | @.com | @.");
    /* no delimiter: the extension stays */
    expect_keys("user+foo@example.com", false, "",
                "user+foo@example.com | @example.com | @.example.com | @.com | @.");
    /* the address as is first, then lowercased; trailing dots go */
    expect_keys("User+Foo@Sub.Example.COM.", false, "+",
                "User+Foo@Sub.Example.COM. | user+foo@sub.example.com | user@sub.example.com | "
                "@sub.example.com | @.sub.example.com | @.example.com | @.com | @.");
    /* the null reverse path: "", "@", "@." */
    expect_keys("", true, "+", " | @ | @.");
    /* reserved names are not split, nor owner-/-request with "-" */
    expect_keys("mailer-daemon@example.com", false, "-",
                "mailer-daemon@example.com | @example.com | @.example.com | @.com | @.");
    expect_keys("owner-list@example.com", false, "-",
                "owner-list@example.com | @example.com | @.example.com | @.com | @.");
    expect_keys("bob-x@example.com", false, "-",
                "bob-x@example.com | bob@example.com | @example.com | @.example.com | @.com | @.");
    /* a leading delimiter is not an extension */
    expect_keys("+x@example.com", false, "+",
                "+x@example.com | @example.com | @.example.com | @.com | @.");
    /* an address literal is not split into domains */
    expect_keys("u@[192.0.2.1]", false, "+", "u@[192.0.2.1] | @[192.0.2.1] | @.");
}

static void
test_bool(void **state)
{
    (void)state;
    assert_true(sl_lookup_bool("Y"));
    assert_true(sl_lookup_bool("TRUE"));
    assert_true(sl_lookup_bool("1"));
    assert_false(sl_lookup_bool("N"));
    assert_false(sl_lookup_bool("n "));
    assert_false(sl_lookup_bool("FALSE"));
    assert_false(sl_lookup_bool("0"));
    assert_false(sl_lookup_bool(" "));
    assert_false(sl_lookup_bool(""));
    assert_false(sl_lookup_bool(NULL));
}

static void
wb_add(struct sl_lookup_answer *a, unsigned rank, const char *key, long prio, const char *wb)
{
    a->wb = realloc(a->wb, (a->n_wb + 1) * sizeof(*a->wb));
    a->wb[a->n_wb++] = (struct sl_lookup_wb){rank, strdup(key), prio, strdup(wb)};
}

static struct sl_lookup_wb_result
judge(const struct sl_lookup_answer *a, const char *sender)
{
    struct sl_lookup_wb_result r;
    const char *senders[] = {sender};
    char *local[] = {"example.com"};

    sl_lookup_senders(a, senders, 1, local, 1, "+", &r);
    return r;
}

static void
test_senders_sql(void **state)
{
    struct sl_lookup_answer a = {0};
    struct sl_lookup_wb_result r;

    (void)state;
    /* record 0 (the mailbox's): ordered by mailaddr.priority DESC */
    wb_add(&a, 0, "spammer@bad.example", 9, "B");
    wb_add(&a, 0, "@.bad.example", 5, "W");
    wb_add(&a, 0, "@.soft.example", 5, " -3.5 ");
    /* record 1 (the domain's) */
    wb_add(&a, 1, "@.soft.example", 5, "2");
    wb_add(&a, 1, "friend@bad.example", 9, "N");
    wb_add(&a, 1, "@.neutral.example", 5, " ");
    wb_add(&a, 1, "@.", 0, "W");

    r = judge(&a, "spammer@bad.example"); /* the more specific row of record 0 */
    assert_true(r.blacklisted);
    assert_false(r.whitelisted);
    r = judge(&a, "friend@bad.example"); /* record 0's domain row comes first */
    assert_true(r.whitelisted);
    assert_false(r.blacklisted);
    /* soft: both records add; each record answers with its first row by
     * priority, so record 1's "@." is not reached */
    r = judge(&a, "x@mail.soft.example");
    assert_true(r.score_boost > -1.51 && r.score_boost < -1.49);
    assert_false(r.whitelisted);
    r = judge(&a, "x@elsewhere.example"); /* record 1's catch-all */
    assert_true(r.whitelisted);
    r = judge(&a, "y@neutral.example"); /* neutral ends the search: not @. */
    assert_false(r.whitelisted);
    assert_false(r.blacklisted);
    sl_lookup_answer_clear(&a);
    r = judge(&a, "z@example.org"); /* no lists */
    assert_false(r.whitelisted || r.blacklisted);
}

static void
test_senders_ldap(void **state)
{
    struct sl_lookup_answer a = {.ldap = true};
    struct sl_lookup_wb_result r;

    (void)state;
    wb_add(&a, 0, "@bad.example", 0, "B");
    wb_add(&a, 0, "Boss@Example.COM", 0, "W");
    wb_add(&a, 0, "<>", 0, "B");
    r = judge(&a, "x@bad.example");
    assert_true(r.blacklisted);
    r = judge(&a, "boss@example.com"); /* without case */
    assert_true(r.whitelisted);
    assert_false(r.blacklisted);
    r = judge(&a, ""); /* the null sender as "<>" */
    assert_true(r.blacklisted);
    r = judge(&a, "x@sub.bad.example"); /* "@bad.example" is that domain only */
    assert_false(r.blacklisted);
    sl_lookup_answer_clear(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_readme_lookups),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_senders_sql),
        cmocka_unit_test(test_senders_ldap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
