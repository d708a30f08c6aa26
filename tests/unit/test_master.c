/* test_master.c - the supervisor: restarts, backoff, stop, exit status.
 *
 * Each test forks a process that runs sl_master_run(); its children report
 * their pid, the time they started and how many children were restarted
 * before them through a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/sl_master.h"

static int report_fd = -1; /* children write here */

struct report {
    pid_t pid;
    unsigned long long ms;
    unsigned restarts; /* sl_master_restarts() in the child */
};

static void
child_report(void)
{
    struct report r = {.pid = getpid(), .ms = sl_now_mono_ms(), .restarts = sl_master_restarts()};
    if (write(report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(99);
}

/* 1 and the next report, or 0 if none came within ms. */
static int
read_report(int fd, struct report *r, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) != 1)
        return 0;
    return read(fd, r, sizeof(*r)) == (ssize_t)sizeof(*r);
}

struct master {
    pid_t pid;
    int fd; /* read end of the reports */
};

static struct master
master_start(int (*child_main)(void *), unsigned min_ms, unsigned max_ms)
{
    int p[2];
    struct master m;
    assert_int_equal(pipe(p), 0);
    m.pid = fork();
    assert_true(m.pid >= 0);
    if (m.pid == 0) {
        close(p[0]);
        report_fd = p[1];
        struct sl_master_params params = {.label = "test",
                                          .child_main = child_main,
                                          .backoff_min_ms = min_ms,
                                          .backoff_max_ms = max_ms,
                                          .stable_ms = 60000};
        _exit(sl_master_run(&params));
    }
    close(p[1]);
    m.fd = p[0];
    return m;
}

static int
master_wait(struct master *m)
{
    int status;
    for (int i = 0; i < 100; i++) {
        pid_t r = waitpid(m->pid, &status, WNOHANG);
        if (r == m->pid) {
            close(m->fd);
            assert_true(WIFEXITED(status));
            return WEXITSTATUS(status);
        }
        usleep(50 * 1000);
    }
    kill(m->pid, SIGKILL);
    fail_msg("the master did not exit within 5 s");
    return -1;
}

/* ---- children ------------------------------------------------------------ */

static int
child_sleeps(void *ctx)
{
    sl_master_child_ready();
    child_report();
    while (kill(getpid(), 0) == 0) /* until a signal ends it */
        pause();
    return 0;
}

static int
child_exits_1(void *ctx)
{
    child_report();
    return 1;
}

static int
child_config_error(void *ctx)
{
    child_report();
    return 78;
}

static volatile sig_atomic_t got_term;
static void
on_term(int sig)
{
    got_term = 1;
}

/* Slow to start: a stop passed on meanwhile must wait for its handler,
 * not kill it. Returns 5 once it has seen the signal. */
static int
child_slow_start(void *ctx)
{
    child_report();
    usleep(300 * 1000);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SL_MASTER_STOP_SIGNAL, &sa, NULL);
    sl_master_child_ready();
    while (!got_term)
        pause();
    return 5;
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_restart_after_sigkill(void **state)
{
    struct master m = master_start(child_sleeps, 50, 1000);
    struct report a, b;
    assert_true(read_report(m.fd, &a, 5000));
    assert_int_equal(kill(a.pid, SIGKILL), 0);
    assert_true(read_report(m.fd, &b, 5000));
    assert_true(b.pid != a.pid);
    /* the new child knows it replaces one (the metrics say so) */
    assert_int_equal(a.restarts, 0);
    assert_int_equal(b.restarts, 1);
    assert_int_equal(kill(m.pid, 0), 0); /* the master is the same */
    /* the new child is the master's, and gets the stop, passed on as
     * SL_MASTER_STOP_SIGNAL: it has no handler, so that kills it and the
     * master exits 128 + its number */
    assert_int_equal(kill(m.pid, SIGTERM), 0);
    assert_int_equal(master_wait(&m), 128 + SL_MASTER_STOP_SIGNAL);
    assert_int_equal(kill(b.pid, 0), -1);
}

