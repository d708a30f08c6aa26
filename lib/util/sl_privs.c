/* sl_privs.c - giving up root (sl_privs.h). */
#include "util/sl_privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include "util/sl_log.h"

static bool
user_is_root(const char *user)
{
    return user != NULL && strcmp(user, "root") == 0;
}

int
sl_privs_check(const char *user, char **error_r)
{
    struct passwd *pw;

    if (geteuid() != 0) {
        if (user != NULL && user[0] != '\0' && (pw = getpwnam(user)) != NULL &&
            pw->pw_uid != geteuid())
            sl_info("security.user %s ignored: not started as root", user);
        return 0;
    }
    if (user == NULL || user[0] == '\0') {
        *error_r = sl_strdup("started as root and security.user is not set: set it to the "
                             "unprivileged user to run as (e.g. sluice or nobody), or to root "
                             "(-o security.user=root) to run as root on purpose");
        return -1;
    }
    if (user_is_root(user)) {
        sl_warn("security.user is root: running as root; a flaw in MIME or archive parsing "
                "would be a flaw with root's rights");
        return 0;
    }
    errno = 0;
    if (getpwnam(user) == NULL) {
        *error_r = sl_asprintf("security.user: no such user: %s%s%s", user,
                               errno != 0 ? " - " : "", errno != 0 ? strerror(errno) : "");
        return -1;
    }
    return 0;
}

int
sl_privs_drop(const char *user, char **error_r)
{
    struct passwd *pw;

    if (geteuid() != 0 || user_is_root(user))
        return 0;
    SL_BUG_ON(user == NULL || user[0] == '\0');     /* sl_privs_check() refused this */
    pw = getpwnam(user);
    if (pw == NULL) {
        *error_r = sl_asprintf("security.user: no such user: %s", user);
        return -1;
    }
    if (pw->pw_uid == 0) {
        *error_r = sl_asprintf("security.user: %s has uid 0: that is root by another name", user);
        return -1;
    }
    /* group list first, then the gid, then the uid: the other way round
     * the process could no longer change its groups */
    if (initgroups(user, pw->pw_gid) != 0) {
        *error_r = sl_asprintf("initgroups(%s): %s", user, strerror(errno));
        return -1;
    }
    if (setgid(pw->pw_gid) != 0) {
        *error_r = sl_asprintf("setgid(%lu): %s", (unsigned long)pw->pw_gid, strerror(errno));
        return -1;
    }
    /* setuid as root sets the real, effective and saved uid: no way back.
     * glibc applies it to every thread of the process. */
    if (setuid(pw->pw_uid) != 0) {
        *error_r = sl_asprintf("setuid(%lu): %s", (unsigned long)pw->pw_uid, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != pw->pw_uid ||
        geteuid() != pw->pw_uid || getegid() != pw->pw_gid) {
        *error_r = sl_asprintf("dropping to %s did not stick: root could be regained", user);
        return -1;
    }
    sl_info("running as %s (uid %lu, gid %lu)", user, (unsigned long)pw->pw_uid,
            (unsigned long)pw->pw_gid);
    return 0;
}
