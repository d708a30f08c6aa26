/* sl_config.c - the YAML configuration file, -o overrides, printing.
 *
 * One schema table lists every key: its dotted name, type, default (as the
 * text a user would write) and where it lives in struct sl_config. The
 * defaults, the file and the -o overrides all go through the same setter,
 * so a default can never be something the file could not say.
 *
 * The file is read with libyaml's document API (one document, its nodes
 * carry their line numbers) and walked into dotted keys: frontend.listen,
 * origins.o2.match. Every error names where it comes from ("file:line" or
 * "-o key=value") and the dotted key:
 *   /etc/sluice/sluice.yaml:12: frontend.listne: unknown key (did you mean frontend.listen?)
 *
 * Only the first error is kept: the operator fixes it and runs again, as
 * with postfix check. */
#include "conf/sl_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <yaml.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define DEFAULT_ORIGIN "default"
#define ORIGIN_NAME_MAX 64
/* Postfix's lmtp_data_done_timeout in the seed's master.cf. */
#define POSTFIX_DATA_DONE_TIMEOUT 1200

enum key_type {
    KT_HOSTPORT,  /* "host:port", "[v6]:port" */
    KT_HOSTNAME,  /* "" or a DNS name */
    KT_ENDPOINT,  /* a ZeroMQ endpoint */
    KT_ENDPOINTS, /* a list of ZeroMQ endpoints */
    KT_CIDR,      /* a list of networks */
    KT_SIZE,      /* bytes, k/M/G suffixes */
    KT_DURATION,  /* seconds, s/m/h suffixes */
    KT_UINT,      /* plain number */
    KT_ENUM,      /* one of choices */
    KT_REDIS_URL, /* "" or redis://... or unix://... */
    KT_REINJECT,  /* "client:PORT" or "host:port" (origin keys only) */
    /* scanning and policy (issue 4) */
    KT_LEVEL,     /* a spam level: decimal number, may be negative (double) */
    KT_BOOL,      /* yes/no, true/false, on/off, 1/0 */
    KT_STRING,    /* any text without control characters */
    KT_LIST,      /* words separated by commas or blanks, or a YAML list */
    KT_LEVELMAP,  /* list of key=level (address, domain or .domain) */
    KT_PATTERNS,  /* PCRE2 patterns: a YAML list, or one pattern */
    KT_SERVERS,   /* list of unix:/path or host:port, may be empty */
    KT_Z85KEY,    /* "" or a CURVE public key, 40 Z85 characters */
};

/* List types keep a char ** at off and its count (size_t) at off2. */
static bool
is_list_type(int type)
{
    return type == KT_ENDPOINTS || type == KT_LIST || type == KT_LEVELMAP ||
           type == KT_PATTERNS || type == KT_SERVERS;
}

struct key_def {
    const char *name; /* dotted, or the leaf for origin keys */
    enum key_type type;
    const char *def;             /* default, as it would be written */
    size_t off;                  /* the value's field */
    size_t off2;                 /* KT_CIDR: the text; KT_ENDPOINTS: the count */
    unsigned long long min, max; /* numbers */
    const char *const *choices;  /* KT_ENUM, NULL-terminated */
};

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
    X("local_domains", KT_LIST, "", local_domains, n_local_domains, 0, 0, NULL)

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
static const struct key_def global_keys[] = {
    {"frontend.listen", KT_HOSTPORT, "127.0.0.1:10024", G(frontend.listen), 0, 0, 0, NULL},
    {"frontend.acl", KT_CIDR, "127.0.0.0/8, ::1", G(frontend.acl), G(frontend.acl_text), 0, 0,
     NULL},
    {"frontend.hostname", KT_HOSTNAME, "", G(frontend.hostname), 0, 0, 0, NULL},
    {"frontend.max_message_size", KT_SIZE, "52428800", G(frontend.max_message_size), 0, 1, SIZE_MAX,
     NULL},
    {"frontend.recipient_limit", KT_UINT, "1100", G(frontend.recipient_limit), 0, 1, 100000, NULL},
    {"frontend.timeout", KT_DURATION, "480", G(frontend.timeout_s), 0, 1, 86400, NULL},
    {"job.timeout", KT_DURATION, "480", G(job.timeout_s), 0, 1, POSTFIX_DATA_DONE_TIMEOUT - 1,
     NULL},
    {"broker.listen", KT_ENDPOINT, "inproc://sluice-broker", G(broker.listen), 0, 0, 0, NULL},
    {"broker.endpoints", KT_ENDPOINTS, "inproc://sluice-broker", G(broker.endpoints),
     G(broker.n_endpoints), 0, 0, NULL},
    {"workers.count", KT_UINT, "0", G(workers.count), 0, 0, 10000, NULL},
    {"reinject.timeout", KT_DURATION, "300", G(reinject.timeout_s), 0, 1, 86400, NULL},
    {"log.target", KT_ENUM, "stderr", G(log.target), 0, 0, 0, log_targets},
    {"log.level", KT_ENUM, "info", G(log.level), 0, 0, 0, log_levels},
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
};

/* Under policy_banks.<name>: the policy keys (bit i of bank->set is
 * bank_keys[i]), then what selects the bank. */
static const struct key_def bank_keys[] = {
    POLICY_KEYS(BANK_POLICY_KEY)
    {"match_listener", KT_LIST, "", B(match_listener), B(n_match_listener), 0, 0, NULL},
    {"match_origin", KT_LIST, "", B(match_origin), B(n_match_origin), 0, 0, NULL},
};
#define BANK_N_POLICY_KEYS (SL_N_ELEMENTS(bank_keys) - 2)
_Static_assert(SL_N_ELEMENTS(bank_keys) <= 64, "bank->set has 64 bits");

/* Under origins.<name>. */
static const struct key_def origin_keys[] = {
    {"match", KT_CIDR, "", O(match), O(match_text), 0, 0, NULL},
    {"reinject", KT_REINJECT, "client:10025", O(reinject), 0, 0, 0, NULL},
    {"concurrency", KT_UINT, "2", O(concurrency), 0, 1, 1000, NULL},
};

static const char *const sections[] = {"frontend", "job",      "broker", "workers",
                                       "reinject", "log",      "redis",  "dedup",  "security",
                                       "origins",
                                       "scanners", "policy",   "policy_banks"};

/* Where a value came from: a file line, or one -o argument. */
struct where {
    const char *file;
    size_t line;          /* 1-based */
    const char *override; /* non-NULL for -o */
};

struct loader {
    struct sl_config *config;
    char **origin_where; /* parallel to config->origins: where each was created */
    char **set_key;      /* every key set by the file or -o ... */
    char **set_where;    /* ... and where it was set last: for config_check's errors */
    size_t n_set;
    char *error;         /* the first error, malloc'ed */
};

/* ---- small helpers ---------------------------------------------------- */

/* 40 characters of ZeroMQ's Z85 alphabet (RFC 32): a 32-byte CURVE key. */
static bool
z85_key_valid(const char *s)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";

    if (strlen(s) != 40)
        return false;
    for (; *s != '\0'; s++)
        if (strchr(z85, *s) == NULL)
            return false;
    return true;
}

static char *
where_str(const struct where *w)
{
    if (w->override != NULL)
        return sl_asprintf("-o %s", w->override);
    return sl_asprintf("%s:%zu", w->file, w->line);
}

static int fail_at(struct loader *ld, const char *wstr, const char *key, const char *fmt, ...)
    SL_PRINTF(4, 5);

/* Remembers where key got its value (file:line or -o), so that a check
 * across keys after loading can name the line to fix. Defaults are not
 * recorded: a default is never what a cross-key check blames. */
static void
note_set(struct loader *ld, const struct where *w, const char *key)
{
    if (w->override == NULL && w->line == 0)
        return;
    for (size_t i = 0; i < ld->n_set; i++) {
        if (strcmp(ld->set_key[i], key) == 0) {
            free(ld->set_where[i]);
            ld->set_where[i] = where_str(w);
            return;
        }
    }
    ld->set_key = sl_realloc(ld->set_key, (ld->n_set + 1) * sizeof(char *));
    ld->set_where = sl_realloc(ld->set_where, (ld->n_set + 1) * sizeof(char *));
    ld->set_key[ld->n_set] = sl_strdup(key);
    ld->set_where[ld->n_set++] = where_str(w);
}

