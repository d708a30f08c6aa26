/* sl_config.h - sluice's configuration: one YAML file plus -o overrides
 * (lib/conf, target sl_conf).
 *
 * The file is parsed with libyaml; every key is checked against a schema
 * and every error names the file, the line and the key, e.g.
 *   /etc/sluice/sluice.yaml:12: frontend.listne: unknown key
 *   -o origins.default.concurrency=x: origins.default.concurrency: "x" is not a number
 * With no file the defaults are the standard single-node Postfix setup
 * (listen 127.0.0.1:10024, reinject to the connecting Postfix's port
 * 10025, concurrency 2). docs/configuration.md lists every key; the files
 * of lib/conf are listed in conf_int.h.
 *
 * A loaded struct sl_config is reference-counted: whoever loaded it holds
 * one reference, sl_config_ref() takes another (from any thread), and the
 * last sl_config_unref() frees it. A loaded configuration is never
 * changed: a reload (SIGHUP) loads a new one, and each session or job
 * goes on with the one it took (docs/operations.md, "Reloading"). Every
 * string and list in it lives as long as the configuration. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "util/sl_addr.h"
#include "util/sl_util.h"

#define SL_CONFIG_DEFAULT_PATH "/etc/sluice/sluice.yaml"
/* The origin that takes every client no other origin matches; always there. */
#define SL_CONFIG_DEFAULT_ORIGIN "default"

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

/* One scanner daemon, scanners.<clamd|spamd|rspamd>.* (docs/configuration.md). */
struct sl_scanner_config {
    char **servers;             /* "unix:/path" or "host:port", tried in turn; none: off */
    size_t n_servers;
    unsigned timeout_s;         /* one whole exchange with one server */
    unsigned connect_timeout_s;
    size_t max_size;            /* clamd: larger is UNCHECKED; spamd/rspamd: scan the first max_size bytes */
    char *user;                 /* spamd: the SPAMC User header ("" = none) */
    char *on_failure;           /* "unchecked" (UNCHECKED) or "pass" (logged, not scanned) */
};

/* amavisd-new's policy settings. Every field can be overridden by a policy
 * bank (policy_banks.<name>.*); destinies are kept as their names
 * ("pass", "discard", "bounce", "reject", "tempfail"). Lists are NULL-free
 * arrays of n_* strings. */
struct sl_policy_config {
    char *final_virus_destiny;
    char *final_banned_destiny;
    char *final_unchecked_destiny;
    char *final_unchecked_encrypted_destiny;
    char *final_unchecked_overlimit_destiny;
    char *final_spam_destiny;
    char *final_bad_header_destiny;
    char *final_oversized_destiny;
    double spam_tag_level;      /* X-Spam-Status and friends from here on */
    double spam_tag2_level;     /* X-Spam-Flag: YES, subject tag: SPAMMY */
    double spam_kill_level;     /* SPAM: final_spam_destiny applies */
    double spam_dsn_cutoff_level;   /* no DSN for a bounced spam at or above */
    char **spam_tag_level_map;  /* "user@dom=level" / "dom=level" / ".dom=level" */
    size_t n_spam_tag_level_map;
    char **spam_tag2_level_map;
    size_t n_spam_tag2_level_map;
    char **spam_kill_level_map;
    size_t n_spam_kill_level_map;
    char **spam_dsn_cutoff_level_map;
    size_t n_spam_dsn_cutoff_level_map;
    char *spam_subject_tag;     /* "***SPAM*** ", "" = none */
    char **banned_extensions;   /* "exe", ...: the last extension */
    size_t n_banned_extensions;
    char **banned_double_extensions;    /* "invoice.pdf.exe": after another extension */
    size_t n_banned_double_extensions;
    char **banned_types;        /* MIME types, declared or found by libmagic */
    size_t n_banned_types;
    char **banned_names_re;     /* PCRE2 patterns on names and types */
    size_t n_banned_names_re;
    unsigned archive_max_depth; /* archives inside archives */
    unsigned archive_max_entries;
    size_t archive_max_size;    /* total expanded bytes of one message's archives */
    unsigned archive_max_ratio; /* expanded : compressed */
    char **bad_header_tests;    /* amavis' %allowed_header_tests: mime 8bit control long syntax missing multiple */
    size_t n_bad_header_tests;
    size_t message_size_limit;  /* OVERSIZED above; 0 = no limit */
    bool bypass_virus_checks;
    bool bypass_spam_checks;
    bool bypass_banned_checks;
    bool bypass_header_checks;
    bool originating;           /* outbound mail: log words Outbound / Internal */
    char **local_domains;       /* "example.com", ".example.com" (and subdomains), "." (all) */
    size_t n_local_domains;
    /* Quarantine and notifications by category (docs/quarantine.md), amavis'
     * $virus_quarantine_to ... : "" = not quarantined; the maps set it per
     * recipient ("boss@example.com=", ".example.org=virus-quarantine"). */
    char *virus_quarantine_to;
    char *banned_quarantine_to;
    char *spam_quarantine_to;
    char *bad_header_quarantine_to;
    char **virus_quarantine_to_map;
    size_t n_virus_quarantine_to_map;
    char **banned_quarantine_to_map;
    size_t n_banned_quarantine_to_map;
    char **spam_quarantine_to_map;
    size_t n_spam_quarantine_to_map;
    char **bad_header_quarantine_to_map;
    size_t n_bad_header_quarantine_to_map;
    char *virus_admin;          /* amavis' $virus_admin ...: "" = no notification */
    char *banned_admin;         /* "" = virus_admin, as amavis' @banned_admin_maps */
    char *spam_admin;
    char *bad_header_admin;
    bool warn_virus_recip;      /* amavis' $warnvirusrecip */
    bool warn_banned_recip;     /* amavis' $warnbannedrecip */
};

