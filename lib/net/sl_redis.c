/* sl_redis.c - Redis URL parsing and a blocking connect (sl_redis.h). */
#include "net/sl_redis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "conf/sl_config.h"

static int
parse_uint(const char *s, size_t len, unsigned long max, unsigned *v_r)
{
    unsigned long v = 0;

    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *v_r = (unsigned)v;
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %XX escapes in a password (RFC 3986 userinfo). NULL on a bad escape. */
static char *
percent_decode(const char *s, size_t len)
{
    char *out = sl_malloc(len + 1), *o = out;

    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

void
sl_redis_url_free(struct sl_redis_url *url)
{
    free(url->host);
    free(url->path);
    free(url->user);
    free(url->password);
    for (size_t i = 0; i < url->n_sentinels; i++)
        free(url->sentinels[i]);
    free(url->sentinels);
    free(url->master_name);
    memset(url, 0, sizeof(*url));
}

static int
url_fail(struct sl_redis_url *url, char **error_r, const char *text, const char *why)
{
    char *masked = sl_config_redis_url_masked(text); /* never a password in a message */

    *error_r = sl_asprintf("redis.url \"%s\": %s", masked, why);
    free(masked);
    sl_redis_url_free(url);
    return -1;
}

int
sl_redis_url_parse(const char *text, struct sl_redis_url *url_r, char **error_r)
{
    const char *rest;

    memset(url_r, 0, sizeof(*url_r));
    url_r->port = 6379;
    if ((rest = sl_strcase_prefix(text, "unix:")) != NULL) {
        const char *q;
        /* unix:/path or unix:///path (an empty authority) */
        if (strncmp(rest, "//", 2) == 0)
            rest += 2;
        if (rest[0] != '/')
            return url_fail(url_r, error_r, text, "the socket path must be absolute");
        q = strchr(rest, '?');
        url_r->path = q ? sl_strndup(rest, (size_t)(q - rest)) : sl_strdup(rest);
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0 ||
                parse_uint(q + 4, strlen(q + 4), 1000000, &url_r->db) < 0)
                return url_fail(url_r, error_r, text, "expected ?db=N after the path");
        }
        if (url_r->path[1] == '\0')
            return url_fail(url_r, error_r, text, "no socket path");
        return 0;
    }
    if ((rest = sl_strcase_prefix(text, "redis://")) == NULL)
        return url_fail(url_r, error_r, text,
                        "expected redis://[[user]:password@]host:port[/db] or unix:/path");
    const char *at = strrchr(rest, '@');
    const char *slash;
    if (at != NULL) {
        /* userinfo: ":password" or "user:password" (a Redis 6 ACL user) */
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon == NULL)
            return url_fail(url_r, error_r, text, "expected [user]:password@ before the host");
        if (colon > rest) {
            url_r->user = percent_decode(rest, (size_t)(colon - rest));
            if (url_r->user == NULL)
                return url_fail(url_r, error_r, text, "bad %-escape in the user name");
        }
        url_r->password = percent_decode(colon + 1, (size_t)(at - colon - 1));
        if (url_r->password == NULL)
            return url_fail(url_r, error_r, text, "bad %-escape in the password");
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    size_t hp_len = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *port_sep;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', hp_len);
        if (close == NULL)
            return url_fail(url_r, error_r, text, "unclosed [ in the host");
        url_r->host = sl_strndup(rest + 1, (size_t)(close - rest - 1));
        port_sep = close + 1 < rest + hp_len ? close + 1 : NULL;
        if (port_sep != NULL && *port_sep != ':')
            return url_fail(url_r, error_r, text, "expected :port after ]");
    } else {
        port_sep = memchr(rest, ':', hp_len);
        url_r->host = sl_strndup(rest, port_sep ? (size_t)(port_sep - rest) : hp_len);
    }
    if (url_r->host[0] == '\0')
        return url_fail(url_r, error_r, text, "no host");
    if (port_sep != NULL && (parse_uint(port_sep + 1, (size_t)(rest + hp_len - port_sep - 1), 65535,
                                        &url_r->port) < 0 ||
                             url_r->port == 0))
        return url_fail(url_r, error_r, text, "bad port");
    if (slash != NULL && slash[1] != '\0' &&
        parse_uint(slash + 1, strlen(slash + 1), 1000000, &url_r->db) < 0)
        return url_fail(url_r, error_r, text, "bad database number after /");
    return 0;
}

