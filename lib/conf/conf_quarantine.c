/* conf_quarantine.c - the checks of quarantine.* and of the policy's
 * per-recipient quarantine maps (docs/quarantine.md), run by conf_check()
 * once everything is read. */
#include "conf_int.h"

#include <stdlib.h>
#include <string.h>

/* quarantine.store: "", "local:/absolute/dir" or "sql:<conninfo>". A
 * password is refused: it would show in `sluice config` and in logs;
 * libpq reads it from PGPASSWORD or the PGPASSFILE. */
static int
check_store(struct conf_loader *ld)
{
    const char *store = ld->config->quarantine.store;
    const char *where = conf_set_where(ld, "quarantine.store");
    const char *rest;

    if (store[0] == '\0')
        return 0;
    if ((rest = sl_strcase_prefix(store, "local:")) != NULL) {
        if (rest[0] != '/')
            return conf_fail_at(ld, where, "quarantine.store",
                                "local: needs an absolute directory (local:/var/lib/sluice/"
                                "quarantine), not \"%s\"",
                                rest);
        return 0;
    }
    if ((rest = sl_strcase_prefix(store, "sql:")) != NULL) {
        const char *at = strchr(rest, '@'), *colon = strstr(rest, "://");
        if (rest[0] == '\0')
            return conf_fail_at(ld, where, "quarantine.store",
                                "sql: needs a PostgreSQL connection string (sql:host=db1 "
                                "dbname=mail_log user=sluice, or sql:postgresql://...)");
        if (strstr(rest, "password") != NULL ||
            (colon != NULL && at != NULL && memchr(colon + 3, ':', (size_t)(at - colon - 3))))
            return conf_fail_at(ld, where, "quarantine.store",
                                "holds a password: give it in PGPASSWORD or a PGPASSFILE "
                                "(libpq reads both), not in the configuration");
        return 0;
    }
    return conf_fail_at(ld, where, "quarantine.store",
                        "\"%s\" is neither local:/dir nor sql:<PostgreSQL connection string>",
                        store);
}

/* Items "key=value": key an address, "user@", a domain, ".domain" or ".";
 * value the quarantine_to for it, "" for none. */
static int
check_map(struct conf_loader *ld, const char *bank, const char *leaf, char *const *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const char *eq = strchr(v[k], '=');
        bool ok = eq != NULL && eq != v[k];
        for (const char *p = v[k]; ok && p < eq; p++)
            ok = (unsigned char)*p > ' ';
        if (ok)
            continue;
        char *key = bank != NULL ? sl_asprintf("policy_banks.%s.%s", bank, leaf)
                                 : sl_asprintf("policy.%s", leaf);
        conf_fail_at(ld, conf_set_where(ld, key), key,
                     "\"%s\" is not address=value, domain=value or .domain=value (value may be "
                     "empty: not quarantined)",
                     v[k]);
        free(key);
        return -1;
    }
    return 0;
}

/* An address sluice writes into RCPT TO and a To: header: "" or
 * printable, without blanks and without the characters that end or split
 * an address (the wire refuses the same, sl_wire.c). */
static int
check_address(struct conf_loader *ld, const char *bank, const char *leaf, const char *v)
{
    bool ok;

    if (v == NULL) /* a bank that does not set it */
        return 0;
    ok = strlen(v) < 254;

    for (const char *p = v; ok && *p != '\0'; p++)
        ok = (unsigned char)*p > ' ' && (unsigned char)*p < 127 && strchr("<>,;\"\\", *p) == NULL;
    if (ok)
        return 0;
    char *key = bank != NULL ? sl_asprintf("policy_banks.%s.%s", bank, leaf) : sl_strdup(leaf);
    conf_fail_at(ld, conf_set_where(ld, key), key,
                 "\"%s\" is not one address (user@example.com, without <> or blanks)", v);
    free(key);
    return -1;
}

int
conf_check_quarantine(struct conf_loader *ld)
{
    const struct sl_config *c = ld->config;

    if (check_store(ld) < 0 ||
        check_address(ld, NULL, "quarantine.notify.from", c->quarantine.notify.from) < 0)
        return -1;
    if (c->quarantine.encryption && c->quarantine.key_file[0] == '\0' &&
        getenv("SLUICE_QUARANTINE_KEY") == NULL)
        return conf_fail_at(ld, conf_set_where(ld, "quarantine.encryption"), "quarantine.key_file",
                            "required with quarantine.encryption (or SLUICE_QUARANTINE_KEY "
                            "in the environment): 32 bytes, raw or as 64 hex digits");
    for (size_t i = 0; i <= c->n_banks; i++) {
        const struct sl_policy_config *p = i < c->n_banks ? &c->banks[i].p : &c->policy;
        const char *bank = i < c->n_banks ? c->banks[i].name : NULL;
        if (check_address(ld, bank, bank ? "virus_admin" : "policy.virus_admin", p->virus_admin) <
                0 ||
            check_address(ld, bank, bank ? "banned_admin" : "policy.banned_admin",
                          p->banned_admin) < 0 ||
            check_address(ld, bank, bank ? "spam_admin" : "policy.spam_admin", p->spam_admin) < 0 ||
            check_address(ld, bank, bank ? "bad_header_admin" : "policy.bad_header_admin",
                          p->bad_header_admin) < 0)
            return -1;
        if (check_map(ld, bank, "virus_quarantine_to_map", p->virus_quarantine_to_map,
                      p->n_virus_quarantine_to_map) < 0 ||
            check_map(ld, bank, "banned_quarantine_to_map", p->banned_quarantine_to_map,
                      p->n_banned_quarantine_to_map) < 0 ||
            check_map(ld, bank, "spam_quarantine_to_map", p->spam_quarantine_to_map,
                      p->n_spam_quarantine_to_map) < 0 ||
            check_map(ld, bank, "bad_header_quarantine_to_map", p->bad_header_quarantine_to_map,
                      p->n_bad_header_quarantine_to_map) < 0)
            return -1;
    }
    return 0;
}
