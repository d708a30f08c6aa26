/* test_metrics.c - lib/util/sl_metrics: the text format written whole
 * against expected output (HELP, TYPE, labels in dimension order, sparse
 * families), label and help escaping, value formatting, histogram buckets
 * at and around their bounds (le is "less or equal"), the fallback value of
 * a dimension, hooks run before a write, NULL families as no-ops, and
 * counts from several threads at once adding up exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_buf.h"
#include "util/sl_metrics.h"

static char *
written(struct sl_metrics *reg)
{
    struct sl_buf b;

    sl_buf_init(&b);
    sl_metrics_write(reg, &b);
    return sl_buf_steal(&b, NULL);
}

static void
test_counter_text(void **state)
{
    static const char *const classes[] = {"2xx", "4xx", "5xx"};
    struct sl_metric_dim dim = SL_METRIC_DIM("class", classes);
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *plain, *byclass;
    char *text;

    (void)state;
    plain = sl_metrics_counter(reg, "t_events_total", "Events.", NULL, 0, 0);
    byclass = sl_metrics_counter(reg, "t_replies_total", "Replies by class.", &dim, 1, 0);
    sl_metric_inc(plain, 0);
    sl_metric_add(plain, 0, 41);
    sl_metric_inc(byclass, sl_metric_index(byclass, 1, 0, 0));
    text = written(reg);
    assert_string_equal(text, "# HELP t_events_total Events.\n"
                              "# TYPE t_events_total counter\n"
                              "t_events_total 42\n"
                              "# HELP t_replies_total Replies by class.\n"
                              "# TYPE t_replies_total counter\n"
                              "t_replies_total{class=\"2xx\"} 0\n"
                              "t_replies_total{class=\"4xx\"} 1\n"
                              "t_replies_total{class=\"5xx\"} 0\n");
    free(text);
    assert_true(sl_metric_get(plain, 0) == 42);
    sl_metrics_destroy(&reg);
    assert_null(reg);
    sl_metrics_destroy(&reg); /* NULL: nothing */
}

/* Three dimensions: the first varies fastest in the child index, and
 * labels are written in the order of the dimensions. Sparse: only what
 * was counted. */
static void
test_dimensions_sparse(void **state)
{
    static const char *const cats[] = {"CLEAN", "SPAM", "other"};
    static const char *const dests[] = {"pass", "reject"};
    static const char *const origins[] = {"o2", "o3"};
    struct sl_metric_dim dims[] = {SL_METRIC_DIM("category", cats), SL_METRIC_DIM("destiny", dests),
                                   SL_METRIC_DIM("origin", origins)};
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *m;
    char *text;

    (void)state;
    m = sl_metrics_counter(reg, "t_messages_total", "Messages.", dims, 3, SL_METRIC_SPARSE);
    assert_int_equal(sl_metric_index(m, 1, 1, 1), 1 + 1 * 3 + 1 * 3 * 2);
    sl_metric_inc(m, sl_metric_index(m, 1, 1, 1));
    sl_metric_add(m, sl_metric_index(m, 0, 0, 0), 3);
    /* a value not listed is the last one, "other" */
    assert_int_equal(sl_metric_value_index(m, 0, "SPAM"), 1);
    assert_int_equal(sl_metric_value_index(m, 0, "FROM-OUTSIDE\"\n"), 2);
    assert_int_equal(sl_metric_value_index(m, 0, NULL), 2);
    assert_int_equal(sl_metric_value_index(m, 2, "o3"), 1);
    sl_metric_inc(m, sl_metric_index(m, sl_metric_value_index(m, 0, "bogus"), 0, 1));
    text = written(reg);
    assert_string_equal(text,
                        "# HELP t_messages_total Messages.\n"
                        "# TYPE t_messages_total counter\n"
                        "t_messages_total{category=\"CLEAN\",destiny=\"pass\",origin=\"o2\"} 3\n"
                        "t_messages_total{category=\"other\",destiny=\"pass\",origin=\"o3\"} 1\n"
                        "t_messages_total{category=\"SPAM\",destiny=\"reject\",origin=\"o3\"} 1\n");
    free(text);
    sl_metrics_destroy(&reg);
}

