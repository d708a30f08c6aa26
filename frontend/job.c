/* job.c - one message in flight, from the final "." to Postfix's replies
 * (job.h).
 *
 * Life of a job:
 *   fe_job_start: submitted to the brokers; its recipients reserved in
 *     the record (the ledger, or the local record) at the same time
 *   job_on_verdict, job_on_reserved: in either order; the delivery starts
 *     once both are in (job_proceed)
 *   job_on_delivered: replies to the session, the summary line, freed
 * and at any point job_tempfail (deadline, worker failure, unusable
 * verdict) or fe_job_detach (the client left). */
#include "job.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "broker_link.h"
#include "context.h"
#include "fe_metrics.h"
#include "ledger.h"
#include "local_record.h"
#include "origins.h"
#include "outcome.h"
#include "reinject.h"
#include "settings.h"
#include "util/sl_buf.h"
#include "conf/sl_config.h"
#include "util/sl_id.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define JOB_REPLY_MAX 510 /* RFC 5321 4.5.3.1.5: 512 with CRLF */

struct fe_job {
    struct fe_job *next, *prev; /* fe->jobs */
    struct fe_context *fe;
    struct fe_settings *settings; /* from end of data (a reference): settings.h */
    struct fe_origin *origin;     /* in settings->origins; its slot is this job's */
    char id[SL_ID_LEN + 1];
    struct fe_envelope env;
    struct sl_body *body;
    char *peer_ip;
    unsigned peer_port, local_port;
    char *helo;
    bool lmtp;
    unsigned long long t_start_ms;

    /* the waiting session; done is NULL once the client left */
    fe_job_done_fn *done;
    fe_job_connected_fn *connected;
    void *ctx;

    struct fe_link_job *at_broker; /* until the verdict came or it was withdrawn */
    struct event *deadline;        /* job.timeout for the verdict */
    struct event *later;           /* a failure found in fe_job_start, answered from the loop */
    const char *later_why;
    Sluice__Verdict *verdict; /* a copy, kept while the record's answer is awaited */

    /* what was reinjected already (record.h): the ledger, or the local record */
    struct fe_record record;
    char key[FE_LEDGER_KEY_LEN + 1];
    void *reserve;                     /* reserving the recipients, from end of data */
    bool serving;                      /* reserve called: fe_record_serve_end owed */
    struct fe_ledger_answer *reserved; /* its answer, until the delivery uses it */
    struct fe_delivery *delivery;      /* per-recipient destinies (outcome.h) */

    /* for the summary line */
    char *message_id;   /* with <>, "" for none */
    char *category;     /* "INFECTED (name)", "SPAM", ... NULL: CLEAN */
    char *hits;         /* the spam score; NULL: "-" */
    char *log_bank;     /* " ORIGINATING LOCAL"; NULL: "" */
    struct fe_metrics_msg metrics; /* category and destiny, counted at the end */
};

/* ---- the envelope ----------------------------------------------------- */

void
fe_envelope_add_rcpt(struct fe_envelope *e, const struct fe_rcpt *r)
{
    if (e->n_rcpts == e->cap_rcpts) {
        e->cap_rcpts = e->cap_rcpts ? e->cap_rcpts * 2 : 8;
        e->rcpts = sl_realloc(e->rcpts, e->cap_rcpts * sizeof(*e->rcpts));
    }
    e->rcpts[e->n_rcpts++] = *r;
}

void
fe_envelope_clear(struct fe_envelope *e)
{
    sl_free_and_clear(&e->mail_from);
    sl_free_and_clear(&e->ret);
    sl_free_and_clear(&e->envid);
    sl_free_and_clear(&e->body_type);
    e->smtputf8 = false;
    e->size = 0;
    for (size_t i = 0; i < e->n_rcpts; i++) {
        free(e->rcpts[i].address);
        free(e->rcpts[i].notify);
        free(e->rcpts[i].orcpt);
    }
    e->n_rcpts = 0;
    for (int i = 0; i < SL_XF_COUNT; i++)
        sl_free_and_clear(&e->xforward[i]);
}

static void
envelope_free(struct fe_envelope *e)
{
    fe_envelope_clear(e);
    free(e->rcpts);
    e->rcpts = NULL;
    e->cap_rcpts = 0;
}

/* ---- the end of a job ------------------------------------------------- */

