/* sl_log.h - logging to syslog (facility mail, like Postfix and amavisd-new)
 * or to stderr (foreground, containers, systemd's journal). Thread-safe.
 *
 * Levels are syslog's. Lines about one message start with its job id, as
 * Postfix lines start with the queue id.
 *
 * On stderr a line reads as a syslog file's does,
 *   Nov 24 10:04:13 HOST IDENT[PID]: warning: text
 * so that the tools written for mail logs (mailgraph, logwatch) read a
 * file of them. When stderr is systemd's journal (JOURNAL_STREAM names
 * its device and inode, systemd.exec(5)), a line is "<N>warning: text"
 * instead: N is the level (sd-daemon(3)'s prefixes), so that `journalctl
 * -p warning` filters, and the journal records time, host and name. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdbool.h>
#include <syslog.h>
#include "util/sl_util.h"

enum sl_log_target { SL_LOG_STDERR, SL_LOG_SYSLOG };

/* ident: the program name in every line (copied; syslog's ident); level:
 * lowest level written (LOG_INFO...). May be called again at any time (a
 * reload): the next line of any thread has the new settings. */
void sl_log_open(const char *ident, enum sl_log_target target, int level);
void sl_log_close(void);
void sl_log_set_level(int level);
int sl_log_level_from_name(const char *name);  /* -1 if unknown */
/* Are lines on stderr going to systemd's journal (as found by the last
 * sl_log_open)? */
bool sl_log_journal(void);

void sl_log(int level, const char *fmt, ...) SL_PRINTF(2, 3);
/* Would a line of this level be written? For lines costly to build. */
bool sl_log_enabled(int level);

#define sl_fatal(...) (sl_log(LOG_CRIT, __VA_ARGS__))
#define sl_error(...) sl_log(LOG_ERR, __VA_ARGS__)
#define sl_warn(...) sl_log(LOG_WARNING, __VA_ARGS__)
#define sl_notice(...) sl_log(LOG_NOTICE, __VA_ARGS__)
#define sl_info(...) sl_log(LOG_INFO, __VA_ARGS__)
#define sl_debug(...) sl_log(LOG_DEBUG, __VA_ARGS__)

#endif
