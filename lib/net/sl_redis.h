/* sl_redis.h - Redis connection settings and helpers (hiredis 0.14).
 *
 * redis.url is "redis://[:password@]host:port[/db]" (port defaults to
 * 6379, db to 0; an IPv6 host goes in brackets) or "unix:/path" (also
 * "unix:///path", with an optional "?db=N"). Parsing does no I/O. */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <stdbool.h>
#include "util/sl_util.h"

struct sl_redis_url {
    char *host; /* NULL for a unix socket */
    unsigned port;
    char *path;     /* unix socket path, or NULL */
    char *password; /* NULL: no AUTH */
    unsigned db;
};

/* 0 and *url_r filled (free with sl_redis_url_free), or -1 and *error_r
 * (malloc'ed) naming what is wrong. */
SL_WARN_UNUSED int sl_redis_url_parse(const char *text, struct sl_redis_url *url_r, char **error_r);
void sl_redis_url_free(struct sl_redis_url *url);
/* "host:port" or "unix:/path", for log lines (no password). Malloc'ed. */
char *sl_redis_url_describe(const struct sl_redis_url *url);

struct redisContext;
/* A blocking connection with connect and command timeouts of timeout_ms,
 * authenticated and on the right db. NULL with *error_r (malloc'ed). For
 * command-line tools (sluice status), never for a role's event loop. */
struct redisContext *sl_redis_connect_sync(const struct sl_redis_url *url, unsigned timeout_ms,
                                           char **error_r);

#endif
