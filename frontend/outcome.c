/* outcome.c - per-recipient destinies: grouping, reinjection, DSNs,
 * replies and the log's action words (outcome.h). */
#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "quarantine.h"
#include "record.h"
#include "reply_map.h"
#include "mail/sl_message.h"
#include "net/sl_wire.h"
#include "util/sl_body.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define REPLY_MAX 510

struct rcpt_state {
    int destiny;
    bool tagged;
    bool dsn_suppressed;
    bool remote;
    char *category;
    char *reason;
    int code; /* final SMTP code, 0 while pending */
    char *reply;
    bool quarantined; /* its copy is in the quarantine (log word Quarantined) */
    bool relayed; /* :10025 accepted it (now, or the record says so) */
};

struct group {
    struct fe_delivery *d;
    size_t *idx; /* recipients, in RCPT order */
    size_t n;
    const Sluice__RecipientVerdict *key; /* during start only: whose edits */
    struct sl_header_edit *edits;        /* owned copies: for everyone, then the group's */
    size_t n_edits;
    size_t *go; /* the recipients reinjected (all, or those the record left) */
    size_t n_go;
    char *mine; /* our reservation in the record, NULL: nothing reserved */
    struct fe_reinject_op *op;
};

struct fe_delivery {
    struct fe_reinjector *reinjector;
    fe_delivery_done_fn *done;
    fe_reinject_wanted_fn *wanted;
    void *ctx;
    char *job_id;
    char *sender;
    bool lmtp;
    bool originating;
    struct rcpt_state *r;
    size_t n;
    struct group *groups;
    size_t n_groups;
    struct fe_reinject_op *dsn_op;
    size_t *dsn_idx; /* bounced recipients the DSN reports */
    size_t n_dsn;
    /* for the report (start_dsn) */
    char *dsn_hostname, *dsn_message_id;
    unsigned long long dsn_arrival_ms;
    char *dsn_mine; /* the reservation of dsn_idx[] in the record, NULL: none */
    bool refusals;  /* the report in flight is SMTP mode's, of :10025's refusals */
    bool refusals_done;
    size_t pending;
    bool cancelled;
    struct event *later; /* completion when nothing had to be sent */
    /* the request, kept for the record and the report; its strings
     * belong to the job, which outlives us */
    struct fe_reinject_request req;
    struct fe_reinject_rcpt *rcpts;
    struct fe_record record; /* ops NULL: none */
    char *record_key;
    bool tempfail_unavailable;
    bool reinjected;
    char *queued_as;
    char *detail;
    char action[512];
    /* the quarantine (quarantine.h), done before anything goes out */
    struct fe_quar_task *quar_task;
    struct fe_ledger_answer *quar_answer; /* the reservation, kept meanwhile */
    char *quarantine_id;
};

/* ---- helpers ---------------------------------------------------------- */

static bool
edits_equal(const Sluice__RecipientVerdict *a, const Sluice__RecipientVerdict *b)
{
    if (a->n_edits != b->n_edits)
        return false;
    for (size_t i = 0; i < a->n_edits; i++)
        if (a->edits[i]->op != b->edits[i]->op || strcmp(a->edits[i]->name, b->edits[i]->name) ||
            strcmp(a->edits[i]->value, b->edits[i]->value))
            return false;
    return true;
}

static void
set_reply(struct rcpt_state *r, int code, char *text_owned)
{
    free(r->reply);
    if (strlen(text_owned) > REPLY_MAX)
        text_owned[REPLY_MAX] = '\0';
    r->code = code;
    r->reply = text_owned;
}

static const char *
direction_word(bool originating, bool remote)
{
    return originating ? (remote ? "Outbound" : "Internal") : (remote ? "OpenRelay" : "Inbound");
}

void
fe_action_word(int destiny, bool tagged, bool dsn_suppressed, int code, bool originating,
               bool remote, char *out, size_t len)
{
    const char *w;

    if (code >= 400 && code < 500)
        w = "TempFailed";
    else if (code >= 500)
        w = "Rejected";
    else if (destiny == SLUICE__DESTINY__D_DISCARD)
        w = "Discarded";
    else if (destiny == SLUICE__DESTINY__D_BOUNCE)
        w = dsn_suppressed ? "NoBounce" : "Bounced";
    else
        w = tagged ? "RelayedTagged" : "Relayed";
    snprintf(out, len, "%s%s", w, direction_word(originating, remote));
}

char *
fe_verdict_log_bank(const Sluice__Verdict *v)
{
    struct sl_buf b;

    sl_buf_init(&b);
    if (v->policy_bank != NULL && v->policy_bank[0] != '\0') {
        sl_buf_printf(&b, " %s", v->policy_bank);
        for (char *p = b.data; *p != '\0'; p++) /* amavis' bank path: A/B */
            if (*p == ',')
                *p = '/';
    }
    if (v->originating)
        sl_buf_append_str(&b, " LOCAL");
    return sl_buf_steal(&b, NULL);
}

