/* test_registry.c - the registry client and `sluice status` against a real
 * redis-server started by the test on a unix socket (skipped when
 * redis-server is not installed).
 *
 *   publish:   two nodes appear as hashes with a TTL; the script's cluster
 *              gauges (queue depth, KEDA list of that length, slots,
 *              origin concurrency, shortfall) are right; status --json
 *              reads them;
 *   outage:    Redis killed: the event loop keeps its timers on time (no
 *              blocking), the client reports down, status says degraded
 *              (69); Redis back: the nodes are registered again;
 *   frozen:    Redis stopped (SIGSTOP): the watchdog drops the connection
 *              within ~4 s, timers stay on time, SIGCONT: registered again. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "net/sl_redis.h"
#include "net/sl_registry.h"
#include "cli/sl_status.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

static char dir[64], sock_path[128], url_text[160];
static pid_t redis_pid;

static bool
redis_start(void)
{
    redis_pid = fork();
    if (redis_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock_path, "--save",
               "", "--appendonly", "no", "--dir", dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        struct stat st;
        if (stat(sock_path, &st) == 0)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

static void
redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
        unlink(sock_path);
    }
}

static redisContext *
redis_cli(void)
{
    struct sl_redis_url url = {.path = sock_path};
    char *error = NULL;
    redisContext *c = sl_redis_connect_sync(&url, 1000, &error);
    if (c == NULL)
        fail_msg("%s", error);
    return c;
}

static long long
redis_int(const char *fmt, const char *arg)
{
    redisContext *c = redis_cli();
    redisReply *r = redisCommand(c, fmt, arg);
    long long v = -1;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---- fixture: a loop with two nodes and a 100 ms ticker ---------------- */

struct fx {
    struct event_base *base;
    struct sl_registry *reg;
    struct event *ticker;
    unsigned long long last_tick, max_gap;
    unsigned depth;
};

static void
fill_broker(void *ctx, struct sl_registry_rec *rec)
{
    struct fx *f = ctx;
    sl_registry_put(rec, "queue_depth", "%u", f->depth);
    sl_registry_put(rec, "oldest_age_ms", "%u", 4200);
    sl_registry_put(rec, "inflight", "%u", 2);
}

static void
fill_frontend(void *ctx, struct sl_registry_rec *rec)
{
    (void)ctx;
    sl_registry_put(rec, "origin.mx1.sessions", "%u", 3);
    sl_registry_put(rec, "origin.mx1.concurrency", "%u", 10);
    sl_registry_put(rec, "origin.mx2.concurrency", "%u", 5);
    sl_registry_put(rec, "brokers", "%u", 1);
    sl_registry_put(rec, "brokers_alive", "%u", 1);
}

static void
fill_worker(void *ctx, struct sl_registry_rec *rec)
{
    (void)ctx;
    sl_registry_put(rec, "slots", "%u", 12);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fx *f = arg;
    unsigned long long now = sl_now_mono_ms();
    (void)fd;
    (void)what;
    if (f->last_tick != 0 && now - f->last_tick > f->max_gap)
        f->max_gap = now - f->last_tick;
    f->last_tick = now;
}

static void
run_ms(struct fx *f, unsigned ms)
{
    unsigned long long end = sl_now_mono_ms() + ms;
    while (sl_now_mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
}

/* Runs the loop until the client is connected, at most max_ms: on a busy
 * machine a reconnection may take a turn or two longer than its timer. */
static bool
run_until_connected(struct fx *f, unsigned max_ms)
{
    unsigned long long end = sl_now_mono_ms() + max_ms;
    while (!sl_registry_connected(f->reg) && sl_now_mono_ms() < end)
        run_ms(f, 100);
    return sl_registry_connected(f->reg);
}

static struct fx *
fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct sl_redis_url url = {.path = sock_path};
    struct timeval tv = {0, 100 * 1000};

    f->base = event_base_new();
    f->depth = 7;
    f->reg = sl_registry_new(f->base, &url);
    sl_registry_add_node(f->reg, "broker", "broker:test:1", "tcp://127.0.0.1:5555", fill_broker, f);
    sl_registry_add_node(f->reg, "frontend", "frontend:test:1", "127.0.0.1:10024", fill_frontend,
                         f);
    sl_registry_add_node(f->reg, "worker", "worker:test:1", "test pid 1", fill_worker, f);
    f->ticker = event_new(f->base, -1, EV_PERSIST, on_tick, f);
    event_add(f->ticker, &tv);
    return f;
}

static void
fx_free(struct fx *f)
{
    sl_registry_destroy(&f->reg);
    event_free(f->ticker);
    event_base_free(f->base);
    free(f);
}

static int
status_rc(char *out, size_t len)
{
    struct sl_redis_url url = {.path = sock_path};
    FILE *fp = fmemopen(out, len, "w");
    int rc = sl_status_run(&url, url_text, true, fp);
    fclose(fp);
    return rc;
}

