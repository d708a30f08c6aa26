/* quar_store.c - opening a store, quarantine ids, and the calls of
 * sl_quar.h passed on to the backend (quar_local.c, quar_sql.c). */
#include "quar_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf/sl_config.h"

static const char *const quar_types[] = {"virus", "banned", "spam", "badh"};

int
quar_fail(char **error_r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    free(*error_r);
    *error_r = sl_vasprintf(fmt, ap);
    va_end(ap);
    return -1;
}

bool
quar_type_valid(const char *type)
{
    for (size_t i = 0; i < SL_N_ELEMENTS(quar_types); i++)
        if (strcmp(type, quar_types[i]) == 0)
            return true;
    return false;
}

const char *
quar_type_of_letter(char c)
{
    switch (c) {
    case 'V':
        return "virus";
    case 'B':
        return "banned";
    case 'S':
    case 'Y':
        return "spam";
    case 'H':
    case 'M':
        return "badh";
    default:
        return NULL;
    }
}

char
sl_quar_content_letter(const char *category)
{
    static const struct {
        const char *prefix;
        char letter;
    } map[] = {{"INFECTED", 'V'}, {"BANNED", 'B'},     {"UNCHECKED", 'U'}, {"SPAMMY", 'Y'},
               {"SPAM", 'S'},     {"BAD-HEADER", 'H'}, {"OVERSIZED", 'O'}};

    for (size_t i = 0; category != NULL && i < SL_N_ELEMENTS(map); i++)
        if (strncmp(category, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].letter;
    return 'C';
}

void
sl_quar_entry_id(const struct sl_quar_entry *e, char buf[SL_QUAR_ID_MAX + 1])
{
    snprintf(buf, SL_QUAR_ID_MAX + 1, "%s-%s", e->type, e->mail_id);
}

void
sl_quar_secret_new(char buf[SL_QUAR_SECRET_LEN + 1])
{
    _Static_assert(SL_QUAR_SECRET_LEN == SL_ID_LEN, "the secret is drawn like an id");
    sl_id_new(buf);
}

static bool
mail_id_valid(const char *s, size_t len)
{
    if (len != SL_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

int
sl_quar_id_parse(const char *id, char type_r[SL_QUAR_TYPE_MAX + 1], char mail_id_r[SL_ID_LEN + 1])
{
    const char *slash = strrchr(id, '/');
    const char *name = slash != NULL ? slash + 1 : id;
    size_t len = strlen(name);

    type_r[0] = '\0';
    if (mail_id_valid(name, len)) {
        memcpy(mail_id_r, name, SL_ID_LEN + 1);
        return 0;
    }
    for (size_t i = 0; i < SL_N_ELEMENTS(quar_types); i++) {
        size_t tl = strlen(quar_types[i]);
        if (len == tl + 1 + SL_ID_LEN && strncmp(name, quar_types[i], tl) == 0 && name[tl] == '-' &&
            mail_id_valid(name + tl + 1, SL_ID_LEN)) {
            memcpy(type_r, quar_types[i], tl + 1);
            memcpy(mail_id_r, name + tl + 1, SL_ID_LEN + 1);
            return 0;
        }
    }
    return -1;
}

void
sl_quar_entry_clear(struct sl_quar_entry *e)
{
    for (size_t i = 0; i < e->n_rcpts; i++) {
        free(e->rcpts[i].address);
        free(e->rcpts[i].smtp_resp);
    }
    free(e->rcpts);
    sl_strv_free(e->alerts, e->n_alerts);
    free(e->sender);
    free(e->origin);
    free(e->client);
    free(e->client_addr);
    free(e->category);
    free(e->policy);
    free(e->message_id);
    free(e->from);
    free(e->subject);
    free(e->host);
    if (e->message != NULL)
        sodium_memzero(e->message, e->message_len);
    free(e->message);
    memset(e, 0, sizeof(*e));
}

/* ---- the key ------------------------------------------------------------ */

static int
hex_key(const char *hex, size_t len, unsigned char key[QUAR_KEY_LEN])
{
    size_t bin_len;

    while (len > 0 && isspace((unsigned char)hex[len - 1]))
        len--;
    if (len != 2 * QUAR_KEY_LEN)
        return -1;
    return sodium_hex2bin(key, QUAR_KEY_LEN, hex, len, NULL, &bin_len, NULL) == 0 &&
                   bin_len == QUAR_KEY_LEN
               ? 0
               : -1;
}

/* SLUICE_QUARANTINE_KEY (64 hex digits), else quarantine.key_file (32
 * bytes, raw or as 64 hex digits). */
static int
key_load(const struct sl_config *config, unsigned char key[QUAR_KEY_LEN], char **error_r)
{
    const char *env = getenv("SLUICE_QUARANTINE_KEY");
    const char *path = config->quarantine.key_file;
    unsigned char buf[2 * QUAR_KEY_LEN + 4];
    size_t n;
    FILE *fp;

    if (env != NULL && env[0] != '\0') {
        if (hex_key(env, strlen(env), key) < 0)
            return quar_fail(error_r, "SLUICE_QUARANTINE_KEY: not 64 hex digits");
        return 0;
    }
    if ((fp = fopen(path, "rb")) == NULL)
        return quar_fail(error_r, "quarantine.key_file %s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    if (n == QUAR_KEY_LEN) {
        memcpy(key, buf, QUAR_KEY_LEN);
    } else if (hex_key((const char *)buf, n, key) < 0) {
        sodium_memzero(buf, sizeof(buf));
        return quar_fail(error_r, "quarantine.key_file %s: not a key (32 bytes, or 64 hex digits)",
                         path);
    }
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

/* ---- the store ---------------------------------------------------------- */

struct sl_quar_store *
sl_quar_store_open(const struct sl_config *config, char **error_r)
{
    const char *spec = config->quarantine.store, *rest;
    struct sl_quar_store *s;

    if (spec == NULL || spec[0] == '\0') {
        quar_fail(error_r, "no quarantine: quarantine.store is not set");
        return NULL;
    }
    s = sl_calloc(1, sizeof(*s));
    s->name = sl_strdup(spec);
    s->timeout_s = config->quarantine.timeout_s;
    if ((rest = sl_strcase_prefix(spec, "local:")) != NULL) {
        s->be = &quar_local_backend;
    } else if ((rest = sl_strcase_prefix(spec, "sql:")) != NULL) {
        s->be = &quar_sql_backend;
    } else {
        quar_fail(error_r, "quarantine.store: \"%s\" is neither local: nor sql:", spec);
        sl_quar_store_close(&s);
        return NULL;
    }
    s->where = sl_strdup(rest);
    if (config->quarantine.encryption) {
        if (key_load(config, s->key, error_r) < 0) {
            sl_quar_store_close(&s);
            return NULL;
        }
        s->sealed = true;
    }
    return s;
}

void
sl_quar_store_close(struct sl_quar_store **sp)
{
    struct sl_quar_store *s = *sp;

    if (s == NULL)
        return;
    *sp = NULL;
    if (s->be != NULL && s->be->close != NULL)
        s->be->close(s);
    sodium_memzero(s->key, sizeof(s->key));
    free(s->name);
    free(s->where);
    free(s);
}

const char *
sl_quar_store_name(const struct sl_quar_store *s)
{
    return s->name;
}

int
sl_quar_put(struct sl_quar_store *s, const struct sl_quar_entry *e, char **error_r)
{
    size_t len;
    char *text;
    int r;

    SL_BUG_ON(!quar_type_valid(e->type) || strlen(e->mail_id) != SL_ID_LEN);
    text = quar_text_build(e, s->be == &quar_local_backend, s->sealed ? s->key : NULL, &len);
    r = s->be->put(s, e, text, len, error_r);
    free(text);
    return r;
}

int
sl_quar_get(struct sl_quar_store *s, const char *id, struct sl_quar_entry *e, char **error_r)
{
    char type[SL_QUAR_TYPE_MAX + 1], mail_id[SL_ID_LEN + 1];
    char *text = NULL;
    size_t len = 0;
    int r;

    memset(e, 0, sizeof(*e));
    if (sl_quar_id_parse(id, type, mail_id) < 0)
        return quar_fail(error_r,
                         "\"%s\" is not a quarantine id (virus-<mail_id>, or the "
                         "12-character mail_id)",
                         id);
    r = s->be->get(s, type, mail_id, &text, &len, e, error_r);
    if (r == 1 && quar_text_parse(text, len, s->sealed ? s->key : NULL, true, e, error_r) < 0)
        r = -1;
    if (r == 1 && e->type[0] == '\0')
        snprintf(e->type, sizeof(e->type), "%s", type[0] != '\0' ? type : "virus");
    if (text != NULL)
        sodium_memzero(text, len);
    free(text);
    if (r != 1)
        sl_quar_entry_clear(e);
    return r;
}

int
sl_quar_list(struct sl_quar_store *s, const struct sl_quar_filter *f, sl_quar_list_fn *cb,
             void *ctx, char **error_r)
{
    return s->be->list(s, f, cb, ctx, error_r);
}

int
sl_quar_delete(struct sl_quar_store *s, const char *id, char **error_r)
{
    char type[SL_QUAR_TYPE_MAX + 1], mail_id[SL_ID_LEN + 1];

    if (sl_quar_id_parse(id, type, mail_id) < 0)
        return quar_fail(error_r, "\"%s\" is not a quarantine id", id);
    return s->be->del(s, type, mail_id, error_r);
}

int
sl_quar_expire(struct sl_quar_store *s, unsigned long long before_ms, unsigned long *n_r,
               char **error_r)
{
    *n_r = 0;
    return s->be->expire(s, before_ms, n_r, error_r);
}

int
sl_quar_mark_released(struct sl_quar_store *s, const char *mail_id, const char *const *rcpts,
                      size_t n, char **error_r)
{
    return s->be->mark_released != NULL ? s->be->mark_released(s, mail_id, rcpts, n, error_r) : 0;
}
