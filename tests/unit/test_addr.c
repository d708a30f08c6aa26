/* test_addr.c - CIDR lists, host:port, socket address text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util/sl_addr.h"

/* ---- CIDR parsing ----------------------------------------------------- */

struct cidr_ok {
    const char *text;
    size_t n;
    int family0;      /* family of the first element */
    unsigned prefix0; /* prefix of the first element */
};

static const struct cidr_ok cidr_valid[] = {
    {"", 0, 0, 0},
    {"  , ,\t", 0, 0, 0},
    {"127.0.0.0/8", 1, AF_INET, 8},
    {"10.1.2.3", 1, AF_INET, 32},
    {"::1", 1, AF_INET6, 128},
    {"[::1]", 1, AF_INET6, 128},
    {"[2001:db8::]/32", 1, AF_INET6, 32},
    {"2001:db8::/32", 1, AF_INET6, 32},
    {"0.0.0.0/0", 1, AF_INET, 0},
    {"::/0", 1, AF_INET6, 0},
    {"127.0.0.0/8, ::1", 2, AF_INET, 8},
    {"127.0.0.0/8,::1", 2, AF_INET, 8},
    {"127.0.0.0/8 ::1\n10.0.0.0/8,,192.168.0.0/16", 4, AF_INET, 8},
    {"172.16.0.0/12", 1, AF_INET, 12},
    {"::ffff:0:0/96", 1, AF_INET6, 96},
};

static void
test_cidr_parse_valid(void **state)
{
    for (size_t i = 0; i < sizeof(cidr_valid) / sizeof(cidr_valid[0]); i++) {
        const struct cidr_ok *c = &cidr_valid[i];
        struct sl_cidr_list list;
        char *error = NULL;
        int r = sl_cidr_list_parse(c->text, &list, &error);
        if (r != 0)
            fail_msg("\"%s\": %s", c->text, error);
        assert_null(error);
        assert_int_equal(list.n, c->n);
        if (c->n > 0) {
            assert_int_equal(list.items[0].family, c->family0);
            assert_int_equal(list.items[0].prefix, c->prefix0);
        }
        sl_cidr_list_free(&list);
        assert_int_equal(list.n, 0);
        assert_null(list.items);
    }
}

struct cidr_bad {
    const char *text;
    const char *expect; /* substring of the error: the bad element and why */
};

static const struct cidr_bad cidr_invalid[] = {
    {"10.0.0.0/33", "\"10.0.0.0/33\": prefix length must be 0..32"},
    {"::1/129", "\"::1/129\": prefix length must be 0..128"},
    {"127.0.0.0/8, 10.0.0.0/99", "\"10.0.0.0/99\""},
    {"1.2.3.4/", "\"1.2.3.4/\": prefix length"},
    {"1.2.3.4/-1", "\"1.2.3.4/-1\": prefix length"},
    {"1.2.3.4/8x", "\"1.2.3.4/8x\": prefix length"},
    {"1.2.3.0/99999999999999999999", "prefix length must be 0..32"},
    {"foo", "\"foo\": not an IPv4 or IPv6 address"},
    {"127.0.0.0/8 foo ::1", "\"foo\": not an IPv4 or IPv6 address"},
    {"1.2.3", "\"1.2.3\": not an IPv4"},
    {"256.0.0.1", "\"256.0.0.1\""},
    {"/8", "\"/8\": not an IPv4"},
    {"127.0.0.1/8", "\"127.0.0.1/8\": host bits set"},
    {"2001:db8::1/32", "\"2001:db8::1/32\": host bits set"},
    {"[::1", "\"[::1\": unbalanced brackets"},
    {"[1.2.3.4]", "\"[1.2.3.4]\": not an IPv6 address inside brackets"},
    {"127.0.0.0;8", "\"127.0.0.0;8\""},
};

