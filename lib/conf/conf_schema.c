/* conf_schema.c - every configuration key: its dotted name, type, default
 * (as the text a user would write), where it lives in struct sl_config,
 * its range or choices. docs/configuration.md describes each.
 *
 * The defaults, the file and the -o overrides all go through the same
 * setter (conf_types.c), so a default can never be something the file
 * could not say. A new key is one row here, a field in sl_config.h and a
 * line in docs/configuration.md; checks across keys go to conf_check.c. */
#include "conf_int.h"

#include <stdint.h>
#include <string.h>

static const char *const log_targets[] = {"stderr", "syslog", NULL};
/* syslog(3)'s level names, most to least severe. */
static const char *const log_levels[] = {"emerg",  "alert", "crit",  "err", "warning",
                                         "notice", "info",  "debug", NULL};

static const char *const destinies[] = {"pass", "discard", "bounce", "reject", "tempfail", NULL};
static const char *const on_failure_choices[] = {"unchecked", "pass", NULL};
static const char *const dedup_enabled_choices[] = {"auto", "yes", "no", NULL};
static const char *const dedup_unavailable_choices[] = {"deliver", "tempfail", NULL};
static const char *const security_modes[] = {"curve", "plain", NULL};

#define G(field) offsetof(struct sl_config, field)
#define O(field) offsetof(struct sl_origin_config, field)
#define B(field) offsetof(struct sl_policy_bank, field)

/* The policy keys, once for policy.* and once for policy_banks.<name>.*:
 * X(leaf, type, default, field, count field, min, max, choices). */