static void
test_escaping(void **state)
{
    static const char *const odd[] = {"a\\b", "say \"hi\"", "two\nlines"};
    struct sl_metric_dim dim = SL_METRIC_DIM("name", odd);
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *g;
    struct sl_buf b;
    char *text;

    (void)state;
    g = sl_metrics_gauge(reg, "t_odd", "Help with a \\ and a\nline feed.", &dim, 1);
    sl_metric_set(g, 0, 1);
    sl_metric_set(g, 1, -2.5);
    sl_metric_set(g, 2, 0.1);
    text = written(reg);
    assert_string_equal(text, "# HELP t_odd Help with a \\\\ and a\\nline feed.\n"
                              "# TYPE t_odd gauge\n"
                              "t_odd{name=\"a\\\\b\"} 1\n"
                              "t_odd{name=\"say \\\"hi\\\"\"} -2.5\n"
                              "t_odd{name=\"two\\nlines\"} 0.1\n");
    free(text);
    sl_buf_init(&b);
    sl_metrics_escape_label(&b, "plain");
    assert_string_equal(b.data, "plain");
    sl_buf_free(&b);
    sl_metrics_destroy(&reg);
}

static void
test_values(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {7, "7"},
        {-3, "-3"},
        {0.005, "0.005"},
        {2.5, "2.5"},
        {1e15, "1e+15"},
        {123456789012, "123456789012"},
        {1.0 / 3, "0.3333333333333333"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    struct sl_buf b;

    (void)state;
    sl_buf_init(&b);
    for (size_t i = 0; i < SL_N_ELEMENTS(cases); i++) {
        sl_buf_reset(&b);
        sl_metrics_format_value(&b, cases[i].v);
        assert_string_equal(b.data, cases[i].text);
        if (isfinite(cases[i].v))
            assert_true(strtod(b.data, NULL) == cases[i].v); /* reads back */
    }
    sl_buf_free(&b);
}

/* A value equal to a bound falls in that bucket; one just above it in the
 * next; larger than every bound in +Inf. Buckets are cumulative and the
 * count equals +Inf. */
static void
test_histogram(void **state)
{
    static const double bounds[] = {0.01, 0.1, 1};
    static const char *const scanners[] = {"clamd", "spamd"};
    struct sl_metric_dim dim = SL_METRIC_DIM("scanner", scanners);
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *h;
    char *text;

    (void)state;
    h = sl_metrics_histogram(reg, "t_scan_seconds", "Scan time.", &dim, 1, bounds, 3,
                             SL_METRIC_SPARSE);
    sl_metric_observe(h, 0, 0.01);   /* le 0.01 */
    sl_metric_observe(h, 0, 0.0101); /* le 0.1 */
    sl_metric_observe(h, 0, 0.5);    /* le 1 */
    sl_metric_observe(h, 0, 1);      /* le 1 */
    sl_metric_observe(h, 0, 30);     /* +Inf */
    sl_metric_observe(h, 0, NAN);    /* ignored */
    assert_true(sl_metric_get(h, 0) == 5);
    assert_true(sl_metric_get(h, 1) == 0);
    text = written(reg);
    assert_string_equal(text, "# HELP t_scan_seconds Scan time.\n"
                              "# TYPE t_scan_seconds histogram\n"
                              "t_scan_seconds_bucket{scanner=\"clamd\",le=\"0.01\"} 1\n"
                              "t_scan_seconds_bucket{scanner=\"clamd\",le=\"0.1\"} 2\n"
                              "t_scan_seconds_bucket{scanner=\"clamd\",le=\"1\"} 4\n"
                              "t_scan_seconds_bucket{scanner=\"clamd\",le=\"+Inf\"} 5\n"
                              "t_scan_seconds_sum{scanner=\"clamd\"} 31.5201\n"
                              "t_scan_seconds_count{scanner=\"clamd\"} 5\n");
    free(text);
    sl_metrics_destroy(&reg);
}

/* Not sparse and without labels: every bucket, zeros included. */
static void
test_histogram_empty(void **state)
{
    static const double bounds[] = {0.5};
    struct sl_metrics *reg = sl_metrics_new();
    char *text;

    (void)state;
    (void)sl_metrics_histogram(reg, "t_wait_seconds", "Wait.", NULL, 0, bounds, 1, 0);
    text = written(reg);
    assert_string_equal(text, "# HELP t_wait_seconds Wait.\n"
                              "# TYPE t_wait_seconds histogram\n"
                              "t_wait_seconds_bucket{le=\"0.5\"} 0\n"
                              "t_wait_seconds_bucket{le=\"+Inf\"} 0\n"
                              "t_wait_seconds_sum 0\n"
                              "t_wait_seconds_count 0\n");
    free(text);
    sl_metrics_destroy(&reg);
}

struct hook_ctx {
    struct sl_metric *g;
    int calls;
};

static void
hook(void *arg)
{
    struct hook_ctx *h = arg;
    h->calls++;
    sl_metric_set(h->g, 0, h->calls * 10);
}

static void
test_hooks_and_null(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct hook_ctx h = {0};
    char *text;

    (void)state;
    h.g = sl_metrics_gauge(reg, "t_depth", "Depth.", NULL, 0);
    sl_metrics_on_scrape(reg, hook, &h);
    text = written(reg);
    assert_string_equal(text, "# HELP t_depth Depth.\n# TYPE t_depth gauge\nt_depth 10\n");
    free(text);
    text = written(reg);
    assert_string_equal(text, "# HELP t_depth Depth.\n# TYPE t_depth gauge\nt_depth 20\n");
    free(text);
    sl_metric_gauge_add(h.g, 0, -5);
    assert_true(sl_metric_get(h.g, 0) == 15);

    /* metrics off: a NULL family takes every update and reads 0 */
    sl_metric_inc(NULL, 0);
    sl_metric_add(NULL, 7, 3);
    sl_metric_set(NULL, 0, 1);
    sl_metric_gauge_add(NULL, 0, 1);
    sl_metric_observe(NULL, 0, 1);
    assert_int_equal(sl_metric_index(NULL, 5, 5, 5), 0);
    assert_int_equal(sl_metric_value_index(NULL, 0, "x"), 0);
    assert_true(sl_metric_get(NULL, 0) == 0);
    sl_metrics_destroy(&reg);
}

/* A counter's value kept elsewhere (a snapshot) is set, rounded down. */
static void
test_counter_set(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *c = sl_metrics_counter(reg, "t_jobs_total", "Jobs.", NULL, 0, 0);

    (void)state;
    sl_metric_set(c, 0, 12.9);
    assert_true(sl_metric_get(c, 0) == 12);
    sl_metric_set(c, 0, -1); /* never negative */
    assert_true(sl_metric_get(c, 0) == 0);
    sl_metrics_destroy(&reg);
}

#define THREADS 4
#define PER_THREAD 200000

struct race {
    struct sl_metric *c, *h, *g;
};

static void *
racer(void *arg)
{
    struct race *r = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        sl_metric_inc(r->c, (size_t)(i & 1));
        sl_metric_observe(r->h, 0, (i & 1) ? 0.5 : 2);
        sl_metric_gauge_add(r->g, 0, 1);
    }
    return NULL;
}

