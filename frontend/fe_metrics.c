/* fe_metrics.c - the frontend's metrics (fe_metrics.h). */
#include "fe_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "conf/sl_config.h"
#include "frontend.h"
#include "util/sl_metrics.h"
#include "util/sl_util.h"

/* The verdict's category, amavisd-new's names. Index 0 is a job without a
 * verdict (struct fe_metrics_msg is zeroed); the last takes any other. */
static const char *const categories[] = {
    "NONE",
    "CLEAN",
    "SPAMMY",
    "SPAM",
    "BAD-HEADER",
    "OVERSIZED",
    "BANNED",
    "INFECTED",
    "UNCHECKED",
    "UNCHECKED-ENCRYPTED",
    "UNCHECKED-OVERLIMIT",
    "OTHER",
};
/* amavisd-new's destinies, tempfail first (a job without a verdict), and
 * "mixed" when the recipients of one message had different ones. */
static const char *const destinies[] = {"tempfail", "pass", "discard", "bounce", "reject", "mixed"};
enum { DEST_TEMPFAIL = 0, DEST_PASS = 1, DEST_MIXED = 5 };
static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
static const char *const results[] = {"delivered", "partial", "deferred", "rejected", "cancelled"};
enum { RJ_DELIVERED, RJ_PARTIAL, RJ_DEFERRED, RJ_REJECTED, RJ_CANCELLED };
/* reinject.h's stages; the last takes any other */
static const char *const stages[] = {"fwd-connect",  "fwd-xforward", "fwd-mail-from",
                                     "fwd-rcpt-to",  "fwd-data-cmd", "fwd-data-contents",
                                     "fwd-end-data", "other"};
static const char *const ledger_ops[] = {"reserve", "record"};

/* end of data to reply: a scan plus a reinjection, up to job.timeout */
static const double message_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                        2.5,   5,    10,    30,   60,  120,  300, 600};
static const double reinject_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,      2.5,   5,    10,    30,   60};

static struct {
    struct frontend *fe;
    const struct sl_config *config;
    struct sl_metric *messages, *message_seconds, *rcpt_replies, *replies;
    struct sl_metric *reinjections, *reinject_failures, *reinject_seconds;
    struct sl_metric *ledger_ops, *ledger_errors;
    struct sl_metric *connections, *jobs, *unsubmitted, *brokers, *brokers_alive;
    struct sl_metric *resubmitted, *duplicate_verdicts, *origin_sessions, *origin_concurrency;
} m;

/* ---- at scrape time ------------------------------------------------------ */

static void
fe_metrics_scrape(void *ctx)
{
    struct frontend_stats st;

    (void)ctx;
    frontend_stats(m.fe, &st);
    sl_metric_set(m.connections, 0, st.n_sessions);
    sl_metric_set(m.jobs, 0, st.n_jobs);
    sl_metric_set(m.unsubmitted, 0, st.link.pending);
    sl_metric_set(m.brokers, 0, st.link.n_brokers);
    sl_metric_set(m.brokers_alive, 0, st.link.n_alive);
    sl_metric_set(m.resubmitted, 0, (double)st.link.n_resubmitted);
    sl_metric_set(m.duplicate_verdicts, 0, (double)st.link.n_duplicate_verdicts);
    for (size_t i = 0; i < st.n_origins; i++) {
        size_t o = sl_metric_value_index(m.origin_sessions, 0, st.origins[i].name);
        sl_metric_set(m.origin_sessions, o, st.origins[i].active);
        sl_metric_set(m.origin_concurrency, o, st.origins[i].concurrency);
    }
}

void
fe_metrics_watch(struct sl_metrics *reg, struct frontend *fe)
{
    m.fe = fe;
    sl_metrics_on_scrape(reg, fe_metrics_scrape, NULL);
}

