/* test_ledger.c - the exactly-once ledger (frontend/ledger.h) and the
 * Redis connection settings it relies on (lib/net/sl_redis.h).
 *
 *   key:      the digest is BLAKE2b-256 over tagged, length-prefixed parts
 *             (checked against a vector computed independently with
 *             Python's hashlib), and changes with every part;
 *   entries:  the reserve script's answers parsed, hostile ones refused;
 *   url:      ACL user and password, the environment, masking in errors;
 *   redis:    against a real redis-server (skipped when it is not
 *             installed): reserve, in flight, done, release, take-over of
 *             a dead node's reservation, ACL AUTH, and a frozen Redis
 *             answered within redis.timeout. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "frontend/ledger.h"
#include "net/sl_redis.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

/* ---- key ---------------------------------------------------------------- */

static const char body[] = "Subject: x\r\n\r\nbody\r\n";

static void
key_of(const char *origin, const char *ident, const char *mid, const char *b, char *key)
{
    struct fe_ledger_message m = {origin, ident, mid, b, strlen(b)};
    fe_ledger_key(&m, key);
}

static void
test_key(void **state)
{
    char k[FE_LEDGER_KEY_LEN + 1], k2[FE_LEDGER_KEY_LEN + 1];
    (void)state;

    key_of("default", "4XyzQ1", "<m1@example.org>", body, k);
    /* python3: blake2b(digest_size=32) over b"sluice ledger v1" and the
     * parts, each as tag byte, 8-byte little-endian length, bytes */
    assert_string_equal(k, "sluice:ledger:"
                           "aa870cfaa1c6ff2d5c8d43e9f0c2320d3751d60fe28ba5aee23e6af22d7dad99");
    assert_int_equal(strlen(k), FE_LEDGER_KEY_LEN);

    key_of("default", "4XyzQ1", "<m1@example.org>", body, k2);
    assert_string_equal(k, k2); /* a retry: same name */
    key_of("other", "4XyzQ1", "<m1@example.org>", body, k2);
    assert_string_not_equal(k, k2);
    key_of("default", "4XyzQ2", "<m1@example.org>", body, k2);
    assert_string_not_equal(k, k2);
    key_of("default", "4XyzQ1", "<m2@example.org>", body, k2);
    assert_string_not_equal(k, k2);
    key_of("default", "4XyzQ1", "<m1@example.org>", "Subject: y\r\n\r\nbody\r\n", k2);
    assert_string_not_equal(k, k2);
    /* no shifting of bytes between parts */
    key_of("default", "ab", "c", body, k);
    key_of("default", "a", "bc", body, k2);
    assert_string_not_equal(k, k2);
    /* without XFORWARD: absent and empty are the same, and still a key */
    key_of("default", NULL, "<m1@example.org>", body, k);
    key_of("default", "", "<m1@example.org>", body, k2);
    assert_string_equal(k, k2);
    key_of("default", "4XyzQ1", "<m1@example.org>", body, k2);
    assert_string_not_equal(k, k2);
}

static void
test_message_id(void **state)
{
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"Subject: a\r\nMessage-ID: <x@y>\r\n\r\nMessage-ID: <body@z>\r\n", "<x@y>"},
        {"message-id:\t <x@y>  \r\nTo: b\r\n\r\n", "<x@y>"},
        {"Message-Id:\r\n <folded@y>\r\n\r\n", "<folded@y>"},
        {"Subject: a\r\n\r\nMessage-ID: <only-in-body@z>\r\n", NULL},
        {"X-Message-ID: <no@z>\r\n\r\n", NULL},
        {"", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        const char *v = fe_ledger_message_id(cases[i].body, strlen(cases[i].body), &len);
        if (cases[i].want == NULL) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        char *got = sl_strndup(v, len);
        if (strstr(cases[i].want, "folded") != NULL)
            assert_non_null(strstr(got, "<folded@y>")); /* raw bytes, fold kept */
        else
            assert_string_equal(got, cases[i].want);
        free(got);
    }
}

/* ---- entries ------------------------------------------------------------ */

static int
parse(const char *s, struct fe_ledger_entry *e)
{
    return fe_ledger_parse_entry(s, strlen(s), 100000, e);
}

