/* settings.h - what a frontend runs with: one configuration and the
 * origins table made from it (origins.h).
 *
 * The frontend keeps the current settings (context.h); a reload
 * (frontend_reconfigure) makes new ones from the new configuration. A
 * session takes a reference when it is accepted and keeps it to its end
 * (frontend.timeout, frontend.recipient_limit, its origin as matched at
 * connect); a job takes one at end of data (job.timeout, the origin's
 * reinjection). So what is in flight finishes under the settings it
 * started with, and old settings are freed with their last user.
 *
 * Reference-counted without atomics: the frontend is one event loop. */
#ifndef SLUICE_FRONTEND_SETTINGS_H
#define SLUICE_FRONTEND_SETTINGS_H

#include "origins.h"

struct sl_config;

struct fe_settings {
    unsigned refs;
    struct sl_config *config;  /* a reference */
    struct fe_origins origins; /* config->origins, with their slot counters */
};

/* One reference for the caller; takes a reference to config; counters by
 * name from *slots (origins.h). */
struct fe_settings *fe_settings_new(const struct sl_config *config, struct fe_origin_slots **slots);
struct fe_settings *fe_settings_ref(struct fe_settings *settings);
/* Drops a reference and clears *settingsp (NULL is fine). */
void fe_settings_unref(struct fe_settings **settingsp);

#endif
