/* test_config.c - the YAML configuration: defaults, a full file, every
 * error class (with its file:line and key), -o overrides, print -> load
 * round trips, -n printing (sizes and durations in their units, secrets as
 * references), origin matching, and what a reload relies on: references
 * counted across threads, the keys that differ, the keys only a restart
 * changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/sl_config.h"
#include "conf/sl_config.h"

/* ---- helpers ---------------------------------------------------------- */

/* Writes text to a new temporary file; returns its malloc'ed path. */
static char *
write_temp(const char *text, size_t len)
{
    char tmpl[] = "/tmp/sluice-test-config.XXXXXX";
    int fd = mkstemp(tmpl);

    if (fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    if (write(fd, text, len) != (ssize_t)len)
        fail_msg("write: %s", strerror(errno));
    close(fd);
    return sl_strdup(tmpl);
}

/* Loads text as a file with overrides; *path_r gets the (removed) path. */
static struct sl_config *
load_text(const char *text, char *const *ov, size_t n_ov, char **error_r, char **path_r)
{
    char *path = write_temp(text, strlen(text));
    struct sl_config *c = sl_config_load(path, ov, n_ov, error_r);

    unlink(path);
    if (path_r != NULL)
        *path_r = path;
    else
        free(path);
    return c;
}

static struct sl_config *
load_ok(const char *text, char *const *ov, size_t n_ov)
{
    char *error = NULL;
    struct sl_config *c = load_text(text, ov, n_ov, &error, NULL);

    if (c == NULL)
        fail_msg("unexpected error: %s", error);
    assert_null(error);
    return c;
}

static char *
print_to_string(const struct sl_config *c, bool only_changed)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    sl_config_print(c, f, only_changed);
    fclose(f);
    /* A copy: returning buf itself, whose address open_memstream kept, makes
     * gcc 12 -O2 report a false -Wdangling-pointer in the callers. */
    char *text = sl_strdup(buf);
    free(buf);
    return text;
}

static const struct sl_origin_config *
origin(const struct sl_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_origins; i++)
        if (strcmp(c->origins[i].name, name) == 0)
            return &c->origins[i];
    return NULL;
}

static const struct sl_policy_bank *
bank(const struct sl_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_banks; i++)
        if (strcmp(c->banks[i].name, name) == 0)
            return &c->banks[i];
    return NULL;
}

static void
assert_cidr_equal(const struct sl_cidr_list *a, const struct sl_cidr_list *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->items[i].family, b->items[i].family);
        assert_int_equal(a->items[i].prefix, b->items[i].prefix);
        assert_memory_equal(a->items[i].addr, b->items[i].addr, 16);
    }
}

/* Every field except path. */
static void
assert_config_equal(const struct sl_config *a, const struct sl_config *b)
{
    assert_string_equal(a->frontend.listen, b->frontend.listen);
    assert_cidr_equal(&a->frontend.acl, &b->frontend.acl);
    assert_string_equal(a->frontend.hostname, b->frontend.hostname);
    assert_int_equal(a->frontend.max_message_size, b->frontend.max_message_size);
    assert_int_equal(a->frontend.recipient_limit, b->frontend.recipient_limit);
    assert_int_equal(a->frontend.timeout_s, b->frontend.timeout_s);
    assert_int_equal(a->job.timeout_s, b->job.timeout_s);
    assert_string_equal(a->broker.listen, b->broker.listen);
    assert_int_equal(a->broker.n_endpoints, b->broker.n_endpoints);
    for (size_t i = 0; i < a->broker.n_endpoints; i++)
        assert_string_equal(a->broker.endpoints[i], b->broker.endpoints[i]);
    assert_int_equal(a->workers.count, b->workers.count);
    assert_int_equal(a->reinject.timeout_s, b->reinject.timeout_s);
    assert_string_equal(a->log.target, b->log.target);
    assert_string_equal(a->log.level, b->log.level);
    assert_string_equal(a->log.ident, b->log.ident);
    /* a password is never printed: the printed file reads the URL from
     * SLUICE_REDIS_URL instead (never "***", which would load as one) */
    char *masked = sl_config_redis_url_masked(a->redis.url);
    assert_string_equal(strcmp(masked, a->redis.url) != 0 ? "env:SLUICE_REDIS_URL" : a->redis.url,
                        b->redis.url);
    free(masked);
    assert_string_equal(a->dedup.enabled, b->dedup.enabled);
    assert_string_equal(a->dedup.on_unavailable, b->dedup.on_unavailable);
    assert_int_equal(a->dedup.ttl_s, b->dedup.ttl_s);
    assert_int_equal(a->dedup.pending_timeout_s, b->dedup.pending_timeout_s);
    assert_int_equal(a->n_origins, b->n_origins);
    for (size_t i = 0; i < a->n_origins; i++) {
        const struct sl_origin_config *oa = &a->origins[i], *ob = &b->origins[i];
        assert_string_equal(oa->name, ob->name);
        assert_cidr_equal(&oa->match, &ob->match);
        assert_string_equal(oa->reinject, ob->reinject);
        assert_int_equal(oa->reinject_to_client, ob->reinject_to_client);
        if (!oa->reinject_to_client)
            assert_string_equal(oa->reinject_host, ob->reinject_host);
        assert_int_equal(oa->reinject_port, ob->reinject_port);
        assert_int_equal(oa->concurrency, ob->concurrency);
    }
}

static void
assert_defaults(const struct sl_config *c)
{
    assert_string_equal(c->frontend.listen, "127.0.0.1:10024");
    assert_string_equal(c->metrics.listen, ""); /* off */
    assert_string_equal(c->frontend.acl_text, "127.0.0.0/8, ::1");
    assert_int_equal(c->frontend.acl.n, 2);
    assert_true(sl_cidr_list_match_text(&c->frontend.acl, "127.0.0.1"));
    assert_true(sl_cidr_list_match_text(&c->frontend.acl, "::1"));
    assert_false(sl_cidr_list_match_text(&c->frontend.acl, "192.0.2.1"));
    assert_string_equal(c->frontend.hostname, "");
    assert_int_equal(c->frontend.max_message_size, 52428800);
    assert_int_equal(c->frontend.recipient_limit, 1100);
    assert_int_equal(c->frontend.timeout_s, 480);
    assert_int_equal(c->job.timeout_s, 480);
    assert_string_equal(c->broker.listen, "inproc://sluice-broker");
    assert_int_equal(c->broker.n_endpoints, 1);
    assert_string_equal(c->broker.endpoints[0], "inproc://sluice-broker");
    assert_int_equal(c->workers.count, 0);
    assert_int_equal(c->reinject.timeout_s, 300);
    assert_string_equal(c->log.target, "stderr");
    assert_string_equal(c->log.level, "info");
    assert_string_equal(c->log.ident, "sluice");
    assert_string_equal(c->redis.url, "");
    assert_int_equal(c->n_origins, 1);
    assert_string_equal(c->origins[0].name, "default");
    assert_int_equal(c->origins[0].match.n, 0);
    assert_string_equal(c->origins[0].match_text, "");
    assert_string_equal(c->origins[0].reinject, "client:10025");
    assert_true(c->origins[0].reinject_to_client);
    assert_null(c->origins[0].reinject_host);
    assert_int_equal(c->origins[0].reinject_port, 10025);
    assert_int_equal(c->origins[0].concurrency, 2);
}

