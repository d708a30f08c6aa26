/* sl_metrics.h - counters, gauges and histograms, written in Prometheus'
 * text exposition format (version 0.0.4). Knows nothing of mail.
 *
 * SYNOPSIS
 *   static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
 *   struct sl_metric_dim dim = SL_METRIC_DIM("class", classes);
 *   struct sl_metric *m = sl_metrics_counter(reg, "sluice_replies_total",
 *                                            "Replies by class.", &dim, 1, 0);
 *   sl_metric_inc(m, sl_metric_index(m, 2, 0, 0));       any thread
 *   sl_metrics_write(reg, &buf);                          the scraper
 *
 * DESIGN
 *   A family has at most SL_METRIC_MAX_DIMS label dimensions, and every
 *   value of every dimension is given when the family is registered (an
 *   enum's names, the configuration's origin names). A label value never
 *   comes from outside input, so the number of series is fixed at start:
 *   a flood of odd input cannot grow it. A value that is not listed maps
 *   to the dimension's last value (sl_metric_value_index), which by
 *   convention is "other".
 *
 *   A family's children (one per combination of values) are a flat array
 *   of C11 atomics, updated with relaxed order: any thread counts without
 *   a lock, and a scrape reads each value as it was at some recent moment.
 *   A histogram's count is the sum of its buckets, read once, so its
 *   +Inf bucket and its _count always agree.
 *
 *   Every update through a NULL family does nothing: code counts
 *   unconditionally, and a process with metrics off registers nothing.
 *
 *   Gauges that describe live state (queue depth, sessions) are set at
 *   scrape time by the hooks of sl_metrics_on_scrape(), which run on the
 *   thread that calls sl_metrics_write().
 *
 * OWNERSHIP
 *   The registry owns its families (names, help and values are copied)
 *   and frees them in sl_metrics_destroy(). Families and hooks are added
 *   before the first sl_metrics_write() and never while one runs. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/sl_buf.h"
#include "util/sl_util.h"

#define SL_METRIC_MAX_DIMS 3
#define SL_METRIC_MAX_BUCKETS 32 /* a histogram's bounds, +Inf not counted */
#define SL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Write only the children that were ever counted or observed (a counter
 * above 0, a histogram with observations): for families whose dimensions
 * multiply into many series, most of them never used. */
#define SL_METRIC_SPARSE 1u

struct sl_metrics;
struct sl_metric;

/* One label dimension: its name and every value it can take. */
struct sl_metric_dim {
    const char *name;
    const char *const *values;
    size_t n_values;
};
#define SL_METRIC_DIM(name, array) ((struct sl_metric_dim){(name), (array), SL_N_ELEMENTS(array)})

struct sl_metrics *sl_metrics_new(void);
void sl_metrics_destroy(struct sl_metrics **regp);

/* Registers a family. name must be a valid metric name and unique in the
 * registry; a counter's name ends in _total (Prometheus' convention);
 * label names are valid and not "le". Any violation is a programming
 * error (SL_BUG_ON). dims may be NULL when n_dims is 0; each dimension
 * needs at least one value. */
struct sl_metric *sl_metrics_counter(struct sl_metrics *reg, const char *name, const char *help,
                                     const struct sl_metric_dim *dims, size_t n_dims,
                                     unsigned flags);
struct sl_metric *sl_metrics_gauge(struct sl_metrics *reg, const char *name, const char *help,
                                   const struct sl_metric_dim *dims, size_t n_dims);
/* bounds: the buckets' upper bounds (le), strictly increasing, finite,
 * at most SL_METRIC_MAX_BUCKETS; the +Inf bucket is added. */
struct sl_metric *sl_metrics_histogram(struct sl_metrics *reg, const char *name, const char *help,
                                       const struct sl_metric_dim *dims, size_t n_dims,
                                       const double *bounds, size_t n_bounds, unsigned flags);

/* A family as a row of a table, for a role that registers many:
 * sl_metrics_add() registers each row and stores the family in *handle. */
enum sl_metric_kind { SL_METRIC_COUNTER, SL_METRIC_GAUGE, SL_METRIC_HISTOGRAM };
struct sl_metric_def {
    struct sl_metric **handle;
    enum sl_metric_kind kind;
    const char *name, *help;
    const struct sl_metric_dim *dims; /* n_dims of them, or NULL */
    size_t n_dims;
    const double *bounds; /* histograms */
    size_t n_bounds;
    unsigned flags;
};
void sl_metrics_add(struct sl_metrics *reg, const struct sl_metric_def *defs, size_t n);
/* Rows: h is where the family goes (struct sl_metric **); bounds an array. */
#define SL_COUNTER_DEF(h, name, help, dims, n_dims, flags)                                         \
    {                                                                                              \
        (h), SL_METRIC_COUNTER, (name), (help), (dims), (n_dims), NULL, 0, (flags)                 \
    }
#define SL_GAUGE_DEF(h, name, help, dims, n_dims)                                                  \
    {                                                                                              \
        (h), SL_METRIC_GAUGE, (name), (help), (dims), (n_dims), NULL, 0, 0                         \
    }
#define SL_HISTOGRAM_DEF(h, name, help, dims, n_dims, bounds, flags)                               \
    {                                                                                              \
        (h), SL_METRIC_HISTOGRAM, (name), (help), (dims), (n_dims), (bounds),                      \
            SL_N_ELEMENTS(bounds), (flags)                                                         \
    }

/* Runs fn(ctx) at the start of every sl_metrics_write(), in the order
 * added: it sets the gauges of live state. */
void sl_metrics_on_scrape(struct sl_metrics *reg, void (*fn)(void *ctx), void *ctx);

/* The child of the values i0, i1, i2 of the dimensions (0 for a dimension
 * the family does not have); an index out of range is a programming
 * error. 0 for a NULL family. */
size_t sl_metric_index(const struct sl_metric *m, size_t i0, size_t i1, size_t i2);
/* The index of value in dimension dim; a value not listed (or NULL) gives
 * the last value's index. 0 for a NULL family. */
size_t sl_metric_value_index(const struct sl_metric *m, size_t dim, const char *value);

/* Counters. */
void sl_metric_add(struct sl_metric *m, size_t child, uint64_t n);
static inline void
sl_metric_inc(struct sl_metric *m, size_t child)
{
    sl_metric_add(m, child, 1);
}
/* A gauge's value; for a counter, a value kept elsewhere that only grows
 * (a snapshot's count), rounded down. */
void sl_metric_set(struct sl_metric *m, size_t child, double v);
/* Gauges only. */
void sl_metric_gauge_add(struct sl_metric *m, size_t child, double delta);
/* Histograms only; NaN is ignored. */
void sl_metric_observe(struct sl_metric *m, size_t child, double v);

/* Reads one child, for tests and readiness checks: a counter's or gauge's
 * value, a histogram's count. 0 for a NULL family. */
double sl_metric_get(const struct sl_metric *m, size_t child);

/* Runs the hooks, then appends every family in the order registered:
 * # HELP, # TYPE, then its samples. */
void sl_metrics_write(struct sl_metrics *reg, struct sl_buf *out);

/* ---- the format's pieces, exposed for tests ----------------------------- */

/* A label value as the format quotes it: \ " and line feed escaped. */
void sl_metrics_escape_label(struct sl_buf *out, const char *value);
/* A sample value: integers without a fraction, NaN, +Inf, -Inf, else the
 * shortest decimal that reads back as the same double. */
void sl_metrics_format_value(struct sl_buf *out, double v);

#endif
