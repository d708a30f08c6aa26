/* test_master.c - the supervisor: restarts, backoff, hangs, stop, exit status.
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
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/sl_master.h"
#include "util/sl_notify.h"

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

static unsigned test_hang_ms, test_start_ms; /* 0: the defaults */

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
                                          .stable_ms = 60000,
                                          .hang_ms = test_hang_ms,
                                          .start_ms = test_start_ms};
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

/* Ready, then alive every 20 ms until a signal ends it (or SIGSTOP
 * freezes it). */
static int
child_serves(void *ctx)
{
    sl_master_child_ready();
    assert_true(sl_master_child_channel() >= 0);
    child_report();
    sl_notify_ready();
    for (;;) {
        sl_notify_alive();
        usleep(20 * 1000);
    }
    return 0;
}

/* ---- a systemd stand-in: NOTIFY_SOCKET -------------------------------------- */

struct note {
    char text[256];
    unsigned long long ms;
};

/* A datagram socket where sd_notify(3) sends, named in NOTIFY_SOCKET, and
 * WATCHDOG_USEC for the master to come. */
static int
notify_listen(char *path, size_t len, const char *watchdog_usec)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    snprintf(path, len, "/tmp/sluice-test-notify.%ld", (long)getpid());
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", watchdog_usec, 1);
    unsetenv("WATCHDOG_PID");
    return fd;
}

/* Collects what arrives for ms into notes (at most n); returns the count. */
static size_t
notes_collect(int fd, struct note *notes, size_t n, unsigned ms)
{
    unsigned long long end = sl_now_mono_ms() + ms;
    size_t got = 0;
    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        if (now >= end || got == n)
            return got;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) != 1)
            continue;
        ssize_t r = recv(fd, notes[got].text, sizeof(notes[got].text) - 1, 0);
        if (r <= 0)
            continue;
        notes[got].text[r] = '\0';
        notes[got].ms = sl_now_mono_ms();
        got++;
    }
}

static size_t
notes_count(const struct note *notes, size_t n, const char *what)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += strstr(notes[i].text, what) != NULL;
    return c;
}

/* ---- tests ------------------------------------------------------------------ */

/* The policy alone: a child that served comes back at once (one start per
 * min_ms at most); one that fails to start backs off, doubling. */
static void
test_backoff_policy(void **state)
{
    (void)state;
    struct sl_master_backoff b;
    sl_master_backoff_init(&b, 1000, 30000, 30000);
    /* dies before it is ready, again and again: 1, 2, 4, 8, 16, 30, 30 s */
    const unsigned want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < SL_N_ELEMENTS(want); i++)
        assert_int_equal(sl_master_backoff_next(&b, false, 200), want[i]);
    /* one that was ready and served for 10 s: at once, and the doubling is over */
    assert_int_equal(sl_master_backoff_next(&b, true, 10000), 0);
    assert_int_equal(sl_master_backoff_next(&b, false, 200), 1000);
    /* killed every 10 s while serving: at once, every time */
    for (int i = 0; i < 20; i++)
        assert_int_equal(sl_master_backoff_next(&b, true, 10000), 0);
    /* ready, but dead 300 ms after its start: no sooner than 1 s after it */
    assert_int_equal(sl_master_backoff_next(&b, true, 300), 700);
    /* a start that failed after stable_ms is not a loop */
    assert_int_equal(sl_master_backoff_next(&b, false, 100), 1000);
    assert_int_equal(sl_master_backoff_next(&b, false, 100), 2000);
    assert_int_equal(sl_master_backoff_next(&b, false, 40000), 1000);
}

/* A child that was ready and is killed: the next one starts at once, not
 * after the back-off (here 1 s). */
static void
test_ready_child_restarts_at_once(void **state)
{
    struct master m = master_start(child_serves, 1000, 4000);
    struct report a, b;
    assert_true(read_report(m.fd, &a, 5000));
    usleep(1100 * 1000); /* it has served past min_ms */
    unsigned long long t0 = sl_now_mono_ms();
    assert_int_equal(kill(a.pid, SIGKILL), 0);
    assert_true(read_report(m.fd, &b, 5000));
    assert_true(b.pid != a.pid);
    if (b.ms - t0 > 500)
        fail_msg("the ready child was restarted after %llu ms, expected at once", b.ms - t0);
    kill(m.pid, SIGTERM);
    assert_int_equal(master_wait(&m), 128 + SL_MASTER_STOP_SIGNAL);
}

