/* conf_check.c - the checks that involve more than one key, run once the
 * file and every -o override are read: one key alone may be fine, and
 * wrong only beside another (dedup.enabled: yes without redis.url).
 *
 * The error names the line (or -o) that set the key to blame, as recorded
 * while loading (conf_set_where), or "(after loading)" when the culprit
 * is a default. The checks run in a fixed order and stop at the first
 * failure, so one configuration always gives the same message. */
#include "conf_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Blames key where blame_key was set; always -1. */
static int
check_fail(struct conf_loader *ld, const char *blame_key, const char *key, const char *msg)
{
    return conf_fail_at(ld, conf_set_where(ld, blame_key), key, "%s", msg);
}

static int
check_redis(struct conf_loader *ld)
{
    const struct sl_config *c = ld->config;

    if (strcmp(c->dedup.enabled, "yes") == 0 && c->redis.url[0] == '\0')
        return check_fail(ld, "dedup.enabled", "dedup.enabled",
                          "yes needs redis.url: the ledger lives in Redis");
    if (c->redis.n_sentinels > 0 && c->redis.master_name[0] == '\0')
        return check_fail(ld, "redis.sentinels", "redis.master_name",
                          "required with redis.sentinels: the name Sentinel knows the master by");
    if (c->redis.n_sentinels > 0 && c->redis.url[0] == '\0')
        return check_fail(ld, "redis.sentinels", "redis.sentinels",
                          "needs redis.url too (redis://[user:password@]any/db: the host is "
                          "replaced by the master Sentinel names)");
    return 0;
}

/* Blamed on where the origin was first named: a missing key has no line. */
static int
check_origins(struct conf_loader *ld)
{
    const struct sl_config *c = ld->config;

    for (size_t i = 0; i < c->n_origins; i++) {
        const struct sl_origin_config *o = &c->origins[i];
        if (strcmp(o->name, SL_CONFIG_DEFAULT_ORIGIN) != 0 && o->match.n == 0) {
            char *key = sl_asprintf("origins.%s.match", o->name);
            conf_fail_at(ld, ld->origin_where[i], key,
                         "required: an origin other than default needs the client addresses of "
                         "its Postfix (e.g. 127.0.0.2)");
            free(key);
            return -1;
        }
    }
    return 0;
}

/* A list of words that must each be known: checked here rather than as a
 * type of its own, the words being the worker's (check_headers.c). Every
 * bank first, then policy.*. */
static int
check_bad_header_tests(struct conf_loader *ld)
{
    static const char *const header_tests[] = {"mime",   "8bit",    "control",  "long",
                                               "syntax", "missing", "multiple", NULL};
    const struct sl_config *c = ld->config;
    const char *canon;

    for (size_t i = 0; i <= c->n_banks; i++) {
        const struct sl_policy_config *p = i < c->n_banks ? &c->banks[i].p : &c->policy;
        for (size_t k = 0; k < p->n_bad_header_tests; k++) {
            if (conf_enum_lookup(header_tests, p->bad_header_tests[k], &canon))
                continue;
            char *key = i < c->n_banks
                            ? sl_asprintf("policy_banks.%s.bad_header_tests", c->banks[i].name)
                            : sl_strdup("policy.bad_header_tests");
            char *list = conf_enum_list(header_tests);
            conf_fail_at(ld, conf_set_where(ld, key), key, "\"%s\" is not one of: %s",
                         p->bad_header_tests[k], list);
            free(list);
            free(key);
            return -1;
        }
    }
    return 0;
}

