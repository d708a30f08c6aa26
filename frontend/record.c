/* record.c - the Redis ledger behind the record interface (record.h): its
 * own functions, each called as it is; nothing of the ledger's logic here. */
#include "record.h"

static void *
ledger_reserve(void *impl, const char *key, const char *const *rcpts, size_t n,
               fe_ledger_reserved_fn *cb, void *ctx)
{
    return fe_ledger_reserve(impl, key, rcpts, n, cb, ctx);
}

static void
ledger_abandon(void *impl, void **opp)
{
    struct fe_ledger_op *op = *opp;

    (void)impl;
    *opp = NULL;
    fe_ledger_abandon(&op);
}

static void
ledger_record(void *impl, const char *label, const char *key, const char *mine,
              const char *const *rcpts, const char *const *replies, size_t n)
{
    fe_ledger_record_nowait(impl, label, key, mine, rcpts, replies, n);
}

static void
ledger_release(void *impl, const char *key, const char *mine, const char *const *rcpts, size_t n)
{
    fe_ledger_release(impl, key, mine, rcpts, n);
}

static void
ledger_answer_release(void *impl, const char *key, const char *const *rcpts,
                      struct fe_ledger_answer **ap)
{
    fe_ledger_answer_release(impl, key, rcpts, ap);
}

/* Redis keeps every record until dedup.ttl: a reply may be lost on the
 * way to Postfix, on any frontend, after it was given. */
static void
ledger_answered(void *impl, const char *key, bool retried)
{
    (void)impl;
    (void)key;
    (void)retried;
}

static void
ledger_serve_end(void *impl, const char *key)
{
    fe_ledger_serve_end(impl, key);
}

static const struct fe_record_ops ledger_ops = {
    .name = "ledger",
    .finish_detached = true,
    .reserve = ledger_reserve,
    .abandon = ledger_abandon,
    .record = ledger_record,
    .release = ledger_release,
    .answer_release = ledger_answer_release,
    .answered = ledger_answered,
    .serve_end = ledger_serve_end,
};

struct fe_record
fe_record_of_ledger(struct fe_ledger *l)
{
    return (struct fe_record){&ledger_ops, l};
}
