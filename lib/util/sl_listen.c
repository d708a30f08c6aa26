/* sl_listen.c - listening sockets, bound here or passed in by systemd
 * (libsystemd's sd_listen_fds(3)). */
#include "util/sl_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include "util/sl_addr.h"

static int
fd_set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

int
sl_listen_tcp(const char *hostport, int backlog, char **error_r)
{
    char *host, portbuf[16];
    unsigned port;
    int fd = -1, one = 1, gai, err;

    if (sl_hostport_parse(hostport, &host, &port) != 0) {
        *error_r = sl_asprintf("bad address \"%s\" (expected host:port)", hostport);
        return -1;
    }
    snprintf(portbuf, sizeof(portbuf), "%u", port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM,
                             .ai_family = AF_UNSPEC};
    struct addrinfo *res = NULL;
    gai = getaddrinfo(host, portbuf, &hints, &res);
    free(host);
    if (gai != 0) {
        *error_r = sl_asprintf("%s: %s", hostport, gai_strerror(gai));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        /* a restart binds again at once, whatever TIME_WAIT the old one left */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        err = errno;
        *error_r = sl_asprintf("cannot listen on %s: %s", hostport, strerror(err));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* systemd checks nothing about what the unit passes: a sluice.socket with
 * ListenDatagram= or ListenStream=/run/x.sock must fail at start, loudly,
 * not after the first client arrives. Unix sockets are refused because
 * origins are told apart by the client's IP address. */
static int
check_listen_fd(int fd, char **error_r)
{
    int r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
    if (r < 0) {
        *error_r = sl_asprintf("LISTEN_FDS: descriptor %d: %s", fd, strerror(-r));
        return -1;
    }
    if (r == 0) {
        *error_r = sl_asprintf("LISTEN_FDS: descriptor %d is not a listening stream socket "
                               "(ListenStream= in the .socket unit)",
                               fd);
        return -1;
    }
    if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
        *error_r = sl_asprintf("LISTEN_FDS: descriptor %d is not a TCP socket (origins are "
                               "matched by IP address: ListenStream=HOST:PORT)",
                               fd);
        return -1;
    }
    if (fd_set_flags(fd) != 0) {
        *error_r = sl_asprintf("LISTEN_FDS: descriptor %d: fcntl: %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

int
sl_listen_fds_systemd(int **fds_r, char **error_r)
{
    /* libsystemd reads LISTEN_PID, LISTEN_FDS (a count for another process
     * is not ours: inherited), marks the descriptors close-on-exec and
     * removes the variables, LISTEN_FDNAMES included, whatever they said:
     * nothing we start may take them for its own. */
    int n = sd_listen_fds(1);

    *fds_r = NULL;
    if (n < 0) {
        *error_r =
            sl_asprintf("LISTEN_FDS: the variables systemd passes are unusable: %s", strerror(-n));
        return -1;
    }
    if (n == 0)
        return 0;
    int *fds = sl_calloc((size_t)n, sizeof(*fds));
    for (int i = 0; i < n; i++) {
        fds[i] = SD_LISTEN_FDS_START + i;
        if (check_listen_fd(fds[i], error_r) != 0) {
            free(fds);
            return -1;
        }
    }
    *fds_r = fds;
    return n;
}

void
sl_listen_describe(int fd, char *buf, size_t len, unsigned *port_r)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char ip[64];
    unsigned port = 0;

    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0)
        ss.ss_family = AF_UNSPEC;
    sl_sockaddr_ip((struct sockaddr *)&ss, ip, sizeof(ip), &port);
    snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
    if (port_r != NULL)
        *port_r = port;
}