/* Where blame_key was set, for an error found after loading. */
static const char *
set_where(const struct loader *ld, const char *blame_key)
{
    for (size_t i = 0; i < ld->n_set; i++)
        if (strcmp(ld->set_key[i], blame_key) == 0)
            return ld->set_where[i];
    return "(after loading)";
}

static int
fail_at(struct loader *ld, const char *wstr, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (ld->error != NULL)
        return -1;
    va_start(ap, fmt);
    msg = sl_vasprintf(fmt, ap);
    va_end(ap);
    if (key != NULL)
        ld->error = sl_asprintf("%s: %s: %s", wstr, key, msg);
    else
        ld->error = sl_asprintf("%s: %s", wstr, msg);
    free(msg);
    return -1;
}

static int fail(struct loader *ld, const struct where *w, const char *key, const char *fmt, ...)
    SL_PRINTF(4, 5);

static int
fail(struct loader *ld, const struct where *w, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *msg, *wstr;

    if (ld->error != NULL)
        return -1;
    va_start(ap, fmt);
    msg = sl_vasprintf(fmt, ap);
    va_end(ap);
    wstr = where_str(w);
    fail_at(ld, wstr, key, "%s", msg);
    free(wstr);
    free(msg);
    return -1;
}

static bool
is_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

static void *
field(void *base, size_t off)
{
    return (char *)base + off;
}

static const void *
cfield(const void *base, size_t off)
{
    return (const char *)base + off;
}

/* Optimal string alignment distance (Levenshtein plus transpositions),
 * for "did you mean". Short strings only. */
static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[65][65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* Best candidate close to key, or NULL. "Close" scales with the length of
 * the key's last component, the part the user typed wrong. */
static const char *
suggest(const char *key, const char *const *cands, size_t n)
{
    const char *last = strrchr(key, '.');
    size_t len = strlen(last != NULL ? last + 1 : key);
    size_t limit = len / 3 < 1 ? 1 : len / 3 > 3 ? 3 : len / 3;
    size_t best = SIZE_MAX;
    const char *found = NULL;

    size_t key_len = strlen(key);

    for (size_t i = 0; i < n; i++) {
        /* the distance is at least the difference in length: most
         * candidates are ruled out without the O(n*m) table */
        size_t cand_len = strlen(cands[i]);
        if ((key_len > cand_len ? key_len - cand_len : cand_len - key_len) > limit)
            continue;
        size_t d = edit_distance(key, cands[i]);
        if (d <= limit && d < best) {
            best = d;
            found = cands[i];
        }
    }
    return found;
}

static int
fail_unknown(struct loader *ld, const struct where *w, const char *key, const char *what,
             const char *origin_name)
{
    const char
        *cands[SL_N_ELEMENTS(global_keys) + SL_N_ELEMENTS(sections) + SL_N_ELEMENTS(origin_keys)];
    char *origin_cands[SL_N_ELEMENTS(origin_keys)] = {NULL};
    size_t n = 0;
    const char *hint;
    int ret;

    for (size_t i = 0; i < SL_N_ELEMENTS(sections); i++)
        cands[n++] = sections[i];
    for (size_t i = 0; i < SL_N_ELEMENTS(global_keys); i++)
        cands[n++] = global_keys[i].name;
    if (origin_name != NULL) {
        for (size_t i = 0; i < SL_N_ELEMENTS(origin_keys); i++) {
            origin_cands[i] = sl_asprintf("origins.%s.%s", origin_name, origin_keys[i].name);
            cands[n++] = origin_cands[i];
        }
    }
    hint = suggest(key, cands, n);
    if (hint != NULL)
        ret = fail(ld, w, key, "unknown %s (did you mean %s?)", what, hint);
    else
        ret = fail(ld, w, key, "unknown %s", what);
    for (size_t i = 0; i < SL_N_ELEMENTS(origin_keys); i++)
        free(origin_cands[i]);
    return ret;
}

static const struct key_def *
find_key(const struct key_def *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

/* A dotted prefix of some key, below the top level: "scanners.clamd". */
static bool
is_subsection(const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < SL_N_ELEMENTS(global_keys); i++)
        if (strncmp(global_keys[i].name, name, n) == 0 && global_keys[i].name[n] == '.')
            return true;
    return false;
}

static bool
is_section(const char *name)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(sections); i++)
        if (strcmp(sections[i], name) == 0)
            return true;
    return false;
}

/* ---- value parsing ---------------------------------------------------- */

/* Digits, then for sizes and durations an optional one-letter unit.
 * Returns 0, or -1 with *why_r naming the expected form. */
static int
parse_number(const char *s, enum key_type type, unsigned long long *v_r, const char **why_r)
{
    unsigned long long v = 0, mult = 1;
    const char *p = s;

    *why_r = type == KT_SIZE       ? "is not a size (bytes, or a number with a k, M or G suffix)"
             : type == KT_DURATION ? "is not a duration (seconds, or a number with an s, m, h "
                                     "or d suffix)"
                                   : "is not a number";
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - digit) / 10) {
            *why_r = "is too large";
            return -1;
        }
        v = v * 10 + digit;
    }
    if (*p != '\0') {
        if (type == KT_SIZE) {
            switch (*p) {
            case 'k':
            case 'K':
                mult = 1024ULL;
                break;
            case 'm':
            case 'M':
                mult = 1024ULL * 1024;
                break;
            case 'g':
            case 'G':
                mult = 1024ULL * 1024 * 1024;
                break;
            default:
                return -1;
            }
        } else if (type == KT_DURATION) {
            switch (*p) {
            case 's':
                mult = 1;
                break;
            case 'm':
                mult = 60;
                break;
            case 'h':
                mult = 3600;
                break;
            case 'd':
                mult = 86400;
                break;
            default:
                return -1;
            }
        } else {
            return -1;
        }
        if (p[1] != '\0')
            return -1;
    }
    if (v > ULLONG_MAX / mult) {
        *why_r = "is too large";
        return -1;
    }
    *v_r = v * mult;
    return 0;
}

static bool
hostname_valid(const char *s)
{
    size_t len = strlen(s);

    if (len == 0)
        return true;
    if (len > 253 || s[0] == '.' || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
            return false;
        if (*p == '.' && p[1] == '.')
            return false;
    }
    return true;
}

/* tcp://host:port (host may be * or an interface), ipc://path, inproc://name. */
static bool
endpoint_valid(const char *s)
{
    const char *rest;

    if ((rest = sl_strcase_prefix(s, "inproc://")) != NULL ||
        (rest = sl_strcase_prefix(s, "ipc://")) != NULL)
        return *rest != '\0';
    if ((rest = sl_strcase_prefix(s, "tcp://")) != NULL) {
        const char *colon = strrchr(rest, ':');
        char *end;
        unsigned long port;
        if (colon == NULL || colon == rest)
            return false;
        if (strcmp(colon + 1, "*") == 0)
            return true;
        if (!isdigit((unsigned char)colon[1]))
            return false;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
    }
    return false;
}

static bool
redis_url_valid(const char *s)
{
    const char *rest;

    if (*s == '\0')
        return true;
    if ((rest = sl_strcase_prefix(s, "redis://")) != NULL ||
        (rest = sl_strcase_prefix(s, "unix:")) != NULL)   /* unix:/path, unix:///path */
        return *rest != '\0';
    return false;
}

static bool
enum_lookup(const char *const *choices, const char *s, const char **canon_r)
{
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (strcasecmp(choices[i], s) == 0) {
            *canon_r = choices[i];
            return true;
        }
    }
    return false;
}

static char *
enum_list(const char *const *choices)
{
    char *s = sl_strdup("");
    for (size_t i = 0; choices[i] != NULL; i++) {
        char *t = sl_asprintf("%s%s%s", s, i ? ", " : "", choices[i]);
        free(s);
        s = t;
    }
    return s;
}

