/* test_notify.c - frontend/notify.c: the template language (macros,
 * counts, choices by count, repetitions with separators, escapes,
 * comments and joined lines) and the built-in templates in amavis'
 * wording, expanded for a virus and for a banned file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frontend/notify.h"

static const char *const viruses2[] = {"Eicar-Test-Signature", "Other.Virus"};
static const char *const rcpts[] = {"<a@example.com>", "<b@example.com>"};
static const char *const admins[] = {"<postmaster@example.com>"};

static struct fe_notify_vars
vars(void)
{
    return (struct fe_notify_vars){
        .from = "\"Content-filter at mx\" <virusalert@mx>",
        .to = {admins, 1},
        .viruses = {viruses2, 1},
        .blocked = {rcpts, 2},
        .rcpts = {rcpts, 2},
        .date = "Mon, 1 Jan 2024 00:00:00 +0000",
        .mail_id = "Abcdefghij12",
        .host = "mx.example.com",
        .sender = "<s@example.org>",
        .client = "192.0.2.1",
        .subject = "hello",
        .category = "INFECTED",
        .quarantine = "virus-Abcdefghij12",
    };
}

static char *
expand(const char *t, const struct fe_notify_vars *v)
{
    size_t len;
    char *s = fe_notify_expand(t, v, &len);
    assert_int_equal(strlen(s), len);
    return s;
}

/* The language, one construct a row: template, viruses listed, result. */
static const struct {
    const char *tmpl;
    size_t n_viruses;
    const char *want;
} cases[] = {
    {"id %i at %h, %#V virus: %V", 1,
     "id Abcdefghij12 at mx.example.com, 1 virus: Eicar-Test-Signature"},
    {"[? %#V |none|one|two|many]", 1, "one"},
    {"[? %#V |none|one|more]: [%V|; ]", 2, "more: Eicar-Test-Signature; Other.Virus"},
    {"[? %m |no id|id %m] [? %q |not kept|kept as %q]", 1, "no id kept as virus-Abcdefghij12"},
    {"to:[\n  %N]\n", 1, "to:\n  <a@example.com>\n  <b@example.com>\n"},
    {"# a comment\none #\ntwo \\[%a\\] 100\\%\n", 1, "one two [192.0.2.1] 100%\n"},
    {"nested [? %#F |[? %#V |x|y|%#V viruses]|banned]", 2, "nested 2 viruses"},
    {"unbalanced [? %V |a", 1, "unbalanced [? %V |a"},
};

static void
test_language(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fe_notify_vars v = vars();
        v.viruses.n = cases[i].n_viruses;
        char *s = expand(cases[i].tmpl, &v);
        if (strcmp(s, cases[i].want) != 0)
            fail_msg("case %zu: \"%s\", expected \"%s\"", i, s, cases[i].want);
        free(s);
    }
}

static void
test_builtin(void **state)
{
    struct fe_notify_vars v = vars();
    char *s;

    (void)state;
    s = expand(fe_notify_builtin(FE_NOTIFY_ADMIN), &v);
    assert_non_null(strstr(s, "From: \"Content-filter at mx\" <virusalert@mx>\n"));
    assert_non_null(
        strstr(s, "Subject: VIRUS (Eicar-Test-Signature) in mail FROM <s@example.org>\n"));
    assert_non_null(strstr(s, "To: <postmaster@example.com>\n"));
    assert_non_null(strstr(s, "\n\nA virus was found: Eicar-Test-Signature\n"));
    assert_non_null(strstr(s, "The message has been quarantined as: virus-Abcdefghij12"));
    assert_non_null(
        strstr(s, "The message WAS NOT relayed to:\n<a@example.com>\n<b@example.com>\n"));
    assert_null(strstr(s, "WILL BE relayed"));
    assert_null(strstr(s, "\n#"));
    free(s);
    v.viruses.n = 0;
    static const char *const banned[] = {"application/x-msdownload,setup.exe"};
    v.banned = (struct fe_notify_list){banned, 1};
    v.to = (struct fe_notify_list){rcpts, 1};
    s = expand(fe_notify_builtin(FE_NOTIFY_RECIP), &v);
    assert_non_null(strstr(s, "Subject: BANNED contents (application/x-msdownload,setup.exe) in "
                              "mail TO YOU from <s@example.org>\n"));
    assert_non_null(strstr(s, "BANNED CONTENTS ALERT"));
    assert_non_null(strstr(s, "banned name: application/x-msdownload,setup.exe"));
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_builtin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
