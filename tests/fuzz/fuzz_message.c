/* fuzz_message.c - libFuzzer target for lib/mail/sl_message: the header
 * edits of a worker's verdict applied to a message, dot-stuffed for the
 * reinjection MTA. The last code before bytes leave sluice.
 *
 * INPUT
 *   byte 0: number of edits (low 3 bits, 0..7); then per edit one byte op
 *   (low 2 bits: PREPEND, APPEND, REPLACE, DELETE), a NUL-terminated name
 *   and a NUL-terminated value (as a hostile worker could send them: names
 *   and values are not pre-validated); the rest is the message as received.
 *
 * INVARIANTS
 *   1. The output has no bare CR or LF, ends in CRLF (or is empty), and no
 *      line of it starts with a dot unless it is a stuffed one ("..."), so
 *      it never holds <CRLF>.<CRLF> nor starts with ".<CRLF>" (RFC 5321
 *      4.5.2): the message can never end early at the next hop.
 *   2. Without edits, un-stuffing the output gives the input with every
 *      line end (CRLF, bare CR, bare LF) made CRLF and a last line without
 *      one terminated.
 *   3. With edits, the body is unchanged: it starts at the first empty
 *      line, or at the first line that is neither a header field (printable
 *      ASCII but ':' up to optional blanks and ':', as Postfix's
 *      is_header()) nor a blank-led line after one; when a field of the
 *      edits is left (the last edit naming it is no DELETE) and that first
 *      body line is not empty, the output puts the empty line before it. For each valid header name
 * (RFC 5322 3.6.8) the last edit that names it decides: after DELETE no header of that name is
 * left; after REPLACE exactly one, whose unfolded value is the edit's value with control characters
 * made spaces (whitespace runs compared as one space); after PREPEND or APPEND at least one has
 * that value. sl_message_header() of the output is such a header's value.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "mail/sl_message.h"
#include "util/sl_buf.h"

#define MAX_EDITS 7

/* Each line end of s made CRLF, a last line without one terminated. */
static void
normalise(const char *s, size_t n, struct sl_buf *out)
{
    size_t i = 0;

    sl_buf_append(out, "", 0);
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\r' && s[e] != '\n')
            e++;
        sl_buf_append(out, s + i, e - i);
        sl_buf_append(out, "\r\n", 2);
        if (e < n && s[e] == '\r' && e + 1 < n && s[e + 1] == '\n')
            e++;
        i = e + 1;
    }
}

/* Checks invariant 1 and removes the stuffing dots. */
static void
unstuff(const char *s, size_t n, struct sl_buf *out)
{
    FUZZ_CHECK(fuzz_bare_crlf_at(s, n) == n, "bare CR/LF at %zu of the output",
               fuzz_bare_crlf_at(s, n));
    FUZZ_CHECK(n == 0 || (n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n'),
               "output does not end in CRLF");
    sl_buf_append(out, "", 0);
    for (size_t i = 0; i < n;) {
        const char *crlf = memmem(s + i, n - i, "\r\n", 2);
        size_t e = (size_t)(crlf - s);
        if (s[i] == '.') {
            FUZZ_CHECK(e - i >= 2 && s[i + 1] == '.', "unstuffed dot at offset %zu", i);
            i++;
        }
        sl_buf_append(out, s + i, e + 2 - i);
        i = e + 2;
    }
}

/* Offset of the line that ends the header section of a normalised
 * message (CRLF lines): the empty line, the first line that is neither a
 * field nor a blank-led line after one, or n. */
static size_t
body_offset(const char *s, size_t n)
{
    bool in_field = false;

    for (size_t i = 0; i < n;) {
        size_t e = (size_t)((const char *)memmem(s + i, n - i, "\r\n", 2) - s);
        size_t k = i;
        if (e > i && (s[i] == ' ' || s[i] == '\t')) {
            if (!in_field)
                return i;
        } else {
            while (k < e && (unsigned char)s[k] > 32 && (unsigned char)s[k] < 127 && s[k] != ':')
                k++;
            size_t name_end = k;
            while (k < e && (s[k] == ' ' || s[k] == '\t'))
                k++;
            if (name_end == i || k == e || s[k] != ':')
                return i;
            in_field = true;
        }
        i = e + 2;
    }
    return n;
}

struct field {
    const char *name; /* into the message */
    size_t namelen;
    char *value; /* unfolded, whitespace runs made one space, trimmed */
};

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* s with control characters as sl_message promises (CR/LF runs and other
 * controls become space), whitespace runs made one space, trimmed. */
static char *
squeeze(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    size_t k = 0;
    bool space = false;

    FUZZ_CHECK(r != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c < 0x20 || c == 0x7f) {
            space = k > 0;
            continue;
        }
        if (space)
            r[k++] = ' ';
        space = false;
        r[k++] = (char)c;
    }
    r[k] = '\0';
    return r;
}

