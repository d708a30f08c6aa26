/* record.h - what the frontend remembers of the recipients it reinjected,
 * so that Postfix's next attempt of a message does not reinject a recipient
 * twice. One interface, two implementations, and job.c picks one:
 *
 *   the ledger (ledger.h)              Redis, shared by every frontend and
 *                                      outliving them: dedup on (redis.url)
 *   the local record (local_record.h)  this process's memory, bounded:
 *                                      dedup off, one node without Redis
 *
 * Both take the message key of fe_ledger_key(), answer a reservation with
 * the entries of ledger.h (done with its stored reply, reserved for us, in
 * flight elsewhere: the ledger only) and take records and releases alike,
 * so the job (job.c) and the delivery (outcome.c) run the same code
 * whichever is behind it. The one difference they ask about is
 * finish_detached. An LMTP job uses neither while the local record holds
 * nothing (job.c): the delivery then sends to every recipient. */
#ifndef SLUICE_FRONTEND_RECORD_H
#define SLUICE_FRONTEND_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include "ledger.h"

struct fe_record_ops {
    const char *name; /* "ledger", "local record": for log lines */
    /* A job whose client left is finished, and its recipients recorded,
     * because the retry will find them wherever it comes (the ledger). A
     * record that is lost with its process does not promise that: such a
     * job is abandoned before anything is delivered, and Postfix's retry
     * delivers the only copy. */
    bool finish_detached;
    /* fe_ledger_reserve: cb from the loop, never from inside the call; the
     * op is the implementation's, for abandon. */
    void *(*reserve)(void *impl, const char *key, const char *const *rcpts, size_t n,
                     fe_ledger_reserved_fn *cb, void *ctx);
    /* fe_ledger_abandon: cb is not called; what the reserve took is given
     * back. *opp may be NULL; cleared. */
    void (*abandon)(void *impl, void **opp);
    /* fe_ledger_record_nowait: replies[i] non-NULL records rcpts[i] as done
     * with that reply, NULL gives back its reservation. */
    void (*record)(void *impl, const char *label, const char *key, const char *mine,
                   const char *const *rcpts, const char *const *replies, size_t n);
    /* fe_ledger_release */
    void (*release)(void *impl, const char *key, const char *mine, const char *const *rcpts,
                    size_t n);
    /* fe_ledger_answer_release: gives back what *ap reserved, frees it. */
    void (*answer_release)(void *impl, const char *key, const char *const *rcpts,
                           struct fe_ledger_answer **ap);
    /* The transaction of key was answered. retried: the client will send
     * the message again with recipients this answer did not confirm
     * (SMTP's one 4xx after some were reinjected), so their records are
     * still wanted; otherwise a record kept only for that may go. */
    void (*answered)(void *impl, const char *key, bool retried);
    /* fe_ledger_serve_end: the job that reserved key is over, whatever
     * the answer was (a reservation of ours left under key is then an
     * orphan, not a copy in flight). */
    void (*serve_end)(void *impl, const char *key);
};

/* The interface and the object behind it; a value, copied freely. */
struct fe_record {
    const struct fe_record_ops *ops;
    void *impl;
};

/* The Redis ledger as a record (its functions, unchanged). */
struct fe_record fe_record_of_ledger(struct fe_ledger *l);

static inline void *
fe_record_reserve(const struct fe_record *r, const char *key, const char *const *rcpts, size_t n,
                  fe_ledger_reserved_fn *cb, void *ctx)
{
    return r->ops->reserve(r->impl, key, rcpts, n, cb, ctx);
}

static inline void
fe_record_abandon(const struct fe_record *r, void **opp)
{
    r->ops->abandon(r->impl, opp);
}

static inline void
fe_record_record(const struct fe_record *r, const char *label, const char *key, const char *mine,
                 const char *const *rcpts, const char *const *replies, size_t n)
{
    r->ops->record(r->impl, label, key, mine, rcpts, replies, n);
}

static inline void
fe_record_release(const struct fe_record *r, const char *key, const char *mine,
                  const char *const *rcpts, size_t n)
{
    r->ops->release(r->impl, key, mine, rcpts, n);
}

static inline void
fe_record_answer_release(const struct fe_record *r, const char *key, const char *const *rcpts,
                         struct fe_ledger_answer **ap)
{
    r->ops->answer_release(r->impl, key, rcpts, ap);
}

static inline void
fe_record_answered(const struct fe_record *r, const char *key, bool retried)
{
    r->ops->answered(r->impl, key, retried);
}

static inline void
fe_record_serve_end(const struct fe_record *r, const char *key)
{
    r->ops->serve_end(r->impl, key);
}

#endif