/* Gives back what the reservation took and nobody will use (a retry must
 * not wait for it to go stale), and tells the ledger this job no longer
 * works on the message: a reservation of ours left under its key (a
 * release Redis did not take) is then an orphan that a retry takes over,
 * not a copy in flight. */
static void
job_record_stop(struct fe_job *j)
{
    if (j->record.ops == NULL)
        return;
    fe_record_abandon(&j->record, &j->reserve);
    if (j->reserved != NULL) {
        const char **rcpts = sl_calloc(j->env.n_rcpts ? j->env.n_rcpts : 1, sizeof(*rcpts));
        for (size_t i = 0; i < j->env.n_rcpts; i++)
            rcpts[i] = j->env.rcpts[i].address;
        fe_record_answer_release(&j->record, j->key, rcpts, &j->reserved);
        free(rcpts);
    }
    if (j->serving)
        fe_record_serve_end(&j->record, j->key);
    j->serving = false;
}

static void
job_free(struct fe_job *j)
{
    struct fe_context *fe = j->fe;

    job_record_stop(j);
    fe_broker_link_withdraw(fe->link, &j->at_broker);
    fe_delivery_cancel(&j->delivery);
    if (j->deadline != NULL)
        event_free(j->deadline);
    if (j->later != NULL)
        event_free(j->later);
    if (j->verdict != NULL)
        sluice__verdict__free_unpacked(j->verdict, NULL);
    if (j->origin != NULL)
        fe_origin_release_slot(j->origin);
    fe_settings_unref(&j->settings);
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        fe->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    fe->n_jobs--;
    envelope_free(&j->env);
    sl_body_unref(&j->body);
    free(j->peer_ip);
    free(j->helo);
    free(j->message_id);
    free(j->category);
    free(j->hits);
    free(j->log_bank);
    free(j);
}

/* The job is over: the session gets replies (NULL: the client is gone,
 * close), then the frontend hears that a job ended. */
static void
job_end(struct fe_job *j, const char *const *replies, size_t n)
{
    struct fe_context *fe = j->fe;
    fe_job_done_fn *done = j->done;
    void *ctx = j->ctx;

    fe_metrics_msg_done(&j->metrics, j->origin != NULL ? j->origin->config : NULL, replies, n,
                        j->t_start_ms);
    job_free(j);
    if (done != NULL)
        done(ctx, replies, n);
    if (fe->on_idle != NULL)
        fe->on_idle(fe);
}

/* amavisd-new's one line per message, so mailgraph, logwatch and existing
 * dashboards keep working (docs/operations.md, "Logs"). */
static void
job_log_summary(const struct fe_job *j, const char *action, const char *queued_as,
                const char *detail, const char *quarantine)
{
    if (!sl_log_enabled(LOG_INFO))
        return;

    struct sl_buf line;
    const char *ip = j->env.xforward[SL_XF_ADDR] ? j->env.xforward[SL_XF_ADDR] : j->peer_ip;
    const char *port = j->env.xforward[SL_XF_PORT];
    bool passed = strstr(action, "Relayed") != NULL;

    sl_buf_init(&line);
    sl_buf_printf(&line, "(%s) %s %s {%s},%s [%s]", j->id, passed ? "Passed" : "Blocked",
                  j->category ? j->category : "CLEAN", action, j->log_bank ? j->log_bank : "",
                  ip);
    if (port)
        sl_buf_printf(&line, ":%s", port);
    sl_buf_printf(&line, " <%s> ->", j->env.mail_from ? j->env.mail_from : "");
    for (size_t i = 0; i < j->env.n_rcpts; i++)
        sl_buf_printf(&line, "%s<%s>", i ? "," : " ", j->env.rcpts[i].address);
    if (quarantine != NULL)
        sl_buf_printf(&line, ", quarantine: %s", quarantine);
    sl_buf_printf(&line, ", Queue-ID: %s, Message-ID: %s, mail_id: %s, Hits: %s, size: %zu",
                  j->env.xforward[SL_XF_IDENT] ? j->env.xforward[SL_XF_IDENT] : "-",
                  j->message_id && *j->message_id ? j->message_id : "-", j->id,
                  j->hits ? j->hits : "-", j->body ? j->body->len : (size_t)0);
    if (queued_as)
        sl_buf_printf(&line, ", queued_as: %s", queued_as);
    if (detail)
        sl_buf_printf(&line, ", %s", detail);
    sl_buf_printf(&line, ", %llu ms", sl_now_mono_ms() - j->t_start_ms);
    sl_info("%s", line.data);
    sl_buf_free(&line);
}

