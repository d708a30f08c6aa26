/* session.c - one LMTP/SMTP conversation with an origin Postfix.
 *
 * The protocol follows amavisd-new on port 10024: LMTP (RFC 2033) or SMTP
 * (RFC 5321) on the same port, decided by LHLO versus EHLO/HELO;
 * PIPELINING (RFC 2920); SIZE (RFC 1870); 8BITMIME (RFC 6152); DSN
 * (RFC 3461) parameters carried through to the reinjection;
 * ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463); SMTPUTF8 (RFC 6531);
 * XFORWARD (Postfix XFORWARD_README). docs/protocol.md lists every reply
 * and why.
 *
 * This file is the conversation: reading and writing, timeouts, feeding
 * the parser (lib/mail/sl_smtp_parser, which does no I/O) and handing each
 * command to commands.c's table. At the final "." the transaction goes to
 * its job (job.h), which answers through session_on_job_done once the
 * origin's :10025 has answered: the rule everything here serves
 * (docs/design.md). If Postfix hangs up meanwhile, the job is told
 * (fe_job_detach) and decides whether anything may still be delivered.
 *
 * Hostile input is met here and in the parser:
 *   - bare CR/LF and NUL in a command line: 500, the line is dropped;
 *     in message data the parser normalises a bare LF to CRLF and makes a
 *     bare CR a space (as Postfix does), and the smuggling forms never end
 *     the data; NUL in data: 554, nothing is forwarded;
 *   - a command that RFC 2920 says must end a pipelined group (LHLO, EHLO,
 *     HELO, DATA, NOOP, VRFY, EXPN, BDAT, STARTTLS), followed by more input
 *     before our reply - notably message content sent before the 354 - is
 *     answered "554 5.5.0 Error: SMTP protocol synchronization" and the
 *     connection is closed without reading on, as Postfix >= 3.9 does
 *     (smtpd_forbid_unauth_pipelining); in a session without LHLO/EHLO,
 *     where PIPELINING was never offered, any command followed by more
 *     input is;
 *   - timeouts: frontend.timeout per read and per write (idle), and also
 *     for a whole command line however slowly it trickles in; a DATA phase
 *     must keep up SESSION_MIN_DATA_RATE, so one byte a minute cannot hold
 *     a session for ever (Postfix's smtpd_per_request_deadline and
 *     smtpd_min_data_rate); a session counts against its origin's
 *     concurrency only from the final "." on, so a slow one blocks nobody;
 *   - a client that does not read its replies: past SESSION_MAX_OUTPUT of
 *     unsent replies we stop reading its commands until it catches up. */
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <event2/buffer.h>

#include "bev_out.h"
#include "context.h"
#include "fe_metrics.h"
#include "origins.h"
#include "session_int.h"
#include "settings.h"
#include "util/sl_body.h"
#include "conf/sl_config.h"
#include "util/sl_log.h"

#define SESSION_HARD_ERROR_LIMIT 20         /* Postfix smtpd_hard_error_limit */
#define SESSION_MAX_COMMAND_LINE 4096       /* RFC 5321 says 512; XFORWARD can be longer */
#define SESSION_MAX_PENDING_WHILE_WAITING (64 * 1024)
#define SESSION_MIN_DATA_RATE 500           /* bytes/s, Postfix smtpd_min_data_rate */
#define SESSION_MAX_OUTPUT (256 * 1024)     /* unsent replies before we stop reading */
#define SESSION_SYNC_LOG_MAX 100            /* bytes of unexpected input logged */
#define SESSION_READ_BUF 16384              /* octets a recv(2) */
#define SESSION_READ_MORE (64 * 1024)       /* most read a turn during DATA */

static void session_free(struct session *s);
static void session_take_input(struct session *s, size_t got);
static void session_read_enable(struct session *s);
static void session_read_disable(struct session *s);
static void session_on_event(struct bufferevent *bev, short what, void *ctx);

/* ---------------------------------------------------------------- replies */

/* Replies are written from the loop once the current callback is done, in
 * one write(2) for all of them, straight to the socket (bev_out.h). */
static void
session_schedule_flush(struct session *s)
{
    if (s->flush_pending || (bufferevent_get_enabled(s->bev) & EV_WRITE))
        return;
    s->flush_pending = true;
    event_active(s->flush_ev, EV_WRITE, 0);
}

