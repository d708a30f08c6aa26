/* sl_listen.h - listening TCP sockets: bound here, or passed in by systemd
 * (socket activation: libsystemd's sd_listen_fds(3), descriptors from
 * SD_LISTEN_FDS_START, 3, on). Knows nothing of mail.
 *
 * The sockets are made before any role starts, so that a supervisor (the
 * master, sl_master.h) can hold them while its child comes and goes: a
 * connection that arrives while no child runs waits in the kernel's listen
 * backlog instead of being refused. */
#ifndef SL_LISTEN_H
#define SL_LISTEN_H

#include <stddef.h>
#include <sys/types.h>
#include "util/sl_util.h"

/* The listen backlog: connections the kernel completes and holds while the
 * process that accepts them is busy or being restarted (capped by the
 * kernel at net.core.somaxconn, 4096 on current Linux). */
#define SL_LISTEN_BACKLOG 1024

/* Binds and listens on "host:port" ("127.0.0.1:10024", "[::1]:10024"),
 * SO_REUSEADDR (a restart may bind at once), non-blocking, close-on-exec.
 * Returns the descriptor, or -1 with a malloc'ed message in *error_r that
 * names what (the caller prefixes the config key). */
SL_WARN_UNUSED int sl_listen_tcp(const char *hostport, int backlog, char **error_r);

/* Socket activation: sd_listen_fds(3) reads LISTEN_PID/LISTEN_FDS (a
 * malformed value is an error, a LISTEN_PID of another process means the
 * variables were inherited and are not ours) and removes LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES from the environment (nothing we start may
 * take them for its own); then checks that every descriptor passed is a
 * listening TCP (IPv4 or IPv6) stream socket and makes each non-blocking
 * and close-on-exec. Returns the count (0: not socket-activated) and a malloc'ed
 * array of descriptors in *fds_r; -1 with *error_r. */
SL_WARN_UNUSED int sl_listen_fds_systemd(int **fds_r, char **error_r);

/* "127.0.0.1:10024" or "[::1]:10024" for a socket's local address, and
 * its port; for log lines about descriptors that came from systemd. */
void sl_listen_describe(int fd, char *buf, size_t len, unsigned *port_r);

#endif
