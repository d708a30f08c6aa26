/* test_status.c - `sluice status` without Redis (lib/cli/sl_status).
 *
 *   summary:   table-driven: each case is the registry's records (nodes,
 *              their hashes, gone nodes) and the summary expected of them:
 *              healthy, a gone node, a shortfall, no workers, an empty
 *              registry, a frontend missing a broker, origins across
 *              frontends, in-flight beyond the slots, nodes sluice did not
 *              write; then the limits on origins and named frontends;
 *   printers:  one registry printed as text and as JSON, compared whole
 *              (the JSON's keys are read by scripts);
 *   one node:  the JSON read back (sluice status without Redis asks the node,
 *              which prints it): the same records, printed again the same,
 *              text included; what is not that JSON is refused;
 *   fetch:     against a fake Redis on a unix socket that plays canned
 *              replies (the way hiredis tests its reader without a
 *              server): records read, sorted and marked alive or gone; a
 *              connection lost half-way is "unreachable" (69) and, under
 *              the sanitizer build, leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/sl_status.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define MAX_NODES 8
#define MAX_FIELDS 12
#define MAX_LINES 8

/* ---- building records from a table ------------------------------------ */

struct node_row {
    const char *id;
    unsigned long long seen_ms;
    const char *fields[MAX_FIELDS]; /* "name=value"; none: gone (no hash) */
};

static struct sl_status_registry *
registry_from_rows(unsigned long long now_ms, const struct node_row *rows)
{
    struct sl_status_registry *reg = sl_status_registry_new(now_ms);

    for (size_t i = 0; i < MAX_NODES && rows[i].id != NULL; i++) {
        struct sl_status_node *n = sl_status_registry_add_node(reg, rows[i].id, rows[i].seen_ms);
        for (size_t k = 0; k < MAX_FIELDS && rows[i].fields[k] != NULL; k++) {
            const char *eq = strchr(rows[i].fields[k], '=');
            char *name = sl_strndup(rows[i].fields[k], (size_t)(eq - rows[i].fields[k]));
            sl_status_node_add_field(n, name, eq + 1);
            free(name);
            n->alive = true;
        }
    }
    return reg;
}

/* ---- the summary, table-driven ----------------------------------------- */

struct want {
    unsigned alive, gone, brokers, workers, frontends;
    unsigned long long depth, oldest_ms, inflight, slots, busy, concurrency, shortfall;
    int exit_status;
    const char *origins[MAX_LINES]; /* "name sessions concurrency", in order */
    const char *reasons[MAX_LINES]; /* in order */
};

struct status_case {
    const char *name;
    struct node_row nodes[MAX_NODES];
    struct want want;
};

/* One case per paragraph reads better than one field per line: */
/* clang-format off */
#define BROKER(id, depth, oldest, inflight)                                                      \
    {id, 1000, {"role=broker", "address=tcp://b:5555", "queue_depth=" depth,                    \
                "oldest_age_ms=" oldest, "inflight=" inflight}}
#define WORKER(id, slots) {id, 1000, {"role=worker", "address=h pid 4", "slots=" slots}}
#define GONE(id) {id, 500, {NULL}}

