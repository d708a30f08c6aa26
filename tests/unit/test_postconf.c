/* test_postconf.c - sl_postconf's parsers of postconf's output and the
 * look-ups check-postfix makes (cli/sl_postconf.h), on text as Postfix
 * 3.7's postconf prints it. tests/e2e/t_check_postfix.sh runs the real
 * postconf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/sl_postconf.h"

static const char main_x[] = "content_filter = amavisfeed:[127.0.0.1]:10024\n"
                             "lmtp_bind_address =\n"
                             "lmtp_data_done_timeout = 600s\n"
                             "amavisfeed_destination_concurrency_limit = 2\n";
static const char main_n[] = "content_filter = amavisfeed:[127.0.0.1]:10024\n";
static const char master_m[] =
    "smtp       inet  n       -       y       -       -       smtpd\n"
    "amavisfeed unix  -       -       n       -       2       lmtp -o lmtp_data_done_timeout=1200 "
    "-o lmtp_send_xforward_command=yes\n"
    "127.0.0.1:10025 inet n   -       n       -       -       smtpd -o content_filter= -o "
    "mynetworks=127.0.0.0/8\n";
static const char master_p[] = "amavisfeed/unix/lmtp_data_done_timeout = 1200\n"
                               "amavisfeed/unix/lmtp_send_xforward_command = yes\n"
                               "127.0.0.1:10025/inet/content_filter =\n"
                               "127.0.0.1:10025/inet/mynetworks = 127.0.0.0/8\n";

static void
load(struct sl_postconf *pc)
{
    char *error = NULL;

    memset(pc, 0, sizeof(*pc));
    assert_int_equal(sl_postconf_parse_params(main_x, &pc->params, &pc->n_params, &error), 0);
    assert_int_equal(sl_postconf_parse_params(main_n, &pc->set, &pc->n_set, &error), 0);
    assert_int_equal(sl_postconf_parse_services(master_m, &pc->services, &pc->n_services, &error),
                     0);
    assert_int_equal(sl_postconf_parse_params(master_p, &pc->svc_params, &pc->n_svc_params, &error),
                     0);
}

static void
test_params(void **state)
{
    struct sl_postconf pc;

    (void)state;
    load(&pc);
    assert_int_equal(pc.n_params, 4);
    assert_string_equal(sl_postconf_get(&pc, "content_filter"), "amavisfeed:[127.0.0.1]:10024");
    assert_string_equal(sl_postconf_get(&pc, "lmtp_bind_address"), ""); /* "name =" */
    assert_null(sl_postconf_get(&pc, "no_such_parameter"));
    assert_true(sl_postconf_is_set(&pc, "content_filter"));
    assert_false(sl_postconf_is_set(&pc, "amavisfeed_destination_concurrency_limit"));
    sl_postconf_free(&pc);
    assert_null(pc.params);
    assert_int_equal(pc.n_services, 0);
}

static void
test_services(void **state)
{
    struct sl_postconf pc;
    const struct sl_postconf_service *svc;

    (void)state;
    load(&pc);
    assert_int_equal(pc.n_services, 3);
    svc = sl_postconf_service(&pc, "amavisfeed", "unix");
    assert_non_null(svc);
    assert_string_equal(svc->maxproc, "2");
    assert_string_equal(svc->command, "lmtp");
    assert_string_equal(svc->line, "amavisfeed unix - - n - 2 lmtp -o lmtp_data_done_timeout=1200 "
                                   "-o lmtp_send_xforward_command=yes");
    assert_null(sl_postconf_service(&pc, "amavisfeed", "inet"));
    svc = sl_postconf_service(&pc, "127.0.0.1:10025", "inet");
    assert_non_null(svc);
    assert_string_equal(svc->maxproc, "-");
    /* -o values, and the service's value before main.cf's */
    assert_string_equal(sl_postconf_service_param(&pc, svc->name, "inet", "content_filter"), "");
    assert_string_equal(sl_postconf_effective(&pc, svc, "content_filter"), "");
    assert_null(sl_postconf_service_param(&pc, svc->name, "inet", "lmtp_bind_address"));
    assert_string_equal(sl_postconf_effective(&pc, svc, "lmtp_bind_address"), "");
    svc = sl_postconf_service(&pc, "amavisfeed", "unix");
    assert_string_equal(sl_postconf_effective(&pc, svc, "lmtp_data_done_timeout"), "1200");
    sl_postconf_free(&pc);
}

static void
test_bad_output(void **state)
{
    struct sl_postconf_param *params = NULL;
    struct sl_postconf_service *services = NULL;
    size_t n = 0;
    char *error = NULL;

    (void)state;
    assert_int_equal(sl_postconf_parse_params("postconf: warning: x\n", &params, &n, &error), -1);
    assert_non_null(strstr(error, "postconf: warning: x"));
    free(error);
    error = NULL;
    assert_int_equal(sl_postconf_parse_params("a=b\n", &params, &n, &error), -1);
    free(error);
    error = NULL;
    assert_int_equal(sl_postconf_parse_services("smtp inet n - y\n", &services, &n, &error), -1);
    assert_non_null(strstr(error, "fewer than 8 columns"));
    free(error);
    assert_null(params);
    assert_null(services);
}

static void
test_time(void **state)
{
    (void)state;
    assert_int_equal(sl_postconf_time("1200"), 1200);
    assert_int_equal(sl_postconf_time("600s"), 600);
    assert_int_equal(sl_postconf_time("20m"), 1200);
    assert_int_equal(sl_postconf_time("1h"), 3600);
    assert_int_equal(sl_postconf_time("1d"), 86400);
    assert_int_equal(sl_postconf_time("1w"), 7 * 86400);
    assert_int_equal(sl_postconf_time(""), -1);
    assert_int_equal(sl_postconf_time("10x"), -1);
    assert_int_equal(sl_postconf_time("10ss"), -1);
    assert_int_equal(sl_postconf_time("-5"), -1);
    assert_int_equal(sl_postconf_time(NULL), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_bad_output),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