/* Frees whatever def's fields hold in base and clears them. */
static void
value_free(const struct key_def *def, void *base)
{
    if (is_list_type(def->type) && def->type != KT_ENDPOINTS) {
        sl_strv_free(*(char ***)field(base, def->off), *(size_t *)field(base, def->off2));
        *(char ***)field(base, def->off) = NULL;
        *(size_t *)field(base, def->off2) = 0;
        return;
    }
    switch (def->type) {
    case KT_CIDR:
        sl_cidr_list_free(field(base, def->off));
        sl_free_and_clear(field(base, def->off2));
        break;
    case KT_ENDPOINTS:
        sl_strv_free(*(char ***)field(base, def->off), *(size_t *)field(base, def->off2));
        *(char ***)field(base, def->off) = NULL;
        *(size_t *)field(base, def->off2) = 0;
        break;
    case KT_REINJECT: {
        struct sl_origin_config *o = base;
        sl_free_and_clear(&o->reinject);
        sl_free_and_clear(&o->reinject_host);
        o->reinject_to_client = false;
        o->reinject_port = 0;
        break;
    }
    case KT_SIZE:
    case KT_DURATION:
    case KT_UINT:
    case KT_LEVEL:
    case KT_BOOL:
        break;
    default:
        sl_free_and_clear(field(base, def->off));
        break;
    }
}

/* ---- scanning and policy values (issue 4) ----------------------------- */

#define LEVEL_MAX 1000000.0

static int
parse_level(const char *s, double *v_r)
{
    char *end;
    double v;

    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    /* decimal only: no hex floats, inf or nan */
    for (const char *p = s; p < end; p++)
        if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+'))
            return -1;
    if (errno != 0 || *end != '\0' || !(v >= -LEVEL_MAX && v <= LEVEL_MAX))
        return -1;
    *v_r = v;
    return 0;
}

int
sl_config_level_item(const char *item, const char **key_r, size_t *keylen_r, double *level_r)
{
    const char *eq = strrchr(item, '=');

    if (eq == NULL || eq == item || parse_level(eq + 1, level_r) < 0)
        return -1;
    for (const char *p = item; p < eq; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -1;
    *key_r = item;
    *keylen_r = (size_t)(eq - item);
    return 0;
}

static bool
text_printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* unix:/absolute/path or host:port */
static bool
server_valid(const char *s)
{
    const char *path = sl_strcase_prefix(s, "unix:");
    char *host;
    unsigned port;

    if (path != NULL)
        return path[0] == '/' && path[1] != '\0' && strlen(path) < 108;  /* sun_path */
    if (sl_hostport_parse(s, &host, &port) < 0)
        return false;
    free(host);
    return true;
}

/* Splits value into a list: on commas and blanks, or (KT_PATTERNS) on
 * newlines only, since a pattern may hold both. Checks each item. */
static int
list_set(struct loader *ld, const struct where *w, const char *key, const struct key_def *def,
         void *base, const char *value)
{
    char **v = NULL;
    size_t n = 0;
    const char *p = value;

    while (*p != '\0') {
        size_t len = 0;
        if (def->type == KT_PATTERNS) {
            while (*p == '\n')
                p++;
            if (*p == '\0')
                break;
            while (p[len] != '\0' && p[len] != '\n')
                len++;
        } else {
            while (is_sep(*p))
                p++;
            if (*p == '\0')
                break;
            while (p[len] != '\0' && !is_sep(p[len]))
                len++;
        }
        v = sl_realloc(v, (n + 1) * sizeof(*v));
        v[n++] = sl_strndup(p, len);
        p += len;
        const char *item = v[n - 1];
        const char *k;
        size_t kl;
        double lv;
        int bad = 0;
        switch (def->type) {
        case KT_SERVERS:
            if (!server_valid(item))
                bad = fail(ld, w, key, "\"%s\" is not a server (unix:/path or host:port)", item);
            break;
        case KT_LEVELMAP:
            if (sl_config_level_item(item, &k, &kl, &lv) < 0)
                bad = fail(ld, w, key,
                           "\"%s\" is not address=level, domain=level or .domain=level "
                           "(level a number, e.g. 6.31)",
                           item);
            break;
        case KT_PATTERNS: {
            int code;
            PCRE2_SIZE off;
            pcre2_code *re;
            if (!text_printable(item)) {
                bad = fail(ld, w, key, "control character in a pattern");
                break;
            }
            re = pcre2_compile((PCRE2_SPTR)item, PCRE2_ZERO_TERMINATED,
                               PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off,
                               NULL);
            if (re == NULL) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(code, msg, sizeof(msg));
                bad = fail(ld, w, key, "pattern \"%s\": %s at offset %zu", item, (char *)msg,
                           (size_t)off);
            }
            pcre2_code_free(re);
            break;
        }
        default:
            if (!text_printable(item))
                bad = fail(ld, w, key, "control character in \"%s\"", item);
            break;
        }
        if (bad < 0) {
            sl_strv_free(v, n);
            return -1;
        }
    }
    value_free(def, base);
    *(char ***)field(base, def->off) = v;
    *(size_t *)field(base, def->off2) = n;
    return 0;
}

/* Checks value against def and stores it in base, replacing what was
 * there. key is the full dotted name, for messages. */
