/* sl_notify.h - telling the supervisor how this process is: ready,
 * stopping, alive, and a one-line status. Knows nothing of mail.
 *
 * Who listens: a sluice master (sl_master.h) when this process is its
 * child, over the channel the master gave it; else systemd through
 * sd_notify(3) (Type=notify, WatchdogSec=), which does nothing when
 * NOTIFY_SOCKET is unset (a terminal, a container). The messages are
 * sd_notify's either way, so the master relays STATUS= as it came.
 *
 * SYNOPSIS
 *   when the process serves (sockets bound, roles started):
 *       sl_notify_ready();
 *   every sl_notify_interval_ms(), from the event loop that does the work
 *   (so that a stuck loop stops the pings):
 *       sl_notify_alive(); sl_notify_status("%u session(s) ...", ...);
 *   when a stop begins:
 *       sl_notify_stopping(); */
#ifndef SL_NOTIFY_H
#define SL_NOTIFY_H

#include "util/sl_util.h"

void sl_notify_ready(void);
void sl_notify_stopping(void);
/* WATCHDOG=1: the loop turns. */
void sl_notify_alive(void);
/* STATUS=...; sent only when it differs from the last one. */
void sl_notify_status(const char *fmt, ...) SL_PRINTF(1, 2);

/* How often sl_notify_alive() must be called: the master's heartbeat, or
 * half of systemd's WatchdogSec; without either, every 5 s while someone
 * listens (STATUS= only), 0 when no one does. */
unsigned sl_notify_interval_ms(void);

#endif