/* A ready child that stops answering (SIGSTOP: as a deadlock looks from
 * outside) is killed after hang_ms and replaced. */
static void
test_hung_child_killed(void **state)
{
    test_hang_ms = 300;
    struct master m = master_start(child_serves, 100, 1000);
    test_hang_ms = 0;
    struct report a, b;
    assert_true(read_report(m.fd, &a, 5000));
    usleep(200 * 1000);
    unsigned long long t0 = sl_now_mono_ms();
    assert_int_equal(kill(a.pid, SIGSTOP), 0);
    assert_true(read_report(m.fd, &b, 5000));
    assert_true(b.pid != a.pid);
    unsigned long long took = b.ms - t0;
    if (took < 250 || took > 2000)
        fail_msg("the stopped child was replaced after %llu ms, expected about 300", took);
    assert_int_equal(kill(a.pid, 0), -1); /* killed, and reaped by the master */
    kill(m.pid, SIGTERM);
    assert_int_equal(master_wait(&m), 128 + SL_MASTER_STOP_SIGNAL);
}

/* Under systemd: READY=1 once the child is ready, WATCHDOG=1 while it
 * answers, none while a stopped child does not (until its successor is
 * ready), STOPPING=1 at a stop. */
static void
test_systemd_notify(void **state)
{
    char path[108];
    static struct note notes[400];
    int fd = notify_listen(path, sizeof(path), "400000"); /* a ping every 200 ms */
    test_hang_ms = 1500;                                  /* heartbeat 375 ms */
    struct master m = master_start(child_serves, 100, 1000);
    test_hang_ms = 0;
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    struct report a, b;
    assert_true(read_report(m.fd, &a, 5000));

    size_t n = notes_collect(fd, notes, 100, 1000);
    assert_int_equal(notes_count(notes, n, "READY=1"), 1);
    if (notes_count(notes, n, "WATCHDOG=1") < 3)
        fail_msg("%zu watchdog pings in 1 s, expected about 5",
                 notes_count(notes, n, "WATCHDOG=1"));

    unsigned long long t0 = sl_now_mono_ms();
    assert_int_equal(kill(a.pid, SIGSTOP), 0);
    n = notes_collect(fd, notes, 400, 3500);
    assert_true(read_report(m.fd, &b, 1000)); /* replaced */
    assert_true(b.pid != a.pid);
    /* the longest silence between pings after the stop: the child was
     * not answering, so the master did not vouch for it */
    unsigned long long last = t0, gap = 0, resumed = 0;
    for (size_t i = 0; i < n; i++) {
        if (strstr(notes[i].text, "WATCHDOG=1") == NULL)
            continue;
        if (notes[i].ms - last > gap)
            gap = notes[i].ms - last;
        last = notes[i].ms;
        if (notes[i].ms > b.ms)
            resumed++;
    }
    if (gap < 600)
        fail_msg("pings went on while the child was stopped (longest gap %llu ms)", gap);
    if (resumed < 2)
        fail_msg("pings did not resume for the new child (%llu after it started)", resumed);
    assert_int_equal(notes_count(notes, n, "READY=1"), 0); /* once per service */

    kill(m.pid, SIGTERM);
    n = notes_collect(fd, notes, 100, 300);
    assert_true(notes_count(notes, n, "STOPPING=1") >= 1);
    assert_int_equal(master_wait(&m), 128 + SL_MASTER_STOP_SIGNAL);
    close(fd);
    unlink(path);
}

/* A child that never says it is ready is killed after start_ms, and the
 * next one waits the back-off. */
static void
test_child_never_ready_killed(void **state)
{
    test_start_ms = 300;
    struct master m = master_start(child_sleeps, 200, 1000);
    test_start_ms = 0;
    struct report a, b;
    assert_true(read_report(m.fd, &a, 5000));
    assert_true(read_report(m.fd, &b, 5000));
    assert_true(b.pid != a.pid);
    unsigned long long took = b.ms - a.ms;
    if (took < 450 || took > 3000)
        fail_msg("the next child started %llu ms after the first, expected 300 + 200", took);
    kill(m.pid, SIGTERM);
    int rc = master_wait(&m);
    assert_true(rc == 128 + SL_MASTER_STOP_SIGNAL || rc == 0);
}

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
        cmocka_unit_test(test_backoff_policy),
        cmocka_unit_test(test_ready_child_restarts_at_once),
        cmocka_unit_test(test_hung_child_killed),
        cmocka_unit_test(test_child_never_ready_killed),
        cmocka_unit_test(test_systemd_notify),
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
