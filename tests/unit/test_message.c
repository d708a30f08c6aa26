/* test_message.c - sl_message: header edits, folding, dot-stuffing,
 * CRLF guarantees, header lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/sl_message.h"

#define MSG                                                                                   \
    "Received: from a\r\n\tby b\r\n"                                                          \
    "Subject: Hello\r\n"                                                                      \
    "X-Spam-Flag: YES\r\n"                                                                    \
    "From: a@b\r\n"                                                                           \
    "x-spam-flag: maybe\r\n"                                                                  \
    "\r\n"                                                                                    \
    "body\r\n"                                                                                \
    ".dot\r\n"

#define E(op, n, v) { SL_HDR_##op, n, v }

struct mcase {
    const char *name;
    const char *in;
    struct sl_header_edit edits[4];
    size_t n_edits;
    const char *expect;
};

static const struct mcase cases[] = {
    { "no edits", MSG, { E(APPEND, "x", "y") }, 0,
      "Received: from a\r\n\tby b\r\nSubject: Hello\r\nX-Spam-Flag: YES\r\nFrom: a@b\r\n"
      "x-spam-flag: maybe\r\n\r\nbody\r\n..dot\r\n" },
    { "prepend two, in order", MSG, { E(PREPEND, "X-A", "1"), E(PREPEND, "X-B", "2") }, 2,
      "X-A: 1\r\nX-B: 2\r\nReceived: from a\r\n\tby b\r\nSubject: Hello\r\nX-Spam-Flag: YES\r\n"
      "From: a@b\r\nx-spam-flag: maybe\r\n\r\nbody\r\n..dot\r\n" },
    { "append", MSG, { E(APPEND, "X-Virus-Scanned", "sluice") }, 1,
      "Received: from a\r\n\tby b\r\nSubject: Hello\r\nX-Spam-Flag: YES\r\nFrom: a@b\r\n"
      "x-spam-flag: maybe\r\nX-Virus-Scanned: sluice\r\n\r\nbody\r\n..dot\r\n" },
    { "replace all of a name in place", MSG, { E(REPLACE, "X-SPAM-FLAG", "NO") }, 1,
      "Received: from a\r\n\tby b\r\nSubject: Hello\r\nX-SPAM-FLAG: NO\r\nFrom: a@b\r\n"
      "\r\nbody\r\n..dot\r\n" },
    { "replace absent appends", MSG, { E(REPLACE, "X-Spam-Score", "1.5") }, 1,
      "Received: from a\r\n\tby b\r\nSubject: Hello\r\nX-Spam-Flag: YES\r\nFrom: a@b\r\n"
      "x-spam-flag: maybe\r\nX-Spam-Score: 1.5\r\n\r\nbody\r\n..dot\r\n" },
    { "replace a folded header", MSG, { E(REPLACE, "received", "new") }, 1,
      "received: new\r\nSubject: Hello\r\nX-Spam-Flag: YES\r\nFrom: a@b\r\n"
      "x-spam-flag: maybe\r\n\r\nbody\r\n..dot\r\n" },
    { "delete takes continuation lines", MSG, { E(DELETE, "Received", NULL) }, 1,
      "Subject: Hello\r\nX-Spam-Flag: YES\r\nFrom: a@b\r\nx-spam-flag: maybe\r\n\r\n"
      "body\r\n..dot\r\n" },
    { "delete all, any case", MSG, { E(DELETE, "X-Spam-flag", NULL) }, 1,
      "Received: from a\r\n\tby b\r\nSubject: Hello\r\nFrom: a@b\r\n\r\nbody\r\n..dot\r\n" },
    { "delete absent", MSG, { E(DELETE, "X-None", NULL) }, 1,
      "Received: from a\r\n\tby b\r\nSubject: Hello\r\nX-Spam-Flag: YES\r\nFrom: a@b\r\n"
      "x-spam-flag: maybe\r\n\r\nbody\r\n..dot\r\n" },
    { "edits apply in order", "A: 1\r\n\r\nb\r\n",
      { E(APPEND, "X-N", "1"), E(REPLACE, "x-n", "2"), E(PREPEND, "X-P", "p"),
        E(DELETE, "A", NULL) }, 4,
      "X-P: p\r\nx-n: 2\r\n\r\nb\r\n" },
    { "prepend then delete it", "A: 1\r\n\r\nb\r\n",
      { E(PREPEND, "X-P", "p"), E(DELETE, "x-p", NULL), E(PREPEND, "X-Q", "q") }, 3,
      "X-Q: q\r\nA: 1\r\n\r\nb\r\n" },
    { "no header/body separator", "Subject: x\r\nFrom: y\r\n", { E(APPEND, "X", "1") }, 1,
      "Subject: x\r\nFrom: y\r\nX: 1\r\n" },
    { "no line end at all", "Subject: x", { E(APPEND, "X", "1") }, 1, "Subject: x\r\nX: 1\r\n" },
    { "final body line without CRLF", "S: x\r\n\r\nlast", { E(APPEND, "X", "1") }, 0,
      "S: x\r\n\r\nlast\r\n" },
    { "dot-stuffing", "S: x\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n.", { E(APPEND, "X", "1") }, 0,
      "S: x\r\n\r\n..\r\n...\r\n..x\r\nx.\r\n..\r\n" },
    { "dot-stuffing of a header line", ".S: x\r\n\r\nb\r\n", { E(APPEND, "X", "1") }, 0,
      "..S: x\r\n\r\nb\r\n" },
    { "bare LF and CR become CRLF", "S: x\n\nbody\rmore\n.x\r\r\n", { E(APPEND, "X", "1") }, 1,
      "S: x\r\nX: 1\r\n\r\nbody\r\nmore\r\n..x\r\n\r\n" },
    { "trailing bare CR", "S: x\r\n\r\nb\r", { E(APPEND, "X", "1") }, 0, "S: x\r\n\r\nb\r\n" },
    { "empty body", "S: x\r\n\r\n", { E(APPEND, "X", "1") }, 1, "S: x\r\nX: 1\r\n\r\n" },
    { "fold at 78 columns",
      "S: x\r\n\r\n",
      { E(APPEND, "X-T",
          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB CCCCCCCCCC") },
      1,
      "S: x\r\nX-T: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\r\n"
      "\tCCCCCCCCCC\r\n\r\n" },
    { "a long word is not broken", "S: x\r\n\r\n",
      { E(APPEND, "X-L",
          "a "
          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") },
      1,
      "S: x\r\nX-L: a\r\n"
      "\txxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "\r\n\r\n" },
    { "value whitespace trimmed, inner kept", "S: x\r\n\r\n", { E(APPEND, "X-W", "  a  b\t ") }, 1,
      "S: x\r\nX-W: a  b\r\n\r\n" },
    { "empty value", "S: x\r\n\r\n", { E(APPEND, "X-E", "") }, 1, "S: x\r\nX-E:\r\n\r\n" },
    { "value cannot inject a header", "S: x\r\n\r\n",
      { E(APPEND, "X-I", "a\r\nBcc: evil@example\r\n\r\nbody"), E(APPEND, "X-J", "x\ry\001z") }, 2,
      "S: x\r\nX-I: a Bcc: evil@example body\r\nX-J: x y z\r\n\r\n" },
    { "bad names skipped", "S: x\r\n\r\n",
      { E(APPEND, "Bad:Name", "1"), E(APPEND, "Bad Name", "2"), E(APPEND, "", "3"),
        E(APPEND, NULL, "4") },
      4, "S: x\r\n\r\n" },
    /* a first line that starts with a blank continues nothing: it is body
     * text, and so is what follows (Postfix's cleanup reads it so) */
    { "continuation without a header", " lead\r\nS: x\r\n\r\nb\r\n", { E(DELETE, "S", NULL) }, 1,
      " lead\r\nS: x\r\n\r\nb\r\n" },
    /* body text without the empty line: our fields go above it, and the
     * empty line is put in, as cleanup does (not after the body's lines) */
    { "body without the empty line", "Subject: x\r\nX-A: 1\r\nThis is the body\r\nline 2\r\n",
      { E(APPEND, "X-V", "s") }, 1,
      "Subject: x\r\nX-A: 1\r\nX-V: s\r\n\r\nThis is the body\r\nline 2\r\n" },
    { "body without the empty line, prepend", "A: 1\r\nbody: no, a sentence\r\n",
      { E(PREPEND, "X-P", "p") }, 1, "X-P: p\r\nA: 1\r\nbody: no, a sentence\r\n" },
    { "body without the empty line, delete only", "A: 1\r\nB: 2\r\nthe body\r\n",
      { E(DELETE, "A", NULL) }, 1, "B: 2\r\nthe body\r\n" },
    { "no header at all", "hello world\r\nmore\r\n", { E(APPEND, "X", "1") }, 1,
      "X: 1\r\n\r\nhello world\r\nmore\r\n" },
    { "a field name with a blank or 8-bit octet is body", "A: 1\r\nBad Name: 2\r\nC: 3\r\n",
      { E(APPEND, "X", "1"), E(DELETE, "C", NULL) }, 2,
      "A: 1\r\nX: 1\r\n\r\nBad Name: 2\r\nC: 3\r\n" },
    { "8-bit field name", "A: 1\r\nS\xc3\xbc" "bject: 2\r\n", { E(APPEND, "X", "1") }, 1,
      "A: 1\r\nX: 1\r\n\r\nS\xc3\xbc" "bject: 2\r\n" },
    { "folded field then body", "A: 1\r\n 2\r\nbody\r\n", { E(REPLACE, "A", "9") }, 1,
      "A: 9\r\n\r\nbody\r\n" },
    { "empty message", "", { E(APPEND, "X", "1") }, 0, "" },
};