void
fe_verdict_log_parts(const Sluice__Verdict *v, char **category_r, char **hits_r)
{
    const char *cat = v->category != NULL && v->category[0] != '\0' ? v->category : "CLEAN";
    const Sluice__ScanFacts *f = v->facts;

    *hits_r = NULL;
    if (f != NULL && strcmp(cat, "INFECTED") == 0 && f->n_virus_names > 0) {
        struct sl_buf b;
        sl_buf_init(&b);
        sl_buf_printf(&b, "%s (", cat);
        for (size_t i = 0; i < f->n_virus_names && i < 10; i++)
            sl_buf_printf(&b, "%s%s", i ? "," : "", f->virus_names[i]);
        sl_buf_append_str(&b, ")");
        *category_r = sl_buf_steal(&b, NULL);
    } else if (f != NULL && strcmp(cat, "BANNED") == 0 && f->n_banned > 0) {
        *category_r = sl_asprintf("%s (%s)", cat, f->banned[0]);
    } else {
        *category_r = sl_strdup(cat);
    }
    if (f != NULL && f->spam_scanned) {
        char buf[64];
        sl_format_score(f->spam_score, buf, sizeof(buf)); /* "1000", as amavis */
        *hits_r = sl_strdup(buf);
    }
}

/* ---- completion ------------------------------------------------------- */

static void
delivery_free(struct fe_delivery *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->r[i].category);
        free(d->r[i].reason);
        free(d->r[i].reply);
    }
    free(d->r);
    for (size_t g = 0; g < d->n_groups; g++) {
        struct group *gr = &d->groups[g];
        for (size_t k = 0; k < gr->n_edits; k++) {
            free((char *)gr->edits[k].name);
            free((char *)gr->edits[k].value);
        }
        free(gr->edits);
        free(gr->idx);
        free(gr->go);
        free(gr->mine);
    }
    free(d->groups);
    free(d->rcpts);
    sl_body_unref(&d->req.body);
    free(d->record_key);
    free(d->dsn_idx);
    free(d->dsn_hostname);
    free(d->dsn_message_id);
    free(d->dsn_mine);
    fe_quar_task_cancel(&d->quar_task);
    fe_ledger_answer_free(&d->quar_answer);
    free(d->quarantine_id);
    if (d->later != NULL)
        event_free(d->later);
    free(d->queued_as);
    free(d->detail);
    free(d->job_id);
    free(d->sender);
    free(d);
}

/* amavisd-new lists the words sorted, "Relayed" under its internal name
 * "RelayedUntagged" (so "RelayedTaggedInbound,RelayedInbound"). */
#define ACTION_WORD_MAX 64
#define ACTION_WORDS_MAX 36 /* 9 actions x 4 directions */

static void
action_sort_key(const char *w, char *key, size_t len)
{
    bool plain = strncmp(w, "Relayed", 7) == 0 && strncmp(w + 7, "Tagged", 6) != 0;
    snprintf(key, len, plain ? "RelayedUntagged%s" : "%s", plain ? w + 7 : w);
}

static int
action_cmp(const void *a, const void *b)
{
    char ka[ACTION_WORD_MAX + 16], kb[ACTION_WORD_MAX + 16];
    action_sort_key(a, ka, sizeof(ka));
    action_sort_key(b, kb, sizeof(kb));
    return strcmp(ka, kb);
}

static bool smtp_report_refusals(struct fe_delivery *d);

static void
finish(struct fe_delivery *d)
{
    struct fe_delivery_result res = {.cancelled = d->cancelled};
    char words[ACTION_WORDS_MAX][ACTION_WORD_MAX];
    size_t n_words = 0;

    /* SMTP mode: :10025's permanent refusals are reported to the sender
     * before the one reply (it runs finish() again when done) */
    if (!d->cancelled && !d->lmtp && smtp_report_refusals(d))
        return;
    if (!d->cancelled) {
        res.replies = sl_calloc(d->n, sizeof(char *));
        res.n_replies = d->n;
        for (size_t i = 0; i < d->n; i++) {
            struct rcpt_state *r = &d->r[i];
            res.replies[i] = r->reply;
            if (r->destiny == SLUICE__DESTINY__D_PASS && r->code >= 200 && r->code < 300)
                res.passed = true;
            SL_BUG_ON(n_words == ACTION_WORDS_MAX); /* more than fe_action_word makes */
            fe_action_word(r->destiny, r->tagged, r->dsn_suppressed, r->code, d->originating,
                           r->remote, words[n_words], sizeof(words[n_words]));
            bool seen = false; /* each word once */
            for (size_t k = 0; k < n_words && !seen; k++)
                seen = strcmp(words[k], words[n_words]) == 0;
            if (!seen)
                n_words++;
            if (r->quarantined) { /* amavis' "{DiscardedInbound,QuarantinedInbound}" */
                SL_BUG_ON(n_words == ACTION_WORDS_MAX);
                snprintf(words[n_words], sizeof(words[n_words]), "Quarantined%s",
                         direction_word(d->originating, r->remote));
                seen = false;
                for (size_t k = 0; k < n_words && !seen; k++)
                    seen = strcmp(words[k], words[n_words]) == 0;
                if (!seen)
                    n_words++;
            }
        }
        qsort(words, n_words, sizeof(words[0]), action_cmp);
        for (size_t k = 0; k < n_words; k++)
            snprintf(d->action + strlen(d->action), sizeof(d->action) - strlen(d->action), "%s%s",
                     k > 0 ? "," : "", words[k]);
        /* SMTP: one reply for all (outcome.h) */
        int *codes = sl_calloc(d->n ? d->n : 1, sizeof(*codes));
        size_t first_relayed = d->n;
        char combined[REPLY_MAX + 1];
        for (size_t i = 0; i < d->n; i++) {
            codes[i] = d->r[i].code;
            if (first_relayed == d->n && d->r[i].relayed)
                first_relayed = i;
        }
        fe_reply_combined(d->job_id, codes, (const char *const *)res.replies, d->n, first_relayed,
                          combined, sizeof(combined));
        free(codes);
        res.combined = sl_strdup(combined);
        /* answered: in SMTP mode a 4xx sends every recipient back, so what
         * was reinjected must still be found then; otherwise Postfix holds
         * every recipient's answer */
        if (d->record.ops != NULL)
            fe_record_answered(&d->record, d->record_key, !d->lmtp && combined[0] == '4');
        res.action = d->action;
        res.queued_as = d->queued_as;
        res.detail = d->detail;
        res.reinjected = d->reinjected;
        res.quarantine = d->quarantine_id;
    }
    d->done(d->ctx, &res);
    free(res.replies);
    free(res.combined);
    delivery_free(d);
}

