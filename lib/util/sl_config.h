/* sl_config.h - sluice's configuration: one YAML file plus -o overrides.
 *
 * The file is parsed with libyaml; every key is checked against a schema
 * and every error names the file, the line and the key, e.g.
 *   /etc/sluice/sluice.yaml:12: frontend.listne: unknown key
 *   -o origins.default.concurrency=x: origins.default.concurrency: not a number
 * With no file the defaults are the seed's single node (listen
 * 127.0.0.1:10024, reinject to the connecting Postfix's port 10025,
 * concurrency 2). docs/configuration.md lists every key. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "util/sl_addr.h"
#include "util/sl_util.h"

#define SL_CONFIG_DEFAULT_PATH "/etc/sluice/sluice.yaml"

struct sl_origin_config {
    char *name;                 /* the key under origins: */
    struct sl_cidr_list match;  /* client addresses; empty for "default" = everything else */
    char *match_text;           /* as configured, for printing */
    char *reinject;             /* as configured: "client:10025" or "host:port" */
    bool reinject_to_client;    /* "client:PORT": the connecting Postfix's own address */
    char *reinject_host;        /* fixed host when !reinject_to_client */
    unsigned reinject_port;
    unsigned concurrency;       /* max simultaneous sessions (amavisfeed_destination_concurrency_limit) */
};

struct sl_config {
    char *path;                 /* file read, NULL when running on defaults */

    struct {
        char *listen;           /* "127.0.0.1:10024" */
        struct sl_cidr_list acl;
        char *acl_text;
        char *hostname;         /* greeting and Received: name; "" = system FQDN */
        size_t max_message_size;    /* bytes, advertised in SIZE */
        unsigned recipient_limit;   /* per transaction, amavis' $smtpd_recipient_limit */
        unsigned timeout_s;         /* idle/command/data timeout, amavis' $smtpd_timeout */
    } frontend;

    struct sl_origin_config *origins;   /* in file order; "default" is always present */
    size_t n_origins;

    struct {
        unsigned timeout_s;     /* per-message deadline, amavis' $child_timeout */
    } job;

    struct {
        char *listen;           /* where a broker binds */
        char **endpoints;       /* brokers frontends and workers connect to */
        size_t n_endpoints;
    } broker;

    struct {
        unsigned count;         /* worker threads; 0 = sum of origin concurrency */
    } workers;

    struct {
        unsigned timeout_s;     /* connect/command timeout towards :10025 */
    } reinject;

    struct {
        char *target;           /* "stderr" or "syslog" */
        char *level;            /* "info", "debug", ... */
    } log;

    struct {
        char *url;              /* "" = no Redis */
    } redis;
};

/* Loads path (NULL: the default path if it exists, else pure defaults),
 * then applies overrides ("key=value" strings, in order). On error returns
 * NULL and a malloc'ed message in *error_r naming file, line and key. */
struct sl_config *sl_config_load(const char *path, char *const *overrides, size_t n_overrides,
                                 char **error_r);
void sl_config_destroy(struct sl_config **configp);

/* Prints the effective configuration as YAML that sl_config_load() reads
 * back; only_changed: only values that differ from the defaults (postconf -n). */
void sl_config_print(const struct sl_config *config, FILE *out, bool only_changed);

/* The origin whose match list holds ip, else "default". Never NULL. */
const struct sl_origin_config *sl_config_origin_for(const struct sl_config *config,
                                                    const char *ip);

#endif
