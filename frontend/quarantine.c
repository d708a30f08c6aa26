/* quarantine.c - a message's quarantine and notifications, and the store's
 * housekeeping (quarantine.h).
 *
 * Life of a task:
 *   fe_quar_task_start: what is wanted (the entry's type, the
 *     administrators, the recipients to warn); with the ledger, those
 *     reserved (task_on_reserved)
 *   task_store: the entry written on a store thread (task_stored)
 *   task_notify: the notifications sent (task_on_note_sent)
 *   task_finish: done() with each recipient's fate
 * Whatever fails turns the replies of the recipients it concerns into a
 * 451; what is not carried out is given back in the ledger. */
#include "quarantine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "ledger.h"
#include "notify.h"
#include "quar_pdp.h"
#include "quar_pool.h"
#include "reinject.h"
#include "conf/sl_config.h"
#include "mail/sl_message.h"
#include "quar/sl_quar.h"
#include "util/sl_body.h"
#include "util/sl_buf.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define REPLY_MAX 510
#define FIELD_QUARANTINE "<quarantine>"

struct fe_quar {
    struct event_base *base;
    const struct sl_config *config;
    char *hostname;
    struct fe_qpool *pool;      /* NULL: no quarantine.store */
    char *templates[2];         /* by enum fe_notify_kind */
    struct event *expire_timer; /* NULL: quarantine.max_age 0 */
    struct fe_qcall *expire_call;
    struct fe_pdp_server *pdp; /* NULL: no quarantine.release_socket */
};

/* One notification of a task. */
struct note {
    struct fe_quar_task *t;
    enum fe_notify_kind kind;
    char *to;    /* the address */
    char *field; /* its ledger field */
    bool *about; /* per recipient: the notification is about it */
    bool go;     /* to send (not done already, not in flight elsewhere) */
    bool mine;   /* reserved for us in the ledger */
    struct fe_reinject_op *op;
};

/* What a store thread writes: copies, since the task may be gone. */
struct store_arg {
    struct sl_quar_entry e; /* message points into body */
    struct sl_body *body;
    char *error;
    unsigned long long ms;
};

struct fe_quar_task {
    struct fe_quar *q;
    fe_quar_done_fn *done;
    void *ctx;
    char *job_id;
    char *sender;
    struct sl_body *body;
    char *message_id, *subject, *client_addr;
    size_t n;
    char **addr;
    int *destiny;
    bool *want;     /* its copy to be quarantined */
    char **replies; /* results */
    bool *quarantined;
    char type[SL_QUAR_TYPE_MAX + 1]; /* "" : no quarantine */
    char qid[SL_QUAR_ID_MAX + 1];
    char *detail;
    bool notified; /* :10025 took a notification */
    char *category;
    char **viruses, **banned, **bad_headers;
    size_t n_viruses, n_banned, n_bad_headers;
    struct note *notes;
    size_t n_notes, notes_pending;
    /* the ledger */
    struct fe_ledger *ledger;
    char *ledger_key;
    bool tempfail_unavailable;
    struct fe_ledger_op *reserve;
    char *mine;
    bool store_mine; /* the quarantine field is reserved for us */
    /* sending */
    struct fe_reinjector *reinjector;
    char *host;
    unsigned port, max_conns;
    struct store_arg *sa; /* built at start, handed to the store thread */
    struct fe_qcall *store_call;
    struct event *later;
};

/* ---- helpers ------------------------------------------------------------ */

static void
fail_rcpt(struct fe_quar_task *t, size_t i, char *reply_owned)
{
    if (strlen(reply_owned) > REPLY_MAX)
        reply_owned[REPLY_MAX] = '\0';
    if (t->replies[i] == NULL)
        t->replies[i] = reply_owned;
    else
        free(reply_owned);
    t->quarantined[i] = false;
}

/* The first failure, for the log line: "quarantine failed: ..." */
static void
note_detail(struct fe_quar_task *t, const char *what, const char *why)
{
    if (t->detail == NULL)
        t->detail = sl_asprintf("%s: %s", what, why);
}

