/* policy.c - categories, destinies, spam levels and header edits with
 * amavisd-new's semantics (policy.h). */
#include "policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/sl_message.h"
#include "util/sl_addr.h"
#include "util/sl_util.h"

#define MAX_STARS 64        /* amavis caps X-Spam-Level at 64 characters */
#define MAX_STATUS_TESTS 50 /* tests listed in X-Spam-Status */

static const char *const ccat_names[CCAT_COUNT] = {
    [CCAT_CLEAN] = "CLEAN",   [CCAT_OVERSIZED] = "OVERSIZED", [CCAT_BAD_HEADER] = "BAD-HEADER",
    [CCAT_SPAMMY] = "SPAMMY", [CCAT_SPAM] = "SPAM",           [CCAT_UNCHECKED] = "UNCHECKED",
    [CCAT_BANNED] = "BANNED", [CCAT_INFECTED] = "INFECTED",
};

static const char *const destiny_names[] = {"pass", "discard", "bounce", "reject", "tempfail"};

const char *
policy_ccat_name(enum policy_ccat c)
{
    return (unsigned)c < CCAT_COUNT ? ccat_names[c] : "CLEAN";
}

enum policy_destiny
policy_destiny_from_name(const char *name)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(destiny_names); i++)
        if (name != NULL && strcasecmp(name, destiny_names[i]) == 0)
            return (enum policy_destiny)i;
    return POLICY_D_TEMPFAIL;
}

const char *
policy_destiny_name(enum policy_destiny d)
{
    return (unsigned)d < SL_N_ELEMENTS(destiny_names) ? destiny_names[d] : "tempfail";
}

/* ---- banks ------------------------------------------------------------ */

static bool
strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* The bank called name, or NULL (policy.mynetworks_bank names one that
 * may not exist: then no bank applies). */
static const struct sl_policy_bank *
bank_find(const struct sl_config *config, const char *name)
{
    for (size_t i = 0; i < config->n_banks; i++)
        if (strcmp(config->banks[i].name, name) == 0)
            return &config->banks[i];
    return NULL;
}

/* Loads b over the view: what b sets replaces what the view had. */
static void
view_add_bank(struct policy_view *v, const struct sl_policy_bank *b)
{
    size_t len = strlen(v->banks);

    sl_config_bank_copy_set(&v->p, b);
    snprintf(v->banks + len, sizeof(v->banks) - len, "%s%s", len > 0 ? "," : "", b->name);
}

void
policy_select(const struct sl_config *config, const char *origin, unsigned by_port,
              const char *client_addr, struct policy_view *view_r)
{
    char port[16];

    memset(view_r, 0, sizeof(*view_r));
    view_r->p = config->policy;
    snprintf(port, sizeof(port), "%u", by_port);
    for (size_t i = 0; i < config->n_banks; i++)
        if (strv_has(config->banks[i].match_listener, config->banks[i].n_match_listener, port))
            view_add_bank(view_r, &config->banks[i]);
    for (size_t i = 0; i < config->n_banks; i++)
        if (origin != NULL &&
            strv_has(config->banks[i].match_origin, config->banks[i].n_match_origin, origin))
            view_add_bank(view_r, &config->banks[i]);
    if (client_addr != NULL && strncasecmp(client_addr, "IPv6:", 5) == 0)
        client_addr += 5;
    bool mynets = client_addr != NULL && client_addr[0] != '\0' && config->mynetworks.n > 0 &&
                  sl_cidr_list_match_text(&config->mynetworks, client_addr);
    if (mynets) {
        const struct sl_policy_bank *b = bank_find(config, config->mynetworks_bank);
        if (b != NULL)
            view_add_bank(view_r, b);
    }
    view_r->originating = view_r->p.originating || mynets;
}

/* ---- levels ----------------------------------------------------------- */

/* The item of map whose key (the text before its last '=') is key. */
static const char *
map_lookup(char *const *map, size_t n, const char *key, size_t keylen)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = strrchr(map[i], '=');
        if (eq != NULL && (size_t)(eq - map[i]) == keylen && strncasecmp(map[i], key, keylen) == 0)
            return eq + 1;
    }
    return NULL;
}

