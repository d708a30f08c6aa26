/* test_check_headers.c - workers/check_headers.c and the MIME part of
 * checks.c: amavis' BAD-HEADER findings on sample messages, each test
 * switchable (policy.bad_header_tests), 8-bit allowed with SMTPUTF8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime_check.h"
#include "conf/sl_config.h"
#include "workers/checks.h"

#define ALL (BH_MIME | BH_8BIT | BH_CONTROL | BH_LONG | BH_SYNTAX | BH_MISSING | BH_MULTIPLE)

static const char good[] = "From: a@example.org\r\nTo: b@example.com\r\n"
                           "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nSubject: hi\r\n\r\nbody\r\n";

struct sample {
    const char *name;
    const char *msg;
    unsigned mask; /* tests enabled */
    bool smtputf8;
    const char *finding; /* expected substring of the only finding, NULL: none */
};

static const struct sample samples[] = {
    {"good", good, ALL, false, NULL},
    {"duplicate Subject",
     "From: a@example.org\r\nDate: x\r\nSubject: one\r\nsubject: two\r\n\r\nb\r\n", ALL, false,
     "Duplicate header field: \"Subject\""},
    {"duplicate Subject, test off",
     "From: a@example.org\r\nDate: x\r\nSubject: one\r\nSubject: two\r\n\r\nb\r\n",
     ALL & ~BH_MULTIPLE, false, NULL},
    {"8-bit Subject", "From: a@example.org\r\nDate: x\r\nSubject: caf\xc3\xa9\r\n\r\nb\r\n", ALL,
     false, "Non-encoded 8-bit data (char C3 hex) in header field \"Subject\""},
    {"8-bit Subject with SMTPUTF8",
     "From: a@example.org\r\nDate: x\r\nSubject: caf\xc3\xa9\r\n\r\nb\r\n", ALL, true, NULL},
    {"control character", "From: a@example.org\r\nDate: x\r\nX-Bell: ding\x07\r\n\r\nb\r\n", ALL,
     false, "Improper use of control character (char 07 hex) in header field \"X-Bell\""},
    {"bad field name", "From: a@example.org\r\nDate: x\r\nBad Name: v\r\n\r\nb\r\n", ALL, false,
     "Invalid header field name: \"Bad Name\""},
    {"no colon", "From: a@example.org\r\nDate: x\r\nJunk line\r\n\r\nb\r\n", ALL, false,
     "Invalid header field name: \"Junk line\""},
    {"leading continuation", " folded\r\nFrom: a@example.org\r\nDate: x\r\n\r\nb\r\n", ALL, false,
     "starts with a continuation line"},
    {"missing Date", "From: a@example.org\r\nSubject: s\r\n\r\nb\r\n", ALL, false,
     "Missing required header field: \"Date\""},
    {"missing Date, default tests", "From: a@example.org\r\nSubject: s\r\n\r\nb\r\n",
     ALL & ~BH_MISSING, false, NULL},
    {"multipart without boundary",
     "From: a@example.org\r\nDate: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n"
     "\r\n--x\r\n\r\nb\r\n",
     ALL, false, "MIME error: multipart without a boundary"},
};

static void
run(const char *msg, unsigned mask, bool smtputf8, struct check_findings *f)
{
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("t", "", 0, NULL, 0, &error);
    char *names[] = {"mime", "8bit", "control", "long", "syntax", "missing", "multiple"};
    char *on[7];
    size_t n = 0;

    for (unsigned i = 0; i < 7; i++)
        if (mask & (1u << i))
            on[n++] = names[i];
    struct sl_policy_config p = c->policy;
    p.bad_header_tests = on;
    p.n_bad_header_tests = n;
    struct check_ctx ctx = {.p = &p, .banned = true, .headers = true, .smtputf8 = smtputf8};
    checks_run(&ctx, msg, strlen(msg), f);
    sl_config_destroy(&c);
}

static void
test_samples(void **state)
{
    (void)state;
    mime_check_init();
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const struct sample *s = &samples[i];
        struct check_findings f;
        run(s->msg, s->mask, s->smtputf8, &f);
        if (s->finding == NULL) {
            if (f.n_bad_headers != 0)
                fail_msg("%s: unexpected finding: %s", s->name, f.bad_headers[0]);
        } else {
            if (f.n_bad_headers != 1)
                fail_msg("%s: %zu findings, want 1 (%s)", s->name, f.n_bad_headers, s->finding);
            if (strstr(f.bad_headers[0], s->finding) == NULL)
                fail_msg("%s: finding \"%s\", want \"%s\"", s->name, f.bad_headers[0], s->finding);
        }
        checks_findings_free(&f);
    }
}

static void
test_long_line(void **state)
{
    char *msg = malloc(3000);
    struct check_findings f;

    (void)state;
    strcpy(msg, "From: a@example.org\r\nDate: x\r\nX-Long: ");
    size_t n = strlen(msg);
    memset(msg + n, 'a', 1200);
    strcpy(msg + n + 1200, "\r\n\r\nbody\r\n");
    run(msg, ALL, false, &f);
    assert_int_equal(f.n_bad_headers, 1);
    assert_string_equal(f.bad_headers[0], "Header line longer than 998 characters: \"X-Long\"");
    checks_findings_free(&f);
    run(msg, ALL & ~BH_LONG, false, &f);
    assert_int_equal(f.n_bad_headers, 0);
    checks_findings_free(&f);
    free(msg);
}

/* Only the top-level header section: a forwarded message's headers and
 * the body are not checked. */
static void
test_top_level_only(void **state)
{
    static const char msg[] = "From: a@example.org\r\nDate: x\r\nSubject: s\r\n\r\n"
                              "Subject: in the body\r\nSubject: again \xff\r\n";
    struct check_findings f;

    (void)state;
    run(msg, ALL, false, &f);
    assert_int_equal(f.n_bad_headers, 0);
    checks_findings_free(&f);
    assert_int_equal(check_header_tests((char *[]){"MIME", "nonsense", "missing"}, 3),
                     BH_MIME | BH_MISSING);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_top_level_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