static void
session_vreply(struct session *s, const char *fmt, va_list ap)
{
    char line[SESSION_REPLY_MAX + 1];
    int n = vsnprintf(line, sizeof(line), fmt, ap);

    if (n < 0)
        n = 0;
    if ((size_t)n > SESSION_REPLY_MAX)
        n = SESSION_REPLY_MAX;   /* a quoted next-hop reply may be long: cut, never wrap */
    /* A reply must never carry a line break of its own (it would be read as
     * a second reply); quoted text from the next hop is flattened. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    struct evbuffer *out = bufferevent_get_output(s->bev);
    fe_metrics_reply(line);
    evbuffer_add(out, line, (size_t)n);
    evbuffer_add(out, "\r\n", 2);
    session_schedule_flush(s);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    session_vreply(s, fmt, ap);
    va_end(ap);
}

void
session_reply_all(struct session *s, const char *fmt, ...)
{
    char text[SESSION_REPLY_MAX + 1];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    size_t n = s->lmtp ? s->env.n_rcpts : 1;
    for (size_t i = 0; i < n; i++)
        session_reply(s, "%s", text);
}

void
session_close_after_reply(struct session *s)
{
    s->state = SESSION_CLOSING;
    session_read_disable(s);
    session_schedule_flush(s);  /* closes once the output is empty */
}

/* So a confused client cannot loop forever, as Postfix's
 * smtpd_hard_error_limit does. */
void
session_error(struct session *s)
{
    if (++s->errors >= SESSION_HARD_ERROR_LIMIT) {
        session_reply(s, "421 4.7.0 %s Error: too many errors", s->fe->hostname);
        sl_warn("[%s]:%u: too many errors, disconnecting", s->peer_ip, s->peer_port);
        session_close_after_reply(s);
    }
}

size_t
session_size_limit(const struct session *s)
{
    size_t max = s->config->frontend.max_message_size;
    size_t room = max / 2 < SESSION_SIZE_ROOM ? max / 2 : SESSION_SIZE_ROOM;

    return max - room;
}

/* --------------------------------------------------------- transactions */

/* XFORWARD attributes go too, as Postfix's smtpd resets them. */
void
session_reset_transaction(struct session *s)
{
    fe_envelope_clear(&s->env);
    sl_buf_free(&s->data);
    if (s->state != SESSION_INIT && s->state != SESSION_CLOSING)
        s->state = SESSION_READY;
}

/* Is the client still on the line? libevent may not have run our event
 * callback yet, so ask the socket: a readable EOF means Postfix gave up and
 * will retry the message, and delivering it now would make a duplicate. */
static bool
session_client_connected(void *ctx)
{
    struct session *s = ctx;
    char c;
    ssize_t n = recv(bufferevent_getfd(s->bev), &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n == 0)
        return false;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    return true;
}

/* The idle timeout is the read event's (session_read_enable); writes
 * always have one (session_new): a client that does not read its replies
 * is dropped. */
static void
session_set_idle_timeout(struct session *s, bool on)
{
    s->idle_timeout = on;
    if (event_pending(s->read_ev, EV_READ, NULL))
        session_read_enable(s); /* again, with the new timeout */
}

static void
session_arm_ms(struct session *s, unsigned long long ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->io_timer, &tv);
}

/* The next command line must be complete within frontend.timeout, however
 * it trickles in: the per-read timeout alone would let a client that sends
 * a byte every (timeout - 1) s hold its session for ever. Re-armed after
 * every command, not after every byte. */
static void
session_arm_command_deadline(struct session *s)
{
    session_arm_ms(s, (unsigned long long)s->config->frontend.timeout_s * 1000);
}

/* DATA, as Postfix 3.7's smtpd with smtpd_min_data_rate and per-request
 * deadlines: the phase starts with frontend.timeout to run; each read
 * spends the time since the one before and earns 1 s for every
 * SESSION_MIN_DATA_RATE bytes it brought, and what is left never exceeds
 * frontend.timeout. A client slower than the rate runs out of time (1
 * byte/s: after about frontend.timeout), and a burst first banks nothing
 * for a trickle after it; one at the rate or faster goes on, bounded by the
 * message size. The per-read timeout still applies. */
static void
session_start_data_deadline(struct session *s)
{
    s->data_deadline_ms =
        sl_now_mono_ms() + (unsigned long long)s->config->frontend.timeout_s * 1000;
    session_arm_command_deadline(s);
}

static void
session_extend_data_deadline(struct session *s, size_t bytes)
{
    unsigned long long now = sl_now_mono_ms();
    unsigned long long most = (unsigned long long)s->config->frontend.timeout_s * 1000;
    unsigned long long left = s->data_deadline_ms > now ? s->data_deadline_ms - now : 0;

    left += (unsigned long long)bytes * 1000 / SESSION_MIN_DATA_RATE;
    if (left > most)
        left = most;
    s->data_deadline_ms = now + left;
    session_arm_ms(s, left);
}