/* Every recipient this task has something for, the same 451. */
static void
fail_all(struct fe_quar_task *t, const char *reply)
{
    for (size_t i = 0; i < t->n; i++) {
        bool about = t->want[i];
        for (size_t k = 0; k < t->n_notes && !about; k++)
            about = t->notes[k].about[i];
        if (about)
            fail_rcpt(t, i, sl_strdup(reply));
    }
}

/* The type of the entry: the highest of the recipients' (amavis' order). */
static int
type_rank(const char *type)
{
    static const char *const order[] = {"badh", "spam", "banned", "virus"};
    for (int i = 0; i < 4; i++)
        if (strcmp(type, order[i]) == 0)
            return i + 1;
    return 0;
}

static char **
strv_copy(char *const *v, size_t n)
{
    char **out = sl_calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = sl_strdup(v[i]);
    return out;
}

static void
ledger_give_back(struct fe_quar_task *t, const char *field)
{
    if (t->mine != NULL)
        fe_ledger_release(t->ledger, t->ledger_key, t->mine, &field, 1);
}

static void
ledger_done(struct fe_quar_task *t, const char *field, const char *value)
{
    if (t->mine != NULL)
        fe_ledger_record_nowait(t->ledger, t->job_id, t->ledger_key, t->mine, &field, &value, 1);
}

/* ---- the end ------------------------------------------------------------ */

static void
task_free(struct fe_quar_task *t)
{
    for (size_t k = 0; k < t->n_notes; k++) {
        fe_reinject_cancel(&t->notes[k].op);
        free(t->notes[k].to);
        free(t->notes[k].field);
        free(t->notes[k].about);
    }
    free(t->notes);
    fe_ledger_cancel(&t->reserve);
    fe_qpool_cancel(&t->store_call);
    if (t->sa != NULL) {
        /* never handed to a thread */
        sl_body_unref(&t->sa->body);
        t->sa->e.message = NULL;
        sl_quar_entry_clear(&t->sa->e);
        free(t->sa);
    }
    if (t->later != NULL)
        event_free(t->later);
    sl_strv_free(t->addr, t->n);
    sl_strv_free(t->replies, t->n);
    sl_strv_free(t->viruses, t->n_viruses);
    sl_strv_free(t->banned, t->n_banned);
    sl_strv_free(t->bad_headers, t->n_bad_headers);
    free(t->destiny);
    free(t->want);
    free(t->quarantined);
    free(t->job_id);
    free(t->sender);
    sl_body_unref(&t->body);
    free(t->message_id);
    free(t->subject);
    free(t->client_addr);
    free(t->detail);
    free(t->category);
    free(t->ledger_key);
    free(t->mine);
    free(t->host);
    free(t);
}

static void
task_finish(struct fe_quar_task *t)
{
    struct fe_quar_result res = {
        .replies = t->replies,
        .quarantined = t->quarantined,
        .quarantine_id = t->qid[0] != '\0' ? t->qid : NULL,
        .detail = t->detail,
        .notified = t->notified,
    };
    t->done(t->ctx, &res);
    task_free(t);
}

static void
task_on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    task_finish(arg);
}

/* ---- notifications ------------------------------------------------------ */

static void
list_of(const char *const *src, size_t n, struct fe_notify_list *l, const char ***keep)
{
    const char **v = sl_calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = src[i];
    *keep = v;
    *l = (struct fe_notify_list){v, n};
}

