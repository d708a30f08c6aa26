/* test_smtp_reply.c - sl_smtp_reply_parser: single and multi-line
 * replies, enhanced status codes, protocol errors, limits.
 *
 * Every case runs fed whole and fed one byte per feed() call; both must
 * produce the expected transcript. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/sl_smtp_reply.h"
#include "util/sl_buf.h"

/* R <code> [<enhanced>] n=<lines> text=<text, "\n" shown as |> first=<first line>
 * E <error> (then the parser must stay in error) */
static void
drain(struct sl_smtp_reply_parser *p, struct sl_buf *t, int *failed)
{
    while (!*failed) {
        struct sl_smtp_reply r;
        const char *err = NULL;
        int ret = sl_smtp_reply_parser_next(p, &r, &err);

        if (ret == 0)
            return;
        if (ret < 0) {
            sl_buf_printf(t, "E %s\n", err);
            const char *err2 = NULL;
            assert_int_equal(sl_smtp_reply_parser_next(p, &r, &err2), -1);
            assert_string_equal(err2, err);
            *failed = 1;
            return;
        }
        char *first = sl_smtp_reply_first_line(&r);
        sl_buf_printf(t, "R %d [%s] n=%zu text=", r.code, r.enhanced, r.n_lines);
        for (const char *s = r.text; *s; s++)
            sl_buf_append(t, *s == '\n' ? "|" : s, 1);
        sl_buf_printf(t, " first=%s\n", first);
        /* lines[] and text agree */
        struct sl_buf joined;
        sl_buf_init(&joined);
        sl_buf_append(&joined, "", 0);
        for (size_t i = 0; i < r.n_lines; i++)
            sl_buf_printf(&joined, "%s%s", i ? "\n" : "", r.lines[i]);
        assert_string_equal(joined.data, r.text);
        sl_buf_free(&joined);
        free(first);
        sl_smtp_reply_free(&r);
        assert_null(r.text);
    }
}

static char *
run(const char *in, size_t len, int trickle)
{
    struct sl_smtp_reply_parser *p = sl_smtp_reply_parser_new();
    struct sl_buf t;
    int failed = 0;

    sl_buf_init(&t);
    sl_buf_append(&t, "", 0);
    if (!trickle) {
        sl_smtp_reply_parser_feed(p, in, len);
        drain(p, &t, &failed);
    } else {
        for (size_t i = 0; i < len; i++) {
            sl_smtp_reply_parser_feed(p, in + i, 1);
            drain(p, &t, &failed);
        }
    }
    sl_smtp_reply_parser_destroy(&p);
    assert_null(p);
    return sl_buf_steal(&t, NULL);
}

static void
check(const char *name, const char *in, size_t len, const char *expect)
{
    char *whole = run(in, len, 0);
    char *trickle = run(in, len, 1);

    if (strcmp(whole, expect) != 0)
        print_error("case %s (whole):\n got: %s\nwant: %s\n", name, whole, expect);
    assert_string_equal(whole, expect);
    if (strcmp(trickle, expect) != 0)
        print_error("case %s (trickle):\n got: %s\nwant: %s\n", name, trickle, expect);
    assert_string_equal(trickle, expect);
    free(whole);
    free(trickle);
}

struct rcase {
    const char *name;
    const char *in;
    size_t len;
    const char *expect;
};

#define IN(s) s, sizeof(s) - 1