static int
value_set(struct loader *ld, const struct where *w, const char *key, const struct key_def *def,
          void *base, const char *value)
{
    note_set(ld, w, key);
    if (is_list_type(def->type) && def->type != KT_ENDPOINTS)
        return list_set(ld, w, key, def, base, value);
    switch (def->type) {
    case KT_LEVEL: {
        double v;
        if (parse_level(value, &v) < 0)
            return fail(ld, w, key, "\"%s\" is not a level (a decimal number within +-%g)",
                        value, LEVEL_MAX);
        *(double *)field(base, def->off) = v;
        return 0;
    }
    case KT_BOOL: {
        bool v;
        if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
            strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
            v = true;
        else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
                 strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
            v = false;
        else
            return fail(ld, w, key, "\"%s\" is not yes or no", value);
        *(bool *)field(base, def->off) = v;
        return 0;
    }
    case KT_STRING:
        if (!text_printable(value) || strlen(value) > 1024)
            return fail(ld, w, key, "control character or more than 1024 bytes");
        break;
    case KT_Z85KEY:
        if (value[0] != '\0' && !z85_key_valid(value))
            return fail(ld, w, key,
                        "not a CURVE public key (40 Z85 characters, the contents of a "
                        "NAME.pub written by sluice keygen)");
        break;
    case KT_LIST:
    case KT_LEVELMAP:
    case KT_PATTERNS:
    case KT_SERVERS:
        SL_BUG_ON(true);    /* list_set() above */
        break;
    case KT_HOSTPORT: {
        char *host;
        unsigned port;
        if (sl_hostport_parse(value, &host, &port) < 0)
            return fail(ld, w, key,
                        "expected host:port (127.0.0.1:10024, [::1]:10024, name:10024; "
                        "port 1..65535), not \"%s\"",
                        value);
        free(host);
        break;
    }
    case KT_HOSTNAME:
        if (!hostname_valid(value))
            return fail(ld, w, key, "\"%s\" is not a valid host name", value);
        break;
    case KT_ENDPOINT:
        if (!endpoint_valid(value))
            return fail(ld, w, key,
                        "\"%s\" is not a ZeroMQ endpoint (tcp://host:port, ipc://path, "
                        "inproc://name)",
                        value);
        break;
    case KT_ENDPOINTS: {
        char **v = NULL;
        size_t n = 0;
        const char *p = value;
        while (*p != '\0') {
            size_t len = 0;
            while (is_sep(*p))
                p++;
            if (*p == '\0')
                break;
            while (p[len] != '\0' && !is_sep(p[len]))
                len++;
            v = sl_realloc(v, (n + 1) * sizeof(*v));
            v[n] = sl_strndup(p, len);
            if (!endpoint_valid(v[n])) {
                fail(ld, w, key,
                     "\"%s\" is not a ZeroMQ endpoint (tcp://host:port, ipc://path, "
                     "inproc://name)",
                     v[n]);
                sl_strv_free(v, n + 1);
                return -1;
            }
            n++;
            p += len;
        }
        if (n == 0)
            return fail(ld, w, key, "needs at least one endpoint");
        value_free(def, base);
        *(char ***)field(base, def->off) = v;
        *(size_t *)field(base, def->off2) = n;
        return 0;
    }
    case KT_CIDR: {
        struct sl_cidr_list list;
        char *error;
        if (sl_cidr_list_parse(value, &list, &error) < 0) {
            fail(ld, w, key, "%s", error);
            free(error);
            return -1;
        }
        value_free(def, base);
        *(struct sl_cidr_list *)field(base, def->off) = list;
        *(char **)field(base, def->off2) = sl_strdup(value);
        return 0;
    }
    case KT_SIZE:
    case KT_DURATION:
    case KT_UINT: {
        unsigned long long v;
        const char *why;
        if (parse_number(value, def->type, &v, &why) < 0)
            return fail(ld, w, key, "\"%s\" %s", value, why);
        if (strcmp(def->name, "job.timeout") == 0 && v > def->max)
            return fail(ld, w, key,
                        "%s (%llu s) must be less than %d s: Postfix's "
                        "lmtp_data_done_timeout (%d in the seed's master.cf) must outlast "
                        "the per-message deadline, or Postfix gives up, retries and the "
                        "message is delivered twice",
                        value, v, POSTFIX_DATA_DONE_TIMEOUT, POSTFIX_DATA_DONE_TIMEOUT);
        if (v < def->min || v > def->max)
            return fail(ld, w, key, "%s is out of range (%llu..%llu)", value, def->min, def->max);
        if (def->type == KT_SIZE)
            *(size_t *)field(base, def->off) = (size_t)v;
        else
            *(unsigned *)field(base, def->off) = (unsigned)v;
        return 0;
    }
    case KT_ENUM: {
        const char *canon;
        if (!enum_lookup(def->choices, value, &canon)) {
            char *list = enum_list(def->choices);
            fail(ld, w, key, "\"%s\" is not one of: %s", value, list);
            free(list);
            return -1;
        }
        value_free(def, base);
        *(char **)field(base, def->off) = sl_strdup(canon);
        return 0;
    }
    case KT_REDIS_URL:
        if (!redis_url_valid(value))
            return fail(ld, w, key,
                        "\"%s\" is not a Redis URL (redis://[:password@]host:port[/db], unix:/path, "
                        "or \"\" for none)",
                        value);
        break;
    case KT_REINJECT: {
        struct sl_origin_config *o = base;
        const char *port_text = sl_strcase_prefix(value, "client:");
        char *host = NULL;
        unsigned port = 0;
        bool to_client = port_text != NULL;
        if (to_client) {
            /* Reuse the host:port parser for the port rules. */
            char *tmp = sl_asprintf("client:%s", port_text);
            int r = sl_hostport_parse(tmp, &host, &port);
            free(tmp);
            sl_free_and_clear(&host);
            if (r < 0)
                port = 0;
        } else if (sl_hostport_parse(value, &host, &port) < 0) {
            port = 0;
        }
        if (port == 0)
            return fail(ld, w, key,
                        "expected client:PORT (the connecting Postfix's own address) or "
                        "host:port, not \"%s\"",
                        value);
        value_free(def, base);
        o->reinject = sl_strdup(value);
        o->reinject_to_client = to_client;
        o->reinject_host = host;
        o->reinject_port = port;
        return 0;
    }
    }
    /* The plain string types. */
    value_free(def, base);
    *(char **)field(base, def->off) = sl_strdup(value);
    return 0;
}

/* ---- origins ---------------------------------------------------------- */