/* ---- defaults --------------------------------------------------------- */

static void
test_defaults_no_file(void **state)
{
    char *error = NULL;
    struct sl_config *c;

    unsetenv("SLUICE_CONFIG");
    if (access(SL_CONFIG_DEFAULT_PATH, F_OK) == 0) {
        print_message("skipping: %s exists on this machine, so path NULL loads it\n",
                      SL_CONFIG_DEFAULT_PATH);
        skip();
    }
    c = sl_config_load(NULL, NULL, 0, &error);
    if (c == NULL)
        fail_msg("%s", error);
    assert_null(c->path);
    assert_defaults(c);
    assert_ptr_equal(sl_config_origin_for(c, "127.0.0.1"), &c->origins[0]);
    sl_config_destroy(&c);
    assert_null(c);
    sl_config_destroy(&c); /* NULL is fine */
}

static void
test_empty_and_comment_only_files(void **state)
{
    static const char *const texts[] = {
        "",
        "# nothing but a comment\n",
        "---\n",
        "frontend:\n  # listen: 1.2.3.4:25\nlog:\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct sl_config *c = load_ok(texts[i], NULL, 0);
        assert_non_null(c->path);
        assert_defaults(c);
        sl_config_destroy(&c);
    }
}

static void
test_env_sluice_config(void **state)
{
    char *path = write_temp("workers:\n  count: 7\n", 20);
    char *error = NULL;
    struct sl_config *c;

    setenv("SLUICE_CONFIG", path, 1);
    c = sl_config_load(NULL, NULL, 0, &error);
    if (c == NULL)
        fail_msg("%s", error);
    assert_string_equal(c->path, path);
    assert_int_equal(c->workers.count, 7);
    sl_config_destroy(&c);

    /* An explicit path wins over the environment. */
    char *other = write_temp("workers:\n  count: 9\n", 20);
    c = sl_config_load(other, NULL, 0, &error);
    assert_non_null(c);
    assert_int_equal(c->workers.count, 9);
    sl_config_destroy(&c);
    unlink(other);
    free(other);

    /* A file named by SLUICE_CONFIG must exist. */
    unlink(path);
    c = sl_config_load(NULL, NULL, 0, &error);
    assert_null(c);
    char *want = sl_asprintf("%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(error, want);
    free(want);
    free(error);
    unsetenv("SLUICE_CONFIG");
    free(path);
}

/* ---- a full file ------------------------------------------------------ */

static const char full_yaml[] = "# two Postfix instances on one box\n"
                                "frontend:\n"
                                "  listen: \"[::1]:10024\"\n"
                                "  acl:\n"
                                "    - 127.0.0.0/8\n"
                                "    - ::1\n"
                                "    - 10.0.0.0/8\n"
                                "  hostname: filter.example.com\n"
                                "  max_message_size: 20M\n"
                                "  recipient_limit: 500\n"
                                "  timeout: 5m\n"
                                "job:\n"
                                "  timeout: 10m\n"
                                "broker:\n"
                                "  listen: tcp://*:5555\n"
                                "  endpoints: tcp://10.0.0.1:5555, tcp://10.0.0.2:5555\n"
                                "workers:\n"
                                "  count: 12\n"
                                "reinject:\n"
                                "  timeout: 2m\n"
                                "log:\n"
                                "  target: syslog\n"
                                "  level: debug\n"
                                "redis:\n"
                                "  url: redis://127.0.0.1:6379/2\n"
                                "origins:\n"
                                "  default:\n"
                                "    concurrency: 10\n"
                                "  o2:\n"
                                "    match: 127.0.0.2\n"
                                "    reinject: 127.0.0.2:10025\n"
                                "    concurrency: 4\n"
                                "  backup:\n"
                                "    match: [\"192.0.2.0/24\", \"2001:db8::/32\"]\n"
                                "    reinject: \"[2001:db8::25]:10025\"\n";

static void
test_full_file(void **state)
{
    struct sl_config *c = load_ok(full_yaml, NULL, 0);
    const struct sl_origin_config *o;

    assert_string_equal(c->frontend.listen, "[::1]:10024");
    assert_int_equal(c->frontend.acl.n, 3);
    assert_string_equal(c->frontend.acl_text, "127.0.0.0/8, ::1, 10.0.0.0/8");
    assert_true(sl_cidr_list_match_text(&c->frontend.acl, "10.9.8.7"));
    assert_string_equal(c->frontend.hostname, "filter.example.com");
    assert_int_equal(c->frontend.max_message_size, 20 * 1024 * 1024);
    assert_int_equal(c->frontend.recipient_limit, 500);
    assert_int_equal(c->frontend.timeout_s, 300);
    assert_int_equal(c->job.timeout_s, 600);
    assert_string_equal(c->broker.listen, "tcp://*:5555");
    assert_int_equal(c->broker.n_endpoints, 2);
    assert_string_equal(c->broker.endpoints[0], "tcp://10.0.0.1:5555");
    assert_string_equal(c->broker.endpoints[1], "tcp://10.0.0.2:5555");
    assert_int_equal(c->workers.count, 12);
    assert_int_equal(c->reinject.timeout_s, 120);
    assert_string_equal(c->log.target, "syslog");
    assert_string_equal(c->log.level, "debug");
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6379/2");

    assert_int_equal(c->n_origins, 3);
    assert_string_equal(c->origins[0].name, "default");
    assert_string_equal(c->origins[1].name, "o2");
    assert_string_equal(c->origins[2].name, "backup");
    o = origin(c, "default");
    assert_int_equal(o->concurrency, 10);
    assert_true(o->reinject_to_client);
    o = origin(c, "o2");
    assert_false(o->reinject_to_client);
    assert_string_equal(o->reinject_host, "127.0.0.2");
    assert_int_equal(o->reinject_port, 10025);
    assert_int_equal(o->concurrency, 4);
    assert_string_equal(o->match_text, "127.0.0.2");
    o = origin(c, "backup");
    assert_string_equal(o->reinject_host, "2001:db8::25");
    assert_int_equal(o->concurrency, 2);
    assert_int_equal(o->match.n, 2);
    sl_config_destroy(&c);
}

static void
test_value_forms(void **state)
{
    struct sl_config *c;

    c = load_ok("frontend:\n  max_message_size: 1k\n  timeout: 2h\njob:\n  timeout: 1199\n"
                "log:\n  level: WARNING\n",
                NULL, 0);
    assert_int_equal(c->frontend.max_message_size, 1024);
    assert_int_equal(c->frontend.timeout_s, 7200);
    assert_int_equal(c->job.timeout_s, 1199);
    assert_string_equal(c->log.level, "warning"); /* stored in canonical case */
    sl_config_destroy(&c);

    c = load_ok("frontend:\n  max_message_size: 1G\n  timeout: 30s\n  hostname: ''\n", NULL, 0);
    assert_int_equal(c->frontend.max_message_size, 1024ULL * 1024 * 1024);
    assert_int_equal(c->frontend.timeout_s, 30);
    assert_string_equal(c->frontend.hostname, "");
    sl_config_destroy(&c);

    /* YAML anchors and aliases are plain YAML: allowed. */
    c = load_ok("origins:\n  a:\n    match: &net 127.0.0.3\n  b:\n    match: *net\n", NULL, 0);
    assert_int_equal(c->n_origins, 3);
    assert_string_equal(origin(c, "b")->match_text, "127.0.0.3");
    sl_config_destroy(&c);
}

/* ---- errors ----------------------------------------------------------- */

struct error_case {
    const char *yaml;
    const char *expect; /* the error must be "<path>" followed by this */
};

static const struct error_case error_cases[] = {
    /* unknown keys and sections, with a suggestion when one is close */
    {"frontend:\n  listen: 127.0.0.1:10024\n  listne: 1\n",
     ":3: frontend.listne: unknown key (did you mean frontend.listen?)"},
    {"frontend:\n  colour: blue\n", ":2: frontend.colour: unknown key"},
    {"frontnd:\n  listen: 1.2.3.4:5\n", ":1: frontnd: unknown section (did you mean frontend?)"},
    {"amavis:\n  x: 1\n", ":1: amavis: unknown section"},
    {"origins:\n  o2:\n    match: 127.0.0.2\n    concurency: 3\n",
     ":4: origins.o2.concurency: unknown key (did you mean origins.o2.concurrency?)"},
    {"frontend.listen: 1.2.3.4:25\n", ":1: frontend.listen: write nested maps"},
    /* numbers, sizes, durations, ranges */
    {"origins:\n  default:\n    concurrency: abc\n",
     ":3: origins.default.concurrency: \"abc\" is not a number"},
    {"origins:\n  default:\n    concurrency: 0\n",
     ":3: origins.default.concurrency: 0 is out of range (1..1000)"},
    {"origins:\n  default:\n    concurrency: 1001\n",
     ":3: origins.default.concurrency: 1001 is out of range (1..1000)"},
    {"origins:\n  default:\n    concurrency: -1\n",
     ":3: origins.default.concurrency: \"-1\" is not a number"},
    {"frontend:\n  recipient_limit: 10k\n",
     ":2: frontend.recipient_limit: \"10k\" is not a number"},
    {"frontend:\n  max_message_size: 10x\n",
     ":2: frontend.max_message_size: \"10x\" is not a size"},
    {"frontend:\n  max_message_size: 10MB\n",
     ":2: frontend.max_message_size: \"10MB\" is not a size"},
    {"frontend:\n  max_message_size: 99999999999999999999G\n",
     ":2: frontend.max_message_size: \"99999999999999999999G\" is too large"},
    {"frontend:\n  max_message_size: 0\n", ":2: frontend.max_message_size: 0 is out of range"},
    {"frontend:\n  timeout: 5w\n", ":2: frontend.timeout: \"5w\" is not a duration"},
    {"frontend:\n  timeout: 5d\n", ":2: frontend.timeout: 5d is out of range (1..86400)"},
    {"dedup:\n  on_unavailable: maybe\n", ":2: dedup.on_unavailable: \"maybe\" is not one of: deliver, tempfail"},
    {"reinject:\n  timeout: ''\n", ":2: reinject.timeout: \"\" is not a duration"},
    {"workers:\n  count: 3.5\n", ":2: workers.count: \"3.5\" is not a number"},
    /* the Postfix cross-check */
    {"job:\n  timeout: 1200\n", ":2: job.timeout: 1200 (1200 s) must be less than 1200 s: "
                                "Postfix's lmtp_data_done_timeout"},
    {"job:\n  timeout: 20m\n", ":2: job.timeout: 20m (1200 s) must be less than 1200 s"},
    /* addresses */
    {"frontend:\n  listen: foo\n", ":2: frontend.listen: expected host:port"},
    {"frontend:\n  listen: 127.0.0.1:0\n", ":2: frontend.listen: expected host:port"},
    /* "" is off only for a key whose default is "" */
    {"frontend:\n  listen: \"\"\n", ":2: frontend.listen: expected host:port"},
    {"metrics:\n  listen: 9100\n", ":2: metrics.listen: expected host:port"},
    {"frontend:\n  acl: 127.0.0.0/8, 10.0.0.0/33\n",
     ":2: frontend.acl: \"10.0.0.0/33\": prefix length must be 0..32"},
    {"frontend:\n  acl:\n    - 127.0.0.0/8\n    - nonsense\n",
     ":4: frontend.acl: \"nonsense\": not an IPv4 or IPv6 address"},
    {"frontend:\n  acl:\n    - [127.0.0.1]\n",
     ":3: frontend.acl: list items must be single values, not a list"},
    {"frontend:\n  hostname: \"bad name\"\n",
     ":2: frontend.hostname: \"bad name\" is not a valid host name"},
    {"broker:\n  listen: 127.0.0.1:5555\n",
     ":2: broker.listen: \"127.0.0.1:5555\" is not a ZeroMQ"},
    {"broker:\n  endpoints: [tcp://a:1, tcp://b]\n",
     ":2: broker.endpoints: \"tcp://b\" is not a ZeroMQ endpoint"},
    {"broker:\n  endpoints: []\n", ":2: broker.endpoints: needs at least one endpoint"},
    {"redis:\n  url: http://x\n", ":2: redis.url: \"http://x\" is not a Redis URL"},
    {"origins:\n  o2:\n    match: 127.0.0.2\n    reinject: client:0\n",
     ":4: origins.o2.reinject: expected client:PORT"},
    {"origins:\n  o2:\n    match: 127.0.0.2\n    reinject: nohost\n",
     ":4: origins.o2.reinject: expected client:PORT"},
    /* enums */
    {"log:\n  target: file\n", ":2: log.target: \"file\" is not one of: stderr, syslog"},
    {"log:\n  level: verbose\n", ":2: log.level: \"verbose\" is not one of: emerg, alert, crit, "
                                 "err, warning, notice, info, debug"},
    /* origins */
    {"origins:\n  o2:\n    concurrency: 3\n",
     ":2: origins.o2.match: required: an origin other than default"},
    {"origins:\n  o2:\n", ":2: origins.o2.match: required"},
    {"origins:\n  default:\n    match: 127.0.0.1\n", ":3: origins.default.match: the default "
                                                     "origin takes every client"},
    {"origins:\n  \"o 2\":\n    match: 127.0.0.2\n", ":2: origins.o 2: origin names are"},
    {"origins:\n  o.2:\n    match: 127.0.0.2\n", ":2: origins.o.2: origin names are"},
    /* structure */
    {"frontend:\n  listen: a:1\n  listen: b:2\n",
     ":3: frontend.listen: duplicate key (first at line 2)"},
    {"log:\n  level: info\nfrontend: {}\nlog:\n  target: syslog\n",
     ":4: log: duplicate key (first at line 1)"},
    {"origins:\n  o2: {match: 127.0.0.2}\n  o2: {match: 127.0.0.3}\n",
     ":3: origins.o2: duplicate key (first at line 2)"},
    {"frontend: 5\n", ":1: frontend: expected a map of keys, not a value"},
    {"frontend:\n  - listen\n", ":1: frontend: expected a map of keys, not a list"},
    {"origins: default\n", ":1: origins: expected a map of keys, not a value"},
    {"origins:\n  o2: 127.0.0.2\n", ":2: origins.o2: expected a map of keys, not a value"},
    {"frontend:\n  listen:\n    host: 127.0.0.1\n",
     ":2: frontend.listen: expected a single value, not a map"},
    {"log:\n  level: [info, debug]\n", ":2: log.level: expected a single value, not a list"},
    {"- frontend\n", ":1: expected a map of sections"},
    {"just text\n", ":1: expected a map of sections"},
    {"frontend:\n  ? [a, b]\n  : c\n", ":2: frontend: keys must be plain names, not a list"},
    {"frontend: {}\n---\nlog: {}\n", ":2: only one YAML document is allowed"},
    /* YAML syntax: libyaml's problem with line and column */
    {"frontend:\n  listen: [\n", ":3:1: YAML syntax error: did not find expected node content"},
    {"frontend:\n  listen: a:1\n   bad: x\n",
     ":3:7: YAML syntax error: mapping values are not allowed in this context"},
    {"frontend:\n\tlisten: a:1\n",
     ":2:1: YAML syntax error: found character that cannot start any token"},
    {"log:\n  level: \"info\n", ":3:1: YAML syntax error: found unexpected end of stream "
                                "(while scanning a quoted scalar at line 2)"},
    {"log:\n  level: info\n  bad: \xff\n", ":3: cannot read the file: invalid leading UTF-8"},
};

/* Cross-key checks of the ledger and Sentinel keys, and the masking. */
static void
test_dedup_keys(void **state)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        /* found after loading, but named at the line to fix */
        {"dedup:\n  enabled: yes\n", ":2: dedup.enabled: yes needs redis.url"},
        {"redis:\n  url: redis://r\n  sentinels: [10.0.0.1:26379]\n",
         ":3: redis.master_name: required with redis.sentinels"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *error = NULL;
        struct sl_config *c = load_text(cases[i].yaml, NULL, 0, &error, NULL);
        assert_null(c);
        assert_non_null(strstr(error, cases[i].want));
        free(error);
    }
    struct sl_config *c = load_ok("redis:\n  url: redis://r:1\n", NULL, 0);
    assert_true(sl_config_dedup_on(c));     /* auto: on with Redis */
    assert_int_equal(c->dedup.ttl_s, 6 * 86400);
    assert_string_equal(c->dedup.on_unavailable, "deliver");
    sl_config_destroy(&c);
    c = load_ok("log:\n  level: info\n", NULL, 0);
    assert_false(sl_config_dedup_on(c));    /* no Redis: the single-node default */
    sl_config_destroy(&c);

    char *m = sl_config_redis_url_masked("redis://app:s3cret@h:6379/1");
    assert_string_equal(m, "redis://app:***@h:6379/1");
    free(m);
    m = sl_config_redis_url_masked("redis://h:6379");
    assert_string_equal(m, "redis://h:6379");
    free(m);
}