static void
test_entries(void **state)
{
    struct fe_ledger_entry e;
    (void)state;

    assert_int_equal(parse("reserved", &e), 0);
    assert_int_equal(e.state, FE_LEDGER_RESERVED);
    fe_ledger_entry_clear(&e);

    assert_int_equal(parse("took:pending:frontend:mx1:4242:40000", &e), 0);
    assert_int_equal(e.state, FE_LEDGER_TAKEN);
    assert_string_equal(e.node, "frontend:mx1:4242");
    assert_int_equal(e.age_ms, 60000);
    fe_ledger_entry_clear(&e);

    assert_int_equal(parse("pending:frontend:mx2:7:99000", &e), 0);
    assert_int_equal(e.state, FE_LEDGER_IN_FLIGHT);
    assert_string_equal(e.node, "frontend:mx2:7");
    assert_int_equal(e.age_ms, 1000);
    fe_ledger_entry_clear(&e);

    /* a reservation dated after "now" (another clock? never: Redis' own) is age 0 */
    assert_int_equal(parse("pending:n:200000", &e), 0);
    assert_int_equal(e.age_ms, 0);
    fe_ledger_entry_clear(&e);

    assert_int_equal(parse("done:250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: "
                           "queued as 4Xyz (id=2Ss9GwNayojX)",
                           &e),
                     0);
    assert_int_equal(e.state, FE_LEDGER_DONE);
    assert_string_equal(e.reply, "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: "
                                 "queued as 4Xyz (id=2Ss9GwNayojX)");
    fe_ledger_entry_clear(&e);

    static const char *const bad[] = {
        "",           "reserve",         "done:",      "done:451 4.5.0 no", /* only 2xx is recorded */
        "pending:",   "pending:n",       "pending::5", "pending:n:",
        "pending:n:x", "pending:n:5x",  "took:",      "took:reserved",
        "pending:n:123456789012345678901234", "whatever",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &e) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* a NUL inside the reply (Redis strings are binary) */
    assert_int_equal(fe_ledger_parse_entry("done:250\0x", 10, 0, &e), -1);
}

/* ---- url ---------------------------------------------------------------- */

static void
test_url(void **state)
{
    struct sl_redis_url u;
    char *error = NULL;
    (void)state;

    assert_int_equal(sl_redis_url_parse("redis://sluice:p%40ss@r.example:6380/3", &u, &error), 0);
    assert_string_equal(u.user, "sluice");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "r.example");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    sl_redis_url_free(&u);

    assert_int_equal(sl_redis_url_parse("redis://:only@r", &u, &error), 0);
    assert_null(u.user);
    assert_string_equal(u.password, "only");
    sl_redis_url_free(&u);

    /* an error message never carries the password */
    assert_int_equal(sl_redis_url_parse("redis://u:topsecret@r:notaport", &u, &error), -1);
    assert_null(strstr(error, "topsecret"));
    assert_non_null(strstr(error, "bad port"));
    free(error);
}

/* ---- against a real redis-server ------------------------------------------ */

static pid_t redis_pid;
static unsigned redis_port;

static unsigned
free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static redisContext *
admin(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)redis_port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "AUTH admin adminpw");
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    return c;
}

static int
redis_setup(void **state)
{
    char port[16];
    (void)state;

    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        return 0; /* tests skip */
    redis_port = free_port();
    snprintf(port, sizeof(port), "%u", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        /* an ACL user for sluice and one for the test's own checks; the
         * default user is off: everything must authenticate */
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--user", "default", "off", "--user", "sluice", "on",
               ">sluicepw", "~sluice:*", "+@all", "--user", "admin", "on", ">adminpw", "~*",
               "+@all", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)redis_port, tv);
        bool up = c != NULL && c->err == 0;
        if (c != NULL)
            redisFree(c);
        if (up)
            return 0;
        usleep(50000);
    }
    return -1;
}

