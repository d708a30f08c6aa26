/* conf_print.c - sl_config_print(): the effective configuration as YAML
 * that sl_config_load() reads back (`sluice config`), or only what differs
 * from the defaults (`sluice config -n`, like postconf -n).
 *
 * Keys come in conf_schema.c's order, nested as the file nests them;
 * each value is written by its type's printer (conf_types.c) with the
 * quoting here. A password in redis.url is never printed. */
#include "conf_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Escaped: what YAML does not allow raw in a file (its reader refuses C0
 * and C1 controls, U+FFFE, U+FFFF) and what it reads as a line break to
 * fold (NEL U+0085, LS U+2028, PS U+2029); a value may hold them from an
 * escape in the file or from -o (found by fuzz_config). */
void
conf_print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned cp = 0;
        size_t len = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 1;
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
            continue;
        }
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
            continue;
        }
        if (*p < 0x80 || strnlen((const char *)p, len) < len) {
            fputc(*p, out); /* ASCII, or not UTF-8 (the loaders refuse it) */
            continue;
        }
        cp = *p & (0x7fu >> len);
        for (size_t i = 1; i < len; i++)
            cp = cp << 6 | (p[i] & 0x3fu);
        if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfffe ||
            cp == 0xffff)
            fprintf(out, "\\u%04x", cp);
        else
            fwrite(p, 1, len, out);
        p += len - 1;
    }
    fputc('"', out);
}

void
conf_print_level(FILE *out, double v)
{
    char buf[64];

    for (int prec = 0; prec <= 20; prec++) { /* no exponent: conf_parse_level refuses it */
        snprintf(buf, sizeof(buf), "%.*f", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

char *
sl_config_redis_url_masked(const char *url)
{
    const char *rest = sl_strcase_prefix(url, "redis://");
    const char *at, *colon;

    if (rest == NULL || (at = strrchr(rest, '@')) == NULL)
        return sl_strdup(url);
    colon = memchr(rest, ':', (size_t)(at - rest));
    if (colon == NULL)
        return sl_strdup(url);
    return sl_asprintf("%.*s:***%s", (int)(colon - url), url, at);
}

static bool
key_shown(const struct conf_key *def, const void *base, const void *defaults, bool only_changed)
{
    return !only_changed || !conf_type(def)->equal(def, base, defaults);
}

/* The keys [i, end) of one section (slen bytes of name), nested once more
 * for a sub-section: scanners.clamd.servers. */
static void
print_section(FILE *out, const struct sl_config *config, const struct sl_config *defaults,
              bool only_changed, size_t i, size_t end, size_t slen)
{
    const char *sub = NULL; /* the sub-section printed last: "clamd." */
    size_t sublen = 0;

    fprintf(out, "%.*s:\n", (int)slen, conf_global_keys[i].name);
    for (size_t k = i; k < end; k++) {
        const struct conf_key *def = &conf_global_keys[k];
        if (!key_shown(def, config, defaults, only_changed))
            continue;
        const char *leaf = def->name + slen + 1;
        const char *dot2 = strchr(leaf, '.');
        if (dot2 != NULL) {
            size_t len = (size_t)(dot2 - leaf) + 1;
            if (sub == NULL || len != sublen || strncmp(sub, leaf, len) != 0)
                fprintf(out, "  %.*s:\n", (int)len - 1, leaf);
            sub = leaf;
            sublen = len;
            fprintf(out, "    %s: ", dot2 + 1);
        } else {
            sub = NULL;
            fprintf(out, "  %s: ", leaf);
        }
        conf_type(def)->print(out, def, config);
        fputc('\n', out);
    }
}

/* The sections of conf_global_keys, in order; a section with nothing to
 * show is left out. */
static void
print_global(FILE *out, const struct sl_config *config, const struct sl_config *defaults,
             bool only_changed)
{
    for (size_t i = 0; i < conf_n_global_keys;) {
        const char *dot = strchr(conf_global_keys[i].name, '.');
        size_t slen = (size_t)(dot - conf_global_keys[i].name);
        size_t end = i;
        bool any = false;

        while (end < conf_n_global_keys &&
               strncmp(conf_global_keys[end].name, conf_global_keys[i].name, slen + 1) == 0) {
            any |= key_shown(&conf_global_keys[end], config, defaults, only_changed);
            end++;
        }
        if (any)
            print_section(out, config, defaults, only_changed, i, end, slen);
        i = end;
    }
}

static void
print_origins(FILE *out, const struct sl_config *config, const struct sl_origin_config *def_origin,
              bool only_changed)
{
    bool header = false;

    for (size_t i = 0; i < config->n_origins; i++) {
        const struct sl_origin_config *o = &config->origins[i];
        bool is_default = strcmp(o->name, SL_CONFIG_DEFAULT_ORIGIN) == 0;
        bool any = !only_changed || !is_default;
        for (size_t k = 0; !any && k < conf_n_origin_keys; k++)
            any = key_shown(&conf_origin_keys[k], o, def_origin, only_changed);
        if (!any)
            continue;
        if (!header)
            fputs("origins:\n", out);
        header = true;
        fprintf(out, "  %s:\n", o->name);
        for (size_t k = 0; k < conf_n_origin_keys; k++) {
            const struct conf_key *def = &conf_origin_keys[k];
            /* A named origin always shows its match: it cannot load without. */
            bool show = (!is_default && def->type == KT_CIDR) ||
                        key_shown(def, o, def_origin, only_changed);
            if (!show)
                continue;
            fprintf(out, "    %s: ", def->name);
            conf_type(def)->print(out, def, o);
            fputc('\n', out);
        }
    }
}

/* Banks: only what each sets (an unset key follows policy.*). */
static void
print_banks(FILE *out, const struct sl_config *config)
{
    for (size_t i = 0; i < config->n_banks; i++) {
        const struct sl_policy_bank *b = &config->banks[i];
        if (i == 0)
            fputs("policy_banks:\n", out);
        fprintf(out, "  %s:%s\n", b->name, b->set == 0 ? " {}" : "");
        for (size_t k = 0; k < conf_n_bank_keys; k++) {
            if (!(b->set & (1ULL << k)))
                continue;
            fprintf(out, "    %s: ", conf_bank_keys[k].name);
            conf_type(&conf_bank_keys[k])->print(out, &conf_bank_keys[k], b);
            fputc('\n', out);
        }
    }
}

void
sl_config_print(const struct sl_config *config, FILE *out, bool only_changed)
{
    struct sl_config *defaults = conf_defaults_new();

    fprintf(out, "# sluice configuration%s%s",
            only_changed ? " (values that differ from the defaults)" : "",
            config->path ? ", read from " : " (no file read)");
    /* A newline in the path must not end the comment. */
    for (const char *p = config->path ? config->path : ""; *p != '\0'; p++)
        fputc(iscntrl((unsigned char)*p) ? '?' : *p, out);
    fputc('\n', out);
    print_global(out, config, defaults, only_changed);
    print_origins(out, config, &defaults->origins[0], only_changed);
    print_banks(out, config);
    sl_config_destroy(&defaults);
}
