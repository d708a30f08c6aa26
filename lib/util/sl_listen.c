/* sl_listen.c - listening sockets, bound here or passed in by systemd. */
#include "util/sl_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
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

/* A decimal number and nothing else, no sign, no overflow. */
static int
parse_decimal(const char *s, unsigned long *val_r)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *val_r = strtoul(s, &end, 10);
    return errno != 0 || *end != '\0' ? -1 : 0;
}

int
sl_listen_fds_parse(const char *listen_pid, const char *listen_fds, pid_t pid, char **error_r)
{
    unsigned long lpid, n;

    if (listen_pid == NULL || listen_fds == NULL)
        return 0;
    if (parse_decimal(listen_pid, &lpid) != 0 || lpid == 0) {
        *error_r = sl_asprintf("LISTEN_PID=\"%s\": not a process id", listen_pid);
        return -1;
    }
    /* Set for a parent of ours and inherited: not for us (sd_listen_fds(3)). */
    if (lpid != (unsigned long)pid)
        return 0;
    if (parse_decimal(listen_fds, &n) != 0) {
        *error_r = sl_asprintf("LISTEN_FDS=\"%s\": not a number", listen_fds);
        return -1;
    }
    if (n > (unsigned long)(INT_MAX - SL_LISTEN_FDS_START)) {
        *error_r = sl_asprintf("LISTEN_FDS=\"%s\": too many descriptors", listen_fds);
        return -1;
    }
    return (int)n;
}

/* systemd checks nothing about what the unit passes: a sluice.socket with
 * ListenDatagram= or ListenStream=/run/x.sock must fail at start, loudly,
 * not after the first client arrives. Unix sockets are refused because
 * origins are told apart by the client's IP address. */
static int
check_listen_fd(int fd, char **error_r)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        *error_r = sl_asprintf("LISTEN_FDS: descriptor %d: %s", fd, strerror(errno));
        return -1;
    }
    len = sizeof(listening);
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        !listening) {
        *error_r = sl_asprintf("LISTEN_FDS: descriptor %d is not a listening stream socket "
                               "(ListenStream= in the .socket unit)",
                               fd);
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
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
    int n = sl_listen_fds_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getpid(), error_r);

    *fds_r = NULL;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (n <= 0)
        return n;
    int *fds = sl_calloc((size_t)n, sizeof(*fds));
    for (int i = 0; i < n; i++) {
        fds[i] = SL_LISTEN_FDS_START + i;
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
