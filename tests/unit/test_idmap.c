/* test_idmap.c - lib/util/sl_idmap: insert, find, remove, count and
 * iteration against a plain array model, with a few ids and with 100,000
 * (far past any initial size), under churn (removal markers must not pile
 * up), and with removals during an iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_id.h"
#include "util/sl_idmap.h"

#define MANY 100000

/* Distinct ids, in order: "AAAAAAAA0000" style, not random, so that the
 * hash must spread ids that differ in a few characters only. */
static void
make_id(size_t n, char id[SL_ID_LEN + 1])
{
    snprintf(id, SL_ID_LEN + 1, "job-%08zu", n);
}

static void
test_basics(void **state)
{
    struct sl_idmap *map = sl_idmap_new();
    char a[SL_ID_LEN + 1], b[SL_ID_LEN + 1];
    int x, y;

    (void)state;
    sl_id_new(a);
    sl_id_new(b);
    assert_int_equal(sl_idmap_count(map), 0);
    assert_null(sl_idmap_find(map, a));
    assert_int_equal(sl_idmap_insert(map, a, &x), 0);
    assert_int_equal(sl_idmap_insert(map, a, &y), -1); /* already there: unchanged */
    assert_ptr_equal(sl_idmap_find(map, a), &x);
    assert_null(sl_idmap_find(map, b));
    assert_int_equal(sl_idmap_insert(map, b, &y), 0);
    assert_int_equal(sl_idmap_count(map), 2);

    /* strings that are not ids are simply not there */
    assert_null(sl_idmap_find(map, ""));
    assert_null(sl_idmap_find(map, "short"));
    char longer[SL_ID_LEN + 2];
    snprintf(longer, sizeof(longer), "%sx", a);
    assert_null(sl_idmap_find(map, longer));
    assert_null(sl_idmap_find(map, NULL));
    assert_null(sl_idmap_remove(map, "short"));

    assert_ptr_equal(sl_idmap_remove(map, a), &x);
    assert_null(sl_idmap_remove(map, a));
    assert_null(sl_idmap_find(map, a));
    assert_ptr_equal(sl_idmap_find(map, b), &y);
    assert_int_equal(sl_idmap_count(map), 1);
    assert_int_equal(sl_idmap_insert(map, a, &y), 0); /* again after removal */
    assert_ptr_equal(sl_idmap_find(map, a), &y);

    sl_idmap_destroy(&map);
    assert_null(map);
    sl_idmap_destroy(&map); /* NULL is fine */
}

static void
test_many(void **state)
{
    struct sl_idmap *map = sl_idmap_new();
    static size_t values[MANY];
    char id[SL_ID_LEN + 1];
    bool *seen = calloc(MANY, sizeof(*seen));

    (void)state;
    for (size_t i = 0; i < MANY; i++) {
        values[i] = i;
        make_id(i, id);
        assert_int_equal(sl_idmap_insert(map, id, &values[i]), 0);
    }
    assert_int_equal(sl_idmap_count(map), MANY);
    for (size_t i = 0; i < MANY; i++) {
        make_id(i, id);
        assert_ptr_equal(sl_idmap_find(map, id), &values[i]);
    }
    make_id(MANY, id);
    assert_null(sl_idmap_find(map, id));

    /* the odd ones go */
    for (size_t i = 1; i < MANY; i += 2) {
        make_id(i, id);
        assert_ptr_equal(sl_idmap_remove(map, id), &values[i]);
    }
    assert_int_equal(sl_idmap_count(map), MANY / 2);
    for (size_t i = 0; i < MANY; i++) {
        make_id(i, id);
        if (i % 2)
            assert_null(sl_idmap_find(map, id));
        else
            assert_ptr_equal(sl_idmap_find(map, id), &values[i]);
    }

    /* iteration: each entry once, with its own id */
    size_t it = 0, n = 0;
    const char *key;
    void *value;
    while (sl_idmap_next(map, &it, &key, &value)) {
        size_t i = *(size_t *)value;
        make_id(i, id);
        assert_string_equal(key, id);
        assert_true(i % 2 == 0);
        assert_false(seen[i]);
        seen[i] = true;
        n++;
    }
    assert_int_equal(n, MANY / 2);
    assert_false(sl_idmap_next(map, &it, &key, &value)); /* stays at the end */

    sl_idmap_destroy(&map);
    free(seen);
}

/* Jobs come and go with about the same number in flight: a table that
 * kept its removal markers would fill up and loop or slow down. */
static void
test_churn(void **state)
{
    struct sl_idmap *map = sl_idmap_new();
    static int v;
    char id[SL_ID_LEN + 1];

    (void)state;
    for (size_t i = 0; i < 20 * MANY; i++) {
        make_id(i, id);
        assert_int_equal(sl_idmap_insert(map, id, &v), 0);
        if (i >= 1000) {
            make_id(i - 1000, id);
            assert_ptr_equal(sl_idmap_remove(map, id), &v);
        }
    }
    assert_int_equal(sl_idmap_count(map), 1000);
    make_id(20 * MANY - 1, id);
    assert_ptr_equal(sl_idmap_find(map, id), &v);
    sl_idmap_destroy(&map);
}

/* Removing during an iteration, the current entry or others: every entry
 * still there is visited exactly once. */
static void
test_remove_while_iterating(void **state)
{
    enum { N = 5000 };
    struct sl_idmap *map = sl_idmap_new();
    static size_t values[N];
    int visits[N] = {0};
    char id[SL_ID_LEN + 1];

    (void)state;
    for (size_t i = 0; i < N; i++) {
        values[i] = i;
        make_id(i, id);
        assert_int_equal(sl_idmap_insert(map, id, &values[i]), 0);
    }

    /* remove each entry as it is visited, and its partner i ^ 1 too */
    size_t it = 0;
    const char *key;
    void *value;
    while (sl_idmap_next(map, &it, &key, &value)) {
        size_t i = *(size_t *)value;
        visits[i]++;
        assert_ptr_equal(sl_idmap_remove(map, key), value); /* the current one */
        make_id(i ^ 1, id);
        (void)sl_idmap_remove(map, id); /* maybe visited, maybe not yet */
    }
    size_t visited = 0;
    for (size_t i = 0; i < N; i += 2) {
        /* of each pair exactly one was visited, once */
        assert_int_equal(visits[i] + visits[i + 1], 1);
        visited++;
    }
    assert_int_equal(visited, N / 2);
    assert_int_equal(sl_idmap_count(map), 0);

    /* removal by iteration, as a shutdown does, then the table is reusable */
    for (size_t i = 0; i < N; i++) {
        make_id(i, id);
        assert_int_equal(sl_idmap_insert(map, id, &values[i]), 0);
    }
    it = 0;
    while (sl_idmap_next(map, &it, &key, NULL))
        assert_non_null(sl_idmap_remove(map, key));
    assert_int_equal(sl_idmap_count(map), 0);
    it = 0;
    assert_false(sl_idmap_next(map, &it, NULL, NULL));
    make_id(7, id);
    assert_int_equal(sl_idmap_insert(map, id, &values[7]), 0);
    assert_ptr_equal(sl_idmap_find(map, id), &values[7]);
    sl_idmap_destroy(&map);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_remove_while_iterating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
