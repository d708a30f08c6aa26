/* sl_keys.c - CURVE key pairs and the mode rule (sl_keys.h). */
#include "net/sl_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "util/sl_log.h"

#define KEY_FILE_MAX 4096       /* a key file is a line or two */

bool
sl_key_z85_valid(const char *text)
{
    unsigned char bin[32];

    return text != NULL && strlen(text) == SL_KEY_Z85_LEN && zmq_z85_decode(bin, text) != NULL;
}

void
sl_key_id(const char *z85_public, char id_r[SL_KEY_ID_LEN + 1])
{
    snprintf(id_r, SL_KEY_ID_LEN + 1, "%.*s", SL_KEY_ID_LEN, z85_public);
}

/* Creates path with O_EXCL and writes text. 0 or -1 with *error_r. */
static int
write_new_file(const char *path, mode_t mode, const char *text, char **error_r)
{
    size_t len = strlen(text), off = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);

    if (fd < 0) {
        *error_r = sl_asprintf("%s: %s%s", path, strerror(errno),
                               errno == EEXIST ? " (keygen never overwrites a key)" : "");
        return -1;
    }
    /* the umask may only narrow the mode; a secret key must be 0600 whatever it is */
    if (fchmod(fd, mode) != 0)
        goto fail;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:
    *error_r = sl_asprintf("%s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(path);
    return -1;
}

int
sl_keys_generate(const char *name, char **error_r)
{
    char pub[41], sec[41], *text;
    char *key_path = sl_asprintf("%s.key", name), *pub_path = sl_asprintf("%s.pub", name);
    int ret = -1;

    if (zmq_curve_keypair(pub, sec) != 0) {
        *error_r = sl_asprintf("zmq_curve_keypair: %s (libzmq built without CURVE?)",
                               zmq_strerror(errno));
        goto out;
    }
    text = sl_asprintf("# sluice CURVE secret key %s: keep private (mode 0600)\n%s\n", name, sec);
    ret = write_new_file(key_path, 0600, text, error_r);
    explicit_bzero(text, strlen(text));
    free(text);
    if (ret < 0)
        goto out;
    text = sl_asprintf("# sluice CURVE public key %s, id %.8s\n%s\n", name, pub, pub);
    ret = write_new_file(pub_path, 0644, text, error_r);
    free(text);
    if (ret < 0)
        unlink(key_path);      /* a pair or nothing */
out:
    explicit_bzero(sec, sizeof(sec));
    free(key_path);
    free(pub_path);
    return ret;
}

char *
sl_key_path_expand(const char *path, char **error_r)
{
    static const char *const forms[] = {"${" SL_KEY_CREDENTIALS_VAR "}/",
                                        "$" SL_KEY_CREDENTIALS_VAR "/"};

    for (size_t i = 0; i < SL_N_ELEMENTS(forms); i++) {
        size_t n = strlen(forms[i]);
        if (strncmp(path, forms[i], n) != 0)
            continue;
        const char *dir = getenv(SL_KEY_CREDENTIALS_VAR);
        if (dir == NULL || dir[0] != '/') {
            *error_r = sl_asprintf("%s: $" SL_KEY_CREDENTIALS_VAR " is not set (systemd sets it "
                                   "for a service with LoadCredential=; elsewhere name the file "
                                   "itself)",
                                   path);
            return NULL;
        }
        return sl_asprintf("%s/%s", dir, path + n);
    }
    return sl_strdup(path);
}

