/* sl_drill_sink.c - the drill's reinjection listener (sl_drill.h): an SMTP
 * server that takes what the frontends return, as the origin's :10025
 * smtpd would, and records each copy (Message-ID and recipient) in the
 * tally.
 *
 * It offers what Postfix's reinjection smtpd offers sluice (PIPELINING,
 * SIZE, 8BITMIME, ENHANCEDSTATUSCODES, and XFORWARD, which the
 * docs/postfix.md setup allows) and accepts every transaction: the drill
 * measures the cluster, not a Postfix that refuses. Commands are parsed by
 * lib/mail's server-side parser, the frontend's own, so pipelined
 * commands and dot-unstuffing are handled as there. */
#include "cli/sl_drill.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "mail/sl_message.h"
#include "mail/sl_smtp_parser.h"
#include "util/sl_addr.h"
#include "util/sl_buf.h"

#define SINK_TIMEOUT_S 300           /* Postfix smtpd's own idle timeout */
#define SINK_MAX_MESSAGE (64u << 20) /* the drill's messages are at most 10 MiB */
#define SINK_MAX_RCPTS 1000

struct sink_conn {
    struct sl_drill_sink *sink;
    struct bufferevent *bev;
    struct sl_smtp_parser *parser;
    struct sl_buf body;
    char **rcpts; /* the transaction's, as given */
    size_t n_rcpts;
    bool mail;    /* MAIL given */
    bool closing; /* QUIT answered: close once written */
    LIST_ENTRY(sink_conn) entry;
};

struct sl_drill_sink {
    struct event_base *base;
    struct evconnlistener *listener;
    char *runid;
    struct sl_drill_tally *tally;
    unsigned long transactions;
    LIST_HEAD(, sink_conn) conns;
};

static void
txn_reset(struct sink_conn *c)
{
    for (size_t i = 0; i < c->n_rcpts; i++)
        free(c->rcpts[i]);
    sl_free_and_clear(&c->rcpts);
    c->n_rcpts = 0;
    c->mail = false;
    sl_buf_reset(&c->body);
}

static void
conn_free(struct sink_conn *c)
{
    LIST_REMOVE(c, entry);
    txn_reset(c);
    sl_buf_free(&c->body);
    sl_smtp_parser_destroy(&c->parser);
    bufferevent_free(c->bev);
    free(c);
}

static void reply(struct sink_conn *c, const char *fmt, ...) SL_PRINTF(2, 3);

