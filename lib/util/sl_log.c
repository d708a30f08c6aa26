/* sl_log.c - syslog or stderr logging. */
#include "util/sl_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum sl_log_target log_target = SL_LOG_STDERR;
static int log_level = LOG_INFO;
static const char *log_ident = "sluice";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "fatal",
    [LOG_ERR] = "error",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

void
sl_log_open(const char *ident, enum sl_log_target target, int level)
{
    log_ident = ident;
    log_target = target;
    log_level = level;
    if (target == SL_LOG_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
sl_log_close(void)
{
    if (log_target == SL_LOG_SYSLOG)
        closelog();
}

void
sl_log_set_level(int level)
{
    log_level = level;
}

int
sl_log_level_from_name(const char *name)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(level_names); i++)
        if (level_names[i] && strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(name, "err") == 0)
        return LOG_ERR;
    if (strcasecmp(name, "crit") == 0)
        return LOG_CRIT;
    if (strcasecmp(name, "warn") == 0)
        return LOG_WARNING;
    return -1;
}

void
sl_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (log_target == SL_LOG_SYSLOG) {
        vsyslog(LOG_MAIL | level, fmt, ap);
    } else {
        /* Postfix-like: "Nov 24 10:04:13 sluice[123]: warning: text" */
        char stamp[64];
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "%s.%03ld %s[%d]: ", stamp, (long)(tv.tv_usec / 1000), log_ident,
                (int)getpid());
        if (level != LOG_INFO && level >= 0 && level < (int)SL_N_ELEMENTS(level_names))
            fprintf(stderr, "%s: ", level_names[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        fflush(stderr);
        pthread_mutex_unlock(&log_lock);
    }
    va_end(ap);
}
