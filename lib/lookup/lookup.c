/* lookup.c - the source, its per-process cache, the merge of matching
 * records and the sender lists' verdict (sl_lookup.h). */
#include "lookup_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "util/sl_addr.h"
#include "util/sl_log.h"

const struct sl_lookup_field_name sl_lookup_field_names[SL_LF_COUNT] = {
    [SL_LF_SPAM_TAG_LEVEL] = {"spam_tag_level", "amavisSpamTagLevel"},
    [SL_LF_SPAM_TAG2_LEVEL] = {"spam_tag2_level", "amavisSpamTag2Level"},
    [SL_LF_SPAM_KILL_LEVEL] = {"spam_kill_level", "amavisSpamKillLevel"},
    [SL_LF_SPAM_DSN_CUTOFF_LEVEL] = {"spam_dsn_cutoff_level", "amavisSpamDsnCutoffLevel"},
    [SL_LF_VIRUS_LOVER] = {"virus_lover", "amavisVirusLover"},
    [SL_LF_SPAM_LOVER] = {"spam_lover", "amavisSpamLover"},
    [SL_LF_BANNED_FILES_LOVER] = {"banned_files_lover", "amavisBannedFilesLover"},
    [SL_LF_BAD_HEADER_LOVER] = {"bad_header_lover", "amavisBadHeaderLover"},
    [SL_LF_UNCHECKED_LOVER] = {"unchecked_lover", "amavisUncheckedLover"},
    [SL_LF_BYPASS_VIRUS_CHECKS] = {"bypass_virus_checks", "amavisBypassVirusChecks"},
    [SL_LF_BYPASS_SPAM_CHECKS] = {"bypass_spam_checks", "amavisBypassSpamChecks"},
    [SL_LF_BYPASS_BANNED_CHECKS] = {"bypass_banned_checks", "amavisBypassBannedChecks"},
    [SL_LF_BYPASS_HEADER_CHECKS] = {"bypass_header_checks", "amavisBypassHeaderChecks"},
    [SL_LF_VIRUS_QUARANTINE_TO] = {"virus_quarantine_to", "amavisVirusQuarantineTo"},
    [SL_LF_SPAM_QUARANTINE_TO] = {"spam_quarantine_to", "amavisSpamQuarantineTo"},
    [SL_LF_BANNED_QUARANTINE_TO] = {"banned_quarantine_to", "amavisBannedQuarantineTo"},
    [SL_LF_BAD_HEADER_QUARANTINE_TO] = {"bad_header_quarantine_to", "amavisBadHeaderQuarantineTo"},
    [SL_LF_VIRUS_ADMIN] = {"virus_admin", "amavisVirusAdmin"},
    [SL_LF_SPAM_ADMIN] = {"spam_admin", "amavisSpamAdmin"},
    [SL_LF_BANNED_ADMIN] = {"banned_admin", "amavisBannedAdmin"},
    [SL_LF_BAD_HEADER_ADMIN] = {"bad_header_admin", "amavisBadHeaderAdmin"},
    [SL_LF_WARN_VIRUS_RECIP] = {"warnvirusrecip", "amavisWarnVirusRecip"},
    [SL_LF_WARN_BANNED_RECIP] = {"warnbannedrecip", "amavisWarnBannedRecip"},
    [SL_LF_SPAM_SUBJECT_TAG2] = {"spam_subject_tag2", "amavisSpamSubjectTag2"},
    [SL_LF_MESSAGE_SIZE_LIMIT] = {"message_size_limit", "amavisMessageSizeLimit"},
    [SL_LF_LOCAL] = {"local", "amavisLocal"},
};

/* ---- answers ------------------------------------------------------------ */

void
sl_lookup_answer_clear(struct sl_lookup_answer *a)
{
    for (size_t f = 0; f < SL_LF_COUNT; f++)
        free(a->value[f]);
    free(a->policy_name);
    free(a->matched_key);
    for (size_t i = 0; i < a->n_wb; i++) {
        free(a->wb[i].sender_key);
        free(a->wb[i].wb);
    }
    free(a->wb);
    memset(a, 0, sizeof(*a));
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? sl_strdup(s) : NULL;
}

