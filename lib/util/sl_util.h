/* sl_util.h - allocation wrappers and invariant checks used everywhere.
 *
 * Out of memory is not recoverable in a mail filter that holds connections
 * open: the wrappers abort, so callers never test for NULL.
 * SL_BUG_ON is for programming errors only, never for external input; it
 * stays on in release builds. */
#ifndef SL_UTIL_H
#define SL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define SL_WARN_UNUSED __attribute__((warn_unused_result))
#define SL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SL_NORETURN __attribute__((noreturn))
#define SL_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

#define SL_BUG_ON(cond)                                                        \
    do {                                                                       \
        if (__builtin_expect(!!(cond), 0))                                     \
            sl_bug(__FILE__, __LINE__, #cond);                                 \
    } while (0)

SL_NORETURN void sl_bug(const char *file, int line, const char *what);

void *sl_malloc(size_t n);
void *sl_calloc(size_t nmemb, size_t size);   /* zeroed */
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
/* Returns a malloc'ed string the caller owns. */
char *sl_asprintf(const char *fmt, ...) SL_PRINTF(1, 2);
char *sl_vasprintf(const char *fmt, va_list ap) SL_PRINTF(1, 0);

/* Frees *p and clears it; *p may be NULL. */
void sl_free_and_clear(void *pp);
/* Frees the n strings of v, then v itself; v may be NULL (n is then 0). */
void sl_strv_free(char **v, size_t n);

/* Monotonic milliseconds (timeouts) and wall-clock milliseconds (deadlines
 * that travel between nodes). */
unsigned long long sl_now_mono_ms(void);
unsigned long long sl_now_wall_ms(void);
/* RFC 5322 3.3 date-time of ms (wall clock) in local time, with the zone
 * name as a comment as Postfix and amavisd-new write it:
 * "Tue, 21 Nov 2023 10:04:13 +0100 (CET)". len >= 40 holds any. */
void sl_rfc5322_date(unsigned long long ms, char *buf, size_t len);
/* A spam score as amavisd-new writes it in headers and logs: at most 3
 * decimals, trailing zeros dropped, never an exponent ("6.31", "1000",
 * "-0.5"); "-0" and non-finite values read "0". len >= 32 holds any
 * score a scanner gives. */
void sl_format_score(double score, char *buf, size_t len);

/* Case-insensitive prefix test: returns the rest of s after prefix, or NULL. */
const char *sl_strcase_prefix(const char *s, const char *prefix);

/* Well-formed UTF-8 (RFC 3629 4): no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
bool sl_utf8_valid(const char *str);

#endif
