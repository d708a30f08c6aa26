/* outcome.h - carrying out a verdict's per-recipient destinies:
 * in one LMTP transaction one recipient may get the mail tagged while
 * another has it discarded, rejected or tempfailed.
 *
 *   D_PASS      reinjected to the origin's :10025; recipients whose edits
 *               are identical share one SMTP transaction (several groups =
 *               several transactions, run concurrently)
 *   D_DISCARD   250 2.7.0 Ok, discarded, id=JOB - INFECTED: name
 *   D_BOUNCE    a DSN (dsn.h) to the sender through the same :10025, then
 *               250 2.7.0 Ok, bounced, id=JOB - ...; no DSN for the null
 *               sender, past the DSN cut-off or NOTIFY=NEVER (the worker
 *               or the recipient said so): "discarded ... (no DSN)"; if
 *               the DSN cannot be sent, 451 (Postfix retries; nothing is
 *               lost)
 *   D_REJECT    554 5.7.0 Reject, id=JOB - ... (Postfix bounces)
 *   D_TEMPFAIL  451 4.7.1 id=JOB, temporary failure - ... (Postfix retries)
 *
 * SMTP sessions (EHLO) get one reply for the transaction, as amavisd-new
 * handles it: a tempfail for anyone tempfails everyone, and a reject that
 * is not for everyone becomes a bounce. After the reinjection, as an MTA
 * does with one reply for many recipients: when :10025 refused some
 * permanently, accepted the others and tempfailed none, the refused ones
 * are reported to the sender (a DSN, dsn.h) and the transaction gets 250;
 * when some were tempfailed it gets 451, and the record (record.h) keeps
 * those already accepted from a second copy on Postfix's retry.
 *
 * A verdict whose recipient list does not cover the job exactly (missing,
 * repeated or out-of-range indices) is refused: the job tempfails. A
 * verdict with no recipient list at all passes everyone with the edits
 * for everyone.
 * Runs in the frontend's event loop; done() is called once, later. */
#ifndef SLUICE_FRONTEND_OUTCOME_H
#define SLUICE_FRONTEND_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>
#include "reinject.h"
#include "record.h"
#include "sluice.pb-c.h"

struct fe_delivery;
struct fe_ledger;
struct fe_quar;

struct fe_delivery_result {
    bool cancelled; /* the client left before a final "." went out */
    char **replies; /* LMTP: one line per recipient, in RCPT order */
    size_t n_replies;
    char *combined;         /* SMTP: the one reply */
    bool passed;            /* some recipient got the mail: "Passed", else "Blocked" */
    const char *action;     /* "RelayedTaggedInbound,DiscardedInbound" */
    const char *queued_as;  /* the first queue id :10025 gave, or NULL */
    const char *detail;     /* the first failure towards :10025, or NULL */
    bool reinjected;        /* :10025 accepted something: a copy, DSN or notification */
    const char *quarantine; /* "virus-<mail_id>" when the message was quarantined, or NULL */
};

typedef void fe_delivery_done_fn(void *ctx, const struct fe_delivery_result *res);

struct fe_delivery_params {
    struct event_base *base;
    struct fe_reinjector *reinjector;
    const struct fe_reinject_request *req; /* all recipients, the job's envelope */
    const Sluice__Verdict *verdict;        /* valid during the call only */
    bool lmtp;
    const char *hostname;   /* Reporting-MTA of DSNs */
    const char *message_id; /* for DSNs, with <>, or NULL */
    unsigned long long arrival_ms;
    /* What was reinjected before (record.h: the ledger or the local
     * record; copied): record NULL for none. The job reserved every
     * recipient under record_key at end of data; record_answer is that
     * reservation's answer (NULL: none was made, taken as the record
     * unavailable). A passed recipient already reinjected gets its stored
     * reply, one in flight elsewhere 451 4.3.0; after the reinjection each
     * is recorded (2xx) or released, and once the transaction is answered
     * the record hears whether Postfix will retry it. While recipients are
     * reserved in a record that finishes detached jobs (the ledger) the
     * reinjection runs to its end even if our client left, so its retry
     * finds the reply (wanted() is not asked). Record unavailable (Redis):
     * tempfail_unavailable ? 451 4.3.0 : reinject anyway (at-least-once). */
    const struct fe_record *record;
    const char *record_key;
    const struct fe_ledger_answer *record_answer;
    bool tempfail_unavailable;
    /* Quarantine and notifications (quarantine.h), NULL for none: when the
     * verdict asks for them they are carried out first, and a recipient
     * whose quarantine or notification failed gets a 4xx and is neither
     * reinjected nor reported. */
    struct fe_quar *quar;
    /* The Redis ledger, NULL without it: the quarantine and notifications
     * reserve their own fields under record_key there, so a retry redoes
     * none of them. The local record does not keep them: without Redis a
     * retry after a lost reply quarantines and notifies again. */
    struct fe_ledger *ledger;
    const char *origin;      /* origins.<name> */
    const char *client;      /* the origin Postfix's address */
    const char *client_addr; /* XFORWARD ADDR, or NULL */
};

/* Starts delivering; NULL with *error_r (static) for an unusable verdict.
 * The verdict and the ledger answer are used during the call only; the
 * request's strings must outlive the delivery (the job owns them). */
struct fe_delivery *fe_delivery_start(const struct fe_delivery_params *p, fe_delivery_done_fn *done,
                                      fe_reinject_wanted_fn *wanted, void *ctx,
                                      const char **error_r);
/* Abandons it (our client left): done() is not called. */
void fe_delivery_cancel(struct fe_delivery **dp);

/* For the amavis log line: the category with its detail, as amavisd-new
 * writes it ("INFECTED (Eicar-Test-Signature)", "BANNED (...)", "SPAM"),
 * and Hits: (the spam score, or NULL when no spam scanner answered).
 * Both malloc'ed. */
void fe_verdict_log_parts(const Sluice__Verdict *v, char **category_r, char **hits_r);

/* The "{...}" words of the amavis log line for one recipient: Relayed,
 * RelayedTagged, Discarded, Bounced, NoBounce, Rejected, TempFailed, with
 * the direction as amavisd-new names it: Inbound (a local recipient, mail
 * from outside), Internal (local, originating), Outbound (remote,
 * originating), OpenRelay (remote, from outside). Exposed for tests. */
void fe_action_word(int destiny, bool tagged, bool dsn_suppressed, int code, bool originating,
                    bool remote, char *out, size_t len);

/* For the amavis log line: what comes between "{...}," and the client
 * address, as amavisd-new's template writes it ("[?%p|| %p][?%l|| LOCAL]"):
 * " ORIGINATING LOCAL" (the banks applied, '/'-separated, and LOCAL for
 * originating mail), or "" for neither. Malloc'ed. */
char *fe_verdict_log_bank(const Sluice__Verdict *v);

#endif