/* policy_banks.<name>: overrides of some policy keys (bit i of set: the
 * i-th bank key of conf_schema.c) and what selects the bank. */
struct sl_policy_bank {
    char *name;
    struct sl_policy_config p;
    unsigned long long set;
    char **match_listener;      /* frontend ports (Job.by_port) */
    size_t n_match_listener;
    char **match_origin;        /* origin names */
    size_t n_match_origin;
};

struct sl_config {
    atomic_uint refs;           /* sl_config_ref(), sl_config_unref() */
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
        char *ident;            /* program name in every line ("sluice", "amavis") */
    } log;

    struct {
        char *listen;           /* "host:port" of /metrics, /healthz, /readyz, /status; "" = off */
    } metrics;

    struct {
        char *url;              /* "" = no Redis; "env:NAME", "file:/path": a reference
                                 * (sl_config_secret); may hold a password, never printed */
        char **sentinels;       /* "host:port" of Sentinels; none: url is the master */
        size_t n_sentinels;
        char *master_name;      /* the Sentinel service name */
        unsigned timeout_s;     /* connect and command timeout */
    } redis;

    /* security.*: CURVE on tcp:// ZeroMQ links, the broker's allow-list,
     * the user to run as (docs/configuration.md, docs/cluster.md). */
    struct {
        char *mode;                     /* "curve" or "plain" */
        char *secret_key_file;          /* "" = none (or SLUICE_SECRET_KEY) */
        char *public_key_file;          /* "" = derived from the secret key */
        char *broker_public_key;        /* Z85 text, "" = none */
        char *broker_public_key_file;
        char *allow_dir;                /* the broker's allow-list of *.pub */
        char *user;                     /* drop to this user when started as root */
        /* Resolved at start-up by sl_keys_resolve() from the files or the
         * environment; never printed, wiped by sl_config_destroy(). */
        bool curve;                     /* CURVE on every non-inproc link */
        char secret_key[41], public_key[41], server_key[41];    /* Z85 */
    } security;

    struct {
        char *enabled;          /* "auto" (on when redis.url is set), "yes", "no" */
        char *on_unavailable;   /* "deliver" (at-least-once) or "tempfail" */
        unsigned ttl_s;         /* how long a reinjection is remembered */
        unsigned pending_timeout_s; /* a reservation older than this is taken over */
    } dedup;

    struct {
        struct sl_scanner_config clamd, spamd, rspamd;
    } scanners;

    /* quarantine.*: where what the policy stops is kept, its release and
     * the notifications (docs/quarantine.md). */
    struct {
        char *store;                /* "" = none, "local:/dir", "sql:<libpq conninfo or URI>" */
        unsigned timeout_s;         /* one store operation */
        unsigned threads;           /* store operations at once, off the event loop */
        bool encryption;            /* the message sealed with libsodium */
        char *key_file;             /* its key (or SLUICE_QUARANTINE_KEY) */
        unsigned max_age_s;         /* expiry; 0 = kept for ever */
        unsigned expire_interval_s; /* how often a frontend tries the expiry */
        char *release_socket;       /* AM.PDP release requests (amavisd-release); "" = none */
        bool release_requires_secret;   /* amavis' $auth_required_release */
        struct {
            char *from;             /* sender of notifications; "" = virusalert@<hostname> */
            char *admin_template;   /* files overriding the built-in templates */
            char *recip_template;
        } notify;
    } quarantine;

    /* lookup.*: each recipient's policy from SQL or LDAP, amavis' way
     * (docs/lookups.md); both "" = off, the configuration alone decides. */
    struct {
        char *sql;                  /* libpq conninfo or URI; "env:NAME", "file:/path" */
        struct {
            char *uri;              /* "ldap://127.0.0.1:389" */
            char *base;             /* search base; "%d" = the recipient's domain */
            char *filter;           /* "%m" = the keys */
            char *bind_dn;          /* "" = anonymous */
            char *bind_password;    /* "env:NAME", "file:/path" or the text */
        } ldap;
        unsigned timeout_s;         /* one query, connecting included */
        unsigned cache_ttl_s;       /* how long an answer is used; 0 = not cached */
        unsigned cache_size;        /* recipients kept per process */
        char *recipient_delimiter;  /* amavis' $recipient_delimiter: "+", "" = none */
    } lookup;

    struct sl_policy_config policy;
    struct sl_cidr_list mynetworks;     /* policy.mynetworks: XFORWARD ADDR -> originating */
    char *mynetworks_text;
    char *mynetworks_bank;              /* bank applied for mynetworks ("ORIGINATING") */
    struct sl_policy_bank *banks;       /* in file order */
    size_t n_banks;
};

