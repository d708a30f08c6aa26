/* test_mime_check.c - the MIME walk's leaves: parts sent as is handed in
 * place, encoded parts decoded in chunks (mime_reader) to the same bytes as
 * GMime's whole-part decoding, across its block boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "workers/mime_check.h"
#include "../mime_trace.h"
#include "util/sl_buf.h"
#include "util/sl_util.h"

static const size_t sizes[] = {0, 1, 57, 4095, 4096, 4097, MIME_LEAF_HEAD - 1, MIME_LEAF_HEAD,
                               MIME_LEAF_HEAD + 1, 700001};

struct seen {
    const char *msg;
    size_t msg_len;
    const unsigned char *want;
    size_t want_len;
    unsigned leaves;
    bool in_place;      /* the leaf pointed into the message */
};

static unsigned char *
random_bytes(size_t n, unsigned seed)
{
    unsigned char *b = sl_malloc(n + 1);
    unsigned x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)(x >> 16);
    }
    return b;
}

/* Everything the reader gives, read n bytes at a time. */
static GByteArray *
read_all(const struct mime_leaf *leaf, size_t n)
{
    struct mime_reader *r = mime_reader_new(leaf);
    GByteArray *out = g_byte_array_new();
    char *buf = sl_malloc(n);
    long k;

    while ((k = mime_reader_read(r, buf, n)) > 0)
        g_byte_array_append(out, (guint8 *)buf, (guint)k);
    assert_int_equal(k, 0);
    /* a rewind starts the decoding over */
    mime_reader_rewind(r);
    k = mime_reader_read(r, buf, n);
    assert_true(k >= 0 && (size_t)k <= n && (size_t)k <= out->len && (k > 0) == (out->len > 0));
    assert_memory_equal(buf, out->data, (size_t)k);
    mime_reader_free(r);
    free(buf);
    return out;
}

/* GMime's own decoding of the whole part, as the walk did before. */
static GByteArray *
decode_whole(const struct mime_leaf *leaf)
{
    GMimeStream *mem = g_mime_stream_mem_new();
    GByteArray *out;

    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    g_mime_data_wrapper_write_to_stream(GMIME_DATA_WRAPPER(leaf->content), mem);
    out = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    g_object_unref(mem);
    return out;
}

static void
on_leaf(void *arg, const struct mime_leaf *leaf)
{
    static const size_t chunks[] = {1, 3, 4096, 65536};
    struct seen *s = arg;
    GByteArray *whole;

    if (strcmp(leaf->type, "application/octet-stream") != 0)
        return;
    s->leaves++;
    s->in_place = leaf->data >= s->msg && leaf->data <= s->msg + s->msg_len;
    if (!leaf->whole)
        assert_int_equal(leaf->len, MIME_LEAF_HEAD);
    else if (!s->in_place)
        assert_true(leaf->len <= MIME_LEAF_HEAD);
    whole = decode_whole(leaf);
    if (s->want != NULL) {
        assert_int_equal(whole->len, s->want_len);
        assert_memory_equal(whole->data, s->want, s->want_len);
    }
    assert_int_equal(leaf->whole, s->in_place || whole->len <= MIME_LEAF_HEAD);
    assert_memory_equal(leaf->data, whole->data, leaf->len);
    for (size_t i = 0; i < SL_N_ELEMENTS(chunks); i++) {
        if (chunks[i] == 1 && whole->len > 5000)
            continue;   /* byte by byte only where it stays quick */
        GByteArray *got = read_all(leaf, chunks[i]);
        assert_int_equal(got->len, whole->len);
        assert_memory_equal(got->data, whole->data, whole->len);
        g_byte_array_free(got, TRUE);
    }
    g_byte_array_free(whole, TRUE);
}

static char *
message(const char *cte, const char *body, size_t *len_r)
{
    struct sl_buf m;

    sl_buf_init(&m);
    sl_buf_printf(&m, "From: a@example.org\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
                      "--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                      "--BB\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Transfer-Encoding: %s\r\n\r\n",
                  cte);
    sl_buf_append_str(&m, body);
    sl_buf_append_str(&m, "\r\n--BB--\r\n");
    return sl_buf_steal(&m, len_r);
}

