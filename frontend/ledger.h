/* ledger.h - the exactly-once reinjection ledger in Redis (docs/exactly-once.md).
 *
 * A message is named by a digest (BLAKE2b-256, libsodium's
 * crypto_generichash) of its origin, XFORWARD IDENT (the origin Postfix's
 * queue id), Message-ID and body. Under that name a Redis hash keeps one
 * field per recipient:
 *   pending:<node>:<ms>   reserved by frontend <node> at Redis time <ms>,
 *                         reinjection under way
 *   done:<reply>          reinjected; <reply> is what our client was told
 * Before reinjecting, the frontend reserves its recipients in one Lua
 * script: a recipient already "done" gets the stored reply and is not
 * reinjected again; one "pending" under a live node is in flight elsewhere
 * (451 4.3.0); a missing or stale reservation (older than
 * dedup.pending_timeout, or whose node's registry key sluice:node:<node>
 * has expired: that frontend is dead) is taken. After the reinjection each
 * recipient is recorded "done" (2xx) or its reservation released.
 *
 * Recipients are fields, not part of the digest: Postfix may regroup a
 * message's deferred recipients differently on a retry, and a recipient
 * reinjected in one grouping must still be found in the next.
 *
 * Runs on the frontend's libevent loop with hiredis' async API. Every call
 * answers within redis.timeout, and never from inside the call: a Redis
 * that is down, refuses or stalls makes the callback report an error (the
 * caller applies dedup.on_unavailable); reconnects are attempted at most
 * once a second, on demand. */
#ifndef SLUICE_FRONTEND_LEDGER_H
#define SLUICE_FRONTEND_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>
#include "net/sl_redis.h"
#include "util/sl_util.h"

#define FE_LEDGER_KEY_PREFIX "sluice:ledger:"
#define FE_LEDGER_KEY_LEN (sizeof(FE_LEDGER_KEY_PREFIX) - 1 + 64)

struct fe_ledger;
struct fe_ledger_op;

/* What identifies one message across Postfix's retries. NULL or "" for
 * ident and message_id when absent (no XFORWARD, no Message-ID header):
 * the body and origin still name the message. */
struct fe_ledger_message {
    const char *origin;
    const char *ident;
    const char *message_id;
    const void *body;
    size_t body_len;
};

/* The raw value of the message's first Message-ID header (unfolded bytes
 * as they are, blanks at both ends trimmed), pointing into body; NULL when
 * there is none. The frontend reads it itself, without MIME parsing, so
 * the first attempt and every retry name the message alike. */
const char *fe_ledger_message_id(const char *body, size_t len, size_t *len_r);

/* key_r: "sluice:ledger:" and 64 hex digits. */
void fe_ledger_key(const struct fe_ledger_message *m, char key_r[FE_LEDGER_KEY_LEN + 1]);

enum fe_ledger_state {
    FE_LEDGER_RESERVED,  /* ours now: reinject */
    FE_LEDGER_TAKEN,     /* ours now, after a stale reservation of node */
    FE_LEDGER_DONE,      /* already reinjected: answer reply */
    FE_LEDGER_IN_FLIGHT, /* another copy is being reinjected by node: 451 */
};

struct fe_ledger_entry {
    enum fe_ledger_state state;
    char *reply; /* DONE: the stored reply line */
    char *node;  /* IN_FLIGHT, TAKEN: the reserving node */
    unsigned long long age_ms; /* IN_FLIGHT, TAKEN: age of that reservation */
};

/* Parses one element of the reserve script's answer ("reserved",
 * "took:pending:<node>:<ms>", "done:<reply>", "pending:<node>:<ms>");
 * now_ms is Redis' time from the same answer. 0, or -1 for anything else
 * (Redis replies are outside input). Free with fe_ledger_entry_clear. */
SL_WARN_UNUSED int fe_ledger_parse_entry(const char *s, size_t len, unsigned long long now_ms,
                                         struct fe_ledger_entry *entry_r);
void fe_ledger_entry_clear(struct fe_ledger_entry *entry);
/* The reservation holds this recipient for us (to reinject, or give back). */
static inline bool
fe_ledger_entry_is_ours(const struct fe_ledger_entry *e)
{
    return e->state == FE_LEDGER_RESERVED || e->state == FE_LEDGER_TAKEN;
}

/* A reserve's answer kept for later: the session reserves at end of data
 * and hands the answer to the delivery when the verdict has come. */
