/* settings.c - a frontend's configuration and origins table, shared by
 * the sessions and jobs that started under it (settings.h). */
#include "settings.h"

#include <stdlib.h>
#include "conf/sl_config.h"
#include "util/sl_util.h"

struct fe_settings *
fe_settings_new(const struct sl_config *config, struct fe_origin_slots **slots)
{
    struct fe_settings *s = sl_calloc(1, sizeof(*s));

    s->refs = 1;
    s->config = sl_config_ref(config);
    fe_origins_init(&s->origins, s->config, slots);
    return s;
}

struct fe_settings *
fe_settings_ref(struct fe_settings *settings)
{
    SL_BUG_ON(settings->refs == 0);
    settings->refs++;
    return settings;
}

void
fe_settings_unref(struct fe_settings **settingsp)
{
    struct fe_settings *s = *settingsp;

    if (s == NULL)
        return;
    *settingsp = NULL;
    SL_BUG_ON(s->refs == 0);
    if (--s->refs > 0)
        return;
    fe_origins_clear(&s->origins);
    sl_config_unref(&s->config);
    free(s);
}
