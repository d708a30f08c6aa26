/* sl_master.c - the supervisor that holds the listening sockets. */
#include "util/sl_master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include "util/sl_log.h"

/* ------------------------------------------------------------ the child */

/* The mask the master had before it blocked its signals; the child
 * restores it in sl_master_child_ready(). */
static sigset_t child_mask;
static bool child_mask_pending;
static pid_t master_of_child;       /* set in the child */
static int child_channel = -1;      /* the child's end of the socket pair */
static unsigned child_heartbeat_ms; /* how often the child must say something */
static unsigned restarts;           /* children that died and were replaced; a child inherits it */

unsigned
sl_master_restarts(void)
{
    return restarts;
}

long
sl_master_node_pid(void)
{
    return master_of_child ? (long)master_of_child : (long)getpid();
}

int
sl_master_child_channel(void)
{
    return child_channel;
}

unsigned
sl_master_child_heartbeat_ms(void)
{
    return child_channel >= 0 ? child_heartbeat_ms : 0;
}

void
sl_master_child_ready(void)
{
    if (!child_mask_pending)
        return;
    child_mask_pending = false;
    /* A change of credentials (setuid) clears the parent-death signal:
     * arm it again now that the child's start-up is over. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master_of_child)
        kill(getpid(), SIGTERM); /* the master is gone: stop like it said */
    sigprocmask(SIG_SETMASK, &child_mask, NULL);
}

unsigned
sl_stop_count_add(struct sl_stop_count *c, int sig)
{
    if (sig == SL_MASTER_STOP_SIGNAL)
        c->from_master++;
    else
        c->direct++;
    unsigned requests = c->direct > c->from_master ? c->direct : c->from_master;
    if (requests == c->acted)
        return 0;
    c->acted = requests;
    return requests;
}

/* ------------------------------------------------------- restart policy */

void
sl_master_backoff_init(struct sl_master_backoff *b, unsigned min_ms, unsigned max_ms,
                       unsigned stable_ms)
{
    b->min_ms = min_ms;
    b->max_ms = max_ms < min_ms ? min_ms : max_ms;
    b->stable_ms = stable_ms;
    b->next_ms = min_ms;
}

unsigned
sl_master_backoff_next(struct sl_master_backoff *b, bool was_ready, unsigned long long ran_ms)
{
    if (was_ready) {
        /* It served: a crash, the OOM killer, an operator's kill, a hang.
         * Waiting only leaves Postfix's connections in the backlog; the
         * one limit is the rate of starts, one per min_ms. */
        b->next_ms = b->min_ms;
        return ran_ms >= b->min_ms ? 0 : (unsigned)(b->min_ms - ran_ms);
    }
    /* It never got to serve: failing to start, again and again, is what
     * the doubling is for. A start that took stable_ms is not a loop. */
    if (ran_ms >= b->stable_ms)
        b->next_ms = b->min_ms;
    unsigned delay = b->next_ms;
    b->next_ms = b->next_ms > b->max_ms / 2 ? b->max_ms : b->next_ms * 2;
    return delay;
}

/* ------------------------------------------------------------ the master */

struct master {
    const struct sl_master_params *p;
    unsigned hang_ms, start_ms, heartbeat_ms;
    unsigned long long watchdog_ms; /* systemd's ping interval; 0: none */
    unsigned long long next_watchdog_ms;
    int sigfd;
    sigset_t old_mask;
    pid_t pid; /* the master's */
    /* the child, while one runs */
    pid_t child;
    int chan;   /* the master's end of the child's channel */
    bool ready; /* it sent READY=1 */
    bool killed_hung;
    bool told_systemd_ready;
    unsigned long long started_ms, heard_ms;
};

static void
master_close_chan(struct master *m)
{
    if (m->chan >= 0)
        close(m->chan);
    m->chan = -1;
}

static pid_t
master_fork(struct master *m)
{
    int sp[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        sl_error("master: socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid != 0) {
        close(sp[1]);
        if (pid < 0) {
            sl_error("master: fork: %s", strerror(errno));
            close(sp[0]);
            return -1;
        }
        m->chan = sp[0];
        m->child = pid;
        m->ready = false;
        m->killed_hung = false;
        m->started_ms = m->heard_ms = sl_now_mono_ms();
        sl_info("master: %s child pid %ld started", m->p->label, (long)pid);
        return pid;
    }
    /* The child. If the master goes, stop (gracefully): a new master
     * started by systemd must be able to bind the port. getppid() closes
     * the race with a master that died before prctl(). */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != m->pid)
        _exit(EX_SOFTWARE);
    close(sp[0]);
    close(m->sigfd);
    if (m->chan >= 0)
        close(m->chan);
    child_channel = sp[1];
    child_heartbeat_ms = m->heartbeat_ms;
    child_mask = m->old_mask;
    child_mask_pending = true;
    master_of_child = m->pid;
    exit(m->p->child_main(m->p->ctx));
}