struct fe_ledger_answer {
    struct fe_ledger_entry *entries; /* n of them; NULL with error */
    size_t n;
    char *mine;  /* with error: the value Redis may have written, or NULL */
    char *error; /* NULL: answered */
};
/* A deep copy of a fe_ledger_reserved_fn's arguments. */
struct fe_ledger_answer *fe_ledger_answer_new(const struct fe_ledger_entry *entries, size_t n,
                                              const char *mine, const char *error);
/* Gives back what the answer reserved for rcpts (the n addresses it was
 * asked for, in order), then frees it; for an error, whatever Redis may
 * have written under mine. *ap may be NULL. */
void fe_ledger_answer_release(struct fe_ledger *l, const char *key, const char *const *rcpts,
                              struct fe_ledger_answer **ap);
void fe_ledger_answer_free(struct fe_ledger_answer **ap);

/* url is copied; node is this frontend's registry id. */
struct fe_ledger *fe_ledger_new(struct event_base *base, const struct sl_redis_url *url,
                                const char *node, unsigned ttl_s, unsigned pending_timeout_s);
/* Pending callbacks are not called. *lp may be NULL. */
void fe_ledger_destroy(struct fe_ledger **lp);

/* entries: n, in rcpts order, or NULL with error (Redis unavailable or a
 * reply we cannot read). mine: our reservation's value, for the record;
 * with error the value Redis may have written all the same, or NULL. */
typedef void fe_ledger_reserved_fn(void *ctx, const struct fe_ledger_entry *entries, size_t n,
                                   const char *mine, const char *error);
/* error NULL: recorded. */
typedef void fe_ledger_recorded_fn(void *ctx, const char *error);

/* Reserves the recipients of the message key (addresses without <>),
 * as soon as the message is received (session.c): one round trip that
 * runs while the message is scanned. The caller serves key from now until
 * it calls fe_ledger_serve_end(l, key), whatever the answer: while another
 * job of this process serves it, a reservation of ours under key is in
 * flight here (a retry during the first attempt gets 451); once none does,
 * one left behind (its release lost while Redis was away) is taken over
 * at once rather than refusing the retries for dedup.pending_timeout. */
struct fe_ledger_op *fe_ledger_reserve(struct fe_ledger *l, const char *key,
                                       const char *const *rcpts, size_t n,
                                       fe_ledger_reserved_fn *cb, void *ctx);
/* After the reinjection: replies[i] non-NULL records rcpts[i] as done with
 * that reply; NULL releases its reservation if it is still mine. */
struct fe_ledger_op *fe_ledger_record(struct fe_ledger *l, const char *key, const char *mine,
                                      const char *const *rcpts, const char *const *replies,
                                      size_t n, fe_ledger_recorded_fn *cb, void *ctx);
/* fe_ledger_record sent without waiting (Postfix's replies do not wait
 * for it, docs/exactly-once.md): written when this turn of the loop ends,
 * before any event activated after the call runs (the replies' flush); a
 * failure is logged with label, the job id. */
void fe_ledger_record_nowait(struct fe_ledger *l, const char *label, const char *key,
                             const char *mine, const char *const *rcpts,
                             const char *const *replies, size_t n);
/* The callback will not be called. *opp may be NULL. */
void fe_ledger_cancel(struct fe_ledger_op **opp);
/* For a reserve nobody waits for any more (the session ended first): the
 * callback will not be called, and what the reservation took is released
 * when Redis answers. Other ops: fe_ledger_cancel. *opp may be NULL. */
void fe_ledger_abandon(struct fe_ledger_op **opp);
/* The caller's job is over: it no longer serves key (fe_ledger_reserve). */
void fe_ledger_serve_end(struct fe_ledger *l, const char *key);
/* Releases reservations of mine (fe_ledger_record with no reply), without
 * a callback; one Redis cannot take now is given back again every second
 * until it is stale for everybody (dedup.pending_timeout). */
void fe_ledger_release(struct fe_ledger *l, const char *key, const char *mine,
                       const char *const *rcpts, size_t n);
/* Calls cb from the loop once no command waits for Redis any more (at
 * once if none does; each has a timeout): the frontend's shutdown waits
 * for the records it sent after the replies. */
void fe_ledger_when_idle(struct fe_ledger *l, void (*cb)(void *ctx), void *ctx);

/* The scripts (exposed for the unit test). */
extern const char fe_ledger_reserve_script[];
extern const char fe_ledger_record_script[];

#endif