static bool
origin_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > ORIGIN_NAME_MAX || !isalnum((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
            return false;
    return true;
}

static ssize_t
origin_find(const struct sl_config *config, const char *name)
{
    for (size_t i = 0; i < config->n_origins; i++)
        if (strcmp(config->origins[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

static void
origin_defaults(struct loader *ld, struct sl_origin_config *o)
{
    static const struct where w = {"(built-in default)", 0, NULL};
    for (size_t i = 0; i < SL_N_ELEMENTS(origin_keys); i++) {
        int r = value_set(ld, &w, origin_keys[i].name, &origin_keys[i], o, origin_keys[i].def);
        SL_BUG_ON(r < 0);
    }
}

/* Index of the origin called name, created with defaults if new; -1 on a
 * bad name. Pointers into config->origins go stale when this creates one. */
static ssize_t
origin_get(struct loader *ld, const struct where *w, const char *name)
{
    struct sl_config *c = ld->config;
    ssize_t i = origin_find(c, name);

    if (i >= 0)
        return i;
    if (!origin_name_valid(name)) {
        char *key = sl_asprintf("origins.%s", name);
        fail(ld, w, key,
             "origin names are 1..%d letters, digits, '-' and '_', starting with a letter "
             "or digit",
             ORIGIN_NAME_MAX);
        free(key);
        return -1;
    }
    c->origins = sl_realloc(c->origins, (c->n_origins + 1) * sizeof(*c->origins));
    ld->origin_where = sl_realloc(ld->origin_where, (c->n_origins + 1) * sizeof(char *));
    memset(&c->origins[c->n_origins], 0, sizeof(c->origins[0]));
    c->origins[c->n_origins].name = sl_strdup(name);
    ld->origin_where[c->n_origins] = where_str(w);
    origin_defaults(ld, &c->origins[c->n_origins]);
    return (ssize_t)c->n_origins++;
}

/* Sets origins.<name>.<leaf>; creates the origin. */
static int
origin_set(struct loader *ld, const struct where *w, const char *name, const char *leaf,
           const char *value)
{
    const struct key_def *def = find_key(origin_keys, SL_N_ELEMENTS(origin_keys), leaf);
    char *key = sl_asprintf("origins.%s.%s", name, leaf);
    ssize_t i;
    int ret = -1;

    if (def == NULL) {
        if (origin_name_valid(name))
            fail_unknown(ld, w, key, "key", name);
        else
            (void)origin_get(ld, w, name); /* reports the bad name */
        goto out;
    }
    if ((i = origin_get(ld, w, name)) < 0)
        goto out;
    if (value_set(ld, w, key, def, &ld->config->origins[i], value) < 0)
        goto out;
    if (strcmp(name, DEFAULT_ORIGIN) == 0 && ld->config->origins[i].match.n > 0) {
        fail(ld, w, key,
             "the default origin takes every client that no other origin matches: leave its "
             "match empty and give those clients a named origin");
        goto out;
    }
    ret = 0;
out:
    free(key);
    return ret;
}

/* ---- policy banks ----------------------------------------------------- */

static ssize_t
bank_find(const struct sl_config *config, const char *name)
{
    for (size_t i = 0; i < config->n_banks; i++)
        if (strcmp(config->banks[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

/* Index of the bank called name, created empty (nothing set) if new. */
static ssize_t
bank_get(struct loader *ld, const struct where *w, const char *name)
{
    struct sl_config *c = ld->config;
    ssize_t i = bank_find(c, name);

    if (i >= 0)
        return i;
    if (!origin_name_valid(name)) {
        char *key = sl_asprintf("policy_banks.%s", name);
        fail(ld, w, key,
             "bank names are 1..%d letters, digits, '-' and '_', starting with a letter or digit",
             ORIGIN_NAME_MAX);
        free(key);
        return -1;
    }
    c->banks = sl_realloc(c->banks, (c->n_banks + 1) * sizeof(*c->banks));
    memset(&c->banks[c->n_banks], 0, sizeof(c->banks[0]));
    c->banks[c->n_banks].name = sl_strdup(name);
    return (ssize_t)c->n_banks++;
}

/* Sets policy_banks.<name>.<leaf>; creates the bank. */
static int
bank_set(struct loader *ld, const struct where *w, const char *name, const char *leaf,
         const char *value)
{
    const struct key_def *def = find_key(bank_keys, SL_N_ELEMENTS(bank_keys), leaf);
    char *key = sl_asprintf("policy_banks.%s.%s", name, leaf);
    ssize_t i;
    int ret = -1;

    if (def == NULL) {
        const char *cands[SL_N_ELEMENTS(bank_keys)];
        for (size_t k = 0; k < SL_N_ELEMENTS(bank_keys); k++)
            cands[k] = bank_keys[k].name;
        const char *hint = suggest(leaf, cands, SL_N_ELEMENTS(bank_keys));
        if (hint != NULL)
            fail(ld, w, key, "unknown key (did you mean policy_banks.%s.%s?)", name, hint);
        else
            fail(ld, w, key, "unknown key (a bank takes the policy.* keys and match_*)");
        goto out;
    }
    if ((i = bank_get(ld, w, name)) < 0)
        goto out;
    if (value_set(ld, w, key, def, &ld->config->banks[i], value) < 0)
        goto out;
    ld->config->banks[i].set |= 1ULL << (unsigned)(def - bank_keys);
    ret = 0;
out:
    free(key);
    return ret;
}

const struct sl_policy_bank *
sl_config_bank(const struct sl_config *config, const char *name)
{
    ssize_t i = bank_find(config, name);
    return i < 0 ? NULL : &config->banks[i];
}

/* Shallow copy of one value (the types a policy key can have). */
static void
value_copy_shallow(const struct key_def *def, void *dst, const void *src)
{
    size_t size;

    switch (def->type) {
    case KT_LEVEL:
        size = sizeof(double);
        break;
    case KT_BOOL:
        size = sizeof(bool);
        break;
    case KT_SIZE:
        size = sizeof(size_t);
        break;
    case KT_UINT:
    case KT_DURATION:
        size = sizeof(unsigned);
        break;
    default:
        size = sizeof(char *);
        break;
    }
    memcpy(field(dst, def->off), cfield(src, def->off), size);
    if (is_list_type(def->type))
        memcpy(field(dst, def->off2), cfield(src, def->off2), sizeof(size_t));
}

void
sl_policy_apply_bank(struct sl_policy_config *dst, const struct sl_policy_bank *bank)
{
    /* bank_keys' offsets are from the bank; dst is a policy: shift it. */
    char *base = (char *)dst - B(p);

    for (size_t i = 0; i < BANK_N_POLICY_KEYS; i++)
        if (bank->set & (1ULL << i))
            value_copy_shallow(&bank_keys[i], base, bank);
}

/* ---- the YAML file ---------------------------------------------------- */

static bool
node_is_null(const yaml_node_t *n)
{
    const char *s;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    s = (const char *)n->data.scalar.value;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static const char *
node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a map"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a value";
}

/* The value of a leaf key as text; a sequence is joined with ", " (only
 * for list types). Returns malloc'ed text or NULL after an error. */
static char *
leaf_text(struct loader *ld, yaml_document_t *doc, const struct where *w, const char *key,
          const struct key_def *def, yaml_node_t *value)
{
    if (value->type == YAML_SCALAR_NODE)
        return sl_strdup(node_is_null(value) ? "" : (const char *)value->data.scalar.value);
    if (value->type == YAML_MAPPING_NODE || (def->type != KT_CIDR && !is_list_type(def->type))) {
        fail(ld, w, key, "expected a single value, not %s", node_kind(value));
        return NULL;
    }
    char *text = sl_strdup("");
    for (yaml_node_item_t *it = value->data.sequence.items.start;
         it < value->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        struct where iw = {w->file, item->start_mark.line + 1, NULL};
        const char *s;
        if (item->type != YAML_SCALAR_NODE) {
            fail(ld, &iw, key, "list items must be single values, not %s", node_kind(item));
            free(text);
            return NULL;
        }
        s = (const char *)item->data.scalar.value;
        /* Check each item on its own so that an error points at its line. */
        if (def->type == KT_CIDR) {
            struct sl_cidr_list list;
            char *error;
            if (sl_cidr_list_parse(s, &list, &error) < 0) {
                fail(ld, &iw, key, "%s", error);
                free(error);
                free(text);
                return NULL;
            }
            sl_cidr_list_free(&list);
        }
        if (def->type == KT_PATTERNS && *s == '\0')
            continue;   /* an empty pattern would match everything */
        char *t = sl_asprintf("%s%s%s", text, *text ? (def->type == KT_PATTERNS ? "\n" : ", ") : "",
                              s);
        free(text);
        text = t;
    }
    return text;
}

/* Walks one mapping. prefix: "" (top level), a section ("frontend"),
 * "origins", or "origins.<name>". */
static int
walk_map(struct loader *ld, yaml_document_t *doc, const char *file, yaml_node_t *map,
         const char *prefix)
{
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
        struct where w = {file, kn->start_mark.line + 1, NULL};
        const char *name;
        char *key;
        int ret = 0;

        if (kn->type != YAML_SCALAR_NODE)
            return fail(ld, &w, *prefix ? prefix : NULL, "keys must be plain names, not %s",
                        node_kind(kn));
        name = (const char *)kn->data.scalar.value;
        key = *prefix ? sl_asprintf("%s.%s", prefix, name) : sl_strdup(name);

        /* Duplicates: libyaml keeps both, a silent last-wins would hide a
         * mistake. */
        for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
            yaml_node_t *pk = yaml_document_get_node(doc, prev->key);
            if (pk->type == YAML_SCALAR_NODE &&
                strcmp((const char *)pk->data.scalar.value, name) == 0) {
                fail(ld, &w, key, "duplicate key (first at line %zu)",
                     (size_t)pk->start_mark.line + 1);
                free(key);
                return -1;
            }
        }

        bool want_map = false;
        const char *next_prefix = key;
        const struct key_def *def = NULL;
        const char *origin_name = NULL;
        const char *bank_name = NULL;

        if (*prefix == '\0') {
            if (!is_section(name)) {
                if (find_key(global_keys, SL_N_ELEMENTS(global_keys), name) != NULL)
                    ret = fail(ld, &w, key,
                               "write nested maps in the file (\"%.*s:\" then \"%s:\"); the "
                               "dotted form is for -o",
                               (int)(strchr(name, '.') - name), name, strchr(name, '.') + 1);
                else
                    ret = fail_unknown(ld, &w, key, "section", NULL);
                goto next;
            }
            want_map = true;
        } else if (strcmp(prefix, "policy_banks") == 0) {
            if (bank_get(ld, &w, name) < 0) {
                ret = -1;
                goto next;
            }
            want_map = true;
        } else if (strncmp(prefix, "policy_banks.", 13) == 0) {
            bank_name = prefix + 13;
            def = find_key(bank_keys, SL_N_ELEMENTS(bank_keys), name);
            if (def == NULL) {
                ret = bank_set(ld, &w, bank_name, name, ""); /* reports it */
                goto next;
            }
        } else if (strcmp(prefix, "origins") == 0) {
            ssize_t i = origin_get(ld, &w, name);
            if (i < 0) {
                ret = -1;
                goto next;
            }
            want_map = true;
        } else if (strncmp(prefix, "origins.", 8) == 0) {
            origin_name = prefix + 8;
            def = find_key(origin_keys, SL_N_ELEMENTS(origin_keys), name);
            if (def == NULL) {
                ret = fail_unknown(ld, &w, key, "key", origin_name);
                goto next;
            }
        } else {
            def = find_key(global_keys, SL_N_ELEMENTS(global_keys), key);
            if (def == NULL && is_subsection(key)) {
                want_map = true;  /* scanners.clamd: */
            } else if (def == NULL) {
                ret = fail_unknown(ld, &w, key, "key", NULL);
                goto next;
            }
        }

        if (want_map) {
            if (node_is_null(vn))
                goto next; /* "frontend:" with everything commented out */
            if (vn->type != YAML_MAPPING_NODE) {
                ret = fail(ld, &w, key, "expected a map of keys, not %s", node_kind(vn));
                goto next;
            }
            ret = walk_map(ld, doc, file, vn, next_prefix);
            goto next;
        }

        char *text = leaf_text(ld, doc, &w, key, def, vn);
        if (text == NULL) {
            ret = -1;
            goto next;
        }
        if (origin_name != NULL)
            ret = origin_set(ld, &w, origin_name, name, text);
        else if (bank_name != NULL)
            ret = bank_set(ld, &w, bank_name, name, text);
        else
            ret = value_set(ld, &w, key, def, ld->config, text);
        free(text);
    next:
        free(key);
        if (ret < 0)
            return -1;
    }
    return 0;
}

/* Line number of a byte offset, for reader errors (bad UTF-8), which
 * libyaml reports by offset only. */
static size_t
line_of_offset(FILE *fp, size_t offset)
{
    size_t line = 1;
    int c;

    rewind(fp);
    for (size_t i = 0; i < offset && (c = getc(fp)) != EOF; i++)
        if (c == '\n')
            line++;
    return line;
}

static int
fail_yaml(struct loader *ld, const char *file, FILE *fp, const yaml_parser_t *parser)
{
    char *wstr;
    int ret;

    if (parser->error == YAML_READER_ERROR) {
        wstr = sl_asprintf("%s:%zu", file, line_of_offset(fp, parser->problem_offset));
        ret = fail_at(ld, wstr, NULL, "cannot read the file: %s (byte %zu)",
                      parser->problem ? parser->problem : "unknown error", parser->problem_offset);
    } else if (parser->error == YAML_MEMORY_ERROR) {
        sl_bug(__FILE__, __LINE__, "libyaml: out of memory");
    } else {
        wstr = sl_asprintf("%s:%zu:%zu", file, (size_t)parser->problem_mark.line + 1,
                           (size_t)parser->problem_mark.column + 1);
        if (parser->context != NULL)
            ret = fail_at(ld, wstr, NULL, "YAML syntax error: %s (%s at line %zu)",
                          parser->problem ? parser->problem : "unknown error", parser->context,
                          (size_t)parser->context_mark.line + 1);
        else
            ret = fail_at(ld, wstr, NULL, "YAML syntax error: %s",
                          parser->problem ? parser->problem : "unknown error");
    }
    free(wstr);
    return ret;
}

/* Parses the YAML in fp (named file in messages) into ld. */
static int
load_stream(struct loader *ld, const char *file, FILE *fp)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int ret = -1;

    ld->config->path = sl_strdup(file);

    if (!yaml_parser_initialize(&parser))
        sl_bug(__FILE__, __LINE__, "yaml_parser_initialize");
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        fail_yaml(ld, file, fp, &parser);
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL && !node_is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            struct where w = {file, root->start_mark.line + 1, NULL};
            fail(ld, &w, NULL, "expected a map of sections (frontend:, origins:, ...), not %s",
                 node_kind(root));
        } else {
            (void)walk_map(ld, &doc, file, root, "");
        }
    }
    yaml_document_delete(&doc);
    if (ld->error != NULL)
        goto out;
    if (root != NULL) {
        /* A second document would be ignored silently: refuse it. */
        if (!yaml_parser_load(&parser, &doc)) {
            fail_yaml(ld, file, fp, &parser);
            goto out;
        }
        root = yaml_document_get_root_node(&doc);
        if (root != NULL) {
            struct where w = {file, doc.start_mark.line + 1, NULL};
            fail(ld, &w, NULL, "only one YAML document is allowed");
        }
        yaml_document_delete(&doc);
        if (ld->error != NULL)
            goto out;
    }
    ret = 0;
out:
    yaml_parser_delete(&parser);
    return ret;
}

static int
load_file(struct loader *ld, const char *file, bool optional)
{
    struct stat st;
    FILE *fp;
    int ret;

    fp = fopen(file, "r");
    if (fp == NULL) {
        if (optional && errno == ENOENT)
            return 0;
        int e = errno;
        ld->error = sl_asprintf("%s: cannot open: %s", file, strerror(e));
        return -1;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        ld->error = sl_asprintf("%s: cannot open: %s", file, strerror(EISDIR));
        fclose(fp);
        return -1;
    }
    ret = load_stream(ld, file, fp);
    fclose(fp);
    return ret;
}

/* ---- overrides -------------------------------------------------------- */

static int
apply_override(struct loader *ld, const char *ov)
{
    struct where w = {NULL, 0, ov};
    const char *eq = strchr(ov, '=');
    char *key, *dot1, *dot2;
    int ret;

    if (eq == NULL || eq == ov)
        return fail(ld, &w, NULL, "expected key=value, e.g. frontend.listen=127.0.0.1:10024");
    /* the file is UTF-8 (libyaml checks it); an override must be too, or
     * `sluice config` would print a file that does not load */
    if (!sl_utf8_valid(ov))
        return fail(ld, &w, NULL, "not valid UTF-8");
    key = sl_strndup(ov, (size_t)(eq - ov));
    const char *value = eq + 1;
    const struct key_def *def = find_key(global_keys, SL_N_ELEMENTS(global_keys), key);

    if (def != NULL) {
        ret = value_set(ld, &w, key, def, ld->config, value);
        goto out;
    }
    dot1 = strchr(key, '.');
    if (strncmp(key, "origins.", 8) == 0 && (dot2 = strchr(key + 8, '.')) != NULL &&
        strchr(dot2 + 1, '.') == NULL) {
        char *name = sl_strndup(key + 8, (size_t)(dot2 - (key + 8)));
        ret = origin_set(ld, &w, name, dot2 + 1, value);
        free(name);
        goto out;
    }
    if (strncmp(key, "policy_banks.", 13) == 0 && (dot2 = strchr(key + 13, '.')) != NULL &&
        strchr(dot2 + 1, '.') == NULL) {
        char *name = sl_strndup(key + 13, (size_t)(dot2 - (key + 13)));
        ret = bank_set(ld, &w, name, dot2 + 1, value);
        free(name);
        goto out;
    }
    if (is_section(key) || is_subsection(key) ||
        (strncmp(key, "origins.", 8) == 0 && dot1 != NULL && strchr(dot1 + 1, '.') == NULL) ||
        (strncmp(key, "policy_banks.", 13) == 0 && dot1 != NULL && strchr(dot1 + 1, '.') == NULL)) {
        ret = fail(ld, &w, key, "is a section; -o sets one key, e.g. frontend.listen=...");
        goto out;
    }
    ret = fail_unknown(ld, &w, key, "key", NULL);
out:
    free(key);
    return ret;
}

/* ---- load, destroy ---------------------------------------------------- */

static void
config_defaults(struct loader *ld)
{
    static const struct where w = {"(built-in default)", 0, NULL};

    for (size_t i = 0; i < SL_N_ELEMENTS(global_keys); i++) {
        int r =
            value_set(ld, &w, global_keys[i].name, &global_keys[i], ld->config, global_keys[i].def);
        SL_BUG_ON(r < 0);
    }
    SL_BUG_ON(origin_get(ld, &w, DEFAULT_ORIGIN) != 0);
}

/* Checks that involve more than one key, after everything is read. */
static int
config_check(struct loader *ld)
{
    const struct sl_config *c = ld->config;

    if (strcmp(c->dedup.enabled, "yes") == 0 && c->redis.url[0] == '\0') {
        fail_at(ld, set_where(ld, "dedup.enabled"), "dedup.enabled",
                "yes needs redis.url: the ledger lives in Redis");
        return -1;
    }
    if (c->redis.n_sentinels > 0 && c->redis.master_name[0] == '\0') {
        fail_at(ld, set_where(ld, "redis.sentinels"), "redis.master_name",
                "required with redis.sentinels: the name Sentinel knows the master by");
        return -1;
    }
    if (c->redis.n_sentinels > 0 && c->redis.url[0] == '\0') {
        fail_at(ld, set_where(ld, "redis.sentinels"), "redis.sentinels",
                "needs redis.url too (redis://[user:password@]any/db: the host is "
                "replaced by the master Sentinel names)");
        return -1;
    }

    for (size_t i = 0; i < c->n_origins; i++) {
        const struct sl_origin_config *o = &c->origins[i];
        if (strcmp(o->name, DEFAULT_ORIGIN) != 0 && o->match.n == 0) {
            char *key = sl_asprintf("origins.%s.match", o->name);
            fail_at(ld, ld->origin_where[i], key,
                    "required: an origin other than default needs the client addresses of "
                    "its Postfix (e.g. 127.0.0.2)");
            free(key);
            return -1;
        }
    }
    static const char *const header_tests[] = {"mime",   "8bit",    "control",  "long",
                                               "syntax", "missing", "multiple", NULL};
    const char *canon;
    for (size_t i = 0; i <= c->n_banks; i++) {
        const struct sl_policy_config *p = i < c->n_banks ? &c->banks[i].p : &c->policy;
        for (size_t k = 0; k < p->n_bad_header_tests; k++) {
            if (enum_lookup(header_tests, p->bad_header_tests[k], &canon))
                continue;
            char *key = i < c->n_banks ? sl_asprintf("policy_banks.%s.bad_header_tests",
                                                     c->banks[i].name)
                                       : sl_strdup("policy.bad_header_tests");
            char *list = enum_list(header_tests);
            fail_at(ld, set_where(ld, key), key, "\"%s\" is not one of: %s",
                    p->bad_header_tests[k], list);
            free(list);
            free(key);
            return -1;
        }
    }
    for (size_t i = 0; i < c->n_banks; i++) {
        const struct sl_policy_bank *b = &c->banks[i];
        for (size_t k = 0; k < b->n_match_listener; k++) {
            char *end;
            unsigned long port = strtoul(b->match_listener[k], &end, 10);
            if (!isdigit((unsigned char)b->match_listener[k][0]) || *end != '\0' || port < 1 ||
                port > 65535) {
                char *key = sl_asprintf("policy_banks.%s.match_listener", b->name);
                fail_at(ld, set_where(ld, key), key, "\"%s\" is not a port number (1..65535)",
                        b->match_listener[k]);
                free(key);
                return -1;
            }
        }
        for (size_t k = 0; k < b->n_match_origin; k++) {
            if (origin_find(c, b->match_origin[k]) < 0) {
                char *key = sl_asprintf("policy_banks.%s.match_origin", b->name);
                fail_at(ld, set_where(ld, key), key, "no origin called \"%s\" (origins.%s)",
                        b->match_origin[k], b->match_origin[k]);
                free(key);
                return -1;
            }
        }
    }
    return 0;
}

static void
loader_done(struct loader *ld)
{
    if (ld->origin_where != NULL) {
        for (size_t i = 0; i < ld->config->n_origins; i++)
            free(ld->origin_where[i]);
        free(ld->origin_where);
    }
    ld->origin_where = NULL;
    for (size_t i = 0; i < ld->n_set; i++) {
        free(ld->set_key[i]);
        free(ld->set_where[i]);
    }
    free(ld->set_key);
    free(ld->set_where);
    ld->set_key = ld->set_where = NULL;
    ld->n_set = 0;
}

/* Everything after the file: overrides, cross-key checks; frees ld's
 * state and returns the config, or NULL with *error_r. */
static struct sl_config *
load_finish(struct loader *ld, int ret, char *const *overrides, size_t n_overrides,
            char **error_r)
{
    if (ret < 0)
        goto fail;
    for (size_t i = 0; i < n_overrides; i++)
        if (apply_override(ld, overrides[i]) < 0)
            goto fail;
    if (config_check(ld) < 0)
        goto fail;
    loader_done(ld);
    return ld->config;

fail:
    SL_BUG_ON(ld->error == NULL);
    *error_r = ld->error;
    loader_done(ld);
    sl_config_destroy(&ld->config);
    return NULL;
}

struct sl_config *
sl_config_load(const char *path, char *const *overrides, size_t n_overrides, char **error_r)
{
    struct loader ld = {0};
    const char *env = getenv("SLUICE_CONFIG");
    bool optional = false;

    *error_r = NULL;
    ld.config = sl_calloc(1, sizeof(*ld.config));
    config_defaults(&ld);
    if (path == NULL && env != NULL && *env != '\0')
        path = env;
    if (path == NULL) {
        path = SL_CONFIG_DEFAULT_PATH;
        optional = true;
    }
    return load_finish(&ld, load_file(&ld, path, optional), overrides, n_overrides, error_r);
}

struct sl_config *
sl_config_load_buffer(const char *name, const void *data, size_t len, char *const *overrides,
                      size_t n_overrides, char **error_r)
{
    struct loader ld = {0};
    FILE *fp;
    int ret;

    *error_r = NULL;
    ld.config = sl_calloc(1, sizeof(*ld.config));
    config_defaults(&ld);
    /* glibc's fmemopen reads the buffer as binary (NULs included, len 0
     * is an empty file), so the bytes take exactly the path a file's do. */
    fp = fmemopen((void *)(data != NULL ? data : ""), len, "r");
    if (fp == NULL)
        sl_bug(__FILE__, __LINE__, "fmemopen: out of memory");
    ret = load_stream(&ld, name, fp);
    fclose(fp);
    return load_finish(&ld, ret, overrides, n_overrides, error_r);
}

void
sl_config_destroy(struct sl_config **configp)
{
    struct sl_config *c = *configp;

    if (c == NULL)
        return;
    for (size_t i = 0; i < SL_N_ELEMENTS(global_keys); i++)
        value_free(&global_keys[i], c);
    for (size_t i = 0; i < c->n_origins; i++) {
        for (size_t k = 0; k < SL_N_ELEMENTS(origin_keys); k++)
            value_free(&origin_keys[k], &c->origins[i]);
        free(c->origins[i].name);
    }
    free(c->origins);
    for (size_t i = 0; i < c->n_banks; i++) {
        for (size_t k = 0; k < SL_N_ELEMENTS(bank_keys); k++)
            value_free(&bank_keys[k], &c->banks[i]);
        free(c->banks[i].name);
    }
    free(c->banks);
    explicit_bzero(c->security.secret_key, sizeof(c->security.secret_key));
    free(c->path);
    free(c);
    *configp = NULL;
}

/* ---- printing --------------------------------------------------------- */

/* A YAML double-quoted scalar that reads back as s. Escaped: what YAML
 * does not allow raw in a file (its reader refuses C0 and C1 controls,
 * U+FFFE, U+FFFF) and what it reads as a line break to fold (NEL U+0085,
 * LS U+2028, PS U+2029); a value may hold them from an escape in the file
 * or from -o (found by fuzz_config). */
static void
print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned cp = 0;
        size_t len = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 1;
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
            continue;
        }
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
            continue;
        }
        if (*p < 0x80 || strnlen((const char *)p, len) < len) {
            fputc(*p, out); /* ASCII, or not UTF-8 (the loaders refuse it) */
            continue;
        }
        cp = *p & (0x7fu >> len);
        for (size_t i = 1; i < len; i++)
            cp = cp << 6 | (p[i] & 0x3fu);
        if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfffe ||
            cp == 0xffff)
            fprintf(out, "\\u%04x", cp);
        else
            fwrite(p, 1, len, out);
        p += len - 1;
    }
    fputc('"', out);
}