/* The job answered (job.h): replies in order, then on with any pipelined
 * input that arrived meanwhile. No replies: the client left during the
 * reinjection, which was aborted; the session goes too. */
static void
session_on_job_done(void *ctx, const char *const *replies, size_t n)
{
    struct session *s = ctx;

    s->job = NULL;
    if (replies == NULL) {
        session_free(s);
        return;
    }
    for (size_t i = 0; i < n; i++)
        session_reply(s, "%s", replies[i]);
    session_reset_transaction(s);
    if (s->fe->shutting_down) {
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      s->fe->hostname);
        session_close_after_reply(s);
        return;
    }
    session_set_idle_timeout(s, true);
    session_arm_command_deadline(s);
    session_read_enable(s);
    /* input that arrived while we waited (pipelined or held back) */
    session_take_input(s, 0);
}

void
session_hand_off(struct session *s, const char *job_id)
{
    /* Per-origin concurrency counts messages from here, the point where
     * one starts to use what the limit protects (a worker, a connection to
     * :10025) and to be Postfix's delivery in progress: a session that is
     * slow to send its message holds no slot from the others. Over the
     * limit the message gets a 4xx; the connection and the greeting never
     * do (Postfix would take that for a dead filter). */
    if (!fe_origin_take_slot(s->origin, s->peer_ip)) {
        session_reply_all(s,
                          "451 4.3.2 Too many concurrent sessions from this origin (limit %u), "
                          "try again later",
                          s->origin->slots->limit);
        sl_info("%s: from [%s]:%u: tempfailed: origin %s at its concurrency (%u)", job_id,
                s->peer_ip, s->peer_port, s->origin->slots->name, s->origin->slots->limit);
        session_reset_transaction(s);
        return;
    }

    size_t len;
    char *bytes = sl_buf_steal(&s->data, &len);
    struct sl_body *body = sl_body_new(bytes, len);
    struct fe_job_params p = {
        .id = job_id,
        .origin = s->origin,
        .settings = s->settings,
        .peer_ip = s->peer_ip,
        .peer_port = s->peer_port,
        .local_port = s->local_port,
        .helo = s->helo,
        .lmtp = s->lmtp,
        .env = &s->env,
        .body = body,
        .done = session_on_job_done,
        .connected = session_client_connected,
        .ctx = s,
    };

    evtimer_del(s->io_timer);
    s->state = SESSION_WAIT;
    session_set_idle_timeout(s, false); /* we hold the line; Postfix waits up to 1200 s */
    s->job = fe_job_start(s->fe, &p);
    sl_body_unref(&body);
}

/* ------------------------------------------------------------ the loop */

/* Did the client send anything after the command just parsed? Asks the
 * parser, libevent's buffer and the socket itself. Called before the
 * command's reply is even queued, so a client that waits for replies, as
 * RFC 2920 requires after these commands, cannot have sent anything yet. */