/* Every recipient (LMTP), or the transaction (SMTP), gets the same 451. */
static void
job_tempfail(struct fe_job *j, const char *why)
{
    char text[JOB_REPLY_MAX + 1];
    size_t n = j->lmtp ? j->env.n_rcpts : 1;
    const char **replies = sl_calloc(n ? n : 1, sizeof(*replies));

    snprintf(text, sizeof(text), "451 4.5.0 id=%s, %s", j->id, why);
    for (size_t i = 0; i < n; i++)
        replies[i] = text;
    job_log_summary(j, "TempFailedInbound", NULL, why, NULL);
    job_end(j, replies, n);
    free(replies);
}

static void
job_on_later(evutil_socket_t fd, short what, void *arg)
{
    struct fe_job *j = arg;

    (void)fd;
    (void)what;
    job_tempfail(j, j->later_why);
}

static void
job_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct fe_job *j = arg;

    (void)fd;
    (void)what;
    sl_warn("%s: no verdict within job.timeout (%u s); tempfailing", j->id,
            j->settings->config->job.timeout_s);
    job_tempfail(j, "no scanner verdict in time, try again later");
}

/* ---- delivering ------------------------------------------------------- */

static bool
job_client_connected(void *ctx)
{
    struct fe_job *j = ctx;

    return j->done != NULL && j->connected(j->ctx);
}

static void
job_test_kill(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    raise(SIGKILL);
}

/* Per-recipient destinies done (outcome.h): replies in RCPT order, the
 * summary line. */
static void
job_on_delivered(void *ctx, const struct fe_delivery_result *res)
{
    struct fe_job *j = ctx;

    j->delivery = NULL;
    if (res->cancelled) {
        /* asked before the final "." to :10025: nothing was delivered */
        sl_info("%s: client left during reinjection; aborted before end of data", j->id);
        job_end(j, NULL, 0);
        return;
    }
    if (j->fe->test_kill_after_reinject && res->reinjected) {
        /* from the loop: after the record's write, queued before this
         * event, and in place of the replies, which would come after it */
        sl_warn("%s: SLUICE_TEST_KILL_AFTER_REINJECT: killing myself before the reply", j->id);
        event_active(event_new(j->fe->base, -1, 0, job_test_kill, NULL), EV_TIMEOUT, 0);
        return;
    }
    if (j->done == NULL)
        sl_info("%s: finished after the client left; the %s holds the result for its retry", j->id,
                j->record.ops->name);
    job_log_summary(j, res->action, res->queued_as, res->detail, res->quarantine);
    if (j->lmtp)
        job_end(j, (const char *const *)res->replies, res->n_replies);
    else
        job_end(j, (const char *const *)&res->combined, 1);
}

/* The verdict (and the reservation's answer) is in:
 * carry out each recipient's destiny. */
static void
job_deliver(struct fe_job *j, const Sluice__Verdict *v)
{
    const struct sl_origin_config *oc = j->origin->config;
    struct fe_context *fe = j->fe;
    struct fe_reinject_rcpt *rcpts = sl_calloc(j->env.n_rcpts ? j->env.n_rcpts : 1,
                                               sizeof(*rcpts));
    const char *error;

    for (size_t i = 0; i < j->env.n_rcpts; i++)
        rcpts[i] = (struct fe_reinject_rcpt){j->env.rcpts[i].address, j->env.rcpts[i].notify,
                                             j->env.rcpts[i].orcpt};
    struct fe_reinject_request req = {
        .job_id = j->id,
        .host = oc->reinject_to_client ? j->peer_ip : oc->reinject_host,
        .port = oc->reinject_port,
        .max_conns = oc->concurrency,
        .mail_from = j->env.mail_from,
        .ret = j->env.ret,
        .envid = j->env.envid,
        .body_type = j->env.body_type,
        .smtputf8 = j->env.smtputf8,
        .rcpts = rcpts,
        .n_rcpts = j->env.n_rcpts,
        .xforward = j->env.xforward,
        .body = j->body,
    };
    struct fe_delivery_params p = {
        .base = fe->base,
        .reinjector = fe->reinjector,
        .req = &req,
        .verdict = v,
        .lmtp = j->lmtp,
        .hostname = fe->hostname,
        .message_id = j->message_id,
        .arrival_ms = sl_now_wall_ms() - (sl_now_mono_ms() - j->t_start_ms),
        .quar = fe->quar,
        .ledger = fe->ledger,
        .origin = j->origin->config->name,
        .client = j->peer_ip,
        .client_addr = j->env.xforward[SL_XF_ADDR],
    };
    p.record = j->record.ops != NULL ? &j->record : NULL; /* none: everyone is sent */
    p.record_key = j->key;
    p.record_answer = j->reserved;
    p.tempfail_unavailable = fe->dedup_tempfail;
    j->delivery = fe_delivery_start(&p, job_on_delivered, job_client_connected, j, &error);
    free(rcpts);
    if (j->delivery == NULL) {
        sl_warn("%s: unusable verdict from worker %s: %s", j->id, v->worker ? v->worker : "?",
                error);
        job_tempfail(j, "message could not be scanned, try again later");
        return;
    }
    /* the delivery took the reservation over: it records or releases */
    fe_ledger_answer_free(&j->reserved);
}

