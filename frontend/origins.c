/* origins.c - origins and their concurrency slots (origins.h). */
#include "origins.h"

#include <stdlib.h>
#include <string.h>
#include "util/sl_log.h"
#include "util/sl_util.h"

#define ORIGIN_WARNING_INTERVAL_MS 10000

static struct fe_origin_slots *
slots_for(struct fe_origin_slots **list, const char *name)
{
    struct fe_origin_slots *s;

    for (s = *list; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    s = sl_calloc(1, sizeof(*s));
    s->name = sl_strdup(name);
    s->next = *list;
    *list = s;
    return s;
}

void
fe_origins_init(struct fe_origins *o, const struct sl_config *config,
                struct fe_origin_slots **slots)
{
    o->n = config->n_origins;
    o->v = sl_calloc(o->n ? o->n : 1, sizeof(*o->v));
    for (size_t i = 0; i < o->n; i++) {
        o->v[i].config = &config->origins[i];
        o->v[i].slots = slots_for(slots, config->origins[i].name);
        o->v[i].slots->limit = config->origins[i].concurrency;
    }
}

void
fe_origins_clear(struct fe_origins *o)
{
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

void
fe_origin_slots_free(struct fe_origin_slots **slots)
{
    while (*slots != NULL) {
        struct fe_origin_slots *s = *slots;
        *slots = s->next;
        free(s->name);
        free(s);
    }
}

struct fe_origin *
fe_origins_for(const struct fe_origins *o, const struct sl_config *config, const char *ip)
{
    const struct sl_origin_config *oc = sl_config_origin_for(config, ip);

    for (size_t i = 0; i < o->n; i++)
        if (o->v[i].config == oc)
            return &o->v[i];
    SL_BUG_ON("origin not in table");
    return NULL;
}

struct fe_origin *
fe_origins_find(const struct fe_origins *o, const char *name)
{
    for (size_t i = 0; name != NULL && i < o->n; i++)
        if (strcmp(o->v[i].config->name, name) == 0)
            return &o->v[i];
    return NULL;
}

bool
fe_origin_take_slot(struct fe_origin *o, const char *peer_ip)
{
    struct fe_origin_slots *s = o->slots;

    if (s->active < s->limit) {
        s->active++;
        return true;
    }
    unsigned long long now = sl_now_mono_ms();
    if (now - s->last_warning_ms > ORIGIN_WARNING_INTERVAL_MS || s->last_warning_ms == 0) {
        s->last_warning_ms = now;
        sl_warn("origin %s: more than %u concurrent transactions from [%s]; set "
                "amavisfeed_destination_concurrency_limit (or the amavisfeed maxproc) "
                "on that Postfix to %u, or raise origins.%s.concurrency",
                s->name, s->limit, peer_ip, s->limit, s->name);
    }
    return false;
}

void
fe_origin_release_slot(struct fe_origin *o)
{
    SL_BUG_ON(o->slots->active == 0);
    o->slots->active--;
}