const char *
policy_rcpt_map(char *const *map, size_t n, const char *rcpt)
{
    const char *at = strrchr(rcpt, '@');
    const char *v;

    if (n == 0)
        return NULL;
    if ((v = map_lookup(map, n, rcpt, strlen(rcpt))) != NULL)
        return v;
    if (at != NULL) {
        const char *dom = at + 1;
        if ((v = map_lookup(map, n, rcpt, (size_t)(at - rcpt) + 1)) != NULL) /* "user@" */
            return v;
        if ((v = map_lookup(map, n, dom, strlen(dom))) != NULL) /* "example.com" */
            return v;
        /* ".example.com" covers the domain and its subdomains */
        for (const char *d = dom; d != NULL && *d != '\0';) {
            char *key = sl_asprintf(".%s", d);
            v = map_lookup(map, n, key, strlen(key));
            free(key);
            if (v != NULL)
                return v;
            d = strchr(d, '.');
            if (d != NULL)
                d++;
        }
    }
    return map_lookup(map, n, ".", 1);
}

double
policy_rcpt_level(char *const *map, size_t n, double dflt, const char *rcpt)
{
    const char *v = policy_rcpt_map(map, n, rcpt);

    /* the loader checked every item (sl_config_level_item) */
    return v != NULL ? strtod(v, NULL) : dflt;
}

bool
policy_domain_is_local(char *const *local_domains, size_t n, const char *rcpt)
{
    return sl_addr_domain_listed(local_domains, n, rcpt);
}

/* ---- edits ------------------------------------------------------------ */

static void
edit_add(struct policy_edit **v, size_t *n, int op, const char *name, char *value_owned)
{
    *v = sl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].op = op;
    (*v)[*n].name = sl_strdup(name);
    (*v)[*n].value = value_owned != NULL ? value_owned : sl_strdup("");
    (*n)++;
}

static void
edits_free(struct policy_edit *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static char *
join(char *const *v, size_t n, const char *sep, size_t max_items)
{
    size_t len = 1;
    char *out;

    if (n > max_items)
        n = max_items;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + strlen(sep);
    out = sl_calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, sep);
        strcat(out, v[i]);
    }
    return out;
}

/* amavis' X-Spam-Status: "Yes, score=1000 tagged_above=2 required=6.31
 * tests=[GTUBE=1000, NO_RELAYS=-0.001]" */
static char *
spam_status(const struct policy_facts *f, const struct policy_rcpt *r, double score, bool yes)
{
    char sc[32], tag[32], tag2[32];
    char *tests = join(f->spam_tests, f->n_spam_tests, ", ", MAX_STATUS_TESTS);
    char *v;

    sl_format_score(score, sc, sizeof(sc));
    sl_format_score(r->tag_level, tag, sizeof(tag));
    sl_format_score(r->tag2_level, tag2, sizeof(tag2));
    v = sl_asprintf("%s, score=%s tagged_above=%s required=%s tests=[%s]", yes ? "Yes" : "No",
                    sc, tag, tag2, tests);
    free(tests);
    return v;
}

/* The recipient's spam headers: do_tag at or above tag level (or
 * blacklisted), do_tag2 at or above tag2 (or blacklisted; never
 * whitelisted): X-Spam-Flag and the subject tag. */
static void
spam_edits(const struct sl_policy_config *p, const struct policy_facts *f, const char *subject,
           double score, bool do_tag, bool do_tag2, struct policy_rcpt *r)
{
    char sc[32];

    if (!f->spam_scanned || !do_tag)
        return;
    sl_format_score(score, sc, sizeof(sc));
    if (do_tag2)
        edit_add(&r->edits, &r->n_edits, SL_HDR_APPEND, "X-Spam-Flag", sl_strdup("YES"));
    edit_add(&r->edits, &r->n_edits, SL_HDR_APPEND, "X-Spam-Score", sl_strdup(sc));
    int stars = score >= MAX_STARS ? MAX_STARS : score >= 1 ? (int)floor(score) : 0;
    if (stars > 0) {
        char *lvl = sl_calloc(1, (size_t)stars + 1);
        memset(lvl, '*', (size_t)stars);
        edit_add(&r->edits, &r->n_edits, SL_HDR_APPEND, "X-Spam-Level", lvl);
    }
    edit_add(&r->edits, &r->n_edits, SL_HDR_APPEND, "X-Spam-Status",
             spam_status(f, r, score, do_tag2));
    if (do_tag2) {
        r->tagged = true;
        const char *tag = p->spam_subject_tag;
        if (tag != NULL && tag[0] != '\0')
            edit_add(&r->edits, &r->n_edits, SL_HDR_REPLACE, "Subject",
                     sl_asprintf("%s%s", tag, subject != NULL ? subject : ""));
    }
}