/* Lock-free, and exact: no increment is lost between threads. */
static void
test_threads(void **state)
{
    static const char *const halves[] = {"even", "odd"};
    static const double bounds[] = {1};
    struct sl_metric_dim dim = SL_METRIC_DIM("half", halves);
    struct sl_metrics *reg = sl_metrics_new();
    struct race r;
    pthread_t t[THREADS];

    (void)state;
    r.c = sl_metrics_counter(reg, "t_race_total", "Race.", &dim, 1, 0);
    r.h = sl_metrics_histogram(reg, "t_race_seconds", "Race.", NULL, 0, bounds, 1, 0);
    r.g = sl_metrics_gauge(reg, "t_race_level", "Race.", NULL, 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(sl_metric_get(r.c, 0) == THREADS * PER_THREAD / 2);
    assert_true(sl_metric_get(r.c, 1) == THREADS * PER_THREAD / 2);
    assert_true(sl_metric_get(r.h, 0) == THREADS * PER_THREAD);
    assert_true(sl_metric_get(r.g, 0) == THREADS * PER_THREAD);
    char *text = written(reg);
    char expect[128];
    snprintf(expect, sizeof(expect), "t_race_seconds_sum %d\n",
             THREADS * PER_THREAD / 2 * 2 + THREADS * PER_THREAD / 2 / 2);
    assert_non_null(strstr(text, expect)); /* 0.5 and 2 add up exactly */
    free(text);
    sl_metrics_destroy(&reg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_text),   cmocka_unit_test(test_dimensions_sparse),
        cmocka_unit_test(test_escaping),       cmocka_unit_test(test_values),
        cmocka_unit_test(test_histogram),      cmocka_unit_test(test_histogram_empty),
        cmocka_unit_test(test_hooks_and_null), cmocka_unit_test(test_counter_set),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
