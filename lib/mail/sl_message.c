/* sl_message.c - header edits and dot-stuffing for reinjection
 * (RFC 5321 4.5.2, RFC 5322 2.2 and 2.2.3). See sl_message.h.
 *
 * Lines are split on CRLF, and also on a bare LF or a bare CR: the SMTP
 * parser already removes those (a bare LF becomes CRLF, a bare CR a
 * space), but this is the last place before bytes go to the next MTA, so
 * a stray one that got here another way still leaves as CRLF: a bare CR
 * or LF is never forwarded.
 *
 * The header section ends at the empty line, or else at the first line
 * that is neither a header field nor the continuation of one: that line
 * starts the body, as Postfix's cleanup reads such a message (its
 * is_header() and MIME state machine). Header fields are inserted above
 * it, and when a field was added the section is closed with the empty
 * line RFC 5322 2.1 asks for, as cleanup does; otherwise a field appended
 * "after the last header" landed after the body's first lines, where the
 * next MTA reads it as body text.
 *
 * Header edits come from a worker on another node, i.e. from outside: an
 * edit whose name is not a valid field name (RFC 5322 3.6.8: printable
 * ASCII except ':') is skipped, and control characters in a value are
 * turned into spaces, so an edit can never inject a line or a header.
 */
#include "mail/sl_message.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FOLD_COLUMNS 78     /* RFC 5322 2.1.1 "SHOULD be no more than 78" */

/* ---- line iterator ---- */

struct line_iter {
    const char *msg;
    size_t len, off;
    const char *next_lf;    /* cached: many bare CRs before one LF stay O(n) */
    bool lf_searched;
};

/* Sets *line_r and *len_r to the next line without its terminator; *term_r to
 * whether it had one. Returns false at the end of the message. */
static bool
line_next(struct line_iter *it, const char **line_r, size_t *len_r, bool *term_r)
{
    if (it->off >= it->len)
        return false;
    const char *s = it->msg + it->off;
    const char *end = it->msg + it->len;
    if (!it->lf_searched || (it->next_lf != NULL && it->next_lf < s)) {
        it->next_lf = memchr(s, '\n', (size_t)(end - s));
        it->lf_searched = true;
    }
    const char *lf = it->next_lf;
    const char *stop = lf != NULL ? lf : end;
    const char *cr = memchr(s, '\r', (size_t)(stop - s));

    *line_r = s;
    if (cr != NULL) {
        *len_r = (size_t)(cr - s);
        *term_r = true;
        /* CRLF, or a bare CR (also one at the very end of the message) */
        it->off = (size_t)(cr - it->msg) + (cr + 1 == lf ? 2 : 1);
    } else if (lf != NULL) {
        *len_r = (size_t)(lf - s);
        *term_r = true;
        it->off = (size_t)(lf - it->msg) + 1;
    } else {
        *len_r = (size_t)(end - s);
        *term_r = false;
        it->off = it->len;
    }
    return true;
}

/* ---- header section ---- */

struct hdr {
    size_t start, end;      /* byte range in msg: the field and its continuation lines */
    const char *name;       /* the field name, in msg (namelen octets) */
    size_t namelen;
};