/* The notification k as a message (CRLF), from its template. */
static struct sl_body *
note_body(struct fe_quar_task *t, const struct note *nt, const char *from_addr)
{
    struct fe_quar *q = t->q;
    char date[64], size[32];
    char *from = sl_asprintf("\"Content-filter at %s\" <%s>", q->hostname, from_addr);
    char *to = sl_asprintf("<%s>", nt->to);
    char *sender = sl_asprintf("<%s>", t->sender);
    const char **all = sl_calloc(t->n ? t->n : 1, sizeof(char *));
    const char **del = sl_calloc(t->n ? t->n : 1, sizeof(char *));
    const char **blk = sl_calloc(t->n ? t->n : 1, sizeof(char *));
    size_t n_del = 0, n_blk = 0;
    const char *to_v[1] = {to};
    const char **keep[3];

    for (size_t i = 0; i < t->n; i++) {
        all[i] = sl_asprintf("<%s>", t->addr[i]);
        if (t->destiny[i] == SLUICE__DESTINY__D_PASS)
            del[n_del++] = all[i];
        else
            blk[n_blk++] = all[i];
    }
    sl_rfc5322_date(sl_now_wall_ms(), date, sizeof(date));
    snprintf(size, sizeof(size), "%zu", t->body->len);
    struct fe_notify_vars v = {
        .from = from,
        .to = {to_v, 1},
        .delivered = {del, n_del},
        .blocked = {blk, n_blk},
        .rcpts = {all, t->n},
        .date = date,
        .mail_id = t->job_id,
        .host = q->hostname,
        .sender = sender,
        .client = t->client_addr,
        .message_id = t->message_id,
        .subject = t->subject,
        .category = t->category,
        .quarantine = t->qid,
        .size = size,
    };
    list_of((const char *const *)t->viruses, t->n_viruses, &v.viruses, &keep[0]);
    list_of((const char *const *)t->banned, t->n_banned, &v.banned, &keep[1]);
    list_of((const char *const *)t->bad_headers, t->n_bad_headers, &v.bad_headers, &keep[2]);
    size_t len;
    char *text = fe_notify_expand(q->templates[nt->kind], &v, &len);
    /* CRLF line ends, as every message the reinjector sends */
    struct sl_buf b;
    sl_buf_init(&b);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            sl_buf_append(&b, "\r\n", 2);
        else
            sl_buf_append(&b, &text[i], 1);
    }
    free(text);
    for (size_t i = 0; i < t->n; i++)
        free((char *)all[i]);
    for (int i = 0; i < 3; i++)
        free(keep[i]);
    free(all);
    free(del);
    free(blk);
    free(from);
    free(to);
    free(sender);
    size_t blen;
    char *data = sl_buf_steal(&b, &blen);
    return sl_body_new(data, blen);
}

static void
task_on_note_sent(void *ctx, const struct fe_reinject_result *res)
{
    struct note *nt = ctx;
    struct fe_quar_task *t = nt->t;
    bool sent = !res->cancelled && res->n_rcpts == 1 && res->rcpts[0].code >= 200 &&
                res->rcpts[0].code < 300;
    const char *reply = res->n_rcpts == 1 && res->rcpts[0].reply ? res->rcpts[0].reply : "";

    nt->op = NULL;
    if (sent) {
        t->notified = true;
        sl_info("%s: %s notification to <%s> sent: %s", t->job_id,
                nt->kind == FE_NOTIFY_ADMIN ? "administrator" : "recipient", nt->to, reply);
        if (nt->mine)
            ledger_done(t, nt->field, reply);
    } else {
        int code = res->n_rcpts == 1 ? res->rcpts[0].code : 0;
        sl_warn("%s: %s notification to <%s> not sent: %d %s", t->job_id,
                nt->kind == FE_NOTIFY_ADMIN ? "administrator" : "recipient", nt->to, code, reply);
        note_detail(t, "notification failed", nt->to);
        for (size_t i = 0; i < t->n; i++)
            if (nt->about[i])
                fail_rcpt(t, i,
                          sl_asprintf("451 4.5.0 id=%s, cannot send the notification to <%s> "
                                      "(%d %s), try again later",
                                      t->job_id, nt->to, code, reply));
        if (nt->mine)
            ledger_give_back(t, nt->field);
    }
    if (--t->notes_pending == 0)
        task_finish(t);
}

