/* quar_pdp.h - the release socket (quarantine.release_socket): amavisd-new's
 * AM.PDP protocol on a unix socket, so that Debian's amavisd-release and
 * the web front ends that call it release from sluice's quarantine
 * (docs/quarantine.md, "Release").
 *
 * Each connection may carry several requests, answered in order; a
 * request (lib/quar: sl_pdp_feed_line, sl_pdp_answer) runs on a store
 * thread (quar_pool.h), since a release reads the store and sends the
 * message to Postfix. The socket is made at start (a stale one from a
 * dead process is replaced), mode 0660. Runs in the frontend's loop. */
#ifndef SLUICE_FRONTEND_QUAR_PDP_H
#define SLUICE_FRONTEND_QUAR_PDP_H

#include <event2/event.h>

struct sl_config;
struct fe_qpool;
struct fe_pdp_server;

/* NULL with *error_r when the socket cannot be made. */
struct fe_pdp_server *fe_pdp_server_new(struct event_base *base, const struct sl_config *config,
                                        struct fe_qpool *pool, const char *hostname,
                                        char **error_r);
/* Closes the socket (and removes it) and every connection. *sp may be NULL. */
void fe_pdp_server_destroy(struct fe_pdp_server **sp);

#endif
