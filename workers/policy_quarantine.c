/* policy_quarantine.c - which recipients' copies are quarantined, and who
 * hears of it, with amavisd-new's settings (policy.h). */
#include "policy.h"

#include <stddef.h>

/* What one category brings: its quarantine type (amavis' file name
 * prefix), its _quarantine_to and per-recipient map, its administrator,
 * and whether its recipients are warned. */
struct quar_rule {
    const char *type;
    const char *to;
    char *const *map;
    size_t n_map;
    const char *admin;
    bool warn;
};

static bool
nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* false: the category is neither quarantined nor notified. */
static bool
quar_rule_for(const struct sl_policy_config *p, enum policy_ccat c, struct quar_rule *r)
{
    *r = (struct quar_rule){0};
    switch (c) {
    case CCAT_INFECTED:
        *r = (struct quar_rule){"virus",
                                p->virus_quarantine_to,
                                p->virus_quarantine_to_map,
                                p->n_virus_quarantine_to_map,
                                p->virus_admin,
                                p->warn_virus_recip};
        return true;
    case CCAT_BANNED:
        *r = (struct quar_rule){"banned",
                                p->banned_quarantine_to,
                                p->banned_quarantine_to_map,
                                p->n_banned_quarantine_to_map,
                                nonempty(p->banned_admin) ? p->banned_admin : p->virus_admin,
                                p->warn_banned_recip};
        return true;
    case CCAT_SPAM:
        *r = (struct quar_rule){"spam",
                                p->spam_quarantine_to,
                                p->spam_quarantine_to_map,
                                p->n_spam_quarantine_to_map,
                                p->spam_admin,
                                false};
        return true;
    case CCAT_SPAMMY: /* amavis notifies spam_admin, but keeps no spammy quarantine */
        r->admin = p->spam_admin;
        return true;
    case CCAT_BAD_HEADER:
        *r = (struct quar_rule){"badh",
                                p->bad_header_quarantine_to,
                                p->bad_header_quarantine_to_map,
                                p->n_bad_header_quarantine_to_map,
                                p->bad_header_admin,
                                false};
        return true;
    default:
        return false;
    }
}

void
policy_quarantine_rcpt(const struct sl_policy_config *p, const char *rcpt, struct policy_rcpt *r)
{
    struct quar_rule rule;

    r->quarantine = NULL;
    r->admin = NULL;
    r->warn = false;
    if (r->destiny == POLICY_D_TEMPFAIL || !quar_rule_for(p, r->ccat, &rule))
        return;
    if (rule.type != NULL) {
        const char *to = policy_rcpt_map(rule.map, rule.n_map, rcpt);
        if (nonempty(to != NULL ? to : rule.to))
            r->quarantine = rule.type;
    }
    r->admin = nonempty(rule.admin) ? rule.admin : NULL;
    r->warn = rule.warn && !r->remote;
}