/* Loads path (NULL: the default path if it exists, else pure defaults),
 * then applies overrides ("key=value" strings, in order). On error returns
 * NULL and a malloc'ed message in *error_r naming file, line and key. */
struct sl_config *sl_config_load(const char *path, char *const *overrides, size_t n_overrides,
                                 char **error_r);
/* The same with the file's contents in memory (len bytes, NULs included;
 * data may be NULL when len is 0): name stands for the file in messages
 * and in config->path; SLUICE_CONFIG and the default path play no part.
 * Used by the config fuzzer (tests/fuzz/fuzz_config.c). */
struct sl_config *sl_config_load_buffer(const char *name, const void *data, size_t len,
                                        char *const *overrides, size_t n_overrides,
                                        char **error_r);
/* Another reference to config, from any thread; the caller drops it with
 * sl_config_unref(). Returns config. */
struct sl_config *sl_config_ref(const struct sl_config *config);
/* Drops the caller's reference and clears *configp (NULL is fine); the
 * last one frees the configuration. */
void sl_config_unref(struct sl_config **configp);
/* The same as sl_config_unref(), for code that holds the only reference. */
void sl_config_destroy(struct sl_config **configp);

/* Prints the effective configuration as YAML that sl_config_load() reads
 * back; only_changed: only values that differ from the defaults (postconf -n). */
void sl_config_print(const struct sl_config *config, FILE *out, bool only_changed);

/* Copies the keys bank sets (and only those) into *dst: the data side of
 * loading a bank over a policy, as amavisd-new loads banks over each
 * other; which banks apply is the worker's choice (workers/policy.c).
 * Shallow: *dst then points into the bank's strings and lists, so it must
 * not outlive the config and is never freed. */
void sl_config_bank_copy_set(struct sl_policy_config *dst, const struct sl_policy_bank *bank);

/* Parses a level map item "key=level" (policy.spam_*_level_map). 0 and
 * *key_r (pointing into item, *keylen_r bytes) and *level_r, or -1. */
int sl_config_level_item(const char *item, const char **key_r, size_t *keylen_r,
                         double *level_r);

/* Is the reinjection ledger on (dedup.enabled, with redis.url)? */
bool sl_config_dedup_on(const struct sl_config *config);
/* redis.url with any password replaced by "***", for log lines and error
 * messages (never for a file: `sluice config` prints a reference). Malloc'ed. */
char *sl_config_redis_url_masked(const char *url);

/* A secret key's value (redis.url) as the program uses it: "env:NAME" is
 * the environment variable NAME, "file:/path" the first line of that file
 * (without its line end), anything else the value itself. The reference is
 * kept as written and resolved when used, so that `sluice config` prints
 * it, never the secret. 0 and a malloc'ed *value_r, or -1 and a malloc'ed
 * *error_r naming the reference (never the secret). */
SL_WARN_UNUSED int sl_config_secret(const char *value, char **value_r, char **error_r);
/* The variable `sluice config` names for a redis.url written with its
 * password in the file: the printed file reads the URL from there. */
#define SL_CONFIG_REDIS_URL_ENV "SLUICE_REDIS_URL"

/* ---- reloading (conf_reload.c) ------------------------------------------
 * A reload loads the file again into a new configuration and compares it
 * with the running one. Some keys cannot change in a running process (a
 * listening address, the keys and the user, what the ledger and the
 * registry connected with: docs/operations.md lists them); for those the
 * running value stays and the log says that a restart is needed. */

/* Does key (dotted) need a restart to change? */
bool sl_config_key_needs_restart(const char *key);
/* Calls fn(ctx, key) for each key whose value differs between a and b, in
 * the order sl_config_print() writes them: global keys by their dotted
 * name, an origin or a bank as "origins.NAME" / "policy_banks.NAME". */
void sl_config_diff(const struct sl_config *a, const struct sl_config *b,
                    void (*fn)(void *ctx, const char *key), void *ctx);
/* A global key's value as `sluice config` would print it (redis.url
 * masked), malloc'ed; NULL for an unknown key or one of origins.*,
 * policy_banks.*. */
char *sl_config_value_text(const struct sl_config *config, const char *key);
/* Gives next the running value of every key that needs a restart, and the
 * keys resolved at start (security.curve, the Z85 keys): what the process
 * bound and connected with stays as it is. Returns how many keys differed. */
size_t sl_config_keep_restart_keys(struct sl_config *next, const struct sl_config *running);

/* The origin whose origins.<name>.match holds ip (IPv4, IPv6 or
 * IPv4-mapped text; the first in file order), else the default origin;
 * also the default when ip is NULL or not an address. Never NULL; points
 * into config. The frontend asks it for every connection, check-postfix
 * for the instance it checks. */
const struct sl_origin_config *sl_config_origin_for(const struct sl_config *config,
                                                    const char *ip);

#endif