/* The notifications still to send; the task ends when they are answered. */
static void
task_notify(struct fe_quar_task *t)
{
    char buf[300];
    const char *from = sl_quar_notify_from(t->q->config, t->q->hostname, buf, sizeof(buf));

    for (size_t k = 0; k < t->n_notes; k++) {
        struct note *nt = &t->notes[k];
        if (!nt->go)
            continue;
        struct sl_body *body = note_body(t, nt, from);
        struct fe_reinject_rcpt to = {.address = nt->to};
        struct fe_reinject_request req = {
            .job_id = t->job_id,
            .host = t->host,
            .port = t->port,
            .max_conns = t->max_conns,
            .mail_from = from, /* amavis' $mailfrom_notify_admin / _recip */
            .body_type = "8BITMIME",
            .rcpts = &to,
            .n_rcpts = 1,
            .body = body,
        };
        nt->op = fe_reinject_start(t->reinjector, &req, task_on_note_sent, NULL, nt);
        sl_body_unref(&body);
        SL_BUG_ON(nt->op == NULL);
        t->notes_pending++;
    }
    if (t->notes_pending == 0) {
        /* answered from the loop, never from inside the start */
        event_active(t->later, EV_TIMEOUT, 0);
    }
}

/* ---- the store ---------------------------------------------------------- */

static int
store_work(struct sl_quar_store *store, void *arg)
{
    struct store_arg *sa = arg;
    unsigned long long t0 = sl_now_mono_ms();
    int r;

    if (store == NULL) {
        sa->error = sl_strdup("the store cannot be opened (see the log)");
        return -1;
    }
    r = sl_quar_put(store, &sa->e, &sa->error);
    sa->ms = sl_now_mono_ms() - t0;
    return r;
}

static void
store_arg_free(void *arg)
{
    struct store_arg *sa = arg;

    sl_body_unref(&sa->body);
    sa->e.message = NULL; /* the body's */
    sl_quar_entry_clear(&sa->e);
    free(sa->error);
    free(sa);
}

/* The store's answer, with the task: store_arg is shared with the thread,
 * so the task is found through this small closure. */
struct store_done {
    struct fe_quar_task *t;
    struct store_arg *sa;
};

static void
task_stored(struct fe_quar_task *t, struct store_arg *sa, int status, bool timed_out)
{
    t->store_call = NULL;
    if (status == 0) {
        sl_info("%s: quarantine: %s kept in %s (%llu ms)", t->job_id, t->qid,
                t->q->config->quarantine.store, sa->ms);
        for (size_t i = 0; i < t->n; i++)
            t->quarantined[i] = t->want[i] && t->replies[i] == NULL;
        if (t->store_mine) {
            /* the ledger keeps successes as replies ("2..."): the id last */
            char *v = sl_asprintf("250 2.7.0 Ok, quarantined as %s", t->qid);
            ledger_done(t, FIELD_QUARANTINE, v);
            free(v);
        }
        task_notify(t);
        return;
    }
    char *why = timed_out ? sl_asprintf("timed out after %u s", t->q->config->quarantine.timeout_s)
                          : sl_strdup(sa->error != NULL ? sa->error : "failed");
    sl_warn("%s: quarantine: %s could not be kept in %s: %s; tempfailing its recipients", t->job_id,
            t->qid, t->q->config->quarantine.store, why);
    note_detail(t, "quarantine failed", why);
    for (size_t i = 0; i < t->n; i++)
        if (t->want[i])
            fail_rcpt(t, i,
                      sl_asprintf("451 4.5.0 id=%s, cannot quarantine the message (%s), try "
                                  "again later",
                                  t->job_id, why));
    free(why);
    t->qid[0] = '\0';
    if (t->store_mine)
        ledger_give_back(t, FIELD_QUARANTINE);
    /* the message comes back: tell nobody now, the retry will */
    for (size_t k = 0; k < t->n_notes; k++) {
        if (t->notes[k].mine)
            ledger_give_back(t, t->notes[k].field);
        t->notes[k].go = false;
        for (size_t i = 0; i < t->n; i++)
            if (t->notes[k].about[i] && t->replies[i] == NULL)
                fail_rcpt(t, i,
                          sl_asprintf("451 4.5.0 id=%s, cannot quarantine the message, try again "
                                      "later",
                                      t->job_id));
    }
    event_active(t->later, EV_TIMEOUT, 0);
}

static void
store_done_cb(void *arg, int status, bool timed_out)
{
    struct store_done *sd = arg;
    task_stored(sd->t, sd->sa, status, timed_out);
}

static void
store_done_free(void *arg)
{
    struct store_done *sd = arg;
    store_arg_free(sd->sa);
    free(sd);
}

