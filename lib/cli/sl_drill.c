/* sl_drill.c - `sluice drill`: the LMTP client that plays an origin
 * Postfix, the schedule, the progress line and the report (sl_drill.h).
 *
 * One libevent loop, no threads:
 *
 *   rate tick ──releases──▶ ready queue ──▶ session (LMTP, kept open and reused)
 *        ▲                                     │ 2xx/5xx per recipient: final
 *        └──── retry timer (1, 2, 4, 8, 10 s) ◀┘ 4xx, lost connection, timeout
 *
 * The client behaves as Postfix's lmtp(8) does towards a content filter,
 * because that is what the frontends must survive: a session is opened for
 * a message and kept for the next ones (Postfix's connection cache, closed
 * after 2 s idle); LHLO, XFORWARD (when offered: with a queue id that is
 * the same on every retry of a message, so the exactly-once ledger can
 * recognise the retry), MAIL, RCPT and DATA pipelined when PIPELINING is
 * offered, one reply per accepted recipient after the final "."; a failed
 * connect, greeting or LHLO, a 4xx, a lost connection or a timeout defers
 * the message (its recipients still without a final reply) and it is sent
 * again later, as Postfix's queue manager would, only sooner. Every
 * message is the same bytes on every try. Sessions go round-robin over the
 * --via targets, so a dead frontend costs a deferral, and the retry goes to
 * the next one (lmtp_fallback_relay's effect).
 *
 * The run ends when every message has its final reply (or gave up: no
 * more attempts, or --timeout) and every accepted copy arrived at the sink
 * (or --grace ran out), plus a second for late copies; SIGINT or SIGTERM
 * ends the sending early (the report still comes), a second one ends the
 * drill at once. */
#include "cli/sl_drill.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "cli/sl_cli.h"
#include "mail/sl_smtp_reply.h"
#include "util/sl_addr.h"
#include "util/sl_buf.h"
#include "util/sl_id.h"

#define DRILL_CONNECT_TIMEOUT_S 30 /* connect, greeting and LHLO */
#define DRILL_IDLE_MS 2000         /* Postfix's smtp_connection_cache_time_limit */
#define DRILL_BACKOFF_FIRST_MS 1000
#define DRILL_BACKOFF_MAX_MS 10000
#define DRILL_TICK_MS 10
#define DRILL_LINGER_MS 1000 /* after the last copy, for late duplicates */
#define DRILL_SENDER "drill@" SL_DRILL_DOMAIN

struct drill_opts {
    char **via; /* HOST:PORT, at least one */
    size_t n_via;
    const char *sink;
    const char *bind; /* source address, Postfix's lmtp_bind_address */
    unsigned count, rcpts, sessions, attempts;
    double rate; /* messages a second, 0: as fast as the sessions go */
    unsigned size;
    unsigned timeout_s, grace_s, reply_timeout_s;
    bool json, quiet, fail_on_duplicates;
};

struct target {
    const char *name; /* as given */
    struct sockaddr_storage sa;
    socklen_t len;
};

enum session_state {
    S_CONNECT, /* connecting, then the greeting */
    S_LHLO,
    S_IDLE, /* connection cache */
    S_XFORWARD,
    S_TXN, /* MAIL, RCPT..., DATA replies */
    S_DOT, /* the message sent, one reply per accepted recipient */
    S_RSET,
};

struct session {
    struct drill *d;
    struct bufferevent *bev;
    struct sl_smtp_reply_parser *rp;
    const struct target *target;
    struct event *idle;
    enum session_state state;
    bool pipelining;
    char xforward[80]; /* the XFORWARD attributes offered, " NAME ADDR ..." */
    /* the message in hand */
    bool busy;
    unsigned seq;
    unsigned rcpts[SL_DRILL_MAX_RCPTS]; /* recipients of this attempt */
    int rcpt_code[SL_DRILL_MAX_RCPTS];  /* their RCPT replies */
    unsigned n_rcpts;
    unsigned n_sent, n_replied; /* of MAIL, RCPT..., DATA */
    int mail_code;
    unsigned n_ok;  /* RCPTs with 2xx */
    unsigned n_dot; /* replies after "." so far */
    TAILQ_ENTRY(session) entry;
};

struct drill_msg {
    struct drill *d;
    unsigned seq;
    unsigned attempts;
    bool final;          /* answered, or given up */
    struct event *retry; /* while deferred */
};

enum phase { PHASE_SEND, PHASE_DRAIN };

struct drill {
    const struct drill_opts *o;
    struct event_base *base;
    struct sl_drill_tally *tally;
    struct sl_drill_sink *sink;
    char runid[SL_ID_LEN + 1];
    char date[64]; /* the Date: of every message: the same bytes on every try */
    struct target *targets;
    size_t next_target;
    struct sockaddr_storage bind_sa;
    socklen_t bind_len;
    TAILQ_HEAD(, session) sessions;
    TAILQ_HEAD(, session) dead; /* closed, to be freed by the pump */
    unsigned n_sessions;
    struct drill_msg *msgs;
    unsigned *ready; /* FIFO ring of message numbers, count long */
    size_t ready_head, ready_len;
    unsigned released, n_final;
    enum phase phase;
    unsigned long long t0, deadline, drain_until, all_delivered_at, last_progress;
    struct event *tick, *pump, *sigs[2];
    unsigned stops;
    bool tty;
};