/* ---- decisions -------------------------------------------------------- */

static const char *
final_destiny(const struct sl_policy_config *p, enum policy_ccat c, enum policy_unchecked u)
{
    switch (c) {
    case CCAT_INFECTED:
        return p->final_virus_destiny;
    case CCAT_BANNED:
        return p->final_banned_destiny;
    case CCAT_UNCHECKED:
        return u == POLICY_UNCHECKED_ENCRYPTED   ? p->final_unchecked_encrypted_destiny
               : u == POLICY_UNCHECKED_OVERLIMIT ? p->final_unchecked_overlimit_destiny
                                                 : p->final_unchecked_destiny;
    case CCAT_SPAM:
        return p->final_spam_destiny;
    case CCAT_BAD_HEADER:
        return p->final_bad_header_destiny;
    case CCAT_OVERSIZED:
        return p->final_oversized_destiny;
    case CCAT_SPAMMY:
    case CCAT_CLEAN:
    default:
        return "pass";
    }
}

static char *
category_name(enum policy_ccat c, enum policy_unchecked u)
{
    if (c == CCAT_UNCHECKED && u == POLICY_UNCHECKED_ENCRYPTED)
        return sl_strdup("UNCHECKED-ENCRYPTED");
    if (c == CCAT_UNCHECKED && u == POLICY_UNCHECKED_OVERLIMIT)
        return sl_strdup("UNCHECKED-OVERLIMIT");
    return sl_strdup(policy_ccat_name(c));
}

static char *
reason_for(enum policy_ccat c, const struct policy_facts *f, const struct sl_policy_config *p,
           const char *cat)
{
    char score[32];

    switch (c) {
    case CCAT_INFECTED: {
        char *names = join(f->viruses, f->n_viruses, ", ", 10);
        char *r = sl_asprintf("INFECTED: %s", names);
        free(names);
        return r;
    }
    case CCAT_BANNED:
        return sl_asprintf("BANNED: %s", f->n_banned > 0 ? f->banned[0] : "?");
    case CCAT_UNCHECKED:
        return sl_asprintf("%s: %s", cat,
                           f->n_unchecked_reasons > 0 ? f->unchecked_reasons[0] : "not scanned");
    case CCAT_SPAM:
    case CCAT_SPAMMY:
        sl_format_score(f->spam_score, score, sizeof(score));
        return sl_asprintf("%s, score=%s", cat, score);
    case CCAT_BAD_HEADER:
        return sl_asprintf("BAD-HEADER: %s", f->n_bad_headers > 0 ? f->bad_headers[0] : "?");
    case CCAT_OVERSIZED:
        return sl_asprintf("OVERSIZED: message size %zu above %zu", f->size,
                           p->message_size_limit);
    case CCAT_CLEAN:
    default:
        return sl_strdup("CLEAN");
    }
}

/* ---- one recipient's policy ---------------------------------------------- */

/* The view's policy with a lookup's answer over it. */
struct rcpt_policy {
    struct sl_policy_config p; /* shallow: strings are the config's or the answer's */
    bool lover[CCAT_COUNT];
    bool has_local, local;
    const char *const *value; /* the answer's values, or NULL */
};

static void
set_str(char **field, const char *looked_up, size_t *n_map_r)
{
    if (looked_up == NULL)
        return;
    *field = (char *)looked_up;
    if (n_map_r != NULL)
        *n_map_r = 0; /* the answer is the recipient's own: no map item */
}

static void
set_bool(bool *field, const char *looked_up)
{
    if (looked_up != NULL)
        *field = sl_lookup_bool(looked_up);
}