static const struct status_case cases[] = {
    {"healthy cluster",
     {BROKER("broker:h:1", "3", "4200", "2"), WORKER("worker:h:3", "12"),
      {"frontend:h:2", 1000, {"role=frontend", "brokers=1", "brokers_alive=1",
                              "origin.mx1.sessions=3", "origin.mx1.concurrency=10"}}},
     {.alive = 3, .brokers = 1, .workers = 1, .frontends = 1, .depth = 3, .oldest_ms = 4200,
      .inflight = 2, .slots = 12, .busy = 2, .concurrency = 10, .exit_status = 0,
      .origins = {"mx1 3 10"}}},
    {"a gone node is listed, not counted, and is no reason to degrade",
     {BROKER("broker:h:1", "0", "0", "0"), GONE("broker:h:2"), WORKER("worker:h:3", "2")},
     {.alive = 2, .gone = 1, .brokers = 1, .workers = 1, .slots = 2}},
    {"every worker gone",
     {BROKER("broker:h:1", "5", "100", "0"), GONE("worker:h:3")},
     {.alive = 1, .gone = 1, .brokers = 1, .depth = 5, .oldest_ms = 100, .exit_status = 1,
      .reasons = {"no worker alive"}}},
    {"shortfall: the origins may send more than the slots take",
     {BROKER("broker:h:1", "0", "0", "1"), WORKER("worker:h:3", "4"),
      {"frontend:h:2", 1000, {"role=frontend", "brokers=1", "brokers_alive=1",
                              "origin.mx1.concurrency=10", "origin.mx2.concurrency=5"}}},
     {.alive = 3, .brokers = 1, .workers = 1, .frontends = 1, .inflight = 1, .slots = 4,
      .busy = 1, .concurrency = 15, .shortfall = 11, .exit_status = 1,
      .origins = {"mx1 0 10", "mx2 0 5"},
      .reasons = {"provisioning shortfall: origins may send 15 messages at once, workers have 4 "
                  "slot(s): 11 short"}}},
    {"no workers: degraded, and all the concurrency is short",
     {BROKER("broker:h:1", "7", "9000", "0"),
      {"frontend:h:2", 1000, {"role=frontend", "brokers=1", "brokers_alive=1",
                              "origin.default.concurrency=2"}}},
     {.alive = 2, .brokers = 1, .frontends = 1, .depth = 7, .oldest_ms = 9000,
      .concurrency = 2, .shortfall = 2, .exit_status = 1, .origins = {"default 0 2"},
      .reasons = {"no worker alive",
                  "provisioning shortfall: origins may send 2 messages at once, workers have 0 "
                  "slot(s): 2 short"}}},
    {"empty registry",
     {{NULL, 0, {NULL}}},
     {.exit_status = 1, .reasons = {"no broker alive", "no worker alive"}}},
    {"a frontend that reaches fewer brokers than it has",
     {BROKER("broker:h:1", "0", "0", "0"), WORKER("worker:h:4", "1"),
      {"frontend:h:2", 1000, {"role=frontend", "brokers=2", "brokers_alive=1"}},
      {"frontend:h:3", 1000, {"role=frontend", "brokers=2", "brokers_alive=2"}}},
     {.alive = 4, .brokers = 1, .workers = 1, .frontends = 2, .slots = 1, .exit_status = 1,
      .reasons = {"frontend frontend:h:2 reaches 1 of 2 broker(s)"}}},
    {"origins across frontends: sessions add up, concurrency is the largest declared",
     {WORKER("worker:h:9", "20"), BROKER("broker:h:1", "0", "0", "0"),
      {"frontend:h:2", 1000, {"role=frontend", "origin.mx1.sessions=3",
                              "origin.mx1.concurrency=10", "origin.a.b.sessions=1",
                              "origin.mx1=9", "origin..concurrency=1", "other.x.sessions=5"}},
      {"frontend:h:3", 1000, {"role=frontend", "origin.mx2.concurrency=4",
                              "origin.mx1.sessions=2", "origin.mx1.concurrency=7",
                              "origin.a.b.concurrency=3"}}},
     {.alive = 4, .brokers = 1, .workers = 1, .frontends = 2, .slots = 20, .concurrency = 18,
      .origins = {"mx1 5 10", "a.b 1 3", " 0 1", "mx2 0 4"}}},
    {"more in flight than slots: busy is at most the slots; depths add, oldest is the max",
     {BROKER("broker:h:1", "2", "1500", "9"), BROKER("broker:h:2", "3", "61000", "11"),
      WORKER("worker:h:3", "4"), WORKER("worker:h:4", "6")},
     {.alive = 4, .brokers = 2, .workers = 2, .depth = 5, .oldest_ms = 61000, .inflight = 20,
      .slots = 10, .busy = 10}},
    {"nodes sluice did not write (no role, another role) are alive but not counted",
     {BROKER("broker:h:1", "0", "0", "0"), WORKER("worker:h:3", "1"),
      {"odd:h:1", 1000, {"address=x", "slots=50"}},
      {"scanner:h:1", 1000, {"role=scanner", "slots=50", "queue_depth=9"}}},
     {.alive = 4, .brokers = 1, .workers = 1, .slots = 1}},
    {"numbers that are not numbers count as 0",
     {BROKER("broker:h:1", "many", "-", ""), WORKER("worker:h:3", "x")},
     {.alive = 2, .brokers = 1, .workers = 1}},
};