/* The header fields of a normalised message, by an independent reading of
 * RFC 5322 2.2: a field starts with a non-WSP line holding ':' after a
 * non-empty name; WSP-led lines continue the field before them. */
static size_t
fields_parse(const char *s, size_t body, struct field *f, size_t max)
{
    size_t n = 0;
    struct sl_buf v;
    bool open = false;

    sl_buf_init(&v);
    sl_buf_append(&v, "", 0);
    for (size_t i = 0; i < body;) {
        size_t e = (size_t)((const char *)memmem(s + i, body - i, "\r\n", 2) - s);
        if (is_wsp(s[i]) && open) {
            sl_buf_append(&v, s + i, e - i);
        } else {
            if (open && n < max)
                f[n++].value = squeeze(v.data, v.len);
            open = false;
            sl_buf_reset(&v);
            const char *colon = memchr(s + i, ':', e - i);
            if (colon != NULL && colon > s + i && !is_wsp(s[i]) && n < max) {
                size_t nl = (size_t)(colon - (s + i));
                while (nl > 0 && is_wsp(s[i + nl - 1]))
                    nl--;
                f[n].name = s + i;
                f[n].namelen = nl;
                sl_buf_append(&v, colon + 1, e - (size_t)(colon + 1 - s));
                open = true;
            }
        }
        i = e + 2;
    }
    if (open && n < max)
        f[n++].value = squeeze(v.data, v.len);
    sl_buf_free(&v);
    return n;
}

static bool
name_ok(const char *name)
{
    if (name[0] == '\0')
        return false;
    for (const unsigned char *s = (const unsigned char *)name; *s != '\0'; s++)
        if (*s <= 32 || *s >= 127 || *s == ':')
            return false;
    return true;
}

static bool
field_is(const struct field *f, const char *name)
{
    return strlen(name) == f->namelen && strncasecmp(f->name, name, f->namelen) == 0;
}

static void
check_edits(const char *in, size_t in_len, const struct sl_header_edit *edits, size_t n_edits,
            const char *out, size_t out_len)
{
    struct sl_buf a;
    sl_buf_init(&a);
    normalise(in, in_len, &a);
    size_t ba = body_offset(a.data, a.len), bo = body_offset(out, out_len);
    /* a field of ours is left when the last edit naming it does not delete */
    bool added = false;
    for (size_t i = 0; i < n_edits && !added; i++) {
        bool later = false;
        for (size_t j = i + 1; j < n_edits && !later; j++)
            later = name_ok(edits[j].name) && strcasecmp(edits[j].name, edits[i].name) == 0;
        added = name_ok(edits[i].name) && !later && edits[i].op != SL_HDR_DELETE;
    }
    if (added && ba < a.len && !(a.data[ba] == '\r' && a.data[ba + 1] == '\n')) {
        /* the empty line sluice puts before body text that lacked it */
        FUZZ_CHECK(out_len - bo >= 2 && out[bo] == '\r' && out[bo + 1] == '\n',
                   "no empty line before the body at %zu", bo);
        bo += 2;
    }
    FUZZ_CHECK(a.len - ba == out_len - bo && memcmp(a.data + ba, out + bo, a.len - ba) == 0,
               "body changed (%zu -> %zu bytes)", a.len - ba, out_len - bo);

    size_t max = 4 * (out_len + 1);
    struct field *f = calloc(max, sizeof(*f));
    FUZZ_CHECK(f != NULL, "out of memory");
    size_t nf = fields_parse(out, bo, f, max);

    for (size_t i = 0; i < n_edits; i++) {
        const struct sl_header_edit *e = &edits[i];
        if (!name_ok(e->name))
            continue;
        bool later = false;
        for (size_t j = i + 1; j < n_edits && !later; j++)
            later = name_ok(edits[j].name) && strcasecmp(edits[j].name, e->name) == 0;
        if (later)
            continue; /* not the last word on this name */

        char *want = squeeze(e->value, strlen(e->value));
        size_t count = 0, matching = 0;
        for (size_t k = 0; k < nf; k++) {
            if (!field_is(&f[k], e->name))
                continue;
            count++;
            matching += strcmp(f[k].value, want) == 0;
        }
        char *got = sl_message_header(out, out_len, e->name);
        switch (e->op) {
        case SL_HDR_DELETE:
            FUZZ_CHECK(count == 0, "%zu \"%s\" headers left after DELETE", count, e->name);
            FUZZ_CHECK(got == NULL, "sl_message_header finds deleted \"%s\"", e->name);
            break;
        case SL_HDR_REPLACE:
            FUZZ_CHECK(count == 1, "%zu \"%s\" headers after REPLACE", count, e->name);
            FUZZ_CHECK(matching == 1, "REPLACE \"%s\": value differs", e->name);
            break;
        default:
            FUZZ_CHECK(count >= 1, "no \"%s\" header after PREPEND/APPEND", e->name);
            FUZZ_CHECK(matching >= 1, "\"%s\": no header with the added value", e->name);
            break;
        }
        /* sl_message_header returns a C string: a NUL in the header
         * section ends it early, so compare only without one. */
        if (got != NULL && memchr(out, '\0', bo) == NULL) {
            char *g = squeeze(got, strlen(got));
            bool found = false;
            for (size_t k = 0; k < nf && !found; k++)
                found = field_is(&f[k], e->name) && strcmp(f[k].value, g) == 0;
            FUZZ_CHECK(found, "sl_message_header(\"%s\") = \"%s\" is no such header", e->name, got);
            free(g);
        }
        free(got);
        free(want);
    }
    for (size_t k = 0; k < nf; k++)
        free(f[k].value);
    free(f);
    sl_buf_free(&a);
}