char *
sl_redis_url_describe(const struct sl_redis_url *url)
{
    if (url->n_sentinels > 0)
        return sl_asprintf("master \"%s\"/%u (Sentinel)", url->master_name, url->db);
    if (url->path != NULL)
        return url->db ? sl_asprintf("unix:%s?db=%u", url->path, url->db)
                       : sl_asprintf("unix:%s", url->path);
    if (strchr(url->host, ':') != NULL)
        return sl_asprintf("[%s]:%u/%u", url->host, url->port, url->db);
    return sl_asprintf("%s:%u/%u", url->host, url->port, url->db);
}

int
sl_redis_url_from_config(const struct sl_config *config, struct sl_redis_url *url_r,
                         char **error_r)
{
    const char *env_user = getenv("SLUICE_REDIS_USER");
    const char *env_password = getenv("SLUICE_REDIS_PASSWORD");
    char *text, *why;

    /* env:NAME, file:/path: the URL is kept elsewhere (sl_config.h) */
    if (sl_config_secret(config->redis.url, &text, &why) < 0) {
        memset(url_r, 0, sizeof(*url_r));
        *error_r = sl_asprintf("redis.url %s", why);
        free(why);
        return -1;
    }
    int r = sl_redis_url_parse(text, url_r, error_r);
    explicit_bzero(text, strlen(text));
    free(text);
    if (r < 0)
        return -1;
    /* the URL's own password wins; the environment fills in */
    if (url_r->password == NULL && env_password != NULL && env_password[0] != '\0') {
        url_r->password = sl_strdup(env_password);
        if (url_r->user == NULL && env_user != NULL && env_user[0] != '\0')
            url_r->user = sl_strdup(env_user);
    }
    if (config->redis.n_sentinels > 0) {
        url_r->sentinels = sl_calloc(config->redis.n_sentinels, sizeof(char *));
        for (size_t i = 0; i < config->redis.n_sentinels; i++)
            url_r->sentinels[i] = sl_strdup(config->redis.sentinels[i]);
        url_r->n_sentinels = config->redis.n_sentinels;
        url_r->master_name = sl_strdup(config->redis.master_name);
    }
    url_r->timeout_ms = config->redis.timeout_s * 1000;
    return 0;
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? sl_strdup(s) : NULL;
}

void
sl_redis_url_copy(struct sl_redis_url *dst, const struct sl_redis_url *src)
{
    *dst = *src;
    dst->host = dup_or_null(src->host);
    dst->path = dup_or_null(src->path);
    dst->user = dup_or_null(src->user);
    dst->password = dup_or_null(src->password);
    dst->master_name = dup_or_null(src->master_name);
    dst->sentinels = src->n_sentinels ? sl_calloc(src->n_sentinels, sizeof(char *)) : NULL;
    for (size_t i = 0; i < src->n_sentinels; i++)
        dst->sentinels[i] = sl_strdup(src->sentinels[i]);
}

/* "host:port" or "[v6]:port" of a Sentinel. */
static int
split_hostport(const char *s, char **host_r, unsigned *port_r)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t hl;

    if (colon == NULL || parse_uint(colon + 1, strlen(colon + 1), 65535, port_r) < 0)
        return -1;
    hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    *host_r = sl_strndup(h, hl);
    return 0;
}