struct hdr_section {
    struct hdr *h;
    size_t n, cap;
    size_t body_off;        /* where the empty line, the first other line, or the end is */
    bool no_empty_line;     /* a body follows that does not start with the empty line */
};

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* A header field's first line, as Postfix's is_header() takes it (RFC 5322
 * 2.2 and 3.6.8; RFC 822's "Name :" allowed): printable ASCII other than
 * ':' up to optional blanks and a ':'. Sets *namelen_r. */
static bool
line_is_field(const char *line, size_t n, size_t *namelen_r)
{
    size_t i = 0;

    while (i < n && (unsigned char)line[i] > 32 && (unsigned char)line[i] < 127 && line[i] != ':')
        i++;
    *namelen_r = i;
    while (i < n && is_wsp(line[i]))
        i++;
    return *namelen_r > 0 && i < n && line[i] == ':';
}

static void
header_section_parse(const char *msg, size_t len, struct hdr_section *hs)
{
    struct line_iter it = { .msg = msg, .len = len };
    const char *line;
    size_t n;
    bool term;

    memset(hs, 0, sizeof(*hs));
    hs->body_off = len;
    for (;;) {
        size_t line_off = it.off, namelen;
        if (!line_next(&it, &line, &n, &term))
            break;
        if (n == 0) {
            hs->body_off = line_off;    /* RFC 5322 2.1: the empty line */
            break;
        }
        if (is_wsp(line[0]) && hs->n > 0) {
            hs->h[hs->n - 1].end = it.off;      /* RFC 5322 2.2.3 folding */
            continue;
        }
        if (!line_is_field(line, n, &namelen)) {
            /* body text without the empty line before it */
            hs->body_off = line_off;
            hs->no_empty_line = true;
            break;
        }
        if (hs->n == hs->cap) {
            hs->cap = hs->cap ? hs->cap * 2 : 32;
            hs->h = sl_realloc(hs->h, hs->cap * sizeof(*hs->h));
        }
        struct hdr *h = &hs->h[hs->n++];
        h->start = line_off;
        h->end = it.off;
        h->name = line;
        h->namelen = namelen;
    }
}

size_t
sl_message_header_end(const char *msg, size_t len)
{
    struct hdr_section hs;

    header_section_parse(msg, len, &hs);
    free(hs.h);
    return hs.body_off;
}

static bool
hdr_name_is(const struct hdr *h, const char *name)
{
    return strlen(name) == h->namelen &&
           strncasecmp(h->name, name, h->namelen) == 0;
}

char *
sl_message_header(const char *msg, size_t len, const char *name)
{
    struct hdr_section hs;
    char *result = NULL;

    header_section_parse(msg, len, &hs);
    for (size_t i = 0; i < hs.n && result == NULL; i++) {
        const struct hdr *h = &hs.h[i];
        if (!hdr_name_is(h, name))
            continue;
        /* Unfold (RFC 5322 2.2.3): drop the line breaks, keep the WSP. */
        struct sl_buf v;
        struct line_iter it = { .msg = msg, .len = h->end, .off = h->start };
        const char *line;
        size_t n;
        bool term, first = true;
        sl_buf_init(&v);
        while (line_next(&it, &line, &n, &term)) {
            if (first) {
                const char *colon = memchr(line, ':', n);
                n -= (size_t)(colon + 1 - line);
                line = colon + 1;
                first = false;
            }
            sl_buf_append(&v, line, n);
        }
        sl_buf_append(&v, "", 0);
        size_t a = 0, b = v.len;
        while (a < b && is_wsp(v.data[a]))
            a++;
        while (b > a && is_wsp(v.data[b - 1]))
            b--;
        result = sl_strndup(v.data + a, b - a);
        sl_buf_free(&v);
    }
    free(hs.h);
    return result;
}

/* ---- output ---- */

/* One output line: dot-stuffed (RFC 5321 4.5.2) and CRLF-terminated.
 * Returns the number of stuffing dots added (0 or 1). */
static size_t
emit_line(struct sl_buf *out, const char *s, size_t n)
{
    size_t dot = n > 0 && s[0] == '.';

    if (dot)
        sl_buf_append(out, ".", 1);
    sl_buf_append(out, s, n);
    sl_buf_append(out, "\r\n", 2);
    return dot;
}

/* Copies msg[start, end) line by line. Lines that need no change (CRLF,
 * no leading dot: nearly all of them) are copied in runs, one append per
 * run rather than per line. Returns the stuffing dots added. */
static size_t
emit_range(struct sl_buf *out, const char *msg, size_t start, size_t end)
{
    struct line_iter it = { .msg = msg, .len = end, .off = start };
    size_t run = start, dots = 0;
    const char *line;
    size_t n;
    bool term;

    while (line_next(&it, &line, &n, &term)) {
        size_t line_off = (size_t)(line - msg);
        bool crlf = term && it.off - line_off == n + 2;
        if (crlf && (n == 0 || line[0] != '.'))
            continue;
        sl_buf_append(out, msg + run, line_off - run);
        dots += emit_line(out, line, n);
        run = it.off;
    }
    sl_buf_append(out, msg + run, end - run);
    return dots;
}

static bool
edit_name_ok(const char *name)
{
    if (name == NULL || *name == '\0')
        return false;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if (*s <= 32 || *s >= 127 || *s == ':')
            return false;
    }
    return true;
}

/* The value with control characters made harmless: CR/LF runs (someone
 * passed a folded value) collapse into at most one space, others become
 * spaces; leading and trailing whitespace go. */