static bool
session_input_pending(struct session *s)
{
    if (sl_smtp_parser_pending(s->parser) > 0)
        return true;
    char c;
    return recv(bufferevent_getfd(s->bev), &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Commands pipelined where RFC 2920 forbids it. After DATA that is message
 * content sent before our 354, the classic way to make a server and a
 * filter disagree on where a message ends; after LHLO/EHLO it is a client
 * that did not wait for our extensions. Nothing more is read: the reply is
 * the one of Postfix >= 3.9 (smtpd_forbid_unauth_pipelining = yes) and the
 * connection closes, so no part of the unexpected input is ever acted on. */
static void
session_sync_error(struct session *s, const struct sl_smtp_cmd *cmd)
{
    char seen[SESSION_SYNC_LOG_MAX * 4 + 1];
    size_t n = 0;
    /* what the parser holds is what we show; escaped, for one log line */
    const char *pending = sl_smtp_parser_pending_data(s->parser);
    size_t len = sl_smtp_parser_pending(s->parser);
    for (size_t i = 0; i < len && i < SESSION_SYNC_LOG_MAX; i++) {
        unsigned char c = (unsigned char)pending[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            seen[n++] = (char)c;
        else
            n += (size_t)snprintf(seen + n, sizeof(seen) - n, "\\x%02x", c);
    }
    seen[n] = '\0';
    sl_warn("improper command pipelining after %s from [%s]:%u: %s", cmd->verb_text,
            s->peer_ip, s->peer_port, seen);
    session_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
    session_close_after_reply(s);
}

/* Runs parsed input until it is used up or the session must wait. */
static void
session_process(struct session *s)
{
    struct sl_smtp_cmd cmd;
    const char *error;
    int ret;

    while (s->state != SESSION_WAIT && s->state != SESSION_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SESSION_MAX_OUTPUT) {
            /* the client does not read its replies: neither do we read its
             * commands until it has (session_on_write resumes) */
            s->output_blocked = true;
            session_read_disable(s);
            break;
        }
        enum sl_smtp_error kind;
        ret = sl_smtp_parser_next(s->parser, &cmd, &kind, &error);
        if (ret == 0)
            break;
        if (ret < 0) {
            /* the client's fault: answer as lib/mail's table says for this
             * kind of bad line, and go on with the next line */
            const struct sl_smtp_error_reply *r = sl_smtp_error_reply(kind);
            session_reply(s, "%d %s %s", r->code, r->enhanced, r->text);
            session_error(s);
            continue;
        }
        if (session_cmd_must_end_group(s, &cmd) && session_input_pending(s)) {
            session_sync_error(s, &cmd);
            break;
        }
        enum session_state before = s->state;
        session_dispatch(s, &cmd);
        if (s->state == SESSION_DATA && before != SESSION_DATA)
            session_start_data_deadline(s);
        else if (s->state == SESSION_INIT || s->state == SESSION_READY ||
                 s->state == SESSION_MAIL)
            session_arm_command_deadline(s);
    }
}

/* ----------------------------------------------------- libevent glue */

/* The client's input goes from recv(2) straight into the parser, on the
 * session's own read event: a bufferevent would stage it in an evbuffer
 * and ask the kernel how much is waiting (ioctl FIONREAD) before every
 * read. The bufferevent keeps the writing (bev_out.h). */
static void
session_read_enable(struct session *s)
{
    struct timeval tv = {.tv_sec = s->config->frontend.timeout_s};

    event_add(s->read_ev, s->idle_timeout ? &tv : NULL);
}

static void
session_read_disable(struct session *s)
{
    event_del(s->read_ev);
}

/* What was read (got octets, 0: only what the parser held) is used. */
static void
session_take_input(struct session *s, size_t got)
{
    if (s->state == SESSION_DATA && got > 0)
        session_extend_data_deadline(s, got);
    if (s->state != SESSION_WAIT)
        session_process(s);
}

static void
session_on_readable(evutil_socket_t fd, short what, void *ctx)
{
    struct session *s = ctx;
    char buf[SESSION_READ_BUF];
    size_t got = 0;
    ssize_t n;

    if (what & EV_TIMEOUT) {
        session_on_event(s->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, s);
        return;
    }
    if (s->state == SESSION_WAIT &&
        sl_smtp_parser_pending(s->parser) > SESSION_MAX_PENDING_WHILE_WAITING) {
        /* A client that keeps talking while we hold its message gets no more
         * of our memory; it is read again once the message is answered. */
        session_read_disable(s);
        return;
    }
    /* During DATA, what a full read leaves on the socket is read in the
     * same turn, up to SESSION_READ_MORE. EOF and errors after some input
     * are the next turn's. */
    do {
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            sl_smtp_parser_feed(s->parser, buf, (size_t)n);
            got += (size_t)n;
        }
    } while (n == (ssize_t)sizeof(buf) && s->state == SESSION_DATA && got < SESSION_READ_MORE);
    if (got == 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        session_on_event(s->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), s);
        return;
    }
    session_take_input(s, got);
}

static void
session_on_write(struct bufferevent *bev, void *ctx)
{
    struct session *s = ctx;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);  /* written: back to session_on_flush */
    if (s->state == SESSION_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        session_free(s);
        return;
    }
    if (s->output_blocked && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        /* the client caught up with its replies: on with its commands */
        s->output_blocked = false;
        if (s->state != SESSION_WAIT)
            session_read_enable(s);
        session_take_input(s, 0);
    }
}

static void
session_on_flush(evutil_socket_t fd, short what, void *ctx)
{
    struct session *s = ctx;

    (void)fd;
    (void)what;
    s->flush_pending = false;
    /* not all written: the bufferevent writes the rest (session_on_write)
     * or reports the error (the write timeout, session_on_event) */
    if (fe_bev_write_out(s->bev))
        session_on_write(s->bev, s);
}

/* Idle (per read), command or DATA deadline passed: RFC 5321 4.5.3.2
 * timeouts end the session with 421; what was received of a message is
 * dropped, nothing is forwarded, the concurrency slot is freed. */
