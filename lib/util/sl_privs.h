/* sl_privs.h - giving up root after start-up, as Postfix's daemons do.
 *
 * The rule (docs/operations.md, "Running as root"): a sluice started as
 * root binds its sockets, reads its keys, then becomes security.user for
 * good. Started as root with security.user unset it refuses to run (like
 * Postfix with mail_owner = root); security.user: root runs as root on
 * purpose and says so at every start. Started as anyone else, nothing
 * changes (security.user then only has to be that user or unset). */
#ifndef SL_PRIVS_H
#define SL_PRIVS_H

#include "util/sl_util.h"

/* Before anything is bound: -1 and a malloc'ed *error_r if the rule says
 * the process must not run (root without security.user, unknown user). */
SL_WARN_UNUSED int sl_privs_check(const char *user, char **error_r);

/* After binding and reading keys: initgroups, setgid, setuid to user when
 * running as root, then proves that root cannot be regained. 0, or -1 and
 * a malloc'ed *error_r (the caller must exit: half-dropped is not safe). */
SL_WARN_UNUSED int sl_privs_drop(const char *user, char **error_r);

#endif