static char *
edit_value_clean(const char *value)
{
    const unsigned char *s = (const unsigned char *)(value ? value : "");
    /* one pass into one buffer: the result is never longer than the value
     * (a line break gives at most one space) */
    char *r = sl_malloc(strlen((const char *)s) + 1), *o = r, *a;
    bool pending_space = false;

    for (; *s; s++) {
        char c = (char)*s;
        if (c == '\r' || c == '\n') {
            pending_space = true;
            continue;
        }
        if (c != '\t' && (*s < 32 || *s == 127))
            c = ' ';
        if (pending_space && !is_wsp(c) && o > r && !is_wsp(o[-1]))
            *o++ = ' ';
        pending_space = false;
        *o++ = c;
    }
    for (a = r; a < o && is_wsp(*a); a++)
        ;
    while (o > a && is_wsp(o[-1]))
        o--;
    memmove(r, a, (size_t)(o - a));
    r[o - a] = '\0';
    return r;
}

/* "Name: value", folded before whitespace so lines stay within 78
 * columns where the value's spaces allow (RFC 5322 2.2.3); the whitespace
 * at a fold point becomes CRLF TAB. A word longer than a line stays whole.
 * Returns the stuffing dots added. */
static size_t
emit_header(struct sl_buf *out, const char *name, const char *value)
{
    size_t dots = 0;
    struct sl_buf line;
    sl_buf_init(&line);
    sl_buf_append_str(&line, name);
    sl_buf_append(&line, ":", 1);
    size_t col = line.len;
    bool first = true;
    const char *s = value;

    while (*s != '\0') {
        const char *ws = s;
        while (is_wsp(*s))
            s++;
        size_t wslen = (size_t)(s - ws);
        const char *word = s;
        while (*s != '\0' && !is_wsp(*s))
            s++;
        size_t wordlen = (size_t)(s - word);
        if (first) {
            /* never fold right after the colon: value cleaned, no lead WSP */
            sl_buf_append(&line, " ", 1);
            sl_buf_append(&line, word, wordlen);
            col += 1 + wordlen;
            first = false;
        } else if (col + wslen + wordlen <= FOLD_COLUMNS) {
            sl_buf_append(&line, ws, wslen + wordlen);
            col += wslen + wordlen;
        } else {
            dots += emit_line(out, line.data, line.len);
            sl_buf_reset(&line);
            sl_buf_append(&line, "\t", 1);
            sl_buf_append(&line, word, wordlen);
            col = 1 + wordlen;
        }
    }
    dots += emit_line(out, line.data ? line.data : "", line.len);
    sl_buf_free(&line);
    return dots;
}

/* The header list after edits: an original field or a new one. */
struct out_hdr {
    const struct hdr *orig;     /* NULL for an added field */
    const char *name;           /* added: points into the edit */
    char *value;                /* added: cleaned copy, owned */
    bool prepended;
    bool deleted;
};

struct out_list {
    struct out_hdr *v;
    size_t n, cap;
};

static struct out_hdr *
out_insert(struct out_list *l, size_t at)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = sl_realloc(l->v, l->cap * sizeof(*l->v));
    }
    memmove(&l->v[at + 1], &l->v[at], (l->n - at) * sizeof(*l->v));
    l->n++;
    memset(&l->v[at], 0, sizeof(l->v[at]));
    return &l->v[at];
}

static bool
out_name_is(const struct out_hdr *o, const char *name)
{
    if (o->deleted)
        return false;
    if (o->orig != NULL)
        return hdr_name_is(o->orig, name);
    return strcasecmp(o->name, name) == 0;
}

static void
apply_edit(struct out_list *l, const struct sl_header_edit *e)
{
    struct out_hdr *o;
    size_t at;

    switch (e->op) {
    case SL_HDR_PREPEND:
        /* after earlier prepends, so they end up in the order given */
        for (at = 0; at < l->n && l->v[at].prepended; at++)
            ;
        o = out_insert(l, at);
        o->prepended = true;
        break;
    case SL_HDR_APPEND:
        o = out_insert(l, l->n);
        break;
    case SL_HDR_REPLACE:
        o = NULL;
        for (size_t i = 0; i < l->n; i++) {
            if (!out_name_is(&l->v[i], e->name))
                continue;
            if (o == NULL) {
                o = &l->v[i];
                free(o->value);
                o->orig = NULL;     /* keeps its place and prepended flag */
            } else {
                l->v[i].deleted = true;
            }
        }
        if (o == NULL)
            o = out_insert(l, l->n);
        break;
    case SL_HDR_DELETE:
        for (size_t i = 0; i < l->n; i++) {
            if (out_name_is(&l->v[i], e->name))
                l->v[i].deleted = true;
        }
        return;
    default:
        return;     /* unknown op from a peer: ignore it, keep the mail */
    }
    o->name = e->name;
    o->value = edit_value_clean(e->value);
}