void
sl_lookup_answer_copy(struct sl_lookup_answer *dst, const struct sl_lookup_answer *src)
{
    *dst = *src;
    for (size_t f = 0; f < SL_LF_COUNT; f++)
        dst->value[f] = dup_or_null(src->value[f]);
    dst->policy_name = dup_or_null(src->policy_name);
    dst->matched_key = dup_or_null(src->matched_key);
    dst->wb = sl_calloc(src->n_wb > 0 ? src->n_wb : 1, sizeof(*dst->wb));
    for (size_t i = 0; i < src->n_wb; i++) {
        dst->wb[i] = src->wb[i];
        dst->wb[i].sender_key = sl_strdup(src->wb[i].sender_key);
        dst->wb[i].wb = sl_strdup(src->wb[i].wb);
    }
}

void
lookup_records_free(struct lookup_records *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].key);
        for (size_t f = 0; f < SL_LF_COUNT; f++)
            free(r->v[i].value[f]);
        free(r->v[i].policy_name);
        free(r->v[i].id);
    }
    free(r->v);
    for (size_t i = 0; i < r->n_wb; i++) {
        free(r->wb[i].sender_key);
        free(r->wb[i].wb);
    }
    free(r->wb);
    memset(r, 0, sizeof(*r));
}

/* amavis' lookup_sql_field: each field from the first record that has it. */
static void
records_merge(struct lookup_records *r, struct sl_lookup_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->found = r->n > 0;
    a->ldap = r->ldap;
    for (size_t i = 0; i < r->n; i++) {
        for (size_t f = 0; f < SL_LF_COUNT; f++)
            if (a->value[f] == NULL && r->v[i].value[f] != NULL)
                a->value[f] = sl_strdup(r->v[i].value[f]);
        if (a->policy_name == NULL && r->v[i].policy_name != NULL)
            a->policy_name = sl_strdup(r->v[i].policy_name);
    }
    if (r->n > 0)
        a->matched_key = sl_strdup(r->v[0].key != NULL ? r->v[0].key : "");
    a->wb = r->wb; /* moved */
    a->n_wb = r->n_wb;
    r->wb = NULL;
    r->n_wb = 0;
}

/* ---- the sender lists (amavis' white_black_list) ------------------------ */

static bool
key_in(char *const *keys, size_t n, const char *k, bool nocase)
{
    for (size_t i = 0; i < n; i++)
        if (nocase ? strcasecmp(keys[i], k) == 0 : strcmp(keys[i], k) == 0)
            return true;
    return false;
}