static void
walk(const char *msg, size_t len, struct seen *s)
{
    struct mime_info info;

    s->msg = msg;
    s->msg_len = len;
    s->leaves = 0;
    assert_int_equal(mime_check_walk(msg, len, &info, on_leaf, s), 0);
    assert_int_equal(s->leaves, 1);
    mime_info_free(&info);
}

static void
test_base64(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_N_ELEMENTS(sizes); i++) {
        unsigned char *want = random_bytes(sizes[i], (unsigned)i);
        gchar *b64 = g_base64_encode(want, sizes[i]);
        struct sl_buf body;
        size_t len;

        sl_buf_init(&body);
        for (size_t o = 0, n = strlen(b64); o < n; o += 76)
            sl_buf_printf(&body, "%.76s\r\n", b64 + o);
        sl_buf_append(&body, "", 1);
        char *msg = message("base64", body.data, &len);
        struct seen s = {.want = want, .want_len = sizes[i]};
        walk(msg, len, &s);
        assert_false(s.in_place && sizes[i] > 0);
        free(msg);
        sl_buf_free(&body);
        g_free(b64);
        free(want);
    }
}

/* Quoted-printable with soft breaks, escapes and hard breaks, so that
 * "=XX" and "=\r\n" fall across GMime's 4 KiB read blocks. */
static void
test_quoted_printable(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_N_ELEMENTS(sizes); i++) {
        unsigned char *raw = random_bytes(sizes[i], (unsigned)i + 100);
        struct sl_buf body;
        size_t len, col = 0;

        sl_buf_init(&body);
        for (size_t k = 0; k < sizes[i]; k++) {
            unsigned char c = raw[k];
            if (c % 7 == 0 && col > 0) {
                sl_buf_append_str(&body, "\r\n"); /* a hard break */
                col = 0;
            } else if (c >= 33 && c <= 126 && c != '=') {
                sl_buf_append(&body, &c, 1);
                col++;
            } else {
                sl_buf_printf(&body, "=%02X", c);
                col += 3;
            }
            if (col >= 72) {
                sl_buf_append_str(&body, "=\r\n");
                col = 0;
            }
        }
        sl_buf_append(&body, "", 1);
        char *msg = message("quoted-printable", body.data, &len);
        struct seen s = {0};
        walk(msg, len, &s);
        free(msg);
        sl_buf_free(&body);
        free(raw);
    }
}

/* 7bit, 8bit, binary: no decoding, the leaf is the message's own bytes. */
static void
test_in_place(void **state)
{
    static const char *const ctes[] = {"7bit", "8bit", "binary"};

    (void)state;
    for (size_t i = 0; i < SL_N_ELEMENTS(ctes); i++) {
        struct sl_buf body;
        size_t len;

        sl_buf_init(&body);
        while (body.len < MIME_LEAF_HEAD + 1000)
            sl_buf_append_str(&body, "a line of text, nothing to decode\r\n");
        sl_buf_append(&body, "", 1);
        char *msg = message(ctes[i], body.data, &len);
        struct seen s = {0};
        walk(msg, len, &s);
        assert_true(s.in_place);
        free(msg);
        sl_buf_free(&body);
    }
}

/* The parser is kept from one message to the next on a thread: each
 * message's result is its own, whatever came before, and no message's
 * bytes are read after the call (each lives on the heap only during its
 * call, for ASan to see). */
static void
parse_copy(const char *text, struct mime_info *info_r)
{
    size_t len = strlen(text);
    char *copy = sl_malloc(len);

    memcpy(copy, text, len);
    (void)mime_check(copy, len, info_r);
    free(copy);
}