static const struct rcase cases[] = {
    { "single with enhanced", IN("250 2.0.0 Ok: queued as 4XyZ1\r\n"),
      "R 250 [2.0.0] n=1 text=2.0.0 Ok: queued as 4XyZ1 first=250 2.0.0 Ok: queued as 4XyZ1\n" },
    { "greeting", IN("220 mx.example ESMTP Postfix\r\n"),
      "R 220 [] n=1 text=mx.example ESMTP Postfix first=220 mx.example ESMTP Postfix\n" },
    { "multi-line EHLO",
      IN("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"),
      "R 250 [] n=4 text=mx.example|PIPELINING|SIZE 10240000|8BITMIME first=250 mx.example\n" },
    { "code only", IN("250\r\n"), "R 250 [] n=1 text= first=250\n" },
    { "code and space only", IN("250 \r\n"), "R 250 [] n=1 text= first=250\n" },
    { "empty continuation", IN("250-\r\n250 ok\r\n"), "R 250 [] n=2 text=|ok first=250\n" },
    { "two replies in one feed", IN("220 hi\r\n250 ok\r\n"),
      "R 220 [] n=1 text=hi first=220 hi\nR 250 [] n=1 text=ok first=250 ok\n" },
    { "incomplete reply waits", IN("250-a\r\n250 b"), "" },
    { "permanent failure", IN("550 5.1.1 <a@b>: Recipient address rejected\r\n"),
      "R 550 [5.1.1] n=1 text=5.1.1 <a@b>: Recipient address rejected "
      "first=550 5.1.1 <a@b>: Recipient address rejected\n" },
    { "temporary multi-line enhanced", IN("451-4.3.0 first\r\n451 4.3.0 second\r\n"),
      "R 451 [4.3.0] n=2 text=4.3.0 first|4.3.0 second first=451 4.3.0 first\n" },
    { "enhanced code at end of line", IN("250 2.1.0\r\n"),
      "R 250 [2.1.0] n=1 text=2.1.0 first=250 2.1.0\n" },
    { "enhanced three-digit parts", IN("554 5.123.456 x\r\n"),
      "R 554 [5.123.456] n=1 text=5.123.456 x first=554 5.123.456 x\n" },
    { "enhanced class must match", IN("250 5.0.0 odd\r\n"),
      "R 250 [] n=1 text=5.0.0 odd first=250 5.0.0 odd\n" },
    { "enhanced needs a separator", IN("250 2.1.0Ok\r\n"),
      "R 250 [] n=1 text=2.1.0Ok first=250 2.1.0Ok\n" },
    { "enhanced part too long", IN("250 2.1234.0 x\r\n"),
      "R 250 [] n=1 text=2.1234.0 x first=250 2.1234.0 x\n" },
    { "enhanced class 3 is not one", IN("354 3.0.0 go\r\n"),
      "R 354 [] n=1 text=3.0.0 go first=354 3.0.0 go\n" },
    { "inconsistent codes", IN("250-a\r\n251 b\r\n"), "E inconsistent reply codes\n" },
    { "error is sticky", IN("250 ok\n250 ok\r\n"), "E reply line without CRLF\n" },
    { "bare LF", IN("250-a\n250 b\r\n"), "E reply line without CRLF\n" },
    { "bare CR", IN("250 a\rb\r\n"), "E bare CR in reply\n" },
    { "NUL", IN("250 a\0b\r\n"), "E NUL in reply\n" },
    { "short code", IN("25 ok\r\n"), "E bad reply code\n" },
    { "code too high", IN("650 ok\r\n"), "E bad reply code\n" },
    { "code too low", IN("199 ok\r\n"), "E bad reply code\n" },
    { "letters", IN("2x0 ok\r\n"), "E bad reply code\n" },
    { "four digits", IN("2500 ok\r\n"), "E bad reply code separator\n" },
    { "empty line", IN("\r\n"), "E bad reply code\n" },
    { "good then bad", IN("250 ok\r\nxyz\r\n"), "R 250 [] n=1 text=ok first=250 ok\nE bad reply code\n" },
};

static void
test_cases(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(cases); i++)
        check(cases[i].name, cases[i].in, cases[i].len, cases[i].expect);
}

static char *
many_lines(size_t n)
{
    struct sl_buf b;
    sl_buf_init(&b);
    for (size_t i = 1; i < n; i++)
        sl_buf_printf(&b, "250-line %zu\r\n", i);
    sl_buf_printf(&b, "250 line %zu\r\n", n);
    return sl_buf_steal(&b, NULL);
}

static void
test_line_count_limit(void **state)
{
    char *ok = many_lines(100);
    char *bad = many_lines(101);

    char *t = run(ok, strlen(ok), 0);
    assert_non_null(strstr(t, "R 250 [] n=100 "));
    char *t1 = run(ok, strlen(ok), 1);
    assert_string_equal(t, t1);
    free(t);
    free(t1);
    check("101 lines", bad, strlen(bad), "E too many reply lines\n");
    free(ok);
    free(bad);
}

/* 2048 bytes per line including CRLF */
static void
test_line_length_limit(void **state)
{
    char line[4000];

    memcpy(line, "250 ", 4);
    memset(line + 4, 'a', 2042);
    memcpy(line + 2046, "\r\n", 3);
    char *t = run(line, 2048, 0);
    assert_non_null(strstr(t, "R 250 [] n=1 text=aaaa"));
    char *t1 = run(line, 2048, 1);
    assert_string_equal(t, t1);
    free(t);
    free(t1);

    memset(line + 4, 'a', 2043);
    memcpy(line + 2047, "\r\n", 3);
    check("2049-byte line", line, 2049, "E reply line too long\n");
    /* never ends: still an error once the limit is reached */
    memset(line, 'a', sizeof(line));
    memcpy(line, "250 ", 4);
    check("endless line", line, sizeof(line), "E reply line too long\n");
}

static void
test_reset(void **state)
{
    struct sl_smtp_reply_parser *p = sl_smtp_reply_parser_new();
    struct sl_smtp_reply r;
    const char *err = NULL;

    sl_smtp_reply_parser_feed(p, "250-a\r\n251 b\r\n", 14);
    assert_int_equal(sl_smtp_reply_parser_next(p, &r, &err), -1);
    sl_smtp_reply_parser_feed(p, "250 ok\r\n", 8);
    assert_int_equal(sl_smtp_reply_parser_next(p, &r, &err), -1);
    sl_smtp_reply_parser_reset(p);
    sl_smtp_reply_parser_feed(p, "250-half", 8);
    assert_int_equal(sl_smtp_reply_parser_next(p, &r, &err), 0);
    sl_smtp_reply_parser_reset(p);      /* drops the half line */
    sl_smtp_reply_parser_feed(p, "221 2.0.0 Bye\r\n", 15);
    assert_int_equal(sl_smtp_reply_parser_next(p, &r, &err), 1);
    assert_int_equal(r.code, 221);
    assert_string_equal(r.enhanced, "2.0.0");
    assert_int_equal(r.n_lines, 1);
    sl_smtp_reply_free(&r);
    sl_smtp_reply_parser_destroy(&p);
    sl_smtp_reply_parser_destroy(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_line_count_limit),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