static void
test_cases(void **state)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(cases); i++) {
        const struct mcase *c = &cases[i];
        struct sl_buf out;

        sl_buf_init(&out);
        sl_buf_append(&out, "PRE|", 4);    /* appends, never resets */
        size_t dots = sl_message_write_stuffed(c->in, strlen(c->in), c->edits, c->n_edits, &out);
        if (strcmp(out.data + 4, c->expect) != 0)
            print_error("case %s:\n got: %s\nwant: %s\n", c->name, out.data + 4, c->expect);
        assert_memory_equal(out.data, "PRE|", 4);
        assert_string_equal(out.data + 4, c->expect);
        assert_int_equal(out.len, 4 + strlen(c->expect));
        /* every output line that opens with a dot has one stuffing dot:
         * the RFC 1870 size is the output less those */
        size_t want_dots = c->expect[0] == '.';
        for (const char *e = c->expect; (e = strstr(e, "\r\n.")) != NULL; e += 3)
            want_dots++;
        assert_int_equal(dots, want_dots);
        sl_buf_free(&out);
    }
}

/* Every output line within 78 columns, continuation lines start with TAB,
 * no bare CR/LF, and the header reads back with the same words. */
static void
test_fold_properties(void **state)
{
    struct sl_buf value, out;
    sl_buf_init(&value);
    sl_buf_init(&out);
    for (int i = 0; i < 60; i++)
        sl_buf_printf(&value, "%sw%d", i ? " " : "", i * 37);
    struct sl_header_edit e = { SL_HDR_PREPEND, "X-Folded-Header", value.data };
    const char *msg = "S: x\r\n\r\nb\r\n";

    sl_message_write_stuffed(msg, strlen(msg), &e, 1, &out);
    size_t lines = 0;
    for (const char *s = out.data; *s;) {
        const char *crlf = strstr(s, "\r\n");
        assert_non_null(crlf);
        assert_true(crlf - s <= 78);
        assert_null(memchr(s, '\r', (size_t)(crlf - s)));
        assert_null(memchr(s, '\n', (size_t)(crlf - s)));
        if (lines > 0 && s[0] != 'S' && crlf != s && s[0] != 'b')
            assert_int_equal(s[0], '\t');
        lines++;
        s = crlf + 2;
    }
    assert_true(lines > 4);     /* it did fold */
    char *v = sl_message_header(out.data, out.len, "x-folded-header");
    assert_non_null(v);
    for (char *t = v; *t; t++) {
        if (*t == '\t')
            *t = ' ';
    }
    assert_string_equal(v, value.data);
    free(v);
    sl_buf_free(&value);
    sl_buf_free(&out);
}