static int
store_done_work(struct sl_quar_store *store, void *arg)
{
    struct store_done *sd = arg;
    return store_work(store, sd->sa);
}

static void
task_store(struct fe_quar_task *t)
{
    struct store_done *sd;

    if (t->type[0] == '\0' || t->qid[0] == '\0' || t->sa == NULL) {
        task_notify(t);
        return;
    }
    sd = sl_calloc(1, sizeof(*sd));
    sd->t = t;
    sd->sa = t->sa;
    t->sa = NULL;
    t->store_call = fe_qpool_submit(t->q->pool, store_done_work, store_done_cb, store_done_free, sd,
                                    t->q->config->quarantine.timeout_s);
}

/* ---- the ledger --------------------------------------------------------- */

static void
task_on_reserved(void *ctx, const struct fe_ledger_entry *entries, size_t n, const char *mine,
                 const char *error)
{
    struct fe_quar_task *t = ctx;
    size_t k = 0;

    t->reserve = NULL;
    if (error != NULL) {
        if (t->tempfail_unavailable) {
            sl_warn("%s: ledger unavailable (%s): tempfailing (dedup.on_unavailable: tempfail)",
                    t->job_id, error);
            char *r = sl_asprintf("451 4.3.0 id=%s, duplicate check unavailable, try again later",
                                  t->job_id);
            fail_all(t, r);
            free(r);
            t->qid[0] = '\0';
            event_active(t->later, EV_TIMEOUT, 0);
            return;
        }
        sl_warn("%s: ledger unavailable (%s): quarantine and notifications without duplicate "
                "suppression (dedup.on_unavailable: deliver)",
                t->job_id, error);
        task_store(t);
        return;
    }
    t->mine = sl_strdup(mine);
    char *busy = sl_asprintf("451 4.3.0 id=%s, another copy of this message is being handled, "
                             "try again later",
                             t->job_id);
    if (t->type[0] != '\0' && k < n) {
        const struct fe_ledger_entry *en = &entries[k++];
        if (en->state == FE_LEDGER_DONE) {
            /* kept by an earlier attempt: not again, and named as then */
            const char *stored = strrchr(en->reply, ' ');
            snprintf(t->qid, sizeof(t->qid), "%s", stored != NULL ? stored + 1 : en->reply);
            for (size_t i = 0; i < t->n; i++)
                t->quarantined[i] = t->want[i];
            sl_info("%s: ledger: quarantined already as %s; not kept again", t->job_id, t->qid);
            store_arg_free(t->sa);
            t->sa = NULL;
        } else if (en->state == FE_LEDGER_IN_FLIGHT) {
            for (size_t i = 0; i < t->n; i++)
                if (t->want[i])
                    fail_rcpt(t, i, sl_strdup(busy));
            t->qid[0] = '\0';
            store_arg_free(t->sa);
            t->sa = NULL;
        } else {
            t->store_mine = true;
        }
    }
    for (size_t j = 0; j < t->n_notes && k < n; j++, k++) {
        struct note *nt = &t->notes[j];
        const struct fe_ledger_entry *en = &entries[k];
        nt->go = fe_ledger_entry_is_ours(en);
        nt->mine = nt->go;
        if (en->state == FE_LEDGER_DONE)
            sl_info("%s: ledger: notification to <%s> sent already; not again", t->job_id, nt->to);
        else if (en->state == FE_LEDGER_IN_FLIGHT)
            for (size_t i = 0; i < t->n; i++)
                if (nt->about[i])
                    fail_rcpt(t, i, sl_strdup(busy));
    }
    free(busy);
    task_store(t);
}

/* ---- the start ---------------------------------------------------------- */

bool
fe_quar_wanted(const struct fe_quar *q, const Sluice__Verdict *v)
{
    for (size_t i = 0; q != NULL && i < v->n_rcpts; i++) {
        const Sluice__RecipientVerdict *r = v->rcpts[i];
        if ((q->pool != NULL && r->quarantine != NULL && r->quarantine[0] != '\0') ||
            (r->admin != NULL && r->admin[0] != '\0') || r->warn)
            return true;
    }
    return false;
}

