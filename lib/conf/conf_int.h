/* conf_int.h - what the files of lib/conf share; nothing outside lib/conf
 * includes it (the public API is sl_config.h).
 *
 * Where to look, for any key:
 *   conf_schema.c  defined: every key's dotted name, type, default, field,
 *                  range and choices; the sections
 *   conf_types.c   set, freed, compared, printed, copied: one row of
 *                  callbacks per value type (conf_types[])
 *   conf_parse.c   the syntax of one value (numbers, host:port, endpoints,
 *                  levels, PCRE2 patterns ...), no loader state
 *   conf_yaml.c    read from the file: libyaml's document walked into
 *                  dotted keys
 *   conf_load.c    sl_config_load(), the defaults, -o overrides, the named
 *                  sections (origins.<name>, policy_banks.<name>), destroy
 *   conf_check.c   checked against other keys, after everything is read
 *                  (quarantine.* in conf_quarantine.c)
 *   conf_error.c   the messages: "file:line: key: ..." or "-o key=value:
 *                  key: ...", and "did you mean"
 *   conf_print.c   printed: sl_config_print(), YAML quoting
 *   conf_reload.c  compared with the running configuration at a reload;
 *                  what needs a restart is listed in conf_schema.c
 *
 * Everything goes through one loader (struct conf_loader) that keeps the
 * first error only: the operator fixes it and runs again, as with
 * postfix check. */
#ifndef SL_CONF_INT_H
#define SL_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include "conf/sl_config.h"
#include "util/sl_util.h"

/* Postfix's lmtp_data_done_timeout as the standard amavisd-new setup
 * gives the amavisfeed transport in master.cf: job.timeout stays below. */
#define CONF_POSTFIX_DATA_DONE_TIMEOUT 1200
#define CONF_NAME_MAX 64            /* origin and bank names */

/* ---- conf_schema.c: the keys ------------------------------------------ */

enum conf_type {
    KT_HOSTPORT,  /* "host:port", "[v6]:port"; also "" (off) when the default is "" */
    KT_HOSTNAME,  /* "" or a DNS name */
    KT_ENDPOINT,  /* a ZeroMQ endpoint */
    KT_ENDPOINTS, /* a list of ZeroMQ endpoints, at least one */
    KT_CIDR,      /* a list of networks */
    KT_SIZE,      /* bytes, k/M/G suffixes */
    KT_DURATION,  /* seconds, s/m/h/d suffixes */
    KT_UINT,      /* plain number */
    KT_ENUM,      /* one of choices */
    KT_REDIS_URL, /* "" or redis://... or unix:... */
    KT_REINJECT,  /* "client:PORT" or "host:port" (origin keys only) */
    KT_LEVEL,     /* a spam level: decimal number, may be negative (double) */
    KT_BOOL,      /* yes/no, true/false, on/off, 1/0 */
    KT_STRING,    /* any text without control characters */
    KT_LIST,      /* words separated by commas or blanks, or a YAML list */
    KT_LEVELMAP,  /* list of key=level (address, domain or .domain) */
    KT_PATTERNS,  /* PCRE2 patterns: a YAML list, or one pattern */
    KT_SERVERS,   /* list of unix:/path or host:port, may be empty */
    KT_Z85KEY,    /* "" or a CURVE public key, 40 Z85 characters */
    KT_IDENT,     /* a program name for log lines: 1..32 of [A-Za-z0-9._/-] */
    KT_COUNT
};

/* One key. Its value lives at off in the struct the table is for
 * (struct sl_config, sl_origin_config or sl_policy_bank). List types
 * (conf_types[type].list) keep a char ** at off and its count (size_t) at
 * off2; KT_CIDR keeps the list at off and the text as written at off2. */
struct conf_key {
    const char *name;            /* dotted, or the leaf for origin and bank keys */
    enum conf_type type;
    const char *def;             /* default, as it would be written */
    size_t off;
    size_t off2;
    unsigned long long min, max; /* numbers */
    const char *const *choices;  /* KT_ENUM, NULL-terminated */
};

