/* conf_error.c - configuration errors: where a value came from and what is
 * wrong with it.
 *
 * Every message names where it comes from ("file:line" or "-o key=value")
 * and the dotted key:
 *   /etc/sluice/sluice.yaml:12: frontend.listne: unknown key (did you mean frontend.listen?)
 *   -o origins.default.concurrency=x: origins.default.concurrency: "x" is not a number
 * Tests and operators grep these texts: change them only on purpose.
 *
 * A check across keys runs after everything is read, so the loader also
 * remembers where each key was set last (conf_note_set), for the line to
 * blame. */
#include "conf_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *
conf_where_str(const struct conf_where *w)
{
    if (w->override != NULL)
        return sl_asprintf("-o %s", w->override);
    return sl_asprintf("%s:%zu", w->file, w->line);
}

/* Defaults are not recorded: a default is never what a cross-key check
 * blames. */
void
conf_note_set(struct conf_loader *ld, const struct conf_where *w, const char *key)
{
    if (w->override == NULL && w->line == 0)
        return;
    for (size_t i = 0; i < ld->n_set; i++) {
        if (strcmp(ld->set_key[i], key) == 0) {
            free(ld->set_where[i]);
            ld->set_where[i] = conf_where_str(w);
            return;
        }
    }
    ld->set_key = sl_realloc(ld->set_key, (ld->n_set + 1) * sizeof(char *));
    ld->set_where = sl_realloc(ld->set_where, (ld->n_set + 1) * sizeof(char *));
    ld->set_key[ld->n_set] = sl_strdup(key);
    ld->set_where[ld->n_set++] = conf_where_str(w);
}

const char *
conf_set_where(const struct conf_loader *ld, const char *key)
{
    for (size_t i = 0; i < ld->n_set; i++)
        if (strcmp(ld->set_key[i], key) == 0)
            return ld->set_where[i];
    return "(after loading)";
}

static int fail_at_v(struct conf_loader *ld, const char *where, const char *key, const char *fmt,
                     va_list ap) SL_PRINTF(4, 0);

static int
fail_at_v(struct conf_loader *ld, const char *where, const char *key, const char *fmt, va_list ap)
{
    char *msg;

    if (ld->error != NULL)
        return -1;
    msg = sl_vasprintf(fmt, ap);
    if (key != NULL)
        ld->error = sl_asprintf("%s: %s: %s", where, key, msg);
    else
        ld->error = sl_asprintf("%s: %s", where, msg);
    free(msg);
    return -1;
}

int
conf_fail_at(struct conf_loader *ld, const char *where, const char *key, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fail_at_v(ld, where, key, fmt, ap);
    va_end(ap);
    return -1;
}

int
conf_fail(struct conf_loader *ld, const struct conf_where *w, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *where;

    if (ld->error != NULL)
        return -1;
    where = conf_where_str(w);
    va_start(ap, fmt);
    fail_at_v(ld, where, key, fmt, ap);
    va_end(ap);
    free(where);
    return -1;
}

/* ---- did you mean ----------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus transpositions).
 * Short strings only. */
static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[65][65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The candidate closest to key, or NULL when none is close. "Close"
 * scales with the length of the key's last component, the part the user
 * typed wrong. */
static const char *
suggest(const char *key, const char *const *cands, size_t n)
{
    const char *last = strrchr(key, '.');
    size_t len = strlen(last != NULL ? last + 1 : key);
    size_t limit = len / 3 < 1 ? 1 : len / 3 > 3 ? 3 : len / 3;
    size_t best = SIZE_MAX;
    const char *found = NULL;

    size_t key_len = strlen(key);

    for (size_t i = 0; i < n; i++) {
        /* the distance is at least the difference in length: most
         * candidates are ruled out without the O(n*m) table */
        size_t cand_len = strlen(cands[i]);
        if ((key_len > cand_len ? key_len - cand_len : cand_len - key_len) > limit)
            continue;
        size_t d = edit_distance(key, cands[i]);
        if (d <= limit && d < best) {
            best = d;
            found = cands[i];
        }
    }
    return found;
}

int
conf_fail_unknown(struct conf_loader *ld, const struct conf_where *w, const char *key,
                  const char *what, const char *origin_name)
{
    const char **cands =
        sl_calloc(conf_n_sections + conf_n_global_keys + conf_n_origin_keys, sizeof(*cands));
    char **origin_cands = sl_calloc(conf_n_origin_keys, sizeof(*origin_cands));
    size_t n = 0;
    const char *hint;
    int ret;

    for (size_t i = 0; i < conf_n_sections; i++)
        cands[n++] = conf_sections[i];
    for (size_t i = 0; i < conf_n_global_keys; i++)
        cands[n++] = conf_global_keys[i].name;
    if (origin_name != NULL) {
        for (size_t i = 0; i < conf_n_origin_keys; i++) {
            origin_cands[i] = sl_asprintf("origins.%s.%s", origin_name, conf_origin_keys[i].name);
            cands[n++] = origin_cands[i];
        }
    }
    hint = suggest(key, cands, n);
    if (hint != NULL)
        ret = conf_fail(ld, w, key, "unknown %s (did you mean %s?)", what, hint);
    else
        ret = conf_fail(ld, w, key, "unknown %s", what);
    sl_strv_free(origin_cands, conf_n_origin_keys);
    free(cands);
    return ret;
}

int
conf_fail_unknown_bank_key(struct conf_loader *ld, const struct conf_where *w, const char *key,
                           const char *name, const char *leaf)
{
    const char **cands = sl_calloc(conf_n_bank_keys, sizeof(*cands));
    const char *hint;

    for (size_t k = 0; k < conf_n_bank_keys; k++)
        cands[k] = conf_bank_keys[k].name;
    hint = suggest(leaf, cands, conf_n_bank_keys);
    if (hint != NULL)
        conf_fail(ld, w, key, "unknown key (did you mean policy_banks.%s.%s?)", name, hint);
    else
        conf_fail(ld, w, key, "unknown key (a bank takes the policy.* keys and match_*)");
    free(cands);
    return -1;
}