static void
test_errors(void **state)
{
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        const struct error_case *e = &error_cases[i];
        char *error = NULL, *path = NULL;
        struct sl_config *c = load_text(e->yaml, NULL, 0, &error, &path);
        char *want = sl_asprintf("%s%s", path, e->expect);

        if (c != NULL)
            fail_msg("case %zu loaded: %s", i, e->yaml);
        assert_non_null(error);
        if (strncmp(error, want, strlen(want)) != 0)
            fail_msg("case %zu:\n  got  %s\n  want %s...", i, error, want);
        free(want);
        free(error);
        free(path);
    }
}

static void
test_open_errors(void **state)
{
    char *error = NULL;
    char *want;
    struct sl_config *c;

    c = sl_config_load("/nonexistent/sluice.yaml", NULL, 0, &error);
    assert_null(c);
    want = sl_asprintf("/nonexistent/sluice.yaml: cannot open: %s", strerror(ENOENT));
    assert_string_equal(error, want);
    free(want);
    free(error);

    c = sl_config_load("/tmp", NULL, 0, &error);
    assert_null(c);
    want = sl_asprintf("/tmp: cannot open: %s", strerror(EISDIR));
    assert_string_equal(error, want);
    free(want);
    free(error);
}

/* ---- overrides -------------------------------------------------------- */

