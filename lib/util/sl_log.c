/* sl_log.c - syslog or stderr logging (sl_log.h). */
#include "util/sl_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* A line of stderr output: PIPE_BUF, so that one write(2) of it is atomic
 * on a pipe; longer messages are cut. */
#define SL_LOG_LINE_MAX 4096

#define LOG_IDENT_MAX 64
#define LOG_HOST_MAX 64

/* Everything but the level changes under log_lock, and every line is
 * written under it: syslog(3) keeps the ident pointer openlog() was
 * given, so the ident buffer must not change while a line is written. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum sl_log_target log_target = SL_LOG_STDERR;
static bool log_syslog_open;
static bool log_journal;
static char log_ident[LOG_IDENT_MAX] = "sluice";
static char log_host[LOG_HOST_MAX] = "localhost";
static atomic_int log_level = LOG_INFO;

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "fatal",
    [LOG_ERR] = "error",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected stdout
 * and stderr to; it is inherited by children whose stderr went elsewhere,
 * so it only counts when it still names our stderr. */
static bool
stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char end;

    if (env == NULL || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2)
        return false;
    return fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

/* The short host name, as syslog daemons write it. */
static void
host_short(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0)
        snprintf(buf, len, "localhost");
    buf[len - 1] = '\0';
    buf[strcspn(buf, ".")] = '\0';
    if (buf[0] == '\0')
        snprintf(buf, len, "localhost");
}

void
sl_log_open(const char *ident, enum sl_log_target target, int level)
{
    pthread_mutex_lock(&log_lock);
    if (log_syslog_open) {
        closelog();
        log_syslog_open = false;
    }
    snprintf(log_ident, sizeof(log_ident), "%s", ident);
    host_short(log_host, sizeof(log_host));
    log_target = target;
    log_journal = target == SL_LOG_STDERR && stderr_is_journal();
    atomic_store(&log_level, level);
    if (target == SL_LOG_SYSLOG) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
        log_syslog_open = true;
    }
    pthread_mutex_unlock(&log_lock);
}

void
sl_log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_syslog_open)
        closelog();
    log_syslog_open = false;
    log_target = SL_LOG_STDERR;
    pthread_mutex_unlock(&log_lock);
}

void
sl_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

bool
sl_log_journal(void)
{
    pthread_mutex_lock(&log_lock);
    bool journal = log_journal;
    pthread_mutex_unlock(&log_lock);
    return journal;
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

/* Appends to line at n (up to SL_LOG_LINE_MAX - 1, the newline's room);
 * the new length. */
static size_t SL_PRINTF(3, 4)
line_add(char *line, size_t n, const char *fmt, ...)
{
    va_list ap;
    int m;

    if (n >= SL_LOG_LINE_MAX - 2)
        return n;
    va_start(ap, fmt);
    m = vsnprintf(line + n, SL_LOG_LINE_MAX - 1 - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return n;
    return (size_t)m < SL_LOG_LINE_MAX - 1 - n ? n + (size_t)m : SL_LOG_LINE_MAX - 2;
}

bool
sl_log_enabled(int level)
{
    return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void
sl_log(int level, const char *fmt, ...)
{
    if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_lock);
    if (log_target == SL_LOG_SYSLOG) {
        vsyslog(LOG_MAIL | level, fmt, ap);
    } else {
        /* one write(2) per line: the master and its child share the
         * stream (a container's log, the journal), and a line written in
         * pieces would interleave with the other's */
        char line[SL_LOG_LINE_MAX];
        size_t n = 0;
        if (log_journal) {
            /* sd-daemon(3): the journal takes <N> as the priority */
            n = line_add(line, n, "<%d>", level);
        } else {
            /* a syslog file's line: "Nov 24 10:04:13 host sluice[123]: " */
            char stamp[32];
            time_t now = time(NULL);
            struct tm tm;
            localtime_r(&now, &tm);
            strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
            n = line_add(line, n, "%s %s %s[%d]: ", stamp, log_host, log_ident, (int)getpid());
        }
        if (level != LOG_INFO && level >= 0 && level < (int)SL_N_ELEMENTS(level_names))
            n = line_add(line, n, "%s: ", level_names[level]);
        int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
        if (m > 0)
            n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
        line[n++] = '\n';
        fwrite(line, 1, n, stderr);
        fflush(stderr);
    }
    pthread_mutex_unlock(&log_lock);
    va_end(ap);
}