static void
test_header_lookup(void **state)
{
    static const struct {
        const char *msg, *name, *expect;
    } lookups[] = {
        { MSG, "Subject", "Hello" },
        { MSG, "subject", "Hello" },
        { MSG, "X-Spam-Flag", "YES" },      /* the first one */
        { MSG, "Received", "from a\tby b" },
        { MSG, "Receive", NULL },
        { MSG, "body", NULL },
        { "A: 1\r\n\r\nB: 2\r\n", "B", NULL },      /* body is not headers */
        { "A: 1\r\nB: 2", "B", "2" },               /* no separator, no CRLF */
        { "Subject :  spaced  \r\n\r\n", "Subject", "spaced" },
        { "X-E:\r\n\r\n", "X-E", "" },
        { "X-F: a\r\n  b\r\n c\r\n\r\n", "X-F", "a  b c" },
        { "X-F: a\n b\n\n", "X-F", "a b" },
        { "", "X", NULL },
        { "NoColonLine\r\nX: 1\r\n\r\n", "NoColonLine", NULL },
        { "NoColonLine\r\nX: 1\r\n\r\n", "X", NULL }, /* the body starts at line 1 */
        { "X: 1\r\nbody line\r\nY: 2\r\n", "Y", NULL },
    };

    for (size_t i = 0; i < SL_N_ELEMENTS(lookups); i++) {
        char *v = sl_message_header(lookups[i].msg, strlen(lookups[i].msg), lookups[i].name);
        if (lookups[i].expect == NULL) {
            assert_null(v);
        } else {
            assert_non_null(v);
            assert_string_equal(v, lookups[i].expect);
        }
        free(v);
    }
}

/* Many bare CRs before one LF must not go quadratic (and must all become
 * CRLF); a large body is copied intact. */