static void
rcpt_policy_make(const struct sl_policy_config *base, const struct policy_lookup *lk,
                 struct rcpt_policy *rp)
{
    memset(rp, 0, sizeof(*rp));
    rp->p = *base;
    if (lk == NULL || lk->answer == NULL)
        return;
    char *const *v = lk->answer->value;
    struct sl_policy_config *p = &rp->p;
    rp->value = (const char *const *)v;
    set_bool(&p->bypass_virus_checks, v[SL_LF_BYPASS_VIRUS_CHECKS]);
    set_bool(&p->bypass_spam_checks, v[SL_LF_BYPASS_SPAM_CHECKS]);
    set_bool(&p->bypass_banned_checks, v[SL_LF_BYPASS_BANNED_CHECKS]);
    set_bool(&p->bypass_header_checks, v[SL_LF_BYPASS_HEADER_CHECKS]);
    set_str(&p->virus_quarantine_to, v[SL_LF_VIRUS_QUARANTINE_TO], &p->n_virus_quarantine_to_map);
    set_str(&p->spam_quarantine_to, v[SL_LF_SPAM_QUARANTINE_TO], &p->n_spam_quarantine_to_map);
    set_str(&p->banned_quarantine_to, v[SL_LF_BANNED_QUARANTINE_TO],
            &p->n_banned_quarantine_to_map);
    set_str(&p->bad_header_quarantine_to, v[SL_LF_BAD_HEADER_QUARANTINE_TO],
            &p->n_bad_header_quarantine_to_map);
    set_str(&p->virus_admin, v[SL_LF_VIRUS_ADMIN], NULL);
    set_str(&p->spam_admin, v[SL_LF_SPAM_ADMIN], NULL);
    set_str(&p->banned_admin, v[SL_LF_BANNED_ADMIN], NULL);
    set_str(&p->bad_header_admin, v[SL_LF_BAD_HEADER_ADMIN], NULL);
    set_str(&p->spam_subject_tag, v[SL_LF_SPAM_SUBJECT_TAG2], NULL);
    set_bool(&p->warn_virus_recip, v[SL_LF_WARN_VIRUS_RECIP]);
    set_bool(&p->warn_banned_recip, v[SL_LF_WARN_BANNED_RECIP]);
    if (v[SL_LF_MESSAGE_SIZE_LIMIT] != NULL) /* amavis: 0 = no limit */
        p->message_size_limit = (size_t)strtoull(v[SL_LF_MESSAGE_SIZE_LIMIT], NULL, 10);
    set_bool(&rp->lover[CCAT_INFECTED], v[SL_LF_VIRUS_LOVER]);
    set_bool(&rp->lover[CCAT_BANNED], v[SL_LF_BANNED_FILES_LOVER]);
    set_bool(&rp->lover[CCAT_UNCHECKED], v[SL_LF_UNCHECKED_LOVER]);
    set_bool(&rp->lover[CCAT_SPAM], v[SL_LF_SPAM_LOVER]);
    set_bool(&rp->lover[CCAT_BAD_HEADER], v[SL_LF_BAD_HEADER_LOVER]);
    rp->has_local = v[SL_LF_LOCAL] != NULL;
    rp->local = sl_lookup_bool(v[SL_LF_LOCAL]);
}

/* A level: the lookup's, else the _map item, else the policy's. */
static double
rcpt_level(const struct rcpt_policy *rp, enum sl_lookup_field field, char *const *map, size_t n,
           double dflt, const char *rcpt)
{
    const char *v = rp->value != NULL ? rp->value[field] : NULL;
    char *end;

    if (v != NULL) {
        double d = strtod(v, &end);
        if (end != v)
            return d;
    }
    return policy_rcpt_level(map, n, dflt, rcpt);
}

static void
rcpt_levels(const struct rcpt_policy *rp, const char *rcpt, struct policy_rcpt *r)
{
    const struct sl_policy_config *p = &rp->p;

    r->tag_level = rcpt_level(rp, SL_LF_SPAM_TAG_LEVEL, p->spam_tag_level_map,
                              p->n_spam_tag_level_map, p->spam_tag_level, rcpt);
    r->tag2_level = rcpt_level(rp, SL_LF_SPAM_TAG2_LEVEL, p->spam_tag2_level_map,
                               p->n_spam_tag2_level_map, p->spam_tag2_level, rcpt);
    r->kill_level = rcpt_level(rp, SL_LF_SPAM_KILL_LEVEL, p->spam_kill_level_map,
                               p->n_spam_kill_level_map, p->spam_kill_level, rcpt);
    r->dsn_cutoff_level =
        rcpt_level(rp, SL_LF_SPAM_DSN_CUTOFF_LEVEL, p->spam_dsn_cutoff_level_map,
                   p->n_spam_dsn_cutoff_level_map, p->spam_dsn_cutoff_level, rcpt);
}

