/* policy.h - from findings to per-recipient outcomes, with amavisd-new's
 * semantics: its categories, destinies, spam levels and policy banks
 * (docs/configuration.md, "policy").
 *
 * Content categories in amavis' priority order, highest first:
 *   INFECTED, BANNED, UNCHECKED (-OVERLIMIT, -ENCRYPTED), SPAM, SPAMMY,
 *   BAD-HEADER, OVERSIZED, CLEAN.
 * For each recipient the categories present are walked in that order; the
 * first whose destiny is not D_PASS blocks the mail for that recipient
 * with that destiny (amavis' "blocking ccat"); otherwise the recipient gets
 * D_PASS and the highest category present. SPAM and SPAMMY depend on the
 * recipient's spam levels (tag, tag2, kill, DSN cut-off: policy.*_level,
 * overridden per recipient or domain by policy.*_level_map), so two
 * recipients of one message may differ.
 *
 * Policy banks: the policy in force is policy.* with banks loaded over it
 * (policy_select): the listener's banks (match_listener: the frontend port
 * the job arrived on), the origin's banks (match_origin), then, when the
 * original client (XFORWARD ADDR) is in policy.mynetworks, the bank named
 * by policy.mynetworks_bank ("ORIGINATING"), which also marks the mail as
 * originating. The log's direction words follow amavisd-new: a recipient
 * in policy.local_domains is Inbound (Internal when originating), any
 * other OpenRelay (Outbound when originating); without local_domains the
 * direction follows the bank alone: Inbound, or Outbound when originating.
 *
 * Header edits: for every recipient, removal of X-Spam-* fields from
 * elsewhere (amavis' $remove_existing_spam_headers) and X-Amavis-Alert
 * for INFECTED / BANNED / BAD-HEADER mail that is passed; per recipient
 * at or above tag level X-Spam-Score, X-Spam-Level, X-Spam-Status (with
 * the test names), at or above tag2 also X-Spam-Flag: YES and the subject
 * tag.
 *
 * No I/O, no global state: unit-tested in tests/unit/test_policy.c. */
#ifndef SLUICE_WORKERS_POLICY_H
#define SLUICE_WORKERS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include "conf/sl_config.h"
#include "lookup/sl_lookup.h"

/* Destinies, numbered as the wire's Destiny enum. */
enum policy_destiny {
    POLICY_D_PASS = 0,
    POLICY_D_DISCARD = 1,
    POLICY_D_BOUNCE = 2,
    POLICY_D_REJECT = 3,
    POLICY_D_TEMPFAIL = 4,
};

/* Categories, lowest priority first (amavis' CC_* order). */
enum policy_ccat {
    CCAT_CLEAN = 0,
    CCAT_OVERSIZED,
    CCAT_BAD_HEADER,
    CCAT_SPAMMY,
    CCAT_SPAM,
    CCAT_UNCHECKED,
    CCAT_BANNED,
    CCAT_INFECTED,
    CCAT_COUNT
};

enum policy_unchecked {
    POLICY_UNCHECKED_NONE = 0,
    POLICY_UNCHECKED_ENCRYPTED, /* UNCHECKED-ENCRYPTED */
    POLICY_UNCHECKED_OVERLIMIT, /* UNCHECKED-OVERLIMIT */
    POLICY_UNCHECKED_FAILED,    /* UNCHECKED: a scanner failed */
};

/* The policy in force for one message: a shallow view into the config. */
struct policy_view {
    struct sl_policy_config p;
    bool originating;
    char banks[256]; /* names of the banks applied, comma-separated */
};

void policy_select(const struct sl_config *config, const char *origin, unsigned by_port,
                   const char *client_addr, struct policy_view *view_r);

/* What was found. Not owned by the policy. */
struct policy_facts {
    char *const *viruses;
    size_t n_viruses;
    char *const *banned;
    size_t n_banned;
    enum policy_unchecked unchecked;
    char *const *unchecked_reasons;
    size_t n_unchecked_reasons;
    bool spam_scanned;
    double spam_score;
    char *const *spam_tests; /* "GTUBE=1000" */
    size_t n_spam_tests;
    char *const *bad_headers;
    size_t n_bad_headers;
    size_t size; /* message bytes */
};

struct policy_edit {
    int op; /* enum sl_header_op */
    char *name;
    char *value;
};

