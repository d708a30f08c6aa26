/* job.h - one message in flight, from the final "." to Postfix's replies.
 *
 * At end of data the session hands its transaction over (fe_job_start):
 * from then on the job owns the body, the envelope and XFORWARD
 * attributes, the origin's concurrency slot, the deadline, the ledger
 * reservation and the delivery. It
 *   1. sends the message to the brokers (broker_link.h) and reserves its
 *      recipients in the record of what was reinjected (record.h: the
 *      Redis ledger when dedup is on, else this process's local record),
 *      both at once;
 *   2. waits for the verdict and the record's answer, in either order (an
 *      answer "every recipient already delivered" ends a retry at once,
 *      without waiting for the scan);
 *   3. carries out each recipient's destiny (outcome.h);
 *   4. gives the session its replies (done(): one per recipient in LMTP,
 *      one for all in SMTP) and logs amavisd-new's summary line.
 * Any failure on the way is a 4xx reply: no broker took the message, no
 * verdict within job.timeout, the worker failed.
 *
 * The client may leave at any time (fe_job_detach). Without the ledger the
 * job stops at once: nothing was delivered (the reinjector checks again
 * before its final "."), and Postfix retries; the local record is lost with
 * the process, so it does not promise the retry an answer. With the
 * ledger, once recipients are reserved the job runs to its end and records
 * the result, so the retry gets the stored reply instead of a second copy;
 * it then frees itself.
 *
 * Runs in the frontend's event loop; done() is never called from inside
 * fe_job_start() or fe_job_detach(). */
#ifndef SLUICE_FRONTEND_JOB_H
#define SLUICE_FRONTEND_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include "sluice.pb-c.h"
#include "mail/sl_smtp_parser.h"
#include "util/sl_body.h"

struct fe_context;
struct fe_origin;
struct fe_settings;
struct fe_job;

struct fe_rcpt {
    char *address; /* without <> */
    char *notify;  /* DSN NOTIFY= value, or NULL */
    char *orcpt;   /* DSN ORCPT= value, or NULL */
};

/* One transaction as the session collected it. Every string is malloc'ed
 * and owned by the envelope. */
struct fe_envelope {
    char *mail_from;               /* without <>, "" for the null sender; NULL before MAIL */
    char *ret, *envid, *body_type; /* DSN RET=, ENVID=, BODY=; NULL when absent */
    bool smtputf8;
    unsigned long long size; /* MAIL's SIZE=, 0 when absent: the body's first room */
    struct fe_rcpt *rcpts;
    size_t n_rcpts, cap_rcpts;
    char *xforward[SL_XF_COUNT]; /* by enum sl_xforward_attr; NULL when not given */
};

/* Appends r (its strings now belong to the envelope). */
void fe_envelope_add_rcpt(struct fe_envelope *e, const struct fe_rcpt *r);
/* Frees every value; the envelope is empty and usable again. */
void fe_envelope_clear(struct fe_envelope *e);

/* The transaction is answered: replies[n] to write in order (n is the
 * number of recipients in LMTP, 1 in SMTP). replies is NULL when the job
 * stopped because the client left while it was being delivered: nothing
 * to write, the connection is to be closed. Valid during the call. */
typedef void fe_job_done_fn(void *ctx, const char *const *replies, size_t n);
/* Is the client still on the line (asked before anything is delivered)? */
typedef bool fe_job_connected_fn(void *ctx);

struct fe_job_params {
    const char *id;           /* the job id, fresh from sl_id_new() */
    struct fe_origin *origin; /* the job takes over the slot the session took for it */
    /* the session's (origin is in its table): the job runs under the
     * current settings (job.timeout, the origin's reinjection), or under
     * these when a reload removed the origin since the connect */
    struct fe_settings *settings;
    const char *peer_ip;      /* the connection the message came on */
    unsigned peer_port;
    unsigned local_port;  /* Received: "port N", policy banks' match_listener */
    const char *helo;     /* the LHLO/EHLO/HELO name, or NULL */
    bool lmtp;            /* one reply per recipient (else SMTP: one for all) */
    struct fe_envelope *env;  /* taken over: left empty */
    struct sl_body *body;     /* a reference is taken */
    fe_job_done_fn *done;
    fe_job_connected_fn *connected;
    void *ctx;                /* for done and connected */
};

/* Starts the job; strings in p are copied. Never NULL: a message no
 * broker can take is tempfailed through done(), from the loop. */
struct fe_job *fe_job_start(struct fe_context *fe, const struct fe_job_params *p);

/* The client left: done() will not be called. The job stops or, holding
 * ledger reservations, runs on alone (see above). *jobp is cleared. */
void fe_job_detach(struct fe_job **jobp);

/* The broker link's verdict callback (broker_link.h); job is the context
 * the job submitted with. */
void fe_job_on_verdict(void *job, const Sluice__Verdict *verdict);

/* Frees every job still in flight (frontend_destroy, after the loop). */
void fe_job_destroy_all(struct fe_context *fe);

#endif