/* amavis' blocking ccat: the first, by priority, not passed (a lover's
 * category passes); else D_PASS with the highest category present. */
static void
rcpt_destiny(const struct rcpt_policy *rp, const bool pr[CCAT_COUNT], enum policy_unchecked u,
             struct policy_rcpt *r)
{
    enum policy_ccat highest = CCAT_CLEAN, blocking = CCAT_COUNT;

    for (int c = CCAT_COUNT - 1; c >= 0; c--) {
        if (!pr[c])
            continue;
        if (highest == CCAT_CLEAN && c != CCAT_CLEAN)
            highest = (enum policy_ccat)c;
        if (blocking == CCAT_COUNT && !rp->lover[c] &&
            policy_destiny_from_name(final_destiny(&rp->p, (enum policy_ccat)c, u)) !=
                POLICY_D_PASS)
            blocking = (enum policy_ccat)c;
    }
    r->ccat = blocking != CCAT_COUNT ? blocking : highest;
    r->destiny = blocking != CCAT_COUNT
                     ? policy_destiny_from_name(final_destiny(&rp->p, blocking, u))
                     : POLICY_D_PASS;
}

static void
decide_rcpt(const struct policy_view *view, const struct policy_facts *f, const char *mail_from,
            const char *rcpt, const char *subject, const bool present[CCAT_COUNT],
            const struct policy_lookup *lk, struct policy_rcpt *r)
{
    struct rcpt_policy rp;
    bool pr[CCAT_COUNT];
    bool black = lk != NULL && lk->wb.blacklisted, white = lk != NULL && lk->wb.whitelisted;
    double score = f->spam_score + (lk != NULL ? lk->wb.score_boost : 0);
    bool do_tag = false, do_tag2 = false;

    rcpt_policy_make(&view->p, lk, &rp);
    rcpt_levels(&rp, rcpt, r);
    memcpy(pr, present, sizeof(pr));
    pr[CCAT_INFECTED] = pr[CCAT_INFECTED] && !rp.p.bypass_virus_checks;
    pr[CCAT_BANNED] = pr[CCAT_BANNED] && !rp.p.bypass_banned_checks;
    pr[CCAT_BAD_HEADER] = pr[CCAT_BAD_HEADER] && !rp.p.bypass_header_checks;
    pr[CCAT_OVERSIZED] = rp.p.message_size_limit > 0 && f->size > rp.p.message_size_limit;
    if (!rp.p.bypass_spam_checks && (f->spam_scanned || black)) {
        /* amavis: blacklisted is spam at any score, whitelisted never */
        bool scanned = f->spam_scanned;
        pr[CCAT_SPAM] = !white && (black || (scanned && score >= r->kill_level));
        do_tag2 = !white && (black || (scanned && score >= r->tag2_level));
        pr[CCAT_SPAMMY] = !pr[CCAT_SPAM] && do_tag2;
        do_tag = black || (scanned && score + (white ? -10 : 0) >= r->tag_level);
    }
    rcpt_destiny(&rp, pr, f->unchecked, r);
    /* amavis' recip_is_local: a lookup's answer, else local_domains; without
     * a list the bank decides alone */
    if (rp.has_local)
        r->remote = !rp.local;
    else if (rp.p.n_local_domains > 0)
        r->remote = !policy_domain_is_local(rp.p.local_domains, rp.p.n_local_domains, rcpt);
    else
        r->remote = view->originating;
    r->category = category_name(r->ccat, f->unchecked);
    r->reason = reason_for(r->ccat, f, &rp.p, r->category);
    spam_edits(&rp.p, f, subject, score, do_tag, do_tag2, r);
    if (r->destiny == POLICY_D_BOUNCE &&
        (mail_from == NULL || mail_from[0] == '\0' ||
         (f->spam_scanned && score >= r->dsn_cutoff_level)))
        r->dsn_suppressed = true;
    if (lk != NULL && lk->answer != NULL && lk->answer->found)
        r->lookup = lk->name;
    if (lk != NULL && lk->failed != NULL) { /* never a default verdict */
        r->destiny = POLICY_D_TEMPFAIL;
        free(r->reason);
        /* the reply (and Postfix's delayed-mail notices) says no more:
         * the source's error, with its host names, is in our log */
        r->reason = sl_strdup("policy lookup failed");
        r->dsn_suppressed = false;
    }
    policy_quarantine_rcpt(&rp.p, rcpt, r);
}

