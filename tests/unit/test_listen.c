/* test_listen.c - listening sockets: binding, and systemd's LISTEN_FDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "util/sl_listen.h"

/* ---- the variables (sd_listen_fds(3), read by libsystemd) -------------- */

struct fds_case {
    const char *listen_pid; /* "SELF": our pid */
    const char *listen_fds;
    int want; /* count, 0 not ours, -1 error */
};

/* Only the cases that need no descriptor: a count of ours with open
 * sockets is test_fds_systemd's. */
static const struct fds_case fds_cases[] = {
    {NULL, NULL, 0}, /* not socket-activated */
    {"SELF", NULL, 0},  {NULL, "2", 0},
    {"SELF", "0", -1}, /* systemd never passes none */
    {"1", "2", 0},     /* meant for another process, inherited */
    {"SELF", "", -1},   {"SELF", "x", -1},
    {"SELF", "-1", -1}, {"SELF", "99999999999999999999999", -1},
    {"abc", "1", -1},
};

static void
test_fds_variables(void **state)
{
    char self[32];
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    for (size_t i = 0; i < sizeof(fds_cases) / sizeof(fds_cases[0]); i++) {
        const struct fds_case *c = &fds_cases[i];
        const char *pid =
            c->listen_pid && strcmp(c->listen_pid, "SELF") == 0 ? self : c->listen_pid;
        char *error = NULL;
        int *fds = NULL;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        if (pid)
            setenv("LISTEN_PID", pid, 1);
        if (c->listen_fds)
            setenv("LISTEN_FDS", c->listen_fds, 1);
        int n = sl_listen_fds_systemd(&fds, &error);
        if (n != c->want)
            fail_msg("case %zu (LISTEN_PID=%s LISTEN_FDS=%s): got %d, want %d (%s)", i,
                     pid ? pid : "(unset)", c->listen_fds ? c->listen_fds : "(unset)", n, c->want,
                     error ? error : "no error");
        if (n < 0) {
            assert_non_null(error);
            /* the message names the variable at fault */
            assert_non_null(strstr(error, "LISTEN_"));
        } else {
            assert_null(error);
        }
        /* whatever they said, they are gone */
        assert_null(getenv("LISTEN_PID"));
        assert_null(getenv("LISTEN_FDS"));
        free(error);
        free(fds);
    }
}

/* ---- binding ------------------------------------------------------------ */

/* "127.0.0.1:PORT" with a port the kernel just called free (host:port
 * wants a real port, not 0). */
static const char *
free_addr(void)
{
    static char buf[64];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    snprintf(buf, sizeof(buf), "127.0.0.1:%u", ntohs(sin.sin_port));
    return buf;
}

static void
test_listen_tcp(void **state)
{
    char *error = NULL, where[96];
    unsigned port = 0;
    int fd = sl_listen_tcp(free_addr(), SL_LISTEN_BACKLOG, &error);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    sl_listen_describe(fd, where, sizeof(where), &port);
    assert_true(port > 0);
    assert_non_null(strstr(where, "127.0.0.1:"));

    /* the port is taken now: the error says which */
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%u", port);
    assert_int_equal(sl_listen_tcp(taken, 16, &error), -1);
    assert_non_null(strstr(error, taken));
    free(error);
    error = NULL;
    close(fd);

    /* ... and free again at once after close (SO_REUSEADDR) */
    fd = sl_listen_tcp(taken, 16, &error);
    assert_true(fd >= 0);
    close(fd);

    assert_int_equal(sl_listen_tcp("no-port-here", 16, &error), -1);
    assert_non_null(strstr(error, "no-port-here"));
    free(error);
}

/* ---- socket activation with real descriptors ------------------------------ */

/* Puts sockets on descriptors 3.. as systemd would, sets the variables
 * for this process, and runs sl_listen_fds_systemd(). */
static int
activate(int *socks, int n, int **fds_r, char **error_r)
{
    char buf[32];
    for (int i = 0; i < n; i++) {
        /* first out of the way: a new socket may have got number 3 itself */
        int high = fcntl(socks[i], F_DUPFD, 50);
        assert_true(high >= 50);
        close(socks[i]);
        socks[i] = high;
    }
    for (int i = 0; i < n; i++) {
        assert_true(dup2(socks[i], SD_LISTEN_FDS_START + i) == SD_LISTEN_FDS_START + i);
        close(socks[i]);
    }
    snprintf(buf, sizeof(buf), "%ld", (long)getpid());
    setenv("LISTEN_PID", buf, 1);
    snprintf(buf, sizeof(buf), "%d", n);
    setenv("LISTEN_FDS", buf, 1);
    setenv("LISTEN_FDNAMES", "sluice", 1);
    return sl_listen_fds_systemd(fds_r, error_r);
}

static int
tcp_socket(bool do_listen)
{
    char *error = NULL;
    if (do_listen)
        return sl_listen_tcp(free_addr(), 8, &error);
    return socket(AF_INET, SOCK_STREAM, 0);
}

static void
test_fds_systemd(void **state)
{
    int socks[2], *fds = NULL, n;
    char *error = NULL;
    int saved3 = fcntl(3, F_DUPFD_CLOEXEC, 100), saved4 = fcntl(4, F_DUPFD_CLOEXEC, 100);

    /* two TCP listeners, blocking as systemd leaves them */
    socks[0] = tcp_socket(true);
    socks[1] = tcp_socket(true);
    fcntl(socks[0], F_SETFL, 0);
    fcntl(socks[1], F_SETFL, 0);
    n = activate(socks, 2, &fds, &error);
    assert_int_equal(n, 2);
    assert_int_equal(fds[0], 3);
    assert_int_equal(fds[1], 4);
    assert_true(fcntl(3, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(4, F_GETFD) & FD_CLOEXEC);
    /* nothing we start may take them for its own */
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
    free(fds);
    close(4);

    /* not a listener */
    socks[0] = tcp_socket(false);
    assert_int_equal(activate(socks, 1, &fds, &error), -1);
    assert_non_null(strstr(error, "descriptor 3 is not a listening stream socket"));
    free(error);
    error = NULL;

    /* a datagram socket (ListenDatagram=) */
    socks[0] = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(activate(socks, 1, &fds, &error), -1);
    assert_non_null(strstr(error, "not a listening stream socket"));
    free(error);
    error = NULL;

    /* a Unix socket: origins are matched by IP address */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "/tmp/sluice-test-listen.%ld", (long)getpid());
    unlink(un.sun_path);
    socks[0] = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(socks[0], (struct sockaddr *)&un, sizeof(un)), 0);
    assert_int_equal(listen(socks[0], 4), 0);
    assert_int_equal(activate(socks, 1, &fds, &error), -1);
    assert_non_null(strstr(error, "not a TCP socket"));
    free(error);
    error = NULL;
    unlink(un.sun_path);

    /* a descriptor that is not open at all */
    close(3);
    setenv("LISTEN_PID", "1", 1); /* for someone else: ignored, and removed */
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(sl_listen_fds_systemd(&fds, &error), 0);
    assert_null(getenv("LISTEN_PID"));
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", (long)getpid());
    setenv("LISTEN_PID", buf, 1);
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(sl_listen_fds_systemd(&fds, &error), -1);
    assert_non_null(strstr(error, "LISTEN_FDS"));
    free(error);

    if (saved3 >= 0) {
        dup2(saved3, 3);
        close(saved3);
    }
    if (saved4 >= 0) {
        dup2(saved4, 4);
        close(saved4);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fds_variables),
        cmocka_unit_test(test_listen_tcp),
        cmocka_unit_test(test_fds_systemd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
