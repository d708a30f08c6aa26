/* sl_zap.h - the broker's allow-list of CURVE public keys by role, and its
 * ZAP handler (ZeroMQ RFC 27).
 *
 * The allow-list is a directory (security.allow_dir): the role of a key is
 * given by its subdirectory, frontend/NAME.pub, worker/NAME.pub,
 * broker/NAME.pub, or by its file name at the top, frontend-NAME.pub,
 * worker-NAME.pub, broker-NAME.pub. Other files are ignored with a
 * warning; a .pub file that holds no valid key makes the load fail (a
 * reload then keeps the previous list).
 *
 * The handler runs in its own thread on inproc://zeromq.zap.01 of the
 * broker's ZeroMQ context and answers every CURVE handshake on sockets
 * whose ZMQ_ZAP_DOMAIN is SL_ZAP_DOMAIN: 200 for a key on the list in a
 * role admitted there, with User-Id "ROLE[+ROLE]:KEYID" (the broker
 * reads it back with sl_zap_msg_roles() to hold each peer to its role),
 * 400 for anything else, logged with the key id (never a secret). */
#ifndef SL_ZAP_H
#define SL_ZAP_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>
#include "util/sl_util.h"

#define SL_ZAP_DOMAIN "sluice-broker"
#define SL_ZAP_ENDPOINT "inproc://zeromq.zap.01"    /* fixed by RFC 27 */

enum sl_role {
    SL_ROLE_FRONTEND = 1,
    SL_ROLE_WORKER = 2,
    SL_ROLE_BROKER = 4,
};

struct sl_allowlist;

/* Reads dir. NULL and a malloc'ed *error_r naming the file on error. */
struct sl_allowlist *sl_allowlist_load(const char *dir, char **error_r);
void sl_allowlist_destroy(struct sl_allowlist **listp);
/* The roles (enum sl_role bits) of a 32-byte public key; 0 if unknown.
 * *name_r: its file name (owned by the list), or NULL. */
unsigned sl_allowlist_roles(const struct sl_allowlist *list, const unsigned char key[32],
                            const char **name_r);
/* Keys that have role. */
size_t sl_allowlist_count(const struct sl_allowlist *list, enum sl_role role);

struct sl_zap;

/* Loads allow_dir and starts the handler thread on zctx, admitting the
 * roles in admitted (bits). Must run before any CURVE server socket
 * binds. NULL and *error_r (malloc'ed) on error. */
struct sl_zap *sl_zap_start(void *zctx, const char *allow_dir, unsigned admitted,
                            char **error_r);
/* Re-reads the directory (SIGHUP). Connections made from now on see the
 * new list; on error the old list stays. 0 or -1 with *error_r. */
SL_WARN_UNUSED int sl_zap_reload(struct sl_zap *zap, char **error_r);
void sl_zap_stop(struct sl_zap **zapp);

/* The roles in the User-Id of a received message part (bits), 0 if it has
 * none (inproc://, plain mode). *user_id_r: the User-Id or "". */
unsigned sl_zap_msg_roles(zmq_msg_t *msg, const char **user_id_r);

/* Counts every handshake answered, admitted or refused, in reg from now
 * on (sluice_curve_handshakes_total, for the process's one broker). */
struct sl_metrics;
void sl_zap_metrics_register(struct sl_metrics *reg);

#endif
