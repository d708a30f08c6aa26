/* sl_log.h - logging to syslog (facility mail, like Postfix and amavisd-new)
 * or to stderr (foreground, containers). Thread-safe.
 *
 * Levels are syslog's. Lines about one message start with its job id, as
 * Postfix lines start with the queue id. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <syslog.h>
#include "util/sl_util.h"

enum sl_log_target { SL_LOG_STDERR, SL_LOG_SYSLOG };

/* ident: program name in syslog; level: lowest level written (LOG_INFO...). */
void sl_log_open(const char *ident, enum sl_log_target target, int level);
void sl_log_close(void);
void sl_log_set_level(int level);
int sl_log_level_from_name(const char *name);  /* -1 if unknown */

void sl_log(int level, const char *fmt, ...) SL_PRINTF(2, 3);

#define sl_fatal(...) (sl_log(LOG_CRIT, __VA_ARGS__))
#define sl_error(...) sl_log(LOG_ERR, __VA_ARGS__)
#define sl_warn(...) sl_log(LOG_WARNING, __VA_ARGS__)
#define sl_notice(...) sl_log(LOG_NOTICE, __VA_ARGS__)
#define sl_info(...) sl_log(LOG_INFO, __VA_ARGS__)
#define sl_debug(...) sl_log(LOG_DEBUG, __VA_ARGS__)

#endif
