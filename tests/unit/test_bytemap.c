/* test_bytemap.c - lib/util/sl_bytemap: routing ids of every length (1
 * to 255 bytes, with NULs inside, as libzmq's own 5-byte ids have), keys
 * that differ only in length, and 20,000 keys inserted and removed under
 * churn against a plain model (the table grows past its first size). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_bytemap.h"

#define MANY 20000

/* A libzmq-style routing id: a zero byte, then a 32-bit counter. */
static void
zmq_id(uint32_t n, unsigned char id[5])
{
    id[0] = 0;
    memcpy(id + 1, &n, sizeof(n));
}

static void
test_basics(void **state)
{
    struct sl_bytemap *map = sl_bytemap_new();
    unsigned char a[5], b[5], big[SL_BYTEMAP_KEY_MAX];
    int x, y, z;

    (void)state;
    zmq_id(1, a);
    zmq_id(2, b);
    memset(big, 0xab, sizeof(big));
    assert_null(sl_bytemap_find(map, a, sizeof(a)));
    assert_int_equal(sl_bytemap_insert(map, a, sizeof(a), &x), 0);
    assert_int_equal(sl_bytemap_insert(map, a, sizeof(a), &y), -1); /* unchanged */
    assert_ptr_equal(sl_bytemap_find(map, a, sizeof(a)), &x);
    assert_null(sl_bytemap_find(map, b, sizeof(b)));
    /* a prefix is another key */
    assert_null(sl_bytemap_find(map, a, 4));
    assert_int_equal(sl_bytemap_insert(map, a, 4, &y), 0);
    assert_ptr_equal(sl_bytemap_find(map, a, 4), &y);
    assert_ptr_equal(sl_bytemap_find(map, a, 5), &x);
    assert_int_equal(sl_bytemap_insert(map, big, sizeof(big), &z), 0);
    assert_ptr_equal(sl_bytemap_find(map, big, sizeof(big)), &z);
    assert_int_equal(sl_bytemap_count(map), 3);
    /* lengths no routing id has are simply not there */
    assert_null(sl_bytemap_find(map, a, 0));
    assert_null(sl_bytemap_find(map, big, SL_BYTEMAP_KEY_MAX + 1));
    assert_null(sl_bytemap_remove(map, big, 0));

    assert_ptr_equal(sl_bytemap_remove(map, a, 5), &x);
    assert_null(sl_bytemap_remove(map, a, 5));
    assert_ptr_equal(sl_bytemap_find(map, a, 4), &y);
    assert_int_equal(sl_bytemap_count(map), 2);
    sl_bytemap_destroy(&map);
    assert_null(map);
    sl_bytemap_destroy(&map); /* NULL is fine */
}

static void
test_many_with_churn(void **state)
{
    struct sl_bytemap *map = sl_bytemap_new();
    static int values[MANY];
    static bool in[MANY];
    unsigned char id[5];
    size_t count = 0;

    (void)state;
    for (uint32_t i = 0; i < MANY; i++) {
        zmq_id(i, id);
        assert_int_equal(sl_bytemap_insert(map, id, sizeof(id), &values[i]), 0);
        in[i] = true;
        count++;
    }
    /* remove every third, put back every sixth, a few rounds */
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < MANY; i++) {
            zmq_id(i, id);
            if (i % 3 == (uint32_t)round && in[i]) {
                assert_ptr_equal(sl_bytemap_remove(map, id, sizeof(id)), &values[i]);
                in[i] = false;
                count--;
            } else if (i % 6 == (uint32_t)round && !in[i]) {
                assert_int_equal(sl_bytemap_insert(map, id, sizeof(id), &values[i]), 0);
                in[i] = true;
                count++;
            }
        }
    assert_int_equal(sl_bytemap_count(map), count);
    for (uint32_t i = 0; i < MANY; i++) {
        zmq_id(i, id);
        if (in[i])
            assert_ptr_equal(sl_bytemap_find(map, id, sizeof(id)), &values[i]);
        else
            assert_null(sl_bytemap_find(map, id, sizeof(id)));
    }
    sl_bytemap_destroy(&map);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_many_with_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
