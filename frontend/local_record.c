/* local_record.c - reinjected recipients in this process's memory
 * (local_record.h).
 *
 * A chained hash table of messages by key (the keys are digests, spread
 * evenly already; FNV-1a folds them), and a list of the same messages by
 * age of their last record, oldest first: what the time and count bounds
 * remove comes off its head. Each message holds its recipients in an
 * array: a transaction has at most frontend.recipient_limit of them, and
 * they are looked at once per attempt. */
#include "local_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "util/sl_log.h"
#include "util/sl_util.h"

#define LR_BUCKETS 4096 /* a power of two */
#define LR_MINE "local" /* the "reservation" of every answer: nothing to give back */

struct lr_rcpt {
    char *address;
    char *reply;
};

struct lr_msg {
    struct lr_msg *chain; /* the bucket's */
    TAILQ_ENTRY(lr_msg) age;
    char key[FE_LEDGER_KEY_LEN + 1];
    struct lr_rcpt *rcpts;
    size_t n, cap;
    unsigned long long updated_ms;
};

struct lr_op {
    struct fe_local_record *r;
    TAILQ_ENTRY(lr_op) entry;
    struct event *ev;
    char key[FE_LEDGER_KEY_LEN + 1];
    char **rcpts;
    size_t n;
    fe_ledger_reserved_fn *cb;
    void *ctx;
};

struct fe_local_record {
    struct event_base *base;
    size_t max_rcpts;
    unsigned long long ttl_ms;
    struct lr_msg *buckets[LR_BUCKETS];
    TAILQ_HEAD(, lr_msg) by_age;
    TAILQ_HEAD(, lr_op) ops;
    size_t n_rcpts;
};

/* ---- the table -------------------------------------------------------- */

static struct lr_msg **
lr_bucket(struct fe_local_record *r, const char *key)
{
    unsigned long long h = 1469598103934665603ULL;

    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return &r->buckets[h & (LR_BUCKETS - 1)];
}

static struct lr_msg *
lr_find(struct fe_local_record *r, const char *key)
{
    for (struct lr_msg *m = *lr_bucket(r, key); m != NULL; m = m->chain)
        if (strcmp(m->key, key) == 0)
            return m;
    return NULL;
}

static void
lr_remove(struct fe_local_record *r, struct lr_msg *m)
{
    struct lr_msg **pp = lr_bucket(r, m->key);

    while (*pp != m)
        pp = &(*pp)->chain;
    *pp = m->chain;
    TAILQ_REMOVE(&r->by_age, m, age);
    for (size_t i = 0; i < m->n; i++) {
        free(m->rcpts[i].address);
        free(m->rcpts[i].reply);
    }
    r->n_rcpts -= m->n;
    free(m->rcpts);
    free(m);
}

/* The time bound: records older than ttl go. */
static void
lr_expire(struct fe_local_record *r)
{
    unsigned long long now = sl_now_mono_ms();
    struct lr_msg *m;

    while ((m = TAILQ_FIRST(&r->by_age)) != NULL && now - m->updated_ms > r->ttl_ms)
        lr_remove(r, m);
}

/* The count bound: the oldest messages go, never keep itself. */
static void
lr_trim(struct fe_local_record *r, const struct lr_msg *keep, const char *label)
{
    struct lr_msg *m;

    while (r->n_rcpts > r->max_rcpts && (m = TAILQ_FIRST(&r->by_age)) != NULL && m != keep) {
        sl_notice("%s: local record full (%zu recipients): forgetting the %zu recipient(s) "
                  "of %.30s..., recorded %llu s ago; a retry of that message would reinject "
                  "them again",
                  label, r->max_rcpts, m->n, m->key + sizeof(FE_LEDGER_KEY_PREFIX) - 1,
                  (sl_now_mono_ms() - m->updated_ms) / 1000);
        lr_remove(r, m);
    }
}

static struct lr_rcpt *
lr_rcpt_find(struct lr_msg *m, const char *address)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->rcpts[i].address, address) == 0)
            return &m->rcpts[i];
    return NULL;
}

/* ---- the record interface --------------------------------------------- */

static void
lr_op_free(struct lr_op *op)
{
    TAILQ_REMOVE(&op->r->ops, op, entry);
    event_free(op->ev);
    for (size_t i = 0; i < op->n; i++)
        free(op->rcpts[i]);
    free(op->rcpts);
    free(op);
}

/* The answer, from the loop: done with the stored reply, or ours. */
static void
lr_on_answer(evutil_socket_t fd, short what, void *arg)
{
    struct lr_op *op = arg;
    struct fe_local_record *r = op->r;
    struct fe_ledger_entry *entries = sl_calloc(op->n ? op->n : 1, sizeof(*entries));
    struct lr_msg *m;

    (void)fd;
    (void)what;
    lr_expire(r);
    m = lr_find(r, op->key);
    for (size_t i = 0; i < op->n; i++) {
        struct lr_rcpt *rc = m != NULL ? lr_rcpt_find(m, op->rcpts[i]) : NULL;
        entries[i].state = rc != NULL ? FE_LEDGER_DONE : FE_LEDGER_RESERVED;
        entries[i].reply = rc != NULL ? rc->reply : NULL; /* lent for the call */
    }
    op->cb(op->ctx, entries, op->n, LR_MINE, NULL);
    free(entries);
    lr_op_free(op);
}

