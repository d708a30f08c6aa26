/* fuzz_smtp_reply.c - libFuzzer target for lib/mail/sl_smtp_reply, the
 * parser of what the reinjection MTA (the origin's :10025) answers.
 *
 * INPUT
 *   The bytes the server sends.
 *
 * INVARIANTS
 *   1. Fed whole, one byte per call (the first TRICKLE_MAX bytes), and in
 *      chunks whose sizes come from a hash of the input, the parser gives the same replies and the
 * same error at the same place.
 *   2. Every reply: code in 200..599 (RFC 5321 4.2: first digit 2-5,
 *      second 0-5); 1..100 lines, none holding CR, LF or NUL, none longer
 *      than the 2048-byte line limit allows; text is the lines joined by
 *      "\n"; the enhanced code is "" or class.subject.detail (RFC 3463)
 *      whose class is the code's first digit and which starts the first
 *      line; sl_smtp_reply_first_line() starts with the three digits.
 *   3. An error is sticky: next() keeps failing with the same text, and
 *      feed() does not revive it; reset() does, and a plain "250 ok" reply
 *      then parses.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mail/sl_smtp_reply.h"
#include "util/sl_buf.h"

#define TRICKLE_MAX 1024

static bool
enhanced_ok(const char *e, int code)
{
    if (e[0] == '\0')
        return true;
    if (e[0] - '0' != code / 100 || e[1] != '.')
        return false;
    const char *s = e + 2;
    for (int part = 0; part < 2; part++) {
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
        if (digits < 1 || digits > 3)
            return false;
        if (part == 0 && *s++ != '.')
            return false;
    }
    return *s == '\0';
}

static void
check_reply(const struct sl_smtp_reply *r)
{
    FUZZ_CHECK(r->code >= 200 && r->code <= 599 && (r->code / 10) % 10 <= 5, "code %d", r->code);
    FUZZ_CHECK(r->n_lines >= 1 && r->n_lines <= 100, "%zu lines", r->n_lines);
    FUZZ_CHECK(r->text != NULL && r->lines != NULL, "text or lines missing");

    struct sl_buf joined;
    sl_buf_init(&joined);
    sl_buf_append(&joined, "", 0);
    for (size_t i = 0; i < r->n_lines; i++) {
        const char *l = r->lines[i];
        FUZZ_CHECK(strpbrk(l, "\r\n") == NULL, "CR or LF in line %zu", i);
        FUZZ_CHECK(strlen(l) <= 2048 - 6, "line %zu of %zu bytes", i, strlen(l));
        if (i > 0)
            sl_buf_append(&joined, "\n", 1);
        sl_buf_append_str(&joined, l);
    }
    FUZZ_CHECK(strcmp(joined.data, r->text) == 0, "text is not the lines joined");
    sl_buf_free(&joined);

    size_t elen = strnlen(r->enhanced, sizeof(r->enhanced));
    FUZZ_CHECK(elen < sizeof(r->enhanced), "enhanced code not terminated");
    FUZZ_CHECK(enhanced_ok(r->enhanced, r->code), "enhanced code \"%s\" with %d", r->enhanced,
               r->code);
    FUZZ_CHECK(strncmp(r->lines[0], r->enhanced, elen) == 0 &&
                   (r->lines[0][elen] == ' ' || r->lines[0][elen] == '\0' || elen == 0),
               "enhanced code \"%s\" does not start the first line", r->enhanced);

    char *first = sl_smtp_reply_first_line(r);
    char digits[4];
    snprintf(digits, sizeof(digits), "%03d", r->code);
    FUZZ_CHECK(strncmp(first, digits, 3) == 0 && (first[3] == '\0' || first[3] == ' '),
               "first line \"%s\"", first);
    free(first);
}

struct run {
    struct sl_smtp_reply_parser *p;
    struct sl_buf t;
    bool failed;
    const char *error;
};

static void
drain(struct run *r)
{
    for (;;) {
        struct sl_smtp_reply reply;
        const char *error = NULL;
        int ret = sl_smtp_reply_parser_next(r->p, &reply, &error);

        if (ret == 0) {
            FUZZ_CHECK(!r->failed, "parser recovered from \"%s\" without reset", r->error);
            return;
        }
        if (ret < 0) {
            FUZZ_CHECK(error != NULL, "-1 without error");
            if (r->failed) {
                FUZZ_CHECK(strcmp(error, r->error) == 0, "sticky error changed: %s -> %s", r->error,
                           error);
                return;
            }
            r->failed = true;
            r->error = error;
            sl_buf_printf(&r->t, "ERR %s\n", error);
            continue; /* must fail again at once */
        }
        FUZZ_CHECK(!r->failed, "a reply after an error");
        check_reply(&reply);
        sl_buf_printf(&r->t, "%d [%s] %zu ", reply.code, reply.enhanced, reply.n_lines);
        sl_buf_append_str(&r->t, reply.text);
        sl_buf_append(&r->t, "\n", 1);
        sl_smtp_reply_free(&reply);
        FUZZ_CHECK(reply.text == NULL && reply.lines == NULL, "sl_smtp_reply_free left pointers");
    }
}