static void
test_overrides(void **state)
{
    char *ov[] = {
        "origins.default.concurrency=10",
        "origins.o2.match=127.0.0.2",
        "frontend.acl=127.0.0.0/8,::1",
        "frontend.listen=[::1]:10024",
        "workers.count=3",
        "workers.count=4", /* later wins, as with postconf -o */
        "broker.endpoints=tcp://a:1 tcp://b:2",
        "frontend.hostname=",
        "metrics.listen=[::1]:9100",
    };
    struct sl_config *c = load_ok("workers:\n  count: 1\nfrontend:\n  hostname: x.example\n", ov,
                                  sizeof(ov) / sizeof(ov[0]));
    const struct sl_origin_config *o2;

    assert_int_equal(origin(c, "default")->concurrency, 10);
    o2 = origin(c, "o2");
    assert_non_null(o2);
    assert_string_equal(o2->match_text, "127.0.0.2");
    assert_int_equal(o2->concurrency, 2); /* the origin defaults */
    assert_true(o2->reinject_to_client);
    assert_int_equal(o2->reinject_port, 10025);
    assert_ptr_equal(sl_config_origin_for(c, "127.0.0.2"), o2);
    assert_int_equal(c->frontend.acl.n, 2);
    assert_string_equal(c->frontend.acl_text, "127.0.0.0/8,::1");
    assert_string_equal(c->frontend.listen, "[::1]:10024");
    assert_int_equal(c->workers.count, 4);
    assert_int_equal(c->broker.n_endpoints, 2);
    assert_string_equal(c->broker.endpoints[1], "tcp://b:2");
    assert_string_equal(c->frontend.hostname, "");
    assert_string_equal(c->metrics.listen, "[::1]:9100");
    sl_config_destroy(&c);
}

struct override_error {
    const char *ov;
    const char *expect; /* the whole message must start with this */
};

static const struct override_error override_errors[] = {
    {"frontend.listen=foo", "-o frontend.listen=foo: frontend.listen: expected host:port"},
    {"frontend.listne=1",
     "-o frontend.listne=1: frontend.listne: unknown key (did you mean frontend.listen?)"},
    {"frontend", "-o frontend: expected key=value"},
    {"=1", "-o =1: expected key=value"},
    {"frontend=1", "-o frontend=1: frontend: is a section"},
    {"origins.o3=1", "-o origins.o3=1: origins.o3: is a section"},
    {"origins.default.concurrency=x",
     "-o origins.default.concurrency=x: origins.default.concurrency: \"x\" is not a number"},
    {"origins.o3.concurrency=4", "-o origins.o3.concurrency=4: origins.o3.match: required"},
    {"origins.o3.mtch=4",
     "-o origins.o3.mtch=4: origins.o3.mtch: unknown key (did you mean origins.o3.match?)"},
    {"origins.o 3.match=1.2.3.4", "-o origins.o 3.match=1.2.3.4: origins.o 3: origin names"},
    {"origins.a.b.c=1", "-o origins.a.b.c=1: origins.a.b.c: unknown key"},
    {"job.timeout=1h", "-o job.timeout=1h: job.timeout: 1h (3600 s) must be less than 1200"},
    {"frontend.acl=::1/200", "-o frontend.acl=::1/200: frontend.acl: \"::1/200\": prefix"},
    /* found by fuzz_config: a check after loading said "(after loading)" */
    {"redis.sentinels=127.0.0.1:26379",
     "-o redis.sentinels=127.0.0.1:26379: redis.master_name: required with redis.sentinels"},
    /* found by fuzz_config: accepted, then printed as a file that did not load */
    {"policy.mynetworks_bank=x\xc7\xc7", "-o policy.mynetworks_bank=x\xc7\xc7: not valid UTF-8"},
    {"frontend.hostname=\xed\xa0\x80", "-o frontend.hostname=\xed\xa0\x80: not valid UTF-8"},
    {"lookup.ldap.uri=ldap://127.0.0.1", "-o lookup.ldap.uri=ldap://127.0.0.1: lookup.ldap.base: "
                                         "LDAP lookups need a search base"},
    {"lookup.sql=host=db password=x", "-o lookup.sql=host=db password=x: lookup.sql: holds a password"},
    {"lookup.sql=postgresql://u:pw@db/x",
     "-o lookup.sql=postgresql://u:pw@db/x: lookup.sql: holds a password"},
    {"lookup.ldap.bind_password=secret",
     "-o lookup.ldap.bind_password=secret: lookup.ldap.bind_password: expected env:NAME"},
};