static void
test_publish(void **state)
{
    struct fx *f;
    char out[8192];

    (void)state;
    if (!redis_start())
        skip();
    f = fx_new();
    run_ms(f, 2500);
    assert_true(sl_registry_connected(f->reg));
    long long ttl = redis_int("PTTL sluice:node:%s", "broker:test:1");
    assert_in_range(ttl, 1, SL_REGISTRY_TTL_MS);
    assert_int_equal(redis_int("LLEN %s", "sluice:keda:queue"), 7);
    assert_int_equal(redis_int("LLEN %s", "sluice:keda:oldest_age"), 4);
    /* demand for KEDA: waiting plus in flight (7 + 2) */
    assert_int_equal(redis_int("LLEN %s", "sluice:keda:demand"), 9);
    assert_int_equal(redis_int("HGET sluice:cluster %s", "worker_slots"), 12);
    assert_int_equal(redis_int("HGET sluice:cluster %s", "origin_concurrency"), 15);
    assert_int_equal(redis_int("GET %s", "sluice:shortfall"), 3);
    f->depth = 2; /* the list shrinks with the queue */
    run_ms(f, 1500);
    assert_int_equal(redis_int("LLEN %s", "sluice:keda:queue"), 2);
    assert_int_equal(redis_int("LLEN %s", "sluice:keda:demand"), 4);
    assert_int_equal(status_rc(out, sizeof(out)), 1); /* degraded: shortfall 3 */
    assert_non_null(strstr(out, "\"queue\":{\"depth\":2,\"oldest_age_seconds\":4,"));
    assert_non_null(strstr(out, "{\"name\":\"mx1\",\"sessions\":3,\"concurrency\":10}"));
    assert_non_null(strstr(out, "\"shortfall\":3"));
    assert_non_null(strstr(out, "\"role\":\"worker\",\"address\":\"test pid 1\",\"alive\":true"));
    /* a node that stops deletes its hash: status lists it as gone */
    fx_free(f);
    assert_int_equal(redis_int("EXISTS %s", "sluice:node:broker:test:1"), 0);
    assert_int_equal(status_rc(out, sizeof(out)), 1);
    assert_non_null(strstr(out, "\"id\":\"broker:test:1\",\"role\":\"broker\",\"address\":\"\","
                                "\"alive\":false"));
    redis_stop();
}

static void
test_outage(void **state)
{
    struct fx *f;
    char out[8192];

    (void)state;
    if (!redis_start())
        skip();
    f = fx_new();
    run_ms(f, 1500);
    assert_true(sl_registry_connected(f->reg));
    redis_stop();
    f->max_gap = 0;
    run_ms(f, 3000);
    assert_false(sl_registry_connected(f->reg));
    /* the loop never waited for Redis (a blocking client would stop it for
     * seconds; the bound leaves room for a busy machine's scheduling) */
    assert_true(f->max_gap < 1500);
    assert_int_equal(status_rc(out, sizeof(out)), 69);
    assert_non_null(strstr(out, "\"state\":\"degraded\""));
    assert_true(redis_start());
    assert_true(run_until_connected(f, 10000));
    run_ms(f, 1500); /* a publication after the reconnection */
    assert_int_equal(redis_int("EXISTS %s", "sluice:node:worker:test:1"), 1);
    fx_free(f);
    redis_stop();
}

static void
test_frozen(void **state)
{
    struct fx *f;
    unsigned long long t0;

    (void)state;
    if (!redis_start())
        skip();
    f = fx_new();
    run_ms(f, 1500);
    assert_true(sl_registry_connected(f->reg));
    kill(redis_pid, SIGSTOP);
    t0 = sl_now_mono_ms();
    f->max_gap = 0;
    while (sl_registry_connected(f->reg) && sl_now_mono_ms() - t0 < 8000)
        run_ms(f, 100);
    assert_false(sl_registry_connected(f->reg));
    sl_notice("frozen Redis dropped after %llu ms", sl_now_mono_ms() - t0);
    assert_true(sl_now_mono_ms() - t0 <= 7000); /* the watchdog's ~4 s, with room */
    assert_true(f->max_gap < 1500);
    kill(redis_pid, SIGCONT);
    assert_true(run_until_connected(f, 10000));
    fx_free(f);
    redis_stop();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_frozen),
    };
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/sluice-test-registry.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(sock_path, sizeof(sock_path), "%s/redis.sock", dir);
    snprintf(url_text, sizeof(url_text), "unix:%s", sock_path);
    signal(SIGPIPE, SIG_IGN);
    sl_log_open("test_registry", SL_LOG_STDERR, LOG_NOTICE);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    redis_stop();
    rmdir(dir);
    return rc;
}