static struct note *
note_add(struct fe_quar_task *t, enum fe_notify_kind kind, const char *to)
{
    for (size_t k = 0; k < t->n_notes; k++)
        if (t->notes[k].kind == kind && strcasecmp(t->notes[k].to, to) == 0)
            return &t->notes[k];
    t->notes = sl_realloc(t->notes, (t->n_notes + 1) * sizeof(*t->notes));
    struct note *nt = &t->notes[t->n_notes++];
    *nt = (struct note){.t = t, .kind = kind, .to = sl_strdup(to), .go = true};
    nt->field = sl_asprintf(kind == FE_NOTIFY_ADMIN ? "<notify:%s>" : "<warn:%s>", to);
    nt->about = sl_calloc(t->n ? t->n : 1, sizeof(bool));
    return nt;
}

/* The entry the store thread writes. */
static struct store_arg *
store_arg_new(struct fe_quar_task *t, const struct fe_quar_msg *m)
{
    struct store_arg *sa = sl_calloc(1, sizeof(*sa));
    struct sl_quar_entry *e = &sa->e;
    const Sluice__Verdict *v = m->verdict;
    const Sluice__ScanFacts *f = v->facts;

    snprintf(e->type, sizeof(e->type), "%s", t->type);
    snprintf(e->mail_id, sizeof(e->mail_id), "%s", m->job_id);
    sl_quar_secret_new(e->secret_id);
    e->sender = sl_strdup(m->sender);
    e->rcpts = sl_calloc(t->n ? t->n : 1, sizeof(*e->rcpts));
    e->n_rcpts = t->n;
    for (size_t i = 0; i < t->n; i++) {
        static const char ds[] = {'P', 'D', 'B', 'R', 'T'};
        const Sluice__RecipientVerdict *rv = m->rcpts[i].rv;
        e->rcpts[i].address = sl_strdup(t->addr[i]);
        e->rcpts[i].blocked = t->want[i];
        e->rcpts[i].is_local = !rv->remote;
        e->rcpts[i].content = sl_quar_content_letter(rv->category);
        e->rcpts[i].ds = t->destiny[i] >= 0 && t->destiny[i] < 5 ? ds[t->destiny[i]] : 'T';
        e->rcpts[i].rs = ' ';
    }
    e->origin = sl_strdup(m->origin);
    e->client = sl_strdup(m->client);
    e->client_addr = m->client_addr != NULL ? sl_strdup(m->client_addr) : NULL;
    e->category = sl_strdup(v->category != NULL && v->category[0] ? v->category : "CLEAN");
    for (size_t k = 0; k < v->n_edits; k++) {
        if (strcasecmp(v->edits[k]->name, "X-Amavis-Alert") != 0)
            continue;
        e->alerts = sl_realloc(e->alerts, (e->n_alerts + 1) * sizeof(char *));
        e->alerts[e->n_alerts++] = sl_strdup(v->edits[k]->value);
    }
    e->policy = v->policy_bank != NULL && v->policy_bank[0] ? sl_strdup(v->policy_bank) : NULL;
    e->originating = v->originating;
    e->spam_scanned = f != NULL && f->spam_scanned;
    e->spam_level = f != NULL ? f->spam_score : 0;
    e->message_id = m->message_id != NULL && m->message_id[0] ? sl_strdup(m->message_id) : NULL;
    e->from = sl_message_header(m->body->data, m->body->len, "From");
    e->subject = t->subject != NULL ? sl_strdup(t->subject) : NULL;
    e->host = sl_strdup(t->q->hostname);
    e->time_ms = m->arrival_ms;
    e->size = m->body->len;
    sa->body = sl_body_ref(m->body);
    e->message = sa->body->data; /* read only, while the body lives */
    e->message_len = sa->body->len;
    return sa;
}