static void
run_init(struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->p = sl_smtp_reply_parser_new();
    sl_buf_init(&r->t);
    sl_buf_append(&r->t, "", 0);
}

static void
run_feed(struct run *r, const uint8_t *s, size_t n)
{
    sl_smtp_reply_parser_feed(r->p, s, n);
    drain(r);
}

static void
run_end(struct run *r)
{
    struct sl_smtp_reply reply;
    const char *error = NULL;

    /* reset() forgets the error and any partial reply */
    sl_smtp_reply_parser_reset(r->p);
    sl_smtp_reply_parser_feed(r->p, "250 ok\r\n", 8);
    FUZZ_CHECK(sl_smtp_reply_parser_next(r->p, &reply, &error) == 1, "after reset: %s", error);
    FUZZ_CHECK(reply.code == 250 && strcmp(reply.text, "ok") == 0, "after reset: %d %s", reply.code,
               reply.text);
    sl_smtp_reply_free(&reply);
    sl_smtp_reply_parser_destroy(&r->p);
    FUZZ_CHECK(r->p == NULL, "destroy did not clear the pointer");
}

static void
same(const char *what, const struct run *a, const struct run *b)
{
    if (a->t.len == b->t.len && memcmp(a->t.data, b->t.data, a->t.len) == 0)
        return;
    fuzz_dump("whole", a->t.data, a->t.len);
    fuzz_dump(what, b->t.data, b->t.len);
    FUZZ_CHECK(false, "fed whole vs %s", what);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, bytes, chunks;

    run_init(&whole);
    run_feed(&whole, data, size);

    /* One byte per call, up to TRICKLE_MAX (each call re-scans the partial
     * line: quadratic); the chunked run covers long inputs. */
    run_init(&bytes);
    for (size_t i = 0; i < size; i++) {
        size_t len = i < TRICKLE_MAX ? 1 : size - i;
        run_feed(&bytes, data + i, len);
        i += len - 1;
    }
    same("one byte at a time", &whole, &bytes);

    run_init(&chunks);
    uint64_t rng = fuzz_hash(data, size);
    for (size_t i = 0; i < size;) {
        size_t len = 1 + (size_t)(fuzz_rand(&rng) % (1u << (fuzz_rand(&rng) % 12)));
        if (len > size - i)
            len = size - i;
        run_feed(&chunks, data + i, len);
        i += len;
    }
    same("in chunks", &whole, &chunks);

    run_end(&whole);
    run_end(&bytes);
    run_end(&chunks);
    sl_buf_free(&whole.t);
    sl_buf_free(&bytes.t);
    sl_buf_free(&chunks.t);
    return 0;
}