#define POLICY_KEYS(X)                                                                             \
    X("final_virus_destiny", KT_ENUM, "discard", final_virus_destiny, final_virus_destiny, 0, 0,    \
      destinies)                                                                                   \
    X("final_banned_destiny", KT_ENUM, "discard", final_banned_destiny, final_banned_destiny, 0, 0, \
      destinies)                                                                                   \
    X("final_unchecked_destiny", KT_ENUM, "tempfail", final_unchecked_destiny,                     \
      final_unchecked_destiny, 0, 0, destinies)                                                    \
    X("final_unchecked_encrypted_destiny", KT_ENUM, "pass", final_unchecked_encrypted_destiny,     \
      final_unchecked_encrypted_destiny, 0, 0, destinies)                                          \
    X("final_unchecked_overlimit_destiny", KT_ENUM, "reject", final_unchecked_overlimit_destiny,   \
      final_unchecked_overlimit_destiny, 0, 0, destinies)                                          \
    X("final_spam_destiny", KT_ENUM, "pass", final_spam_destiny, final_spam_destiny, 0, 0,         \
      destinies)                                                                                   \
    X("final_bad_header_destiny", KT_ENUM, "pass", final_bad_header_destiny,                       \
      final_bad_header_destiny, 0, 0, destinies)                                                   \
    X("final_oversized_destiny", KT_ENUM, "bounce", final_oversized_destiny,                       \
      final_oversized_destiny, 0, 0, destinies)                                                    \
    X("spam_tag_level", KT_LEVEL, "2", spam_tag_level, spam_tag_level, 0, 0, NULL)                 \
    X("spam_tag2_level", KT_LEVEL, "6.31", spam_tag2_level, spam_tag2_level, 0, 0, NULL)           \
    X("spam_kill_level", KT_LEVEL, "6.31", spam_kill_level, spam_kill_level, 0, 0, NULL)           \
    X("spam_dsn_cutoff_level", KT_LEVEL, "10", spam_dsn_cutoff_level, spam_dsn_cutoff_level, 0, 0, \
      NULL)                                                                                        \
    X("spam_tag_level_map", KT_LEVELMAP, "", spam_tag_level_map, n_spam_tag_level_map, 0, 0, NULL) \
    X("spam_tag2_level_map", KT_LEVELMAP, "", spam_tag2_level_map, n_spam_tag2_level_map, 0, 0,    \
      NULL)                                                                                        \
    X("spam_kill_level_map", KT_LEVELMAP, "", spam_kill_level_map, n_spam_kill_level_map, 0, 0,    \
      NULL)                                                                                        \
    X("spam_dsn_cutoff_level_map", KT_LEVELMAP, "", spam_dsn_cutoff_level_map,                     \
      n_spam_dsn_cutoff_level_map, 0, 0, NULL)                                                     \
    X("spam_subject_tag", KT_STRING, "***SPAM*** ", spam_subject_tag, spam_subject_tag, 0, 0,      \
      NULL)                                                                                        \
    X("banned_extensions", KT_LIST, "exe, vbs, pif, scr, cpl", banned_extensions,                  \
      n_banned_extensions, 0, 0, NULL)                                                             \
    X("banned_double_extensions", KT_LIST, "exe, vbs, pif, scr, bat, cmd, com, cpl, dll",          \
      banned_double_extensions, n_banned_double_extensions, 0, 0, NULL)                            \
    X("banned_types", KT_LIST,                                                                     \
      "application/x-msdownload, application/x-msdos-program, application/x-dosexec, "            \
      "application/vnd.microsoft.portable-executable, application/hta",                            \
      banned_types, n_banned_types, 0, 0, NULL)                                                    \
    X("banned_names_re", KT_PATTERNS, "", banned_names_re, n_banned_names_re, 0, 0, NULL)          \
    X("archive_max_depth", KT_UINT, "8", archive_max_depth, archive_max_depth, 0, 100, NULL)       \
    X("archive_max_entries", KT_UINT, "3000", archive_max_entries, archive_max_entries, 1,         \
      10000000, NULL)                                                                              \
    X("archive_max_size", KT_SIZE, "100M", archive_max_size, archive_max_size, 1, SIZE_MAX, NULL)  \
    X("archive_max_ratio", KT_UINT, "200", archive_max_ratio, archive_max_ratio, 2, 1000000, NULL) \
    X("bad_header_tests", KT_LIST, "mime, 8bit, control, long, syntax, multiple",                  \
      bad_header_tests, n_bad_header_tests, 0, 0, NULL)                                            \
    X("message_size_limit", KT_SIZE, "0", message_size_limit, message_size_limit, 0, SIZE_MAX,     \
      NULL)                                                                                        \
    X("bypass_virus_checks", KT_BOOL, "no", bypass_virus_checks, bypass_virus_checks, 0, 0, NULL)  \
    X("bypass_spam_checks", KT_BOOL, "no", bypass_spam_checks, bypass_spam_checks, 0, 0, NULL)     \
    X("bypass_banned_checks", KT_BOOL, "no", bypass_banned_checks, bypass_banned_checks, 0, 0,     \
      NULL)                                                                                        \
    X("bypass_header_checks", KT_BOOL, "no", bypass_header_checks, bypass_header_checks, 0, 0,     \
      NULL)                                                                                        \
    X("originating", KT_BOOL, "no", originating, originating, 0, 0, NULL)                         \
    X("local_domains", KT_LIST, "", local_domains, n_local_domains, 0, 0, NULL)                  \
    X("virus_quarantine_to", KT_STRING, "virus-quarantine", virus_quarantine_to,                   \
      virus_quarantine_to, 0, 0, NULL)                                                             \
    X("banned_quarantine_to", KT_STRING, "banned-quarantine", banned_quarantine_to,                \
      banned_quarantine_to, 0, 0, NULL)                                                            \
    X("spam_quarantine_to", KT_STRING, "spam-quarantine", spam_quarantine_to, spam_quarantine_to,  \
      0, 0, NULL)                                                                                  \
    X("bad_header_quarantine_to", KT_STRING, "bad-header-quarantine", bad_header_quarantine_to,    \
      bad_header_quarantine_to, 0, 0, NULL)                                                        \
    X("virus_quarantine_to_map", KT_LIST, "", virus_quarantine_to_map,                             \
      n_virus_quarantine_to_map, 0, 0, NULL)                                                       \
    X("banned_quarantine_to_map", KT_LIST, "", banned_quarantine_to_map,                           \
      n_banned_quarantine_to_map, 0, 0, NULL)                                                      \
    X("spam_quarantine_to_map", KT_LIST, "", spam_quarantine_to_map, n_spam_quarantine_to_map, 0,  \
      0, NULL)                                                                                     \
    X("bad_header_quarantine_to_map", KT_LIST, "", bad_header_quarantine_to_map,                   \
      n_bad_header_quarantine_to_map, 0, 0, NULL)                                                  \
    X("virus_admin", KT_STRING, "", virus_admin, virus_admin, 0, 0, NULL)                          \
    X("banned_admin", KT_STRING, "", banned_admin, banned_admin, 0, 0, NULL)                       \
    X("spam_admin", KT_STRING, "", spam_admin, spam_admin, 0, 0, NULL)                             \
    X("bad_header_admin", KT_STRING, "", bad_header_admin, bad_header_admin, 0, 0, NULL)           \
    X("warn_virus_recip", KT_BOOL, "no", warn_virus_recip, warn_virus_recip, 0, 0, NULL)           \
    X("warn_banned_recip", KT_BOOL, "no", warn_banned_recip, warn_banned_recip, 0, 0, NULL)