static void
test_parser_reused(void **state)
{
    static const char good[] = "Message-ID: <first@example.test>\r\n"
                               "MIME-Version: 1.0\r\n"
                               "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                               "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                               "--b\r\nContent-Type: application/octet-stream; name=a.exe\r\n\r\n"
                               "MZ\r\n--b--\r\n";
    static const char bad[] = "Subject: no boundary\r\n"
                              "Content-Type: multipart/mixed\r\n\r\n"
                              "--b\r\nnot a part";
    struct mime_info first, broken, again;

    (void)state;
    parse_copy(good, &first);
    parse_copy(bad, &broken);
    parse_copy(good, &again);
    assert_true(first.parsed && broken.parsed && again.parsed);
    assert_int_equal(first.parts, 3);
    assert_string_equal(first.message_id, "first@example.test");
    assert_null(broken.message_id);
    assert_true(broken.criticals > 0);
    assert_int_equal(first.criticals, 0);
    assert_int_equal(again.parts, first.parts);
    assert_int_equal(again.warnings, first.warnings);
    assert_int_equal(again.criticals, first.criticals);
    assert_true(again.issue_mask == first.issue_mask);
    assert_string_equal(again.message_id, first.message_id);
    mime_info_free(&first);
    mime_info_free(&broken);
    mime_info_free(&again);
}

/* A walk started from inside another's callback parses on its own: the
 * outer walk's later leaves are still its own message's bytes. */
struct nested {
    unsigned leaves;
    char second[32];
    char *inner_id;
};

static void
on_nested_leaf(void *ctx, const struct mime_leaf *leaf)
{
    static const char inner[] = "Message-ID: <inner@example.test>\r\n\r\nbody\r\n";
    struct nested *n = ctx;
    struct mime_info info;

    if (++n->leaves == 1) {
        parse_copy(inner, &info);
        n->inner_id = info.message_id;
    } else if (leaf->len < sizeof(n->second)) {
        memcpy(n->second, leaf->data, leaf->len);
    }
}

static void
test_nested_walk(void **state)
{
    static const char outer[] = "Message-ID: <outer@example.test>\r\n"
                                "MIME-Version: 1.0\r\n"
                                "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                                "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
                                "--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n";
    struct nested n = {0};
    struct mime_info info;

    (void)state;
    assert_int_equal(mime_check_walk(outer, strlen(outer), &info, on_nested_leaf, &n), 0);
    assert_int_equal(n.leaves, 2);
    assert_string_equal(n.inner_id, "inner@example.test");
    assert_string_equal(n.second, "second");
    assert_string_equal(info.message_id, "outer@example.test");
    free(n.inner_id);
    mime_info_free(&info);
}

/* The walk parses the top level as a MIME part; GMime's message object
 * must give the same results on any input, hostile input above all. */
struct trace {
    struct sl_buf b;
};

static void
on_trace_leaf(void *ctx, const struct mime_leaf *leaf)
{
    struct trace *t = ctx;

    mime_trace_leaf(&t->b, leaf);
}

static char *
trace_walk(const char *msg, size_t len, bool as_message)
{
    struct trace t;
    struct mime_info info;
    int r;

    sl_buf_init(&t.b);
    r = as_message ? mime_check_walk_as_message(msg, len, &info, on_trace_leaf, &t)
                   : mime_check_walk(msg, len, &info, on_trace_leaf, &t);
    mime_trace_result(&t.b, r, &info);
    mime_info_free(&info);
    return sl_buf_steal(&t.b, NULL);
}

static void
assert_same_walk(const char *msg, size_t len)
{
    char *copy = sl_malloc(len + 1); /* on the heap, for ASan to see its bounds */
    char *part, *whole;

    memcpy(copy, msg, len);
    part = trace_walk(copy, len, false);
    whole = trace_walk(copy, len, true);
    if (strcmp(part, whole) != 0) {
        print_error("message (%zu bytes):\n%.*s\nas a part:    %s\nas a message: %s\n", len,
                    (int)len, msg, part, whole);
        fail();
    }
    free(part);
    free(whole);
    free(copy);
}

