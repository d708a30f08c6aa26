/* sl_util.c - allocation wrappers, bug checks, clocks. */
#include "util/sl_util.h"

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