/* What selects a bank must exist: a listener port, an origin. */
static int
check_bank_matches(struct conf_loader *ld, const struct sl_policy_bank *b)
{
    const struct sl_config *c = ld->config;
    char *key;

    for (size_t k = 0; k < b->n_match_listener; k++) {
        char *end;
        unsigned long port = strtoul(b->match_listener[k], &end, 10);
        if (!isdigit((unsigned char)b->match_listener[k][0]) || *end != '\0' || port < 1 ||
            port > 65535) {
            key = sl_asprintf("policy_banks.%s.match_listener", b->name);
            conf_fail_at(ld, conf_set_where(ld, key), key, "\"%s\" is not a port number (1..65535)",
                         b->match_listener[k]);
            free(key);
            return -1;
        }
    }
    for (size_t k = 0; k < b->n_match_origin; k++) {
        if (conf_origin_find(c, b->match_origin[k]) < 0) {
            key = sl_asprintf("policy_banks.%s.match_origin", b->name);
            conf_fail_at(ld, conf_set_where(ld, key), key, "no origin called \"%s\" (origins.%s)",
                         b->match_origin[k], b->match_origin[k]);
            free(key);
            return -1;
        }
    }
    return 0;
}

/* lookup.*: one source at a time (amavis consults SQL, then LDAP; a
 * cluster keeps its policy in one place), LDAP with a base, and the keys'
 * placeholders where the lookups put them. */
static int
check_lookup(struct conf_loader *ld)
{
    const struct sl_config *c = ld->config;
    bool sql = c->lookup.sql[0] != '\0', ldap = c->lookup.ldap.uri[0] != '\0';

    if (sql && ldap)
        return conf_fail_at(ld, conf_set_where(ld, "lookup.ldap.uri"), "lookup.ldap.uri",
                            "lookup.sql is set too: one lookup source at a time");
    if (ldap && c->lookup.ldap.base[0] == '\0')
        return conf_fail_at(ld, conf_set_where(ld, "lookup.ldap.uri"), "lookup.ldap.base",
                            "LDAP lookups need a search base (\"ou=people,dc=example,dc=com\")");
    if (ldap && strstr(c->lookup.ldap.filter, "%m") == NULL)
        return conf_fail_at(ld, conf_set_where(ld, "lookup.ldap.filter"), "lookup.ldap.filter",
                            "\"%s\" has no %%m (where the recipient's keys go)",
                            c->lookup.ldap.filter);
    /* passwords stay out of the file (`sluice config` prints it) */
    if (strstr(c->lookup.sql, "password") != NULL ||
        (strstr(c->lookup.sql, "://") != NULL && strchr(c->lookup.sql, '@') != NULL &&
         memchr(strstr(c->lookup.sql, "://") + 3, ':',
                (size_t)(strchr(c->lookup.sql, '@') - strstr(c->lookup.sql, "://") - 3)) != NULL))
        return conf_fail_at(ld, conf_set_where(ld, "lookup.sql"), "lookup.sql",
                            "holds a password: give it in PGPASSWORD or a PGPASSFILE (libpq "
                            "reads both), not in the configuration");
    bool ok;
    if (c->lookup.ldap.bind_password[0] != '\0' &&
        (!conf_secret_ref(c->lookup.ldap.bind_password, &ok) || !ok))
        return conf_fail_at(ld, conf_set_where(ld, "lookup.ldap.bind_password"),
                            "lookup.ldap.bind_password",
                            "expected env:NAME or file:/absolute/path, not the password itself");
    if (strlen(c->lookup.recipient_delimiter) > 8)
        return conf_fail_at(ld, conf_set_where(ld, "lookup.recipient_delimiter"),
                            "lookup.recipient_delimiter", "at most 8 characters, not \"%s\"",
                            c->lookup.recipient_delimiter);
    return 0;
}

int
conf_check(struct conf_loader *ld)
{
    if (check_redis(ld) < 0 || check_origins(ld) < 0 || check_bad_header_tests(ld) < 0 ||
        conf_check_quarantine(ld) < 0 || check_lookup(ld) < 0)
        return -1;
    for (size_t i = 0; i < ld->config->n_banks; i++)
        if (check_bank_matches(ld, &ld->config->banks[i]) < 0)
            return -1;
    return 0;
}

bool
sl_config_dedup_on(const struct sl_config *config)
{
    if (config->redis.url == NULL || config->redis.url[0] == '\0')
        return false;
    return strcmp(config->dedup.enabled, "no") != 0;
}