void
fe_metrics_register(struct sl_metrics *reg, const struct sl_config *cfg)
{
    /* every origin of the configuration, in file order */
    const char **names = sl_calloc(cfg->n_origins, sizeof(*names));
    for (size_t i = 0; i < cfg->n_origins; i++)
        names[i] = cfg->origins[i].name;
    const struct sl_metric_dim origin = {"origin", names, cfg->n_origins};
    const struct sl_metric_dim msg[] = {SL_METRIC_DIM("category", categories),
                                        SL_METRIC_DIM("destiny", destinies), origin};
    const struct sl_metric_dim class = SL_METRIC_DIM("class", classes);
    const struct sl_metric_dim result = SL_METRIC_DIM("result", results);
    const struct sl_metric_dim stage = SL_METRIC_DIM("stage", stages);
    const struct sl_metric_dim op = SL_METRIC_DIM("op", ledger_ops);
    const struct sl_metric_def defs[] = {
        SL_COUNTER_DEF(
            &m.messages, "sluice_messages_total",
            "Messages done (one per LMTP/SMTP transaction: answered, or given up because "
            "Postfix left), by the verdict's category "
            "(NONE: no verdict), destiny (mixed: recipients differed; tempfail without a "
            "verdict) and origin.",
            msg, 3, SL_METRIC_SPARSE),
        SL_HISTOGRAM_DEF(
            &m.message_seconds, "sluice_message_duration_seconds",
            "Time from the end of a message's data to its reply: scan and reinjection.", &origin, 1,
            message_bounds, SL_METRIC_SPARSE),
        SL_COUNTER_DEF(&m.rcpt_replies, "sluice_recipient_replies_total",
                       "Replies to the end of data by class: one per recipient in LMTP, one per "
                       "transaction in SMTP.",
                       &class, 1, 0),
        SL_COUNTER_DEF(&m.replies, "sluice_replies_total",
                       "Every reply line written to Postfix, by class.", &class, 1, 0),
        SL_COUNTER_DEF(
            &m.reinjections, "sluice_reinjections_total",
            "SMTP transactions to the origin's reinjection listener (:10025), by result: "
            "every recipient accepted, some, none with a 4xx, none with a 5xx, aborted "
            "because Postfix left.",
            &result, 1, 0),
        SL_COUNTER_DEF(
            &m.reinject_failures, "sluice_reinjection_failures_total",
            "Reinjection transactions that did not deliver to every recipient, by the stage "
            "of the first failure.",
            &stage, 1, 0),
        SL_HISTOGRAM_DEF(&m.reinject_seconds, "sluice_reinjection_duration_seconds",
                         "Time of one reinjection transaction.", NULL, 0, reinject_bounds, 0),
        SL_COUNTER_DEF(&m.ledger_ops, "sluice_ledger_operations_total",
                       "Calls to the exactly-once ledger in Redis.", &op, 1, 0),
        SL_COUNTER_DEF(
            &m.ledger_errors, "sluice_ledger_errors_total",
            "Ledger calls that failed: Redis unavailable, too slow (redis.timeout) or an "
            "error reply.",
            &op, 1, 0),
        SL_GAUGE_DEF(&m.connections, "sluice_frontend_connections", "LMTP/SMTP connections open.",
                     NULL, 0),
        SL_GAUGE_DEF(&m.jobs, "sluice_frontend_jobs_in_flight",
                     "Messages waiting for their verdict (with a broker, or not taken yet).", NULL,
                     0),
        SL_GAUGE_DEF(&m.unsubmitted, "sluice_frontend_jobs_unsubmitted",
                     "Messages that no broker has taken yet.", NULL, 0),
        SL_GAUGE_DEF(&m.brokers, "sluice_frontend_brokers",
                     "Brokers configured (broker.endpoints).", NULL, 0),
        SL_GAUGE_DEF(&m.brokers_alive, "sluice_frontend_brokers_alive",
                     "Brokers heard from within 3 heartbeats.", NULL, 0),
        SL_COUNTER_DEF(&m.resubmitted, "sluice_frontend_resubmitted_total",
                       "Jobs resubmitted after their broker died.", NULL, 0, 0),
        SL_COUNTER_DEF(&m.duplicate_verdicts, "sluice_frontend_duplicate_verdicts_total",
                       "Late second verdicts of a resubmitted job, dropped.", NULL, 0, 0),
        SL_GAUGE_DEF(&m.origin_sessions, "sluice_origin_sessions",
                     "Transactions holding one of the origin's concurrency slots (MAIL to reply).",
                     &origin, 1),
        SL_GAUGE_DEF(
            &m.origin_concurrency, "sluice_origin_concurrency",
            "The origin's slots (origins.NAME.concurrency): past them MAIL gets 451 4.3.2.",
            &origin, 1),
    };

    m.config = cfg;
    sl_metrics_add(reg, defs, SL_N_ELEMENTS(defs));
    free(names); /* the registry copied the values */
}

/* ---- counting ------------------------------------------------------------ */