static void
one_done(struct fe_delivery *d)
{
    SL_BUG_ON(d->pending == 0);
    if (--d->pending == 0)
        finish(d);
}

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg);
}

static void
note_failure(struct fe_delivery *d, const struct fe_reinject_result *res, size_t k)
{
    if (d->detail != NULL)
        return;
    d->detail = sl_asprintf("reinject %s: %d %s", res->stage ? res->stage : "fwd",
                            res->rcpts[k].code, res->rcpts[k].reply ? res->rcpts[k].reply : "");
}

/* ---- the record of what was reinjected (record.h) --------------------- */

/* Records what happened to the group's reserved recipients: done with our
 * reply for a 2xx, released otherwise (a retry reinjects those). Written
 * before Postfix's replies (queued after it, at the end of the same loop
 * turn), not waited for: a retry comes only when a reply
 * was lost or was a 4xx, long after this reached Redis
 * (docs/exactly-once.md); the local record has it at once. */
static void
group_record(struct group *g)
{
    struct fe_delivery *d = g->d;
    const char **rcpts, **replies;

    rcpts = sl_calloc(g->n_go, sizeof(*rcpts));
    replies = sl_calloc(g->n_go, sizeof(*replies));
    for (size_t k = 0; k < g->n_go; k++) {
        const struct rcpt_state *r = &d->r[g->go[k]];
        rcpts[k] = d->req.rcpts[g->go[k]].address;
        replies[k] = r->code >= 200 && r->code < 300 ? r->reply : NULL;
    }
    fe_record_record(&d->record, d->job_id, d->record_key, g->mine, rcpts, replies, g->n_go);
    free(rcpts);
    free(replies);
}

static void on_group_done(void *ctx, const struct fe_reinject_result *res);
static bool group_wanted(void *ctx);
static int start_dsn(struct fe_delivery *d);

static void
group_start(struct fe_delivery *d, struct group *gr)
{
    struct fe_reinject_rcpt *rcpts;
    struct fe_reinject_request greq = d->req;

    if (gr->n_go == 0)
        return;
    rcpts = sl_calloc(gr->n_go, sizeof(*rcpts));
    for (size_t k = 0; k < gr->n_go; k++)
        rcpts[k] = d->req.rcpts[gr->go[k]];
    greq.rcpts = rcpts;
    greq.n_rcpts = gr->n_go;
    greq.edits = gr->edits;
    greq.n_edits = gr->n_edits;
    gr->op = fe_reinject_start(d->reinjector, &greq, on_group_done, group_wanted, gr);
    free(rcpts);
    SL_BUG_ON(gr->op == NULL);
    d->pending++;
}

/* What the reservation says of recipient i (en NULL: no ledger answer):
 * true if it is ours to send; otherwise its reply is set, the stored one
 * (done) or 451 (in flight elsewhere, doing: "delivered" or "handled"). */
static bool
entry_says_go(struct fe_delivery *d, size_t i, const struct fe_ledger_entry *en,
              const char *doing, size_t *already, size_t *in_flight)
{
    if (en == NULL || fe_ledger_entry_is_ours(en))
        return true;
    if (en->state == FE_LEDGER_DONE) {
        (*already)++;
        set_reply(&d->r[i], atoi(en->reply), sl_strdup(en->reply));
        d->r[i].relayed = d->r[i].code >= 200 && d->r[i].code < 300;
        return false;
    }
    (*in_flight)++;
    sl_info("%s: ledger: <%s> is being reinjected by %s (%llu ms ago); 451", d->job_id,
            d->req.rcpts[i].address, en->node, en->age_ms);
    set_reply(&d->r[i], 451,
              sl_asprintf("451 4.3.0 id=%s, another copy of this message is being %s, try "
                          "again later",
                          d->job_id, doing));
    return false;
}

/* Starts what goes out: each group's reinjection and the report of the
 * bounced recipients. Without a record, everything. With it, a (the
 * reservation made at end of data, entries in RCPT order) decides:
 * passed recipients it reserved are reinjected, those already done get
 * the stored reply, those in flight elsewhere 451. Recipients the verdict
 * does not pass keep the verdict's reply, and a reservation taken for
 * them is given back. */
