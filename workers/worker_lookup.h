/* worker_lookup.h - a job's recipients looked up (lookup.sql or
 * lookup.ldap.*, lib/lookup) before the scan, on the worker's thread, off
 * every event loop: their answers and the sender lists' verdicts for
 * policy_decide_lookups(). A recipient whose lookup failed is tempfailed
 * by the policy, the others go on. */
#ifndef SLUICE_WORKERS_WORKER_LOOKUP_H
#define SLUICE_WORKERS_WORKER_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "lookup/sl_lookup.h"
#include "sluice.pb-c.h"

struct job_lookups {
    struct policy_lookup *pl; /* one per recipient; NULL without a source */
    struct sl_lookup_answer *answers;
    char **names;  /* "sql:<policy>" per recipient, or NULL */
    char **errors; /* the source's error per recipient, or NULL */
    size_t n;
};

/* s NULL: no lookups (jl->pl NULL). data/len: the message, for the
 * From: addresses amavis checks the sender lists with too. */
void job_lookups_run(struct sl_lookup_session *s, const struct sl_config *cfg,
                     const Sluice__Job *job, const char *data, size_t len, struct job_lookups *jl);
/* Does every recipient's policy say yes to field (a boolean), dflt where
 * the lookup set nothing? Used to skip a scanner nobody wants. */
bool job_lookups_all(const struct job_lookups *jl, enum sl_lookup_field field, bool dflt);
/* banks with the distinct lookup names appended ("ORIGINATING,sql:lovers"),
 * for the log line's policy bank path; malloc'ed. */
char *job_lookups_banks(const struct job_lookups *jl, const char *banks);
void job_lookups_free(struct job_lookups *jl);

#endif
