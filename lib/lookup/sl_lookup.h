/* sl_lookup.h - each recipient's policy from the database or directory an
 * ISP's control panel already writes: amavisd-new's SQL lookups (tables
 * users, policy, mailaddr, wblist) and LDAP lookups (object class
 * amavisAccount), with amavis' keys, priorities and semantics
 * (docs/lookups.md).
 *
 * A worker thread asks for its recipients before scanning: one
 * struct sl_lookup per process holds the source's settings and a cache
 * shared by the threads (bounded, entries live lookup.cache_ttl); each
 * thread has its own struct sl_lookup_session (a libpq or libldap
 * connection, blocking, every call bounded by lookup.timeout). A source
 * that cannot answer is an error the caller turns into a 4xx: never a
 * default verdict.
 *
 * What a source says about a recipient (struct sl_lookup_answer) is the
 * merge of its matching records, most specific first: for each field the
 * first record with a value (amavis: a NULL goes on to the next record).
 * The sender lists are kept with the answer and judged per message
 * (sl_lookup_senders), so a hot recipient costs one query per TTL. */
#ifndef SL_LOOKUP_H
#define SL_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/sl_config.h"
#include "util/sl_util.h"

/* The policy fields sluice has a meaning for: amavis' policy table columns
 * and amavisAccount attributes (lookup.c: lookup_fields[]). */
enum sl_lookup_field {
    SL_LF_SPAM_TAG_LEVEL,
    SL_LF_SPAM_TAG2_LEVEL,
    SL_LF_SPAM_KILL_LEVEL,
    SL_LF_SPAM_DSN_CUTOFF_LEVEL,
    SL_LF_VIRUS_LOVER,
    SL_LF_SPAM_LOVER,
    SL_LF_BANNED_FILES_LOVER,
    SL_LF_BAD_HEADER_LOVER,
    SL_LF_UNCHECKED_LOVER,
    SL_LF_BYPASS_VIRUS_CHECKS,
    SL_LF_BYPASS_SPAM_CHECKS,
    SL_LF_BYPASS_BANNED_CHECKS,
    SL_LF_BYPASS_HEADER_CHECKS,
    SL_LF_VIRUS_QUARANTINE_TO,
    SL_LF_SPAM_QUARANTINE_TO,
    SL_LF_BANNED_QUARANTINE_TO,
    SL_LF_BAD_HEADER_QUARANTINE_TO,
    SL_LF_VIRUS_ADMIN,
    SL_LF_SPAM_ADMIN,
    SL_LF_BANNED_ADMIN,
    SL_LF_BAD_HEADER_ADMIN,
    SL_LF_WARN_VIRUS_RECIP,
    SL_LF_WARN_BANNED_RECIP,
    SL_LF_SPAM_SUBJECT_TAG2,
    SL_LF_MESSAGE_SIZE_LIMIT,
    SL_LF_LOCAL,
    SL_LF_COUNT
};

struct sl_lookup_field_name {
    const char *sql;  /* column of users or policy */
    const char *ldap; /* attribute of amavisAccount */
};
extern const struct sl_lookup_field_name sl_lookup_field_names[SL_LF_COUNT];

/* One entry of a recipient's sender lists. */
struct sl_lookup_wb {
    unsigned rank;    /* SQL: the matching users record it hangs on (0 = the most
                       * specific); LDAP: 0 */
    char *sender_key; /* mailaddr.email, or an amavisWhite/BlacklistSender value */
    long priority;    /* mailaddr.priority (SQL) */
    char *wb;         /* "W", "B", " ", "-3.5" ...; LDAP: "W" or "B" */
};

/* What the source knows about one recipient. */
struct sl_lookup_answer {
    bool found;               /* a record matched */
    char *value[SL_LF_COUNT]; /* NULL: not set, the configuration's value applies */
    char *policy_name;        /* policy.policy_name or the entry's cn; NULL */
    char *matched_key;        /* the most specific record's key ("@.example.com") */
    bool ldap;                /* the sender lists follow LDAP's rules */
    bool cached;              /* sl_lookup_rcpt: from the cache, not the source */
    struct sl_lookup_wb *wb;  /* most specific record first, then priority */
    size_t n_wb;
};

void sl_lookup_answer_clear(struct sl_lookup_answer *a);
void sl_lookup_answer_copy(struct sl_lookup_answer *dst, const struct sl_lookup_answer *src);

/* The sender lists' verdict for one recipient (amavis' white_black_list). */
struct sl_lookup_wb_result {
    bool whitelisted;
    bool blacklisted;
    double score_boost; /* soft listing: points added to the spam score */
};

/* senders: the envelope sender then the From: addresses (duplicates
 * allowed); local_domains decides which senders get bare-user keys. */
void sl_lookup_senders(const struct sl_lookup_answer *a, const char *const *senders,
                       size_t n_senders, char *const *local_domains, size_t n_local_domains,
                       const char *delimiter, struct sl_lookup_wb_result *result_r);

/* ---- keys (lookup_keys.c) ------------------------------------------------ */

#define SL_LOOKUP_MAX_KEYS 32

/* amavis' make_query_keys for SQL and LDAP ("@" before domain keys):
 * the address as is, user+ext@domain and user@domain lowercased, bare
 * user+ext and user when include_bare_user (local recipients), @domain,
 * then @.domain, @.parent ... @. ; duplicates removed. Keys are malloc'ed
 * into keys_r; returns their number. delimiter: "" or "+" (or several
 * characters, any of which splits). */
size_t sl_lookup_keys(const char *addr, bool include_bare_user, const char *delimiter,
                      char *keys_r[SL_LOOKUP_MAX_KEYS]);
void sl_lookup_keys_free(char **keys, size_t n);

/* amavis' boolean fields: N, n, F, f, 0, NUL and space are false, anything
 * else true ("Y", "TRUE"). */
bool sl_lookup_bool(const char *v);

/* ---- the source and its cache (lookup.c) ------------------------------- */

struct sl_lookup;
struct sl_lookup_session;

/* NULL when config has no lookup.sql and no lookup.ldap.uri (no error);
 * NULL with *error_r when the settings are wrong. */
struct sl_lookup *sl_lookup_new(const struct sl_config *config, char **error_r);
void sl_lookup_destroy(struct sl_lookup **lkp);
/* "sql" or "ldap" */
const char *sl_lookup_source(const struct sl_lookup *lk);

/* One per thread; connects on first use and again after a failure. */
struct sl_lookup_session *sl_lookup_session_new(struct sl_lookup *lk);
void sl_lookup_session_destroy(struct sl_lookup_session **sp);
/* sl_lookup_source() of the session's lookup */
const char *sl_lookup_session_source(const struct sl_lookup_session *s);

/* The answer for rcpt, from the cache or the source. local: rcpt's
 * domain is in policy.local_domains (bare-user keys). 0, or -1 with
 * *error_r (the source did not answer in time, or failed). */
SL_WARN_UNUSED int sl_lookup_rcpt(struct sl_lookup_session *s, const char *rcpt, bool local,
                                  struct sl_lookup_answer *answer_r, char **error_r);

#endif
