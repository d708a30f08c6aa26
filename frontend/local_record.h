/* local_record.h - the record of reinjected recipients (record.h) kept in
 * this frontend's memory, for a frontend without the Redis ledger.
 *
 * What it is for: an SMTP-mode (EHLO) transaction has one reply for all
 * its recipients; when :10025 accepted some of them and a 4xx had to be
 * given for the others, Postfix sends the message again with all of them.
 * The retry must reinject only those that did not make it, and give the
 * others the reply they got. One node without Redis needs no more than
 * its own memory for that: the retry comes back to it.
 *
 * Keyed like the ledger (fe_ledger_key: origin, XFORWARD IDENT,
 * Message-ID, body), it keeps per message the reply given to each
 * recipient :10025 accepted, and answers a reservation with ledger entries:
 * done (that reply) or reserved. It has nothing "in flight": two copies of
 * one message in this process at once are delivered as without it.
 *
 * Bounded: a message answered without such a 4xx is forgotten at once
 * (answered()); the others are kept at most ttl_s after their last record
 * and, in all, at most max_rcpts recipients, the oldest message going
 * first (logged). A restart of the frontend loses it all: the window that
 * remains without Redis (docs/exactly-once.md).
 *
 * Runs in the frontend's event loop; answers never from inside a call. */
#ifndef SLUICE_FRONTEND_LOCAL_RECORD_H
#define SLUICE_FRONTEND_LOCAL_RECORD_H

#include <stddef.h>
#include <event2/event.h>
#include "record.h"

#define FE_LOCAL_RECORD_MAX_RCPTS 20000 /* recipients held at most, all messages */

struct fe_local_record;

struct fe_local_record *fe_local_record_new(struct event_base *base, size_t max_rcpts,
                                            unsigned ttl_s);
/* Pending answers are not given. *rp may be NULL; cleared. */
void fe_local_record_destroy(struct fe_local_record **rp);

/* The local record as a record (record.h). */
struct fe_record fe_record_of_local(struct fe_local_record *r);

/* Recipients held now (tests, logs). */
size_t fe_local_record_count(const struct fe_local_record *r);

#endif
