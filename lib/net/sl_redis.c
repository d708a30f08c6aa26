/* sl_redis.c - Redis URL parsing and a blocking connect (sl_redis.h). */
#include "net/sl_redis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>

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
    free(url->password);
    memset(url, 0, sizeof(*url));
}

static int
url_fail(struct sl_redis_url *url, char **error_r, const char *text, const char *why)
{
    *error_r = sl_asprintf("redis.url \"%s\": %s", text, why);
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
                        "expected redis://[:password@]host:port[/db] or unix:/path");
    const char *at = strrchr(rest, '@');
    const char *slash;
    if (at != NULL) {
        /* userinfo: ":password" (Redis 5 has no user name; "user:pass" is
         * accepted and the user ignored, as redis-cli does before ACLs) */
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon == NULL)
            return url_fail(url_r, error_r, text, "expected :password@ before the host");
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
    if (url->path != NULL)
        return url->db ? sl_asprintf("unix:%s?db=%u", url->path, url->db)
                       : sl_asprintf("unix:%s", url->path);
    if (strchr(url->host, ':') != NULL)
        return sl_asprintf("[%s]:%u/%u", url->host, url->port, url->db);
    return sl_asprintf("%s:%u/%u", url->host, url->port, url->db);
}

struct redisContext *
sl_redis_connect_sync(const struct sl_redis_url *url, unsigned timeout_ms, char **error_r)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c;
    redisReply *r;

    c = url->path != NULL ? redisConnectUnixWithTimeout(url->path, tv)
                          : redisConnectWithTimeout(url->host, (int)url->port, tv);
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
        r = redisCommand(c, "AUTH %s", url->password);
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