static bool
value_equal(const struct key_def *def, const void *a, const void *b)
{
    if (is_list_type(def->type)) {
        char *const *va = *(char *const *const *)cfield(a, def->off);
        char *const *vb = *(char *const *const *)cfield(b, def->off);
        size_t na = *(const size_t *)cfield(a, def->off2);
        if (na != *(const size_t *)cfield(b, def->off2))
            return false;
        for (size_t i = 0; i < na; i++)
            if (strcmp(va[i], vb[i]) != 0)
                return false;
        return true;
    }
    switch (def->type) {
    case KT_LEVEL:
        return *(const double *)cfield(a, def->off) == *(const double *)cfield(b, def->off);
    case KT_BOOL:
        return *(const bool *)cfield(a, def->off) == *(const bool *)cfield(b, def->off);
    case KT_CIDR: {
        const struct sl_cidr_list *la = cfield(a, def->off), *lb = cfield(b, def->off);
        if (la->n != lb->n)
            return false;
        for (size_t i = 0; i < la->n; i++)
            if (la->items[i].family != lb->items[i].family ||
                la->items[i].prefix != lb->items[i].prefix ||
                memcmp(la->items[i].addr, lb->items[i].addr, 16) != 0)
                return false;
        return true;
    }
    case KT_ENDPOINTS: {
        char *const *va = *(char *const *const *)cfield(a, def->off);
        char *const *vb = *(char *const *const *)cfield(b, def->off);
        size_t na = *(const size_t *)cfield(a, def->off2);
        if (na != *(const size_t *)cfield(b, def->off2))
            return false;
        for (size_t i = 0; i < na; i++)
            if (strcmp(va[i], vb[i]) != 0)
                return false;
        return true;
    }
    case KT_REINJECT: {
        const struct sl_origin_config *oa = a, *ob = b;
        return oa->reinject_to_client == ob->reinject_to_client &&
               oa->reinject_port == ob->reinject_port &&
               (oa->reinject_to_client || strcmp(oa->reinject_host, ob->reinject_host) == 0);
    }
    case KT_SIZE:
        return *(const size_t *)cfield(a, def->off) == *(const size_t *)cfield(b, def->off);
    case KT_DURATION:
    case KT_UINT:
        return *(const unsigned *)cfield(a, def->off) == *(const unsigned *)cfield(b, def->off);
    default:
        return strcmp(*(char *const *)cfield(a, def->off), *(char *const *)cfield(b, def->off)) ==
               0;
    }
}

