/* sl_drill.h - `sluice drill`, the failover drill: it plays an origin
 * Postfix against running frontends and counts what comes back
 * (docs/operations.md, "The failover drill").
 *
 * SYNOPSIS
 *   Three parts, one file each:
 *   - the tally (sl_drill_tally.c): the pure accounting. Per message and
 *     recipient: sent, the final reply, the copies delivered; from these
 *     the figures (accepted, delivered, lost, duplicates, tempfails,
 *     latency percentiles). No I/O, no clock: times are passed in.
 *   - the sink (sl_drill_sink.c): the origin's reinjection listener, an
 *     SMTP server on --sink that records every delivered Message-ID and
 *     recipient in the tally.
 *   - the client (sl_drill.c): a Postfix-like LMTP client to --via (LHLO,
 *     XFORWARD with a queue id that stays the same on every retry, MAIL,
 *     RCPT, DATA, one reply per recipient; a 4xx, a lost connection or a
 *     timeout defers the message, retried 1 s later, then 2, 4, 8, 10 s),
 *     the rate, the progress line and the summary (sl_cli_drill).
 *
 *   Messages are numbered 0..count-1; recipient k of every message is
 *   <rcpt{k+1}@drill.invalid>; message n's Message-ID is
 *   <drill-RUNID-n@drill.invalid>, RUNID being fresh for every run, so
 *   copies of another run's messages are recognised and left out.
 *
 * OWNERSHIP
 *   A tally belongs to whoever made it with _new; the sink only writes to
 *   the tally it was given, which must outlive it. */
#ifndef SL_DRILL_H
#define SL_DRILL_H

#include <stdbool.h>
#include <stddef.h>
#include "util/sl_util.h"

struct event_base;

/* Bounds: the drill is a test, not a load generator for ever. */
#define SL_DRILL_MAX_COUNT 1000000u
#define SL_DRILL_MAX_RCPTS 100u
#define SL_DRILL_MAX_UNITS 10000000u /* count x rcpts */

#define SL_DRILL_DOMAIN "drill.invalid"

/* ---- the tally -------------------------------------------------------- */

struct sl_drill_tally;

/* The figures of a run (docs/operations.md): messages, except duplicates
 * (extra copies of a message to one recipient) and tempfails (attempts
 * deferred). */
struct sl_drill_summary {
    unsigned long sent;                /* messages tried at least once */
    unsigned long accepted;            /* every recipient answered 2xx (at the last try) */
    unsigned long delivered;           /* every recipient has a copy at the sink */
    unsigned long lost;                /* a recipient answered 2xx, and no copy arrived */
    unsigned long duplicates;          /* copies beyond the first, over all recipients */
    unsigned long tempfails;           /* attempts deferred: 4xx, connection lost, timeout */
    unsigned long rejected;            /* a recipient answered 5xx: not tried again */
    unsigned long unfinished;          /* neither accepted nor rejected when the drill ended */
    unsigned long foreign;             /* copies at the sink that are not this run's */
    unsigned long long p50_ms, p99_ms; /* first attempt to acceptance, accepted messages */
};

/* The running counts, cheap enough for a progress line every second. */
struct sl_drill_progress {
    unsigned long sent, accepted, delivered, tempfails;
};

enum sl_drill_rcpt_state {
    SL_DRILL_PENDING = 0, /* no final reply yet */
    SL_DRILL_ACCEPTED,
    SL_DRILL_REJECTED,
};

struct sl_drill_tally *sl_drill_tally_new(unsigned count, unsigned rcpts);
void sl_drill_tally_destroy(struct sl_drill_tally **tallyp);

/* An attempt of message seq starts at now_ms (the first one makes it "sent"). */
void sl_drill_tally_attempt(struct sl_drill_tally *t, unsigned seq, unsigned long long now_ms);
/* The reply for recipient rcpt of message seq: 2xx accepted, 5xx rejected
 * (both final: a later reply changes nothing), 4xx nothing yet. */
void sl_drill_tally_reply(struct sl_drill_tally *t, unsigned seq, unsigned rcpt, int code,
                          unsigned long long now_ms);
/* An attempt of message seq was deferred (counts one tempfail). */
void sl_drill_tally_deferred(struct sl_drill_tally *t, unsigned seq);
enum sl_drill_rcpt_state sl_drill_tally_rcpt(const struct sl_drill_tally *t, unsigned seq,
                                             unsigned rcpt);
/* Every recipient of seq has its final reply. */
bool sl_drill_tally_final(const struct sl_drill_tally *t, unsigned seq);

/* A copy arrived at the sink. Returns 1 (the first for that recipient),
 * 2 (a duplicate) or 0 (not this run's: counted as foreign). */
int sl_drill_tally_delivered(struct sl_drill_tally *t, unsigned seq, unsigned rcpt);
/* Every recipient that was accepted has its copy. */
bool sl_drill_tally_all_delivered(const struct sl_drill_tally *t);
void sl_drill_tally_foreign(struct sl_drill_tally *t);

void sl_drill_tally_progress(const struct sl_drill_tally *t, struct sl_drill_progress *p_r);
/* Walks every message: once, at the end. */
void sl_drill_tally_summary(const struct sl_drill_tally *t, struct sl_drill_summary *sum_r);

/* The p-th percentile (0 < p <= 100, nearest rank) of n values, sorted
 * here in place; 0 when n is 0. */
unsigned long long sl_drill_percentile(unsigned long long *values, size_t n, double p);

/* <drill-RUNID-SEQ@drill.invalid> (angle brackets and surrounding blanks
 * optional): 0 and *seq_r when RUNID is runid, else -1. */
SL_WARN_UNUSED int sl_drill_msgid_seq(const char *msgid, const char *runid, unsigned *seq_r);
/* rcptK@drill.invalid (K from 1): 0 and *rcpt_r = K - 1, else -1. */
SL_WARN_UNUSED int sl_drill_rcpt_index(const char *address, unsigned *rcpt_r);

/* ---- the sink ------------------------------------------------------------ */

struct sl_drill_sink;

/* Listens on hostport ("127.0.0.1:10025", "[::1]:10025"); NULL and *error_r
 * when it cannot. */
struct sl_drill_sink *sl_drill_sink_new(struct event_base *base, const char *hostport,
                                        const char *runid, struct sl_drill_tally *tally,
                                        char **error_r);
/* Closes the listener and every connection. */
void sl_drill_sink_destroy(struct sl_drill_sink **sinkp);
unsigned long sl_drill_sink_transactions(const struct sl_drill_sink *sink);

#endif