static void
delivery_send(struct fe_delivery *d, const struct fe_ledger_answer *a)
{
    static const struct fe_ledger_answer none = {.error = "no reservation was made"};

    if (d->record.ops == NULL) {
        for (size_t g = 0; g < d->n_groups; g++) {
            struct group *gr = &d->groups[g];
            memcpy(gr->go, gr->idx, gr->n * sizeof(size_t));
            gr->n_go = gr->n;
            group_start(d, gr);
        }
        if (d->n_dsn > 0)
            SL_BUG_ON(start_dsn(d) < 0);
        return;
    }
    if (a == NULL)
        a = &none;
    const char *error = a->error;
    size_t already = 0, in_flight = 0;
    bool *passed = sl_calloc(d->n ? d->n : 1, sizeof(*passed));

    if (error == NULL && a->n != d->n)
        error = "the reservation does not match the recipients";
    if (error != NULL && d->tempfail_unavailable) {
        sl_warn("%s: ledger unavailable (%s): tempfailing (dedup.on_unavailable: tempfail)",
                d->job_id, error);
        /* nothing goes out: every recipient to reinject or to report */
        for (size_t i = 0; i < d->n; i++)
            if (d->r[i].reply == NULL)
                set_reply(&d->r[i], 451,
                          sl_asprintf("451 4.3.0 id=%s, duplicate check unavailable, try again "
                                      "later",
                                      d->job_id));
        d->n_dsn = 0;
        free(passed);
        return;
    }
    if (error != NULL)
        sl_warn("%s: ledger unavailable (%s): reinjecting without duplicate suppression "
                "(dedup.on_unavailable: deliver)",
                d->job_id, error);
    for (size_t g = 0; g < d->n_groups; g++) {
        struct group *gr = &d->groups[g];
        for (size_t k = 0; k < gr->n; k++) {
            size_t i = gr->idx[k];
            const struct fe_ledger_entry *en = error == NULL ? &a->entries[i] : NULL;
            passed[i] = true;
            if (entry_says_go(d, i, en, "delivered", &already, &in_flight)) {
                if (en != NULL && en->state == FE_LEDGER_TAKEN)
                    sl_notice("%s: ledger: <%s> took over the reservation of %s (%llu s old, or "
                              "that node is gone)",
                              d->job_id, d->req.rcpts[i].address, en->node, en->age_ms / 1000);
                gr->go[gr->n_go++] = i;
            }
        }
        if (error == NULL && gr->n_go > 0)
            gr->mine = sl_strdup(a->mine);
        group_start(d, gr);
    }
    /* The bounced recipients alike: a report only for those reserved for
     * us (none went out for a recipient done, one is going out elsewhere
     * for one in flight). */
    size_t n_report = 0;
    for (size_t k = 0; k < d->n_dsn; k++) {
        size_t i = d->dsn_idx[k];
        const struct fe_ledger_entry *en = error == NULL ? &a->entries[i] : NULL;
        passed[i] = true; /* kept, recorded once the report is sent */
        if (entry_says_go(d, i, en, "handled", &already, &in_flight))
            d->dsn_idx[n_report++] = i;
    }
    d->n_dsn = n_report;
    if (d->n_dsn > 0) {
        if (error == NULL)
            d->dsn_mine = sl_strdup(a->mine);
        SL_BUG_ON(start_dsn(d) < 0);
    }
    if (error == NULL) {
        const char **give_back = sl_calloc(d->n ? d->n : 1, sizeof(*give_back));
        size_t n_back = 0;
        for (size_t i = 0; i < d->n; i++)
            if (!passed[i] && fe_ledger_entry_is_ours(&a->entries[i]))
                give_back[n_back++] = d->req.rcpts[i].address;
        fe_record_release(&d->record, d->record_key, a->mine, give_back, n_back);
        free(give_back);
    }
    if (already > 0) {
        sl_info("%s: %s: %zu recipient(s) already reinjected or reported; stored reply "
                "given, not sent again",
                d->job_id, d->record.ops->name, already);
        if (d->detail == NULL)
            d->detail =
                sl_asprintf("%s: %zu recipient(s) already delivered", d->record.ops->name, already);
    }
    if (in_flight > 0 && d->detail == NULL)
        d->detail = sl_asprintf("ledger: %zu recipient(s) in flight elsewhere", in_flight);
    free(passed);
}

static void
on_group_done(void *ctx, const struct fe_reinject_result *res)
{
    struct group *g = ctx;
    struct fe_delivery *d = g->d;

    g->op = NULL;
    if (res->cancelled) {
        d->cancelled = true;
    } else {
        SL_BUG_ON(res->n_rcpts != g->n_go);
        for (size_t k = 0; k < g->n_go; k++) {
            char text[REPLY_MAX + 1];
            fe_reply_for_rcpt(d->job_id, res, &res->rcpts[k], text, sizeof(text));
            int code = atoi(text);
            set_reply(&d->r[g->go[k]], code, sl_strdup(text));
            if (code >= 400)
                note_failure(d, res, k);
            else
                d->reinjected = d->r[g->go[k]].relayed = true;
        }
        if (res->queued_as != NULL && d->queued_as == NULL)
            d->queued_as = sl_strdup(res->queued_as);
    }
    if (g->mine != NULL)
        group_record(g);
    one_done(d);
}