static int
exit_status_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Reads what the child said. Each message is a few NAME=VALUE lines, as
 * sd_notify(3) takes them; any message shows it is alive. */
static void
master_read_chan(struct master *m)
{
    char buf[1024];
    ssize_t n;

    while ((n = recv(m->chan, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        m->heard_ms = sl_now_mono_ms();
        for (char *line = buf, *next; line != NULL && *line != '\0'; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            if (strcmp(line, "READY=1") == 0 && !m->ready) {
                m->ready = true;
                sl_info("master: %s child pid %ld ready", m->p->label, (long)m->child);
                if (!m->told_systemd_ready)
                    sd_notify(0, "READY=1");
                m->told_systemd_ready = true;
            } else if (strncmp(line, "STATUS=", 7) == 0) {
                sd_notify(0, line);
            } else if (strcmp(line, "STOPPING=1") == 0) {
                sd_notify(0, "STOPPING=1");
            }
            /* WATCHDOG=1: nothing more than being heard */
        }
    }
    if (n == 0) /* the child closed it: it is exiting; SIGCHLD follows */
        master_close_chan(m);
}

/* Is the child hung: ready and silent for hang_ms, or not ready start_ms
 * after its start? (Then the master kills it.) */
static bool
master_child_hung(const struct master *m, unsigned long long now)
{
    if (m->child <= 0 || m->killed_hung)
        return false;
    if (!m->ready)
        return now - m->started_ms >= m->start_ms;
    return now - m->heard_ms >= m->hang_ms;
}

/* Does the child answer now? What systemd's watchdog is fed on: a ready
 * child heard within three heartbeats, a child still starting (for at most
 * start_ms), or no child while the master is starting the next one. So the
 * pings pause as soon as a child stops answering and resume once its
 * successor is ready; systemd acts only if that takes WatchdogSec, that is
 * if the master cannot recover (hang_ms is a third of it). */
static bool
master_child_answers(const struct master *m, unsigned long long now)
{
    if (m->child <= 0)
        return true;
    if (m->killed_hung)
        return false;
    if (!m->ready)
        return now - m->started_ms < m->start_ms;
    return now - m->heard_ms < 3ULL * m->heartbeat_ms;
}

static void
master_check_hung(struct master *m, unsigned long long now)
{
    if (!master_child_hung(m, now))
        return;
    if (m->ready)
        sl_warn("master: %s child pid %ld has not answered for %llu ms (stopped, hung or "
                "deadlocked): killing it",
                m->p->label, (long)m->child, now - m->heard_ms);
    else
        sl_warn("master: %s child pid %ld is not ready %llu ms after its start: killing it",
                m->p->label, (long)m->child, now - m->started_ms);
    m->killed_hung = true;
    kill(m->child, SIGKILL);
}

static void
master_feed_watchdog(struct master *m, unsigned long long now)
{
    if (m->watchdog_ms == 0 || now < m->next_watchdog_ms)
        return;
    m->next_watchdog_ms = now + m->watchdog_ms;
    if (master_child_answers(m, now))
        sd_notify(0, "WATCHDOG=1");
}

/* The poll timeout: until the next restart, hang check or watchdog ping. */
static int
master_timeout(const struct master *m, unsigned long long now, unsigned long long restart_at_ms)
{
    unsigned long long at = now + 60000;

    if (m->child <= 0 && restart_at_ms < at)
        at = restart_at_ms;
    if (m->child > 0 && !m->killed_hung) {
        unsigned long long hung_at =
            m->ready ? m->heard_ms + m->hang_ms : m->started_ms + m->start_ms;
        if (hung_at < at)
            at = hung_at;
    }
    if (m->watchdog_ms && m->next_watchdog_ms < at)
        at = m->next_watchdog_ms;
    return at <= now ? 0 : (int)(at - now);
}

static void
master_params(struct master *m, const struct sl_master_params *p)
{
    uint64_t wd_usec = 0;

    m->p = p;
    m->hang_ms = p->hang_ms ? p->hang_ms : SL_MASTER_HANG_MS;
    m->start_ms = p->start_ms ? p->start_ms : SL_MASTER_START_MS;
    /* WATCHDOG_USEC and WATCHDOG_PID are the master's: removed, so that a
     * child can never take them for its own */
    if (sd_watchdog_enabled(1, &wd_usec) > 0 && wd_usec >= 3000) {
        m->watchdog_ms = wd_usec / 2000;
        if (p->hang_ms == 0 && wd_usec / 3000 < m->hang_ms)
            m->hang_ms = (unsigned)(wd_usec / 3000);
        sl_info("master: systemd watchdog every %llu ms; a child silent for %u ms is killed",
                (unsigned long long)(wd_usec / 1000), m->hang_ms);
    }
    /* four messages per hang_ms, at most a second apart */
    m->heartbeat_ms = m->hang_ms / 4 > 1000 ? 1000 : m->hang_ms / 4;
    if (m->heartbeat_ms == 0)
        m->heartbeat_ms = 1;
}

int
sl_master_run(const struct sl_master_params *p)
{
    struct master m = {.pid = getpid(), .chan = -1, .child = 0};
    struct sl_master_backoff backoff;
    sigset_t set;
    unsigned long long restart_at_ms = 0;
    bool stopping = false;

    master_params(&m, p);
    sl_master_backoff_init(&backoff,
                           p->backoff_min_ms ? p->backoff_min_ms : SL_MASTER_BACKOFF_MIN_MS,
                           p->backoff_max_ms ? p->backoff_max_ms : SL_MASTER_BACKOFF_MAX_MS,
                           p->stable_ms ? p->stable_ms : SL_MASTER_STABLE_MS);

    /* Signals are read from a signalfd: no handlers, no async-signal-
     * safety to get wrong, and one poll() waits for them, the child's
     * messages and the next timer. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SL_MASTER_STOP_SIGNAL); /* blocked in the child until it is ready */
    sigprocmask(SIG_BLOCK, &set, &m.old_mask);
    m.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m.sigfd < 0) {
        sl_fatal("master: signalfd: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &m.old_mask, NULL);
        return EX_OSERR;
    }
    sl_info("master: pid %ld; the %s child is restarted if it dies or hangs", (long)m.pid,
            p->label);

    if (master_fork(&m) < 0)
        restart_at_ms = sl_now_mono_ms() + backoff.next_ms;
    for (;;) {
        unsigned long long now = sl_now_mono_ms();
        master_check_hung(&m, now);
        master_feed_watchdog(&m, now);
        if (m.child <= 0 && now >= restart_at_ms) {
            if (master_fork(&m) < 0)
                restart_at_ms = now + backoff.next_ms;
            continue;
        }
        struct pollfd pfd[2] = {{.fd = m.sigfd, .events = POLLIN},
                                {.fd = m.chan, .events = POLLIN}};
        int r = poll(pfd, m.chan >= 0 ? 2 : 1, master_timeout(&m, now, restart_at_ms));
        if (r <= 0)
            continue; /* a timer is due, or EINTR */
        if (m.chan >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            master_read_chan(&m);
        if ((pfd[0].revents & POLLIN) == 0)
            continue;

        struct signalfd_siginfo si;
        if (read(m.sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        int sig = (int)si.ssi_signo;
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (sig != SIGHUP && !stopping) {
                stopping = true;
                sd_notify(0, "STOPPING=1\nSTATUS=stopping: the messages in flight finish");
            }
            if (m.child <= 0) {
                if (stopping) {
                    sl_notice("master: %s while no child runs: stopped", strsignal(sig));
                    close(m.sigfd);
                    return 0;
                }
                continue;
            }
            /* Ctrl-C: the terminal signalled the whole process group, the
             * child included; it has its copy already. */
            if (si.ssi_code == SI_KERNEL)
                continue;
            /* A stop goes on as SL_MASTER_STOP_SIGNAL: the child then tells
             * our copy from the one it may have had itself (kill of the
             * process group, pkill), instead of counting two stops. */
            kill(m.child, sig == SIGHUP ? SIGHUP : SL_MASTER_STOP_SIGNAL);
            continue;
        }
        if (sig != SIGCHLD)
            continue; /* SL_MASTER_STOP_SIGNAL sent to the master: not ours */

        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != m.child)
                continue;
            if (m.chan >= 0)
                master_read_chan(&m); /* its last words: STATUS=, STOPPING=1 */
            master_close_chan(&m);
            m.child = 0;
            int rc = exit_status_of(status);
            if (stopping) {
                sl_info("master: %s child pid %ld stopped (exit status %d)", p->label, (long)pid,
                        rc);
                close(m.sigfd);
                return rc;
            }
            if (WIFEXITED(status) && (rc == EX_USAGE || rc == EX_CONFIG)) {
                sl_fatal("master: %s child pid %ld exited with status %d; a restart cannot "
                         "help",
                         p->label, (long)pid, rc);
                close(m.sigfd);
                return rc;
            }
            now = sl_now_mono_ms();
            unsigned delay = sl_master_backoff_next(&backoff, m.ready, now - m.started_ms);
            char why[96];
            if (WIFSIGNALED(status))
                snprintf(why, sizeof(why), "killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
            else
                snprintf(why, sizeof(why), "exited with status %d", rc);
            sl_warn("master: %s child pid %ld %s%s; restarting in %u ms", p->label, (long)pid, why,
                    m.ready ? "" : " before it was ready", delay);
            sd_notifyf(0, "STATUS=%s child pid %ld %s; restarting in %u ms", p->label, (long)pid,
                       why, delay);
            restart_at_ms = now + delay;
            restarts++;
        }
    }
}