void
policy_decide_lookups(const struct policy_view *view, const struct policy_facts *f,
                      const char *mail_from, const char *const *rcpts, size_t n_rcpts,
                      const char *subject, const struct policy_lookup *lookups,
                      struct policy_result *res)
{
    bool present[CCAT_COUNT] = {false};
    enum policy_ccat top = CCAT_CLEAN;

    memset(res, 0, sizeof(*res));
    present[CCAT_CLEAN] = true;
    present[CCAT_INFECTED] = f->n_viruses > 0;
    present[CCAT_BANNED] = f->n_banned > 0;
    present[CCAT_UNCHECKED] = f->unchecked != POLICY_UNCHECKED_NONE;
    present[CCAT_BAD_HEADER] = f->n_bad_headers > 0;

    /* For everyone: our X-Spam-* replace anybody else's; alerts. */
    if (f->spam_scanned) {
        static const char *const drop[] = {"X-Spam-Flag", "X-Spam-Score", "X-Spam-Level",
                                           "X-Spam-Status", "X-Spam-Report"};
        for (size_t i = 0; i < SL_N_ELEMENTS(drop); i++)
            edit_add(&res->edits, &res->n_edits, SL_HDR_DELETE, drop[i], NULL);
    }
    if (present[CCAT_INFECTED]) {
        char *names = join(f->viruses, f->n_viruses, ", ", 10);
        edit_add(&res->edits, &res->n_edits, SL_HDR_APPEND, "X-Amavis-Alert",
                 sl_asprintf("INFECTED, message contains virus: %s", names));
        free(names);
    }
    if (present[CCAT_BANNED])
        edit_add(&res->edits, &res->n_edits, SL_HDR_APPEND, "X-Amavis-Alert",
                 sl_asprintf("BANNED, message contains %s", f->banned[0]));
    if (present[CCAT_BAD_HEADER])
        edit_add(&res->edits, &res->n_edits, SL_HDR_APPEND, "X-Amavis-Alert",
                 sl_asprintf("BAD HEADER SECTION, %s", f->bad_headers[0]));

    res->rcpts = sl_calloc(n_rcpts > 0 ? n_rcpts : 1, sizeof(*res->rcpts));
    res->n_rcpts = n_rcpts;
    for (size_t i = 0; i < n_rcpts; i++) {
        decide_rcpt(view, f, mail_from, rcpts[i], subject, present,
                    lookups != NULL ? &lookups[i] : NULL, &res->rcpts[i]);
        if (res->rcpts[i].ccat > top)
            top = res->rcpts[i].ccat;
    }
    /* The message's category: the highest of any recipient (UNCHECKED
     * keeps its minor). */
    res->category = category_name(top, f->unchecked);
}

void
policy_decide(const struct policy_view *view, const struct policy_facts *f, const char *mail_from,
              const char *const *rcpts, size_t n_rcpts, const char *subject,
              struct policy_result *res)
{
    policy_decide_lookups(view, f, mail_from, rcpts, n_rcpts, subject, NULL, res);
}

void
policy_result_free(struct policy_result *r)
{
    for (size_t i = 0; i < r->n_rcpts; i++) {
        free(r->rcpts[i].category);
        free(r->rcpts[i].reason);
        edits_free(r->rcpts[i].edits, r->rcpts[i].n_edits);
    }
    free(r->rcpts);
    edits_free(r->edits, r->n_edits);
    free(r->category);
    memset(r, 0, sizeof(*r));
}