/* clang-format on */

static void
check_case(const struct status_case *c)
{
    struct sl_status_registry *reg = registry_from_rows(100000, c->nodes);
    struct sl_status_summary *sum = sl_status_summary_new(reg);
    const struct want *w = &c->want;
    size_t n;

    print_message("  %s\n", c->name);
    assert_int_equal(sum->nodes_alive, w->alive);
    assert_int_equal(sum->nodes_gone, w->gone);
    assert_int_equal(sum->brokers_alive, w->brokers);
    assert_int_equal(sum->workers_alive, w->workers);
    assert_int_equal(sum->frontends_alive, w->frontends);
    assert_int_equal(sum->queue_depth, w->depth);
    assert_int_equal(sum->oldest_age_ms, w->oldest_ms);
    assert_int_equal(sum->inflight, w->inflight);
    assert_int_equal(sum->worker_slots, w->slots);
    assert_int_equal(sum->slots_busy, w->busy);
    assert_int_equal(sum->origin_concurrency, w->concurrency);
    assert_int_equal(sum->shortfall, w->shortfall);
    assert_int_equal(sum->exit_status, w->exit_status);
    for (n = 0; n < MAX_LINES && w->origins[n] != NULL; n++) {
        char *got = sl_asprintf("%s %llu %llu", sum->origins[n].name, sum->origins[n].sessions,
                                sum->origins[n].concurrency);
        assert_true(n < sum->n_origins);
        assert_string_equal(got, w->origins[n]);
        free(got);
    }
    assert_int_equal(sum->n_origins, n);
    for (n = 0; n < MAX_LINES && w->reasons[n] != NULL; n++) {
        assert_true(n < sum->n_reasons);
        assert_string_equal(sum->reasons[n], w->reasons[n]);
    }
    assert_int_equal(sum->n_reasons, n);
    sl_status_summary_destroy(&sum);
    assert_null(sum);
    sl_status_registry_destroy(&reg);
    assert_null(reg);
}

static void
test_summary_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
}

/* A registry of thousands of origins or frontends still gives a report
 * of bounded size. */
static void
test_summary_limits(void **state)
{
    struct sl_status_registry *reg = sl_status_registry_new(0);
    struct sl_status_summary *sum;
    struct sl_status_node *n;
    char name[64];

    (void)state;
    n = sl_status_registry_add_node(reg, "worker:h:1", 0);
    n->alive = true;
    sl_status_node_add_field(n, "role", "worker");
    sl_status_node_add_field(n, "slots", "100000");
    n = sl_status_registry_add_node(reg, "broker:h:1", 0);
    n->alive = true;
    sl_status_node_add_field(n, "role", "broker");
    for (int i = 0; i < SL_STATUS_MAX_FRONTEND_REASONS + 10; i++) {
        snprintf(name, sizeof(name), "frontend:h:%d", i);
        n = sl_status_registry_add_node(reg, name, 0);
        n->alive = true;
        sl_status_node_add_field(n, "role", "frontend");
        sl_status_node_add_field(n, "brokers", "2");
        sl_status_node_add_field(n, "brokers_alive", "1");
        for (int k = 0; k < 5; k++) {
            snprintf(name, sizeof(name), "origin.o%d.concurrency", i * 5 + k);
            sl_status_node_add_field(n, name, "1");
        }
    }
    sum = sl_status_summary_new(reg);
    assert_int_equal(sum->n_origins, SL_STATUS_MAX_ORIGINS);
    assert_int_equal(sum->origin_concurrency, SL_STATUS_MAX_ORIGINS);
    assert_int_equal(sum->n_reasons, SL_STATUS_MAX_FRONTEND_REASONS);
    assert_int_equal(sum->frontends_alive, SL_STATUS_MAX_FRONTEND_REASONS + 10);
    assert_int_equal(sum->exit_status, 1);
    sl_status_summary_destroy(&sum);
    sl_status_registry_destroy(&reg);
    sl_status_summary_destroy(&sum); /* NULL: nothing */
    sl_status_registry_destroy(&reg);
}

