/* reinject.h - the reinjector: an SMTP client that returns approved mail to
 * the origin Postfix's reinjection listener (:10025 in the standard setup) and reports
 * the answer for every recipient, so the session can answer its own
 * LMTP client only after the next hop has accepted (the no-loss rule).
 *
 * Runs in the frontend's libevent loop. Per target (host:port) it keeps a
 * pool of open SMTP connections, reused across messages, at most
 * max_conns per target (the origin's concurrency); requests beyond that
 * wait in a FIFO. A reused connection that turns out closed by the server
 * (idle timeout) is retried once on a fresh connection before any
 * recipient is failed.
 *
 * Protocol: EHLO; XFORWARD with the attributes the server advertised (in
 * lines of at most 512 bytes, Postfix's limit), re-sent for each
 * transaction because Postfix resets them after each one; MAIL FROM with
 * SIZE/BODY/RET/ENVID/SMTPUTF8 where advertised; RCPT TO with
 * NOTIFY/ORCPT where DSN is advertised; with PIPELINING, MAIL, all RCPTs and
 * DATA go in one write (RFC 2920). The message is written with edits
 * applied and dot-stuffed: the header section (sl_message_write_head), then
 * the body stuffed a chunk at a time straight from the received body
 * (sl_stuffer), so no second copy of the message is held. Any failure (connect,
 * greeting, timeout, disconnect, unparseable reply) yields a 4xx for every
 * recipient not yet answered; never a 2xx that the server did not send.
 */
#ifndef SLUICE_FRONTEND_REINJECT_H
#define SLUICE_FRONTEND_REINJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>
#include "mail/sl_message.h"
#include "mail/sl_smtp_parser.h"
#include "util/sl_body.h"

struct fe_reinjector;
struct fe_reinject_op;

struct fe_reinject_rcpt {
    const char *address;        /* without <> */
    const char *notify;         /* DSN NOTIFY value or NULL */
    const char *orcpt;          /* DSN ORCPT value or NULL */
};

struct fe_reinject_request {
    const char *job_id;                 /* for logs */
    const char *host;                   /* target, numeric or name */
    unsigned port;
    unsigned max_conns;                 /* pool bound for this target (origin concurrency) */
    const char *mail_from;              /* without <>, "" = null sender */
    const char *ret, *envid, *body_type;    /* NULL if not given */
    bool smtputf8;
    const struct fe_reinject_rcpt *rcpts;
    size_t n_rcpts;
    /* XFORWARD attributes to pass on, by enum sl_xforward_attr
     * (mail/sl_smtp_parser.h); a NULL value is not sent; NULL: none */
    char *const *xforward;
    struct sl_body *body;               /* the request takes a reference */
    const struct sl_header_edit *edits; /* copied by the request */
    size_t n_edits;
};

/* The outcome for one recipient. */
struct fe_reinject_rcpt_result {
    int code;               /* the SMTP code to give our client for this recipient */
    char *reply;            /* the next hop's reply line, e.g. "250 2.0.0 Ok: queued as X",
                               or our own description of a failure */
    bool from_mta;          /* reply came from the MTA (else it is a local failure text) */
};

struct fe_reinject_result {
    const char *mta;        /* "smtp:[127.0.0.1]:10025", for the amavis-style reply text */
    const char *stage;      /* on a failure: "fwd-connect", "fwd-mail-from", "fwd-rcpt-to",
                               "fwd-data-cmd", "fwd-data-contents", "fwd-end-data"; else NULL */
    const char *queued_as;  /* queue id parsed from the final 250, or NULL */
    struct fe_reinject_rcpt_result *rcpts;  /* n_rcpts, in request order */
    size_t n_rcpts;
    bool cancelled;         /* still_wanted() said no: nothing was delivered */
};

/* Called once per op with the result (valid only during the call). */
typedef void fe_reinject_done_fn(void *ctx, const struct fe_reinject_result *result);
/* Called right before the final "." is sent: false aborts the transaction
 * (RSET) so nothing is delivered, e.g. because our own client went away.  */
typedef bool fe_reinject_wanted_fn(void *ctx);

struct fe_reinjector *fe_reinjector_new(struct event_base *base, const char *helo_name,
                                        unsigned timeout_s);
/* reinject.timeout changed (a reload): every timer armed from now on. */
void fe_reinjector_set_timeout(struct fe_reinjector *r, unsigned timeout_s);
void fe_reinjector_destroy(struct fe_reinjector **reinjectorp);

/* Starts a reinjection; done() is always called exactly once, later (never
 * from inside this call), unless the op is cancelled first. */
struct fe_reinject_op *fe_reinject_start(struct fe_reinjector *r,
                                         const struct fe_reinject_request *req,
                                         fe_reinject_done_fn *done, fe_reinject_wanted_fn *wanted,
                                         void *ctx);
/* Abandons an op (our client left): done() will not be called. If the
 * final "." was not yet sent, nothing is delivered. */
void fe_reinject_cancel(struct fe_reinject_op **opp);

/* Readiness (docs/operations.md, "Metrics and health"): false, and why,
 * while the last connection to a target failed before its EHLO was
 * answered (refused, timed out, a 4xx or 5xx greeting); such a target
 * gets a connection of ours every 2 s, which clears the state when the
 * target answers and then joins the pool. A target not tried yet counts
 * as answering. */
bool fe_reinjector_ready(struct fe_reinjector *r, char *why, size_t len);
/* A target known in advance (an origin's fixed reinject host:port): its
 * first connection is made now rather than with the first message, so
 * that readiness knows about it. */
void fe_reinjector_watch(struct fe_reinjector *r, const char *host, unsigned port);

#endif
