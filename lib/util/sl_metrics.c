/* sl_metrics.c - the metrics registry and its text format (sl_metrics.h).
 *
 * Storage: every child is a run of _Atomic uint64_t slots. A counter has
 * one (the count); a gauge one (a double's bits); a histogram one per
 * bucket, +Inf last, then the sum (a double's bits). Doubles are added
 * with a compare-and-swap loop on their bits, the usual lock-free way. */
#include "util/sl_metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_type { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

struct metric_dim {
    char *name;
    char **values;
    size_t n_values;
};

struct sl_metric {
    struct sl_metric *next;
    char *name, *help;
    enum metric_type type;
    unsigned flags;
    struct metric_dim dims[SL_METRIC_MAX_DIMS];
    size_t n_dims;
    size_t n_children;
    double *bounds; /* histograms */
    size_t n_bounds;
    char **le;    /* the bounds as label values, "+Inf" last */
    size_t slots; /* per child */
    _Atomic uint64_t *v;
};

struct hook {
    void (*fn)(void *ctx);
    void *ctx;
};

struct sl_metrics {
    struct sl_metric *head, *tail;
    struct hook *hooks;
    size_t n_hooks;
};

/* ---- names -------------------------------------------------------------- */

static bool
name_valid(const char *s, bool colon)
{
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || (colon && *p == ':');
        if (!ok)
            return false;
    }
    return true;
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- registry ------------------------------------------------------------ */

struct sl_metrics *
sl_metrics_new(void)
{
    return sl_calloc(1, sizeof(struct sl_metrics));
}

void
sl_metrics_destroy(struct sl_metrics **regp)
{
    struct sl_metrics *reg = *regp;

    if (reg == NULL)
        return;
    *regp = NULL;
    while (reg->head != NULL) {
        struct sl_metric *m = reg->head;
        reg->head = m->next;
        for (size_t d = 0; d < m->n_dims; d++) {
            free(m->dims[d].name);
            sl_strv_free(m->dims[d].values, m->dims[d].n_values);
        }
        if (m->le != NULL)
            sl_strv_free(m->le, m->n_bounds + 1);
        free(m->bounds);
        free((void *)m->v);
        free(m->name);
        free(m->help);
        free(m);
    }
    free(reg->hooks);
    free(reg);
}

static struct sl_metric *
family_new(struct sl_metrics *reg, enum metric_type type, const char *name, const char *help,
           const struct sl_metric_dim *dims, size_t n_dims, unsigned flags)
{
    struct sl_metric *m = sl_calloc(1, sizeof(*m));

    SL_BUG_ON(!name_valid(name, true) || help == NULL || n_dims > SL_METRIC_MAX_DIMS);
    SL_BUG_ON(type == MT_COUNTER && !ends_with(name, "_total"));
    for (struct sl_metric *o = reg->head; o != NULL; o = o->next)
        SL_BUG_ON(strcmp(o->name, name) == 0);
    m->name = sl_strdup(name);
    m->help = sl_strdup(help);
    m->type = type;
    m->flags = flags;
    m->n_dims = n_dims;
    m->n_children = 1;
    for (size_t d = 0; d < n_dims; d++) {
        SL_BUG_ON(!name_valid(dims[d].name, false) || strcmp(dims[d].name, "le") == 0 ||
                  strncmp(dims[d].name, "__", 2) == 0 || dims[d].n_values == 0);
        m->dims[d].name = sl_strdup(dims[d].name);
        m->dims[d].n_values = dims[d].n_values;
        m->dims[d].values = sl_calloc(dims[d].n_values, sizeof(char *));
        for (size_t i = 0; i < dims[d].n_values; i++) {
            SL_BUG_ON(dims[d].values[i] == NULL);
            m->dims[d].values[i] = sl_strdup(dims[d].values[i]);
        }
        m->n_children *= dims[d].n_values;
    }
    if (reg->tail != NULL)
        reg->tail->next = m;
    else
        reg->head = m;
    reg->tail = m;
    return m;
}

static void
family_alloc(struct sl_metric *m, size_t slots)
{
    m->slots = slots;
    m->v = sl_calloc(m->n_children * slots, sizeof(*m->v));
    for (size_t i = 0; i < m->n_children * slots; i++)
        atomic_init(&m->v[i], 0);
}

struct sl_metric *
sl_metrics_counter(struct sl_metrics *reg, const char *name, const char *help,
                   const struct sl_metric_dim *dims, size_t n_dims, unsigned flags)
{
    struct sl_metric *m = family_new(reg, MT_COUNTER, name, help, dims, n_dims, flags);
    family_alloc(m, 1);
    return m;
}

struct sl_metric *
sl_metrics_gauge(struct sl_metrics *reg, const char *name, const char *help,
                 const struct sl_metric_dim *dims, size_t n_dims)
{
    struct sl_metric *m = family_new(reg, MT_GAUGE, name, help, dims, n_dims, 0);
    family_alloc(m, 1);
    return m;
}

