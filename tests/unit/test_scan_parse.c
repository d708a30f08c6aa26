/* test_scan_parse.c - the scanner clients' reply parsers (workers/scan_*.c),
 * no daemons: clamd's zINSTREAM answers, spamd's SPAMC/1.5 REPORT, rspamd's
 * HTTP + JSON. Each valid reply is also parsed after being cut short at
 * every length, which must fail cleanly or parse, never crash (ASan).
 * Also what part of a message the spam scanners get (scan_spam_len). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/scan.h"

static bool
has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

typedef int parse_fn(const char *, size_t, struct scan_result *, char **);

/* Every prefix of reply: parse or fail, never crash or leak. */
static void
trickle(parse_fn *fn, const char *reply, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        struct scan_result r = {0};
        char *error = NULL;
        char *copy = malloc(n + 1);
        memcpy(copy, reply, n);
        copy[n] = '\0';
        if (fn(copy, n, &r, &error) < 0)
            assert_non_null(error);
        free(error);
        scan_result_free(&r);
        free(copy);
    }
}

/* ---- clamd ------------------------------------------------------------ */

static void
test_clamd_ok_and_found(void **state)
{
    struct scan_result r = {0};
    char *error = NULL;
    static const char ok[] = "stream: OK";
    static const char found[] = "stream: Eicar-Test-Signature.UNOFFICIAL FOUND";
    static const char two[] = "stream: A.B FOUND\0stream: C-D FOUND\0";

    (void)state;
    assert_int_equal(scan_clamd_parse(ok, sizeof(ok), &r, &error), 0);
    assert_int_equal(r.n_viruses, 0);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_NONE);
    scan_result_free(&r);

    assert_int_equal(scan_clamd_parse(found, sizeof(found), &r, &error), 0);
    assert_int_equal(r.n_viruses, 1);
    assert_string_equal(r.viruses[0], "Eicar-Test-Signature.UNOFFICIAL");
    scan_result_free(&r);

    /* AllMatchScanning: one line per match */
    assert_int_equal(scan_clamd_parse(two, sizeof(two) - 1, &r, &error), 0);
    assert_int_equal(r.n_viruses, 2);
    assert_true(has(r.viruses, r.n_viruses, "A.B") && has(r.viruses, r.n_viruses, "C-D"));
    scan_result_free(&r);
    trickle(scan_clamd_parse, found, sizeof(found));
}

static void
test_clamd_limits_and_errors(void **state)
{
    struct scan_result r = {0};
    char *error = NULL;
    static const char limit[] = "INSTREAM size limit exceeded. ERROR";
    static const char heur[] = "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND";
    static const char enc[] = "stream: Heuristics.Encrypted.Zip FOUND";

    (void)state;
    /* limits exceeded: not clean, and not infected either */
    assert_int_equal(scan_clamd_parse(limit, sizeof(limit), &r, &error), 0);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_OVERLIMIT);
    assert_int_equal(r.n_viruses, 0);
    assert_non_null(strstr(r.unchecked_reason, "size limit"));
    scan_result_free(&r);
    assert_int_equal(scan_clamd_parse(heur, sizeof(heur), &r, &error), 0);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_OVERLIMIT);
    assert_int_equal(r.n_viruses, 0);
    scan_result_free(&r);
    assert_int_equal(scan_clamd_parse(enc, sizeof(enc), &r, &error), 0);
    assert_int_equal(r.unchecked, SCAN_UNCHECKED_ENCRYPTED);
    assert_int_equal(r.n_viruses, 0);
    scan_result_free(&r);

    static const char *const bad[] = {
        "Can't allocate memory ERROR", "", "garbage", "stream: MAYBE", "stream: x ERROR",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        error = NULL;
        assert_int_equal(scan_clamd_parse(bad[i], strlen(bad[i]), &r, &error), -1);
        assert_non_null(error);
        assert_int_equal(r.n_viruses, 0); /* never infected because clamd broke */
        free(error);
        scan_result_free(&r);
    }
}

/* ---- spamd ------------------------------------------------------------ */

static const char spamd_gtube[] =
    "SPAMD/1.1 0 EX_OK\r\n"
    "Content-length: 999\r\n"
    "Spam: True ; 1000.0 / 5.0\r\n"
    "\r\n"
    "Spam detection software, running on the system \"vm\",\n"
    "has identified this incoming email as possible spam.\n"
    "\n"
    "Content analysis details:   (1000.0 points, 5.0 required)\n"
    "\n"
    " pts rule name              description\n"
    "---- ---------------------- --------------------------------------------------\n"
    "1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n"
    "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
    " 0.5 MISSING_MID            Missing Message-Id: header\n"
    "                            [score: 0.5000]\n"
    " 1.0 EMPTY_MESSAGE          Message appears to have no textual parts and no\n"
    "                            Subject: text\n";