/* One reply line; fmt without CRLF. */
static void
reply(struct sink_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
    evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

/* End of data: one copy per recipient of the transaction. */
static void
txn_deliver(struct sink_conn *c)
{
    struct sl_drill_sink *s = c->sink;
    char *msgid = sl_message_header(c->body.data, c->body.len, "Message-ID");
    unsigned seq, rcpt;
    bool ours = msgid != NULL && sl_drill_msgid_seq(msgid, s->runid, &seq) == 0;

    for (size_t i = 0; i < c->n_rcpts; i++) {
        if (ours && sl_drill_rcpt_index(c->rcpts[i], &rcpt) == 0)
            (void)sl_drill_tally_delivered(s->tally, seq, rcpt);
        else
            sl_drill_tally_foreign(s->tally); /* another run's, a report, a stranger's */
    }
    free(msgid);
    s->transactions++;
    reply(c, "250 2.0.0 Ok: queued as DRILL%lu", s->transactions);
}

static void
conn_command(struct sink_conn *c, const struct sl_smtp_cmd *cmd)
{
    struct sl_smtp_path path;
    const char *error;

    switch (cmd->verb) {
    case SL_CMD_EHLO:
    case SL_CMD_LHLO:
        txn_reset(c);
        reply(c, "250-" SL_DRILL_DOMAIN "\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
                 "250-ENHANCEDSTATUSCODES\r\n"
                 "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE DOMAIN");
        break;
    case SL_CMD_HELO:
        txn_reset(c);
        reply(c, "250 " SL_DRILL_DOMAIN);
        break;
    case SL_CMD_XFORWARD:
        reply(c, "250 2.0.0 Ok");
        break;
    case SL_CMD_MAIL:
        txn_reset(c);
        c->mail = true;
        reply(c, "250 2.1.0 Ok");
        break;
    case SL_CMD_RCPT:
        if (!c->mail) {
            reply(c, "503 5.5.1 Error: need MAIL command");
        } else if (c->n_rcpts >= SINK_MAX_RCPTS) {
            reply(c, "452 4.5.3 Error: too many recipients");
        } else if (sl_smtp_parse_path(cmd->arg, "TO:", 1024, &path, &error) < 0) {
            reply(c, "501 5.1.3 Bad recipient address syntax: %s", error);
        } else {
            c->rcpts = sl_realloc(c->rcpts, (c->n_rcpts + 1) * sizeof(*c->rcpts));
            c->rcpts[c->n_rcpts++] = sl_strdup(path.address);
            sl_smtp_path_free(&path);
            reply(c, "250 2.1.5 Ok");
        }
        break;
    case SL_CMD_DATA:
        if (c->n_rcpts == 0) {
            reply(c, "554 5.5.1 Error: no valid recipients");
            break;
        }
        sl_buf_reset(&c->body);
        sl_smtp_parser_begin_data(c->parser, &c->body);
        reply(c, "354 End data with <CR><LF>.<CR><LF>");
        break;
    case SL_CMD_DATA_END:
        txn_deliver(c);
        txn_reset(c);
        break;
    case SL_CMD_RSET:
        txn_reset(c);
        reply(c, "250 2.0.0 Ok");
        break;
    case SL_CMD_NOOP:
        reply(c, "250 2.0.0 Ok");
        break;
    case SL_CMD_QUIT:
        reply(c, "221 2.0.0 Bye");
        c->closing = true;
        break;
    default:
        reply(c, "502 5.5.2 Error: command not recognized");
        break;
    }
}

static void
conn_on_read(struct bufferevent *bev, void *ctx)
{
    struct sink_conn *c = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    struct sl_smtp_cmd cmd;
    enum sl_smtp_error kind;
    const char *error;
    int ret;

    sl_smtp_parser_feed(c->parser, evbuffer_pullup(in, -1), n);
    evbuffer_drain(in, n);
    while (!c->closing && (ret = sl_smtp_parser_next(c->parser, &cmd, &kind, &error)) != 0) {
        if (ret < 0) {
            const struct sl_smtp_error_reply *r = sl_smtp_error_reply(kind);
            reply(c, "%d %s %s", r->code, r->enhanced, r->text);
        } else
            conn_command(c, &cmd);
    }
}

static void
conn_on_write(struct bufferevent *bev, void *ctx)
{
    struct sink_conn *c = ctx;

    (void)bev;
    if (c->closing)
        conn_free(c);
}

static void
conn_on_event(struct bufferevent *bev, short what, void *ctx)
{
    (void)bev;
    (void)what; /* EOF, error or idle timeout: the client's business */
    conn_free(ctx);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ctx)
{
    struct sl_drill_sink *s = ctx;
    struct sink_conn *c = sl_calloc(1, sizeof(*c));
    struct sl_smtp_limits lim = {.max_command_line = 4096, .max_message_size = SINK_MAX_MESSAGE};
    struct timeval tv = {SINK_TIMEOUT_S, 0};

    (void)l;
    (void)sa;
    (void)salen;
    c->sink = s;
    c->parser = sl_smtp_parser_new(&lim);
    sl_buf_init(&c->body);
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    LIST_INSERT_HEAD(&s->conns, c, entry);
    reply(c, "220 " SL_DRILL_DOMAIN " ESMTP sluice drill sink");
}

struct sl_drill_sink *
sl_drill_sink_new(struct event_base *base, const char *hostport, const char *runid,
                  struct sl_drill_tally *tally, char **error_r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    struct sl_drill_sink *s;
    char *host = NULL, port[8];
    unsigned portnum;
    int gai;

    if (sl_hostport_parse(hostport, &host, &portnum) < 0) {
        *error_r = sl_asprintf("--sink %s: expected HOST:PORT", hostport);
        return NULL;
    }
    snprintf(port, sizeof(port), "%u", portnum);
    gai = getaddrinfo(host, port, &hints, &ai);
    free(host);
    if (gai != 0) {
        *error_r = sl_asprintf("--sink %s: %s", hostport, gai_strerror(gai));
        return NULL;
    }
    s = sl_calloc(1, sizeof(*s));
    s->base = base;
    s->runid = sl_strdup(runid);
    s->tally = tally;
    LIST_INIT(&s->conns);
    s->listener = evconnlistener_new_bind(
        base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
        ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (s->listener == NULL) {
        *error_r = sl_asprintf("--sink %s: cannot listen: %s", hostport, strerror(errno));
        sl_drill_sink_destroy(&s);
        return NULL;
    }
    return s;
}

void
sl_drill_sink_destroy(struct sl_drill_sink **sinkp)
{
    struct sl_drill_sink *s = *sinkp;

    if (s == NULL)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    while (!LIST_EMPTY(&s->conns))
        conn_free(LIST_FIRST(&s->conns));
    free(s->runid);
    free(s);
    *sinkp = NULL;
}

unsigned long
sl_drill_sink_transactions(const struct sl_drill_sink *sink)
{
    return sink->transactions;
}
