/* sl_postconf.c - a Postfix instance's configuration through postconf(1)
 * (sl_postconf.h). */
#include "cli/sl_postconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <sys/wait.h>

#include "util/sl_buf.h"

extern char **environ;

/* postconf -x prints about 1000 lines (60 kB); this bounds a broken one */
#define PC_MAX_OUTPUT ((size_t)16 * 1024 * 1024)

/* ------------------------------------------------------------ parsing */

static void
params_add(struct sl_postconf_param **params, size_t *n, const char *name, size_t name_len,
           const char *value)
{
    *params = sl_realloc(*params, (*n + 1) * sizeof(**params));
    (*params)[*n].name = sl_strndup(name, name_len);
    (*params)[*n].value = sl_strdup(value);
    (*n)++;
}

int
sl_postconf_parse_params(const char *text, struct sl_postconf_param **params_r, size_t *n_r,
                         char **error_r)
{
    char *copy = sl_strdup(text), *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* "name = value", or "name =" when the value is empty */
        char *eq = strstr(line, " =");
        if (eq == NULL || eq == line || (eq[2] != '\0' && eq[2] != ' ')) {
            *error_r = sl_asprintf("unexpected line from postconf: \"%s\"", line);
            free(copy);
            return -1;
        }
        params_add(params_r, n_r, line, (size_t)(eq - line), eq[2] ? eq + 3 : "");
    }
    free(copy);
    return 0;
}

int
sl_postconf_parse_services(const char *text, struct sl_postconf_service **services_r, size_t *n_r,
                           char **error_r)
{
    char *copy = sl_strdup(text), *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* service type private unpriv chroot wakeup maxproc command [args] */
        char *col[8], *p = line;
        size_t n = 0;

        for (; n < 8; n++) {
            p += strspn(p, " \t");
            if (*p == '\0')
                break;
            col[n] = p;
            p += strcspn(p, " \t");
            if (*p)
                *p++ = '\0';
        }
        if (n == 0)
            continue;
        if (n < 8) {
            *error_r = sl_asprintf("unexpected master.cf entry from postconf -M: \"%s\" "
                                   "(fewer than 8 columns)",
                                   col[0]);
            free(copy);
            return -1;
        }
        *services_r = sl_realloc(*services_r, (*n_r + 1) * sizeof(**services_r));
        struct sl_postconf_service *svc = &(*services_r)[(*n_r)++];
        svc->name = sl_strdup(col[0]);
        svc->type = sl_strdup(col[1]);
        svc->maxproc = sl_strdup(col[6]);
        svc->command = sl_strdup(col[7]);
        p += strspn(p, " \t");
        svc->line = *p ? sl_asprintf("%s %s %s %s %s %s %s %s %s", col[0], col[1], col[2], col[3],
                                     col[4], col[5], col[6], col[7], p)
                       : sl_asprintf("%s %s %s %s %s %s %s %s", col[0], col[1], col[2], col[3],
                                     col[4], col[5], col[6], col[7]);
    }
    free(copy);
    return 0;
}

/* --------------------------------------------------------- running it */

/* Reads both pipes until both close (postconf's warnings must not fill
 * the stderr pipe while we wait on stdout). */
static int
drain_pipes(int out_fd, int err_fd, struct sl_buf *out, struct sl_buf *err)
{
    struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
    struct sl_buf *dst[2] = {out, err};
    char buf[8192];
    int open_fds = 2;

    while (open_fds > 0) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                pfd[i].fd = -1;
                open_fds--;
                continue;
            }
            if (dst[i]->len + (size_t)n <= PC_MAX_OUTPUT)
                sl_buf_append(dst[i], buf, (size_t)n);
        }
    }
    return 0;
}

/* Runs "postconf [-c DIR] FLAG" into *out. 0, EX_UNAVAILABLE or
 * EX_CONFIG (*error_r set). */