static void
test_cidr_parse_invalid(void **state)
{
    for (size_t i = 0; i < sizeof(cidr_invalid) / sizeof(cidr_invalid[0]); i++) {
        const struct cidr_bad *c = &cidr_invalid[i];
        struct sl_cidr_list list = {(struct sl_cidr *)1, 99};
        char *error = NULL;
        if (sl_cidr_list_parse(c->text, &list, &error) != -1)
            fail_msg("\"%s\" parsed", c->text);
        assert_non_null(error);
        if (strstr(error, c->expect) == NULL)
            fail_msg("\"%s\": error \"%s\" lacks \"%s\"", c->text, error, c->expect);
        assert_null(list.items);
        assert_int_equal(list.n, 0);
        free(error);
    }
}

static void
test_cidr_parse_long_element(void **state)
{
    char text[300];
    struct sl_cidr_list list;
    char *error = NULL;

    memset(text, '1', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    assert_int_equal(sl_cidr_list_parse(text, &list, &error), -1);
    assert_non_null(strstr(error, "too long"));
    free(error);
}

/* ---- matching --------------------------------------------------------- */

static struct sl_cidr_list
parse(const char *text)
{
    struct sl_cidr_list list;
    char *error = NULL;
    if (sl_cidr_list_parse(text, &list, &error) != 0)
        fail_msg("\"%s\": %s", text, error);
    return list;
}

static struct sockaddr_in
sin4(const char *ip)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6
sin6(const char *ip)
{
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof(s));
    s.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
    return s;
}

struct match_case {
    const char *list;
    const char *ip;
    bool match;
};

static const struct match_case match_cases[] = {
    {"127.0.0.0/8, ::1", "127.0.0.1", true},
    {"127.0.0.0/8, ::1", "127.255.255.254", true},
    {"127.0.0.0/8, ::1", "128.0.0.1", false},
    {"127.0.0.0/8, ::1", "::1", true},
    {"127.0.0.0/8, ::1", "::2", false},
    {"127.0.0.0/8, ::1", "::ffff:127.0.0.1", true}, /* mapped -> IPv4 net */
    {"127.0.0.0/8, ::1", "::ffff:10.0.0.1", false},
    {"::1", "::ffff:127.0.0.1", false},         /* no IPv4 net to match */
    {"::ffff:0:0/96", "::ffff:10.0.0.1", true}, /* an explicit v6 net still works */
    {"10.0.0.1", "10.0.0.1", true},
    {"10.0.0.1", "10.0.0.2", false},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"0.0.0.0/0", "203.0.113.9", true},
    {"0.0.0.0/0", "2001:db8::1", false},
    {"::/0", "2001:db8::1", true},
    {"::/0", "192.0.2.1", false},
    {"2001:db8::/127", "2001:db8::1", true},
    {"2001:db8::/127", "2001:db8::2", false},
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"", "127.0.0.1", false},
};

static void
test_cidr_match(void **state)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *m = &match_cases[i];
        struct sl_cidr_list list = parse(m->list);
        bool by_text = sl_cidr_list_match_text(&list, m->ip);
        bool by_sa;

        if (strchr(m->ip, ':') != NULL) {
            struct sockaddr_in6 s = sin6(m->ip);
            by_sa = sl_cidr_list_match(&list, (struct sockaddr *)&s);
        } else {
            struct sockaddr_in s = sin4(m->ip);
            by_sa = sl_cidr_list_match(&list, (struct sockaddr *)&s);
        }
        if (by_text != m->match || by_sa != m->match)
            fail_msg("%s in [%s]: text %d sockaddr %d, want %d", m->ip, m->list, by_text, by_sa,
                     m->match);
        sl_cidr_list_free(&list);
    }
}

static void
test_cidr_match_odd_input(void **state)
{
    struct sl_cidr_list list = parse("0.0.0.0/0, ::/0");
    struct sockaddr_un sun;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_false(sl_cidr_list_match(&list, (struct sockaddr *)&sun));
    assert_false(sl_cidr_list_match(&list, NULL));
    assert_false(sl_cidr_list_match_text(&list, NULL));
    assert_false(sl_cidr_list_match_text(&list, "not-an-ip"));
    assert_false(sl_cidr_list_match_text(&list, ""));
    assert_true(sl_cidr_list_match_text(&list, "8.8.8.8"));
    sl_cidr_list_free(&list);
    sl_cidr_list_free(NULL);
}

