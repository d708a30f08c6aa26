/* conf_secret.c - secrets in the configuration: redis.url may carry a
 * password. The file may name where the value is instead of holding it
 * ("env:NAME", "file:/path"); the reference is what the configuration
 * keeps and what `sluice config` prints, and it is resolved only where the
 * value is used (sl_config_secret). A value written into the file with its
 * password is printed as a reference to SL_CONFIG_REDIS_URL_ENV, never as
 * the password and never as a mask that would load back as one. */
#include "conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE_MAX 4096 /* a URL or a password, not a document */

static bool
env_name_valid(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s != '\0'; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

bool
conf_secret_ref(const char *s, bool *ok_r)
{
    const char *rest;

    if ((rest = sl_strcase_prefix(s, "env:")) != NULL) {
        *ok_r = env_name_valid(rest);
        return true;
    }
    if ((rest = sl_strcase_prefix(s, "file:")) != NULL) {
        *ok_r = rest[0] == '/' && rest[1] != '\0';
        return true;
    }
    return false;
}

/* The first line of path, without its line end. Only a regular file, so
 * that a FIFO or a device cannot stall the caller. */
static int
secret_from_file(const char *ref, const char *path, char **value_r, char **error_r)
{
    char buf[SECRET_FILE_MAX + 1];
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

    if (fd < 0) {
        *error_r = sl_asprintf("%s: cannot open: %s", ref, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *error_r = sl_asprintf("%s: not a regular file", ref);
        close(fd);
        return -1;
    }
    n = read(fd, buf, SECRET_FILE_MAX);
    int e = errno;
    close(fd);
    if (n < 0) {
        *error_r = sl_asprintf("%s: cannot read: %s", ref, strerror(e));
        return -1;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        *error_r = sl_asprintf("%s: the file's first line is empty", ref);
        return -1;
    }
    *value_r = sl_strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

int
sl_config_secret(const char *value, char **value_r, char **error_r)
{
    const char *rest;
    bool ok;

    *value_r = NULL;
    if (!conf_secret_ref(value, &ok)) {
        *value_r = sl_strdup(value);
        return 0;
    }
    if (!ok) {
        *error_r = sl_asprintf("%s: expected env:NAME or file:/absolute/path", value);
        return -1;
    }
    if ((rest = sl_strcase_prefix(value, "env:")) != NULL) {
        const char *v = getenv(rest);
        if (v == NULL || v[0] == '\0') {
            *error_r = sl_asprintf("%s: the environment variable %s is not set", value, rest);
            return -1;
        }
        *value_r = sl_strdup(v);
        return 0;
    }
    return secret_from_file(value, sl_strcase_prefix(value, "file:"), value_r, error_r);
}
