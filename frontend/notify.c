/* notify.c - amavis-style notification templates expanded (notify.h).
 *
 * A template is first cleaned of its comments (lines starting with "#")
 * and joins ("#" before a line end), then expanded by a recursive descent
 * over brackets: [? ...] chooses, [...] repeats, everything else is copied
 * with its macros replaced. */
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/sl_buf.h"
#include "util/sl_util.h"

#define LIST_MAX 50 /* elements of a list macro written */

/* ---- macros ------------------------------------------------------------- */

/* A macro's value: a text (list NULL) or a list. */
struct macro {
    const char *text;
    const struct fe_notify_list *list;
};

static bool
macro_of(const struct fe_notify_vars *v, char c, struct macro *m)
{
    *m = (struct macro){0};
    switch (c) {
    case 'f':
        m->text = v->from;
        break;
    case 'd':
        m->text = v->date;
        break;
    case 'i':
    case 'n':
        m->text = v->mail_id;
        break;
    case 'h':
        m->text = v->host;
        break;
    case 's':
        m->text = v->sender;
        break;
    case 'a':
        m->text = v->client;
        break;
    case 'm':
        m->text = v->message_id;
        break;
    case 'j':
        m->text = v->subject;
        break;
    case 'c':
        m->text = v->category;
        break;
    case 'q':
        m->text = v->quarantine;
        break;
    case 'S':
        m->text = v->spam_score;
        break;
    case 'z':
        m->text = v->size;
        break;
    case 'T':
        m->list = &v->to;
        break;
    case 'V':
        m->list = &v->viruses;
        break;
    case 'F':
        m->list = &v->banned;
        break;
    case 'X':
        m->list = &v->bad_headers;
        break;
    case 'D':
        m->list = &v->delivered;
        break;
    case 'N':
        m->list = &v->blocked;
        break;
    case 'R':
        m->list = &v->rcpts;
        break;
    default:
        return false;
    }
    return true;
}

static size_t
macro_count(const struct macro *m)
{
    if (m->list != NULL)
        return m->list->n;
    return m->text != NULL && m->text[0] != '\0';
}

static void
macro_write(const struct macro *m, struct sl_buf *out)
{
    if (m->list == NULL) {
        if (m->text != NULL)
            sl_buf_append_str(out, m->text);
        return;
    }
    for (size_t i = 0; i < m->list->n && i < LIST_MAX; i++)
        sl_buf_printf(out, "%s%s", i ? ", " : "", m->list->v[i]);
}

/* ---- expansion ---------------------------------------------------------- */

struct expand {
    const struct fe_notify_vars *v;
    /* inside a repetition: the list macro bound to one element */
    char bound;
    const char *bound_value;
};

/* The end of the bracket group opened at p ('['), or NULL. */
static const char *
group_end(const char *p, const char *end)
{
    int depth = 0;

    for (; p < end; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        else if (*p == '[')
            depth++;
        else if (*p == ']' && --depth == 0)
            return p;
    }
    return NULL;
}

/* Splits p..end at the '|' of this level; at most max parts. */
static size_t
split_bars(const char *p, const char *end, const char **starts, const char **ends, size_t max)
{
    size_t n = 0;
    int depth = 0;

    starts[n] = p;
    for (; p < end; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        else if (*p == '[')
            depth++;
        else if (*p == ']')
            depth--;
        else if (*p == '|' && depth == 0 && n + 1 < max) {
            ends[n++] = p;
            starts[n] = p + 1;
        }
    }
    ends[n++] = end;
    return n;
}

static void expand_range(struct expand *x, const char *p, const char *end, struct sl_buf *out);

/* "%x" or "%#x" at p: its macro; *len_r the characters it takes. */
static bool
macro_at(struct expand *x, const char *p, const char *end, struct macro *m, bool *count_r,
         size_t *len_r)
{
    bool count = p + 2 < end && p[1] == '#';
    char c = count ? p[2] : (p + 1 < end ? p[1] : '\0');

    if (!macro_of(x->v, c, m))
        return false;
    if (m->list != NULL && x->bound == c) {
        m->list = NULL;
        m->text = x->bound_value;
    }
    *count_r = count;
    *len_r = count ? 3 : 2;
    return true;
}

/* [? %x |a|b|c] */
static void
expand_choice(struct expand *x, const char *p, const char *end, struct sl_buf *out)
{
    const char *starts[32], *ends[32];
    struct macro m;
    bool count;
    size_t len, n, pick;

    while (p < end && (*p == ' ' || *p == '?'))
        p++;
    if (p >= end || *p != '%' || !macro_at(x, p, end, &m, &count, &len))
        return; /* not a selector: nothing, as amavis writes nothing */
    p += len;
    while (p < end && *p == ' ')
        p++;
    if (p < end && *p == '|')
        p++;
    n = split_bars(p, end, starts, ends, 32);
    pick = macro_count(&m);
    if (pick >= n)
        pick = n - 1;
    expand_range(x, starts[pick], ends[pick], out);
}