static void
test_override_errors(void **state)
{
    for (size_t i = 0; i < sizeof(override_errors) / sizeof(override_errors[0]); i++) {
        const struct override_error *e = &override_errors[i];
        char *ov[] = {(char *)e->ov};
        char *error = NULL;
        struct sl_config *c = load_text("", ov, 1, &error, NULL);

        if (c != NULL)
            fail_msg("-o %s was accepted", e->ov);
        if (strncmp(error, e->expect, strlen(e->expect)) != 0)
            fail_msg("-o %s:\n  got  %s\n  want %s...", e->ov, error, e->expect);
        free(error);
    }
}

/* An origin created by the file can be completed by -o, and the file's
 * error for a missing match is then gone. */
static void
test_override_completes_origin(void **state)
{
    char *ov[] = {"origins.o2.match=127.0.0.2"};
    struct sl_config *c = load_ok("origins:\n  o2:\n    concurrency: 5\n", ov, 1);

    assert_int_equal(origin(c, "o2")->concurrency, 5);
    assert_int_equal(origin(c, "o2")->match.n, 1);
    sl_config_destroy(&c);
}

/* ---- printing --------------------------------------------------------- */

/* print -> load -> print must give the same configuration and the same
 * text (apart from the first comment line, which names the file). */
static void
round_trip(const struct sl_config *c, bool only_changed)
{
    char *text = print_to_string(c, only_changed);
    struct sl_config *back = load_ok(text, NULL, 0);
    char *again = print_to_string(back, only_changed);

    assert_config_equal(c, back);
    assert_string_equal(strchr(text, '\n'), strchr(again, '\n'));
    sl_config_destroy(&back);
    free(text);
    free(again);
}

static void
test_round_trip(void **state)
{
    char *ov[] = {
        "redis.url=redis://:p\"a\\ss\tw@127.0.0.1:6379/2", /* quote, backslash, tab */
        "broker.endpoints=ipc:///run/sluice/b#1,tcp://[::1]:5555",
        "origins.yes.match=127.0.0.9", /* YAML 1.1 would call it true */
        "origins.123.match=::1",
        /* a C1 control and U+FFFE (YAML's reader refuses them raw), NEL and
         * LS (YAML folds them as line breaks): printed escaped (fuzz_config) */
        "policy.spam_subject_tag=a\xc2\x90" "b\xc2\x85" "c\xef\xbf\xbe" "d\xe2\x80\xa8" "e\xc3\xa9",
    };
    struct sl_config *c = load_ok(full_yaml, ov, sizeof(ov) / sizeof(ov[0]));
    char *text = print_to_string(c, true);
    assert_non_null(strstr(text, "spam_subject_tag: \"a\\u0090b\\u0085c\\ufffed\\u2028e\xc3\xa9\""));
    free(text);
    round_trip(c, false);
    round_trip(c, true);
    sl_config_destroy(&c);

    c = load_ok("", NULL, 0);
    round_trip(c, false);
    round_trip(c, true);
    sl_config_destroy(&c);
}

/* sl_config_load_buffer reads the same bytes as sl_config_load would read
 * from a file, names the buffer in errors, and keeps reading past a NUL. */
static void
test_load_buffer(void **state)
{
    char *error = NULL;
    struct sl_config *from_file = load_ok(full_yaml, NULL, 0);
    struct sl_config *c =
        sl_config_load_buffer("mem.yaml", full_yaml, strlen(full_yaml), NULL, 0, &error);

    assert_non_null(c);
    assert_null(error);
    assert_config_equal(from_file, c);
    assert_string_equal(c->path, "mem.yaml");
    sl_config_destroy(&c);
    sl_config_destroy(&from_file);

    c = sl_config_load_buffer("mem.yaml", NULL, 0, NULL, 0, &error);
    assert_non_null(c);
    assert_defaults(c);
    sl_config_destroy(&c);

    static const char bad[] = "frontend:\n  listen: 127.0.0.1:10024\n  listne: x\n";
    c = sl_config_load_buffer("mem.yaml", bad, strlen(bad), NULL, 0, &error);
    assert_null(c);
    assert_string_equal(error, "mem.yaml:3: frontend.listne: unknown key (did you mean "
                               "frontend.listen?)");
    free(error);

    static const char nul[] = "frontend:\n  hostname: a\0b\n";
    c = sl_config_load_buffer("mem.yaml", nul, sizeof(nul) - 1, NULL, 0, &error);
    assert_null(c);
    assert_non_null(strstr(error, "mem.yaml:2: cannot read the file"));
    free(error);

    char *ov[] = {"frontend.recipient_limit=7"};
    c = sl_config_load_buffer("mem.yaml", "", 0, ov, 1, &error);
    assert_non_null(c);
    assert_int_equal(c->frontend.recipient_limit, 7);
    sl_config_destroy(&c);
}

static void
test_print_only_changed(void **state)
{
    struct sl_config *c = load_ok("", NULL, 0);
    char *text = print_to_string(c, true);

    /* Nothing but the comment line. */
    assert_non_null(strchr(text, '\n'));
    assert_string_equal(strchr(text, '\n'), "\n");
    assert_int_equal(text[0], '#');
    free(text);
    sl_config_destroy(&c);

    char *ov[] = {"frontend.timeout=60", "origins.default.concurrency=10",
                  "origins.o2.match=127.0.0.2", "frontend.acl=127.0.0.0/8 ::1"};
    c = load_ok("", ov, sizeof(ov) / sizeof(ov[0]));
    text = print_to_string(c, true);
    const char *body = strchr(text, '\n') + 1;
    assert_string_equal(body, "frontend:\n"
                              "  timeout: 1m\n"
                              "origins:\n"
                              "  default:\n"
                              "    concurrency: 10\n"
                              "  o2:\n"
                              "    match: \"127.0.0.2\"\n");
    free(text);

    /* The full print has every key. */
    text = print_to_string(c, false);
    assert_non_null(strstr(text, "  listen: \"127.0.0.1:10024\"\n"));
    assert_non_null(strstr(text, "  acl: \"127.0.0.0/8 ::1\"\n"));
    assert_non_null(strstr(text, "  max_message_size: 50M\n"));
    assert_non_null(strstr(text, "  ttl: 6d\n"));
    assert_non_null(strstr(text, "  pending_timeout: 15m\n"));
    assert_non_null(strstr(text, "  ident: \"sluice\"\n"));
    assert_non_null(strstr(text, "  endpoints: [\"inproc://sluice-broker\"]\n"));
    assert_non_null(strstr(text, "  o2:\n    match: \"127.0.0.2\"\n    reinject: \"client:10025\"\n"
                                 "    concurrency: 2\n"));
    free(text);
    sl_config_destroy(&c);
}

