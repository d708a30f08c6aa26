/* sl_util.c - allocation wrappers, bug checks, clocks. */
#include "util/sl_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void
sl_bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "sluice: BUG at %s:%d: %s\n", file, line, what);
    abort();
}

static void
sl_oom(size_t n)
{
    fprintf(stderr, "sluice: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
sl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        sl_oom(n);
    return p;
}

void *
sl_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        sl_oom(nmemb * size);
    return p;
}

void *
sl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        sl_oom(n);
    return q;
}

char *
sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

char *
sl_strndup(const char *s, size_t n)
{
    char *p = sl_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
sl_vasprintf(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        sl_oom(strlen(fmt));
    return s;
}

char *
sl_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = sl_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void
sl_free_and_clear(void *pp)
{
    void **p = pp;
    free(*p);
    *p = NULL;
}

void
sl_strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static unsigned long long
clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL;
}

unsigned long long
sl_now_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

unsigned long long
sl_now_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

const char *
sl_strcase_prefix(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncasecmp(s, prefix, n) == 0 ? s + n : NULL;
}

static const char *const wday_names[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* RFC 5322 3.3 date-time in local time, with the zone name as a comment
 * as amavisd-new writes it: "Tue, 21 Nov 2023 10:04:13 +0100 (CET)".
 * Day and month names are fixed, never the locale's. */
void
sl_rfc5322_date(unsigned long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    long off;
    char sign = '+';

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    if (off < 0) {
        sign = '-';
        off = -off;
    }
    snprintf(buf, len, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld", wday_names[tm.tm_wday % 7],
             tm.tm_mday, month_names[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, sign, off / 60, off % 60);
    if (tm.tm_zone != NULL && tm.tm_zone[0] != '\0' && strlen(buf) + strlen(tm.tm_zone) + 4 < len) {
        bool plain = true;
        for (const char *p = tm.tm_zone; *p != '\0'; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                  *p == '+' || *p == '-'))
                plain = false;
        if (plain) {
            strcat(buf, " (");
            strcat(buf, tm.tm_zone);
            strcat(buf, ")");
        }
    }
}

/* Not %g: it switches to an exponent for large scores ("1e+03"), which
 * header readers and log parsers written for amavisd-new do not expect. */
void
sl_format_score(double score, char *buf, size_t len)
{
    if (!isfinite(score))
        score = 0;
    snprintf(buf, len, "%.3f", score);
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0')
            *e-- = '\0';
        if (e == dot)
            *e = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        strcpy(buf, "0");
}

/* Well-formed UTF-8 (RFC 3629 4): no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
bool
sl_utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned char c = *s;
        size_t n;
        unsigned cp, min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}
