/* session_int.h - what session.c (the conversation: I/O, timeouts,
 * dispatch) and commands.c (what each command does) share. Not used
 * outside those two files. */
#ifndef SLUICE_FRONTEND_SESSION_INT_H
#define SLUICE_FRONTEND_SESSION_INT_H

#include <stdbool.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "job.h"
#include "mail/sl_smtp_parser.h"
#include "util/sl_buf.h"
#include "util/sl_util.h"

#define SESSION_REPLY_MAX 510 /* RFC 5321 4.5.3.1.5: 512 with CRLF */

/* Life of a session:
 *   INIT --LHLO/EHLO--> READY --MAIL--> MAIL --RCPT..DATA--> DATA
 *   DATA --"."--> WAIT (the job runs: scan, reinjection) --replies--> READY */
enum session_state {
    SESSION_INIT,    /* greeting sent; waiting for LHLO/EHLO/HELO */
    SESSION_READY,   /* greeted; no transaction */
    SESSION_MAIL,    /* MAIL accepted; RCPTs being collected */
    SESSION_DATA,    /* receiving the message */
    SESSION_WAIT,    /* message handed to its job; holding the connection */
    SESSION_CLOSING, /* last reply queued; close once it is written */
};

struct session {
    struct session *next, *prev; /* fe->sessions */
    struct fe_context *fe;
    struct fe_settings *settings;   /* from connect (a reference): settings.h */
    const struct sl_config *config; /* settings->config */
    struct bufferevent *bev;
    struct sl_smtp_parser *parser;
    char peer_ip[64];
    unsigned peer_port;
    unsigned local_port; /* the port it connected to */
    struct fe_origin *origin; /* in settings->origins */
    enum session_state state;
    bool lmtp;
    bool esmtp; /* LHLO or EHLO: PIPELINING was offered */
    char *helo;
    unsigned errors;
    unsigned junk_commands;  /* NOOP, RSET, VRFY, EXPN, HELP since the last message */
    struct event *io_timer;  /* command or DATA deadline */
    unsigned long long data_deadline_ms;
    bool output_blocked; /* reading paused until the client reads its replies */
    struct event *flush_ev;  /* writes this turn's replies (session_on_flush) */
    bool flush_pending;
    struct event *read_ev; /* reads the client into the parser (session_on_readable) */
    bool idle_timeout;     /* read_ev has frontend.timeout_s */

    struct fe_envelope env; /* the transaction being collected (XFORWARD too) */
    struct sl_buf data;     /* the message, during DATA */
    struct fe_job *job;     /* state WAIT: the message in flight */
};

/* Room left under frontend.max_message_size for the header fields sluice
 * adds to a message (Received:, X-Virus-Scanned:, X-Spam-*, X-Amavis-Alert:,
 * the subject tag: about 300 octets on clean mail, a few KiB at most on
 * tagged spam): 64 KiB, or half the limit when that is smaller. */
#define SESSION_SIZE_ROOM ((size_t)64 * 1024)

/* session.c, for the commands */
/* The largest message accepted, advertised in SIZE: max_message_size less
 * SESSION_SIZE_ROOM, so the copy reinjected still fits a next hop with the
 * same limit (docs/configuration.md). */
size_t session_size_limit(const struct session *s);
void session_reply(struct session *s, const char *fmt, ...) SL_PRINTF(2, 3);
/* The same reply for every recipient (LMTP) or once (SMTP). */
void session_reply_all(struct session *s, const char *fmt, ...) SL_PRINTF(2, 3);
/* Counts a client error; past Postfix's smtpd_hard_error_limit, 421. */
void session_error(struct session *s);
void session_close_after_reply(struct session *s);
/* Ends the transaction (RSET, LHLO, a refused message): envelope and
 * XFORWARD attributes. */
void session_reset_transaction(struct session *s);
/* End of data with a message to deliver: takes one of the origin's
 * concurrency slots for it and hands it to its job, or, the origin at its
 * limit, answers 451 4.3.2 and ends the transaction. */
void session_hand_off(struct session *s, const char *job_id);

/* commands.c, for the dispatcher */
void session_dispatch(struct session *s, const struct sl_smtp_cmd *cmd);
/* RFC 2920: is this command one that must end a pipelined group? */
bool session_cmd_must_end_group(const struct session *s, const struct sl_smtp_cmd *cmd);

#endif
