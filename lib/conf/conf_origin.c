/* conf_origin.c - which origin a client address belongs to (sl_config.h).
 *
 * A question about the configuration that two users ask: the frontend,
 * for every connection, and `sluice check-postfix`, for the Postfix
 * instance it checks. */
#include <string.h>
#include "conf/sl_config.h"
#include "util/sl_addr.h"
#include "util/sl_util.h"

const struct sl_origin_config *
sl_config_origin_for(const struct sl_config *config, const char *ip)
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