#define GLOBAL_POLICY_KEY(leaf, type, def, f, f2, min, max, ch)                                    \
    {"policy." leaf, type, def, G(policy.f), G(policy.f2), min, max, ch},
#define BANK_POLICY_KEY(leaf, type, def, f, f2, min, max, ch)                                      \
    {leaf, type, def, B(p.f), B(p.f2), min, max, ch},

/* scanners.<name>.*, the same for each scanner but for the defaults. */
#define SCANNER_KEYS(name, def_timeout, def_max_size)                                                      \
    {"scanners." #name ".servers", KT_SERVERS, "", G(scanners.name.servers),                        \
     G(scanners.name.n_servers), 0, 0, NULL},                                                      \
    {"scanners." #name ".timeout", KT_DURATION, def_timeout, G(scanners.name.timeout_s), 0, 1, 3600,   \
     NULL},                                                                                        \
    {"scanners." #name ".connect_timeout", KT_DURATION, "10", G(scanners.name.connect_timeout_s),  \
     0, 1, 3600, NULL},                                                                            \
    {"scanners." #name ".max_size", KT_SIZE, def_max_size, G(scanners.name.max_size), 0, 0, SIZE_MAX,  \
     NULL},                                                                                        \
    {"scanners." #name ".on_failure", KT_ENUM, "unchecked", G(scanners.name.on_failure), 0, 0, 0,  \
     on_failure_choices},