static void
on_dsn_done(void *ctx, const struct fe_reinject_result *res)
{
    struct fe_delivery *d = ctx;
    bool sent = !res->cancelled && res->n_rcpts == 1 && res->rcpts[0].from_mta &&
                res->rcpts[0].code >= 200 && res->rcpts[0].code < 300;

    d->dsn_op = NULL;
    if (res->cancelled)
        d->cancelled = true;
    if (sent)
        d->reinjected = true; /* :10025 took the report */
    for (size_t k = 0; k < d->n_dsn && !res->cancelled; k++) {
        struct rcpt_state *r = &d->r[d->dsn_idx[k]];
        if (sent && d->refusals) {
            r->destiny = SLUICE__DESTINY__D_BOUNCE;
            set_reply(r, 250,
                      sl_asprintf("250 2.0.0 id=%s, <%s> refused by the next-hop MTA, the "
                                  "sender notified",
                                  d->job_id, d->req.rcpts[d->dsn_idx[k]].address));
        } else if (sent) {
            set_reply(r, 250,
                      sl_asprintf("250 2.7.0 Ok, bounced, id=%s - %s", d->job_id, r->reason));
        } else {
            set_reply(r, 451,
                      sl_asprintf("451 4.5.0 id=%s, cannot send the non-delivery report "
                                  "(%d %s), try again later",
                                  d->job_id, res->n_rcpts ? res->rcpts[0].code : 0,
                                  res->n_rcpts && res->rcpts[0].reply ? res->rcpts[0].reply
                                                                      : "no reply"));
        }
    }
    if (d->dsn_mine != NULL) {
        /* as a group's record (group_record): a retry sends no second report */
        const char **rcpts = sl_calloc(d->n_dsn, sizeof(*rcpts));
        const char **replies = sl_calloc(d->n_dsn, sizeof(*replies));
        for (size_t k = 0; k < d->n_dsn; k++) {
            rcpts[k] = d->req.rcpts[d->dsn_idx[k]].address;
            replies[k] = sent ? d->r[d->dsn_idx[k]].reply : NULL;
        }
        fe_record_record(&d->record, d->job_id, d->record_key, d->dsn_mine, rcpts, replies,
                         d->n_dsn);
        free(rcpts);
        free(replies);
    }
    if (!sent && !res->cancelled) {
        sl_warn("%s: the non-delivery report could not be sent: %d %s", d->job_id,
                res->n_rcpts ? res->rcpts[0].code : 0,
                res->n_rcpts && res->rcpts[0].reply ? res->rcpts[0].reply : "no reply");
        note_failure(d, res, 0);
    } else if (sent) {
        sl_info("%s: non-delivery report to <%s> sent: %s", d->job_id, d->sender,
                res->rcpts[0].reply ? res->rcpts[0].reply : "");
    }
    one_done(d);
}

/* The reinjector asks with its op's context; the job wants its own. */
static bool
group_wanted(void *ctx)
{
    struct group *g = ctx;
    /* reserved in the ledger: finish, so the retry finds the reply */
    if (g->mine != NULL && g->d->record.ops->finish_detached)
        return true;
    return g->d->wanted == NULL || g->d->wanted(g->d->ctx);
}

static bool
dsn_wanted(void *ctx)
{
    struct fe_delivery *d = ctx;
    /* reserved in the ledger: finish, so the retry finds the reply */
    if (d->dsn_mine != NULL && d->record.ops->finish_detached)
        return true;
    return d->wanted == NULL || d->wanted(d->ctx);
}

/* ---- the quarantine, first (quarantine.h) ---------------------------- */

/* Recipients that already have their reply (the quarantine failed for
 * them) leave the groups to reinject and the report: nothing goes out
 * for them, Postfix retries. */
static void
delivery_drop_answered(struct fe_delivery *d)
{
    for (size_t g = 0; g < d->n_groups; g++) {
        struct group *gr = &d->groups[g];
        size_t n = 0;
        for (size_t k = 0; k < gr->n; k++)
            if (d->r[gr->idx[k]].reply == NULL)
                gr->idx[n++] = gr->idx[k];
        gr->n = n;
    }
    size_t n = 0;
    for (size_t k = 0; k < d->n_dsn; k++)
        if (d->r[d->dsn_idx[k]].reply == NULL)
            d->dsn_idx[n++] = d->dsn_idx[k];
    d->n_dsn = n;
}

static void
on_quar_done(void *ctx, const struct fe_quar_result *res)
{
    struct fe_delivery *d = ctx;

    d->quar_task = NULL;
    for (size_t i = 0; i < d->n; i++) {
        d->r[i].quarantined = res->quarantined[i];
        if (res->replies[i] != NULL)
            set_reply(&d->r[i], atoi(res->replies[i]), sl_strdup(res->replies[i]));
    }
    if (res->quarantine_id != NULL) {
        d->quarantine_id = sl_strdup(res->quarantine_id);
        /* amavis marks the copies it delivers of a quarantined message */
        for (size_t g = 0; g < d->n_groups; g++) {
            struct group *gr = &d->groups[g];
            gr->edits = sl_realloc(gr->edits, (gr->n_edits + 1) * sizeof(*gr->edits));
            gr->edits[gr->n_edits++] = (struct sl_header_edit){
                SL_HDR_APPEND, sl_strdup("X-Quarantine-ID"), sl_asprintf("<%s>", d->job_id)};
        }
    }
    if (res->detail != NULL && d->detail == NULL)
        d->detail = sl_strdup(res->detail);
    if (res->notified)
        d->reinjected = true; /* :10025 took a notification */
    delivery_drop_answered(d);
    delivery_send(d, d->quar_answer);
    fe_ledger_answer_free(&d->quar_answer);
    one_done(d);
}

/* Quarantine and notifications before anything goes out; the delivery
 * waits for them (one pending). */
