/* quarantine.h - the frontend's part of the quarantine (docs/quarantine.md):
 * keeping a message the policy stops, telling the administrators and the
 * recipients, and the store's housekeeping.
 *
 * The worker decides (RecipientVerdict.quarantine, .admin, .warn); the
 * frontend does it, before it answers Postfix, as amavisd-new does
 * "reinjection, notification, quarantine" before its reply:
 *   1. with the ledger, the quarantine and each notification are reserved
 *      in the message's ledger entry, under fields no address can be
 *      ("<quarantine>", "<notify:ADDR>", "<warn:RCPT>"), so a retry after
 *      a lost reply stores nothing twice and notifies nobody twice;
 *   2. the message is stored (quarantine.store; quar_pool.h, off the loop):
 *      one entry per message, its type the highest of the recipients'
 *      (virus, banned, spam, badh), listing the recipients it is kept for;
 *   3. the notifications go out through the origin's reinjection listener,
 *      each from its template (notify.h), mentioning the quarantine id.
 * Any of these failing turns the reply of the recipients it concerns into
 * a 4xx (Postfix retries; the ledger makes the retry redo only what is
 * missing). outcome.c runs a task before reinjecting and reporting, so a
 * message whose quarantine failed is not delivered either.
 *
 * Also here, for the frontend's life: the store threads, the expiry timer
 * (quarantine.max_age, tried every quarantine.expire_interval; only one
 * node at a time does it, sl_quar_expire) and the AM.PDP release socket
 * (quarantine.release_socket, quar_pdp.c).
 *
 * Runs in the frontend's event loop; done() is never called from inside
 * fe_quar_task_start(). */
#ifndef SLUICE_FRONTEND_QUARANTINE_H
#define SLUICE_FRONTEND_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>
#include "sluice.pb-c.h"

struct sl_config;
struct sl_body;
struct fe_quar;
struct fe_quar_task;
struct fe_reinjector;
struct fe_ledger;
struct fe_qpool;

/* NULL with *error_r when the store or a template cannot be opened, or the
 * release socket not bound. Never NULL otherwise, even with nothing
 * configured (notifications need no store). */
struct fe_quar *fe_quar_new(struct event_base *base, const struct sl_config *config,
                            const char *hostname, char **error_r);
/* Stops the timer and the socket, joins the threads. *qp may be NULL. */
void fe_quar_destroy(struct fe_quar **qp);
/* The store threads (NULL without quarantine.store), for quar_pdp.c. */
struct fe_qpool *fe_quar_pool(struct fe_quar *q);

/* Does the verdict ask for something this frontend does (a quarantine
 * with a store configured, an administrator, a warning)? */
bool fe_quar_wanted(const struct fe_quar *q, const Sluice__Verdict *v);

/* One recipient, in RCPT order; destiny after the SMTP-mode rules. */
struct fe_quar_rcpt {
    const char *address;
    int destiny; /* Sluice__Destiny */
    const Sluice__RecipientVerdict *rv;
};

struct fe_quar_msg {
    const char *job_id;    /* the mail_id */
    const char *origin;    /* origins.<name> */
    const char *client;    /* the origin Postfix's address (a release goes back there) */
    const char *client_addr; /* XFORWARD ADDR, or NULL */
    const char *sender;    /* without <> */
    const struct fe_quar_rcpt *rcpts;
    size_t n_rcpts;
    struct sl_body *body;  /* a reference is taken */
    const char *message_id; /* with <>, or NULL */
    const Sluice__Verdict *verdict; /* during the call only */
    unsigned long long arrival_ms;
    /* where notifications go: the origin's reinjection listener */
    struct fe_reinjector *reinjector;
    const char *host;
    unsigned port;
    unsigned max_conns;
    /* exactly once (ledger.h); ledger NULL for none */
    struct fe_ledger *ledger;
    const char *ledger_key;
    bool tempfail_unavailable;
};

struct fe_quar_result {
    /* per recipient: NULL when all is well, else the 4xx reply to give */
    char *const *replies;
    const bool *quarantined;   /* its copy is in the quarantine */
    const char *quarantine_id; /* "virus-<mail_id>", or NULL when nothing was kept */
    const char *detail;        /* the first failure, for the log, or NULL */
    bool notified;             /* :10025 accepted a notification */
};

typedef void fe_quar_done_fn(void *ctx, const struct fe_quar_result *res);

/* Strings in m are copied. */
struct fe_quar_task *fe_quar_task_start(struct fe_quar *q, const struct fe_quar_msg *m,
                                        fe_quar_done_fn *done, void *ctx);
/* done() will not be called; what was sent stays sent. *tp may be NULL. */
void fe_quar_task_cancel(struct fe_quar_task **tp);

#endif