static void
test_backoff_grows(void **state)
{
    struct master m = master_start(child_exits_1, 40, 160);
    struct report r[6];
    for (int i = 0; i < 6; i++) {
        assert_true(read_report(m.fd, &r[i], 5000));
        assert_int_equal(r[i].restarts, i);
    }
    /* waits of at least 40, 80, 160, 160, 160 ms (lower bounds only: a
     * loaded machine may be slower, never faster) */
    const unsigned want[5] = {40, 80, 160, 160, 160};
    for (int i = 0; i < 5; i++) {
        unsigned long long gap = r[i + 1].ms - r[i].ms;
        if (gap + 2 < want[i])
            fail_msg("restart %d after %llu ms, expected at least %u", i + 1, gap, want[i]);
    }
    /* stopped while a child runs: its status (1); during a wait: 0 */
    kill(m.pid, SIGTERM);
    int rc = master_wait(&m);
    assert_true(rc == 0 || rc == 1);
}

static void
test_stop_during_backoff(void **state)
{
    struct master m = master_start(child_exits_1, 2000, 4000);
    struct report r;
    assert_true(read_report(m.fd, &r, 5000));
    usleep(500 * 1000); /* the child has exited; the master waits 2 s */
    unsigned long long t0 = sl_now_mono_ms();
    assert_int_equal(kill(m.pid, SIGTERM), 0);
    assert_int_equal(master_wait(&m), 0);
    /* at once, not after the wait (master_wait polls every 50 ms) */
    assert_true(sl_now_mono_ms() - t0 < 1000);
}

static void
test_config_error_not_restarted(void **state)
{
    struct master m = master_start(child_config_error, 20, 100);
    struct report r;
    assert_true(read_report(m.fd, &r, 5000));
    assert_int_equal(master_wait(&m), 78);
    assert_false(read_report(m.fd, &r, 100)); /* fd closed by master_wait: no second */
}

static void
test_stop_during_start_up(void **state)
{
    struct master m = master_start(child_slow_start, 20, 100);
    struct report r;
    assert_true(read_report(m.fd, &r, 5000));
    /* the child is in its 300 ms start-up, signals blocked */
    assert_int_equal(kill(m.pid, SIGTERM), 0);
    assert_int_equal(master_wait(&m), 5);
}

/* A signalled process group gives the child two copies of one stop (the
 * sender's and the master's), in either order: one request; the next pair
 * is the second request. */
static void
test_stop_count_copies(void **state)
{
    (void)state;
    struct sl_stop_count c = {0};
    assert_int_equal(sl_stop_count_add(&c, SIGTERM), 1);
    assert_int_equal(sl_stop_count_add(&c, SL_MASTER_STOP_SIGNAL), 0);
    assert_int_equal(sl_stop_count_add(&c, SL_MASTER_STOP_SIGNAL), 2);
    assert_int_equal(sl_stop_count_add(&c, SIGTERM), 0);

    struct sl_stop_count m = {0}; /* the master's copy first */
    assert_int_equal(sl_stop_count_add(&m, SL_MASTER_STOP_SIGNAL), 1);
    assert_int_equal(sl_stop_count_add(&m, SIGTERM), 0);
    assert_int_equal(sl_stop_count_add(&m, SIGINT), 2);
}

/* Only one source: every signal is a request (TERM to the master alone, as
 * systemd's KillMode=mixed does; Ctrl-C, which the master does not pass on;
 * a child run without a master). */
static void
test_stop_count_one_source(void **state)
{
    (void)state;
    struct sl_stop_count a = {0}, b = {0};
    assert_int_equal(sl_stop_count_add(&a, SL_MASTER_STOP_SIGNAL), 1);
    assert_int_equal(sl_stop_count_add(&a, SL_MASTER_STOP_SIGNAL), 2);
    assert_int_equal(sl_stop_count_add(&a, SL_MASTER_STOP_SIGNAL), 3);
    assert_int_equal(sl_stop_count_add(&b, SIGINT), 1);
    assert_int_equal(sl_stop_count_add(&b, SIGINT), 2);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_after_sigkill),
        cmocka_unit_test(test_backoff_grows),
        cmocka_unit_test(test_stop_during_backoff),
        cmocka_unit_test(test_config_error_not_restarted),
        cmocka_unit_test(test_stop_during_start_up),
        cmocka_unit_test(test_stop_count_copies),
        cmocka_unit_test(test_stop_count_one_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