/* ---- the printers ------------------------------------------------------ */

static const struct node_row print_rows[] = {
    BROKER("broker:h:1", "5", "3500", "2"),
    GONE("broker:h:2"),
    {"frontend:h:3",
     1000,
     {"role=frontend", "address=127.0.0.1:10024", "sessions=3", "brokers=2", "brokers_alive=1",
      "origin.mx1.sessions=3", "origin.mx1.concurrency=10", "jobs=0123", "name=x\"y\\z"}},
    WORKER("worker:h:4", "4"),
    {NULL, 0, {NULL}},
};

static char *
print_registry(const struct sl_status_registry *reg, sl_status_print_fn *print)
{
    struct sl_status_summary *sum = sl_status_summary_new(reg);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    print(fp, reg, sum, "r:6379/0");
    fclose(fp);
    sl_status_summary_destroy(&sum);
    return buf;
}

static char *
print_to_string(sl_status_print_fn *print)
{
    struct sl_status_registry *reg = registry_from_rows(8500, print_rows);
    char *buf = print_registry(reg, print);

    sl_status_registry_destroy(&reg);
    return buf;
}

static void
test_print_text(void **state)
{
    char *out = print_to_string(sl_status_print_text);

    (void)state;
    assert_string_equal(
        out,
        "sluice status: DEGRADED\n"
        "  ! frontend frontend:h:3 reaches 1 of 2 broker(s)\n"
        "  ! provisioning shortfall: origins may send 10 messages at once, workers have 4 "
        "slot(s): 6 short\n"
        "\n"
        "NODE                               ROLE      ADDRESS                    ALIVE  DETAILS\n"
        "broker:h:1                         broker    tcp://b:5555               yes    queue 5, "
        "oldest 3 s, in flight 2, workers 0, slots free 0\n"
        "broker:h:2                         broker    -                          no     gone, "
        "last seen 8 s ago\n"
        "frontend:h:3                       frontend  127.0.0.1:10024            yes    sessions "
        "3, waiting 0, brokers 1/2, resubmitted 0, duplicate verdicts 0\n"
        "worker:h:4                         worker    h pid 4                    yes    slots 4, "
        "brokers 0\n"
        "\n"
        "queue: 5 waiting, oldest 3 s, 2 in flight\n"
        "worker slots: 4 (busy 2, free 2)\n"
        "\n"
        "ORIGIN                    SESSIONS  CONCURRENCY\n"
        "mx1                              3           10\n"
        "\n"
        "provisioning: origins 10 vs worker slots 4: SHORTFALL 6 (add worker slots)\n");
    free(out);
}