struct sl_metric *
sl_metrics_histogram(struct sl_metrics *reg, const char *name, const char *help,
                     const struct sl_metric_dim *dims, size_t n_dims, const double *bounds,
                     size_t n_bounds, unsigned flags)
{
    struct sl_metric *m = family_new(reg, MT_HISTOGRAM, name, help, dims, n_dims, flags);
    struct sl_buf b;

    SL_BUG_ON(n_bounds == 0 || n_bounds > SL_METRIC_MAX_BUCKETS || ends_with(name, "_total"));
    m->bounds = sl_calloc(n_bounds, sizeof(double));
    m->le = sl_calloc(n_bounds + 1, sizeof(char *));
    m->n_bounds = n_bounds;
    sl_buf_init(&b);
    for (size_t i = 0; i < n_bounds; i++) {
        SL_BUG_ON(!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]));
        m->bounds[i] = bounds[i];
        sl_buf_reset(&b);
        sl_metrics_format_value(&b, bounds[i]);
        m->le[i] = sl_strdup(b.data);
    }
    sl_buf_free(&b);
    m->le[n_bounds] = sl_strdup("+Inf");
    family_alloc(m, n_bounds + 2); /* buckets, +Inf, sum */
    return m;
}

void
sl_metrics_add(struct sl_metrics *reg, const struct sl_metric_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct sl_metric_def *d = &defs[i];
        switch (d->kind) {
        case SL_METRIC_COUNTER:
            *d->handle = sl_metrics_counter(reg, d->name, d->help, d->dims, d->n_dims, d->flags);
            break;
        case SL_METRIC_GAUGE:
            *d->handle = sl_metrics_gauge(reg, d->name, d->help, d->dims, d->n_dims);
            break;
        case SL_METRIC_HISTOGRAM:
            *d->handle = sl_metrics_histogram(reg, d->name, d->help, d->dims, d->n_dims, d->bounds,
                                              d->n_bounds, d->flags);
            break;
        }
    }
}

void
sl_metrics_on_scrape(struct sl_metrics *reg, void (*fn)(void *ctx), void *ctx)
{
    reg->hooks = sl_realloc(reg->hooks, (reg->n_hooks + 1) * sizeof(*reg->hooks));
    reg->hooks[reg->n_hooks++] = (struct hook){fn, ctx};
}

/* ---- updates ------------------------------------------------------------- */

size_t
sl_metric_index(const struct sl_metric *m, size_t i0, size_t i1, size_t i2)
{
    const size_t idx[SL_METRIC_MAX_DIMS] = {i0, i1, i2};
    size_t child = 0, stride = 1;

    if (m == NULL)
        return 0;
    for (size_t d = 0; d < SL_METRIC_MAX_DIMS; d++) {
        if (d >= m->n_dims) {
            SL_BUG_ON(idx[d] != 0);
            continue;
        }
        SL_BUG_ON(idx[d] >= m->dims[d].n_values);
        child += idx[d] * stride;
        stride *= m->dims[d].n_values;
    }
    return child;
}

size_t
sl_metric_value_index(const struct sl_metric *m, size_t dim, const char *value)
{
    if (m == NULL)
        return 0;
    SL_BUG_ON(dim >= m->n_dims);
    for (size_t i = 0; value != NULL && i < m->dims[dim].n_values; i++)
        if (strcmp(m->dims[dim].values[i], value) == 0)
            return i;
    return m->dims[dim].n_values - 1;
}

static _Atomic uint64_t *
slot(const struct sl_metric *m, size_t child)
{
    SL_BUG_ON(child >= m->n_children);
    return &m->v[child * m->slots];
}

static double
bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static uint64_t
double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static void
atomic_add_double(_Atomic uint64_t *p, double delta)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void
sl_metric_add(struct sl_metric *m, size_t child, uint64_t n)
{
    if (m == NULL)
        return;
    SL_BUG_ON(m->type != MT_COUNTER);
    atomic_fetch_add_explicit(slot(m, child), n, memory_order_relaxed);
}

void
sl_metric_set(struct sl_metric *m, size_t child, double v)
{
    if (m == NULL)
        return;
    SL_BUG_ON(m->type == MT_HISTOGRAM);
    if (m->type == MT_COUNTER)
        atomic_store_explicit(slot(m, child), v > 0 && v < 1.8e19 ? (uint64_t)v : 0,
                              memory_order_relaxed);
    else
        atomic_store_explicit(slot(m, child), double_bits(v), memory_order_relaxed);
}

void
sl_metric_gauge_add(struct sl_metric *m, size_t child, double delta)
{
    if (m == NULL)
        return;
    SL_BUG_ON(m->type != MT_GAUGE);
    atomic_add_double(slot(m, child), delta);
}

void
sl_metric_observe(struct sl_metric *m, size_t child, double v)
{
    _Atomic uint64_t *s;
    size_t b = 0;

    if (m == NULL || isnan(v))
        return;
    SL_BUG_ON(m->type != MT_HISTOGRAM);
    s = slot(m, child);
    while (b < m->n_bounds && v > m->bounds[b]) /* le: v <= bound */
        b++;
    atomic_fetch_add_explicit(&s[b], 1, memory_order_relaxed);
    atomic_add_double(&s[m->n_bounds + 1], v);
}