static size_t
class_of(const char *line)
{
    if (line == NULL || line[0] < '2' || line[0] > '5')
        return 3; /* not a reply we would write: counted as a failure */
    return (size_t)(line[0] - '2');
}

/* A destiny from the wire (outside input: checked) as an index. */
static unsigned char
destiny_index(Sluice__Destiny d)
{
    switch (d) {
    case SLUICE__DESTINY__D_PASS:
        return DEST_PASS;
    case SLUICE__DESTINY__D_DISCARD:
        return DEST_PASS + 1;
    case SLUICE__DESTINY__D_BOUNCE:
        return DEST_PASS + 2;
    case SLUICE__DESTINY__D_REJECT:
        return DEST_PASS + 3;
    case SLUICE__DESTINY__D_TEMPFAIL:
    default:
        return DEST_TEMPFAIL;
    }
}

void
fe_metrics_msg_verdict(struct fe_metrics_msg *mm, const Sluice__Verdict *v)
{
    size_t c = 0;

    mm->verdict = true;
    for (size_t i = 1; i < SL_N_ELEMENTS(categories) && c == 0; i++)
        if (v->category != NULL && strcmp(v->category, categories[i]) == 0)
            c = i;
    /* a worker's answer is outside input: anything unknown is OTHER */
    mm->category = (unsigned char)(c != 0 ? c : SL_N_ELEMENTS(categories) - 1);
    if (!v->ok) {
        mm->destiny = DEST_TEMPFAIL;
        return;
    }
    if (v->n_rcpts == 0) { /* everyone passes (docs/protocol-wire.md) */
        mm->destiny = DEST_PASS;
        return;
    }
    for (size_t i = 0; i < v->n_rcpts; i++) {
        unsigned char d = destiny_index(v->rcpts[i]->destiny);
        if (i == 0)
            mm->destiny = d;
        else if (mm->destiny != d)
            mm->destiny = DEST_MIXED;
    }
}

void
fe_metrics_msg_done(const struct fe_metrics_msg *mm, const struct sl_origin_config *origin,
                    const char *const *replies, size_t n, unsigned long long start_ms)
{
    size_t o, dest = mm->destiny;

    if (m.messages == NULL || origin == NULL)
        return;
    o = (size_t)(origin - m.config->origins);
    SL_BUG_ON(o >= m.config->n_origins);
    if (!mm->verdict && replies != NULL) {
        /* answered without a scan: from the ledger (every reply 2xx) or a
         * failure (a 4xx) */
        dest = DEST_PASS;
        for (size_t i = 0; i < n; i++)
            if (class_of(replies[i]) != 0)
                dest = DEST_TEMPFAIL;
    }
    sl_metric_inc(m.messages, sl_metric_index(m.messages, mm->category, dest, o));
    sl_metric_observe(m.message_seconds, o, (double)(sl_now_mono_ms() - start_ms) / 1000);
    for (size_t i = 0; replies != NULL && i < n; i++)
        sl_metric_inc(m.rcpt_replies, class_of(replies[i]));
}

void
fe_metrics_reply(const char *line)
{
    sl_metric_inc(m.replies, class_of(line));
}

unsigned long long
fe_metrics_now(void)
{
    return m.reinjections != NULL ? sl_now_mono_ms() : 0;
}

void
fe_metrics_reinjection(size_t n_ok, size_t n_5xx, size_t n, const char *stage, bool cancelled,
                       unsigned long long start_ms)
{
    size_t r;

    if (m.reinjections == NULL)
        return;
    if (cancelled)
        r = RJ_CANCELLED;
    else if (n_ok == n)
        r = RJ_DELIVERED;
    else if (n_ok > 0)
        r = RJ_PARTIAL;
    else
        r = n_5xx == n ? RJ_REJECTED : RJ_DEFERRED;
    sl_metric_inc(m.reinjections, r);
    if (r != RJ_DELIVERED && r != RJ_CANCELLED)
        sl_metric_inc(m.reinject_failures, sl_metric_value_index(m.reinject_failures, 0, stage));
    sl_metric_observe(m.reinject_seconds, 0, (double)(sl_now_mono_ms() - start_ms) / 1000);
}

void
fe_metrics_ledger(bool reserve, bool failed)
{
    sl_metric_inc(failed ? m.ledger_errors : m.ledger_ops, reserve ? 0 : 1);
}