/* "^ *[+-]?\d+(\.\d*)? *$": a soft listing's points */
static bool
wb_numeric(const char *wb, double *val_r)
{
    char *end;
    const char *p = wb;

    while (*p == ' ')
        p++;
    if (!((*p >= '0' && *p <= '9') || ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9')))
        return false;
    *val_r = strtod(p, &end);
    while (*end == ' ')
        end++;
    return *end == '\0';
}

/* One sender against the SQL lists, record by record: true when a hard
 * answer (white, black or neutral) ended the search. */
static bool
sender_sql(const struct sl_lookup_answer *a, char *const *keys, size_t n_keys, unsigned max_rank,
           struct sl_lookup_wb_result *res)
{
    for (unsigned rank = 0; rank <= max_rank; rank++) {
        const struct sl_lookup_wb *hit = NULL;
        for (size_t i = 0; i < a->n_wb && hit == NULL; i++) /* priority order */
            if (a->wb[i].rank == rank && key_in(keys, n_keys, a->wb[i].sender_key, false))
                hit = &a->wb[i];
        if (hit == NULL)
            continue;
        const char *wb = hit->wb;
        double val;
        if (wb_numeric(wb, &val)) {
            res->score_boost += val; /* soft: the search goes on */
            continue;
        }
        if (wb[strspn(wb, " ")] == '\0')
            return true; /* neutral */
        if (strchr("BbNnFf", wb[0]) != NULL && wb[1 + strspn(wb + 1, " ")] == '\0')
            res->blacklisted = true;
        else
            res->whitelisted = true; /* W, Y, T or anything else */
        return true;
    }
    return false;
}

/* One sender against the LDAP lists: amavisBlacklistSender, then
 * amavisWhitelistSender, compared without case ("<>": the null sender). */
static void
sender_ldap(const struct sl_lookup_answer *a, const char *sender, char *const *keys, size_t n_keys,
            struct sl_lookup_wb_result *res)
{
    for (size_t i = 0; i < a->n_wb; i++) {
        const char *k = a->wb[i].sender_key;
        bool hit = key_in(keys, n_keys, k, true) || (sender[0] == '\0' && strcmp(k, "<>") == 0);
        if (!hit)
            continue;
        if (a->wb[i].wb[0] == 'B')
            res->blacklisted = true;
        else
            res->whitelisted = true;
    }
}

void
sl_lookup_senders(const struct sl_lookup_answer *a, const char *const *senders, size_t n_senders,
                  char *const *local_domains, size_t n_local_domains, const char *delimiter,
                  struct sl_lookup_wb_result *res)
{
    unsigned max_rank = 0;

    memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < a->n_wb; i++)
        if (a->wb[i].rank > max_rank)
            max_rank = a->wb[i].rank;
    for (size_t s = 0; s < n_senders && a->n_wb > 0; s++) {
        bool dup = false;
        for (size_t t = 0; t < s; t++)
            dup = dup || strcmp(senders[t], senders[s]) == 0;
        if (dup)
            continue;
        char *keys[SL_LOOKUP_MAX_KEYS];
        bool bare = !a->ldap && sl_addr_domain_listed(local_domains, n_local_domains, senders[s]);
        size_t n = sl_lookup_keys(senders[s], bare, delimiter, keys);
        if (a->ldap)
            sender_ldap(a, senders[s], keys, n, res);
        else
            sender_sql(a, keys, n, max_rank, res);
        sl_lookup_keys_free(keys, n);
    }
}

/* ---- the cache ------------------------------------------------------------ */

/* Chained hash of recipients with a most-recently-used list; one lock. */
struct cache_entry {
    char *rcpt; /* "L" or "R" (local or not) then the address */
    struct sl_lookup_answer answer;
    unsigned long long expires_ms;
    struct cache_entry *next_in_bucket;
    struct cache_entry *newer, *older;
};

struct sl_lookup {
    const struct lookup_source_ops *ops;
    struct lookup_settings set;
    char *delimiter;
    unsigned ttl_ms;
    size_t max_entries;
    pthread_mutex_t lock; /* the cache */
    struct cache_entry **buckets;
    size_t n_buckets, n_entries;
    struct cache_entry *newest, *oldest;
};

struct sl_lookup_session {
    struct sl_lookup *lk;
    void *conn;
};

static size_t
hash_str(const char *s, size_t n_buckets)
{
    unsigned long long h = 1469598103934665603ULL; /* FNV-1a: the keys are ours */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h % n_buckets);
}