struct policy_rcpt {
    enum policy_ccat ccat;
    char *category; /* "SPAM", "UNCHECKED-ENCRYPTED", ... */
    enum policy_destiny destiny;
    struct policy_edit *edits;
    size_t n_edits;
    char *reason;        /* "INFECTED: Eicar-Test-Signature" */
    bool tagged;         /* at or above tag2: X-Spam-Flag, subject tag */
    bool dsn_suppressed; /* D_BOUNCE, but no DSN (null sender, spam cut-off) */
    bool remote;         /* not in policy.local_domains: Outbound / OpenRelay */
    double tag_level, tag2_level, kill_level, dsn_cutoff_level;
    /* policy_quarantine_decide(): pointing into the config or static */
    const char *quarantine; /* "virus", "banned", "spam", "badh"; NULL: not quarantined */
    const char *admin;      /* the category's administrator to notify, or NULL */
    bool warn;              /* a warning to the recipient (virus, banned) */
    const char *lookup;     /* "sql:<policy name or key>" when a lookup matched; the caller's */
};

struct policy_result {
    char *category;            /* the highest over all recipients */
    struct policy_edit *edits; /* for every recipient */
    size_t n_edits;
    struct policy_rcpt *rcpts; /* one per recipient, in order */
    size_t n_rcpts;
};

/* One recipient's policy from lookup.sql or lookup.ldap (sl_lookup.h):
 * what the answer sets replaces the view's value and the _map items for
 * that recipient (amavis consults SQL and LDAP before its static maps);
 * lovers pass their category; the sender lists' verdict blacklists
 * (SPAM whatever the score), whitelists (never SPAM or SPAMMY, tagged at
 * score - 10) or moves the score. failed: the source did not answer, so
 * the recipient is tempfailed (never a default verdict). The strings stay
 * the caller's and must outlive the result. */
struct policy_lookup {
    const struct sl_lookup_answer *answer; /* NULL: nothing looked up */
    struct sl_lookup_wb_result wb;
    const char *failed;                    /* the source's error, or NULL */
    const char *name;                      /* for the log: "sql:<policy name>" */
};

/* subject: the message's Subject (unfolded) or NULL. lookups: one per
 * recipient, or NULL. */
void policy_decide_lookups(const struct policy_view *view, const struct policy_facts *facts,
                           const char *mail_from, const char *const *rcpts, size_t n_rcpts,
                           const char *subject, const struct policy_lookup *lookups,
                           struct policy_result *result_r);
/* The same without lookups. */
void policy_decide(const struct policy_view *view, const struct policy_facts *facts,
                   const char *mail_from, const char *const *rcpts, size_t n_rcpts,
                   const char *subject, struct policy_result *result_r);
void policy_result_free(struct policy_result *result);

/* Quarantine and notifications, amavis' way (docs/quarantine.md), called
 * by policy_decide() once each recipient has its category and destiny:
 * the recipient's category (the blocking one, else its highest) selects
 * <category>_quarantine_to (or the recipient's item in the _map), the
 * administrator (virus_admin, banned_admin or else virus_admin,
 * spam_admin for SPAM and SPAMMY, bad_header_admin) and the warning
 * (warn_virus_recip, warn_banned_recip; local recipients only, as amavis'
 * $warn_offsite = 0). A recipient tempfailed gets none: the message comes
 * back. p: the recipient's policy (lookups applied). policy_quarantine.c. */
void policy_quarantine_rcpt(const struct sl_policy_config *p, const char *rcpt,
                            struct policy_rcpt *r);

/* The value of a recipient's item in map ("addr=v", "user@=v", "dom=v",
 * ".dom=v", ".=v"), most specific first, pointing into map; NULL when
 * nothing matches. */
const char *policy_rcpt_map(char *const *map, size_t n, const char *rcpt);
/* A recipient's level from a level map ("boss@example.com=20"); dflt when
 * nothing matches. */
double policy_rcpt_level(char *const *map, size_t n, double dflt, const char *rcpt);

/* Is rcpt's domain in local_domains ("dom": that domain, ".dom": it and
 * its subdomains, ".": every domain; case-insensitive)? */
bool policy_domain_is_local(char *const *local_domains, size_t n, const char *rcpt);

/* "pass" -> POLICY_D_PASS ... (unknown names: D_TEMPFAIL, never lose mail) */
enum policy_destiny policy_destiny_from_name(const char *name);
const char *policy_destiny_name(enum policy_destiny d);
const char *policy_ccat_name(enum policy_ccat c);

#endif
