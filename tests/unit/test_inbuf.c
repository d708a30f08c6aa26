/* test_inbuf.c - lib/util/sl_inbuf: what is pending is what was fed and
 * not consumed, whatever the pieces; consumed bytes are moved out of the
 * way only when the tail is full and the prefix is at least as large as
 * what is pending; memory stays bounded when a parser bounds what is
 * pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/sl_inbuf.h"

static void
test_empty(void **state)
{
    struct sl_inbuf b = {0};

    (void)state;
    assert_int_equal(sl_inbuf_pending(&b), 0);
    assert_non_null(sl_inbuf_head(&b));
    assert_string_equal(sl_inbuf_head(&b), "");
    sl_inbuf_feed(&b, "", 0);
    assert_null(b.data);
    sl_inbuf_clear(&b);
    sl_inbuf_free(&b);
    assert_null(b.data);
}

/* Against a model: random feeds and consumptions of random sizes. */
static void
test_model(void **state)
{
    enum { TOTAL = 1 << 20 };
    char *model = malloc(TOTAL);
    size_t fed = 0, consumed = 0, most_pending = 0;
    uint32_t rnd = 12345;
    struct sl_inbuf b;

    (void)state;
    sl_inbuf_init(&b);
    for (size_t i = 0; i < TOTAL; i++)
        model[i] = (char)(i * 7 + i / 251);
    while (fed < TOTAL) {
        rnd = rnd * 1103515245u + 12345u;
        size_t n = (rnd >> 16) % 3000;
        if (n > TOTAL - fed)
            n = TOTAL - fed;
        sl_inbuf_feed(&b, model + fed, n);
        fed += n;
        if (fed - consumed > most_pending)
            most_pending = fed - consumed;
        /* it grows only while the consumed prefix is smaller than what is
         * pending, so never past 4 times the most ever pending */
        assert_true(b.cap <= 1024 || b.cap <= 4 * most_pending);
        rnd = rnd * 1103515245u + 12345u;
        size_t c = (rnd >> 16) % 3100;
        if (c > fed - consumed)
            c = fed - consumed;
        sl_inbuf_consume(&b, c);
        consumed += c;
        assert_int_equal(sl_inbuf_pending(&b), fed - consumed);
        assert_memory_equal(sl_inbuf_head(&b), model + consumed, fed - consumed);
    }
    sl_inbuf_free(&b);
    free(model);
}

/* No move while the tail has room: a pointer handed out stays valid. */
static void
test_no_move_with_room(void **state)
{
    struct sl_inbuf b;

    (void)state;
    sl_inbuf_init(&b);
    sl_inbuf_feed(&b, "0123456789", 10);
    sl_inbuf_consume(&b, 8);
    const char *head = sl_inbuf_head(&b);
    sl_inbuf_feed(&b, "abc", 3);
    assert_ptr_equal(sl_inbuf_head(&b), head);
    assert_int_equal(b.pos, 8);
    assert_memory_equal(sl_inbuf_head(&b), "89abc", 5);
    sl_inbuf_free(&b);
}

/* Tail full: compact when the prefix is at least what is pending, grow
 * when it is smaller. */
static void
test_compact_or_grow(void **state)
{
    struct sl_inbuf b;
    char fill[1024];

    (void)state;
    memset(fill, 'x', sizeof(fill));
    sl_inbuf_init(&b);
    sl_inbuf_feed(&b, fill, sizeof(fill));
    size_t cap = b.cap;
    assert_int_equal(b.len, cap);
    sl_inbuf_consume(&b, cap / 2); /* prefix == pending */
    sl_inbuf_feed(&b, "y", 1);
    assert_int_equal(b.cap, cap); /* compacted, not grown */
    assert_int_equal(b.pos, 0);
    assert_int_equal(sl_inbuf_pending(&b), cap / 2 + 1);
    assert_int_equal(sl_inbuf_head(&b)[cap / 2], 'y');

    sl_inbuf_feed(&b, fill, cap - b.len); /* full again */
    sl_inbuf_consume(&b, 10);             /* prefix < pending */
    sl_inbuf_feed(&b, "z", 1);
    assert_true(b.cap > cap); /* grown, not compacted */
    assert_int_equal(b.pos, 10);
    assert_int_equal(sl_inbuf_head(&b)[sl_inbuf_pending(&b) - 1], 'z');

    sl_inbuf_consume(&b, sl_inbuf_pending(&b)); /* nothing pending: back to the front */
    sl_inbuf_feed(&b, "w", 1);
    assert_int_equal(b.pos, 0);
    assert_int_equal(b.len, 1);
    sl_inbuf_free(&b);
}

/* A pipelining client: pieces of a stream of lines, each whole line
 * consumed as a parser would, so a partial line is pending after most
 * feeds. The buffer keeps its first size and the partial line is moved
 * only when the tail is full, not after every feed: far fewer bytes are
 * moved than fed. */
static void
test_pipelined_bounded(void **state)
{
    static const char line[] = "RCPT TO:<someone@example.org>\r\n";
    static const size_t pieces[] = {1, 7, 100, 1000};

    (void)state;
    for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
        struct sl_inbuf b;
        char stream[4096];
        size_t moved = 0, fed = 0;

        for (size_t i = 0; i < sizeof(stream); i++)
            stream[i] = line[i % (sizeof(line) - 1)];
        sl_inbuf_init(&b);
        for (int round = 0; round < 200; round++) {
            for (size_t off = 0; off < sizeof(stream); off += pieces[p]) {
                size_t n = sizeof(stream) - off < pieces[p] ? sizeof(stream) - off : pieces[p];
                size_t pos = b.pos, pending = sl_inbuf_pending(&b);
                sl_inbuf_feed(&b, stream + off, n);
                fed += n;
                if (b.pos < pos && pending > 0)
                    moved += pending;
                const char *h = sl_inbuf_head(&b), *lf;
                while ((lf = memchr(h, '\n', sl_inbuf_pending(&b))) != NULL) {
                    sl_inbuf_consume(&b, (size_t)(lf - h) + 1);
                    h = sl_inbuf_head(&b);
                }
            }
        }
        assert_int_equal(b.cap, 1024);
        assert_true(moved * 10 < fed);
        sl_inbuf_free(&b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_no_move_with_room),
        cmocka_unit_test(test_compact_or_grow),
        cmocka_unit_test(test_pipelined_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