static void session_close(struct session *s, const char *why);
static void drill_drain(struct drill *d, const char *why);

/* Milliseconds since the drill started. */
static unsigned long long
now_ms(const struct drill *d)
{
    return sl_now_mono_ms() - d->t0;
}

/* Hands messages to sessions from the loop, never from inside a session's
 * own callback (which may be closing it). */
static void
pump_later(struct drill *d)
{
    event_active(d->pump, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------ messages */

static void
ready_push(struct drill *d, unsigned seq)
{
    SL_BUG_ON(d->ready_len >= d->o->count);
    d->ready[(d->ready_head + d->ready_len++) % d->o->count] = seq;
    pump_later(d);
}

static unsigned
ready_pop(struct drill *d)
{
    unsigned seq = d->ready[d->ready_head];

    SL_BUG_ON(d->ready_len == 0);
    d->ready_head = (d->ready_head + 1) % d->o->count;
    d->ready_len--;
    return seq;
}

static void
msg_final(struct drill *d, unsigned seq)
{
    SL_BUG_ON(d->msgs[seq].final);
    d->msgs[seq].final = true;
    d->n_final++;
}

static void
on_retry(evutil_socket_t fd, short what, void *ctx)
{
    struct drill_msg *m = ctx;

    (void)fd;
    (void)what;
    event_free(m->retry);
    m->retry = NULL;
    ready_push(m->d, m->seq);
}

/* After an attempt: final, or deferred and tried again later (Postfix's
 * backoff, small), unless the attempts or the time have run out. */
static void
msg_after_attempt(struct drill *d, unsigned seq)
{
    struct drill_msg *m = &d->msgs[seq];
    unsigned long long backoff = DRILL_BACKOFF_FIRST_MS;

    if (sl_drill_tally_final(d->tally, seq)) {
        msg_final(d, seq);
        return;
    }
    sl_drill_tally_deferred(d->tally, seq);
    for (unsigned i = 1; i < m->attempts && backoff < DRILL_BACKOFF_MAX_MS; i++)
        backoff *= 2;
    if (backoff > DRILL_BACKOFF_MAX_MS)
        backoff = DRILL_BACKOFF_MAX_MS;
    if (m->attempts >= d->o->attempts || d->phase != PHASE_SEND ||
        now_ms(d) + backoff >= d->deadline) {
        msg_final(d, seq); /* given up: "unfinished" in the report */
        return;
    }
    struct timeval tv = {(time_t)(backoff / 1000), (suseconds_t)(backoff % 1000) * 1000};
    m->retry = evtimer_new(d->base, on_retry, m);
    evtimer_add(m->retry, &tv);
}

/* Message seq as sent: the same bytes on every try (the ledger's key is
 * made of them), CRLF line ends, no line starting with "." (nothing to
 * stuff), filled up to --size. */
static void
msg_write(const struct drill *d, unsigned seq, struct sl_buf *out)
{
    size_t start = out->len, line = 0;

    sl_buf_printf(out, "Date: %s\r\nFrom: <" DRILL_SENDER ">\r\nTo: ", d->date);
    for (unsigned r = 0; r < d->o->rcpts; r++)
        sl_buf_printf(out, "%s<rcpt%u@" SL_DRILL_DOMAIN ">", r ? ",\r\n " : "", r + 1);
    sl_buf_printf(out,
                  "\r\nSubject: sluice drill %s message %u\r\n"
                  "Message-ID: <drill-%s-%u@" SL_DRILL_DOMAIN ">\r\n\r\n",
                  d->runid, seq, d->runid, seq);
    while (out->len - start < d->o->size) {
        size_t room = d->o->size - (out->len - start);
        char text[80];
        int n = snprintf(text, sizeof(text), "drill %s message %u line %zu %s", d->runid, seq,
                         ++line, "abcdefghijklmnopqrstuvwxyz0123456789");
        if ((size_t)n + 2 > room) /* the last line: as long as what is left */
            n = room > 2 ? (int)(room - 2) : 0;
        sl_buf_append(out, text, (size_t)n);
        sl_buf_append_str(out, "\r\n");
    }
}

/* ------------------------------------------------------------ sessions */

static void
session_write(struct session *s, const char *data, size_t len)
{
    bufferevent_write(s->bev, data, len);
}

static void
session_idle(struct session *s)
{
    struct timeval tv = {DRILL_IDLE_MS / 1000, (DRILL_IDLE_MS % 1000) * 1000};

    s->busy = false;
    s->state = S_IDLE;
    bufferevent_set_timeouts(s->bev, NULL, NULL); /* the idle timer's job now */
    evtimer_add(s->idle, &tv);
    pump_later(s->d);
}

/* The commands of one attempt, numbered: 0 MAIL, 1..n RCPT, n+1 DATA. */
static void
txn_command(const struct session *s, unsigned i, struct sl_buf *out)
{
    if (i == 0)
        sl_buf_printf(out, "MAIL FROM:<" DRILL_SENDER "> SIZE=%u\r\n", s->d->o->size);
    else if (i <= s->n_rcpts)
        sl_buf_printf(out, "RCPT TO:<rcpt%u@" SL_DRILL_DOMAIN ">\r\n", s->rcpts[i - 1] + 1);
    else
        sl_buf_append_str(out, "DATA\r\n");
}

/* With PIPELINING everything at once (RFC 2920: DATA is the last of a
 * group), else the next command once the previous one is answered. */
static void
txn_send_more(struct session *s)
{
    struct sl_buf out;
    unsigned n_cmds = s->n_rcpts + 2;

    if (s->n_sent != s->n_replied && !s->pipelining)
        return;
    sl_buf_init(&out);
    do
        txn_command(s, s->n_sent++, &out);
    while (s->pipelining && s->n_sent < n_cmds);
    session_write(s, out.data, out.len);
    sl_buf_free(&out);
}

static void
txn_begin(struct session *s)
{
    s->state = S_TXN;
    s->n_sent = s->n_replied = s->n_ok = s->n_dot = 0;
    s->mail_code = 0;
    txn_send_more(s);
}

/* An attempt of message seq begins on s (it may still be connecting: a
 * failed connect is a failed attempt, as for Postfix). */
static void
attempt_begin(struct session *s, unsigned seq)
{
    struct drill *d = s->d;

    s->busy = true;
    s->seq = seq;
    s->n_rcpts = 0;
    for (unsigned r = 0; r < d->o->rcpts; r++)
        if (sl_drill_tally_rcpt(d->tally, seq, r) == SL_DRILL_PENDING)
            s->rcpts[s->n_rcpts++] = r;
    SL_BUG_ON(s->n_rcpts == 0); /* a message with every answer is final */
    d->msgs[seq].attempts++;
    sl_drill_tally_attempt(d->tally, seq, now_ms(d));
}

/* The attempt's dialogue, on a session past LHLO: XFORWARD when offered,
 * then the transaction. */
static void
attempt_send(struct session *s)
{
    struct drill *d = s->d;
    struct timeval tv = {d->o->reply_timeout_s, 0};
    /* the original client as Postfix passes it on */
    static const char *const attrs[][2] = {
        {"NAME", SL_DRILL_DOMAIN}, {"ADDR", "192.0.2.1"}, {"PROTO", "ESMTP"},
        {"HELO", SL_DRILL_DOMAIN}, {"SOURCE", "REMOTE"},
    };
    struct sl_buf line;
    char pattern[16];

    bufferevent_set_timeouts(s->bev, &tv, &tv);
    if (s->xforward[0] == '\0') {
        txn_begin(s);
        return;
    }
    sl_buf_init(&line);
    sl_buf_append_str(&line, "XFORWARD");
    for (size_t i = 0; i < SL_N_ELEMENTS(attrs); i++) {
        snprintf(pattern, sizeof(pattern), " %s ", attrs[i][0]);
        if (strstr(s->xforward, pattern))
            sl_buf_printf(&line, " %s=%s", attrs[i][0], attrs[i][1]);
    }
    /* a queue id that stays the message's own across retries: the
     * exactly-once ledger keys on it, as on Postfix's */
    if (strstr(s->xforward, " IDENT "))
        sl_buf_printf(&line, " IDENT=%s.%u", d->runid, s->seq);
    sl_buf_append_str(&line, "\r\n");
    s->state = S_XFORWARD;
    session_write(s, line.data, line.len);
    sl_buf_free(&line);
}

/* Starts message seq on an idle session of the cache. */
static void
session_start(struct session *s, unsigned seq)
{
    evtimer_del(s->idle);
    attempt_begin(s, seq);
    attempt_send(s);
}

/* The attempt is over: its recipients' replies are in the tally. */
static void
txn_end(struct session *s)
{
    s->busy = false;
    msg_after_attempt(s->d, s->seq);
}

/* No DATA this time (MAIL refused, no recipient accepted, DATA refused):
 * each recipient gets the reply that stopped it, then RSET. */
static void
txn_no_data(struct session *s, int data_code)
{
    struct drill *d = s->d;
    unsigned long long now = now_ms(d);

    for (unsigned i = 0; i < s->n_rcpts; i++) {
        int code = s->mail_code / 100 != 2      ? s->mail_code
                   : s->rcpt_code[i] / 100 != 2 ? s->rcpt_code[i]
                                                : data_code;
        sl_drill_tally_reply(d->tally, s->seq, s->rcpts[i], code, now);
    }
    txn_end(s);
    s->state = S_RSET;
    session_write(s, "RSET\r\n", 6);
}

static void
txn_on_reply(struct session *s, const struct sl_smtp_reply *r)
{
    unsigned i = s->n_replied++, n_cmds = s->n_rcpts + 2;

    if (i == 0) {
        s->mail_code = r->code;
    } else if (i <= s->n_rcpts) {
        s->rcpt_code[i - 1] = r->code;
        s->n_ok += r->code / 100 == 2;
    } else if (r->code == 354 && s->n_ok > 0) {
        struct sl_buf msg;
        sl_buf_init(&msg);
        msg_write(s->d, s->seq, &msg);
        sl_buf_append_str(&msg, ".\r\n");
        s->state = S_DOT;
        session_write(s, msg.data, msg.len);
        sl_buf_free(&msg);
        return;
    } else if (r->code == 354) { /* DATA accepted without a recipient */
        session_close(s, "354 after no accepted recipient");
        return;
    } else {
        txn_no_data(s, r->code);
        return;
    }
    if (s->pipelining)
        return;
    /* one at a time: stop early as Postfix does */
    if ((i == 0 && s->mail_code / 100 != 2) || (i == s->n_rcpts && s->n_ok == 0)) {
        s->n_replied = n_cmds;
        txn_no_data(s, 0);
        return;
    }
    txn_send_more(s);
}

/* After ".": one reply per accepted recipient, in RCPT order (RFC 2033
 * 4.2), each recorded at once (a connection lost now keeps the ones in). */
static void
dot_on_reply(struct session *s, const struct sl_smtp_reply *r)
{
    struct drill *d = s->d;
    unsigned long long now = now_ms(d);
    unsigned k = 0;

    for (unsigned i = 0; i < s->n_rcpts; i++) {
        if (s->rcpt_code[i] / 100 != 2)
            continue;
        if (k++ == s->n_dot) {
            sl_drill_tally_reply(d->tally, s->seq, s->rcpts[i], r->code, now);
            break;
        }
    }
    if (++s->n_dot < s->n_ok)
        return;
    for (unsigned i = 0; i < s->n_rcpts; i++)
        if (s->rcpt_code[i] / 100 != 2)
            sl_drill_tally_reply(d->tally, s->seq, s->rcpts[i], s->rcpt_code[i], now);
    txn_end(s);
    session_idle(s);
}

/* LHLO's keywords: PIPELINING, XFORWARD and its attributes. */
static void
lhlo_on_reply(struct session *s, const struct sl_smtp_reply *r)
{
    s->pipelining = false;
    s->xforward[0] = '\0';
    for (size_t i = 1; i < r->n_lines; i++) {
        const char *kw = r->lines[i];
        if (strcasecmp(kw, "PIPELINING") == 0)
            s->pipelining = true;
        else if (strncasecmp(kw, "XFORWARD ", 9) == 0)
            snprintf(s->xforward, sizeof(s->xforward), "%s ", kw + 8); /* " NAME ADDR ... " */
    }
}

static void
session_on_reply(struct session *s, const struct sl_smtp_reply *r)
{
    switch (s->state) {
    case S_CONNECT:
        if (r->code != 220) {
            session_close(s, "greeting not 220");
            return;
        }
        s->state = S_LHLO;
        session_write(s, "LHLO " SL_DRILL_DOMAIN "\r\n", 7 + strlen(SL_DRILL_DOMAIN));
        return;
    case S_LHLO:
        if (r->code / 100 != 2) {
            session_close(s, "LHLO refused");
            return;
        }
        lhlo_on_reply(s, r);
        attempt_send(s); /* a session is opened for a message */
        return;
    case S_XFORWARD:
        if (r->code / 100 != 2) {
            /* the transaction never started: try the message later */
            txn_end(s);
            session_idle(s);
            return;
        }
        txn_begin(s);
        return;
    case S_TXN:
        txn_on_reply(s, r);
        return;
    case S_DOT:
        dot_on_reply(s, r);
        return;
    case S_RSET:
        if (r->code / 100 != 2) {
            session_close(s, "RSET refused");
            return;
        }
        session_idle(s);
        return;
    case S_IDLE:
        session_close(s, "unexpected reply while idle"); /* a 421 before closing */
        return;
    }
}

static void
session_on_read(struct bufferevent *bev, void *ctx)
{
    struct session *s = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    struct sl_smtp_reply r;
    const char *error;
    int ret;

    sl_smtp_reply_parser_feed(s->rp, evbuffer_pullup(in, -1), n);
    evbuffer_drain(in, n);
    while (s->bev != NULL && (ret = sl_smtp_reply_parser_next(s->rp, &r, &error)) != 0) {
        if (ret < 0) {
            session_close(s, error);
            return;
        }
        session_on_reply(s, &r);
        sl_smtp_reply_free(&r);
    }
}

static void
session_on_event(struct bufferevent *bev, short what, void *ctx)
{
    struct session *s = ctx;
    struct timeval tv = {DRILL_CONNECT_TIMEOUT_S, 0};

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        bufferevent_set_timeouts(s->bev, &tv, &tv); /* for the greeting */
        return;
    }
    session_close(s, (what & BEV_EVENT_TIMEOUT) ? "timed out"
                     : (what & BEV_EVENT_EOF)
                         ? "connection closed"
                         : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
session_on_idle(evutil_socket_t fd, short what, void *ctx)
{
    struct session *s = ctx;

    (void)fd;
    (void)what;
    /* as Postfix leaves a cached connection; the 221 is not waited for */
    (void)!send(bufferevent_getfd(s->bev), "QUIT\r\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
    session_close(s, NULL);
}

/* A new session, opened to carry message seq (round-robin over --via). */
static void
session_open(struct drill *d, unsigned seq)
{
    struct session *s = sl_calloc(1, sizeof(*s));
    struct timeval tv = {DRILL_CONNECT_TIMEOUT_S, 0};
    evutil_socket_t fd = -1;

    s->d = d;
    s->target = &d->targets[d->next_target++ % d->o->n_via];
    s->rp = sl_smtp_reply_parser_new();
    s->idle = evtimer_new(d->base, session_on_idle, s);
    if (d->bind_len) {
        /* from the origin's own address, as lmtp_bind_address does */
        fd = socket(s->target->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&d->bind_sa, d->bind_len) != 0) {
            evutil_closesocket(fd);
            fd = -1;
        }
    }
    s->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->bev, session_on_read, NULL, session_on_event, s);
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    TAILQ_INSERT_TAIL(&d->sessions, s, entry);
    d->n_sessions++;
    s->state = S_CONNECT;
    attempt_begin(s, seq);
    if (d->bind_len && fd < 0)
        session_close(s, "cannot bind --bind");
    else if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&s->target->sa,
                                        (int)s->target->len) < 0)
        session_close(s, "cannot connect");
}

