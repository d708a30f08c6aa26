/* checks.h - the worker's built-in checks, amavisd-new's "banned files",
 * "bad header" and "unchecked" decisions made in-process:
 *
 *   check_banned.c   file names (banned extensions, double extensions
 *                    such as invoice.pdf.exe), declared and real types
 *                    (libmagic), PCRE2 patterns; archives (zip, 7z, rar,
 *                    tar, gz, cpio, cab, iso...) opened with libarchive
 *                    and checked inside, to a depth, within limits on
 *                    entries, expanded bytes and expansion ratio; encrypted
 *                    parts and entries.
 *   check_headers.c  the top-level header section: unencoded 8-bit, control
 *                    characters, bad field names, over-long lines, missing
 *                    or duplicated RFC 5322 fields; MIME structure errors
 *                    GMime reported.
 *   checks.c         the MIME walk that feeds every part to the above.
 *
 * Everything here works on untrusted bytes and is bounded: a zip bomb
 * ends as an "overlimit" finding (UNCHECKED-OVERLIMIT), never as a hung or
 * crashed worker. Thread-safe given one magic_t per thread; compiled
 * patterns are shared read-only. */
#ifndef SLUICE_WORKERS_CHECKS_H
#define SLUICE_WORKERS_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <magic.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "mime_check.h"

struct sl_policy_config;

/* What the checks found. Strings are owned; checks_findings_free(). */
struct check_findings {
    char **banned; /* "application/zip,a.zip | .exe,invoice.pdf.exe (double extension)" */
    size_t n_banned;
    char **bad_headers; /* "Duplicate header field: \"Subject\"" */
    size_t n_bad_headers;
    char **encrypted; /* "application/zip,a.zip | secret.doc" */
    size_t n_encrypted;
    char **overlimit; /* "archive expansion ratio above 200: bomb.zip" */
    size_t n_overlimit;
    unsigned parts;              /* MIME parts (mime_info.parts) */
    unsigned long long expanded; /* archive bytes expanded */
    char *message_id;            /* as mime_check found it, or NULL */
};

struct check_ctx {
    const struct sl_policy_config *p; /* lists and limits (a merged view) */
    pcre2_code *const *res;           /* p->banned_names_re compiled, n_res of them */
    size_t n_res;
    magic_t magic;                  /* the calling thread's, or NULL: no type detection */
    bool banned;                    /* run the banned-file checks */
    bool headers;                   /* run the header checks */
    bool smtputf8;                  /* the envelope said SMTPUTF8: 8-bit headers are fine */
    unsigned long long deadline_ms; /* monotonic; checks stop (overlimit) past it, 0: none */
};

/* Runs every enabled check over the message. */
void checks_run(const struct check_ctx *ctx, const char *data, size_t len,
                struct check_findings *f);
void checks_findings_free(struct check_findings *f);

/* ---- check_banned.c --------------------------------------------------- */

/* Per-message state of the banned checks (archive budgets). */
struct banned_state {
    const struct check_ctx *ctx;
    struct check_findings *f;
    unsigned entries;            /* archive entries seen */
    unsigned long long expanded; /* archive bytes expanded */
    unsigned long long input;    /* bytes of the outermost archives */
    bool stopped;                /* a limit was hit: no further archive work */
};

/* Checks one MIME leaf: its name, declared type, real type, and what is
 * inside if it is an archive. chain describes where it is ("" at top). */
void banned_check_part(struct banned_state *st, const struct mime_leaf *leaf);

/* Why name is banned ("banned extension .exe", "double extension"), or
 * NULL. Exposed for unit tests. */
const char *banned_name_reason(const struct sl_policy_config *p, const char *name);

/* Compiles patterns (caseless, UTF-8); NULL entries for patterns that do
 * not compile (the configuration loader refused those already). */
pcre2_code **banned_compile(char *const *patterns, size_t n);
void banned_free_compiled(pcre2_code **res, size_t n);

/* ---- check_headers.c -------------------------------------------------- */

/* amavis' %allowed_header_tests, policy.bad_header_tests */
enum {
    BH_MIME = 1 << 0,     /* MIME structure errors (GMime) */
    BH_8BIT = 1 << 1,     /* unencoded 8-bit header content */
    BH_CONTROL = 1 << 2,  /* control characters */
    BH_LONG = 1 << 3,     /* lines over 998 characters */
    BH_SYNTAX = 1 << 4,   /* bad field names, leading continuation line */
    BH_MISSING = 1 << 5,  /* no From or no Date */
    BH_MULTIPLE = 1 << 6, /* duplicate From, Subject, ... */
};
/* The BH_* set named by a list ("mime", "8bit", ...); unknown names ignored. */
unsigned check_header_tests(char *const *names, size_t n);

/* Checks the top-level header section of data with the tests in mask. */
void check_headers(const char *data, size_t len, bool smtputf8, unsigned mask,
                   struct check_findings *f);

/* Adds a formatted finding to a list (at most CHECK_MAX_FINDINGS each). */
#define CHECK_MAX_FINDINGS 100
void check_add(char ***v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
