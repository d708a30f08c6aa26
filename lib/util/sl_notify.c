/* sl_notify.c - readiness, status and liveness, to the master or systemd. */
#include "util/sl_notify.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include "util/sl_master.h"

static char last_status[512];

static void
notify(const char *msg)
{
    int chan = sl_master_child_channel();

    if (chan >= 0)
        /* A master that cannot take it now (its buffer full) misses one
         * message of many: never block the loop for it. */
        (void)send(chan, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
    else
        (void)sd_notify(0, msg);
}

void
sl_notify_ready(void)
{
    notify("READY=1");
}

void
sl_notify_stopping(void)
{
    notify("STOPPING=1");
}

void
sl_notify_alive(void)
{
    notify("WATCHDOG=1");
}

void
sl_notify_status(const char *fmt, ...)
{
    char msg[sizeof(last_status) + 8];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
    va_end(ap);
    if (strcmp(msg + 7, last_status) == 0)
        return;
    size_t len = strnlen(msg + 7, sizeof(last_status) - 1);
    memcpy(last_status, msg + 7, len);
    last_status[len] = '\0';
    memcpy(msg, "STATUS=", 7);
    notify(msg);
}

unsigned
sl_notify_interval_ms(void)
{
    uint64_t usec = 0;
    unsigned ms = sl_master_child_heartbeat_ms();

    if (ms > 0)
        return ms;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000)
        return (unsigned)(usec / 2000);
    const char *sock = getenv("NOTIFY_SOCKET");
    return sock != NULL && *sock != '\0' ? 5000 : 0;
}