/* The list macro a repetition's body names, or 0. */
static char
body_list(const struct expand *x, const char *p, const char *end)
{
    for (; p + 1 < end; p++) {
        struct macro m;
        if (*p == '\\') {
            p++;
            continue;
        }
        if (*p == '%' && p[1] != '#' && macro_of(x->v, p[1], &m) && m.list != NULL &&
            x->bound != p[1])
            return p[1];
    }
    return 0;
}

/* [body|sep] */
static void
expand_repeat(struct expand *x, const char *p, const char *end, struct sl_buf *out)
{
    const char *starts[2], *ends[2];
    size_t n = split_bars(p, end, starts, ends, 2);
    char c = body_list(x, starts[0], ends[0]);
    struct macro m;

    if (c == 0 || !macro_of(x->v, c, &m)) {
        expand_range(x, starts[0], ends[0], out);
        return;
    }
    struct expand inner = *x;
    inner.bound = c;
    for (size_t i = 0; i < m.list->n && i < LIST_MAX; i++) {
        if (i > 0 && n > 1)
            expand_range(x, starts[1], ends[1], out);
        inner.bound_value = m.list->v[i];
        expand_range(&inner, starts[0], ends[0], out);
    }
}

static void
expand_range(struct expand *x, const char *p, const char *end, struct sl_buf *out)
{
    while (p < end) {
        if (*p == '\\' && p + 1 < end) {
            char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1];
            sl_buf_append(out, &c, 1);
            p += 2;
        } else if (*p == '[') {
            const char *close = group_end(p, end);
            if (close == NULL) { /* unbalanced: the rest as it is */
                sl_buf_append(out, p, (size_t)(end - p));
                return;
            }
            const char *q = p + 1;
            while (q < close && *q == ' ')
                q++;
            if (q < close && *q == '?')
                expand_choice(x, q, close, out);
            else
                expand_repeat(x, p + 1, close, out);
            p = close + 1;
        } else if (*p == '%') {
            struct macro m;
            bool count;
            size_t len;
            if (macro_at(x, p, end, &m, &count, &len)) {
                if (count)
                    sl_buf_printf(out, "%zu", macro_count(&m));
                else
                    macro_write(&m, out);
                p += len;
            } else {
                sl_buf_append(out, p, 1);
                p++;
            }
        } else {
            sl_buf_append(out, p, 1);
            p++;
        }
    }
}

/* Comments and joins out; the template as amavis reads its files. */
static char *
clean(const char *tmpl)
{
    struct sl_buf b;
    const char *p = tmpl;

    sl_buf_init(&b);
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (p[0] != '#') {
            bool join = len > 0 && p[len - 1] == '#' && (len < 2 || p[len - 2] != '\\');
            sl_buf_append(&b, p, join ? len - 1 : len);
            if (!join && nl != NULL)
                sl_buf_append(&b, "\n", 1);
        }
        p += len + (nl != NULL);
    }
    if (b.data == NULL)
        sl_buf_append(&b, "", 0);
    return sl_buf_steal(&b, NULL);
}

char *
fe_notify_expand(const char *tmpl, const struct fe_notify_vars *v, size_t *len_r)
{
    struct expand x = {.v = v};
    char *text = clean(tmpl);
    struct sl_buf out;

    sl_buf_init(&out);
    expand_range(&x, text, text + strlen(text), &out);
    free(text);
    if (out.data == NULL)
        sl_buf_append(&out, "", 0);
    return sl_buf_steal(&out, len_r);
}

/* ---- templates ---------------------------------------------------------- */

/* notify_templates.c, generated from deploy/templates/ (CMakeLists.txt) */
extern const char fe_notify_admin_template[];
extern const char fe_notify_recip_template[];

const char *
fe_notify_builtin(enum fe_notify_kind kind)
{
    return kind == FE_NOTIFY_ADMIN ? fe_notify_admin_template : fe_notify_recip_template;
}

char *
fe_notify_load_template(const char *path, char **error_r)
{
    FILE *fp = fopen(path, "r");
    struct sl_buf b;
    char buf[4096];
    size_t n;

    if (fp == NULL) {
        *error_r = sl_asprintf("%s: %s", path, strerror(errno));
        return NULL;
    }
    sl_buf_init(&b);
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0 && b.len < 1024 * 1024)
        sl_buf_append(&b, buf, n);
    fclose(fp);
    if (b.data == NULL)
        sl_buf_append(&b, "", 0);
    return sl_buf_steal(&b, NULL);
}