double
sl_metric_get(const struct sl_metric *m, size_t child)
{
    _Atomic uint64_t *s;
    uint64_t total = 0;

    if (m == NULL)
        return 0;
    s = slot(m, child);
    switch (m->type) {
    case MT_COUNTER:
        return (double)atomic_load_explicit(s, memory_order_relaxed);
    case MT_GAUGE:
        return bits_double(atomic_load_explicit(s, memory_order_relaxed));
    case MT_HISTOGRAM:
        for (size_t b = 0; b <= m->n_bounds; b++)
            total += atomic_load_explicit(&s[b], memory_order_relaxed);
        return (double)total;
    }
    return 0;
}

/* ---- the text format ----------------------------------------------------- */

/* \ and line feed escaped, and " too in a label value (a HELP text
 * keeps its quotes): the format's two rules. */
static void
escape(struct sl_buf *out, const char *text, bool quote)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\\' || (quote && *p == '"'))
            sl_buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            sl_buf_append(out, "\\n", 2);
        else
            sl_buf_append(out, p, 1);
    }
}

void
sl_metrics_escape_label(struct sl_buf *out, const char *value)
{
    escape(out, value, true);
}

void
sl_metrics_format_value(struct sl_buf *out, double v)
{
    char text[40];

    if (isnan(v)) {
        sl_buf_append_str(out, "NaN");
        return;
    }
    if (isinf(v)) {
        sl_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        sl_buf_printf(out, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(text, sizeof(text), "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    sl_buf_append_str(out, text);
}

/* name{a="x",b="y"[,le="..."]} */
static void
write_series(struct sl_buf *out, const struct sl_metric *m, const char *suffix, size_t child,
             const char *le)
{
    size_t rest = child;
    bool any = false;

    sl_buf_append_str(out, m->name);
    sl_buf_append_str(out, suffix);
    for (size_t d = 0; d < m->n_dims; d++) {
        size_t i = rest % m->dims[d].n_values;
        rest /= m->dims[d].n_values;
        sl_buf_append_str(out, any ? "," : "{");
        any = true;
        sl_buf_printf(out, "%s=\"", m->dims[d].name);
        sl_metrics_escape_label(out, m->dims[d].values[i]);
        sl_buf_append_str(out, "\"");
    }
    if (le != NULL) {
        sl_buf_append_str(out, any ? "," : "{");
        any = true;
        sl_buf_printf(out, "le=\"%s\"", le);
    }
    if (any)
        sl_buf_append_str(out, "}");
    sl_buf_append_str(out, " ");
}

static void
write_histogram_child(struct sl_buf *out, const struct sl_metric *m, size_t child)
{
    _Atomic uint64_t *s = slot(m, child);
    uint64_t counts[SL_METRIC_MAX_BUCKETS + 1], cum = 0;

    for (size_t b = 0; b <= m->n_bounds; b++) {
        counts[b] = atomic_load_explicit(&s[b], memory_order_relaxed);
        cum += counts[b];
    }
    if (cum == 0 && (m->flags & SL_METRIC_SPARSE))
        return;
    cum = 0;
    for (size_t b = 0; b <= m->n_bounds; b++) {
        cum += counts[b];
        write_series(out, m, "_bucket", child, m->le[b]);
        sl_buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    write_series(out, m, "_sum", child, NULL);
    sl_metrics_format_value(
        out, bits_double(atomic_load_explicit(&s[m->n_bounds + 1], memory_order_relaxed)));
    sl_buf_append_str(out, "\n");
    write_series(out, m, "_count", child, NULL);
    sl_buf_printf(out, "%llu\n", (unsigned long long)cum);
}

static void
write_family(struct sl_buf *out, const struct sl_metric *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};

    sl_buf_printf(out, "# HELP %s ", m->name);
    escape(out, m->help, false);
    sl_buf_printf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    for (size_t c = 0; c < m->n_children; c++) {
        if (m->type == MT_HISTOGRAM) {
            write_histogram_child(out, m, c);
            continue;
        }
        uint64_t raw = atomic_load_explicit(slot(m, c), memory_order_relaxed);
        if (m->type == MT_COUNTER && raw == 0 && (m->flags & SL_METRIC_SPARSE))
            continue;
        write_series(out, m, "", c, NULL);
        if (m->type == MT_COUNTER)
            sl_buf_printf(out, "%llu", (unsigned long long)raw);
        else
            sl_metrics_format_value(out, bits_double(raw));
        sl_buf_append_str(out, "\n");
    }
}

void
sl_metrics_write(struct sl_metrics *reg, struct sl_buf *out)
{
    for (size_t i = 0; i < reg->n_hooks; i++)
        reg->hooks[i].fn(reg->hooks[i].ctx);
    for (const struct sl_metric *m = reg->head; m != NULL; m = m->next)
        write_family(out, m);
}