int
sl_redis_resolve_master(const struct sl_redis_url *url, unsigned timeout_ms, char **host_r,
                        unsigned *port_r, char **error_r)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    char *last = NULL;

    for (size_t i = 0; i < url->n_sentinels; i++) {
        char *host = NULL;
        unsigned port = 0;
        redisContext *c;
        redisReply *r;

        if (split_hostport(url->sentinels[i], &host, &port) < 0) {
            free(last);
            last = sl_asprintf("redis.sentinels: \"%s\" is not host:port", url->sentinels[i]);
            continue;
        }
        c = redisConnectWithTimeout(host, (int)port, tv);
        free(host);
        if (c == NULL || c->err) {
            free(last);
            last = sl_asprintf("Sentinel %s: %s", url->sentinels[i], c ? c->errstr : "no memory");
            if (c != NULL)
                redisFree(c);
            continue;
        }
        (void)redisSetTimeout(c, tv);
        /* Sentinels are not protected by the data password (their own
         * requirepass is a separate setting, not supported here). */
        r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", url->master_name);
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
            parse_uint(r->element[1]->str, r->element[1]->len, 65535, port_r) == 0) {
            *host_r = sl_strdup(r->element[0]->str);
            freeReplyObject(r);
            redisFree(c);
            free(last);
            return 0;
        }
        free(last);
        last = sl_asprintf("Sentinel %s: no master named \"%s\"%s%s", url->sentinels[i],
                           url->master_name, r && r->type == REDIS_REPLY_ERROR ? ": " : "",
                           r && r->type == REDIS_REPLY_ERROR ? r->str : "");
        if (r != NULL)
            freeReplyObject(r);
        redisFree(c);
    }
    *error_r = last != NULL ? last : sl_strdup("no Sentinel configured");
    return -1;
}

struct redisContext *
sl_redis_connect_sync(const struct sl_redis_url *url, unsigned timeout_ms, char **error_r)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c;
    redisReply *r;

    if (url->n_sentinels > 0) {
        char *host;
        unsigned port;
        if (sl_redis_resolve_master(url, timeout_ms, &host, &port, error_r) < 0)
            return NULL;
        c = redisConnectWithTimeout(host, (int)port, tv);
        free(host);
    } else {
        c = url->path != NULL ? redisConnectUnixWithTimeout(url->path, tv)
                              : redisConnectWithTimeout(url->host, (int)url->port, tv);
    }
    if (c == NULL || c->err) {
        *error_r = sl_asprintf("cannot connect to Redis: %s", c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        *error_r = sl_asprintf("Redis: cannot set timeout: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (url->password != NULL) {
        r = url->user != NULL ? redisCommand(c, "AUTH %s %s", url->user, url->password)
                              : redisCommand(c, "AUTH %s", url->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            *error_r = sl_asprintf("Redis AUTH: %s", r ? r->str : c->errstr);
            if (r != NULL)
                freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (url->db != 0) {
        r = redisCommand(c, "SELECT %u", url->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            *error_r = sl_asprintf("Redis SELECT %u: %s", url->db, r ? r->str : c->errstr);
            if (r != NULL)
                freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

struct redisAsyncContext *
sl_redis_async_connect(const struct sl_redis_url *url, char **error_r)
{
    redisAsyncContext *ac;

    if (url->n_sentinels > 0) {
        char *host;
        unsigned port;
        if (sl_redis_resolve_master(url, url->timeout_ms ? url->timeout_ms : 1000, &host, &port,
                                    error_r) < 0)
            return NULL;
        ac = redisAsyncConnect(host, (int)port);
        free(host);
    } else {
        ac = url->path != NULL ? redisAsyncConnectUnix(url->path)
                               : redisAsyncConnect(url->host, (int)url->port);
    }
    if (ac == NULL) {
        *error_r = sl_strdup("out of memory");
        return NULL;
    }
    if (ac->err) {
        *error_r = sl_strdup(ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

unsigned
sl_redis_async_login(struct redisAsyncContext *ac, const struct sl_redis_url *url,
                     sl_redis_async_reply_fn *cb, void *auth_what, void *select_what)
{
    unsigned n = 0;

    /* queued until the connection is up, answered before anything else */
    if (url->password != NULL) {
        const char *argv[3] = {"AUTH", url->user ? url->user : url->password, url->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(url->password)};
        int argc = url->user ? 3 : 2;
        if (redisAsyncCommandArgv(ac, cb, auth_what, argc, argv, lens) == REDIS_OK)
            n++;
    }
    if (url->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%u", url->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        if (redisAsyncCommandArgv(ac, cb, select_what, 2, argv, lens) == REDIS_OK)
            n++;
    }
    return n;
}