/* Closes s; its message, if any, is deferred (or final). The struct waits
 * on the dead list and is freed by the pump, from the loop: the callback
 * that closed it may still look at it (s->bev == NULL: closed). */
static void
session_close(struct session *s, const char *why)
{
    struct drill *d = s->d;

    (void)why;
    if (s->bev == NULL)
        return;
    bufferevent_free(s->bev);
    s->bev = NULL;
    event_free(s->idle);
    s->idle = NULL;
    sl_smtp_reply_parser_destroy(&s->rp);
    TAILQ_REMOVE(&d->sessions, s, entry);
    d->n_sessions--;
    TAILQ_INSERT_TAIL(&d->dead, s, entry);
    if (s->busy)
        txn_end(s);
    pump_later(d);
}

/* Gives ready messages to idle sessions, opening new ones up to --sessions. */
static void
on_pump(evutil_socket_t fd, short what, void *ctx)
{
    struct drill *d = ctx;
    struct session *s;

    (void)fd;
    (void)what;
    while ((s = TAILQ_FIRST(&d->dead)) != NULL) {
        TAILQ_REMOVE(&d->dead, s, entry);
        free(s);
    }
    while (d->phase == PHASE_SEND && d->ready_len > 0) {
        TAILQ_FOREACH(s, &d->sessions, entry)
        if (s->state == S_IDLE && !s->busy)
            break;
        if (s != NULL)
            session_start(s, ready_pop(d));
        else if (d->n_sessions < d->o->sessions)
            session_open(d, ready_pop(d));
        else
            break;
    }
}