static void
delivery_quarantine(struct fe_delivery *d, const struct fe_delivery_params *p,
                    const Sluice__RecipientVerdict **by)
{
    const struct fe_ledger_answer *a = p->record_answer;
    struct fe_quar_rcpt *qr = sl_calloc(d->n ? d->n : 1, sizeof(*qr));

    for (size_t i = 0; i < d->n; i++)
        qr[i] = (struct fe_quar_rcpt){d->req.rcpts[i].address, d->r[i].destiny, by[i]};
    struct fe_quar_msg m = {
        .job_id = d->job_id,
        .origin = p->origin,
        .client = p->client,
        .client_addr = p->client_addr,
        .sender = d->sender,
        .rcpts = qr,
        .n_rcpts = d->n,
        .body = d->req.body,
        .message_id = p->message_id,
        .verdict = p->verdict,
        .arrival_ms = p->arrival_ms,
        .reinjector = d->reinjector,
        .host = d->req.host,
        .port = d->req.port,
        .max_conns = d->req.max_conns,
        .ledger = p->ledger,
        .ledger_key = p->record_key,
        .tempfail_unavailable = d->tempfail_unavailable,
    };
    if (a != NULL)
        d->quar_answer = fe_ledger_answer_new(a->entries, a->n, a->mine, a->error);
    d->pending++;
    d->quar_task = fe_quar_task_start(p->quar, &m, on_quar_done, d);
    free(qr);
}

/* ---- start ------------------------------------------------------------ */

/* Every recipient exactly once, or the verdict is unusable. */
static int
index_verdict(const Sluice__Verdict *v, size_t n, const Sluice__RecipientVerdict **by_rcpt,
              const char **error_r)
{
    /* no recipient list: everyone passes with the edits for everyone
     * (docs/protocol-wire.md, Verdict.rcpts) */
    static const Sluice__RecipientVerdict pass = SLUICE__RECIPIENT_VERDICT__INIT;

    if (v->n_rcpts == 0) {
        for (size_t i = 0; i < n; i++)
            by_rcpt[i] = &pass;
        return 0;
    }
    if (v->n_rcpts != n) {
        *error_r = "verdict: recipient count differs from the job's";
        return -1;
    }
    for (size_t i = 0; i < v->n_rcpts; i++) {
        const Sluice__RecipientVerdict *rv = v->rcpts[i];
        if (rv->index >= n || by_rcpt[rv->index] != NULL) {
            *error_r = "verdict: recipient index out of range or repeated";
            return -1;
        }
        if (rv->destiny > SLUICE__DESTINY__D_TEMPFAIL) {
            *error_r = "verdict: unknown destiny";
            return -1;
        }
        by_rcpt[rv->index] = rv;
    }
    return 0;
}

/* SMTP mode after the reinjection: when :10025 refused some recipients
 * permanently, accepted others and tempfailed none, one reply cannot say
 * both; an MTA then answers for the transaction and reports the refused
 * ones to the sender, and so does sluice (a 451 instead would make Postfix
 * send the accepted ones again and again, as the refusal never changes).
 * Starts that report and returns true (finish() runs again when it is
 * done), or false when there is nothing to report. A recipient the report
 * must not go out for (null sender, NOTIFY without FAILURE) is dropped
 * with a log line, as a DSN nobody may receive. */
static bool
smtp_report_refusals(struct fe_delivery *d)
{
    size_t ok = 0, temp = 0, perm = 0;

    if (d->refusals_done)
        return false;
    d->refusals_done = true;
    for (size_t i = 0; i < d->n; i++) {
        ok += d->r[i].code >= 200 && d->r[i].code < 300;
        temp += d->r[i].code >= 400 && d->r[i].code < 500;
        perm += d->r[i].code >= 500;
    }
    if (ok == 0 || perm == 0 || temp > 0)
        return false;
    free(d->dsn_mine); /* the bounce destiny's report is recorded and done */
    d->dsn_mine = NULL;
    d->n_dsn = 0;
    for (size_t i = 0; i < d->n; i++) {
        struct rcpt_state *r = &d->r[i];
        if (r->code < 500)
            continue;
        if (d->req.mail_from == NULL || d->req.mail_from[0] == '\0' ||
            !fe_dsn_notify_failure(d->req.rcpts[i].notify)) {
            sl_info("%s: <%s> refused by the next-hop MTA (%s); no DSN (%s)", d->job_id,
                    d->req.rcpts[i].address, r->reply,
                    d->req.mail_from == NULL || d->req.mail_from[0] == '\0' ? "null sender"
                                                                            : "NOTIFY");
            r->destiny = SLUICE__DESTINY__D_BOUNCE;
            r->dsn_suppressed = true;
            set_reply(r, 250,
                      sl_asprintf("250 2.0.0 id=%s, <%s> refused by the next-hop MTA, no DSN",
                                  d->job_id, d->req.rcpts[i].address));
            continue;
        }
        d->dsn_idx[d->n_dsn++] = i;
    }
    if (d->n_dsn == 0)
        return false;
    sl_info("%s: SMTP mode: %zu recipient(s) refused by the next-hop MTA, %zu accepted: "
            "reporting the refused to <%s>, then 250 for the transaction",
            d->job_id, d->n_dsn, ok, d->sender);
    d->refusals = true;
    SL_BUG_ON(start_dsn(d) < 0);
    return true;
}