/* A NUL-terminated string at *pos, or NULL if the input ends first. */
static const char *
take_string(const uint8_t *data, size_t size, size_t *pos)
{
    const uint8_t *s = data + *pos;
    const uint8_t *nul = memchr(s, '\0', size - *pos);
    if (nul == NULL)
        return NULL;
    *pos = (size_t)(nul - data) + 1;
    return (const char *)s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_header_edit edits[MAX_EDITS];
    size_t n_edits = 0, pos = 1;

    if (size < 1)
        return 0;
    for (unsigned want = data[0] & 7; n_edits < want; n_edits++) {
        if (pos >= size)
            return 0;
        edits[n_edits].op = (enum sl_header_op)(data[pos++] & 3);
        if ((edits[n_edits].name = take_string(data, size, &pos)) == NULL ||
            (edits[n_edits].value = take_string(data, size, &pos)) == NULL)
            return 0;
    }
    const char *msg = (const char *)data + pos;
    size_t len = size - pos;

    struct sl_buf out, un;
    sl_buf_init(&out);
    sl_buf_init(&un);
    size_t dots = sl_message_write_stuffed(msg, len, edits, n_edits, &out);
    unstuff(out.data ? out.data : "", out.len, &un);

    /* the streamed form (header section, then the body in chunks) gives
     * the same bytes; chunk sizes taken from the input's first byte */
    struct sl_buf st_out;
    struct sl_stuffer st;
    size_t body_off, step = 1 + (data[0] >> 3), st_dots;
    sl_buf_init(&st_out);
    st_dots = sl_message_write_head(msg, len, edits, n_edits, &st_out, &body_off);
    sl_stuffer_init(&st);
    for (size_t at = body_off; at < len; at += step)
        sl_stuffer_feed(&st, msg + at, len - at < step ? len - at : step, &st_out);
    sl_stuffer_finish(&st, &st_out);
    FUZZ_CHECK(st_dots + st.dots == dots && st_out.len == out.len &&
                   (out.len == 0 || memcmp(st_out.data, out.data, out.len) == 0),
               "the streamed stuffing differs from the whole-buffer one");
    sl_buf_free(&st_out);

    if (n_edits == 0) {
        struct sl_buf want;
        sl_buf_init(&want);
        normalise(msg, len, &want);
        if (want.len != un.len || memcmp(want.data, un.data, un.len) != 0) {
            fuzz_dump("expected", want.data, want.len);
            fuzz_dump("got (un-stuffed)", un.data, un.len);
            FUZZ_CHECK(false, "without edits the message changed");
        }
        sl_buf_free(&want);
    } else {
        check_edits(msg, len, edits, n_edits, un.data, un.len);
    }

    /* sl_message_header on the raw input must not read outside it */
    char *h = sl_message_header(msg, len, "Subject");
    free(h);

    sl_buf_free(&out);
    sl_buf_free(&un);
    return 0;
}