/* ------------------------------------------------------------ the run */

static void
progress_line(struct drill *d, bool last)
{
    struct sl_drill_progress p;
    unsigned long long t = now_ms(d);

    if (d->o->quiet)
        return;
    sl_drill_tally_progress(d->tally, &p);
    fprintf(stderr,
            "%sdrill: %3llu.%llu s  sent %lu/%u  accepted %lu  delivered %lu  tempfails %lu  "
            "sessions %u%s%s",
            d->tty ? "\r" : "", t / 1000, t % 1000 / 100, p.sent, d->o->count, p.accepted,
            p.delivered, p.tempfails, d->n_sessions,
            d->phase == PHASE_DRAIN ? "  (waiting for copies)" : "",
            d->tty && !last ? "\033[K" : "\n");
    if (d->tty && last)
        fputs("\n", stderr);
    fflush(stderr);
}

/* Sending is over (every message answered, --timeout, or a signal): the
 * sessions close, messages still waiting give up, and the copies accepted
 * have until --grace to arrive. */
static void
drill_drain(struct drill *d, const char *why)
{
    struct session *s;

    if (d->phase == PHASE_DRAIN)
        return;
    d->phase = PHASE_DRAIN;
    d->drain_until = now_ms(d) + (unsigned long long)d->o->grace_s * 1000;
    while ((s = TAILQ_FIRST(&d->sessions)) != NULL) {
        if (s->state == S_IDLE)
            (void)!send(bufferevent_getfd(s->bev), "QUIT\r\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
        session_close(s, why);
    }
    for (unsigned seq = 0; seq < d->released; seq++) {
        if (d->msgs[seq].final)
            continue;
        if (d->msgs[seq].retry) {
            event_free(d->msgs[seq].retry);
            d->msgs[seq].retry = NULL;
        }
        msg_final(d, seq); /* queued or waiting to retry: unfinished */
    }
    d->ready_len = 0;
    if (!d->o->quiet) {
        if (d->tty)
            fputs("\n", stderr); /* keep the progress line above */
        fprintf(stderr, "drill: sending ended (%s); waiting up to %u s for the copies\n", why,
                d->o->grace_s);
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *ctx)
{
    struct drill *d = ctx;
    unsigned long long t = now_ms(d);

    (void)fd;
    (void)what;
    if (d->phase == PHASE_SEND) {
        /* the rate: message n is due at n / rate seconds */
        unsigned long long due = d->o->rate > 0
                                     ? 1 + (unsigned long long)((double)t * d->o->rate / 1000.0)
                                     : d->o->count;
        while (d->released < d->o->count && d->released < due)
            ready_push(d, d->released++);
        if (d->released == d->o->count && d->n_final == d->o->count)
            drill_drain(d, "every message answered");
        else if (t >= d->deadline)
            drill_drain(d, "--timeout");
    }
    if (d->phase == PHASE_DRAIN) {
        if (!sl_drill_tally_all_delivered(d->tally))
            d->all_delivered_at = 0;
        else if (d->all_delivered_at == 0)
            d->all_delivered_at = t;
        if ((d->all_delivered_at && t >= d->all_delivered_at + DRILL_LINGER_MS) ||
            t >= d->drain_until) {
            event_base_loopbreak(d->base);
            return;
        }
    }
    if (t >= d->last_progress + 1000) {
        d->last_progress = t - t % 1000;
        progress_line(d, false);
    }
}

static void
on_signal(evutil_socket_t sig, short what, void *ctx)
{
    struct drill *d = ctx;

    (void)what;
    if (d->stops++ == 0) {
        drill_drain(d, sig == SIGINT ? "interrupted" : "terminated");
        return;
    }
    event_base_loopbreak(d->base); /* the second one: at once */
}

/* ------------------------------------------------------------ report */

static int
report(struct drill *d)
{
    const struct drill_opts *o = d->o;
    struct sl_drill_summary sum;
    int rc;

    sl_drill_tally_summary(d->tally, &sum);
    if (o->json) {
        printf("{\"sent\": %lu, \"accepted\": %lu, \"delivered\": %lu, \"lost\": %lu, "
               "\"duplicates\": %lu, \"tempfails\": %lu, \"p50_ms\": %llu, \"p99_ms\": %llu}\n",
               sum.sent, sum.accepted, sum.delivered, sum.lost, sum.duplicates, sum.tempfails,
               sum.p50_ms, sum.p99_ms);
    } else {
        printf("drill %s: %u message(s) x %u recipient(s), %u bytes, ", d->runid, o->count,
               o->rcpts, o->size);
        if (o->rate > 0)
            printf("%g/s", o->rate);
        else
            printf("unpaced");
        printf(", %u session(s) via", o->sessions);
        for (size_t i = 0; i < o->n_via; i++)
            printf("%s%s", i ? "," : " ", o->via[i]);
        printf("; sink %s; %.1f s\n", o->sink, (double)now_ms(d) / 1000.0);
        printf("sent        %lu\n"
               "accepted    %lu\n"
               "delivered   %lu\n"
               "lost        %lu\n"
               "duplicates  %lu\n"
               "tempfails   %lu\n"
               "latency     p50 %llu ms, p99 %llu ms (first attempt to acceptance)\n",
               sum.sent, sum.accepted, sum.delivered, sum.lost, sum.duplicates, sum.tempfails,
               sum.p50_ms, sum.p99_ms);
        if (sum.rejected || sum.unfinished || sum.foreign)
            printf("not accepted: %lu rejected (5xx), %lu unfinished; %lu copies of other "
                   "messages at the sink\n",
                   sum.rejected, sum.unfinished, sum.foreign);
    }
    if (sum.lost > 0)
        rc = 1;
    else if (o->fail_on_duplicates && sum.duplicates > 0)
        rc = 1;
    else if (sum.accepted < o->count)
        rc = 2; /* nothing lost, but not everything got through */
    else
        rc = 0;
    if (!o->json)
        printf("result: %s\n", rc == 0    ? "nothing lost"
                               : sum.lost ? "MESSAGES LOST"
                               : rc == 1  ? "duplicates (--fail-on-duplicates)"
                                          : "nothing lost, but not every message was accepted");
    return rc;
}

/* ------------------------------------------------------------ options */

static int
parse_number(const char *opt, const char *text, unsigned long min, unsigned long max,
             unsigned long *value_r)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || errno || *end || v < min || v > max) {
        fprintf(stderr, "sluice: drill: %s %s: expected a number from %lu to %lu\n", opt, text, min,
                max);
        return -1;
    }
    *value_r = v;
    return 0;
}

