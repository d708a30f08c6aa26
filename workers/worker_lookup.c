/* worker_lookup.c - a job's recipients looked up before the scan
 * (worker_lookup.h). */
#include "worker_lookup.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "worker_metrics.h"
#include "mail/sl_message.h"
#include "util/sl_addr.h"
#include "util/sl_log.h"
#include "util/sl_util.h"

#define MAX_SENDERS 9 /* the envelope sender and up to 8 From: addresses */
#define FAILURE_LOG_MS 10000 /* a source that is down is said once per 10 s, not per recipient */

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long failure_logged_ms;
static unsigned long failures_unlogged;

/* The first failure, then one line per FAILURE_LOG_MS with the count of
 * those not logged: the frontend logs each tempfailed message anyway. */
static void
log_failure(const char *job_id, const char *rcpt, const char *error)
{
    unsigned long long now = sl_now_mono_ms();
    unsigned long more = 0;
    bool say;

    pthread_mutex_lock(&failure_lock);
    say = failure_logged_ms == 0 || now - failure_logged_ms >= FAILURE_LOG_MS;
    if (say) {
        more = failures_unlogged;
        failures_unlogged = 0;
        failure_logged_ms = now;
    } else {
        failures_unlogged++;
    }
    pthread_mutex_unlock(&failure_lock);
    if (!say)
        return;
    if (more > 0)
        sl_warn("%s: policy lookup for <%s> failed: %s (and %lu more since the last such line)",
                job_id, rcpt, error, more);
    else
        sl_warn("%s: policy lookup for <%s> failed: %s", job_id, rcpt, error);
}

/* amavis checks the envelope sender and the From: addresses (its
 * rfc2822_from) against a recipient's lists. */
static size_t
senders_of(const Sluice__Job *job, const char *data, size_t len, char **senders)
{
    size_t n = 0;
    char *from = sl_message_header(data, len, "From");

    senders[n++] = sl_strdup(job->mail_from != NULL ? job->mail_from : "");
    if (from == NULL)
        return n;
    InternetAddressList *list = internet_address_list_parse(NULL, from);
    for (int i = 0; list != NULL && i < internet_address_list_length(list) && n < MAX_SENDERS;
         i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia))
            senders[n++] =
                sl_strdup(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)));
    }
    if (list != NULL)
        g_object_unref(list);
    free(from);
    return n;
}

/* One recipient, counted for the metrics. */
static int
lookup_one(struct sl_lookup_session *s, const char *source, const char *rcpt, bool local,
           struct sl_lookup_answer *a, char **error_r)
{
    unsigned long long t0 = worker_metrics_now();
    int ret = sl_lookup_rcpt(s, rcpt, local, a, error_r);
    double seconds = (double)(worker_metrics_now() - t0) / 1000;

    worker_metrics_lookup(source, ret < 0 ? "failed" : a->cached ? "cached" : "queried", seconds);
    return ret;
}

void
job_lookups_run(struct sl_lookup_session *s, const struct sl_config *cfg, const Sluice__Job *job,
                const char *data, size_t len, struct job_lookups *jl)
{
    const char *source;
    char *senders[MAX_SENDERS];
    size_t n_senders;
    const struct sl_policy_config *p = &cfg->policy;

    memset(jl, 0, sizeof(*jl));
    if (s == NULL)
        return;
    source = sl_lookup_session_source(s);
    n_senders = senders_of(job, data, len, senders);
    jl->n = job->n_rcpts;
    jl->pl = sl_calloc(jl->n > 0 ? jl->n : 1, sizeof(*jl->pl));
    jl->answers = sl_calloc(jl->n > 0 ? jl->n : 1, sizeof(*jl->answers));
    jl->names = sl_calloc(jl->n > 0 ? jl->n : 1, sizeof(*jl->names));
    jl->errors = sl_calloc(jl->n > 0 ? jl->n : 1, sizeof(*jl->errors));
    for (size_t i = 0; i < jl->n; i++) {
        const char *rcpt = job->rcpts[i]->address;
        bool local = sl_addr_domain_listed(p->local_domains, p->n_local_domains, rcpt);
        struct sl_lookup_answer *a = &jl->answers[i];
        if (lookup_one(s, source, rcpt, local, a, &jl->errors[i]) < 0) {
            log_failure(job->job_id, rcpt, jl->errors[i]);
            jl->pl[i].failed = jl->errors[i];
            continue;
        }
        jl->pl[i].answer = a;
        sl_lookup_senders(a, (const char *const *)senders, n_senders, p->local_domains,
                          p->n_local_domains, cfg->lookup.recipient_delimiter, &jl->pl[i].wb);
        if (a->found) {
            const char *what = a->policy_name != NULL ? a->policy_name : a->matched_key;
            jl->names[i] = sl_asprintf("%s:%s", source, what);
            jl->pl[i].name = jl->names[i];
        }
    }
    for (size_t k = 0; k < n_senders; k++)
        free(senders[k]);
}

bool
job_lookups_all(const struct job_lookups *jl, enum sl_lookup_field field, bool dflt)
{
    if (jl->pl == NULL || jl->n == 0)
        return dflt;
    for (size_t i = 0; i < jl->n; i++) {
        const char *v = jl->pl[i].answer != NULL ? jl->pl[i].answer->value[field] : NULL;
        if (!(v != NULL ? sl_lookup_bool(v) : dflt))
            return false;
    }
    return true;
}

char *
job_lookups_banks(const struct job_lookups *jl, const char *banks)
{
    char *out = sl_strdup(banks);

    for (size_t i = 0; i < jl->n; i++) {
        const char *name = jl->names != NULL ? jl->names[i] : NULL;
        bool seen = false;
        for (size_t k = 0; name != NULL && k < i; k++)
            seen = seen || (jl->names[k] != NULL && strcmp(jl->names[k], name) == 0);
        if (name == NULL || seen)
            continue;
        char *next = sl_asprintf("%s%s%s", out, out[0] != '\0' ? "," : "", name);
        free(out);
        out = next;
    }
    return out;
}

void
job_lookups_free(struct job_lookups *jl)
{
    for (size_t i = 0; i < jl->n; i++) {
        sl_lookup_answer_clear(&jl->answers[i]);
        free(jl->names[i]);
        free(jl->errors[i]);
    }
    free(jl->answers);
    free(jl->names);
    free(jl->errors);
    free(jl->pl);
    memset(jl, 0, sizeof(*jl));
}