static void
test_part_as_message(void **state)
{
    static const char *const fixed[] = {
        "Received: a\r\nReceived: b\r\nSubject: x\r\nSubject: y\r\nX-A: 1\r\nX-A: 1\r\n"
        "Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nbody\r\n",
        "From someone@example.org Sun Dec  6 12:00:00 2026\r\nSubject: x\r\n\r\nbody\r\n",
        ">From someone\nSubject: x\n\nbody\n",
        "Message-ID: <one@example.test>\r\nMessage-Id: <two@example.test>\r\n\r\nx\r\n",
        "Message-ID: <one@example.test>\r\nMessage-ID:\r\n\r\nx\r\n",
        "Message-ID: <a b@example.test> (comment)\r\n\r\nx\r\n",
        "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nReceived: a\r\nReceived: b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
        "Content-Type: message/rfc822\r\n\r\nSubject: a\r\nSubject: b\r\nReceived: 1\r\n"
        "Received: 2\r\n\r\ninner\r\n",
        "Bad Header Line\r\nSubject: x\r\n\r\nbody\r\n",
        " folded first\r\nSubject: x\r\n\r\nbody\r\n",
        "Subject: x\r\nno colon here\r\nSubject: y\r\n\r\nbody\r\n",
        "Subject: no empty line and no end",
        "\r\nbody only\r\n",
        "Content-Type: multipart/mixed\r\n\r\n--b\r\nnot a part",
        "To: a@example.org, ,, <broken\r\nFrom: \"x\" <\r\nDate: never\r\n\r\nx\r\n",
        "Subject: x\r\r\nReceived: a\r\n\rReceived: b\r\n\r\nx\r\n",
    };
    static const char *const head[] = {
        "Received: from a",
        "Received: from b",
        "Subject: one",
        "Subject: two",
        "subject: one",
        "From: a@example.org",
        "To: x@example.org, bad,,address",
        "Message-ID: <m1@example.test>",
        "Message-Id: <m2@example.test>",
        "Message-ID:",
        "Date: Sun, 06 Dec 2026 12:00:00 +0000",
        "Date: garbage",
        "X-Dup: 1",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed; boundary=\"b1\"",
        "Content-Type: multipart/mixed",
        "Content-Type: text/plain",
        "Content-Type: application/octet-stream; name=\"a.exe\"",
        "Content-Type: message/rfc822",
        "Content-Disposition: attachment; filename=x.zip",
        "Content-Disposition: attachment; filename=y.zip",
        "Content-Transfer-Encoding: base64",
        " folded continuation",
        "Bad Header Line",
        "From mbox line",
        "Subject: =?utf-8?B?w6k=?=",
        "Subject: caf\xc3\xa9",
        "X-Ctl: a\001b",
        ":empty name",
        "",
    };
    static const char *const body[] = {
        "",
        "--b1",
        "--b1--",
        "--b2",
        "--b2--",
        "hello",
        "TVqQAAMAAAAEAAAA",
        "Content-Type: text/plain",
        "Content-Type: multipart/alternative; boundary=b2",
        "Content-Type: message/rfc822",
        "Content-Type: application/pkcs7-mime; smime-type=enveloped-data",
        "Content-Type: multipart/encrypted; boundary=b2",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment; filename=\"evil.exe\"",
        "Received: nested a",
        "Received: nested b",
        "Subject: n1",
        "Subject: n2",
        "Message-ID: <inner@example.test>",
        "From inner",
        "\r",
    };
    unsigned x = 20261206;
    struct sl_buf m;

    (void)state;
    for (size_t i = 0; i < SL_N_ELEMENTS(fixed); i++)
        assert_same_walk(fixed[i], strlen(fixed[i]));
    /* 3,000 messages from the lines above, seeded: the same ones each run */
    sl_buf_init(&m);
    for (int n = 0; n < 3000; n++) {
        const char *eol = (n & 1) ? "\r\n" : "\n";
        unsigned heads, bodies;

        sl_buf_reset(&m);
        x = x * 1103515245u + 12345u;
        heads = (x >> 16) % 9;
        x = x * 1103515245u + 12345u;
        bodies = (x >> 16) % 24;
        for (unsigned k = 0; k < heads + bodies; k++) {
            x = x * 1103515245u + 12345u;
            if (k < heads)
                sl_buf_printf(&m, "%s%s", head[(x >> 16) % SL_N_ELEMENTS(head)], eol);
            else
                sl_buf_printf(&m, "%s%s", body[(x >> 16) % SL_N_ELEMENTS(body)], eol);
        }
        if (m.len > 0)
            assert_same_walk(m.data, m.len);
    }
    sl_buf_free(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_parser_reused),
        cmocka_unit_test(test_nested_walk),
        cmocka_unit_test(test_part_as_message),
    };

    mime_check_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