struct fe_quar_task *
fe_quar_task_start(struct fe_quar *q, const struct fe_quar_msg *m, fe_quar_done_fn *done, void *ctx)
{
    struct fe_quar_task *t = sl_calloc(1, sizeof(*t));
    const Sluice__Verdict *v = m->verdict;
    const Sluice__ScanFacts *f = v->facts;

    t->q = q;
    t->done = done;
    t->ctx = ctx;
    t->job_id = sl_strdup(m->job_id);
    t->sender = sl_strdup(m->sender != NULL ? m->sender : "");
    t->body = sl_body_ref(m->body);
    t->message_id = m->message_id != NULL && m->message_id[0] ? sl_strdup(m->message_id) : NULL;
    t->subject = sl_message_header(m->body->data, m->body->len, "Subject");
    t->client_addr = m->client_addr != NULL ? sl_strdup(m->client_addr) : NULL;
    t->category = sl_strdup(v->category != NULL && v->category[0] ? v->category : "CLEAN");
    if (f != NULL) {
        t->viruses = strv_copy(f->virus_names, f->n_virus_names);
        t->n_viruses = f->n_virus_names;
        t->banned = strv_copy(f->banned, f->n_banned);
        t->n_banned = f->n_banned;
        t->bad_headers = strv_copy(f->bad_headers, f->n_bad_headers);
        t->n_bad_headers = f->n_bad_headers;
    }
    t->n = m->n_rcpts;
    t->addr = sl_calloc(t->n ? t->n : 1, sizeof(char *));
    t->destiny = sl_calloc(t->n ? t->n : 1, sizeof(int));
    t->want = sl_calloc(t->n ? t->n : 1, sizeof(bool));
    t->replies = sl_calloc(t->n ? t->n : 1, sizeof(char *));
    t->quarantined = sl_calloc(t->n ? t->n : 1, sizeof(bool));
    t->reinjector = m->reinjector;
    t->host = sl_strdup(m->host);
    t->port = m->port;
    t->max_conns = m->max_conns;
    t->later = evtimer_new(q->base, task_on_later, t);
    SL_BUG_ON(t->later == NULL);

    /* what is wanted: a tempfailed recipient comes back, nothing for it now */
    for (size_t i = 0; i < t->n; i++) {
        const Sluice__RecipientVerdict *rv = m->rcpts[i].rv;
        t->addr[i] = sl_strdup(m->rcpts[i].address);
        t->destiny[i] = m->rcpts[i].destiny;
        if (t->destiny[i] == SLUICE__DESTINY__D_TEMPFAIL)
            continue;
        if (q->pool != NULL && rv->quarantine != NULL && rv->quarantine[0] != '\0') {
            t->want[i] = true;
            if (type_rank(rv->quarantine) > type_rank(t->type))
                snprintf(t->type, sizeof(t->type), "%s", rv->quarantine);
        }
        if (rv->admin != NULL && rv->admin[0] != '\0')
            note_add(t, FE_NOTIFY_ADMIN, rv->admin)->about[i] = true;
        if (rv->warn)
            note_add(t, FE_NOTIFY_RECIP, t->addr[i])->about[i] = true;
    }
    if (t->type[0] != '\0') {
        snprintf(t->qid, sizeof(t->qid), "%s-%s", t->type, t->job_id);
        t->sa = store_arg_new(t, m);
    }
    if (m->ledger != NULL && m->ledger_key != NULL && (t->type[0] != '\0' || t->n_notes > 0)) {
        const char **fields = sl_calloc(t->n_notes + 1, sizeof(*fields));
        size_t nf = 0;
        if (t->type[0] != '\0')
            fields[nf++] = FIELD_QUARANTINE;
        for (size_t k = 0; k < t->n_notes; k++)
            fields[nf++] = t->notes[k].field;
        t->ledger = m->ledger;
        t->ledger_key = sl_strdup(m->ledger_key);
        t->tempfail_unavailable = m->tempfail_unavailable;
        t->reserve = fe_ledger_reserve(m->ledger, m->ledger_key, fields, nf, task_on_reserved, t);
        free(fields);
        return t;
    }
    task_store(t);
    return t;
}

void
fe_quar_task_cancel(struct fe_quar_task **tp)
{
    struct fe_quar_task *t = *tp;

    if (t == NULL)
        return;
    *tp = NULL;
    task_free(t);
}

/* ---- the frontend's part ------------------------------------------------ */