int
sl_key_read_file(const char *config_path, bool secret, char key_r[41], char **error_r)
{
    char buf[KEY_FILE_MAX + 1];
    struct stat st;
    size_t len = 0;
    char *path = sl_key_path_expand(config_path, error_r);
    int ret = -1, fd;

    if (path == NULL)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *error_r = sl_asprintf("%s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *error_r = sl_asprintf("%s: not a regular file", path);
        goto out;
    }
    /* ssh's rule for identity files: a secret others can read is no secret */
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        *error_r = sl_asprintf("%s: secret key is accessible by group or others (mode %04o); "
                               "chmod 600 %s",
                               path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    while (len < KEY_FILE_MAX) {
        ssize_t n = read(fd, buf + len, KEY_FILE_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *error_r = sl_asprintf("%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    for (char *line = buf, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t l = strlen(line);
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            line[--l] = '\0';
        if (l == 0 || line[0] == '#')
            continue;
        if (!sl_key_z85_valid(line)) {
            /* never quote the line: it may be a secret with a typo */
            *error_r = sl_asprintf("%s: not a CURVE key (one line of 40 Z85 characters, as "
                                   "written by sluice keygen)",
                                   path);
            goto out;
        }
        memcpy(key_r, line, 41);
        ret = 0;
        goto out;
    }
    *error_r = sl_asprintf("%s: no key in the file", path);
out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    free(path);
    return ret;
}

bool
sl_keys_endpoint_remote(const char *endpoint)
{
    return strncmp(endpoint, "inproc://", 9) != 0;
}

/* A key from the environment variable env, else from file (config key
 * name), else none. 1 found, 0 none, -1 error. */
static int
key_get(const struct sl_config *c, const char *env, const char *file, const char *key,
        bool secret, char key_r[41], char **error_r)
{
    const char *text = getenv(env);
    char *error = NULL;

    if (text != NULL && text[0] != '\0') {
        if (!sl_key_z85_valid(text)) {
            *error_r = sl_asprintf("environment %s: not a CURVE key (40 Z85 characters)", env);
            return -1;
        }
        memcpy(key_r, text, 41);
        return 1;
    }
    if (file == NULL || file[0] == '\0')
        return 0;
    if (sl_key_read_file(file, secret, key_r, &error) < 0) {
        *error_r = sl_asprintf("%s: %s: %s", c->path ? c->path : "(configuration)", key, error);
        free(error);
        return -1;
    }
    return 1;
}

/* The first remote endpoint this process uses, or NULL. */
static const char *
remote_endpoint(const struct sl_config *c, bool broker, bool client)
{
    if (broker && sl_keys_endpoint_remote(c->broker.listen))
        return c->broker.listen;
    for (size_t i = 0; client && i < c->broker.n_endpoints; i++)
        if (sl_keys_endpoint_remote(c->broker.endpoints[i]))
            return c->broker.endpoints[i];
    return NULL;
}

int
sl_keys_resolve(struct sl_config *config, bool broker, bool client, char **error_r)
{
    struct sl_config *c = config;
    const char *where = c->path ? c->path : "(configuration)";
    const char *remote = remote_endpoint(c, broker, client);
    char derived[41], pub[41];
    int r;

    c->security.curve = false;
    if (remote == NULL)
        return 0;       /* inproc:// only (sluice all): one process, nothing to encrypt */
    if (strcmp(c->security.mode, "plain") == 0) {
        sl_warn("security.mode is plain: ZeroMQ traffic on %s is neither encrypted nor "
                "authenticated; anyone who reaches it can read mail or take jobs",
                remote);
        return 0;
    }
    r = key_get(c, "SLUICE_SECRET_KEY", c->security.secret_key_file, "security.secret_key_file",
                true, c->security.secret_key, error_r);
    if (r < 0)
        return -1;
    if (r == 0) {
        *error_r = sl_asprintf("%s: security.secret_key_file: required: %s is not inproc:// and "
                               "security.mode is curve; create a key pair with 'sluice keygen "
                               "NAME' (or set SLUICE_SECRET_KEY), or set security.mode: plain "
                               "to run unencrypted",
                               where, remote);
        return -1;
    }
    if (zmq_curve_public(derived, c->security.secret_key) != 0) {
        *error_r = sl_asprintf("%s: security.secret_key_file: zmq_curve_public: %s", where,
                               zmq_strerror(errno));
        return -1;
    }
    r = key_get(c, "SLUICE_PUBLIC_KEY", c->security.public_key_file, "security.public_key_file",
                false, pub, error_r);
    if (r < 0)
        return -1;
    if (r == 1 && strcmp(pub, derived) != 0) {
        *error_r = sl_asprintf("%s: security.public_key_file: the public key (id %.8s) is not "
                               "the secret key's (id %.8s): two different key pairs",
                               where, pub, derived);
        return -1;
    }
    memcpy(c->security.public_key, derived, sizeof(derived));
    if (broker && sl_keys_endpoint_remote(c->broker.listen) && c->security.allow_dir[0] == '\0') {
        *error_r = sl_asprintf("%s: security.allow_dir: required: a broker on %s admits only "
                               "the public keys in this directory (frontend/*.pub, "
                               "worker/*.pub)",
                               where, c->broker.listen);
        return -1;
    }
    if (client && remote_endpoint(c, false, true) != NULL) {
        r = key_get(c, "SLUICE_BROKER_PUBLIC_KEY", c->security.broker_public_key_file,
                    "security.broker_public_key_file", false, c->security.server_key, error_r);
        if (r < 0)
            return -1;
        if (r == 0 && c->security.broker_public_key[0] != '\0') {
            if (!sl_key_z85_valid(c->security.broker_public_key)) {
                *error_r = sl_asprintf("%s: security.broker_public_key: not a CURVE key", where);
                return -1;
            }
            memcpy(c->security.server_key, c->security.broker_public_key, 41);
            r = 1;
        }
        if (r == 0) {
            *error_r = sl_asprintf("%s: security.broker_public_key: required: the brokers' "
                                   "public key (their NAME.pub), so that nobody else can pose "
                                   "as a broker (or security.broker_public_key_file, "
                                   "SLUICE_BROKER_PUBLIC_KEY)",
                                   where);
            return -1;
        }
    }
    c->security.curve = true;
    sl_info("CURVE on %s: own key id %.8s%s%.8s", remote, c->security.public_key,
            c->security.server_key[0] ? ", broker key id " : "", c->security.server_key);
    return 0;
}