/* amavis in SMTP mode: one reply; tempfail wins, partial rejects bounce. */
static void
smtp_mode(struct fe_delivery *d)
{
    size_t rejects = 0, temp = d->n;

    for (size_t i = 0; i < d->n; i++) {
        rejects += d->r[i].destiny == SLUICE__DESTINY__D_REJECT;
        if (temp == d->n && d->r[i].destiny == SLUICE__DESTINY__D_TEMPFAIL)
            temp = i;
    }
    for (size_t i = 0; i < d->n; i++) {
        struct rcpt_state *r = &d->r[i];
        if (temp < d->n && r->destiny != SLUICE__DESTINY__D_TEMPFAIL) {
            r->destiny = SLUICE__DESTINY__D_TEMPFAIL;
            free(r->reason);
            r->reason = sl_strdup(d->r[temp].reason);
        } else if (temp == d->n && rejects > 0 && rejects < d->n &&
                   r->destiny == SLUICE__DESTINY__D_REJECT) {
            r->destiny = SLUICE__DESTINY__D_BOUNCE;
        }
    }
}

static int
start_dsn(struct fe_delivery *d)
{
    const struct fe_reinject_request *req = &d->req;
    struct fe_dsn_rcpt *dr = sl_calloc(d->n_dsn, sizeof(*dr));
    char **diag = sl_calloc(d->n_dsn, sizeof(char *));
    char(*status)[16] = sl_calloc(d->n_dsn, sizeof(*status));
    const char *category = NULL, *reason = NULL;

    for (size_t k = 0; k < d->n_dsn; k++) {
        const struct rcpt_state *r = &d->r[d->dsn_idx[k]];
        dr[k].address = req->rcpts[d->dsn_idx[k]].address;
        dr[k].orcpt = req->rcpts[d->dsn_idx[k]].orcpt;
        if (d->refusals) {
            /* :10025's refusal, as our reply quotes it */
            diag[k] = sl_strdup(r->reply);
            dr[k].status = fe_reply_enhanced(r->reply, r->code, status[k], sizeof(status[k]));
        } else {
            diag[k] = sl_asprintf("554 5.7.0 Reject, id=%s - %s", d->job_id, r->reason);
            if (category == NULL) {
                category = r->category;
                reason = r->reason;
            }
        }
        dr[k].diagnostic = diag[k];
    }
    struct fe_dsn_info info = {
        .job_id = d->job_id,
        .reporting_host = d->dsn_hostname,
        .sender = req->mail_from,
        .envid = req->envid,
        .category = category,
        .reason = reason,
        .cause = d->refusals ? "the next-hop mail server refused it" : NULL,
        .message_id = d->dsn_message_id,
        .arrival_ms = d->dsn_arrival_ms,
        .original = req->body->data,
        .original_len = req->body->len,
        .rcpts = dr,
        .n_rcpts = d->n_dsn,
    };
    size_t len;
    char *text = fe_dsn_build(&info, &len);
    struct sl_body *body = sl_body_new(text, len);
    struct fe_reinject_rcpt to = {.address = req->mail_from};
    struct fe_reinject_request dreq = {
        .job_id = d->job_id,
        .host = req->host,
        .port = req->port,
        .max_conns = req->max_conns,
        .mail_from = "",         /* a DSN has the null sender (RFC 3464, 5321 4.5.5) */
        .body_type = "8BITMIME", /* the returned headers may hold 8-bit */
        .smtputf8 = req->smtputf8,
        .rcpts = &to,
        .n_rcpts = 1,
        .body = body,
    };
    d->dsn_op = fe_reinject_start(d->reinjector, &dreq, on_dsn_done, dsn_wanted, d);
    sl_body_unref(&body);
    for (size_t k = 0; k < d->n_dsn; k++)
        free(diag[k]);
    free(diag);
    free(status);
    free(dr);
    if (d->dsn_op == NULL)
        return -1;
    d->pending++;
    return 0;
}

/* Each recipient's reply where the verdict alone decides it (discard,
 * reject, tempfail, a bounce without report); the passed ones grouped by
 * their edits, the bounced ones to report listed. */
static void
delivery_sort(struct fe_delivery *d, const Sluice__RecipientVerdict **by)
{
    const struct fe_reinject_request *req = &d->req;

    d->groups = sl_calloc(d->n ? d->n : 1, sizeof(*d->groups));
    d->dsn_idx = sl_calloc(d->n ? d->n : 1, sizeof(*d->dsn_idx));
    for (size_t i = 0; i < d->n; i++) {
        struct rcpt_state *r = &d->r[i];
        switch (r->destiny) {
        case SLUICE__DESTINY__D_PASS: {
            size_t g = 0;
            while (g < d->n_groups && !edits_equal(d->groups[g].key, by[i]))
                g++;
            if (g == d->n_groups) {
                d->groups[g].d = d;
                d->groups[g].key = by[i];
                d->groups[g].idx = sl_calloc(d->n, sizeof(size_t));
                d->n_groups++;
            }
            d->groups[g].idx[d->groups[g].n++] = i;
            break;
        }
        case SLUICE__DESTINY__D_DISCARD:
            set_reply(r, 250,
                      sl_asprintf("250 2.7.0 Ok, discarded, id=%s - %s", d->job_id, r->reason));
            break;
        case SLUICE__DESTINY__D_BOUNCE:
            if (r->dsn_suppressed || req->mail_from == NULL || req->mail_from[0] == '\0' ||
                !fe_dsn_notify_failure(req->rcpts[i].notify)) {
                r->dsn_suppressed = true;
                set_reply(r, 250,
                          sl_asprintf("250 2.7.0 Ok, discarded, id=%s - %s (no DSN)", d->job_id,
                                      r->reason));
            } else {
                d->dsn_idx[d->n_dsn++] = i;
            }
            break;
        case SLUICE__DESTINY__D_REJECT:
            set_reply(r, 554, sl_asprintf("554 5.7.0 Reject, id=%s - %s", d->job_id, r->reason));
            break;
        default:
            set_reply(r, 451,
                      sl_asprintf("451 4.7.1 id=%s, temporary failure - %s, try again "
                                  "later",
                                  d->job_id, r->reason));
            break;
        }
    }
}