struct expire_arg {
    struct fe_quar *q;
    unsigned long long before_ms;
    unsigned long n;
};

static int
expire_work(struct sl_quar_store *store, void *arg)
{
    struct expire_arg *x = arg;
    char *error = NULL;
    int r;

    if (store == NULL)
        return -1;
    r = sl_quar_expire(store, x->before_ms, &x->n, &error);
    if (r < 0) {
        sl_warn("quarantine: expiry failed: %s", error);
        free(error);
    }
    return r;
}

static void
expire_done(void *arg, int status, bool timed_out)
{
    struct expire_arg *x = arg;
    struct fe_quar *q = x->q;

    q->expire_call = NULL;
    if (status == 1 && x->n > 0)
        sl_info("quarantine: expired %lu entries older than %u s from %s", x->n,
                q->config->quarantine.max_age_s, q->config->quarantine.store);
    else if (status == 1)
        sl_debug("quarantine: nothing to expire");
    else if (status == 0)
        sl_debug("quarantine: expiry skipped: another node is at it");
    else if (timed_out)
        sl_warn("quarantine: expiry timed out");
}

/* Every quarantine.expire_interval: the entries past quarantine.max_age
 * go, on a store thread; one node at a time (sl_quar_expire). */
static void
expire_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fe_quar *q = arg;
    struct expire_arg *x;

    (void)fd;
    (void)what;
    if (q->expire_call != NULL)
        return; /* the last one still runs */
    x = sl_calloc(1, sizeof(*x));
    x->q = q;
    x->before_ms = sl_now_wall_ms() - (unsigned long long)q->config->quarantine.max_age_s * 1000;
    q->expire_call = fe_qpool_submit(q->pool, expire_work, expire_done, free, x,
                                     q->config->quarantine.timeout_s * 10);
}

struct fe_qpool *
fe_quar_pool(struct fe_quar *q)
{
    return q->pool;
}

struct fe_quar *
fe_quar_new(struct event_base *base, const struct sl_config *config, const char *hostname,
            char **error_r)
{
    struct fe_quar *q = sl_calloc(1, sizeof(*q));
    const char *files[2] = {config->quarantine.notify.admin_template,
                            config->quarantine.notify.recip_template};

    q->base = base;
    q->config = config;
    q->hostname = sl_strdup(hostname);
    for (int k = 0; k < 2; k++) {
        if (files[k] != NULL && files[k][0] != '\0') {
            if ((q->templates[k] = fe_notify_load_template(files[k], error_r)) == NULL)
                goto fail;
        } else {
            q->templates[k] = sl_strdup(fe_notify_builtin((enum fe_notify_kind)k));
        }
    }
    if (config->quarantine.store[0] == '\0')
        return q;
    if ((q->pool = fe_qpool_new(base, config, error_r)) == NULL)
        goto fail;
    if (config->quarantine.max_age_s > 0) {
        struct timeval tv = {.tv_sec = config->quarantine.expire_interval_s};
        q->expire_timer = event_new(base, -1, EV_PERSIST, expire_on_timer, q);
        event_add(q->expire_timer, &tv);
    }
    if (config->quarantine.release_socket[0] != '\0' &&
        (q->pdp = fe_pdp_server_new(base, config, q->pool, hostname, error_r)) == NULL)
        goto fail;
    sl_info("quarantine: %s%s%s%s", config->quarantine.store,
            config->quarantine.encryption ? ", messages sealed" : "",
            q->pdp != NULL ? ", AM.PDP release requests on " : "",
            q->pdp != NULL ? config->quarantine.release_socket : "");
    return q;
fail:
    fe_quar_destroy(&q);
    return NULL;
}

void
fe_quar_destroy(struct fe_quar **qp)
{
    struct fe_quar *q = *qp;

    if (q == NULL)
        return;
    *qp = NULL;
    fe_pdp_server_destroy(&q->pdp);
    fe_qpool_cancel(&q->expire_call);
    if (q->expire_timer != NULL)
        event_free(q->expire_timer);
    fe_qpool_destroy(&q->pool);
    free(q->templates[0]);
    free(q->templates[1]);
    free(q->hostname);
    free(q);
}
