/* sl_master.h - a supervisor process, after Postfix's master(8): it holds
 * the listening sockets, forks the process that does the work, watches
 * that it is alive, and forks a new one when it dies or hangs. Knows
 * nothing of mail.
 *
 * Why: a process that is killed closes its listening socket, and Postfix's
 * next connect is refused, which makes it mark the filter dead. The master
 * does nothing else (no threads, no I/O besides its log lines and the
 * messages below), so it does not die with the child; the sockets stay
 * open in it, and connections made while no child runs wait in the listen
 * backlog until the next child accepts them.
 *
 * SYNOPSIS
 *   bind the sockets (sl_listen.h), then
 *   return sl_master_run(&(struct sl_master_params){
 *       .label = "frontend", .child_main = run_child, .ctx = &run});
 *   and in the child, once its own signal handlers are installed:
 *   sl_master_child_ready();
 *   then, once it serves, and on a timer while it runs (sl_notify.h):
 *   sl_notify_ready(); sl_notify_alive(); sl_notify_status(...);
 *
 * THE CHILD'S CHANNEL
 *   Each child gets one end of a socket pair; it sends the master short
 *   messages in sd_notify(3)'s form (sl_notify.h does it): READY=1 once it
 *   serves, STATUS=... (relayed to systemd as is), STOPPING=1, and
 *   WATCHDOG=1 at least every heartbeat_ms. Any message shows the child's
 *   event loop is turning. A child that was ready and has sent nothing for
 *   hang_ms (SIGSTOPped, deadlocked, spinning), or that is not ready
 *   start_ms after its start, is hung: the master logs it, SIGKILLs it and
 *   restarts it like any dead child.
 *
 * SYSTEMD (Type=notify, WatchdogSec=)
 *   The master is the service's main process and the one that talks to
 *   systemd: READY=1 when the first child is ready, the child's STATUS=
 *   lines, STOPPING=1 when a stop begins, and WATCHDOG=1 every half
 *   WatchdogSec, but only while the child answers (heard within three
 *   heartbeats; or still starting; or none while the master starts the
 *   next): the pings pause when the child stops answering and resume when
 *   its successor is ready. Under a watchdog hang_ms is a third of
 *   WatchdogSec (at most SL_MASTER_HANG_MS), so the master replaces a hung
 *   child well within it; if it cannot (or hangs itself), systemd's
 *   watchdog kills the service and Restart= starts it again.
 *   Without NOTIFY_SOCKET none of this is sent.
 *
 * SIGNALS (to the master)
 *   SIGTERM, SIGINT: passed on to the child as SL_MASTER_STOP_SIGNAL; the
 *   master exits with the child's exit status when it has stopped (128 +
 *   signal number if a signal ended it). A second one is passed on too
 *   (the child then stops at once). The distinct signal lets the child
 *   count stop requests rather than copies: signalling the process group
 *   (or pkill) gives it one copy from the sender and one from the master,
 *   which are one request (sl_stop_count below). SIGINT from the terminal
 *   (Ctrl-C) reached the child already (the whole foreground process group
 *   gets it) and is not passed on. SIGHUP: passed on as is.
 *
 * RESTARTS (sl_master_backoff_next)
 *   A child that dies without being asked to (any signal, SIGKILL
 *   included, any exit status, or killed as hung) is logged as a warning
 *   and forked again. One that had become ready served mail: it is
 *   restarted at once, no sooner than backoff_min_ms after its own start
 *   (so within a second by default, and never more than one start per
 *   backoff_min_ms). One that dies before it is ready is failing to start:
 *   it is restarted after backoff_min_ms, doubling at each such death up
 *   to backoff_max_ms (Postfix throttles a crashing service the same way);
 *   a child that becomes ready, or one that ran stable_ms, ends the
 *   doubling. Exit status 64 (EX_USAGE) and 78 (EX_CONFIG) mean restarting
 *   cannot help: the master exits with them.
 *   The child gets SIGTERM if the master dies (PR_SET_PDEATHSIG), so no
 *   orphan keeps a port that a new master must bind. */