/* A copy of a verdict that outlives the link's frame. */
static Sluice__Verdict *
verdict_dup(const Sluice__Verdict *v)
{
    size_t len = sluice__verdict__get_packed_size(v);
    uint8_t *buf = sl_malloc(len ? len : 1);
    Sluice__Verdict *copy;

    sluice__verdict__pack(v, buf);
    copy = sluice__verdict__unpack(NULL, len, buf);
    free(buf);
    SL_BUG_ON(copy == NULL); /* we packed it a moment ago */
    return copy;
}

void
fe_job_on_verdict(void *ctx, const Sluice__Verdict *v)
{
    struct fe_job *j = ctx;

    j->at_broker = NULL; /* the link forgot it */
    evtimer_del(j->deadline);
    fe_metrics_msg_verdict(&j->metrics, v);
    /* logged as amavisd-new does: with angle brackets */
    if (v->message_id && *v->message_id && *v->message_id != '<')
        j->message_id = sl_asprintf("<%s>", v->message_id);
    else
        j->message_id = sl_strdup(v->message_id ? v->message_id : "");
    if (!v->ok) {
        j->category = sl_strdup(v->category && *v->category ? v->category : "CLEAN");
        sl_warn("%s: worker %s could not process the message: %s", j->id,
                v->worker ? v->worker : "?", v->error ? v->error : "unknown error");
        job_tempfail(j, "message could not be scanned, try again later");
        return;
    }
    fe_verdict_log_parts(v, &j->category, &j->hits);
    j->log_bank = fe_verdict_log_bank(v);
    if ((j->record.ops == NULL || !j->record.ops->finish_detached) && !job_client_connected(j)) {
        sl_info("%s: client left while the message was scanned; not reinjected "
                "(Postfix keeps it and retries)",
                j->id);
        job_end(j, NULL, 0);
        return;
    }
    if (j->reserve != NULL) {
        j->verdict = verdict_dup(v); /* job_on_reserved delivers it */
        return;
    }
    job_deliver(j, v);
}

/* The reservation made at end of data has its answer. Before the verdict:
 * if every recipient is already reinjected, Postfix is retrying a message
 * whose reply it never got (it gave up waiting, lmtp_data_done_timeout),
 * or, in SMTP mode, that it was told to retry when a recipient was
 * tempfailed: the stored replies go out now and the scan started
 * meanwhile is withdrawn; the retry does not wait for a slow scan again. */
static void
job_on_reserved(void *ctx, const struct fe_ledger_entry *entries, size_t n, const char *mine,
                const char *error)
{
    struct fe_job *j = ctx;
    bool all_done = error == NULL && j->at_broker != NULL && n > 0;

    j->reserve = NULL;
    for (size_t i = 0; all_done && i < n; i++)
        all_done = entries[i].state == FE_LEDGER_DONE;
    if (all_done) {
        const char **replies = sl_calloc(n, sizeof(*replies));
        size_t n_replies = j->lmtp ? n : 1;

        sl_info("%s: %s: all %zu recipient(s) already reinjected; stored replies given, "
                "not scanned or reinjected again",
                j->id, j->record.ops->name, n);
        char detail[64];
        for (size_t i = 0; i < n; i++)
            replies[i] = entries[i].reply;
        snprintf(detail, sizeof(detail), "%s: already delivered", j->record.ops->name);
        job_log_summary(j, "RelayedInbound", NULL, detail, NULL);
        fe_record_answered(&j->record, j->key, false);
        job_end(j, replies, n_replies);
        free(replies);
        return;
    }
    j->reserved = fe_ledger_answer_new(entries, n, mine, error);
    if (j->verdict != NULL) {
        Sluice__Verdict *v = j->verdict;
        j->verdict = NULL;
        job_deliver(j, v); /* may end the job */
        sluice__verdict__free_unpacked(v, NULL);
    }
}

