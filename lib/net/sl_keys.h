/* sl_keys.h - CURVE key pairs: sluice keygen, key files, the mode rule.
 *
 * A key file holds one Z85 key (RFC 32, 40 characters) on a line of its
 * own; lines starting with '#' are comments. NAME.key is the secret key
 * (mode 0600, never logged), NAME.pub the public key. A key is named in
 * logs by its id: the first 8 characters of the Z85 public key.
 *
 * The mode rule (docs/cluster.md, "Security"): every ZeroMQ link that is
 * not inproc:// is CURVE-encrypted unless security.mode is plain; a node
 * with such a link and no keys does not start. */
#ifndef SL_KEYS_H
#define SL_KEYS_H

#include <stdbool.h>
#include "conf/sl_config.h"
#include "util/sl_util.h"

#define SL_KEY_Z85_LEN 40
#define SL_KEY_ID_LEN 8

/* text is exactly 40 Z85 characters that decode to 32 bytes. */
bool sl_key_z85_valid(const char *text);

/* The first SL_KEY_ID_LEN characters of a Z85 public key, NUL-terminated. */
void sl_key_id(const char *z85_public, char id_r[SL_KEY_ID_LEN + 1]);

/* Writes NAME.key (secret, created O_EXCL with mode 0600) and NAME.pub
 * (mode 0644). Refuses to overwrite either. 0, or -1 and a malloc'ed
 * *error_r naming the file. The secret key never reaches a log. */
SL_WARN_UNUSED int sl_keys_generate(const char *name, char **error_r);

/* systemd's LoadCredential= copies root-owned secrets into a directory
 * the service's own user can read, and names it in this variable; a key
 * file written "${CREDENTIALS_DIRECTORY}/NAME" (or "$CREDENTIALS_DIRECTORY/
 * NAME") is NAME in that directory. */
#define SL_KEY_CREDENTIALS_VAR "CREDENTIALS_DIRECTORY"

/* The file a key path names: as written, or with the credentials
 * directory put in. Malloc'ed; NULL and a malloc'ed *error_r when the
 * path names the credentials directory and the variable is not set. */
char *sl_key_path_expand(const char *path, char **error_r);

/* Reads one key from path (sl_key_path_expand) into key_r (41 bytes,
 * NUL-terminated). With secret, the file must not be readable or writable
 * by group or others. 0, or -1 and a malloc'ed *error_r naming the file. */
SL_WARN_UNUSED int sl_key_read_file(const char *path, bool secret, char key_r[41], char **error_r);

/* true if endpoint is carried over a network (anything but inproc://). */
bool sl_keys_endpoint_remote(const char *endpoint);

/* Applies the mode rule for the roles this process runs and fills
 * config->security.{curve, secret_key, public_key, server_key} from the
 * environment (SLUICE_SECRET_KEY, SLUICE_PUBLIC_KEY,
 * SLUICE_BROKER_PUBLIC_KEY) or the key files:
 *   broker  a remote broker.listen needs its own key pair and
 *           security.allow_dir;
 *   client  (frontend, worker) a remote broker.endpoints entry needs its
 *           own key pair and the brokers' public key.
 * Plain mode with remote links logs a warning. 0, or -1 and a malloc'ed
 * *error_r naming the key (and the file) to fix. */
SL_WARN_UNUSED int sl_keys_resolve(struct sl_config *config, bool broker, bool client,
                                   char **error_r);

#endif
