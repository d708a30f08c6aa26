/* conf_load.c - sl_config_load(): the defaults, then the file
 * (conf_yaml.c), then the -o overrides in order, then the checks across
 * keys (conf_check.c); and the two named sections, origins.<name> and
 * policy_banks.<name>, which the file and -o both reach through here.
 *
 * Every value, a default included, goes through its type's setter
 * (conf_types.c); the first error stops the load and is returned whole,
 * naming where it comes from and the key (conf_error.c). */
#include "conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct conf_where builtin = {"(built-in default)", 0, NULL};

/* ---- origins and banks ------------------------------------------------- */

static bool
name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > CONF_NAME_MAX || !isalnum((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
            return false;
    return true;
}

/* name for a new origins.<name> or policy_banks.<name> (what: "origin",
 * "bank"): 0, or -1 after the error. */
static int
name_check(struct conf_loader *ld, const struct conf_where *w, const char *section,
           const char *what, const char *name)
{
    char *key;

    if (name_valid(name))
        return 0;
    key = sl_asprintf("%s.%s", section, name);
    conf_fail(ld, w, key,
              "%s names are 1..%d letters, digits, '-' and '_', starting with a letter or digit",
              what, CONF_NAME_MAX);
    free(key);
    return -1;
}

ssize_t
conf_origin_find(const struct sl_config *config, const char *name)
{
    for (size_t i = 0; i < config->n_origins; i++)
        if (strcmp(config->origins[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

static void
origin_defaults(struct conf_loader *ld, struct sl_origin_config *o)
{
    for (size_t i = 0; i < conf_n_origin_keys; i++) {
        const struct conf_key *def = &conf_origin_keys[i];
        int r = conf_value_set(ld, &builtin, def->name, def, o, def->def);
        SL_BUG_ON(r < 0);
    }
}

ssize_t
conf_origin_get(struct conf_loader *ld, const struct conf_where *w, const char *name)
{
    struct sl_config *c = ld->config;
    ssize_t i = conf_origin_find(c, name);

    if (i >= 0)
        return i;
    if (name_check(ld, w, "origins", "origin", name) < 0)
        return -1;
    c->origins = sl_realloc(c->origins, (c->n_origins + 1) * sizeof(*c->origins));
    ld->origin_where = sl_realloc(ld->origin_where, (c->n_origins + 1) * sizeof(char *));
    memset(&c->origins[c->n_origins], 0, sizeof(c->origins[0]));
    c->origins[c->n_origins].name = sl_strdup(name);
    ld->origin_where[c->n_origins] = conf_where_str(w);
    origin_defaults(ld, &c->origins[c->n_origins]);
    return (ssize_t)c->n_origins++;
}

int
conf_origin_set(struct conf_loader *ld, const struct conf_where *w, const char *name,
                const char *leaf, const char *value)
{
    const struct conf_key *def = conf_key_find(conf_origin_keys, conf_n_origin_keys, leaf);
    char *key = sl_asprintf("origins.%s.%s", name, leaf);
    ssize_t i;
    int ret = -1;

    if (def == NULL) {
        if (name_valid(name))
            conf_fail_unknown(ld, w, key, "key", name);
        else
            (void)conf_origin_get(ld, w, name); /* reports the bad name */
        goto out;
    }
    if ((i = conf_origin_get(ld, w, name)) < 0)
        goto out;
    if (conf_value_set(ld, w, key, def, &ld->config->origins[i], value) < 0)
        goto out;
    if (strcmp(name, SL_CONFIG_DEFAULT_ORIGIN) == 0 && ld->config->origins[i].match.n > 0) {
        conf_fail(ld, w, key,
                  "the default origin takes every client that no other origin matches: leave "
                  "its match empty and give those clients a named origin");
        goto out;
    }
    ret = 0;
out:
    free(key);
    return ret;
}

ssize_t
conf_bank_find(const struct sl_config *config, const char *name)
{
    for (size_t i = 0; i < config->n_banks; i++)
        if (strcmp(config->banks[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

ssize_t
conf_bank_get(struct conf_loader *ld, const struct conf_where *w, const char *name)
{
    struct sl_config *c = ld->config;
    ssize_t i = conf_bank_find(c, name);

    if (i >= 0)
        return i;
    if (name_check(ld, w, "policy_banks", "bank", name) < 0)
        return -1;
    c->banks = sl_realloc(c->banks, (c->n_banks + 1) * sizeof(*c->banks));
    memset(&c->banks[c->n_banks], 0, sizeof(c->banks[0]));
    c->banks[c->n_banks].name = sl_strdup(name);
    return (ssize_t)c->n_banks++;
}

int
conf_bank_set(struct conf_loader *ld, const struct conf_where *w, const char *name,
              const char *leaf, const char *value)
{
    const struct conf_key *def = conf_key_find(conf_bank_keys, conf_n_bank_keys, leaf);
    char *key = sl_asprintf("policy_banks.%s.%s", name, leaf);
    ssize_t i;
    int ret = -1;

    if (def == NULL) {
        conf_fail_unknown_bank_key(ld, w, key, name, leaf);
        goto out;
    }
    if ((i = conf_bank_get(ld, w, name)) < 0)
        goto out;
    if (conf_value_set(ld, w, key, def, &ld->config->banks[i], value) < 0)
        goto out;
    ld->config->banks[i].set |= 1ULL << (unsigned)(def - conf_bank_keys);
    ret = 0;
out:
    free(key);
    return ret;
}

/* ---- -o overrides ------------------------------------------------------ */

/* key is prefix, a name and ".leaf", one dot after prefix ("origins.o2.match"):
 * *name_r (malloc'ed) and *leaf_r (into key). */
static bool
split_named(const char *key, const char *prefix, char **name_r, const char **leaf_r)
{
    size_t plen = strlen(prefix);
    const char *dot;

    if (strncmp(key, prefix, plen) != 0 || (dot = strchr(key + plen, '.')) == NULL ||
        strchr(dot + 1, '.') != NULL)
        return false;
    *name_r = sl_strndup(key + plen, (size_t)(dot - (key + plen)));
    *leaf_r = dot + 1;
    return true;
}

/* A section, or a named one without a key ("origins.o2"): -o sets keys. */
static bool
names_section(const char *key)
{
    const char *dot1 = strchr(key, '.');
    bool one_dot = dot1 != NULL && strchr(dot1 + 1, '.') == NULL;

    return conf_is_section(key) || conf_is_subsection(key) ||
           (strncmp(key, "origins.", 8) == 0 && one_dot) ||
           (strncmp(key, "policy_banks.", 13) == 0 && one_dot);
}

static int
apply_override(struct conf_loader *ld, const char *ov)
{
    struct conf_where w = {NULL, 0, ov};
    const char *eq = strchr(ov, '=');
    const struct conf_key *def;
    const char *leaf;
    char *key, *name;
    int ret;

    if (eq == NULL || eq == ov)
        return conf_fail(ld, &w, NULL, "expected key=value, e.g. frontend.listen=127.0.0.1:10024");
    /* the file is UTF-8 (libyaml checks it); an override must be too, or
     * `sluice config` would print a file that does not load */
    if (!sl_utf8_valid(ov))
        return conf_fail(ld, &w, NULL, "not valid UTF-8");
    key = sl_strndup(ov, (size_t)(eq - ov));
    const char *value = eq + 1;

    if ((def = conf_key_find(conf_global_keys, conf_n_global_keys, key)) != NULL) {
        ret = conf_value_set(ld, &w, key, def, ld->config, value);
    } else if (split_named(key, "origins.", &name, &leaf)) {
        ret = conf_origin_set(ld, &w, name, leaf, value);
        free(name);
    } else if (split_named(key, "policy_banks.", &name, &leaf)) {
        ret = conf_bank_set(ld, &w, name, leaf, value);
        free(name);
    } else if (names_section(key)) {
        ret = conf_fail(ld, &w, key, "is a section; -o sets one key, e.g. frontend.listen=...");
    } else {
        ret = conf_fail_unknown(ld, &w, key, "key", NULL);
    }
    free(key);
    return ret;
}

/* ---- load, destroy ----------------------------------------------------- */

static void
config_defaults(struct conf_loader *ld)
{
    for (size_t i = 0; i < conf_n_global_keys; i++) {
        const struct conf_key *def = &conf_global_keys[i];
        int r = conf_value_set(ld, &builtin, def->name, def, ld->config, def->def);
        SL_BUG_ON(r < 0);
    }
    SL_BUG_ON(conf_origin_get(ld, &builtin, SL_CONFIG_DEFAULT_ORIGIN) != 0);
}

static void
loader_start(struct conf_loader *ld)
{
    memset(ld, 0, sizeof(*ld));
    ld->config = sl_calloc(1, sizeof(*ld->config));
    atomic_init(&ld->config->refs, 1);
    config_defaults(ld);
}

static void
loader_done(struct conf_loader *ld)
{
    sl_strv_free(ld->origin_where, ld->config->n_origins);
    ld->origin_where = NULL;
    sl_strv_free(ld->set_key, ld->n_set);
    sl_strv_free(ld->set_where, ld->n_set);
    ld->set_key = ld->set_where = NULL;
    ld->n_set = 0;
}

struct sl_config *
conf_defaults_new(void)
{
    struct conf_loader ld;

    loader_start(&ld);
    loader_done(&ld);
    return ld.config;
}

static int
load_file(struct conf_loader *ld, const char *file, bool optional)
{
    struct stat st;
    FILE *fp;
    int ret;

    fp = fopen(file, "r");
    if (fp == NULL) {
        if (optional && errno == ENOENT)
            return 0;
        int e = errno;
        ld->error = sl_asprintf("%s: cannot open: %s", file, strerror(e));
        return -1;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        ld->error = sl_asprintf("%s: cannot open: %s", file, strerror(EISDIR));
        fclose(fp);
        return -1;
    }
    ret = conf_yaml_read(ld, file, fp);
    fclose(fp);
    return ret;
}

/* Everything after the file: overrides, cross-key checks; frees ld's
 * state and returns the config, or NULL with *error_r. */
static struct sl_config *
load_finish(struct conf_loader *ld, int ret, char *const *overrides, size_t n_overrides,
            char **error_r)
{
    if (ret < 0)
        goto fail;
    for (size_t i = 0; i < n_overrides; i++)
        if (apply_override(ld, overrides[i]) < 0)
            goto fail;
    if (conf_check(ld) < 0)
        goto fail;
    loader_done(ld);
    return ld->config;

fail:
    SL_BUG_ON(ld->error == NULL);
    *error_r = ld->error;
    loader_done(ld);
    sl_config_destroy(&ld->config);
    return NULL;
}

struct sl_config *
sl_config_load(const char *path, char *const *overrides, size_t n_overrides, char **error_r)
{
    struct conf_loader ld;
    const char *env = getenv("SLUICE_CONFIG");
    bool optional = false;

    *error_r = NULL;
    loader_start(&ld);
    if (path == NULL && env != NULL && *env != '\0')
        path = env;
    if (path == NULL) {
        path = SL_CONFIG_DEFAULT_PATH;
        optional = true;
    }
    return load_finish(&ld, load_file(&ld, path, optional), overrides, n_overrides, error_r);
}

struct sl_config *
sl_config_load_buffer(const char *name, const void *data, size_t len, char *const *overrides,
                      size_t n_overrides, char **error_r)
{
    struct conf_loader ld;
    FILE *fp;
    int ret;

    *error_r = NULL;
    loader_start(&ld);
    /* glibc's fmemopen reads the buffer as binary (NULs included, len 0
     * is an empty file), so the bytes take exactly the path a file's do. */
    fp = fmemopen((void *)(data != NULL ? data : ""), len, "r");
    if (fp == NULL)
        sl_bug(__FILE__, __LINE__, "fmemopen: out of memory");
    ret = conf_yaml_read(&ld, name, fp);
    fclose(fp);
    return load_finish(&ld, ret, overrides, n_overrides, error_r);
}

static void
keys_free(const struct conf_key *table, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        conf_type(&table[i])->free(&table[i], base);
}

struct sl_config *
sl_config_ref(const struct sl_config *config)
{
    /* the count is the one field a reference may change: loaded
     * configurations are allocated, never const objects */
    struct sl_config *c = (struct sl_config *)config;
    unsigned was = atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);

    SL_BUG_ON(was == 0); /* a reference to a freed configuration */
    return c;
}

void
sl_config_destroy(struct sl_config **configp)
{
    sl_config_unref(configp);
}

void
sl_config_unref(struct sl_config **configp)
{
    struct sl_config *c = *configp;

    if (c == NULL)
        return;
    *configp = NULL;
    /* release: this thread's reads of c happen before the free below, in
     * whichever thread drops the last reference (acquire) */
    unsigned was = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    SL_BUG_ON(was == 0);
    if (was > 1)
        return;
    keys_free(conf_global_keys, conf_n_global_keys, c);
    for (size_t i = 0; i < c->n_origins; i++) {
        keys_free(conf_origin_keys, conf_n_origin_keys, &c->origins[i]);
        free(c->origins[i].name);
    }
    free(c->origins);
    for (size_t i = 0; i < c->n_banks; i++) {
        keys_free(conf_bank_keys, conf_n_bank_keys, &c->banks[i]);
        free(c->banks[i].name);
    }
    free(c->banks);
    explicit_bzero(c->security.secret_key, sizeof(c->security.secret_key));
    free(c->path);
    free(c);
}