/* ---- the start -------------------------------------------------------- */

/* Names the message as the ledger does and reserves its recipients
 * while the message is scanned: with Redis, the round trip is off the
 * path Postfix waits on. */
static void
job_record_start(struct fe_job *j)
{
    size_t mid_len;
    const char *mid = fe_ledger_message_id(j->body->data, j->body->len, &mid_len);
    char *mid_copy = mid ? sl_strndup(mid, mid_len) : NULL;
    struct fe_ledger_message m = {
        .origin = j->origin->config->name,
        .ident = j->env.xforward[SL_XF_IDENT],
        .message_id = mid_copy,
        .body = j->body->data,
        .body_len = j->body->len,
    };
    const char **rcpts = sl_calloc(j->env.n_rcpts ? j->env.n_rcpts : 1, sizeof(*rcpts));

    fe_ledger_key(&m, j->key);
    free(mid_copy);
    for (size_t i = 0; i < j->env.n_rcpts; i++)
        rcpts[i] = j->env.rcpts[i].address;
    j->reserve = fe_record_reserve(&j->record, j->key, rcpts, j->env.n_rcpts, job_on_reserved, j);
    j->serving = true;
    free(rcpts);
}

/* The Job message for the brokers (docs/protocol-wire.md); 0, or -1 when
 * no broker can ever take it. */
static int
job_submit(struct fe_job *j)
{
    const struct fe_envelope *e = &j->env;
    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Xforward xf = SLUICE__XFORWARD__INIT;
    char *xv[SL_XF_COUNT];
    Sluice__Recipient *rcpt_store = sl_calloc(e->n_rcpts ? e->n_rcpts : 1, sizeof(*rcpt_store));
    Sluice__Recipient **rcpt_ptrs = sl_calloc(e->n_rcpts ? e->n_rcpts : 1, sizeof(*rcpt_ptrs));

    for (int i = 0; i < SL_XF_COUNT; i++)
        xv[i] = e->xforward[i] ? e->xforward[i] : (char *)"";
    xf.name = xv[SL_XF_NAME];
    xf.addr = xv[SL_XF_ADDR];
    xf.port = xv[SL_XF_PORT];
    xf.proto = xv[SL_XF_PROTO];
    xf.helo = xv[SL_XF_HELO];
    xf.ident = xv[SL_XF_IDENT];
    xf.source = xv[SL_XF_SOURCE];
    for (size_t i = 0; i < e->n_rcpts; i++) {
        sluice__recipient__init(&rcpt_store[i]);
        rcpt_store[i].address = e->rcpts[i].address;
        rcpt_store[i].notify = e->rcpts[i].notify ? e->rcpts[i].notify : (char *)"";
        rcpt_store[i].orcpt = e->rcpts[i].orcpt ? e->rcpts[i].orcpt : (char *)"";
        rcpt_ptrs[i] = &rcpt_store[i];
    }
    job.job_id = j->id;
    job.origin = j->origin->config->name;
    job.client_addr = j->peer_ip;
    job.deadline_ms =
        sl_now_wall_ms() + (unsigned long long)j->settings->config->job.timeout_s * 1000;
    job.mail_from = e->mail_from;
    job.ret = e->ret ? e->ret : (char *)"";
    job.envid = e->envid ? e->envid : (char *)"";
    job.body_type = e->body_type ? e->body_type : (char *)"";
    job.smtputf8 = e->smtputf8;
    job.n_rcpts = e->n_rcpts;
    job.rcpts = rcpt_ptrs;
    job.xforward = &xf;
    job.size = j->body->len;
    job.attempt = 0; /* the broker numbers hand-outs from 1 */
    job.helo = j->helo;
    job.proto = j->lmtp ? "LMTP" : "ESMTP";
    job.received_ms = sl_now_wall_ms();
    job.by_host = (char *)j->fe->hostname;
    job.by_port = j->local_port;
    j->at_broker = fe_broker_link_submit(j->fe->link, &job, j->body, j);
    free(rcpt_ptrs);
    free(rcpt_store);
    return j->at_broker != NULL ? 0 : -1;
}

