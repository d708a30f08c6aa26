/* test_origins.c - frontend/origins.c and frontend/settings.c: the origins
 * tables of successive configurations (a reload) and their slots.
 *
 *   slots shared:  a transaction that took its slot under the old table
 *                  gives it back to the count the new table checks, by
 *                  origin name; the limit is the newest table's;
 *   removed:       an origin a reload removed keeps its table (the old
 *                  settings) while a session holds it, its slot goes back,
 *                  and the settings are freed with their last user;
 *   re-added:      an origin removed and added again counts on as before.
 * The sanitizer build tells a settings or configuration freed too early
 * or never. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "conf/sl_config.h"
#include "frontend/origins.h"
#include "frontend/settings.h"
#include "util/sl_log.h"

/* settings made from yaml, holding the only reference to its configuration */
static struct fe_settings *
settings_from(const char *yaml, struct fe_origin_slots **slots)
{
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test.yaml", yaml, strlen(yaml), NULL, 0, &error);
    struct fe_settings *s;

    if (c == NULL)
        fail_msg("config: %s", error);
    s = fe_settings_new(c, slots);
    sl_config_unref(&c);
    return s;
}

static void
test_slots_shared_across_reload(void **state)
{
    struct fe_origin_slots *slots = NULL;
    struct fe_settings *old = settings_from("origins:\n  default:\n    concurrency: 2\n", &slots);
    struct fe_origin *o_old = fe_origins_for(&old->origins, old->config, "127.0.0.1");

    (void)state;
    assert_true(fe_origin_take_slot(o_old, "127.0.0.1"));
    assert_true(fe_origin_take_slot(o_old, "127.0.0.1"));
    assert_false(fe_origin_take_slot(o_old, "127.0.0.1")); /* at 2 */

    /* the reload lowers the limit to 1: both slots still count */
    struct fe_settings *new = settings_from("origins:\n  default:\n    concurrency: 1\n", &slots);
    struct fe_origin *o_new = fe_origins_find(&new->origins, "default");
    assert_ptr_equal(o_new->slots, o_old->slots);
    assert_int_equal(o_new->slots->active, 2);
    assert_int_equal(o_new->slots->limit, 1);
    assert_false(fe_origin_take_slot(o_new, "127.0.0.1"));
    /* the old sessions end: their slots go back into the shared count */
    fe_origin_release_slot(o_old);
    assert_false(fe_origin_take_slot(o_new, "127.0.0.1")); /* 1 of 1 */
    fe_origin_release_slot(o_old);
    assert_true(fe_origin_take_slot(o_new, "127.0.0.1"));
    /* a session accepted before the reload is held to the new limit too */
    assert_false(fe_origin_take_slot(o_old, "127.0.0.1"));
    fe_origin_release_slot(o_new);
    assert_int_equal(o_new->slots->active, 0);

    fe_settings_unref(&old);
    assert_null(old);
    fe_settings_unref(&new);
    fe_origin_slots_free(&slots);
    assert_null(slots);
}

static void
test_removed_origin_lives_with_its_users(void **state)
{
    struct fe_origin_slots *slots = NULL;
    struct fe_settings *old = settings_from("origins:\n  o2:\n    match: 127.0.0.2\n"
                                            "    reinject: 127.0.0.2:10026\n",
                                            &slots);
    /* a session: its reference, its origin, a slot */
    struct fe_settings *session = fe_settings_ref(old);
    struct fe_origin *o2 = fe_origins_for(&session->origins, session->config, "127.0.0.2");

    (void)state;
    assert_string_equal(o2->config->name, "o2");
    assert_true(fe_origin_take_slot(o2, "127.0.0.2"));

    /* the reload removes o2; the frontend drops the old settings */
    struct fe_settings *cur = settings_from("", &slots);
    fe_settings_unref(&old);
    assert_null(fe_origins_find(&cur->origins, "o2"));
    assert_string_equal(fe_origins_for(&cur->origins, cur->config, "127.0.0.2")->config->name,
                        "default");
    /* the session's table and configuration are still there */
    assert_int_equal(o2->config->reinject_port, 10026);
    assert_string_equal(session->config->origins[o2 - session->origins.v].name, "o2");
    fe_origin_release_slot(o2);
    fe_settings_unref(&session); /* the last user: freed (ASan) */

    /* o2 comes back: the same count, still at 0 */
    struct fe_settings *again = settings_from("origins:\n  o2:\n    match: 127.0.0.2\n"
                                              "    concurrency: 7\n",
                                              &slots);
    struct fe_origin *o2b = fe_origins_find(&again->origins, "o2");
    assert_int_equal(o2b->slots->active, 0);
    assert_int_equal(o2b->slots->limit, 7);
    fe_settings_unref(&again);
    fe_settings_unref(&cur);
    fe_origin_slots_free(&slots);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_shared_across_reload),
        cmocka_unit_test(test_removed_origin_lives_with_its_users),
    };

    sl_log_open("test_origins", SL_LOG_STDERR, LOG_ERR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