static int
postconf_run(const char *dir, const char *flag, struct sl_buf *out, char **error_r)
{
    /* root's PATH has /usr/sbin, an operator's may not */
    static const char *const programs[] = {"postconf", "/usr/sbin/postconf"};
    const char *argv[5];
    int out_pipe[2], err_pipe[2], status, spawn_err = ENOENT;
    size_t argc = 0;
    pid_t pid = -1;
    struct sl_buf err;
    posix_spawn_file_actions_t fa;

    argv[argc++] = "postconf";
    if (dir) {
        argv[argc++] = "-c";
        argv[argc++] = dir;
    }
    argv[argc++] = flag;
    argv[argc] = NULL;
    if (pipe2(out_pipe, O_CLOEXEC) != 0)
        goto os_error;
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        goto os_error;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
    for (size_t i = 0; i < SL_N_ELEMENTS(programs) && spawn_err == ENOENT; i++)
        spawn_err = posix_spawnp(&pid, programs[i], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (spawn_err != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        *error_r = sl_asprintf("cannot run postconf (package postfix): %s", strerror(spawn_err));
        return EX_UNAVAILABLE;
    }
    sl_buf_init(&err);
    sl_buf_append(&err, "", 0);
    int drained = drain_pipes(out_pipe[0], err_pipe[0], out, &err);
    close(out_pipe[0]);
    close(err_pipe[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    if (drained < 0 || status != 0) {
        /* postconf's own words: "postconf: fatal: open /x/main.cf: No such file ..." */
        while (err.len > 0 && (err.data[err.len - 1] == '\n' || err.data[err.len - 1] == '\r'))
            err.data[--err.len] = '\0';
        *error_r = sl_asprintf("postconf%s%s %s failed%s%s", dir ? " -c " : "", dir ? dir : "",
                               flag, err.len ? ": " : "", err.data);
        sl_buf_free(&err);
        return EX_CONFIG;
    }
    sl_buf_free(&err);
    return 0;
os_error:
    *error_r = sl_asprintf("cannot run postconf: pipe: %s", strerror(errno));
    return EX_UNAVAILABLE;
}

int
sl_postconf_read(struct sl_postconf *pc, const char *dir, char **error_r)
{
    static const char *const flags[] = {"-x", "-n", "-M", "-Px"};
    int rc = 0;

    memset(pc, 0, sizeof(*pc));
    pc->dir = dir ? sl_strdup(dir) : NULL;
    for (size_t i = 0; i < SL_N_ELEMENTS(flags) && rc == 0; i++) {
        struct sl_buf out;

        sl_buf_init(&out);
        sl_buf_append(&out, "", 0);
        rc = postconf_run(dir, flags[i], &out, error_r);
        if (rc == 0) {
            int parsed;
            switch (i) {
            case 0:
                parsed = sl_postconf_parse_params(out.data, &pc->params, &pc->n_params, error_r);
                break;
            case 1:
                parsed = sl_postconf_parse_params(out.data, &pc->set, &pc->n_set, error_r);
                break;
            case 2:
                parsed =
                    sl_postconf_parse_services(out.data, &pc->services, &pc->n_services, error_r);
                break;
            default:
                parsed =
                    sl_postconf_parse_params(out.data, &pc->svc_params, &pc->n_svc_params, error_r);
                break;
            }
            if (parsed < 0)
                rc = EX_CONFIG;
        }
        sl_buf_free(&out);
    }
    return rc;
}

static void
params_free(struct sl_postconf_param **params, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free((*params)[i].name);
        free((*params)[i].value);
    }
    sl_free_and_clear(params);
    *n = 0;
}

void
sl_postconf_free(struct sl_postconf *pc)
{
    params_free(&pc->params, &pc->n_params);
    params_free(&pc->set, &pc->n_set);
    params_free(&pc->svc_params, &pc->n_svc_params);
    for (size_t i = 0; i < pc->n_services; i++) {
        struct sl_postconf_service *svc = &pc->services[i];
        free(svc->name);
        free(svc->type);
        free(svc->maxproc);
        free(svc->command);
        free(svc->line);
    }
    sl_free_and_clear(&pc->services);
    pc->n_services = 0;
    sl_free_and_clear(&pc->dir);
}

/* ---------------------------------------------------------- look-ups */

static const char *
params_find(const struct sl_postconf_param *params, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(params[i].name, name) == 0)
            return params[i].value;
    return NULL;
}

const char *
sl_postconf_get(const struct sl_postconf *pc, const char *name)
{
    return params_find(pc->params, pc->n_params, name);
}

bool
sl_postconf_is_set(const struct sl_postconf *pc, const char *name)
{
    return params_find(pc->set, pc->n_set, name) != NULL;
}

const struct sl_postconf_service *
sl_postconf_service(const struct sl_postconf *pc, const char *name, const char *type)
{
    for (size_t i = 0; i < pc->n_services; i++)
        if (strcmp(pc->services[i].name, name) == 0 && strcmp(pc->services[i].type, type) == 0)
            return &pc->services[i];
    return NULL;
}

const char *
sl_postconf_service_param(const struct sl_postconf *pc, const char *name, const char *type,
                          const char *param)
{
    char *key = sl_asprintf("%s/%s/%s", name, type, param);
    const char *value = params_find(pc->svc_params, pc->n_svc_params, key);

    free(key);
    return value;
}

const char *
sl_postconf_effective(const struct sl_postconf *pc, const struct sl_postconf_service *svc,
                      const char *param)
{
    const char *value = sl_postconf_service_param(pc, svc->name, svc->type, param);

    return value ? value : sl_postconf_get(pc, param);
}

long
sl_postconf_time(const char *value)
{
    char *end;
    long n, unit = 1;

    if (value == NULL || *value < '0' || *value > '9')
        return -1;
    errno = 0;
    n = strtol(value, &end, 10);
    if (errno != 0)
        return -1;
    switch (*end) {
    case '\0':
    case 's':
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    default:
        return -1;
    }
    if (*end && end[1] != '\0')
        return -1;
    if (n > LONG_MAX / unit)
        return -1;
    return n * unit;
}