/* In the order sl_config_print() writes them. */
extern const struct conf_key conf_global_keys[];
extern const size_t conf_n_global_keys;
/* Under origins.<name>. */
extern const struct conf_key conf_origin_keys[];
extern const size_t conf_n_origin_keys;
/* Under policy_banks.<name>: first the policy keys (bit i of a bank's set
 * is conf_bank_keys[i]), then match_listener and match_origin. */
extern const struct conf_key conf_bank_keys[];
extern const size_t conf_n_bank_keys;
/* The top-level names. */
extern const char *const conf_sections[];
extern const size_t conf_n_sections;

const struct conf_key *conf_key_find(const struct conf_key *table, size_t n, const char *name);
bool conf_is_section(const char *name);
/* A dotted prefix of some key below the top level: "scanners.clamd". */
bool conf_is_subsection(const char *name);

/* ---- conf_error.c: where a value came from, the first error ----------- */

/* A file line, or one -o argument. */
struct conf_where {
    const char *file;
    size_t line;          /* 1-based; 0 for a built-in default */
    const char *override; /* non-NULL for -o */
};

struct conf_loader {
    struct sl_config *config;
    char **origin_where; /* parallel to config->origins: where each was created */
    char **set_key;      /* every key set by the file or -o ... */
    char **set_where;    /* ... and where it was set last: for conf_check's errors */
    size_t n_set;
    char *error;         /* the first error, malloc'ed */
};

/* "file:line" or "-o key=value", malloc'ed. */
char *conf_where_str(const struct conf_where *w);
/* Remembers where key got its value, so that a check across keys after
 * loading can name the line to fix; conf_set_where() answers. */
void conf_note_set(struct conf_loader *ld, const struct conf_where *w, const char *key);
const char *conf_set_where(const struct conf_loader *ld, const char *key);
/* Each keeps the first error only, "WHERE: KEY: message" (no key: "WHERE:
 * message"), and returns -1. */
int conf_fail(struct conf_loader *ld, const struct conf_where *w, const char *key,
              const char *fmt, ...) SL_PRINTF(4, 5);
int conf_fail_at(struct conf_loader *ld, const char *where, const char *key, const char *fmt,
                 ...) SL_PRINTF(4, 5);
/* "unknown WHAT", with "(did you mean X?)" when a section or key (or a key
 * of origins.<origin_name>, when not NULL) is close. */
int conf_fail_unknown(struct conf_loader *ld, const struct conf_where *w, const char *key,
                      const char *what, const char *origin_name);
/* policy_banks.<name>.<leaf> is not a bank key: the hint is among the
 * bank's own keys. */
int conf_fail_unknown_bank_key(struct conf_loader *ld, const struct conf_where *w,
                               const char *key, const char *name, const char *leaf);

/* ---- conf_types.c: the value types ------------------------------------ */

/* A value as text -> base's fields, replacing what was there; key is the
 * dotted name, for messages. 0, or -1 after conf_fail(). */
typedef int conf_set_fn(struct conf_loader *ld, const struct conf_where *w, const char *key,
                        const struct conf_key *def, void *base, const char *value);

struct conf_type_ops {
    conf_set_fn *set;
    /* Frees what def's fields in base hold and clears them. */
    void (*free)(const struct conf_key *def, void *base);
    bool (*equal)(const struct conf_key *def, const void *a, const void *b);
    /* As YAML that the loader reads back (redis.url with its password masked). */
    void (*print)(FILE *out, const struct conf_key *def, const void *base);
    /* Shallow: dst then points into src's strings and lists. */
    void (*copy)(const struct conf_key *def, void *dst, const void *src);
    /* Deep: dst's old value is freed, dst gets copies of src's (a reload
     * keeping a running value, conf_reload.c). */
    void (*dup)(const struct conf_key *def, void *dst, const void *src);
    bool list;      /* char ** at off, count at off2; a YAML list is accepted */
};

extern const struct conf_type_ops conf_types[KT_COUNT];

static inline const struct conf_type_ops *
conf_type(const struct conf_key *def)
{
    return &conf_types[def->type];
}