static void
test_spamd(void **state)
{
    struct scan_result r = {0};
    char *error = NULL;

    (void)state;
    assert_int_equal(scan_spamd_parse(spamd_gtube, strlen(spamd_gtube), &r, &error), 0);
    assert_true(r.spam_scanned);
    assert_true(r.score == 1000.0);
    assert_true(r.threshold == 5.0);
    assert_int_equal(r.n_tests, 4);
    assert_string_equal(r.tests[0], "GTUBE=1000");
    assert_string_equal(r.tests[1], "NO_RELAYS=0");
    assert_string_equal(r.tests[2], "MISSING_MID=0.5");
    assert_string_equal(r.tests[3], "EMPTY_MESSAGE=1.0");
    scan_result_free(&r);

    static const char ham[] = "SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.1 / 5.0\r\n\r\n";
    assert_int_equal(scan_spamd_parse(ham, strlen(ham), &r, &error), 0);
    assert_true(r.score < 0 && r.n_tests == 0);
    scan_result_free(&r);

    static const char *const bad[] = {
        "SPAMD/1.0 76 Bad header line: (EOF)\r\n\r\n",
        "SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", /* no Spam: header */
        "SPAMD/1.1 0 EX_OK\r\nSpam: True ; lots / 5\r\n\r\n",
        "HTTP/1.0 200 OK\r\n\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        error = NULL;
        assert_int_equal(scan_spamd_parse(bad[i], strlen(bad[i]), &r, &error), -1);
        assert_non_null(error);
        assert_false(r.spam_scanned);
        free(error);
        scan_result_free(&r);
    }
    trickle(scan_spamd_parse, spamd_gtube, strlen(spamd_gtube));
}

/* ---- rspamd ----------------------------------------------------------- */

static const char rspamd_json[] =
    "{\"is_skipped\":true,\"score\":15.0,\"required_score\":15.0,\"action\":\"reject\","
    "\"symbols\":{\"GTUBE\":{\"name\":\"GTUBE\",\"score\":0.0,\"metric_score\":0.0},"
    "\"R_SPF_NA\":{\"name\":\"R_SPF_NA\",\"score\":0.0},"
    "\"HFILTER_HOSTNAME_UNKNOWN\":{\"name\":\"HFILTER_HOSTNAME_UNKNOWN\",\"score\":2.5},"
    "\"MIME_GOOD\":{\"score\":-0.1}},"
    "\"messages\":{\"smtp_message\":\"Gtube pattern\"},\"message-id\":\"x@y\"}";

static void
test_rspamd(void **state)
{
    struct scan_result r = {0};
    char *error = NULL;
    char *reply = NULL;
    size_t n;

    (void)state;
    n = (size_t)asprintf(&reply,
                         "HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.4\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(rspamd_json), rspamd_json);
    assert_int_equal(scan_rspamd_parse(reply, n, &r, &error), 0);
    assert_true(r.spam_scanned);
    assert_true(r.score == 15.0);
    assert_string_equal(r.action, "reject");
    assert_int_equal(r.n_tests, 4);
    /* by score, highest first, then by name */
    assert_string_equal(r.tests[0], "HFILTER_HOSTNAME_UNKNOWN=2.5");
    assert_string_equal(r.tests[1], "GTUBE=0");
    assert_string_equal(r.tests[2], "R_SPF_NA=0");
    assert_string_equal(r.tests[3], "MIME_GOOD=-0.1");
    scan_result_free(&r);
    trickle(scan_rspamd_parse, reply, n);
    free(reply);

    /* chunked transfer encoding */
    static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "7\r\n{\"score\r\n7\r\n\": 3.5}\r\n0\r\n\r\n";
    assert_int_equal(scan_rspamd_parse(chunked, strlen(chunked), &r, &error), 0);
    assert_true(r.score == 3.5);
    scan_result_free(&r);

    static const char *const bad[] = {
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"a\":1}xx", /* no score */
        "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"score\": \"x\"}",
        "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"score\": 1", /* short body */
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[1]",
        "{\"score\": 1}",
        "HTTP/1.1 200 OK\r\n\r\n{\"score\":1,\"score\":2}", /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        error = NULL;
        assert_int_equal(scan_rspamd_parse(bad[i], strlen(bad[i]), &r, &error), -1);
        assert_non_null(error);
        assert_false(r.spam_scanned);
        free(error);
        scan_result_free(&r);
    }
}

/* spamd and rspamd get the head of a long message, cut at a line end */
static void
test_spam_len(void **state)
{
    static const struct {
        const char *data;
        size_t max_size;
        size_t want;
        bool truncated;
    } cases[] = {
        { "a\r\nbb\r\nccc\r\n", 0, 12, false },   /* no limit */
        { "a\r\nbb\r\nccc\r\n", 12, 12, false },  /* exactly at it */
        { "a\r\nbb\r\nccc\r\n", 100, 12, false },
        { "a\r\nbb\r\nccc\r\n", 11, 7, true },    /* the last line, cut short, goes */
        { "a\r\nbb\r\nccc\r\n", 7, 7, true },     /* the cut falls on a line end */
        { "a\r\nbb\r\nccc\r\n", 6, 3, true },
        { "a\r\nbb\r\nccc\r\n", 2, 2, true },     /* no LF within: cut at the limit */
        { "abcdef", 4, 4, true },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scan_input in = { .data = cases[i].data, .len = strlen(cases[i].data) };
        bool truncated = !cases[i].truncated;

        assert_int_equal(scan_spam_len(&in, cases[i].max_size, &truncated), cases[i].want);
        assert_int_equal(truncated, cases[i].truncated);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clamd_ok_and_found),
        cmocka_unit_test(test_clamd_limits_and_errors),
        cmocka_unit_test(test_spamd),
        cmocka_unit_test(test_rspamd),
        cmocka_unit_test(test_spam_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
