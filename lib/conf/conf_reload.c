/* conf_reload.c - a reload (SIGHUP) compares the configuration it loaded
 * with the running one: which keys differ (sl_config_diff), their values
 * for the log (sl_config_value_text), and what stays as it runs because
 * only a restart can change it (sl_config_keep_restart_keys; the list is
 * in conf_schema.c). The roles then swap the new configuration in; a
 * loaded configuration itself is never changed but here, before anyone
 * else has seen it. */
#include "conf_int.h"

#include <stdlib.h>
#include <string.h>

static bool
keys_equal(const struct conf_key *table, size_t n, const void *a, const void *b)
{
    for (size_t i = 0; i < n; i++)
        if (!conf_type(&table[i])->equal(&table[i], a, b))
            return false;
    return true;
}

static bool
bank_equal(const struct sl_policy_bank *a, const struct sl_policy_bank *b)
{
    if (a->set != b->set)
        return false;
    for (size_t k = 0; k < conf_n_bank_keys; k++) {
        bool is_match = k >= conf_n_bank_keys - 2; /* match_listener, match_origin */
        if ((is_match || (a->set & (1ULL << k))) &&
            !conf_type(&conf_bank_keys[k])->equal(&conf_bank_keys[k], a, b))
            return false;
    }
    return true;
}

/* Names of section (origins or banks) that differ: in a and changed or
 * gone, then new in b. */
static void
diff_named(const char *section, const struct sl_config *a, const struct sl_config *b, bool banks,
           void (*fn)(void *ctx, const char *key), void *ctx)
{
    size_t na = banks ? a->n_banks : a->n_origins, nb = banks ? b->n_banks : b->n_origins;

    for (size_t i = 0; i < na + nb; i++) {
        const struct sl_config *from = i < na ? a : b, *other = i < na ? b : a;
        size_t k = i < na ? i : i - na;
        const char *name = banks ? from->banks[k].name : from->origins[k].name;
        ssize_t o = banks ? conf_bank_find(other, name) : conf_origin_find(other, name);
        bool same = o >= 0;
        if (same && i < na)
            same = banks ? bank_equal(&from->banks[k], &other->banks[o])
                         : keys_equal(conf_origin_keys, conf_n_origin_keys, &from->origins[k],
                                      &other->origins[o]);
        if (!same) {
            char *key = sl_asprintf("%s.%s", section, name);
            fn(ctx, key);
            free(key);
        }
    }
}

void
sl_config_diff(const struct sl_config *a, const struct sl_config *b,
               void (*fn)(void *ctx, const char *key), void *ctx)
{
    for (size_t i = 0; i < conf_n_global_keys; i++)
        if (!conf_type(&conf_global_keys[i])->equal(&conf_global_keys[i], a, b))
            fn(ctx, conf_global_keys[i].name);
    diff_named("origins", a, b, false, fn, ctx);
    diff_named("policy_banks", a, b, true, fn, ctx);
}

char *
sl_config_value_text(const struct sl_config *config, const char *key)
{
    const struct conf_key *def = conf_key_find(conf_global_keys, conf_n_global_keys, key);
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    if (def == NULL)
        return NULL;
    if (def->type == KT_REDIS_URL)
        return sl_config_redis_url_masked(*(char *const *)((const char *)config + def->off));
    f = open_memstream(&buf, &len);
    if (f == NULL)
        sl_bug(__FILE__, __LINE__, "open_memstream: out of memory");
    conf_type(def)->print(f, def, config);
    fclose(f);
    return buf;
}

size_t
sl_config_keep_restart_keys(struct sl_config *next, const struct sl_config *running)
{
    size_t n = 0;

    SL_BUG_ON(atomic_load(&next->refs) != 1); /* nobody else may see it change */
    for (size_t i = 0; i < conf_n_global_keys; i++) {
        const struct conf_key *def = &conf_global_keys[i];
        if (!sl_config_key_needs_restart(def->name) || conf_type(def)->equal(def, next, running))
            continue;
        conf_type(def)->dup(def, next, running);
        n++;
    }
    /* resolved from the files or the environment at start (sl_keys.h) */
    next->security.curve = running->security.curve;
    memcpy(next->security.secret_key, running->security.secret_key,
           sizeof(next->security.secret_key));
    memcpy(next->security.public_key, running->security.public_key,
           sizeof(next->security.public_key));
    memcpy(next->security.server_key, running->security.server_key,
           sizeof(next->security.server_key));
    return n;
}