/* A group's edits: those for everyone, then the group's own, copied (the
 * verdict is only valid during fe_delivery_start). */
static void
group_copy_edits(struct group *gr, const Sluice__Verdict *v)
{
    size_t ne = v->n_edits + gr->key->n_edits;

    gr->edits = sl_calloc(ne > 0 ? ne : 1, sizeof(*gr->edits));
    gr->n_edits = ne;
    for (size_t k = 0; k < v->n_edits; k++)
        gr->edits[k] = (struct sl_header_edit){(enum sl_header_op)sl_wire_header_op_to_mail(v->edits[k]->op),
                                               sl_strdup(v->edits[k]->name),
                                               sl_strdup(v->edits[k]->value)};
    for (size_t k = 0; k < gr->key->n_edits; k++)
        gr->edits[v->n_edits + k] = (struct sl_header_edit){(enum sl_header_op)sl_wire_header_op_to_mail(gr->key->edits[k]->op),
                                                            sl_strdup(gr->key->edits[k]->name),
                                                            sl_strdup(gr->key->edits[k]->value)};
    gr->key = NULL; /* points into the verdict */
    gr->go = sl_calloc(gr->n ? gr->n : 1, sizeof(size_t));
}

struct fe_delivery *
fe_delivery_start(const struct fe_delivery_params *p, fe_delivery_done_fn *done,
                  fe_reinject_wanted_fn *wanted, void *ctx, const char **error_r)
{
    const struct fe_reinject_request *req = p->req;
    const Sluice__Verdict *v = p->verdict;
    const Sluice__RecipientVerdict **by = sl_calloc(req->n_rcpts ? req->n_rcpts : 1, sizeof(*by));
    struct fe_delivery *d;

    if (index_verdict(v, req->n_rcpts, by, error_r) < 0) {
        free(by);
        return NULL;
    }
    d = sl_calloc(1, sizeof(*d));
    d->reinjector = p->reinjector;
    d->done = done;
    d->wanted = wanted;
    d->ctx = ctx;
    d->job_id = sl_strdup(req->job_id);
    d->sender = sl_strdup(req->mail_from != NULL ? req->mail_from : "");
    d->lmtp = p->lmtp;
    d->originating = v->originating;
    d->req = *req;
    d->req.body = sl_body_ref(req->body);
    d->req.edits = NULL;
    d->req.n_edits = 0;
    d->rcpts = sl_calloc(req->n_rcpts ? req->n_rcpts : 1, sizeof(*d->rcpts));
    memcpy(d->rcpts, req->rcpts, req->n_rcpts * sizeof(*d->rcpts));
    d->req.rcpts = d->rcpts;
    if (p->record != NULL && p->record_key != NULL) {
        d->record = *p->record;
        d->record_key = sl_strdup(p->record_key);
    }
    d->tempfail_unavailable = p->tempfail_unavailable;
    d->dsn_hostname = sl_strdup(p->hostname);
    d->dsn_message_id = p->message_id != NULL ? sl_strdup(p->message_id) : NULL;
    d->dsn_arrival_ms = p->arrival_ms;
    d->n = req->n_rcpts;
    d->r = sl_calloc(d->n ? d->n : 1, sizeof(*d->r));
    for (size_t i = 0; i < d->n; i++) {
        d->r[i].destiny = by[i]->destiny;
        d->r[i].tagged = by[i]->tagged;
        d->r[i].dsn_suppressed = by[i]->dsn_suppressed;
        d->r[i].remote = by[i]->remote;
        d->r[i].category = sl_strdup(by[i]->category);
        d->r[i].reason = sl_strdup(
            by[i]->reason != NULL && by[i]->reason[0] != '\0' ? by[i]->reason : by[i]->category);
    }
    if (!d->lmtp)
        smtp_mode(d);
    delivery_sort(d, by);
    for (size_t g = 0; g < d->n_groups; g++)
        group_copy_edits(&d->groups[g], v);
    if (p->quar != NULL && fe_quar_wanted(p->quar, v))
        delivery_quarantine(d, p, by);
    else
        delivery_send(d, p->record_answer);
    free(by);
    if (d->pending == 0) {
        /* nothing to send: answer from the loop, never from inside start */
        struct timeval zero = {0, 0};
        d->later = evtimer_new(p->base, on_later, d);
        evtimer_add(d->later, &zero);
    }
    if (d->n_groups > 1)
        sl_info("%s: %zu reinjection transactions for recipients with different header edits",
                d->job_id, d->n_groups);
    return d;
}

void
fe_delivery_cancel(struct fe_delivery **dp)
{
    struct fe_delivery *d = *dp;

    if (d == NULL)
        return;
    *dp = NULL;
    for (size_t g = 0; g < d->n_groups; g++)
        fe_reinject_cancel(&d->groups[g].op);
    fe_reinject_cancel(&d->dsn_op);
    delivery_free(d);
}