/* The shortest decimal that reads back as the same double. */
static void
print_level(FILE *out, double v)
{
    char buf[64];

    for (int prec = 0; prec <= 20; prec++) {   /* no exponent: parse_level refuses it */
        snprintf(buf, sizeof(buf), "%.*f", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

static void
value_print(FILE *out, const struct key_def *def, const void *base)
{
    if (is_list_type(def->type)) {
        char *const *v = *(char *const *const *)cfield(base, def->off);
        size_t n = *(const size_t *)cfield(base, def->off2);
        fputc('[', out);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                fputs(", ", out);
            print_quoted(out, v[i]);
        }
        fputc(']', out);
        return;
    }
    switch (def->type) {
    case KT_LEVEL:
        print_level(out, *(const double *)cfield(base, def->off));
        return;
    case KT_BOOL:
        fputs(*(const bool *)cfield(base, def->off) ? "yes" : "no", out);
        return;
    case KT_CIDR:
        print_quoted(out, *(char *const *)cfield(base, def->off2));
        break;
    case KT_ENDPOINTS: {
        char *const *v = *(char *const *const *)cfield(base, def->off);
        size_t n = *(const size_t *)cfield(base, def->off2);
        fputc('[', out);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                fputs(", ", out);
            print_quoted(out, v[i]);
        }
        fputc(']', out);
        break;
    }
    case KT_SIZE:
        fprintf(out, "%zu", *(const size_t *)cfield(base, def->off));
        break;
    case KT_DURATION:
    case KT_UINT:
        fprintf(out, "%u", *(const unsigned *)cfield(base, def->off));
        break;
    case KT_REDIS_URL: {
        char *masked = sl_config_redis_url_masked(*(char *const *)cfield(base, def->off));
        print_quoted(out, masked);
        free(masked);
        break;
    }
    default:
        print_quoted(out, *(char *const *)cfield(base, def->off));
        break;
    }
}

char *
sl_config_redis_url_masked(const char *url)
{
    const char *rest = sl_strcase_prefix(url, "redis://");
    const char *at, *colon;

    if (rest == NULL || (at = strrchr(rest, '@')) == NULL)
        return sl_strdup(url);
    colon = memchr(rest, ':', (size_t)(at - rest));
    if (colon == NULL)
        return sl_strdup(url);
    return sl_asprintf("%.*s:***%s", (int)(colon - url), url, at);
}

bool
sl_config_dedup_on(const struct sl_config *config)
{
    if (config->redis.url == NULL || config->redis.url[0] == '\0')
        return false;
    return strcmp(config->dedup.enabled, "no") != 0;
}

void
sl_config_print(const struct sl_config *config, FILE *out, bool only_changed)
{
    struct loader ld = {0};
    const struct sl_origin_config *def_origin;

    ld.config = sl_calloc(1, sizeof(*ld.config));
    config_defaults(&ld);
    loader_done(&ld);
    def_origin = &ld.config->origins[0];

    fprintf(out, "# sluice configuration%s%s",
            only_changed ? " (values that differ from the defaults)" : "",
            config->path ? ", read from " : " (no file read)");
    /* A newline in the path must not end the comment. */
    for (const char *p = config->path ? config->path : ""; *p != '\0'; p++)
        fputc(iscntrl((unsigned char)*p) ? '?' : *p, out);
    fputc('\n', out);
    for (size_t i = 0; i < SL_N_ELEMENTS(global_keys);) {
        const char *dot = strchr(global_keys[i].name, '.');
        size_t slen = (size_t)(dot - global_keys[i].name);
        size_t end = i;
        bool any = false;

        while (end < SL_N_ELEMENTS(global_keys) &&
               strncmp(global_keys[end].name, global_keys[i].name, slen + 1) == 0) {
            if (!only_changed || !value_equal(&global_keys[end], config, ld.config))
                any = true;
            end++;
        }
        if (any) {
            const char *sub = NULL;     /* the sub-section printed last: "clamd." */
            size_t sublen = 0;
            fprintf(out, "%.*s:\n", (int)slen, global_keys[i].name);
            for (size_t k = i; k < end; k++) {
                if (only_changed && value_equal(&global_keys[k], config, ld.config))
                    continue;
                const char *leaf = global_keys[k].name + slen + 1;
                const char *dot2 = strchr(leaf, '.');
                if (dot2 != NULL) {     /* scanners.clamd.servers: nested once more */
                    size_t len = (size_t)(dot2 - leaf) + 1;
                    if (sub == NULL || len != sublen || strncmp(sub, leaf, len) != 0)
                        fprintf(out, "  %.*s:\n", (int)len - 1, leaf);
                    sub = leaf;
                    sublen = len;
                    fprintf(out, "    %s: ", dot2 + 1);
                } else {
                    sub = NULL;
                    fprintf(out, "  %s: ", leaf);
                }
                value_print(out, &global_keys[k], config);
                fputc('\n', out);
            }
        }
        i = end;
    }

    bool header = false;
    for (size_t i = 0; i < config->n_origins; i++) {
        const struct sl_origin_config *o = &config->origins[i];
        bool is_default = strcmp(o->name, DEFAULT_ORIGIN) == 0;
        bool any = !only_changed || !is_default;
        for (size_t k = 0; !any && k < SL_N_ELEMENTS(origin_keys); k++)
            any = !value_equal(&origin_keys[k], o, def_origin);
        if (!any)
            continue;
        if (!header)
            fputs("origins:\n", out);
        header = true;
        fprintf(out, "  %s:\n", o->name);
        for (size_t k = 0; k < SL_N_ELEMENTS(origin_keys); k++) {
            const struct key_def *def = &origin_keys[k];
            /* A named origin always shows its match: it cannot load without. */
            bool show = !only_changed || (!is_default && def->type == KT_CIDR) ||
                        !value_equal(def, o, def_origin);
            if (!show)
                continue;
            fprintf(out, "    %s: ", def->name);
            if (def->type == KT_REINJECT)
                print_quoted(out, o->reinject);
            else
                value_print(out, def, o);
            fputc('\n', out);
        }
    }

    /* Banks: only what each sets (an unset key follows policy.*). */
    for (size_t i = 0; i < config->n_banks; i++) {
        const struct sl_policy_bank *b = &config->banks[i];
        if (i == 0)
            fputs("policy_banks:\n", out);
        fprintf(out, "  %s:%s\n", b->name, b->set == 0 ? " {}" : "");
        for (size_t k = 0; k < SL_N_ELEMENTS(bank_keys); k++) {
            if (!(b->set & (1ULL << k)))
                continue;
            fprintf(out, "    %s: ", bank_keys[k].name);
            value_print(out, &bank_keys[k], b);
            fputc('\n', out);
        }
    }
    sl_config_destroy(&ld.config);
}

const struct sl_origin_config *
sl_config_origin_for(const struct sl_config *config, const char *ip)
{
    const struct sl_origin_config *fallback = NULL;

    for (size_t i = 0; i < config->n_origins; i++) {
        const struct sl_origin_config *o = &config->origins[i];
        if (strcmp(o->name, DEFAULT_ORIGIN) == 0) {
            fallback = o;
            continue;
        }
        if (ip != NULL && sl_cidr_list_match_text(&o->match, ip))
            return o;
    }
    SL_BUG_ON(fallback == NULL);
    return fallback;
}
