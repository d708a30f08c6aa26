/* sl_master.c - the supervisor that holds the listening sockets. */
#include "util/sl_master.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "util/sl_log.h"

/* The mask the master had before it blocked its signals; the child
 * restores it in sl_master_child_ready(). */
static sigset_t child_mask;
static bool child_mask_pending;
static pid_t master_of_child; /* set in the child */
static unsigned restarts;     /* children that died and were replaced; a child inherits it */

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

void
sl_master_child_ready(void)
{
    if (!child_mask_pending)
        return;
    child_mask_pending = false;
    /* A change of credentials (setuid) clears the parent-death signal:
     * arm it again now that the child's start-up is over. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master_of_child)
        kill(getpid(), SIGTERM);        /* the master is gone: stop like it said */
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

static pid_t
master_fork(const struct sl_master_params *p, const sigset_t *old_mask, pid_t master_pid)
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0)
            sl_error("master: fork: %s", strerror(errno));
        else
            sl_info("master: %s child pid %ld started", p->label, (long)pid);
        return pid;
    }
    /* The child. If the master goes, stop (gracefully): a new master
     * started by systemd must be able to bind the port. getppid() closes
     * the race with a master that died before prctl(). */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master_pid)
        _exit(EX_SOFTWARE);
    child_mask = *old_mask;
    child_mask_pending = true;
    master_of_child = master_pid;
    exit(p->child_main(p->ctx));
}

static int
exit_status_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int
sl_master_run(const struct sl_master_params *p)
{
    const unsigned min_ms = p->backoff_min_ms ? p->backoff_min_ms : SL_MASTER_BACKOFF_MIN_MS;
    const unsigned max_ms = p->backoff_max_ms ? p->backoff_max_ms : SL_MASTER_BACKOFF_MAX_MS;
    const unsigned stable_ms = p->stable_ms ? p->stable_ms : SL_MASTER_STABLE_MS;
    const pid_t master_pid = getpid();
    sigset_t set, old_mask;
    unsigned backoff_ms = min_ms;
    unsigned long long started_ms, restart_at_ms = 0;
    bool stopping = false;
    pid_t child;

    /* Signals are taken synchronously (sigwaitinfo): no handlers, no
     * async-signal-safety to get wrong, and the wait for a restart is the
     * same call with a timeout. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SL_MASTER_STOP_SIGNAL); /* blocked in the child until it is ready */
    sigprocmask(SIG_BLOCK, &set, &old_mask);
    sl_info("master: pid %ld; the %s child is restarted if it dies", (long)master_pid, p->label);

    started_ms = sl_now_mono_ms();
    child = master_fork(p, &old_mask, master_pid);
    if (child < 0)
        restart_at_ms = started_ms + backoff_ms;
    for (;;) {
        siginfo_t si;
        int sig;

        if (child > 0) {
            sig = sigwaitinfo(&set, &si);
        } else {
            unsigned long long now = sl_now_mono_ms();
            if (now >= restart_at_ms) {
                started_ms = now;
                child = master_fork(p, &old_mask, master_pid);
                if (child < 0)
                    restart_at_ms = now + backoff_ms;
                continue;
            }
            unsigned long long wait_ms = restart_at_ms - now;
            struct timespec ts = {.tv_sec = (time_t)(wait_ms / 1000),
                                  .tv_nsec = (long)(wait_ms % 1000) * 1000000L};
            sig = sigtimedwait(&set, &si, &ts);
        }
        if (sig < 0)
            continue; /* EAGAIN: time to restart; EINTR: again */

        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (sig != SIGHUP)
                stopping = true;
            if (child <= 0) {
                if (stopping) {
                    sl_notice("master: %s while no child runs: stopped", strsignal(sig));
                    return 0;
                }
                continue;
            }
            /* Ctrl-C: the terminal signalled the whole process group, the
             * child included; it has its copy already. */
            if (si.si_code == SI_KERNEL)
                continue;
            /* A stop goes on as SL_MASTER_STOP_SIGNAL: the child then tells
             * our copy from the one it may have had itself (kill of the
             * process group, pkill), instead of counting two stops. */
            kill(child, sig == SIGHUP ? SIGHUP : SL_MASTER_STOP_SIGNAL);
            continue;
        }

        /* SIGCHLD */
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != child)
                continue;
            child = 0;
            int rc = exit_status_of(status);
            if (stopping) {
                sl_info("master: %s child pid %ld stopped (exit status %d)", p->label, (long)pid,
                        rc);
                return rc;
            }
            if (WIFEXITED(status) && (rc == EX_USAGE || rc == EX_CONFIG)) {
                sl_fatal("master: %s child pid %ld exited with status %d; a restart cannot "
                         "help",
                         p->label, (long)pid, rc);
                return rc;
            }
            unsigned long long now = sl_now_mono_ms();
            if (now - started_ms >= stable_ms)
                backoff_ms = min_ms; /* it ran long enough: not a crash loop */
            if (WIFSIGNALED(status))
                sl_warn("master: %s child pid %ld killed by signal %d (%s); restarting in "
                        "%u ms",
                        p->label, (long)pid, WTERMSIG(status), strsignal(WTERMSIG(status)),
                        backoff_ms);
            else
                sl_warn("master: %s child pid %ld exited with status %d; restarting in %u ms",
                        p->label, (long)pid, rc, backoff_ms);
            restart_at_ms = now + backoff_ms;
            backoff_ms = backoff_ms * 2 > max_ms ? max_ms : backoff_ms * 2;
            restarts++;
        }
    }
}
