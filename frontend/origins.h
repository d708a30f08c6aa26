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
 * The warning names the Postfix parameter to change. */
#ifndef SLUICE_FRONTEND_ORIGINS_H
#define SLUICE_FRONTEND_ORIGINS_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/sl_config.h"

struct fe_origin {
    const struct sl_origin_config *config;
    unsigned active;                    /* slots held */
    unsigned long long last_warning_ms; /* rate-limits the over-limit warning */
};

struct fe_origins {
    struct fe_origin *v;                /* parallel to config->origins */
    size_t n;
};

/* config must outlive the table. */
void fe_origins_init(struct fe_origins *o, const struct sl_config *config);
void fe_origins_clear(struct fe_origins *o);

/* The origin of a client address; never NULL ("default" matches all). */
struct fe_origin *fe_origins_for(const struct fe_origins *o, const struct sl_config *config,
                                 const char *ip);
/* The origin called name, or NULL. */
const struct fe_origin *fe_origins_find(const struct fe_origins *o, const char *name);

/* Takes a slot for a transaction from peer_ip; false (and a rate-limited
 * warning) when the origin is at its concurrency. */
bool fe_origin_take_slot(struct fe_origin *o, const char *peer_ip);
void fe_origin_release_slot(struct fe_origin *o);

#endif