static void
session_timeout(struct session *s)
{
    if (s->state == SESSION_CLOSING) {
        /* even the last reply could not be written in time */
        session_free(s);
        return;
    }
    sl_info("timeout after %s from [%s]:%u%s", s->state == SESSION_DATA ? "DATA" : "command",
            s->peer_ip, s->peer_port,
            s->state == SESSION_DATA ? "; message dropped, not forwarded" : "");
    session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->fe->hostname);
    session_close_after_reply(s);
    /* if the 421 cannot be written either, the next firing drops the line */
    session_arm_command_deadline(s);
}

static void
session_on_io_timer(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd;
    (void)what;
    session_timeout(ctx);
}

static void
session_on_event(struct bufferevent *bev, short what, void *ctx)
{
    struct session *s = ctx;
    (void)bev;

    if (what & BEV_EVENT_TIMEOUT) {
        /* a write timeout means the peer does not read: drop it at once */
        if ((what & BEV_EVENT_WRITING) || s->state == SESSION_CLOSING) {
            sl_info("timeout writing to [%s]:%u; connection dropped", s->peer_ip, s->peer_port);
            session_free(s);
            return;
        }
        session_timeout(s);
        return;
    }
    /* EOF or error: the client is gone (a job in flight is told in
     * session_free: it decides what may still be delivered) */
    if (s->state == SESSION_DATA)
        sl_info("lost connection after DATA from [%s]:%u; message dropped, not forwarded",
                s->peer_ip, s->peer_port);
    session_free(s);
}

static void
session_free(struct session *s)
{
    struct fe_context *fe = s->fe;

    fe_job_detach(&s->job);
    event_free(s->io_timer);
    event_free(s->flush_ev);
    event_free(s->read_ev);
    session_reset_transaction(s);
    fe_settings_unref(&s->settings); /* after the slot went back into its table */
    free(s->env.rcpts);
    bufferevent_free(s->bev);
    sl_smtp_parser_destroy(&s->parser);
    free(s->helo);
    if (s->prev)
        s->prev->next = s->next;
    else
        fe->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    fe->n_sessions--;
    free(s);
    if (fe->on_idle != NULL)
        fe->on_idle(fe);
}

void
session_new(struct fe_context *fe, evutil_socket_t fd, const char *peer_ip, unsigned peer_port,
            struct fe_origin *origin, unsigned local_port)
{
    struct session *s = sl_calloc(1, sizeof(*s));
    struct sl_smtp_limits lim = {.max_command_line = SESSION_MAX_COMMAND_LINE};
    int one = 1;

    /* replies are small and the client waits for each batch: no Nagle delay */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->fe = fe;
    s->settings = fe_settings_ref(fe->settings);
    s->config = s->settings->config;
    lim.max_message_size = session_size_limit(s);
    snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer_ip);
    s->peer_port = peer_port;
    s->local_port = local_port;
    s->origin = origin;
    s->parser = sl_smtp_parser_new(&lim);
    sl_buf_init(&s->data);
    s->bev = bufferevent_socket_new(fe->base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->io_timer = evtimer_new(fe->base, session_on_io_timer, s);
    s->flush_ev = event_new(fe->base, -1, 0, session_on_flush, s);
    s->read_ev = event_new(fe->base, fd, EV_READ | EV_PERSIST, session_on_readable, s);
    SL_BUG_ON(s->bev == NULL || s->io_timer == NULL || s->flush_ev == NULL || s->read_ev == NULL);
    bufferevent_setcb(s->bev, NULL, session_on_write, session_on_event, s);
    bufferevent_set_timeouts(s->bev, NULL,
                             &(struct timeval){.tv_sec = s->config->frontend.timeout_s});
    session_set_idle_timeout(s, true);
    session_arm_command_deadline(s);
    /* EV_WRITE (on by default) only when the socket is full: session_on_flush */
    bufferevent_disable(s->bev, EV_WRITE);
    session_read_enable(s);

    s->next = fe->sessions;
    if (fe->sessions)
        fe->sessions->prev = s;
    fe->sessions = s;
    fe->n_sessions++;

    sl_debug("connect from [%s]:%u (origin %s)", peer_ip, peer_port, origin->config->name);
    /* Never refuse the greeting, even over the origin's limit: Postfix would
     * take a refused greeting as a dead filter (docs/postfix.md). */
    session_reply(s, "220 %s ESMTP sluice service ready", fe->hostname);
}

void
session_shutdown_all(struct fe_context *fe)
{
    for (struct session *s = fe->sessions; s; s = s->next) {
        if (s->state == SESSION_WAIT || s->state == SESSION_CLOSING)
            continue;    /* a message in flight finishes; its session closes after */
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      fe->hostname);
        session_close_after_reply(s);
    }
}

void
session_destroy_all(struct fe_context *fe)
{
    while (fe->sessions)
        session_free(fe->sessions);
}