/* Sizes and durations in the largest unit that holds them exactly, as an
 * operator writes them; each loads back to the same number. */
static void
test_print_units(void **state)
{
    static const struct {
        const char *ov, *printed;
    } cases[] = {
        {"frontend.max_message_size=52428800", "  max_message_size: 50M\n"},
        {"frontend.max_message_size=50M", "  max_message_size: 50M\n"},
        {"frontend.max_message_size=1g", "  max_message_size: 1G\n"},
        {"frontend.max_message_size=1536k", "  max_message_size: 1536k\n"},
        {"frontend.max_message_size=1000", "  max_message_size: 1000\n"},
        {"scanners.spamd.max_size=0", "    max_size: 0\n"},
        {"dedup.ttl=518400", "  ttl: 6d\n"},
        {"dedup.ttl=25h", "  ttl: 25h\n"},
        {"job.timeout=480", "  timeout: 8m\n"},
        {"job.timeout=45", "  timeout: 45s\n"},
        {"reinject.timeout=3601", "  timeout: 3601s\n"},
        {"reinject.timeout=1h", "  timeout: 1h\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *ov[] = {(char *)cases[i].ov};
        struct sl_config *c = load_ok("", ov, 1);
        char *text = print_to_string(c, false);
        if (strstr(text, cases[i].printed) == NULL)
            fail_msg("%s: expected \"%s\" in:\n%s", cases[i].ov, cases[i].printed, text);
        free(text);
        round_trip(c, false);
        round_trip(c, true);
        sl_config_destroy(&c);
    }
}

/* redis.url: a reference is kept and printed as written and resolved only
 * where it is used; a password written into the file is printed as a
 * reference to SLUICE_REDIS_URL, never as itself nor as "***". */
static void
test_secret_references(void **state)
{
    char *value = NULL, *error = NULL;
    char *ov[] = {"redis.url=redis://app:s3cret@127.0.0.1:6379/1"};
    struct sl_config *c = load_ok("", ov, 1);
    char *text = print_to_string(c, true);

    assert_null(strstr(text, "s3cret"));
    assert_null(strstr(text, "***"));
    assert_non_null(strstr(text, "  url: \"env:SLUICE_REDIS_URL\"\n"));
    /* the printed file loads; with the variable set it means the same URL */
    struct sl_config *back = load_ok(text, NULL, 0);
    assert_string_equal(back->redis.url, "env:SLUICE_REDIS_URL");
    setenv("SLUICE_REDIS_URL", c->redis.url, 1);
    assert_int_equal(sl_config_secret(back->redis.url, &value, &error), 0);
    assert_string_equal(value, c->redis.url);
    free(value);
    unsetenv("SLUICE_REDIS_URL");
    assert_int_equal(sl_config_secret(back->redis.url, &value, &error), -1);
    assert_null(value);
    assert_string_equal(error, "env:SLUICE_REDIS_URL: the environment variable SLUICE_REDIS_URL "
                               "is not set");
    free(error);
    sl_config_destroy(&back);
    sl_config_destroy(&c);
    free(text);

    /* file: the first line, without its end */
    char *path = write_temp("redis://:pw@10.0.0.1:6380/3\nsecond line\n", 38);
    char *ref = sl_asprintf("redis.url=file:%s", path);
    char *ov2[] = {ref};
    c = load_ok("", ov2, 1);
    text = print_to_string(c, true);
    char *want = sl_asprintf("  url: \"file:%s\"\n", path);
    assert_non_null(strstr(text, want));
    assert_int_equal(sl_config_secret(c->redis.url, &value, &error), 0);
    assert_string_equal(value, "redis://:pw@10.0.0.1:6380/3");
    free(value);
    round_trip(c, false);
    unlink(path);
    assert_int_equal(sl_config_secret(c->redis.url, &value, &error), -1);
    assert_non_null(strstr(error, ": cannot open: "));
    assert_null(strstr(error, "pw"));
    free(error);
    sl_config_destroy(&c);
    free(want);
    free(text);
    free(ref);
    free(path);

    /* not a regular file: never read (a FIFO would block) */
    assert_int_equal(sl_config_secret("file:/dev/null", &value, &error), -1);
    assert_string_equal(error, "file:/dev/null: not a regular file");
    free(error);
    /* a value that is no reference is itself */
    assert_int_equal(sl_config_secret("redis://h:1", &value, &error), 0);
    assert_string_equal(value, "redis://h:1");
    free(value);

    /* the syntax is checked at load time */
    char *bad[] = {"redis.url=env:1X", "redis.url=file:relative"};
    for (size_t i = 0; i < 2; i++) {
        c = load_text("", &bad[i], 1, &error, NULL);
        assert_null(c);
        assert_non_null(strstr(error, "is not a Redis URL"));
        free(error);
    }
}

static void
test_log_ident(void **state)
{
    char *error = NULL;
    struct sl_config *c = load_ok("log:\n  ident: amavis\n", NULL, 0);

    assert_string_equal(c->log.ident, "amavis");
    sl_config_destroy(&c);
    c = load_text("log:\n  ident: \"a b\"\n", NULL, 0, &error, NULL);
    assert_null(c);
    assert_non_null(strstr(error, ":2: log.ident: \"a b\" is not a program name"));
    free(error);
    char *ov[] = {"log.ident="};
    c = load_text("", ov, 1, &error, NULL);
    assert_null(c);
    free(error);
}

/* ---- reloading -------------------------------------------------------- */

#define REF_THREADS 4
#define REF_ROUNDS 100000

static void *
ref_worker(void *arg)
{
    struct sl_config *c = arg;

    for (int i = 0; i < REF_ROUNDS; i++) {
        struct sl_config *mine = sl_config_ref(c);
        assert_int_equal(mine->frontend.recipient_limit, 7);
        sl_config_unref(&mine);
        assert_null(mine);
    }
    return NULL;
}

/* References from several threads at once (the worker threads of `sluice
 * all` take one per job); the last unref frees (LeakSanitizer and ASan in
 * the sanitizer build tell a miscount). */
static void
test_refcount(void **state)
{
    char *ov[] = {"frontend.recipient_limit=7"};
    struct sl_config *c = load_ok("", ov, 1);
    pthread_t t[REF_THREADS];

    for (int i = 0; i < REF_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ref_worker, c), 0);
    for (int i = 0; i < REF_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&c->refs), 1);
    struct sl_config *other = sl_config_ref(c);
    assert_ptr_equal(other, c);
    sl_config_unref(&c);
    assert_null(c);
    assert_int_equal(other->frontend.recipient_limit, 7); /* still there */
    sl_config_unref(&other);
    sl_config_unref(&other); /* NULL: nothing */
}