size_t
sl_message_write_head(const char *msg, size_t len, const struct sl_header_edit *edits,
                      size_t n_edits, struct sl_buf *out, size_t *body_off_r)
{
    struct hdr_section hs;
    struct out_list l = { NULL, 0, 0 };
    size_t dots = 0;

    header_section_parse(msg, len, &hs);

    for (size_t i = 0; i < hs.n; i++)
        out_insert(&l, l.n)->orig = &hs.h[i];
    for (size_t i = 0; i < n_edits; i++) {
        if (edit_name_ok(edits[i].name))
            apply_edit(&l, &edits[i]);
    }

    bool added = false;
    for (size_t i = 0; i < l.n; i++) {
        const struct out_hdr *o = &l.v[i];
        if (o->deleted) {
            ;
        } else if (o->orig != NULL) {
            dots += emit_range(out, msg, o->orig->start, o->orig->end);
        } else {
            dots += emit_header(out, o->name, o->value);
            added = true;
        }
        free(o->value);
    }
    if (added && hs.no_empty_line)
        sl_buf_append(out, "\r\n", 2);   /* the section closed, as cleanup does */

    *body_off_r = hs.body_off;
    free(l.v);
    free(hs.h);
    return dots;
}

size_t
sl_message_write_stuffed(const char *msg, size_t len, const struct sl_header_edit *edits,
                         size_t n_edits, struct sl_buf *out)
{
    size_t body_off, dots;

    sl_buf_reserve(out, len + len / 64 + 256);
    dots = sl_message_write_head(msg, len, edits, n_edits, out, &body_off);
    return dots + emit_range(out, msg, body_off, len);
}

/* ---- the body in chunks ---- */

void
sl_stuffer_init(struct sl_stuffer *st)
{
    memset(st, 0, sizeof(*st));
    st->bol = true;     /* the body starts a line */
}

static void
put(struct sl_stuffer *st, struct sl_buf *out, const char *s, size_t n)
{
    if (out != NULL)
        sl_buf_append(out, s, n);
    st->out_len += n;
}

/* The same lines as line_next() cuts (CRLF, bare LF, bare CR), but a line
 * may span calls: whether a line is open and whether the last byte was a
 * CR (whose LF may come in the next chunk) carry over. Bytes that need no
 * change (CRLF lines without a leading dot: nearly all) are copied in
 * runs, one append per run, as emit_range() does. */
void
sl_stuffer_feed(struct sl_stuffer *st, const char *p, size_t n, struct sl_buf *out)
{
    const char *end = p + n, *run = p, *lf = NULL;
    bool searched = false;

    while (p < end) {
        if (st->cr) {
            st->cr = false;
            put(st, out, "\r\n", 2);
            st->bol = true;
            if (*p == '\n')
                p++;
            run = p;
            continue;
        }
        if (st->bol && *p == '.') {
            put(st, out, run, (size_t)(p - run));
            put(st, out, ".", 1);
            st->dots++;
            run = p;
        }
        if (!searched || (lf != NULL && lf < p)) {
            lf = memchr(p, '\n', (size_t)(end - p));     /* cached: bare CRs stay O(n) */
            searched = true;
        }
        const char *stop = lf != NULL ? lf : end;
        const char *cr = memchr(p, '\r', (size_t)(stop - p));
        if (cr == NULL && lf == NULL) {     /* the line goes on in the next chunk */
            st->bol = false;
            p = end;
        } else if (cr != NULL && cr + 1 == lf) {    /* CRLF: as it is */
            st->bol = true;
            p = lf + 1;
        } else if (cr != NULL && cr + 1 == end) {   /* its LF may come next */
            put(st, out, run, (size_t)(cr - run));
            st->cr = true;
            p = run = end;
        } else {                                    /* a bare CR or LF */
            const char *t = cr != NULL ? cr : lf;
            put(st, out, run, (size_t)(t - run));
            put(st, out, "\r\n", 2);
            st->bol = true;
            p = run = t + 1;
        }
    }
    put(st, out, run, (size_t)(end - run));
}

void
sl_stuffer_finish(struct sl_stuffer *st, struct sl_buf *out)
{
    if (st->cr || !st->bol)
        put(st, out, "\r\n", 2);  /* a last line without CRLF gets one */
    st->cr = false;
    st->bol = true;
}
