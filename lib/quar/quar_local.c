/* quar_local.c - the local: store, amavisd-new's quarantine directory:
 * DIR/<c>/<type>-<mail_id>, <c> the mail_id's first character (amavis'
 * $quarantine_subdir_levels = 1), mode 0640, the subdirectories 0750 and
 * made when first needed.
 *
 * A file is written under a temporary name, fsync'ed, linked to its name
 * (never over an existing one, as amavis refuses to overwrite) and the
 * directory fsync'ed: after put returns the entry survives a crash.
 * Expiry removes files older than the limit (their mtime, as a find
 * -mtime cron job would) while holding an flock on DIR/.expire.lock, so
 * that two processes on one node do not both walk the tree. */
#include "quar_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_READ_MAX (256 * 1024) /* of a file, for its header fields */

static char *
entry_path(const struct sl_quar_store *s, const char *type, const char *mail_id)
{
    return sl_asprintf("%s/%c/%s-%s", s->where, mail_id[0], type, mail_id);
}

static int
fsync_dir(const char *dir, char **error_r)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = 0;

    if (fd < 0 || fsync(fd) < 0)
        r = quar_fail(error_r, "fsync %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return r;
}

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
local_put(struct sl_quar_store *s, const struct sl_quar_entry *e, const char *text, size_t len,
          char **error_r)
{
    char *dir = sl_asprintf("%s/%c", s->where, e->mail_id[0]);
    char *path = entry_path(s, e->type, e->mail_id);
    char *tmp = sl_asprintf("%s/.%s-%s.%ld.tmp", dir, e->type, e->mail_id, (long)getpid());
    int fd = -1, r = -1;

    /* the directory itself too, the first time (its parent must exist) */
    if (mkdir(dir, 0750) < 0 && errno == ENOENT && mkdir(s->where, 0750) < 0 && errno != EEXIST) {
        quar_fail(error_r, "mkdir %s: %s", s->where, strerror(errno));
        goto out;
    }
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        quar_fail(error_r, "mkdir %s: %s", dir, strerror(errno));
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        quar_fail(error_r, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, text, len) < 0 || fsync(fd) < 0) {
        quar_fail(error_r, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        quar_fail(error_r, "close %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (link(tmp, path) < 0) {
        quar_fail(error_r, "%s: %s", path,
                  errno == EEXIST ? "exists already, not overwritten" : strerror(errno));
        goto out;
    }
    r = fsync_dir(dir, error_r);
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    free(path);
    free(dir);
    return r;
}

/* The whole file, or its first max bytes (max 0: all). 1, 0 (ENOENT), -1. */
static int
read_file(const char *path, size_t max, char **text_r, size_t *len_r, struct stat *st_r,
          char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t want, got = 0;

    if (fd < 0)
        return errno == ENOENT ? 0 : quar_fail(error_r, "open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        close(fd);
        return quar_fail(error_r, "stat %s: %s", path, strerror(errno));
    }
    want = (size_t)st.st_size;
    if (max > 0 && want > max)
        want = max;
    buf = sl_malloc(want + 1);
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *text_r = buf;
    *len_r = got;
    if (st_r != NULL)
        *st_r = st;
    return 1;
}

static int
local_get(struct sl_quar_store *s, const char *type, const char *mail_id, char **text_r,
          size_t *len_r, struct sl_quar_entry *meta, char **error_r)
{
    static const char *const types[] = {"virus", "banned", "spam", "badh"};

    for (size_t i = 0; i < SL_N_ELEMENTS(types); i++) {
        if (type[0] != '\0' && strcmp(type, types[i]) != 0)
            continue;
        char *path = entry_path(s, types[i], mail_id);
        struct stat st;
        int r = read_file(path, 0, text_r, len_r, &st, error_r);
        free(path);
        if (r != 0) {
            if (r == 1) {
                snprintf(meta->type, sizeof(meta->type), "%s", types[i]);
                meta->time_ms = (unsigned long long)st.st_mtime * 1000;
            }
            return r;
        }
    }
    return 0;
}

/* Calls fn on every entry file: DIR/<c>/<type>-<mail_id>. */
static int
local_walk(struct sl_quar_store *s, int (*fn)(void *ctx, const char *path, const char *name),
           void *ctx, char **error_r)
{
    DIR *top = opendir(s->where);
    struct dirent *d;
    int r = 0;

    if (top == NULL)
        return errno == ENOENT ? 0
                               : quar_fail(error_r, "opendir %s: %s", s->where, strerror(errno));
    while (r == 0 && (d = readdir(top)) != NULL) {
        if (d->d_name[0] == '.' || d->d_name[1] != '\0')
            continue;
        char *sub = sl_asprintf("%s/%s", s->where, d->d_name);
        DIR *dir = opendir(sub);
        struct dirent *f;
        while (dir != NULL && r == 0 && (f = readdir(dir)) != NULL) {
            char type[SL_QUAR_TYPE_MAX + 1], mail_id[SL_ID_LEN + 1];
            if (f->d_name[0] == '.' || strchr(f->d_name, '-') == NULL ||
                sl_quar_id_parse(f->d_name, type, mail_id) < 0 || type[0] == '\0')
                continue;
            char *path = sl_asprintf("%s/%s", sub, f->d_name);
            r = fn(ctx, path, f->d_name);
            free(path);
        }
        if (dir != NULL)
            closedir(dir);
        free(sub);
    }
    closedir(top);
    return r;
}

struct list_ctx {
    struct sl_quar_store *s;
    const struct sl_quar_filter *f;
    sl_quar_list_fn *cb;
    void *ctx;
    struct sl_quar_entry *v; /* collected, sorted by time before the callbacks */
    size_t n;
};

static bool
has_rcpt(const struct sl_quar_entry *e, const char *rcpt)
{
    for (size_t i = 0; i < e->n_rcpts; i++)
        if (strcasecmp(e->rcpts[i].address, rcpt) == 0)
            return true;
    return false;
}

static int
list_one(void *arg, const char *path, const char *name)
{
    struct list_ctx *lc = arg;
    struct sl_quar_entry e = {0};
    struct stat st;
    char *text = NULL, *error = NULL;
    size_t len;

    if (read_file(path, LIST_READ_MAX, &text, &len, &st, &error) != 1 ||
        quar_text_parse(text, len, NULL, false, &e, &error) < 0) {
        free(error); /* a file that vanished or is not ours: not listed */
        free(text);
        sl_quar_entry_clear(&e);
        return 0;
    }
    free(text);
    if (e.type[0] == '\0')
        snprintf(e.type, sizeof(e.type), "%.*s", (int)(strchr(name, '-') - name), name);
    if (e.time_ms == 0)
        e.time_ms = (unsigned long long)st.st_mtime * 1000;
    if (e.time_ms < lc->f->since_ms ||
        (lc->f->recipient != NULL && !has_rcpt(&e, lc->f->recipient))) {
        sl_quar_entry_clear(&e);
        return 0;
    }
    lc->v = sl_realloc(lc->v, (lc->n + 1) * sizeof(*lc->v));
    lc->v[lc->n++] = e;
    return 0;
}

static int
by_time(const void *a, const void *b)
{
    const struct sl_quar_entry *x = a, *y = b;
    return x->time_ms < y->time_ms   ? -1
           : x->time_ms > y->time_ms ? 1
                                     : strcmp(x->mail_id, y->mail_id);
}

static int
local_list(struct sl_quar_store *s, const struct sl_quar_filter *f, sl_quar_list_fn *cb, void *ctx,
           char **error_r)
{
    struct list_ctx lc = {.s = s, .f = f, .cb = cb, .ctx = ctx};
    int r = local_walk(s, list_one, &lc, error_r);

    if (lc.n > 0)
        qsort(lc.v, lc.n, sizeof(*lc.v), by_time);
    for (size_t i = 0; i < lc.n; i++) {
        if (r == 0)
            cb(ctx, &lc.v[i]);
        sl_quar_entry_clear(&lc.v[i]);
    }
    free(lc.v);
    return r;
}

static int
local_del(struct sl_quar_store *s, const char *type, const char *mail_id, char **error_r)
{
    static const char *const types[] = {"virus", "banned", "spam", "badh"};
    int r = 0;

    for (size_t i = 0; i < SL_N_ELEMENTS(types) && r == 0; i++) {
        if (type[0] != '\0' && strcmp(type, types[i]) != 0)
            continue;
        char *path = entry_path(s, types[i], mail_id);
        if (unlink(path) == 0) {
            char *dir = sl_asprintf("%s/%c", s->where, mail_id[0]);
            r = fsync_dir(dir, error_r) < 0 ? -1 : 1;
            free(dir);
        } else if (errno != ENOENT) {
            r = quar_fail(error_r, "unlink %s: %s", path, strerror(errno));
        }
        free(path);
    }
    return r;
}

struct expire_ctx {
    time_t before;
    unsigned long n;
};

static int
expire_one(void *arg, const char *path, const char *name)
{
    struct expire_ctx *x = arg;
    struct stat st;

    (void)name;
    if (stat(path, &st) == 0 && st.st_mtime < x->before && unlink(path) == 0)
        x->n++;
    return 0;
}

static int
local_expire(struct sl_quar_store *s, unsigned long long before_ms, unsigned long *n_r,
             char **error_r)
{
    char *lock = sl_asprintf("%s/.expire.lock", s->where);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    struct expire_ctx x = {.before = (time_t)(before_ms / 1000)};
    int r;

    if (fd < 0) {
        r = errno == ENOENT ? 1 : quar_fail(error_r, "open %s: %s", lock, strerror(errno));
        free(lock);
        return r; /* no directory yet: nothing to expire */
    }
    free(lock);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return 0; /* another process is at it */
    }
    r = local_walk(s, expire_one, &x, error_r);
    close(fd); /* and the lock */
    *n_r = x.n;
    return r < 0 ? -1 : 1;
}

const struct quar_backend quar_local_backend = {
    .put = local_put,
    .get = local_get,
    .list = local_list,
    .del = local_del,
    .expire = local_expire,
};