static void
test_print_json(void **state)
{
    char *out = print_to_string(sl_status_print_json);

    (void)state;
    assert_string_equal(
        out,
        "{\"state\":\"degraded\",\"reasons\":[\"frontend frontend:h:3 reaches 1 of 2 broker(s)\","
        "\"provisioning shortfall: origins may send 10 messages at once, workers have 4 slot(s): "
        "6 short\"],\"registry\":{\"url\":\"r:6379/0\",\"reachable\":true},\"nodes\":["
        "{\"id\":\"broker:h:1\",\"role\":\"broker\",\"address\":\"tcp://b:5555\",\"alive\":true,"
        "\"last_seen_seconds_ago\":7,\"queue_depth\":5,\"oldest_age_ms\":3500,\"inflight\":2},"
        "{\"id\":\"broker:h:2\",\"role\":\"broker\",\"address\":\"\",\"alive\":false,"
        "\"last_seen_seconds_ago\":8},"
        "{\"id\":\"frontend:h:3\",\"role\":\"frontend\",\"address\":\"127.0.0.1:10024\","
        "\"alive\":true,\"last_seen_seconds_ago\":7,\"sessions\":3,\"brokers\":2,"
        "\"brokers_alive\":1,\"origin.mx1.sessions\":3,\"origin.mx1.concurrency\":10,"
        "\"jobs\":\"0123\",\"name\":\"x\\\"y\\\\z\"},"
        "{\"id\":\"worker:h:4\",\"role\":\"worker\",\"address\":\"h pid 4\",\"alive\":true,"
        "\"last_seen_seconds_ago\":7,\"slots\":4}],"
        "\"queue\":{\"depth\":5,\"oldest_age_seconds\":3,\"inflight\":2},"
        "\"workers\":{\"slots\":4,\"busy\":2,\"free\":2},"
        "\"origins\":[{\"name\":\"mx1\",\"sessions\":3,\"concurrency\":10}],"
        "\"provisioning\":{\"origin_concurrency\":10,\"worker_slots\":4,\"shortfall\":6}}\n");
    free(out);
}

/* ---- one node: the JSON read back ------------------------------------- */

static void
test_from_json_round_trip(void **state)
{
    char *json = print_to_string(sl_status_print_json), *again, *text, *text_again;
    struct sl_status_registry *reg = registry_from_rows(8500, print_rows), *back;
    const char *error = NULL;

    (void)state;
    back = sl_status_registry_from_json(json, strlen(json), 8500, &error);
    assert_non_null(back);
    assert_int_equal(back->n_nodes, reg->n_nodes);
    assert_string_equal(sl_status_node_get(&back->nodes[2], "jobs"), "0123"); /* a string */
    assert_string_equal(sl_status_node_get(&back->nodes[2], "name"), "x\"y\\z");
    assert_false(back->nodes[1].alive);
    assert_int_equal(back->nodes[1].seen_ms, 500); /* 8 s before 8500 */
    again = print_registry(back, sl_status_print_json);
    assert_string_equal(again, json);
    text = print_registry(reg, sl_status_print_text);
    text_again = print_registry(back, sl_status_print_text);
    assert_string_equal(text_again, text);
    free(text_again);
    free(text);
    free(again);
    free(json);
    sl_status_registry_destroy(&back);
    sl_status_registry_destroy(&reg);
}

static void
test_from_json_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"nodes\":{}}",
        "{\"nodes\":[1]}",
        "{\"nodes\":[{\"alive\":true}]}",
        "{\"nodes\":[{\"id\":\"a\",\"alive\":true}]}", /* no role */
        "{\"nodes\":[{\"id\":\"a\",\"role\":\"worker\",\"alive\":1}]}",
        "{\"nodes\":[{\"id\":\"a\",\"role\":\"worker\",\"alive\":true,\"x\":1.5}]}",
        "{\"nodes\":[{\"id\":\"a\",\"role\":\"worker\",\"alive\":true,\"x\":[]}]}",
        "{\"nodes\":[{\"id\":\"a\",\"role\":\"worker\",\"alive\":true,\"x\":1,\"x\":2}]}",
        "{\"nodes\":[{\"id\":\"a\",\"role\":\"worker\",\"alive\":true}]",
    };
    const char *error;

    (void)state;
    for (size_t i = 0; i < SL_N_ELEMENTS(bad); i++) {
        error = NULL;
        assert_null(sl_status_registry_from_json(bad[i], strlen(bad[i]), 1000, &error));
        assert_non_null(error);
    }
    /* an age past the clock's start is as old as can be, not a wrap */
    static const char odd[] = "{\"nodes\":[{\"id\":\"a\",\"role\":\"worker\",\"alive\":true,"
                              "\"last_seen_seconds_ago\":99999999999},"
                              "{\"id\":\"b\",\"role\":\"worker\",\"alive\":false,\"last_seen_seconds_ago\":-3}]}";
    struct sl_status_registry *reg = sl_status_registry_from_json(odd, strlen(odd), 5000, &error);
    assert_non_null(reg);
    assert_int_equal(reg->nodes[0].seen_ms, 0);
    assert_int_equal(reg->nodes[1].seen_ms, 5000);
    sl_status_registry_destroy(&reg);

    /* counts from other nodes never wrap a sum, nor turn negative */
    assert_int_equal(sl_status_num("12abc"), 12);
    assert_int_equal(sl_status_num("-12"), 0);
    assert_int_equal(sl_status_num(" 7"), 0);
    assert_int_equal(sl_status_num(NULL), 0);
    assert_int_equal(sl_status_num("99999999999999999999999"), SL_STATUS_NUM_MAX);
}

