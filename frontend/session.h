/* session.h - one LMTP/SMTP conversation with an origin Postfix on port
 * 10024 (docs/protocol.md). What frontend.c needs of it. */
#ifndef SLUICE_FRONTEND_SESSION_H
#define SLUICE_FRONTEND_SESSION_H

#include <event2/util.h>

struct fe_context;
struct fe_origin;

/* Starts a session on an accepted connection (fd, now owned by the
 * session) and greets the client. The session keeps itself on
 * fe->sessions until it ends, and the current settings (fe->settings,
 * whose table origin is from) until then. */
void session_new(struct fe_context *fe, evutil_socket_t fd, const char *peer_ip,
                 unsigned peer_port, struct fe_origin *origin, unsigned local_port);

/* Shutdown: idle sessions are told 421 and closed; busy ones finish their
 * message first. */
void session_shutdown_all(struct fe_context *fe);
/* Closes every session at once (nothing is answered). */
void session_destroy_all(struct fe_context *fe);

#endif