static void
lru_unlink(struct sl_lookup *lk, struct cache_entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        lk->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        lk->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void
lru_push(struct sl_lookup *lk, struct cache_entry *e)
{
    e->older = lk->newest;
    e->newer = NULL;
    if (lk->newest != NULL)
        lk->newest->newer = e;
    lk->newest = e;
    if (lk->oldest == NULL)
        lk->oldest = e;
}

static struct cache_entry **
bucket_slot(struct sl_lookup *lk, const char *rcpt)
{
    struct cache_entry **p = &lk->buckets[hash_str(rcpt, lk->n_buckets)];
    while (*p != NULL && strcmp((*p)->rcpt, rcpt) != 0)
        p = &(*p)->next_in_bucket;
    return p;
}

static void
cache_remove(struct sl_lookup *lk, struct cache_entry *e)
{
    struct cache_entry **p = bucket_slot(lk, e->rcpt);
    *p = e->next_in_bucket;
    lru_unlink(lk, e);
    sl_lookup_answer_clear(&e->answer);
    free(e->rcpt);
    free(e);
    lk->n_entries--;
}

/* Under the lock: a copy of a fresh answer, true; false when none. */
static bool
cache_get(struct sl_lookup *lk, const char *rcpt, struct sl_lookup_answer *a)
{
    struct cache_entry *e = *bucket_slot(lk, rcpt);

    if (e == NULL)
        return false;
    if (e->expires_ms <= sl_now_mono_ms()) {
        cache_remove(lk, e);
        return false;
    }
    lru_unlink(lk, e);
    lru_push(lk, e);
    sl_lookup_answer_copy(a, &e->answer);
    return true;
}

/* Under the lock: keeps a copy of a, the oldest entry making room. */
static void
cache_put(struct sl_lookup *lk, const char *rcpt, const struct sl_lookup_answer *a)
{
    struct cache_entry **p = bucket_slot(lk, rcpt);

    if (lk->max_entries == 0 || lk->ttl_ms == 0)
        return;
    if (*p != NULL) /* another thread was quicker */
        cache_remove(lk, *p);
    while (lk->n_entries >= lk->max_entries && lk->oldest != NULL)
        cache_remove(lk, lk->oldest);
    struct cache_entry *e = sl_calloc(1, sizeof(*e));
    e->rcpt = sl_strdup(rcpt);
    sl_lookup_answer_copy(&e->answer, a);
    e->expires_ms = sl_now_mono_ms() + lk->ttl_ms;
    p = bucket_slot(lk, rcpt); /* removals may have moved the chain's end */
    *p = e;
    lru_push(lk, e);
    lk->n_entries++;
}

/* ---- the source ---------------------------------------------------------- */

static char *
secret_or_text(const char *value, const char *key, char **error_r)
{
    char *v = NULL, *err = NULL;

    if (value[0] == '\0')
        return sl_strdup("");
    if (sl_config_secret(value, &v, &err) < 0) {
        *error_r = sl_asprintf("%s: %s", key, err);
        free(err);
        return NULL;
    }
    return v;
}

struct sl_lookup *
sl_lookup_new(const struct sl_config *config, char **error_r)
{
    /* a configuration built in code (the tests') may leave them NULL */
    const bool sql = config->lookup.sql != NULL && config->lookup.sql[0] != '\0';
    const bool ldap = config->lookup.ldap.uri != NULL && config->lookup.ldap.uri[0] != '\0';
    struct sl_lookup *lk;

    *error_r = NULL;
    if (!sql && !ldap)
        return NULL;
    lk = sl_calloc(1, sizeof(*lk));
    lk->ops = sql ? &lookup_sql_ops : &lookup_ldap_ops;
    lk->set.sql = secret_or_text(config->lookup.sql, "lookup.sql", error_r);
    if (lk->set.sql != NULL) /* one error: a second would overwrite the first */
        lk->set.ldap_bind_password =
            secret_or_text(config->lookup.ldap.bind_password, "lookup.ldap.bind_password", error_r);
    if (lk->set.sql == NULL || lk->set.ldap_bind_password == NULL) {
        sl_lookup_destroy(&lk);
        return NULL;
    }
    lk->set.ldap_uri = sl_strdup(config->lookup.ldap.uri);
    lk->set.ldap_base = sl_strdup(config->lookup.ldap.base);
    lk->set.ldap_filter = sl_strdup(config->lookup.ldap.filter);
    lk->set.ldap_bind_dn = sl_strdup(config->lookup.ldap.bind_dn);
    lk->set.timeout_s = config->lookup.timeout_s;
    lk->delimiter = sl_strdup(config->lookup.recipient_delimiter);
    lk->ttl_ms = config->lookup.cache_ttl_s * 1000U;
    lk->max_entries = config->lookup.cache_size;
    /* chains of a few entries at the largest sizes rather than a huge array */
    lk->n_buckets = lk->max_entries < 16 ? 16 : lk->max_entries > 262144 ? 262144 : lk->max_entries;
    lk->buckets = sl_calloc(lk->n_buckets, sizeof(*lk->buckets));
    pthread_mutex_init(&lk->lock, NULL);
    return lk;
}

void
sl_lookup_destroy(struct sl_lookup **lkp)
{
    struct sl_lookup *lk = *lkp;

    if (lk == NULL)
        return;
    *lkp = NULL;
    if (lk->buckets != NULL) {
        while (lk->oldest != NULL)
            cache_remove(lk, lk->oldest);
        pthread_mutex_destroy(&lk->lock);
    }
    free(lk->buckets);
    free(lk->set.sql);
    if (lk->set.ldap_bind_password != NULL)
        sodium_memzero(lk->set.ldap_bind_password, strlen(lk->set.ldap_bind_password));
    free(lk->set.ldap_bind_password);
    free(lk->set.ldap_uri);
    free(lk->set.ldap_base);
    free(lk->set.ldap_filter);
    free(lk->set.ldap_bind_dn);
    free(lk->delimiter);
    free(lk);
}

const char *
sl_lookup_source(const struct sl_lookup *lk)
{
    return lk->ops->name;
}

const char *
sl_lookup_session_source(const struct sl_lookup_session *s)
{
    return sl_lookup_source(s->lk);
}

struct sl_lookup_session *
sl_lookup_session_new(struct sl_lookup *lk)
{
    struct sl_lookup_session *s = sl_calloc(1, sizeof(*s));
    s->lk = lk;
    return s;
}

void
sl_lookup_session_destroy(struct sl_lookup_session **sp)
{
    struct sl_lookup_session *s = *sp;

    if (s == NULL)
        return;
    *sp = NULL;
    if (s->conn != NULL)
        s->lk->ops->close(s->conn);
    free(s);
}

static int
query_source(struct sl_lookup_session *s, const char *rcpt, bool local,
             struct sl_lookup_answer *answer_r, char **error_r)
{
    struct sl_lookup *lk = s->lk;
    struct lookup_records recs = {0};
    char *keys[SL_LOOKUP_MAX_KEYS];
    size_t n_keys;
    int ret;

    if (s->conn == NULL && (s->conn = lk->ops->open(&lk->set, error_r)) == NULL)
        return -1;
    n_keys = sl_lookup_keys(rcpt, local, lk->delimiter, keys);
    ret = lk->ops->fetch(s->conn, &lk->set, rcpt, keys, n_keys, &recs, error_r);
    sl_lookup_keys_free(keys, n_keys);
    if (ret < 0) {
        lk->ops->close(s->conn); /* made again at the next call */
        s->conn = NULL;
        lookup_records_free(&recs);
        return -1;
    }
    records_merge(&recs, answer_r);
    lookup_records_free(&recs);
    return 0;
}

int
sl_lookup_rcpt(struct sl_lookup_session *s, const char *rcpt, bool local,
               struct sl_lookup_answer *answer_r, char **error_r)
{
    struct sl_lookup *lk = s->lk;
    char *ckey = sl_asprintf("%c%s", local ? 'L' : 'R', rcpt);
    bool hit;
    int ret;

    pthread_mutex_lock(&lk->lock);
    hit = cache_get(lk, ckey, answer_r);
    pthread_mutex_unlock(&lk->lock);
    if (hit) {
        answer_r->cached = true;
        free(ckey);
        return 0;
    }
    ret = query_source(s, rcpt, local, answer_r, error_r);
    if (ret == 0) {
        pthread_mutex_lock(&lk->lock);
        cache_put(lk, ckey, answer_r);
        pthread_mutex_unlock(&lk->lock);
    }
    free(ckey);
    return ret;
}