struct fe_job *
fe_job_start(struct fe_context *fe, const struct fe_job_params *p)
{
    struct fe_job *j = sl_calloc(1, sizeof(*j));
    /* the settings current at end of data; the slot counter is the same
     * for an origin of the same name in any table (origins.h) */
    struct fe_settings *settings = fe->settings;
    struct fe_origin *origin = fe_origins_find(&settings->origins, p->origin->config->name);

    if (origin == NULL) { /* a reload removed the origin: the session's */
        settings = p->settings;
        origin = p->origin;
    }
    j->fe = fe;
    j->settings = fe_settings_ref(settings);
    j->origin = origin;
    struct timeval tv = {.tv_sec = j->settings->config->job.timeout_s};
    snprintf(j->id, sizeof(j->id), "%s", p->id);
    j->env = *p->env;
    memset(p->env, 0, sizeof(*p->env));
    j->body = sl_body_ref(p->body);
    j->peer_ip = sl_strdup(p->peer_ip);
    j->peer_port = p->peer_port;
    j->local_port = p->local_port;
    j->helo = p->helo ? sl_strdup(p->helo) : NULL;
    j->lmtp = p->lmtp;
    j->t_start_ms = sl_now_mono_ms();
    j->done = p->done;
    j->connected = p->connected;
    j->ctx = p->ctx;
    j->next = fe->jobs;
    if (fe->jobs != NULL)
        fe->jobs->prev = j;
    fe->jobs = j;
    fe->n_jobs++;
    j->deadline = evtimer_new(fe->base, job_on_deadline, j);
    j->later = evtimer_new(fe->base, job_on_later, j);
    SL_BUG_ON(j->deadline == NULL || j->later == NULL);

    if (job_submit(j) != 0) {
        sl_warn("%s: cannot hand the message to a broker", j->id);
        j->later_why = "cannot queue the message for scanning, try again later";
        event_active(j->later, EV_TIMEOUT, 0);
        return j;
    }
    evtimer_add(j->deadline, &tv);
    /* the Redis ledger when dedup is on, else this process's own record:
     * either way a retry reinjects no recipient twice (record.h) */
    if (fe->ledger != NULL)
        j->record = fe_record_of_ledger(fe->ledger);
    else if (!j->lmtp || fe_local_record_count(fe->local_record) > 0)
        j->record = fe_record_of_local(fe->local_record);
    /* else none: an LMTP reply per recipient means Postfix never sends
     * an accepted recipient again, so a local record that holds nothing
     * has nothing to give this message and would keep nothing of it (and
     * the message needs no name: no digest of its body) */
    if (j->record.ops != NULL)
        job_record_start(j);
    sl_debug("%s: queued for scanning, %zu bytes, %zu recipient(s), Queue-ID %s", j->id,
             j->body->len, j->env.n_rcpts,
             j->env.xforward[SL_XF_IDENT] ? j->env.xforward[SL_XF_IDENT] : "-");
    return j;
}

void
fe_job_detach(struct fe_job **jobp)
{
    struct fe_job *j = *jobp;
    struct fe_context *fe;

    if (j == NULL)
        return;
    *jobp = NULL;
    fe = j->fe;
    j->done = NULL;
    if (j->record.ops != NULL && j->record.ops->finish_detached &&
        (j->at_broker != NULL || j->verdict != NULL || j->delivery != NULL)) {
        /* finished and recorded, so Postfix's retry gets the reply instead
         * of a second copy */
        sl_info("%s: client disconnected %s; finishing the job for the ledger", j->id,
                j->delivery != NULL ? "during reinjection" : "while the message was scanned");
        return;
    }
    if (j->at_broker != NULL)
        sl_info("%s: client disconnected while the message was scanned; abandoned "
                "(Postfix keeps it and retries)",
                j->id);
    else if (j->delivery != NULL)
        sl_info("%s: client disconnected during reinjection", j->id);
    job_free(j);
    if (fe->on_idle != NULL)
        fe->on_idle(fe);
}

void
fe_job_destroy_all(struct fe_context *fe)
{
    while (fe->jobs != NULL)
        job_free(fe->jobs);
}