struct keys {
    char *v[32];
    size_t n;
};

static void
collect_key(void *ctx, const char *key)
{
    struct keys *k = ctx;
    assert_true(k->n < 32);
    k->v[k->n++] = sl_strdup(key);
}

static char *
keys_join(struct keys *k)
{
    char *s = sl_strdup("");
    for (size_t i = 0; i < k->n; i++) {
        char *t = sl_asprintf("%s%s%s", s, i ? " " : "", k->v[i]);
        free(s);
        s = t;
        free(k->v[i]);
    }
    k->n = 0;
    return s;
}

static const char reload_before[] = "frontend:\n  listen: 127.0.0.1:10024\n"
                                    "policy:\n  spam_kill_level: 6.31\n"
                                    "origins:\n  o2:\n    match: 127.0.0.2\n"
                                    "  o3:\n    match: 127.0.0.3\n"
                                    "policy_banks:\n  B:\n    spam_kill_level: 5\n";

static void
test_reload_diff(void **state)
{
    struct sl_config *a = load_ok(reload_before, NULL, 0);
    struct sl_config *b = load_ok(reload_before, NULL, 0);
    struct keys k = {0};
    char *s;

    sl_config_diff(a, b, collect_key, &k);
    assert_int_equal(k.n, 0);
    sl_config_destroy(&b);
    b = load_ok("frontend:\n  listen: 127.0.0.1:10026\n"
                "policy:\n  spam_kill_level: 3\n"
                "scanners:\n  spamd:\n    servers: 127.0.0.1:783\n"
                "origins:\n  o2:\n    match: 127.0.0.2\n    concurrency: 5\n"
                "  o4:\n    match: 127.0.0.4\n"
                "policy_banks:\n  B:\n    spam_kill_level: 5\n  C: {}\n",
                NULL, 0);
    sl_config_diff(a, b, collect_key, &k);
    s = keys_join(&k);
    assert_string_equal(s, "frontend.listen scanners.spamd.servers policy.spam_kill_level "
                           "origins.o2 origins.o3 origins.o4 policy_banks.C");
    free(s);

    assert_true(sl_config_key_needs_restart("frontend.listen"));
    assert_true(sl_config_key_needs_restart("security.allow_dir"));
    assert_true(sl_config_key_needs_restart("redis.url"));
    assert_false(sl_config_key_needs_restart("frontend.acl"));
    assert_false(sl_config_key_needs_restart("policy.spam_kill_level"));
    assert_false(sl_config_key_needs_restart("origins.o2"));
    assert_false(sl_config_key_needs_restart("log.ident"));

    s = sl_config_value_text(b, "policy.spam_kill_level");
    assert_string_equal(s, "3");
    free(s);
    s = sl_config_value_text(b, "frontend.max_message_size");
    assert_string_equal(s, "50M");
    free(s);
    assert_null(sl_config_value_text(b, "origins.o2"));
    sl_config_destroy(&b);
    char *ov[] = {"redis.url=redis://:s3cret@h:1"};
    b = load_ok("", ov, 1);
    s = sl_config_value_text(b, "redis.url");
    assert_string_equal(s, "redis://:***@h:1");
    free(s);
    sl_config_destroy(&b);
    sl_config_destroy(&a);
}

/* What only a restart changes keeps its running value in the new
 * configuration (and the keys resolved at start); the rest is the file's. */
static void
test_reload_keep_restart_keys(void **state)
{
    char *ov_a[] = {"security.allow_dir=/etc/a", "broker.endpoints=tcp://b1:5555, tcp://b2:5555"};
    struct sl_config *a = load_ok(reload_before, ov_a, 2);
    char *ov_b[] = {"security.allow_dir=/etc/b", "broker.endpoints=tcp://b3:5555",
                    "frontend.max_message_size=10M", "frontend.acl=10.0.0.0/8"};
    struct sl_config *b = load_ok("frontend:\n  listen: 127.0.0.1:10026\n"
                                  "policy:\n  spam_kill_level: 3\n",
                                  ov_b, 4);

    a->security.curve = true;
    memcpy(a->security.secret_key, "0123456789012345678901234567890123456789", 41);
    assert_int_equal(sl_config_keep_restart_keys(b, a), 4);
    assert_string_equal(b->frontend.listen, "127.0.0.1:10024");
    assert_string_equal(b->security.allow_dir, "/etc/a");
    assert_int_equal(b->broker.n_endpoints, 2);
    assert_string_equal(b->broker.endpoints[1], "tcp://b2:5555");
    assert_int_equal(b->frontend.max_message_size, 52428800);
    assert_true(b->security.curve);
    assert_string_equal(b->security.secret_key, a->security.secret_key);
    /* reloadable: the new file's */
    assert_true(b->policy.spam_kill_level == 3);
    assert_string_equal(b->frontend.acl_text, "10.0.0.0/8");
    assert_int_equal(b->n_origins, 1);
    /* copies, not shared: a goes away, b stays whole (ASan) */
    sl_config_destroy(&a);
    assert_string_equal(b->frontend.listen, "127.0.0.1:10024");
    assert_string_equal(b->broker.endpoints[0], "tcp://b1:5555");
    struct sl_config *c = load_ok("", NULL, 0);
    assert_int_equal(sl_config_keep_restart_keys(c, b), 2); /* allow_dir, endpoints */
    sl_config_destroy(&c);
    sl_config_destroy(&b);
}

/* ---- origin matching -------------------------------------------------- */

static void
test_origin_for(void **state)
{
    /* o3 comes first in the file and overlaps o2: file order decides. */
    struct sl_config *c = load_ok("origins:\n"
                                  "  o3:\n    match: 127.0.0.0/29, 10.0.0.0/8\n"
                                  "  default:\n    concurrency: 3\n"
                                  "  o2:\n    match: 127.0.0.2, 127.0.0.10, 2001:db8::/32\n",
                                  NULL, 0);
    const struct sl_origin_config *def = origin(c, "default");

    assert_string_equal(sl_config_origin_for(c, "127.0.0.2")->name, "o3");
    assert_string_equal(sl_config_origin_for(c, "10.1.1.1")->name, "o3");
    assert_string_equal(sl_config_origin_for(c, "::ffff:127.0.0.2")->name, "o3");
    assert_string_equal(sl_config_origin_for(c, "127.0.0.10")->name, "o2");
    assert_string_equal(sl_config_origin_for(c, "::ffff:127.0.0.10")->name, "o2");
    assert_string_equal(sl_config_origin_for(c, "2001:db8::1")->name, "o2");
    assert_ptr_equal(sl_config_origin_for(c, "127.0.0.11"), def);
    assert_ptr_equal(sl_config_origin_for(c, "::1"), def);
    assert_ptr_equal(sl_config_origin_for(c, "garbage"), def);
    assert_ptr_equal(sl_config_origin_for(c, NULL), def);
    assert_int_equal(def->concurrency, 3);
    sl_config_destroy(&c);
}

/* ---- scanning and policy ---------------------------------------------- */