/* ---- fetch, against a fake Redis --------------------------------------- */

static char dir[64], sock_path[96];

/* One exchange: the command expected (its first word) and the reply, in
 * RESP; a NULL reply closes the connection instead of answering. */
struct exchange {
    const char *command;
    const char *reply;
};

struct fake_redis {
    int listen_fd;
    const struct exchange *script;
    pthread_t thread;
    unsigned n_served;
    char first_mismatch[64];
};

/* Reads one command (an array of bulk strings: 1 + 2N lines) and returns
 * its first word in word_r. -1 at EOF. */
static int
fake_read_command(int fd, char *word_r, size_t len)
{
    char line[512];
    size_t n = 0, lines = 0, want = 1;
    char c;

    word_r[0] = '\0';
    while (lines < want) {
        if (read(fd, &c, 1) != 1)
            return -1;
        if (n + 1 < sizeof(line))
            line[n++] = c;
        if (c != '\n')
            continue;
        line[n] = '\0';
        if (lines == 0)
            want = 1 + 2 * strtoul(line + 1, NULL, 10);
        else if (lines == 2)
            snprintf(word_r, len, "%.*s", (int)(n - 2), line);
        lines++;
        n = 0;
    }
    return 0;
}

static void *
fake_serve(void *arg)
{
    struct fake_redis *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    char word[64];

    for (const struct exchange *e = f->script; fd >= 0 && e->command != NULL; e++) {
        if (fake_read_command(fd, word, sizeof(word)) < 0)
            break;
        if (strcmp(word, e->command) != 0 && f->first_mismatch[0] == '\0')
            snprintf(f->first_mismatch, sizeof(f->first_mismatch), "%s, expected %s", word,
                     e->command);
        f->n_served++;
        if (e->reply == NULL || write(fd, e->reply, strlen(e->reply)) < 0)
            break;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void
fake_start(struct fake_redis *f, const struct exchange *script)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    memset(f, 0, sizeof(*f));
    f->script = script;
    unlink(sock_path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->listen_fd, 1), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void
fake_finish(struct fake_redis *f, unsigned n_expected)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    unlink(sock_path);
    if (f->first_mismatch[0] != '\0')
        fail_msg("fake Redis got %s", f->first_mismatch);
    assert_int_equal(f->n_served, n_expected);
}

#define R_TIME "*2\r\n$10\r\n1700000010\r\n$6\r\n500000\r\n"
/* two nodes, not in id order: the fetch sorts them */
#define R_NODES                                                                                    \
    "*4\r\n$10\r\nworker:h:2\r\n$13\r\n1700000009000\r\n"                                          \
    "$10\r\nbroker:h:1\r\n$13\r\n1700000001000\r\n"
#define R_BROKER "*4\r\n$4\r\nrole\r\n$6\r\nbroker\r\n$11\r\nqueue_depth\r\n$1\r\n4\r\n"
#define R_GONE "*0\r\n"

static void
test_fetch(void **state)
{
    static const struct exchange script[] = {
        {"TIME", R_TIME},    {"ZRANGE", R_NODES}, {"HGETALL", R_BROKER},
        {"HGETALL", R_GONE}, {NULL, NULL},
    };
    struct sl_redis_url url = {.path = sock_path};
    struct sl_status_registry *reg = NULL;
    struct fake_redis f;
    char *error = NULL;

    (void)state;
    fake_start(&f, script);
    assert_int_equal(sl_status_fetch(&url, &reg, &error), 0);
    fake_finish(&f, 4);
    assert_null(error);
    assert_non_null(reg);
    assert_int_equal(reg->now_ms, 1700000010500ULL);
    assert_int_equal(reg->n_nodes, 2);
    assert_string_equal(reg->nodes[0].id, "broker:h:1");
    assert_int_equal(reg->nodes[0].seen_ms, 1700000001000ULL);
    assert_true(reg->nodes[0].alive);
    assert_int_equal(reg->nodes[0].n_fields, 2);
    assert_int_equal(sl_status_node_num(&reg->nodes[0], "queue_depth"), 4);
    assert_string_equal(reg->nodes[1].id, "worker:h:2");
    assert_false(reg->nodes[1].alive);
    assert_int_equal(reg->nodes[1].n_fields, 0);
    sl_status_registry_destroy(&reg);
}

/* Redis goes away between two nodes' hashes: the first node's records
 * must be freed with the rest (they once leaked). */
static void
test_fetch_connection_lost(void **state)
{
    static const struct exchange script[] = {
        {"TIME", R_TIME},  {"ZRANGE", R_NODES}, {"HGETALL", R_BROKER},
        {"HGETALL", NULL}, {NULL, NULL},
    };
    struct sl_redis_url url = {.path = sock_path};
    struct sl_status_registry *reg = NULL;
    struct fake_redis f;
    char *error = NULL, *out = NULL;
    size_t len = 0;
    FILE *fp;

    (void)state;
    fake_start(&f, script);
    assert_int_equal(sl_status_fetch(&url, &reg, &error), -1);
    fake_finish(&f, 4);
    assert_null(reg);
    assert_non_null(error);
    free(error);

    /* the command says so, as degraded, with 69 */
    fake_start(&f, script);
    fp = open_memstream(&out, &len);
    assert_int_equal(sl_status_run(&url, "unix:fake", false, fp), 69);
    fclose(fp);
    fake_finish(&f, 4);
    assert_non_null(strstr(out, "sluice status: DEGRADED\n  registry unreachable (unix:fake): "));
    free(out);
}

/* sluice:nodes is not a sorted set: Redis' error is the reason given. */
static void
test_fetch_wrong_type(void **state)
{
    static const struct exchange script[] = {
        {"TIME", R_TIME},
        {"ZRANGE", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
        {NULL, NULL},
    };
    struct sl_redis_url url = {.path = sock_path};
    struct fake_redis f;
    char *out = NULL;
    size_t len = 0;
    FILE *fp;

    (void)state;
    fake_start(&f, script);
    fp = open_memstream(&out, &len);
    assert_int_equal(sl_status_run(&url, "unix:fake", true, fp), 69);
    fclose(fp);
    fake_finish(&f, 2);
    assert_string_equal(out, "{\"state\":\"degraded\",\"reasons\":[\"registry unreachable: mail "
                             "keeps flowing, status unknown\"],\"registry\":{\"url\":\"unix:"
                             "fake\",\"reachable\":false,\"error\":\"WRONGTYPE Operation against "
                             "a key holding the wrong kind of value\"},\"nodes\":[],\"queue\":"
                             "null,\"origins\":[]}\n");
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_cases),
        cmocka_unit_test(test_summary_limits),
        cmocka_unit_test(test_print_text),
        cmocka_unit_test(test_print_json),
        cmocka_unit_test(test_from_json_round_trip),
        cmocka_unit_test(test_from_json_refused),
        cmocka_unit_test(test_fetch),
        cmocka_unit_test(test_fetch_connection_lost),
        cmocka_unit_test(test_fetch_wrong_type),
    };
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/sluice-test-status.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(sock_path, sizeof(sock_path), "%s/redis.sock", dir);
    signal(SIGPIPE, SIG_IGN);
    sl_log_open("test_status", SL_LOG_STDERR, LOG_NOTICE);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(sock_path);
    rmdir(dir);
    return rc;
}