/* ---- host:port -------------------------------------------------------- */

struct hp_case {
    const char *text;
    const char *host; /* NULL: must fail */
    unsigned port;
};

static const struct hp_case hp_cases[] = {
    {"127.0.0.1:10024", "127.0.0.1", 10024},
    {"[::1]:10024", "::1", 10024},
    {"[2001:db8::5]:25", "2001:db8::5", 25},
    {"localhost:10025", "localhost", 10025},
    {"mx-1.example.com:1", "mx-1.example.com", 1},
    {"a:65535", "a", 65535},
    {"a:65536", NULL, 0},
    {"a:0", NULL, 0},
    {"a:", NULL, 0},
    {":25", NULL, 0},
    {"", NULL, 0},
    {"localhost", NULL, 0},
    {"a:25x", NULL, 0},
    {"a:-25", NULL, 0},
    {"a:99999999999999999999", NULL, 0},
    {"::1:25", NULL, 0},
    {"[::1]25", NULL, 0},
    {"[::1]:", NULL, 0},
    {"[::1:25", NULL, 0},
    {"[foo]:25", NULL, 0},
    {"[127.0.0.1]:25", NULL, 0},
    {"a b:25", NULL, 0},
    {"foo", NULL, 0},
};

static void
test_hostport(void **state)
{
    for (size_t i = 0; i < sizeof(hp_cases) / sizeof(hp_cases[0]); i++) {
        const struct hp_case *c = &hp_cases[i];
        char *host = (char *)"untouched";
        unsigned port = 7;
        int r = sl_hostport_parse(c->text, &host, &port);
        if (c->host == NULL) {
            if (r != -1)
                fail_msg("\"%s\" parsed as %s port %u", c->text, host, port);
            assert_null(host);
            continue;
        }
        if (r != 0)
            fail_msg("\"%s\" did not parse", c->text);
        assert_string_equal(host, c->host);
        assert_int_equal(port, c->port);
        free(host);
    }
}

/* ---- sockaddr text ---------------------------------------------------- */

static void
test_sockaddr_ip(void **state)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned port = 0;
    struct sockaddr_in a4 = sin4("192.0.2.7");
    struct sockaddr_in6 a6 = sin6("2001:db8::7");
    struct sockaddr_un un;

    a4.sin_port = htons(48462);
    sl_sockaddr_ip((struct sockaddr *)&a4, buf, sizeof(buf), &port);
    assert_string_equal(buf, "192.0.2.7");
    assert_int_equal(port, 48462);

    a6.sin6_port = htons(10024);
    sl_sockaddr_ip((struct sockaddr *)&a6, buf, sizeof(buf), &port);
    assert_string_equal(buf, "2001:db8::7");
    assert_int_equal(port, 10024);

    /* The text form feeds sl_cidr_list_match_text(): a mapped address
     * printed here must still match its IPv4 network. */
    struct sockaddr_in6 m = sin6("::ffff:127.0.0.2");
    struct sl_cidr_list list = parse("127.0.0.0/8");
    sl_sockaddr_ip((struct sockaddr *)&m, buf, sizeof(buf), NULL);
    assert_true(sl_cidr_list_match_text(&list, buf));
    sl_cidr_list_free(&list);

    /* Too small a buffer: a terminated string, never garbage. */
    char small[4];
    memset(small, 'x', sizeof(small));
    sl_sockaddr_ip((struct sockaddr *)&a6, small, sizeof(small), &port);
    assert_true(memchr(small, '\0', sizeof(small)) != NULL);

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    port = 99;
    sl_sockaddr_ip((struct sockaddr *)&un, buf, sizeof(buf), &port);
    assert_string_equal(buf, "unknown");
    assert_int_equal(port, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse_valid),
        cmocka_unit_test(test_cidr_parse_invalid),
        cmocka_unit_test(test_cidr_parse_long_element),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_cidr_match_odd_input),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_sockaddr_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