/* Sections appear in this order when printing. */
const struct conf_key conf_global_keys[] = {
    {"frontend.listen", KT_HOSTPORT, "127.0.0.1:10024", G(frontend.listen), 0, 0, 0, NULL},
    {"frontend.acl", KT_CIDR, "127.0.0.0/8, ::1", G(frontend.acl), G(frontend.acl_text), 0, 0,
     NULL},
    {"frontend.hostname", KT_HOSTNAME, "", G(frontend.hostname), 0, 0, 0, NULL},
    {"frontend.max_message_size", KT_SIZE, "52428800", G(frontend.max_message_size), 0, 1, SIZE_MAX,
     NULL},
    {"frontend.recipient_limit", KT_UINT, "1100", G(frontend.recipient_limit), 0, 1, 100000, NULL},
    {"frontend.timeout", KT_DURATION, "480", G(frontend.timeout_s), 0, 1, 86400, NULL},
    {"job.timeout", KT_DURATION, "480", G(job.timeout_s), 0, 1,
     CONF_POSTFIX_DATA_DONE_TIMEOUT - 1, NULL},
    {"broker.listen", KT_ENDPOINT, "inproc://sluice-broker", G(broker.listen), 0, 0, 0, NULL},
    {"broker.endpoints", KT_ENDPOINTS, "inproc://sluice-broker", G(broker.endpoints),
     G(broker.n_endpoints), 0, 0, NULL},
    {"workers.count", KT_UINT, "0", G(workers.count), 0, 0, 10000, NULL},
    {"reinject.timeout", KT_DURATION, "300", G(reinject.timeout_s), 0, 1, 86400, NULL},
    {"log.target", KT_ENUM, "stderr", G(log.target), 0, 0, 0, log_targets},
    {"log.level", KT_ENUM, "info", G(log.level), 0, 0, 0, log_levels},
    {"log.ident", KT_IDENT, "sluice", G(log.ident), 0, 0, 0, NULL},
    {"metrics.listen", KT_HOSTPORT, "", G(metrics.listen), 0, 0, 0, NULL},
    {"redis.url", KT_REDIS_URL, "", G(redis.url), 0, 0, 0, NULL},
    {"redis.sentinels", KT_SERVERS, "", G(redis.sentinels), G(redis.n_sentinels), 0, 0, NULL},
    {"redis.master_name", KT_STRING, "", G(redis.master_name), 0, 0, 0, NULL},
    {"redis.timeout", KT_DURATION, "2", G(redis.timeout_s), 0, 1, 60, NULL},
    {"dedup.enabled", KT_ENUM, "auto", G(dedup.enabled), 0, 0, 0, dedup_enabled_choices},
    {"dedup.on_unavailable", KT_ENUM, "deliver", G(dedup.on_unavailable), 0, 0, 0,
     dedup_unavailable_choices},
    {"dedup.ttl", KT_DURATION, "6d", G(dedup.ttl_s), 0, 3600, 365 * 86400, NULL},
    {"dedup.pending_timeout", KT_DURATION, "15m", G(dedup.pending_timeout_s), 0, 10, 86400, NULL},
    {"security.mode", KT_ENUM, "curve", G(security.mode), 0, 0, 0, security_modes},
    {"security.secret_key_file", KT_STRING, "", G(security.secret_key_file), 0, 0, 0, NULL},
    {"security.public_key_file", KT_STRING, "", G(security.public_key_file), 0, 0, 0, NULL},
    {"security.broker_public_key", KT_Z85KEY, "", G(security.broker_public_key), 0, 0, 0, NULL},
    {"security.broker_public_key_file", KT_STRING, "", G(security.broker_public_key_file), 0, 0,
     0, NULL},
    {"security.allow_dir", KT_STRING, "", G(security.allow_dir), 0, 0, 0, NULL},
    {"security.user", KT_STRING, "", G(security.user), 0, 0, 0, NULL},
    SCANNER_KEYS(clamd, "60", "25M")
    SCANNER_KEYS(spamd, "60", "512k")
    {"scanners.spamd.user", KT_STRING, "", G(scanners.spamd.user), 0, 0, 0, NULL},
    SCANNER_KEYS(rspamd, "30", "0")
    POLICY_KEYS(GLOBAL_POLICY_KEY)
    {"policy.mynetworks", KT_CIDR, "", G(mynetworks), G(mynetworks_text), 0, 0, NULL},
    {"policy.mynetworks_bank", KT_STRING, "ORIGINATING", G(mynetworks_bank), 0, 0, 0, NULL},
    /* checked across keys in conf_quarantine.c */
    {"quarantine.store", KT_STRING, "", G(quarantine.store), 0, 0, 0, NULL},
    {"quarantine.timeout", KT_DURATION, "30", G(quarantine.timeout_s), 0, 1, 600, NULL},
    {"quarantine.threads", KT_UINT, "2", G(quarantine.threads), 0, 1, 64, NULL},
    {"quarantine.encryption", KT_BOOL, "no", G(quarantine.encryption), 0, 0, 0, NULL},
    {"quarantine.key_file", KT_STRING, "", G(quarantine.key_file), 0, 0, 0, NULL},
    {"quarantine.max_age", KT_DURATION, "30d", G(quarantine.max_age_s), 0, 0, 3650 * 86400,
     NULL},
    {"quarantine.expire_interval", KT_DURATION, "1h", G(quarantine.expire_interval_s), 0, 10,
     86400, NULL},
    {"quarantine.release_socket", KT_STRING, "", G(quarantine.release_socket), 0, 0, 0, NULL},
    {"quarantine.release_requires_secret", KT_BOOL, "yes", G(quarantine.release_requires_secret),
     0, 0, 0, NULL},
    {"quarantine.notify.from", KT_STRING, "", G(quarantine.notify.from), 0, 0, 0, NULL},
    {"quarantine.notify.admin_template", KT_STRING, "", G(quarantine.notify.admin_template), 0,
     0, 0, NULL},
    {"quarantine.notify.recip_template", KT_STRING, "", G(quarantine.notify.recip_template), 0,
     0, 0, NULL},
    /* checked across keys in conf_check.c */
    {"lookup.sql", KT_STRING, "", G(lookup.sql), 0, 0, 0, NULL},
    {"lookup.ldap.uri", KT_STRING, "", G(lookup.ldap.uri), 0, 0, 0, NULL},
    {"lookup.ldap.base", KT_STRING, "", G(lookup.ldap.base), 0, 0, 0, NULL},
    {"lookup.ldap.filter", KT_STRING, "(&(objectClass=amavisAccount)(mail=%m))",
     G(lookup.ldap.filter), 0, 0, 0, NULL},
    {"lookup.ldap.bind_dn", KT_STRING, "", G(lookup.ldap.bind_dn), 0, 0, 0, NULL},
    {"lookup.ldap.bind_password", KT_STRING, "", G(lookup.ldap.bind_password), 0, 0, 0, NULL},
    {"lookup.timeout", KT_DURATION, "5", G(lookup.timeout_s), 0, 1, 120, NULL},
    {"lookup.cache_ttl", KT_DURATION, "60", G(lookup.cache_ttl_s), 0, 0, 3600, NULL},
    {"lookup.cache_size", KT_UINT, "100000", G(lookup.cache_size), 0, 0, 10000000, NULL},
    {"lookup.recipient_delimiter", KT_STRING, "+", G(lookup.recipient_delimiter), 0, 0, 0, NULL},
};
const size_t conf_n_global_keys = SL_N_ELEMENTS(conf_global_keys);

