/* conf_roles.c - what the roles ask of the configuration; each moves to
 * the role that uses it. */
#include "conf_int.h"

#include <string.h>

const struct sl_policy_bank *
sl_config_bank(const struct sl_config *config, const char *name)
{
    for (size_t i = 0; i < config->n_banks; i++)
        if (strcmp(config->banks[i].name, name) == 0)
            return &config->banks[i];
    return NULL;
}

void
sl_policy_apply_bank(struct sl_policy_config *dst, const struct sl_policy_bank *bank)
{
    sl_config_bank_copy_set(dst, bank);
}

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
    SL_BUG_ON(fallback == NULL);
    return fallback;
}