/* sl_cidr_list_parse() with its error as the key's: 0 and *list_r (the
 * caller frees it), or -1. */
int conf_cidr_parse(struct conf_loader *ld, const struct conf_where *w, const char *key,
                    const char *text, struct sl_cidr_list *list_r);
/* Records where key was set (conf_note_set), then sets it. */
int conf_value_set(struct conf_loader *ld, const struct conf_where *w, const char *key,
                   const struct conf_key *def, void *base, const char *value);

/* ---- conf_parse.c: the syntax of one value ---------------------------- */

#define CONF_LEVEL_MAX 1000000.0

/* Digits, then for KT_SIZE and KT_DURATION an optional one-letter unit.
 * 0, or -1 with *why_r naming the expected form. */
int conf_parse_number(const char *s, enum conf_type type, unsigned long long *v_r,
                      const char **why_r);
/* A decimal number within +-CONF_LEVEL_MAX: 0, or -1. */
int conf_parse_level(const char *s, double *v_r);
/* "yes", "no" and their synonyms: 0, or -1. */
int conf_parse_bool(const char *s, bool *v_r);
bool conf_hostname_valid(const char *s);
bool conf_endpoint_valid(const char *s);
bool conf_redis_url_valid(const char *s);
bool conf_server_valid(const char *s);
bool conf_z85_key_valid(const char *s);
bool conf_ident_valid(const char *s);
/* "env:NAME" or "file:/path" (sl_config_secret): true, with the syntax
 * checked in *ok_r. */
bool conf_secret_ref(const char *s, bool *ok_r);
/* No control characters but tab. */
bool conf_text_printable(const char *s);
/* PCRE2 compiles re with the options the worker uses (check_banned.c): 0,
 * or -1 with PCRE2's message in why and the offset in *offset_r. */
int conf_pattern_check(const char *re, char *why, size_t why_len, size_t *offset_r);
/* Case-insensitive; *canon_r is the choice as listed. */
bool conf_enum_lookup(const char *const *choices, const char *s, const char **canon_r);
/* "a, b, c", malloc'ed. */
char *conf_enum_list(const char *const *choices);

/* ---- conf_load.c: the named sections, the defaults -------------------- */

/* Index of the origin called name, created with defaults if new; -1 on a
 * bad name. Pointers into config->origins go stale when this creates one. */
ssize_t conf_origin_get(struct conf_loader *ld, const struct conf_where *w, const char *name);
ssize_t conf_origin_find(const struct sl_config *config, const char *name);
/* Sets origins.<name>.<leaf>; creates the origin. */
int conf_origin_set(struct conf_loader *ld, const struct conf_where *w, const char *name,
                    const char *leaf, const char *value);
ssize_t conf_bank_find(const struct sl_config *config, const char *name);
/* Index of the bank called name, created empty (nothing set) if new; -1
 * on a bad name. */
ssize_t conf_bank_get(struct conf_loader *ld, const struct conf_where *w, const char *name);
/* Sets policy_banks.<name>.<leaf>; creates the bank. */
int conf_bank_set(struct conf_loader *ld, const struct conf_where *w, const char *name,
                  const char *leaf, const char *value);
/* A configuration holding the defaults only (for sl_config_print -n). */
struct sl_config *conf_defaults_new(void);

/* ---- conf_yaml.c, conf_check.c ---------------------------------------- */

/* Parses the YAML in fp (named file in messages) into ld: 0, or -1. */
int conf_yaml_read(struct conf_loader *ld, const char *file, FILE *fp);
/* The checks that involve more than one key: 0, or -1. */
int conf_check(struct conf_loader *ld);
/* Those of quarantine.* and the policy's quarantine maps
 * (conf_quarantine.c), run by conf_check: 0, or -1. */
int conf_check_quarantine(struct conf_loader *ld);

/* ---- conf_print.c ------------------------------------------------------ */

/* s as a YAML double-quoted scalar that reads back as s. */
void conf_print_quoted(FILE *out, const char *s);
/* The shortest decimal that reads back as the same double. */
void conf_print_level(FILE *out, double v);

#endif