const struct conf_key conf_bank_keys[] = {
    POLICY_KEYS(BANK_POLICY_KEY)
    {"match_listener", KT_LIST, "", B(match_listener), B(n_match_listener), 0, 0, NULL},
    {"match_origin", KT_LIST, "", B(match_origin), B(n_match_origin), 0, 0, NULL},
};
const size_t conf_n_bank_keys = SL_N_ELEMENTS(conf_bank_keys);
#define BANK_N_POLICY_KEYS (SL_N_ELEMENTS(conf_bank_keys) - 2)
_Static_assert(SL_N_ELEMENTS(conf_bank_keys) <= 64, "bank->set has 64 bits");

const struct conf_key conf_origin_keys[] = {
    {"match", KT_CIDR, "", O(match), O(match_text), 0, 0, NULL},
    {"reinject", KT_REINJECT, "client:10025", O(reinject), 0, 0, 0, NULL},
    {"concurrency", KT_UINT, "2", O(concurrency), 0, 1, 1000, NULL},
};
const size_t conf_n_origin_keys = SL_N_ELEMENTS(conf_origin_keys);

const char *const conf_sections[] = {"frontend", "job",      "broker", "workers",
                                     "reinject", "log",      "metrics", "redis", "dedup",
                                     "security", "origins",
                                     "scanners", "policy",   "policy_banks", "quarantine", "lookup"};
const size_t conf_n_sections = SL_N_ELEMENTS(conf_sections);

/* What a reload cannot change (sl_config_key_needs_restart): a dotted key,
 * or a section with its dot for all of its keys. Everything else takes
 * effect at SIGHUP; docs/operations.md ("Reloading") says when. */
static const char *const restart_keys[] = {
    "frontend.listen",           /* bound by the master (or systemd) */
    "frontend.hostname",         /* the reinjector's EHLO, made at start */
    "frontend.max_message_size", /* every ZeroMQ socket's ZMQ_MAXMSGSIZE */
    "broker.",                   /* the sockets bound and connected */
    "workers.count",             /* the threads started */
    "redis.",                    /* the registry's and the ledger's connections */
    "dedup.",                    /* the ledger, opened at start */
    "security.",                 /* keys read and root given up at start */
    "metrics.",                  /* its socket bound by the master */
    "quarantine.",               /* stores, threads, release socket: opened at start */
    "lookup.",                   /* the source and its cache, opened at start */
};

bool
sl_config_key_needs_restart(const char *key)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(restart_keys); i++) {
        size_t len = strlen(restart_keys[i]);
        if (restart_keys[i][len - 1] == '.' ? strncmp(key, restart_keys[i], len) == 0
                                            : strcmp(key, restart_keys[i]) == 0)
            return true;
    }
    return false;
}

const struct conf_key *
conf_key_find(const struct conf_key *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

bool
conf_is_subsection(const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < conf_n_global_keys; i++)
        if (strncmp(conf_global_keys[i].name, name, n) == 0 && conf_global_keys[i].name[n] == '.')
            return true;
    return false;
}

bool
conf_is_section(const char *name)
{
    for (size_t i = 0; i < conf_n_sections; i++)
        if (strcmp(conf_sections[i], name) == 0)
            return true;
    return false;
}

void
sl_config_bank_copy_set(struct sl_policy_config *dst, const struct sl_policy_bank *bank)
{
    /* conf_bank_keys' offsets are from the bank; dst is a policy: shift it. */
    char *base = (char *)dst - B(p);

    for (size_t i = 0; i < BANK_N_POLICY_KEYS; i++)
        if (bank->set & (1ULL << i))
            conf_type(&conf_bank_keys[i])->copy(&conf_bank_keys[i], base, bank);
}