#ifndef SL_MASTER_H
#define SL_MASTER_H

#include <signal.h>
#include <stdbool.h>
#include "util/sl_util.h"

/* The master's copy of a stop request, as the child receives it. */
#define SL_MASTER_STOP_SIGNAL SIGUSR2

#define SL_MASTER_BACKOFF_MIN_MS 1000
#define SL_MASTER_BACKOFF_MAX_MS 30000
#define SL_MASTER_STABLE_MS 30000
#define SL_MASTER_HANG_MS 10000
#define SL_MASTER_START_MS 120000

struct sl_master_params {
    const char *label;            /* names the child in log lines: "frontend" */
    int (*child_main)(void *ctx); /* the child's work; returns its exit status */
    void *ctx;
    unsigned backoff_min_ms; /* 0: SL_MASTER_BACKOFF_MIN_MS */
    unsigned backoff_max_ms; /* 0: SL_MASTER_BACKOFF_MAX_MS */
    unsigned stable_ms;      /* 0: SL_MASTER_STABLE_MS */
    unsigned hang_ms;        /* 0: SL_MASTER_HANG_MS, or a third of WatchdogSec if smaller */
    unsigned start_ms;       /* 0: SL_MASTER_START_MS */
};

/* Runs the master loop in this process (which must have no threads yet):
 * forks the child and supervises it until an orderly stop. Returns the
 * exit status for main(). Only the master returns; the child exits with
 * child_main's return value. */
SL_WARN_UNUSED int sl_master_run(const struct sl_master_params *params);

/* In the child: SIGTERM, SIGINT and SIGHUP stay blocked from the fork until
 * the child has its own handlers, so a stop requested during its start-up
 * is not lost, nor fatal; this unblocks them. A no-op outside a master's
 * child. (Readiness is sl_notify_ready(), once the child serves.) */
void sl_master_child_ready(void);

/* In the child: its end of the channel to the master (the messages of
 * sl_notify.h), and how often it must send one; -1 and 0 outside a
 * master's child. */
int sl_master_child_channel(void);
unsigned sl_master_child_heartbeat_ms(void);

/* The restart policy (RESTARTS above), without I/O. */
struct sl_master_backoff {
    unsigned min_ms, max_ms, stable_ms;
    unsigned next_ms; /* the delay for the next child that dies before it is ready */
};
void sl_master_backoff_init(struct sl_master_backoff *b, unsigned min_ms, unsigned max_ms,
                            unsigned stable_ms);
/* A child that ran ran_ms died (was_ready: it had sent READY=1): the delay
 * in ms before the next one starts. */
unsigned sl_master_backoff_next(struct sl_master_backoff *b, bool was_ready,
                                unsigned long long ran_ms);

/* Stop requests seen by a child: one from the sender (SIGTERM, SIGINT
 * to this process) and one passed on by the master (SL_MASTER_STOP_SIGNAL)
 * may be the same request, when the sender signalled the whole process
 * group; so the requests are the larger of the two counts. */
struct sl_stop_count {
    unsigned direct, from_master, acted;
};
/* Counts sig; returns how many stop requests there now are if that is
 * more than before (1: stop gracefully, 2 or more: stop at once), or 0 for
 * a copy of a request already counted. */
unsigned sl_stop_count_add(struct sl_stop_count *c, int sig);

/* The pid that names this node for as long as the service runs: the
 * master's in its child (a restarted child registers under the same name
 * in Redis, instead of leaving a "gone" node behind), else getpid(). */
long sl_master_node_pid(void);

/* In a master's child: how many children before it died and were
 * restarted (0 in the first child and outside a master), for the
 * metrics. */
unsigned sl_master_restarts(void);

#endif