static void *
lr_reserve(void *impl, const char *key, const char *const *rcpts, size_t n,
           fe_ledger_reserved_fn *cb, void *ctx)
{
    struct fe_local_record *r = impl;
    struct lr_op *op = sl_calloc(1, sizeof(*op));

    op->r = r;
    snprintf(op->key, sizeof(op->key), "%s", key);
    op->rcpts = sl_calloc(n ? n : 1, sizeof(*op->rcpts));
    for (size_t i = 0; i < n; i++)
        op->rcpts[i] = sl_strdup(rcpts[i]);
    op->n = n;
    op->cb = cb;
    op->ctx = ctx;
    op->ev = event_new(r->base, -1, 0, lr_on_answer, op);
    SL_BUG_ON(op->ev == NULL);
    TAILQ_INSERT_TAIL(&r->ops, op, entry);
    event_active(op->ev, EV_TIMEOUT, 0);
    return op;
}

static void
lr_abandon(void *impl, void **opp)
{
    struct lr_op *op = *opp;

    (void)impl;
    *opp = NULL;
    if (op != NULL)
        lr_op_free(op); /* it reserved nothing */
}

static void
lr_record(void *impl, const char *label, const char *key, const char *mine,
          const char *const *rcpts, const char *const *replies, size_t n)
{
    struct fe_local_record *r = impl;
    struct lr_msg *m = lr_find(r, key);

    (void)mine;
    for (size_t i = 0; i < n; i++) {
        if (replies[i] == NULL)
            continue; /* nothing held for it, nothing to give back */
        if (m == NULL) {
            struct lr_msg **bucket = lr_bucket(r, key);
            m = sl_calloc(1, sizeof(*m));
            snprintf(m->key, sizeof(m->key), "%s", key);
            m->chain = *bucket;
            *bucket = m;
            TAILQ_INSERT_TAIL(&r->by_age, m, age);
        }
        struct lr_rcpt *rc = lr_rcpt_find(m, rcpts[i]);
        if (rc == NULL) {
            if (m->n == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 4;
                m->rcpts = sl_realloc(m->rcpts, m->cap * sizeof(*m->rcpts));
            }
            rc = &m->rcpts[m->n++];
            rc->address = sl_strdup(rcpts[i]);
            rc->reply = NULL;
            r->n_rcpts++;
        }
        free(rc->reply);
        rc->reply = sl_strdup(replies[i]);
    }
    if (m == NULL)
        return;
    m->updated_ms = sl_now_mono_ms();
    TAILQ_REMOVE(&r->by_age, m, age);
    TAILQ_INSERT_TAIL(&r->by_age, m, age);
    lr_expire(r);
    lr_trim(r, m, label);
}

static void
lr_release(void *impl, const char *key, const char *mine, const char *const *rcpts, size_t n)
{
    /* nothing is ever reserved here */
    (void)impl;
    (void)key;
    (void)mine;
    (void)rcpts;
    (void)n;
}

static void
lr_answer_release(void *impl, const char *key, const char *const *rcpts,
                  struct fe_ledger_answer **ap)
{
    (void)impl;
    (void)key;
    (void)rcpts;
    fe_ledger_answer_free(ap);
}

static void
lr_answered(void *impl, const char *key, bool retried)
{
    struct fe_local_record *r = impl;
    struct lr_msg *m = lr_find(r, key);

    if (m == NULL)
        return;
    if (retried) {
        sl_debug("local record: keeping %zu recipient(s) for the retry", m->n);
        return;
    }
    lr_remove(r, m); /* every recipient's answer is in Postfix's hands */
}

/* One process: a job that ends has released what it reserved already. */
static void
lr_serve_end(void *impl, const char *key)
{
    (void)impl;
    (void)key;
}

static const struct fe_record_ops local_ops = {
    .name = "local record",
    .finish_detached = false,
    .reserve = lr_reserve,
    .abandon = lr_abandon,
    .record = lr_record,
    .release = lr_release,
    .answer_release = lr_answer_release,
    .answered = lr_answered,
    .serve_end = lr_serve_end,
};

struct fe_record
fe_record_of_local(struct fe_local_record *r)
{
    return (struct fe_record){&local_ops, r};
}

/* ---- life ------------------------------------------------------------- */

struct fe_local_record *
fe_local_record_new(struct event_base *base, size_t max_rcpts, unsigned ttl_s)
{
    struct fe_local_record *r = sl_calloc(1, sizeof(*r));

    r->base = base;
    r->max_rcpts = max_rcpts;
    r->ttl_ms = (unsigned long long)ttl_s * 1000;
    TAILQ_INIT(&r->by_age);
    TAILQ_INIT(&r->ops);
    return r;
}

void
fe_local_record_destroy(struct fe_local_record **rp)
{
    struct fe_local_record *r = *rp;
    struct lr_msg *m;
    struct lr_op *op;

    if (r == NULL)
        return;
    *rp = NULL;
    while ((op = TAILQ_FIRST(&r->ops)) != NULL)
        lr_op_free(op);
    while ((m = TAILQ_FIRST(&r->by_age)) != NULL)
        lr_remove(r, m);
    free(r);
}

size_t
fe_local_record_count(const struct fe_local_record *r)
{
    return r->n_rcpts;
}
