/* sl_redis.h - Redis connection settings and helpers (hiredis 0.14).
 *
 * redis.url is "redis://[[user]:password@]host:port[/db]" (port defaults
 * to 6379, db to 0; an IPv6 host goes in brackets) or "unix:/path" (also
 * "unix:///path", with an optional "?db=N"). A user name means Redis 6
 * ACL AUTH (AUTH user password). When the URL carries no password,
 * SLUICE_REDIS_PASSWORD (and SLUICE_REDIS_USER) from the environment are
 * used: a Kubernetes Secret need not be written into the config file.
 * redis.url may also be a reference, "env:NAME" or "file:/path", resolved
 * here (sl_config_secret): the file then holds no secret at all.
 * Passwords never appear in a log line or an error message.
 *
 * With Sentinel (redis.sentinels + redis.master_name) the URL's host is
 * only a placeholder: every connect asks the Sentinels, in turn, for the
 * current master (SENTINEL get-master-addr-by-name). Parsing does no I/O. */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <stdbool.h>
#include "util/sl_util.h"

struct sl_redis_url {
    char *host; /* NULL for a unix socket */
    unsigned port;
    char *path;     /* unix socket path, or NULL */
    char *user;     /* ACL user, or NULL: AUTH with the password alone */
    char *password; /* NULL: no AUTH */
    unsigned db;
    char **sentinels; /* "host:port"; n_sentinels == 0: host:port is the master */
    size_t n_sentinels;
    char *master_name;
    unsigned timeout_ms; /* connect and command timeout (redis.timeout) */
};

struct sl_config;
/* redis.url and the redis.* keys of config, plus the environment. The
 * same results as sl_redis_url_parse. */
SL_WARN_UNUSED int sl_redis_url_from_config(const struct sl_config *config,
                                            struct sl_redis_url *url_r, char **error_r);
/* A deep copy. */
void sl_redis_url_copy(struct sl_redis_url *dst, const struct sl_redis_url *src);

/* 0 and *url_r filled (free with sl_redis_url_free), or -1 and *error_r
 * (malloc'ed) naming what is wrong. */
SL_WARN_UNUSED int sl_redis_url_parse(const char *text, struct sl_redis_url *url_r, char **error_r);
void sl_redis_url_free(struct sl_redis_url *url);
/* "host:port/db", "unix:/path" or 'master "name"/db (Sentinel)', for log
 * lines (no password). Malloc'ed. */
char *sl_redis_url_describe(const struct sl_redis_url *url);

/* Sentinel: asks each of url->sentinels in turn (timeout_ms each) for
 * the master of url->master_name. 0 with *host_r (malloc'ed) and *port_r,
 * or -1 with *error_r (malloc'ed). Blocking: called at (re)connect only. */
SL_WARN_UNUSED int sl_redis_resolve_master(const struct sl_redis_url *url, unsigned timeout_ms,
                                           char **host_r, unsigned *port_r, char **error_r);

struct redisContext;
/* A blocking connection with connect and command timeouts of timeout_ms,
 * authenticated and on the right db (the master, with Sentinel). NULL with *error_r (malloc'ed). For
 * command-line tools (sluice status), never for a role's event loop. */
struct redisContext *sl_redis_connect_sync(const struct sl_redis_url *url, unsigned timeout_ms,
                                           char **error_r);

struct redisAsyncContext;
/* Starts an asynchronous connection (hiredis' async API) to the master:
 * the URL's host or socket, or the one Sentinel names (asked with a
 * blocking query of at most url->timeout_ms per Sentinel). NULL with
 * *error_r (malloc'ed, no password in it). */
struct redisAsyncContext *sl_redis_async_connect(const struct sl_redis_url *url, char **error_r);
/* Queues AUTH (with the ACL user if any) and SELECT on a new async
 * connection, before anything else; their replies go to cb with privdata
 * auth_what / select_what. Returns the number of commands queued. */
typedef void sl_redis_async_reply_fn(struct redisAsyncContext *ac, void *reply, void *privdata);
unsigned sl_redis_async_login(struct redisAsyncContext *ac, const struct sl_redis_url *url,
                              sl_redis_async_reply_fn *cb, void *auth_what, void *select_what);

#endif
