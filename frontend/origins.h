/* origins.h - the origins (the Postfix instances that feed this frontend)
 * and their concurrency at run time.
 *
 * An origin is one Postfix (or group of them) that hands mail to this
 * frontend: origins.<name>.match lists its client addresses, in file
 * order; the first origin whose list holds the client wins, and a client
 * that no named origin matches belongs to "default" (which has no match
 * list). The origin decides the concurrency limit and where accepted mail
 * is reinjected (docs/configuration.md, "origins"). A message holds one
 * slot of its origin from its final "." until it is answered (its job);
 * over origins.<name>.concurrency, that message gets a 4xx (never the
 * connection or the greeting: Postfix would take that for a dead filter).
 * The warning names the Postfix parameter to change.
 *
 * A table (struct fe_origins) belongs to one configuration (settings.h);
 * a reload makes a new one while sessions and jobs keep theirs. The slots
 * are counted per origin name for the frontend's life (struct
 * fe_origin_slots), shared by every table that has the name: a message
 * started before a reload gives its slot back to the count the next ones
 * are checked against, and the limit is always the newest
 * configuration's. */
#ifndef SLUICE_FRONTEND_ORIGINS_H
#define SLUICE_FRONTEND_ORIGINS_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/sl_config.h"

/* One origin name's slots; on the frontend's list until it is destroyed. */
struct fe_origin_slots {
    struct fe_origin_slots *next;
    char *name;
    unsigned active;                    /* slots held */
    unsigned limit;                     /* concurrency in the newest table with the name */
    unsigned long long last_warning_ms; /* rate-limits the over-limit warning */
};

struct fe_origin {
    const struct sl_origin_config *config; /* in the table's configuration */
    struct fe_origin_slots *slots;         /* on the frontend's list */
};

struct fe_origins {
    struct fe_origin *v;                /* parallel to config->origins */
    size_t n;
};

/* config must outlive the table. Each origin's counter is found by name on
 * *slots, or added to it; its limit becomes config's concurrency. */
void fe_origins_init(struct fe_origins *o, const struct sl_config *config,
                     struct fe_origin_slots **slots);
void fe_origins_clear(struct fe_origins *o);
/* Frees the list (when no table, session or job uses it any more). */
void fe_origin_slots_free(struct fe_origin_slots **slots);

/* The origin of a client address; never NULL ("default" matches all). */
struct fe_origin *fe_origins_for(const struct fe_origins *o, const struct sl_config *config,
                                 const char *ip);
/* The origin called name, or NULL. */
struct fe_origin *fe_origins_find(const struct fe_origins *o, const char *name);

/* Takes a slot for a transaction from peer_ip; false (and a rate-limited
 * warning) when the origin is at its concurrency. */
bool fe_origin_take_slot(struct fe_origin *o, const char *peer_ip);
void fe_origin_release_slot(struct fe_origin *o);

#endif