static int
redis_teardown(void **state)
{
    (void)state;
    if (redis_pid > 0) {
        kill(redis_pid, SIGCONT);
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    return 0;
}

struct waiter {
    struct event_base *base;
    bool answered;
    char *error;
    struct fe_ledger_entry e[4];
    size_t n;
    char *mine;
};

static void
on_reserved(void *ctx, const struct fe_ledger_entry *entries, size_t n, const char *mine,
            const char *error)
{
    struct waiter *w = ctx;
    w->answered = true;
    w->error = error ? sl_strdup(error) : NULL;
    w->n = n;
    w->mine = mine ? sl_strdup(mine) : NULL;
    for (size_t i = 0; entries != NULL && i < n && i < 4; i++) {
        w->e[i] = entries[i];
        w->e[i].reply = entries[i].reply ? sl_strdup(entries[i].reply) : NULL;
        w->e[i].node = entries[i].node ? sl_strdup(entries[i].node) : NULL;
    }
    event_base_loopbreak(w->base);
}

static void
on_recorded(void *ctx, const char *error)
{
    struct waiter *w = ctx;
    w->answered = true;
    w->error = error ? sl_strdup(error) : NULL;
    event_base_loopbreak(w->base);
}

static void
on_idle(void *ctx)
{
    struct waiter *w = ctx;
    w->answered = true;
    event_base_loopbreak(w->base);
}

static void
waiter_reset(struct waiter *w)
{
    for (size_t i = 0; i < 4; i++)
        fe_ledger_entry_clear(&w->e[i]);
    free(w->error);
    free(w->mine);
    struct event_base *b = w->base;
    memset(w, 0, sizeof(*w));
    w->base = b;
}

static void
on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* A callback queued after a record: is it in Redis by now? Asks for up
 * to 3 s while the loop waits, then ends the loop. */
struct after_record {
    redisContext *c;
    const char *key;
    struct event_base *base;
    bool ran, seen;
};

static void
on_after_record(evutil_socket_t fd, short what, void *arg)
{
    struct after_record *ar = arg;

    (void)fd;
    (void)what;
    ar->ran = true;
    for (int i = 0; i < 300 && !ar->seen; i++) {
        redisReply *r = redisCommand(ar->c, "HGET %s a@example.com", ar->key);
        ar->seen = r->type == REDIS_REPLY_STRING && strncmp(r->str, "done:", 5) == 0;
        freeReplyObject(r);
        if (!ar->seen)
            usleep(10000);
    }
    event_base_loopbreak(ar->base);
}

/* Runs the loop until the callback or max_s. A timer of its own, deleted
 * after: a loopexit left pending would end a later wait at once. */
static void
wait_answer(struct waiter *w, unsigned max_s)
{
    struct timeval tv = {max_s, 0};
    struct event *t = evtimer_new(w->base, on_wait_timeout, w->base);

    evtimer_add(t, &tv);
    event_base_dispatch(w->base);
    event_free(t);
    assert_true(w->answered);
}

/* Runs the loop for ms; no assertion on time (timed tests flake). */
static void
run_loop_ms(struct event_base *base, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(base, on_wait_timeout, base);

    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
}

/* HLEN of key once the loop has had up to 5 s to send what is queued. */
static long long
hlen_after_loop(struct event_base *base, redisContext *c, const char *key, long long want)
{
    long long n = -1;

    for (int i = 0; i < 50 && n != want; i++) {
        run_loop_ms(base, 100);
        redisReply *r = redisCommand(c, "HLEN %s", key);
        n = r->integer;
        freeReplyObject(r);
    }
    return n;
}

static struct fe_ledger *
ledger_for(struct event_base *base, const char *node, const char *password)
{
    struct sl_redis_url url = {0};
    url.host = sl_strdup("127.0.0.1");
    url.port = redis_port;
    url.user = sl_strdup("sluice");
    url.password = sl_strdup(password);
    url.timeout_ms = 500;
    struct fe_ledger *l = fe_ledger_new(base, &url, node, 3600, 600);
    sl_redis_url_free(&url);
    return l;
}

static void
test_redis(void **state)
{
    static const char *const rcpts[] = {"a@example.com", "b@example.com"};
    struct event_base *base;
    struct waiter w = {0};
    struct fe_ledger *a, *b;
    char key[FE_LEDGER_KEY_LEN + 1];
    redisContext *c;
    redisReply *r;
    (void)state;

    if (redis_pid <= 0)
        skip();
    base = event_base_new();
    w.base = base;
    c = admin();
    /* node a is alive (its registry key exists), node b never registered */
    r = redisCommand(c, "SET sluice:node:frontend:a:1 x EX 60");
    freeReplyObject(r);
    a = ledger_for(base, "frontend:a:1", "sluicepw");
    b = ledger_for(base, "frontend:b:2", "sluicepw");
    key_of("default", "Q1", "<m@x>", body, key);

    /* a reserves both */
    fe_ledger_reserve(a, key, rcpts, 2, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_RESERVED);
    assert_int_equal(w.e[1].state, FE_LEDGER_RESERVED);
    assert_non_null(strstr(w.mine, "pending:frontend:a:1:"));
    char *mine_a = sl_strdup(w.mine);
    waiter_reset(&w);

    /* b meanwhile: both in flight at a */
    fe_ledger_reserve(b, key, rcpts, 2, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_IN_FLIGHT);
    assert_string_equal(w.e[0].node, "frontend:a:1");
    assert_int_equal(w.e[1].state, FE_LEDGER_IN_FLIGHT);
    waiter_reset(&w);

    /* a: first recipient accepted, second refused by :10025 */
    const char *replies[] = {"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok", NULL};
    fe_ledger_record(a, key, mine_a, rcpts, replies, 2, on_recorded, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    waiter_reset(&w);
    r = redisCommand(c, "TTL %s", key);
    assert_true(r->integer > 3500 && r->integer <= 3600); /* dedup.ttl */
    freeReplyObject(r);

    /* the retry at b: the first gets the stored reply, the second is b's */
    fe_ledger_reserve(b, key, rcpts, 2, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_DONE);
    assert_string_equal(w.e[0].reply, replies[0]);
    assert_int_equal(w.e[1].state, FE_LEDGER_RESERVED);
    waiter_reset(&w);

    /* b dies (it never registered): a takes its reservation over at once */
    fe_ledger_reserve(a, key, rcpts + 1, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_TAKEN);
    assert_string_equal(w.e[0].node, "frontend:b:2");
    free(mine_a);
    mine_a = sl_strdup(w.mine);
    waiter_reset(&w);

    /* a releases it (the reinjection failed): the next try reserves anew */
    fe_ledger_record(a, key, mine_a, rcpts + 1, replies + 1, 1, on_recorded, &w);
    wait_answer(&w, 3);
    waiter_reset(&w);
    r = redisCommand(c, "HEXISTS %s b@example.com", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    free(mine_a);

    /* a first attempt costs no script (docs/benchmarks.md): HSETNX +
     * EXPIRE reserve, HSET + EXPIRE record; the reservation is dated on
     * Redis' clock (read once at connect), not the frontend's */
    char key3[FE_LEDGER_KEY_LEN + 1];
    key_of("default", "Q3", "<m3@x>", body, key3);
    r = redisCommand(c, "CONFIG RESETSTAT");
    freeReplyObject(r);
    fe_ledger_reserve(a, key3, rcpts, 2, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_RESERVED);
    assert_int_equal(w.e[1].state, FE_LEDGER_RESERVED);
    r = redisCommand(c, "HGET %s b@example.com", key3);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, w.mine);
    freeReplyObject(r);
    r = redisCommand(c, "TIME");
    long long redis_ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    long long mine_ms = atoll(strrchr(w.mine, ':') + 1);
    assert_true(llabs(redis_ms - mine_ms) < 60000);
    char *mine3 = sl_strdup(w.mine);
    waiter_reset(&w);
    const char *both[] = {replies[0], replies[0]};
    fe_ledger_record(a, key3, mine3, rcpts, both, 2, on_recorded, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    waiter_reset(&w);
    free(mine3);
    r = redisCommand(c, "HGET %s b@example.com", key3);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(strncmp(r->str, "done:", 5), 0);
    assert_string_equal(r->str + 5, replies[0]);
    freeReplyObject(r);
    r = redisCommand(c, "TTL %s", key3);
    assert_true(r->integer > 3500 && r->integer <= 3600);
    freeReplyObject(r);
    r = redisCommand(c, "INFO commandstats");
    assert_null(strstr(r->str, "cmdstat_eval:"));
    assert_non_null(strstr(r->str, "cmdstat_hsetnx:calls=2,"));
    freeReplyObject(r);
    /* the retry: HSETNX finds both present, the script says done */
    fe_ledger_reserve(b, key3, rcpts, 2, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_DONE);
    assert_int_equal(w.e[1].state, FE_LEDGER_DONE);
    assert_string_equal(w.e[1].reply, replies[0]);
    waiter_reset(&w);

    /* a reservation nobody waits for any more (the session ended before
     * Redis answered): never answered, what it took is given back */
    char key4[FE_LEDGER_KEY_LEN + 1];
    key_of("default", "Q4", "<m4@x>", body, key4);
    struct fe_ledger_op *op4 = fe_ledger_reserve(a, key4, rcpts, 2, on_reserved, &w);
    fe_ledger_abandon(&op4);
    assert_null(op4);
    assert_int_equal(hlen_after_loop(base, c, key4, 0), 0);
    assert_false(w.answered);
    /* an answer kept by the session, then given back (its transaction
     * ended without a delivery); a recipient done stays done */
    r = redisCommand(c, "HSET %s a@example.com %s", key4, "done:250 2.0.0 Ok");
    freeReplyObject(r);
    fe_ledger_reserve(a, key4, rcpts, 2, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_DONE);
    assert_int_equal(w.e[1].state, FE_LEDGER_RESERVED);
    struct fe_ledger_answer *kept = fe_ledger_answer_new(w.e, 2, w.mine, NULL);
    waiter_reset(&w);
    assert_string_equal(kept->entries[0].reply, "250 2.0.0 Ok");
    fe_ledger_answer_release(a, key4, rcpts, &kept);
    assert_null(kept);
    assert_int_equal(hlen_after_loop(base, c, key4, 1), 1);
    r = redisCommand(c, "HEXISTS %s a@example.com", key4);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* an error kept: nothing to give back */
    kept = fe_ledger_answer_new(NULL, 2, NULL, "Redis unavailable");
    fe_ledger_answer_release(a, key4, rcpts, &kept);
    assert_null(kept);

    /* the record Postfix's replies do not wait for: written when this turn
     * of the loop ends, before anything queued after it runs (the replies'
     * flush): a callback activated after the call finds it in Redis while
     * the loop waits for that callback; the shutdown's idle hook fires once
     * it is answered */
    char key5[FE_LEDGER_KEY_LEN + 1];
    key_of("default", "Q5", "<m5@x>", body, key5);
    fe_ledger_reserve(a, key5, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    char *mine5 = sl_strdup(w.mine);
    waiter_reset(&w);
    fe_ledger_record_nowait(a, "JOB5", key5, mine5, rcpts, replies, 1);
    free(mine5);
    struct after_record ar = {.c = c, .key = key5, .base = w.base};
    struct event *reply = event_new(w.base, -1, 0, on_after_record, &ar);
    event_active(reply, EV_WRITE, 0);
    run_loop_ms(w.base, 5000); /* on_after_record ends it */
    event_free(reply);
    assert_true(ar.ran);
    assert_true(ar.seen);
    fe_ledger_when_idle(a, on_idle, &w);
    wait_answer(&w, 3);
    waiter_reset(&w);
    /* a Redis that never answers a cancelled command (it has no timer of
     * its own): the idle hook still comes, after the ledger's timeout */
    r = redisCommand(c, "CLIENT PAUSE 3000 ALL");
    freeReplyObject(r);
    struct fe_ledger_op *op6 = fe_ledger_reserve(a, key5, rcpts + 1, 1, on_reserved, &w);
    fe_ledger_cancel(&op6);
    fe_ledger_when_idle(a, on_idle, &w);
    wait_answer(&w, 2); /* url.timeout_ms is 500 */
    waiter_reset(&w);
    r = redisCommand(c, "CLIENT UNPAUSE");
    freeReplyObject(r);

    /* a master restarted a's child: the new incarnation (same registry
     * id, another pid) takes its predecessor's reservation over at once,
     * while other nodes still see it in flight; its own stays in flight */
    struct fe_ledger *a1 = ledger_for(base, "frontend:a:1/100", "sluicepw");
    struct fe_ledger *a2 = ledger_for(base, "frontend:a:1/200", "sluicepw");
    char key2[FE_LEDGER_KEY_LEN + 1];
    key_of("default", "Q2", "<m2@x>", body, key2);
    fe_ledger_reserve(a1, key2, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_int_equal(w.e[0].state, FE_LEDGER_RESERVED);
    waiter_reset(&w);
    fe_ledger_reserve(b, key2, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_int_equal(w.e[0].state, FE_LEDGER_IN_FLIGHT);
    assert_string_equal(w.e[0].node, "frontend:a:1/100");
    waiter_reset(&w);
    fe_ledger_reserve(a2, key2, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_int_equal(w.e[0].state, FE_LEDGER_TAKEN);
    assert_string_equal(w.e[0].node, "frontend:a:1/100");
    waiter_reset(&w);
    fe_ledger_reserve(a2, key2, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_int_equal(w.e[0].state, FE_LEDGER_IN_FLIGHT);
    assert_string_equal(w.e[0].node, "frontend:a:1/200");
    waiter_reset(&w);
    /* ... while a job of a2 works on the message (a Postfix retry during
     * the first attempt gets 451). Once no job of a2 serves it (both ended;
     * a release Redis never took), a2's own reservation is an orphan: the
     * next retry takes it over at once instead of being refused for
     * dedup.pending_timeout, and other nodes still see it in flight */
    fe_ledger_serve_end(a2, key2);
    fe_ledger_serve_end(a2, key2);
    fe_ledger_reserve(a2, key2, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_TAKEN);
    assert_string_equal(w.e[0].node, "frontend:a:1/200");
    waiter_reset(&w);
    fe_ledger_reserve(b, key2, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_int_equal(w.e[0].state, FE_LEDGER_IN_FLIGHT);
    waiter_reset(&w);
    fe_ledger_destroy(&a1);
    fe_ledger_destroy(&a2);

    /* a wrong password: an error, never a hang */
    struct fe_ledger *bad = ledger_for(base, "frontend:c:3", "wrong");
    fe_ledger_reserve(bad, key, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_non_null(w.error);
    waiter_reset(&w);
    fe_ledger_destroy(&bad);

    /* a reservation to give back while Redis is away (below) */
    char key6[FE_LEDGER_KEY_LEN + 1];
    key_of("default", "Q6", "<m6@x>", body, key6);
    fe_ledger_reserve(a, key6, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_int_equal(w.e[0].state, FE_LEDGER_RESERVED);
    char *mine6 = sl_strdup(w.mine);
    waiter_reset(&w);

    /* Redis frozen: the answer comes within redis.timeout (500 ms) */
    usleep(1100 * 1000); /* the start-up connect is no longer "recent" */
    kill(redis_pid, SIGSTOP);
    fe_ledger_reserve(a, key, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 5);
    /* by the op's own timer (no wall-clock bounds here: timed unit tests
     * flake on a loaded machine) */
    assert_non_null(w.error);
    assert_non_null(strstr(w.error, "no answer within 500 ms"));
    waiter_reset(&w);
    /* right after: fail fast, the op is never sent to the dead Redis */
    fe_ledger_reserve(a, key, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 5);
    assert_non_null(w.error);
    assert_string_equal(w.error, "Redis unavailable");
    waiter_reset(&w);
    /* a release now is not sent either: it is kept and given back once
     * Redis is there again (other nodes need not wait for it to go stale) */
    fe_ledger_release(a, key6, mine6, rcpts, 1);
    free(mine6);
    run_loop_ms(base, 100);
    kill(redis_pid, SIGCONT);
    assert_int_equal(hlen_after_loop(base, c, key6, 0), 0);
    sleep(1); /* past the reconnect pause */
    fe_ledger_reserve(a, key, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 3);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_DONE);
    waiter_reset(&w);

    /* a cancelled op is never answered */
    struct fe_ledger_op *op = fe_ledger_reserve(a, key, rcpts, 1, on_reserved, &w);
    fe_ledger_cancel(&op);
    assert_null(op);
    struct timeval tv = {0, 300000};
    struct event *t = evtimer_new(base, on_wait_timeout, base);
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
    assert_false(w.answered);

    fe_ledger_destroy(&a);
    fe_ledger_destroy(&b);
    redisFree(c);
    event_base_free(base);
}

/* ---- Sentinel: the master found through a Sentinel, and a failover ----- */

static pid_t sent_pids[3]; /* master, replica, sentinel */
static unsigned sent_ports[3];
static char sent_conf[64];
static char sent_dir[64];       /* the master's and the replica's --dir */

static pid_t
spawn_redis(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static redisReply *
cmd_at(unsigned port, const char *fmt, ...)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)port, tv);
    redisReply *r = NULL;
    va_list ap;

    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    (void)redisSetTimeout(c, tv);
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static bool
wait_up(unsigned port)
{
    for (int i = 0; i < 100; i++) {
        redisReply *r = cmd_at(port, "PING");
        if (r != NULL) {
            freeReplyObject(r);
            return true;
        }
        usleep(50000);
    }
    return false;
}

static int
sentinel_setup(void **state)
{
    char ports[3][16], master[32];
    FILE *f;
    int fd;
    (void)state;

    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        return 0;
    for (int i = 0; i < 3; i++) {
        sent_ports[i] = free_port();
        snprintf(ports[i], sizeof(ports[i]), "%u", sent_ports[i]);
    }
    snprintf(master, sizeof(master), "%u", sent_ports[0]);
    /* --dir: a replica's full sync writes dump.rdb there, and a server
     * loads any dump.rdb it finds at start even with --save "": private,
     * empty directories, or one run's keys would reach the next run */
    char mdir[96], rdir[96];
    snprintf(sent_dir, sizeof(sent_dir), "/tmp/sluice-test-redis.XXXXXX");
    assert_non_null(mkdtemp(sent_dir));
    snprintf(mdir, sizeof(mdir), "%s/m", sent_dir);
    snprintf(rdir, sizeof(rdir), "%s/r", sent_dir);
    assert_int_equal(mkdir(mdir, 0700), 0);
    assert_int_equal(mkdir(rdir, 0700), 0);
    char *const m[] = {"redis-server", "--port", ports[0], "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", mdir, NULL};
    char *const r[] = {"redis-server", "--port", ports[1], "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", rdir, "--replicaof", "127.0.0.1", master,
                       NULL};
    sent_pids[0] = spawn_redis(m);
    sent_pids[1] = spawn_redis(r);
    /* a Sentinel rewrites its configuration file: a private one */
    snprintf(sent_conf, sizeof(sent_conf), "/tmp/sluice-test-sentinel.XXXXXX");
    fd = mkstemp(sent_conf);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fprintf(f, "port %u\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 %u 1\n"
               "sentinel down-after-milliseconds mymaster 1000\n"
               "sentinel failover-timeout mymaster 5000\n",
            sent_ports[2], sent_ports[0]);
    fclose(f);
    char *const sn[] = {"redis-server", sent_conf, "--sentinel", NULL};
    sent_pids[2] = spawn_redis(sn);
    for (int i = 0; i < 3; i++)
        if (!wait_up(sent_ports[i]))
            return -1;
    return 0;
}

static int
sentinel_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        if (sent_pids[i] > 0) {
            kill(sent_pids[i], SIGTERM);
            waitpid(sent_pids[i], NULL, 0);
            sent_pids[i] = 0;
        }
    }
    if (sent_conf[0] != '\0')
        unlink(sent_conf);
    if (sent_dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sent_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_ledger: could not remove %s\n", sent_dir);
        sent_dir[0] = '\0';
    }
    return 0;
}

static unsigned
sentinel_master_port(void)
{
    redisReply *r = cmd_at(sent_ports[2], "SENTINEL get-master-addr-by-name mymaster");
    unsigned port = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        port = (unsigned)atoi(r->element[1]->str);
    if (r != NULL)
        freeReplyObject(r);
    return port;
}

static void
test_sentinel(void **state)
{
    static const char *const rcpts[] = {"a@example.com"};
    struct event_base *base;
    struct waiter w = {0};
    struct sl_redis_url url = {0};
    char key[FE_LEDGER_KEY_LEN + 1], sentinel[32];
    char **sentinels = sl_calloc(2, sizeof(char *)); /* the URL owns it */
    struct fe_ledger *l;
    (void)state;

    if (sent_pids[2] <= 0)
        skip();
    base = event_base_new();
    w.base = base;
    /* the URL's host is only a placeholder with Sentinel; the first
     * Sentinel listed is dead, the second answers */
    snprintf(sentinel, sizeof(sentinel), "127.0.0.1:%u", sent_ports[2]);
    sentinels[0] = sl_strdup("127.0.0.1:1");
    sentinels[1] = sl_strdup(sentinel);
    url.host = sl_strdup("placeholder.invalid");
    url.port = 6379;
    url.sentinels = sentinels;
    url.n_sentinels = 2;
    url.master_name = sl_strdup("mymaster");
    url.timeout_ms = 500;
    if (getenv("TEST_LEDGER_DEBUG") != NULL)
        sl_log_set_level(7);
    l = fe_ledger_new(base, &url, "frontend:s:1", 3600, 600);
    sl_redis_url_free(&url);
    key_of("default", "S1", "<s@x>", body, key);

    fe_ledger_reserve(l, key, rcpts, 1, on_reserved, &w);
    wait_answer(&w, 5);
    assert_null(w.error);
    assert_int_equal(w.e[0].state, FE_LEDGER_RESERVED);
    waiter_reset(&w);
    redisReply *r = cmd_at(sent_ports[0], "HEXISTS %s a@example.com", key);
    assert_non_null(r);
    assert_int_equal(r->integer, 1); /* written on the master Sentinel named */
    freeReplyObject(r);

    /* the Sentinel learns of the replica from the master's INFO (every 10 s) */
    bool known = false;
    for (int i = 0; i < 150 && !known; i++) {
        r = cmd_at(sent_ports[2], "SENTINEL replicas mymaster");
        known = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        if (r != NULL)
            freeReplyObject(r);
        if (!known)
            usleep(100000);
    }
    assert_true(known);
    /* -NOGOODSLAVE until the Sentinel has seen the replica in sync */
    bool started = false;
    for (int i = 0; i < 150 && !started; i++) {
        r = cmd_at(sent_ports[2], "SENTINEL FAILOVER mymaster");
        started = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
        if (!started)
            usleep(100000);
    }
    assert_true(started);
    for (int i = 0; i < 200 && sentinel_master_port() != sent_ports[1]; i++)
        usleep(100000);
    assert_int_equal(sentinel_master_port(), sent_ports[1]);

    /* the old master is a replica now: its READONLY (or a closed
     * connection) makes the ledger ask the Sentinel again */
    /* the Sentinel turns the old master into a replica a little later;
     * until then it still takes writes (the split-brain moment that can
     * lose records, docs/exactly-once.md) */
    bool demoted = false;
    for (int i = 0; i < 200 && !demoted; i++) {
        r = cmd_at(sent_ports[0], "ROLE");
        demoted = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                  strcmp(r->element[0]->str, "slave") == 0;
        if (r != NULL)
            freeReplyObject(r);
        if (!demoted)
            usleep(100000);
    }
    assert_true(demoted);
    char key2[FE_LEDGER_KEY_LEN + 1];
    key_of("default", "S2", "<s2@x>", body, key2);
    int failures = 0;
    for (int i = 0; i < 20; i++) {
        fe_ledger_reserve(l, key2, rcpts, 1, on_reserved, &w);
        wait_answer(&w, 5);
        bool ok = w.error == NULL;
        waiter_reset(&w);
        if (ok)
            break;
        failures++;
        usleep(1100 * 1000); /* past the reconnect pause */
    }
    assert_true(failures < 20);
    r = cmd_at(sent_ports[1], "ROLE");
    assert_non_null(r);
    assert_string_equal(r->element[0]->str, "master");
    freeReplyObject(r);
    /* written after the failover: only the new master can have taken it */
    r = cmd_at(sent_ports[1], "HGET %s a@example.com", key2);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    print_message("failover: %d failed call(s) before the ledger wrote to the new master\n",
                  failures);

    fe_ledger_destroy(&l);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_url),
        cmocka_unit_test_setup_teardown(test_redis, redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_sentinel, sentinel_setup, sentinel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