/* HOST:PORT to an address (names are looked up once, now). */
static int
resolve(const char *opt, const char *text, struct sockaddr_storage *sa, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char *host = NULL, port[8];
    unsigned portnum;
    int gai;

    if (sl_hostport_parse(text, &host, &portnum) < 0) {
        fprintf(stderr, "sluice: drill: %s %s: expected HOST:PORT ([::1]:PORT for IPv6)\n", opt,
                text);
        return EX_USAGE;
    }
    snprintf(port, sizeof(port), "%u", portnum);
    gai = getaddrinfo(host, port, &hints, &ai);
    free(host);
    if (gai != 0) {
        fprintf(stderr, "sluice: drill: %s %s: %s\n", opt, text, gai_strerror(gai));
        return EX_NOHOST;
    }
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *len = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* 0, or the exit status of a usage error (said on stderr); -1: --help. */
static int
drill_options(struct sl_cli *cli, struct drill_opts *o, char **via_list)
{
    enum {
        O_VIA = 256,
        O_SINK,
        O_COUNT,
        O_RATE,
        O_SESSIONS,
        O_RCPTS,
        O_SIZE,
        O_TIMEOUT,
        O_GRACE,
        O_ATTEMPTS,
        O_REPLY_TIMEOUT,
        O_BIND,
        O_JSON,
        O_DUPS
    };
    static const struct option longopts[] = {
        {"via", required_argument, NULL, O_VIA},
        {"sink", required_argument, NULL, O_SINK},
        {"count", required_argument, NULL, O_COUNT},
        {"rate", required_argument, NULL, O_RATE},
        {"sessions", required_argument, NULL, O_SESSIONS},
        {"rcpts", required_argument, NULL, O_RCPTS},
        {"size", required_argument, NULL, O_SIZE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"grace", required_argument, NULL, O_GRACE},
        {"attempts", required_argument, NULL, O_ATTEMPTS},
        {"reply-timeout", required_argument, NULL, O_REPLY_TIMEOUT},
        {"bind", required_argument, NULL, O_BIND},
        {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"fail-on-duplicates", no_argument, NULL, O_DUPS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* the numeric ones: where each goes, and its bounds */
    static const struct {
        int id;
        unsigned long min, max;
        size_t offset;
    } numeric[] = {
        {O_COUNT, 1, SL_DRILL_MAX_COUNT, offsetof(struct drill_opts, count)},
        {O_RCPTS, 1, SL_DRILL_MAX_RCPTS, offsetof(struct drill_opts, rcpts)},
        {O_SESSIONS, 1, 1000, offsetof(struct drill_opts, sessions)},
        {O_ATTEMPTS, 1, 100, offsetof(struct drill_opts, attempts)},
        {O_TIMEOUT, 1, 86400, offsetof(struct drill_opts, timeout_s)},
        {O_GRACE, 0, 3600, offsetof(struct drill_opts, grace_s)},
        {O_REPLY_TIMEOUT, 1, 3600, offsetof(struct drill_opts, reply_timeout_s)},
        {O_SIZE, 0, 10u << 20, offsetof(struct drill_opts, size)},
    };
    unsigned long v;
    bool timeout_given = false;
    int c;

    *o = (struct drill_opts){.count = 100,
                             .rcpts = 1,
                             .sessions = 2,
                             .attempts = 20,
                             .rate = 10,
                             .size = 1024,
                             .grace_s = 30,
                             .reply_timeout_s = 600};
    optind = 0; /* GNU getopt: start afresh on the command's own argv */
    opterr = 0;
    int li = -1;
    while ((c = getopt_long(cli->argc, cli->argv, "+:qh", longopts, &li)) != -1) {
        char opt[32];
        int bad = 0;
        snprintf(opt, sizeof(opt), "--%s", li >= 0 ? longopts[li].name : "?");
        li = -1;
        switch (c) {
        case O_VIA:
            *via_list = optarg;
            break;
        case O_SINK:
            o->sink = optarg;
            break;
        case O_BIND:
            o->bind = optarg;
            break;
        case O_RATE: {
            char *end;
            o->rate = strtod(optarg, &end);
            if (*optarg == '\0' || *end || !isfinite(o->rate) || o->rate < 0 || o->rate > 100000) {
                fprintf(stderr,
                        "sluice: drill: --rate %s: expected messages a second, "
                        "0 to 100000 (0: as fast as the sessions go)\n",
                        optarg);
                bad = -1;
            }
            break;
        }
        case O_JSON:
            o->json = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case O_DUPS:
            o->fail_on_duplicates = true;
            break;
        case 'h':
            return -1;
        default:
            for (size_t i = 0; i < SL_N_ELEMENTS(numeric); i++) {
                if (numeric[i].id != c)
                    continue;
                if (parse_number(opt, optarg, numeric[i].min, numeric[i].max, &v) < 0)
                    return EX_USAGE;
                *(unsigned *)((char *)o + numeric[i].offset) = (unsigned)v;
                timeout_given |= c == O_TIMEOUT;
                break;
            }
            if (c < O_VIA) /* ':' or '?' */
                return sl_cli_bad_option(cli, c);
            break;
        }
        if (bad)
            return EX_USAGE;
    }
    if ((c = sl_cli_no_operands(cli)) != 0)
        return c;
    if (*via_list == NULL || o->sink == NULL) {
        fprintf(stderr, "sluice: drill needs --via HOST:PORT[,...] (the frontends) and --sink "
                        "HOST:PORT (where their origin reinjects)\n");
        return EX_USAGE;
    }
    if ((unsigned long long)o->count * o->rcpts > SL_DRILL_MAX_UNITS) {
        fprintf(stderr, "sluice: drill: --count x --rcpts is at most %u\n", SL_DRILL_MAX_UNITS);
        return EX_USAGE;
    }
    if (!timeout_given) /* what the rate needs, and two minutes for the stragglers */
        o->timeout_s = (unsigned)(o->rate > 0 ? (double)o->count / o->rate + 120 : 300);
    return 0;
}

/* ------------------------------------------------------------ command */

int
sl_cli_drill(struct sl_cli *cli)
{
    struct drill_opts o;
    struct drill d = {.o = &o};
    char *via_list = NULL, *copy = NULL, *save = NULL, *error = NULL;
    int rc;

    if ((rc = drill_options(cli, &o, &via_list)) != 0) {
        if (rc < 0)
            fputs(cli->usage, stdout);
        return rc < 0 ? 0 : rc;
    }
    copy = sl_strdup(via_list);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        o.via = sl_realloc(o.via, (o.n_via + 1) * sizeof(*o.via));
        o.via[o.n_via++] = t;
    }
    rc = o.n_via ? 0 : EX_USAGE;
    if (rc)
        fprintf(stderr, "sluice: drill: --via %s: no HOST:PORT\n", via_list);
    d.targets = sl_calloc(o.n_via ? o.n_via : 1, sizeof(*d.targets));
    for (size_t i = 0; i < o.n_via && rc == 0; i++) {
        d.targets[i].name = o.via[i];
        rc = resolve("--via", o.via[i], &d.targets[i].sa, &d.targets[i].len);
    }
    if (rc == 0 && o.bind) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
        if (getaddrinfo(o.bind, NULL, &hints, &ai) != 0) {
            fprintf(stderr, "sluice: drill: --bind %s: expected an IP address\n", o.bind);
            rc = EX_USAGE;
        } else {
            memcpy(&d.bind_sa, ai->ai_addr, ai->ai_addrlen);
            d.bind_len = (socklen_t)ai->ai_addrlen;
            freeaddrinfo(ai);
            for (size_t i = 0; i < o.n_via && rc == 0; i++)
                if (d.targets[i].sa.ss_family != d.bind_sa.ss_family) {
                    fprintf(stderr,
                            "sluice: drill: --bind %s and --via %s: not the same "
                            "address family\n",
                            o.bind, o.via[i]);
                    rc = EX_USAGE;
                }
        }
    }
    if (rc != 0)
        goto out;

    signal(SIGPIPE, SIG_IGN);
    sl_id_new(d.runid);
    sl_rfc5322_date(sl_now_wall_ms(), d.date, sizeof(d.date));
    d.tty = isatty(STDERR_FILENO);
    d.base = event_base_new();
    d.tally = sl_drill_tally_new(o.count, o.rcpts);
    d.sink = sl_drill_sink_new(d.base, o.sink, d.runid, d.tally, &error);
    if (d.sink == NULL) {
        fprintf(stderr, "sluice: drill: %s\n", error);
        free(error);
        rc = EX_OSERR;
        goto out;
    }
    TAILQ_INIT(&d.sessions);
    TAILQ_INIT(&d.dead);
    d.msgs = sl_calloc(o.count, sizeof(*d.msgs));
    for (unsigned i = 0; i < o.count; i++) {
        d.msgs[i].d = &d;
        d.msgs[i].seq = i;
    }
    d.ready = sl_calloc(o.count, sizeof(*d.ready));
    d.pump = event_new(d.base, -1, 0, on_pump, &d);
    d.tick = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
    d.sigs[0] = evsignal_new(d.base, SIGINT, on_signal, &d);
    d.sigs[1] = evsignal_new(d.base, SIGTERM, on_signal, &d);
    evsignal_add(d.sigs[0], NULL);
    evsignal_add(d.sigs[1], NULL);
    d.t0 = sl_now_mono_ms();
    d.deadline = (unsigned long long)o.timeout_s * 1000;
    struct timeval tick = {0, DRILL_TICK_MS * 1000};
    evtimer_add(d.tick, &tick);
    if (!o.quiet)
        fprintf(stderr,
                "drill %s: %u message(s) at %g/s over %u session(s); Ctrl-C stops "
                "sending and reports\n",
                d.runid, o.count, o.rate, o.sessions);
    event_base_dispatch(d.base);
    if (!o.quiet)
        progress_line(&d, true);
    rc = report(&d);

out:
    if (d.base) {
        struct session *s;
        d.phase = PHASE_DRAIN; /* nothing is retried any more */
        while ((s = TAILQ_FIRST(&d.sessions)) != NULL)
            session_close(s, "drill over");
        on_pump(-1, 0, &d); /* frees the closed ones; sending is over */
        for (unsigned i = 0; d.msgs && i < o.count; i++)
            if (d.msgs[i].retry)
                event_free(d.msgs[i].retry);
        sl_drill_sink_destroy(&d.sink);
        for (int i = 0; i < 2; i++)
            if (d.sigs[i])
                event_free(d.sigs[i]);
        if (d.tick)
            event_free(d.tick);
        if (d.pump)
            event_free(d.pump);
        event_base_free(d.base);
    }
    sl_drill_tally_destroy(&d.tally);
    free(d.msgs);
    free(d.ready);
    free(d.targets);
    free(o.via);
    free(copy);
    return rc;
}