static void
test_scanning_keys(void **state)
{
    (void)state;
    /* defaults: every scanner off, Debian amavis destinies and levels */
    struct sl_config *c = load_ok("", NULL, 0);
    assert_int_equal(c->scanners.clamd.n_servers, 0);
    assert_int_equal(c->scanners.spamd.n_servers, 0);
    assert_int_equal(c->scanners.rspamd.n_servers, 0);
    assert_int_equal(c->scanners.clamd.max_size, 25 * 1024 * 1024);
    assert_string_equal(c->scanners.clamd.on_failure, "unchecked");
    assert_string_equal(c->policy.final_virus_destiny, "discard");
    assert_string_equal(c->policy.final_banned_destiny, "discard");
    assert_string_equal(c->policy.final_spam_destiny, "pass");
    assert_string_equal(c->policy.final_bad_header_destiny, "pass");
    assert_string_equal(c->policy.final_unchecked_destiny, "tempfail");
    assert_true(c->policy.spam_tag_level == 2.0);
    assert_true(c->policy.spam_tag2_level == 6.31);
    assert_true(c->policy.spam_kill_level == 6.31);
    assert_string_equal(c->policy.spam_subject_tag, "***SPAM*** ");
    assert_int_equal(c->n_banks, 0);
    sl_config_destroy(&c);

    /* the fixed names work with -o too */
    char *ov[] = { "scanners.clamd.servers=unix:/run/clamav/clamd.ctl",
                   "scanners.spamd.servers=127.0.0.1:783, [::1]:784",
                   "policy.spam_kill_level=-3.5", "policy_banks.ORIGINATING.originating=yes",
                   "policy_banks.ORIGINATING.spam_kill_level=10" };
    c = load_ok("", ov, 5);
    assert_int_equal(c->scanners.clamd.n_servers, 1);
    assert_string_equal(c->scanners.clamd.servers[0], "unix:/run/clamav/clamd.ctl");
    assert_int_equal(c->scanners.spamd.n_servers, 2);
    assert_string_equal(c->scanners.spamd.servers[1], "[::1]:784");
    assert_true(c->policy.spam_kill_level == -3.5);
    const struct sl_policy_bank *b = bank(c, "ORIGINATING");
    assert_non_null(b);
    assert_true(b->p.originating);
    /* a bank applies only what it sets */
    struct sl_policy_config view = c->policy;
    sl_config_bank_copy_set(&view, b);
    assert_true(view.spam_kill_level == 10);
    assert_true(view.originating);
    assert_string_equal(view.final_virus_destiny, "discard");
    round_trip(c, false);
    round_trip(c, true);
    sl_config_destroy(&c);

    /* the same nested in the file, lists as YAML lists */
    c = load_ok("scanners:\n"
                "  clamd:\n"
                "    servers: [\"unix:/run/clamav/clamd.ctl\", 127.0.0.1:3310]\n"
                "    timeout: 2m\n"
                "  rspamd:\n"
                "    servers:\n"
                "      - 127.0.0.1:11333\n"
                "policy:\n"
                "  final_spam_destiny: Reject\n"
                "  spam_kill_level_map: [boss@example.com=20, .example.org=4]\n"
                "  banned_names_re:\n"
                "    - '\\.(js|jse)$'\n"
                "    - '^application/x-(foo|bar)$'\n"
                "  mynetworks: [10.0.0.0/8, 192.168.0.0/16]\n"
                "policy_banks:\n"
                "  SUBMISSION:\n"
                "    match_listener: [10026]\n"
                "    bypass_spam_checks: yes\n"
                "  empty: {}\n",
                NULL, 0);
    assert_int_equal(c->scanners.clamd.n_servers, 2);
    assert_int_equal(c->scanners.clamd.timeout_s, 120);
    assert_string_equal(c->scanners.rspamd.servers[0], "127.0.0.1:11333");
    assert_string_equal(c->policy.final_spam_destiny, "reject");
    assert_int_equal(c->policy.n_spam_kill_level_map, 2);
    assert_int_equal(c->policy.n_banned_names_re, 2);
    assert_string_equal(c->policy.banned_names_re[0], "\\.(js|jse)$");
    assert_true(sl_cidr_list_match_text(&c->mynetworks, "10.1.2.3"));
    assert_int_equal(c->n_banks, 2);
    assert_string_equal(c->banks[0].match_listener[0], "10026");
    assert_true(c->banks[0].p.bypass_spam_checks);
    assert_int_equal(c->banks[1].set, 0);
    round_trip(c, false);
    round_trip(c, true);
    sl_config_destroy(&c);
}

static void
test_scanning_errors(void **state)
{
    static const struct {
        const char *ov;
        const char *expect;
    } cases[] = {
        { "scanners.clamd.servers=unix:relative", "is not a server (unix:/path or host:port)" },
        { "scanners.clamd.servers=localhost", "is not a server" },
        { "scanners.spamd.timeout=0", "out of range" },
        { "scanners.spamd.on_failure=ignore", "is not one of: unchecked, pass" },
        { "policy.final_virus_destiny=quarantine", "is not one of: pass, discard, bounce" },
        { "policy.spam_kill_level=lots", "is not a level" },
        { "policy.spam_kill_level=1e3", "is not a level" },
        { "policy.spam_kill_level_map=boss@example.com", "is not address=level" },
        { "policy.banned_names_re=(", "missing closing parenthesis" },
        { "policy.bypass_spam_checks=maybe", "is not yes or no" },
        { "policy.bad_header_tests=8bit, shouting", "\"shouting\" is not one of" },
        { "policy_banks.X.spam_kil_level=3", "did you mean policy_banks.X.spam_kill_level?" },
        { "policy_banks.X.match_listener=port", "is not a port number" },
        { "policy_banks.X.match_origin=nowhere", "no origin called \"nowhere\"" },
        { "policy_banks.b@d.originating=yes", "bank names are" },
        { "scanners.clamd=x", "is a section" },
        { "scanners.clamav.servers=unix:/x", "unknown key" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *error = NULL;
        char *ov[] = { (char *)cases[i].ov };
        struct sl_config *c = sl_config_load_buffer("t.yaml", "", 0, ov, 1, &error);
        if (c != NULL)
            fail_msg("%s: loaded", cases[i].ov);
        if (strstr(error, cases[i].expect) == NULL)
            fail_msg("%s: error \"%s\", want \"%s\"", cases[i].ov, error, cases[i].expect);
        free(error);
    }
    /* in the file: the line of the item */
    char *error = NULL;
    struct sl_config *c = load_text("scanners:\n  clamd:\n    servers:\n      - unix:/ok\n"
                                    "      - nope\n",
                                    NULL, 0, &error, NULL);
    assert_null(c);
    assert_non_null(strstr(error, "scanners.clamd.servers: \"nope\" is not a server"));
    free(error);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_no_file),
        cmocka_unit_test(test_empty_and_comment_only_files),
        cmocka_unit_test(test_env_sluice_config),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_dedup_keys),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_override_errors),
        cmocka_unit_test(test_override_completes_origin),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_load_buffer),
        cmocka_unit_test(test_print_only_changed),
        cmocka_unit_test(test_print_units),
        cmocka_unit_test(test_secret_references),
        cmocka_unit_test(test_log_ident),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_reload_diff),
        cmocka_unit_test(test_reload_keep_restart_keys),
        cmocka_unit_test(test_origin_for),
        cmocka_unit_test(test_scanning_keys),
        cmocka_unit_test(test_scanning_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