static void
test_large_and_hostile(void **state)
{
    const size_t n = 200000;
    char *msg = malloc(n + 20);
    struct sl_buf out;

    memcpy(msg, "S: x\r\n\r\n", 8);
    memset(msg + 8, '\r', n);
    memcpy(msg + 8 + n, "\n", 2);
    sl_buf_init(&out);
    sl_message_write_stuffed(msg, strlen(msg), NULL, 0, &out);
    assert_int_equal(out.len, 8 + 2 * n);
    for (size_t i = 8; i < out.len; i += 2)
        assert_memory_equal(out.data + i, "\r\n", 2);
    free(msg);
    sl_buf_free(&out);
}

/* The header section whole, then the body through an sl_stuffer cut at
 * the given offsets (relative to the body); also counts without output. */
static size_t
streamed(const char *msg, size_t len, const struct sl_header_edit *edits, size_t n_edits,
         const size_t *cuts, size_t n_cuts, struct sl_buf *out)
{
    struct sl_stuffer st, count;
    size_t body_off, dots = sl_message_write_head(msg, len, edits, n_edits, out, &body_off);
    size_t head_len = out->len, at = body_off;

    sl_stuffer_init(&st);
    sl_stuffer_init(&count);
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? body_off + cuts[i] : len;
        if (to > len)
            to = len;
        if (to < at)
            continue;
        sl_stuffer_feed(&st, msg + at, to - at, out);
        sl_stuffer_feed(&count, msg + at, to - at, NULL);
        at = to;
    }
    sl_stuffer_finish(&st, out);
    sl_stuffer_finish(&count, NULL);
    assert_int_equal(st.out_len, out->len - head_len);
    assert_int_equal(count.out_len, st.out_len);
    assert_int_equal(count.dots, st.dots);
    return dots + st.dots;
}

static void
check_same(const char *msg, size_t len, const struct sl_header_edit *e, size_t n_e,
           const size_t *cuts, size_t n_cuts)
{
    struct sl_buf whole, parts;
    size_t d1, d2;

    sl_buf_init(&whole);
    sl_buf_init(&parts);
    d1 = sl_message_write_stuffed(msg, len, e, n_e, &whole);
    d2 = streamed(msg, len, e, n_e, cuts, n_cuts, &parts);
    assert_int_equal(d1, d2);
    assert_int_equal(whole.len, parts.len);
    assert_memory_equal(whole.data, parts.data, whole.len);
    sl_buf_free(&whole);
    sl_buf_free(&parts);
}

/* Streamed stuffing gives the whole-buffer bytes, wherever the chunks end:
 * a CRLF "." cut between CR and LF or LF and ".", bare CRs and LFs, a last
 * line without its CRLF. */
static void
test_streamed_stuffing(void **state)
{
    static const char *const msgs[] = {
        "Subject: x\r\n\r\nline\r\n.dot\r\n..two\r\n.\r\nend",
        "Subject: x\r\nno empty line\r\n.a\r\n",
        "S: y\r\n\r\n\r\r\n.\n.\r.x\r",
        "S: y\r\n\r\n.",
        "S: y\r\n\r\n",
        "",
        ".starts with a dot\r\n",
    };
    struct sl_header_edit e[] = {{SL_HDR_PREPEND, "X-A", "1"}, {SL_HDR_APPEND, "X-B", "2"}};

    (void)state;
    for (size_t m = 0; m < sizeof(msgs) / sizeof(msgs[0]); m++) {
        size_t len = strlen(msgs[m]);
        for (size_t n_e = 0; n_e <= 2; n_e++) {
            check_same(msgs[m], len, e, n_e, NULL, 0);
            for (size_t a = 0; a <= len; a++) {
                check_same(msgs[m], len, e, n_e, &a, 1);         /* one cut anywhere */
                for (size_t b = a; b <= len; b++) {
                    size_t cuts[] = {a, b};
                    check_same(msgs[m], len, e, n_e, cuts, 2);
                }
            }
        }
    }

    /* random bodies over the bytes that matter, random cuts */
    static const char alphabet[] = ".\r\na: ";
    unsigned x = 12345;
    for (int round = 0; round < 3000; round++) {
        char msg[200];
        size_t len = 0, cuts[8];
        len = (size_t)(x % sizeof(msg));
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            msg[i] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
        }
        for (size_t i = 0; i < 8; i++) {
            x = x * 1103515245u + 12345u;
            cuts[i] = len > 0 ? (x >> 16) % (len + 1) : 0;
        }
        for (size_t i = 1; i < 8; i++)   /* ascending */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        check_same(msg, len, e, (size_t)round % 3, cuts, 8);
        x = x * 1103515245u + 12345u;
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_fold_properties),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_large_and_hostile),
        cmocka_unit_test(test_streamed_stuffing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
