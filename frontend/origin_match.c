/* origin_match.c - a client address to its origin (origin_match.h). */
#include "origin_match.h"

#include <string.h>
#include "util/sl_addr.h"
#include "util/sl_util.h"

const struct sl_origin_config *
fe_origin_config_for(const struct sl_config *config, const char *ip)
{
    const struct sl_origin_config *fallback = NULL;

    for (size_t i = 0; i < config->n_origins; i++) {
        const struct sl_origin_config *o = &config->origins[i];
        if (strcmp(o->name, SL_CONFIG_DEFAULT_ORIGIN) == 0) {
            fallback = o;
            continue;
        }
        if (ip != NULL && sl_cidr_list_match_text(&o->match, ip))
            return o;
    }
    SL_BUG_ON(fallback == NULL); /* the loader always creates it */
    return fallback;
}
