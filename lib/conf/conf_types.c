/* conf_types.c - the value types of configuration keys, one row of
 * callbacks each (conf_types[] at the end): set (check the text and store
 * it), free, equal (sl_config_print -n), print, and a shallow copy (a
 * policy bank loaded over policy.*).
 *
 * A setter checks everything before it touches the old value, so a value
 * that fails leaves the previous one in place, and every message says
 * what form was expected. The syntax itself is in conf_parse.c. */
#include "conf_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "util/sl_addr.h"

static void *
field(void *base, size_t off)
{
    return (char *)base + off;
}

static const void *
cfield(const void *base, size_t off)
{
    return (const char *)base + off;
}

int
conf_value_set(struct conf_loader *ld, const struct conf_where *w, const char *key,
               const struct conf_key *def, void *base, const char *value)
{
    conf_note_set(ld, w, key);
    return conf_type(def)->set(ld, w, key, def, base, value);
}

/* ---- strings ----------------------------------------------------------- */

static void
string_store(const struct conf_key *def, void *base, const char *value)
{
    conf_type(def)->free(def, base);
    *(char **)field(base, def->off) = sl_strdup(value);
}

static int
set_string(struct conf_loader *ld, const struct conf_where *w, const char *key,
           const struct conf_key *def, void *base, const char *value)
{
    if (!conf_text_printable(value) || strlen(value) > 1024)
        return conf_fail(ld, w, key, "control character or more than 1024 bytes");
    string_store(def, base, value);
    return 0;
}

static int
set_z85key(struct conf_loader *ld, const struct conf_where *w, const char *key,
           const struct conf_key *def, void *base, const char *value)
{
    if (value[0] != '\0' && !conf_z85_key_valid(value))
        return conf_fail(ld, w, key,
                         "not a CURVE public key (40 Z85 characters, the contents of a "
                         "NAME.pub written by sluice keygen)");
    string_store(def, base, value);
    return 0;
}

static int
set_hostport(struct conf_loader *ld, const struct conf_where *w, const char *key,
             const struct conf_key *def, void *base, const char *value)
{
    char *host;
    unsigned port;

    /* a key whose default is "" may be "": off (metrics.listen) */
    if (value[0] == '\0' && def->def[0] == '\0') {
        string_store(def, base, value);
        return 0;
    }
    if (sl_hostport_parse(value, &host, &port) < 0)
        return conf_fail(ld, w, key,
                         "expected host:port (127.0.0.1:10024, [::1]:10024, name:10024; "
                         "port 1..65535), not \"%s\"",
                         value);
    free(host);
    string_store(def, base, value);
    return 0;
}

static int
set_hostname(struct conf_loader *ld, const struct conf_where *w, const char *key,
             const struct conf_key *def, void *base, const char *value)
{
    if (!conf_hostname_valid(value))
        return conf_fail(ld, w, key, "\"%s\" is not a valid host name", value);
    string_store(def, base, value);
    return 0;
}

#define ENDPOINT_FORMS "(tcp://host:port, ipc://path, inproc://name)"

static int
set_endpoint(struct conf_loader *ld, const struct conf_where *w, const char *key,
             const struct conf_key *def, void *base, const char *value)
{
    if (!conf_endpoint_valid(value))
        return conf_fail(ld, w, key, "\"%s\" is not a ZeroMQ endpoint " ENDPOINT_FORMS, value);
    string_store(def, base, value);
    return 0;
}

static int
set_redis_url(struct conf_loader *ld, const struct conf_where *w, const char *key,
              const struct conf_key *def, void *base, const char *value)
{
    if (!conf_redis_url_valid(value))
        return conf_fail(ld, w, key,
                         "\"%s\" is not a Redis URL (redis://[:password@]host:port[/db], "
                         "unix:/path, env:NAME, file:/path, or \"\" for none)",
                         value);
    string_store(def, base, value);
    return 0;
}

static int
set_ident(struct conf_loader *ld, const struct conf_where *w, const char *key,
          const struct conf_key *def, void *base, const char *value)
{
    if (!conf_ident_valid(value))
        return conf_fail(ld, w, key,
                         "\"%s\" is not a program name for log lines (1..32 letters, digits, "
                         "'.', '_', '/' and '-')",
                         value);
    string_store(def, base, value);
    return 0;
}

/* Stores the choice as listed, whatever case the value had. */
static int
set_enum(struct conf_loader *ld, const struct conf_where *w, const char *key,
         const struct conf_key *def, void *base, const char *value)
{
    const char *canon;

    if (!conf_enum_lookup(def->choices, value, &canon)) {
        char *list = conf_enum_list(def->choices);
        conf_fail(ld, w, key, "\"%s\" is not one of: %s", value, list);
        free(list);
        return -1;
    }
    string_store(def, base, canon);
    return 0;
}

static void
free_string(const struct conf_key *def, void *base)
{
    sl_free_and_clear(field(base, def->off));
}

static bool
equal_string(const struct conf_key *def, const void *a, const void *b)
{
    return strcmp(*(char *const *)cfield(a, def->off), *(char *const *)cfield(b, def->off)) == 0;
}

static void
print_string(FILE *out, const struct conf_key *def, const void *base)
{
    conf_print_quoted(out, *(char *const *)cfield(base, def->off));
}

/* A reference as written; a URL with its password in the file as a
 * reference to SL_CONFIG_REDIS_URL_ENV: the printed file loads, and reads
 * the secret from where it is put, rather than printing it or a mask that
 * would load back as the password "***" (conf_secret.c). */
static void
print_redis_url(FILE *out, const struct conf_key *def, const void *base)
{
    const char *url = *(char *const *)cfield(base, def->off);
    char *masked = sl_config_redis_url_masked(url);
    bool has_password = strcmp(masked, url) != 0;

    free(masked);
    conf_print_quoted(out, has_password ? "env:" SL_CONFIG_REDIS_URL_ENV : url);
}

static void
copy_pointer(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(char *));
}

static void
dup_string(const struct conf_key *def, void *dst, const void *src)
{
    string_store(def, dst, *(char *const *)cfield(src, def->off));
}

/* ---- numbers, levels, booleans ---------------------------------------- */

/* KT_SIZE (a size_t), KT_DURATION and KT_UINT (an unsigned). */
static int
set_number(struct conf_loader *ld, const struct conf_where *w, const char *key,
           const struct conf_key *def, void *base, const char *value)
{
    unsigned long long v;
    const char *why;

    if (conf_parse_number(value, def->type, &v, &why) < 0)
        return conf_fail(ld, w, key, "\"%s\" %s", value, why);
    /* The one limit that is not sluice's own: say whose it is. */
    if (strcmp(def->name, "job.timeout") == 0 && v > def->max)
        return conf_fail(ld, w, key,
                         "%s (%llu s) must be less than %d s: Postfix's "
                         "lmtp_data_done_timeout (%d in the standard master.cf, "
                         "docs/postfix.md) must outlast the per-message deadline, or "
                         "Postfix gives up, retries and the message is delivered twice",
                         value, v, CONF_POSTFIX_DATA_DONE_TIMEOUT, CONF_POSTFIX_DATA_DONE_TIMEOUT);
    if (v < def->min || v > def->max)
        return conf_fail(ld, w, key, "%s is out of range (%llu..%llu)", value, def->min, def->max);
    if (def->type == KT_SIZE)
        *(size_t *)field(base, def->off) = (size_t)v;
    else
        *(unsigned *)field(base, def->off) = (unsigned)v;
    return 0;
}

static int
set_level(struct conf_loader *ld, const struct conf_where *w, const char *key,
          const struct conf_key *def, void *base, const char *value)
{
    double v;

    if (conf_parse_level(value, &v) < 0)
        return conf_fail(ld, w, key, "\"%s\" is not a level (a decimal number within +-%g)", value,
                         CONF_LEVEL_MAX);
    *(double *)field(base, def->off) = v;
    return 0;
}

static int
set_bool(struct conf_loader *ld, const struct conf_where *w, const char *key,
         const struct conf_key *def, void *base, const char *value)
{
    bool v;

    if (conf_parse_bool(value, &v) < 0)
        return conf_fail(ld, w, key, "\"%s\" is not yes or no", value);
    *(bool *)field(base, def->off) = v;
    return 0;
}

static void
free_nothing(const struct conf_key *def, void *base)
{
}

static bool
equal_size(const struct conf_key *def, const void *a, const void *b)
{
    return *(const size_t *)cfield(a, def->off) == *(const size_t *)cfield(b, def->off);
}

static bool
equal_unsigned(const struct conf_key *def, const void *a, const void *b)
{
    return *(const unsigned *)cfield(a, def->off) == *(const unsigned *)cfield(b, def->off);
}

static bool
equal_level(const struct conf_key *def, const void *a, const void *b)
{
    return *(const double *)cfield(a, def->off) == *(const double *)cfield(b, def->off);
}

static bool
equal_bool(const struct conf_key *def, const void *a, const void *b)
{
    return *(const bool *)cfield(a, def->off) == *(const bool *)cfield(b, def->off);
}

/* v in the largest unit of units[] (largest first) that divides it
 * exactly, as an operator writes it ("50M", "6d", "8m"); conf_parse_number
 * reads it back to v. The last unit has factor 1. */
struct unit {
    char letter; /* '\0': none */
    unsigned long long factor;
};

static void
print_in_unit(FILE *out, unsigned long long v, const struct unit *units)
{
    for (; units->factor > 1; units++)
        if (v != 0 && v % units->factor == 0)
            break;
    fprintf(out, "%llu", v / units->factor);
    if (units->letter != '\0')
        fputc(units->letter, out);
}

static void
print_size(FILE *out, const struct conf_key *def, const void *base)
{
    static const struct unit units[] = {
        {'G', 1024ULL * 1024 * 1024}, {'M', 1024ULL * 1024}, {'k', 1024}, {'\0', 1}};

    print_in_unit(out, *(const size_t *)cfield(base, def->off), units);
}

static void
print_duration(FILE *out, const struct conf_key *def, const void *base)
{
    static const struct unit units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

    print_in_unit(out, *(const unsigned *)cfield(base, def->off), units);
}

static void
print_unsigned(FILE *out, const struct conf_key *def, const void *base)
{
    fprintf(out, "%u", *(const unsigned *)cfield(base, def->off));
}

static void
print_level(FILE *out, const struct conf_key *def, const void *base)
{
    conf_print_level(out, *(const double *)cfield(base, def->off));
}

static void
print_bool(FILE *out, const struct conf_key *def, const void *base)
{
    fputs(*(const bool *)cfield(base, def->off) ? "yes" : "no", out);
}

static void
copy_size(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(size_t));
}

static void
copy_unsigned(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(unsigned));
}

static void
copy_level(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(double));
}

static void
copy_bool(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(bool));
}

/* ---- lists ------------------------------------------------------------- */

/* Checks one item of a list: 0, or -1 after conf_fail(). */
typedef int item_check_fn(struct conf_loader *ld, const struct conf_where *w, const char *key,
                          const char *item);

static bool
is_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

/* The length of the next item at *pp (skipping what separates items), 0
 * at the end. by_line: items are lines (a pattern may hold commas and
 * blanks); else words separated by commas or blanks. */
static size_t
next_item(const char **pp, bool by_line)
{
    const char *p = *pp;
    size_t len = 0;

    while (by_line ? *p == '\n' : is_sep(*p))
        p++;
    while (p[len] != '\0' && (by_line ? p[len] != '\n' : !is_sep(p[len])))
        len++;
    *pp = p;
    return len;
}

/* Splits value into items and checks each in turn: 0 and *v_r, *n_r, or
 * -1 at the first bad item. */
static int
strv_parse(struct conf_loader *ld, const struct conf_where *w, const char *key, const char *value,
           bool by_line, item_check_fn *check, char ***v_r, size_t *n_r)
{
    char **v = NULL;
    size_t n = 0, len;
    const char *p = value;

    while ((len = next_item(&p, by_line)) > 0) {
        v = sl_realloc(v, (n + 1) * sizeof(*v));
        v[n++] = sl_strndup(p, len);
        p += len;
        if (check(ld, w, key, v[n - 1]) < 0) {
            sl_strv_free(v, n);
            return -1;
        }
    }
    *v_r = v;
    *n_r = n;
    return 0;
}

static void
strv_store(const struct conf_key *def, void *base, char **v, size_t n)
{
    conf_type(def)->free(def, base);
    *(char ***)field(base, def->off) = v;
    *(size_t *)field(base, def->off2) = n;
}

static int
strv_set(struct conf_loader *ld, const struct conf_where *w, const char *key,
         const struct conf_key *def, void *base, const char *value, bool by_line,
         item_check_fn *check)
{
    char **v;
    size_t n;

    if (strv_parse(ld, w, key, value, by_line, check, &v, &n) < 0)
        return -1;
    strv_store(def, base, v, n);
    return 0;
}

static int
check_text_item(struct conf_loader *ld, const struct conf_where *w, const char *key,
                const char *item)
{
    if (!conf_text_printable(item))
        return conf_fail(ld, w, key, "control character in \"%s\"", item);
    return 0;
}

static int
check_server_item(struct conf_loader *ld, const struct conf_where *w, const char *key,
                  const char *item)
{
    if (!conf_server_valid(item))
        return conf_fail(ld, w, key, "\"%s\" is not a server (unix:/path or host:port)", item);
    return 0;
}

static int
check_level_item(struct conf_loader *ld, const struct conf_where *w, const char *key,
                 const char *item)
{
    const char *k;
    size_t kl;
    double lv;

    if (sl_config_level_item(item, &k, &kl, &lv) < 0)
        return conf_fail(ld, w, key,
                         "\"%s\" is not address=level, domain=level or .domain=level "
                         "(level a number, e.g. 6.31)",
                         item);
    return 0;
}

/* The worker compiles these at start-up; a pattern that does not compile
 * is refused here, with PCRE2's reason, rather than ignored there. */
static int
check_pattern_item(struct conf_loader *ld, const struct conf_where *w, const char *key,
                   const char *item)
{
    char why[160];
    size_t offset;

    if (!conf_text_printable(item))
        return conf_fail(ld, w, key, "control character in a pattern");
    if (conf_pattern_check(item, why, sizeof(why), &offset) < 0)
        return conf_fail(ld, w, key, "pattern \"%s\": %s at offset %zu", item, why, offset);
    return 0;
}

static int
check_endpoint_item(struct conf_loader *ld, const struct conf_where *w, const char *key,
                    const char *item)
{
    if (!conf_endpoint_valid(item))
        return conf_fail(ld, w, key, "\"%s\" is not a ZeroMQ endpoint " ENDPOINT_FORMS, item);
    return 0;
}

static int
set_list(struct conf_loader *ld, const struct conf_where *w, const char *key,
         const struct conf_key *def, void *base, const char *value)
{
    return strv_set(ld, w, key, def, base, value, false, check_text_item);
}

static int
set_servers(struct conf_loader *ld, const struct conf_where *w, const char *key,
            const struct conf_key *def, void *base, const char *value)
{
    return strv_set(ld, w, key, def, base, value, false, check_server_item);
}

static int
set_levelmap(struct conf_loader *ld, const struct conf_where *w, const char *key,
             const struct conf_key *def, void *base, const char *value)
{
    return strv_set(ld, w, key, def, base, value, false, check_level_item);
}

static int
set_patterns(struct conf_loader *ld, const struct conf_where *w, const char *key,
             const struct conf_key *def, void *base, const char *value)
{
    return strv_set(ld, w, key, def, base, value, true, check_pattern_item);
}

/* A node with no broker to talk to would start and do nothing. */
static int
set_endpoints(struct conf_loader *ld, const struct conf_where *w, const char *key,
              const struct conf_key *def, void *base, const char *value)
{
    char **v;
    size_t n;

    if (strv_parse(ld, w, key, value, false, check_endpoint_item, &v, &n) < 0)
        return -1;
    if (n == 0)
        return conf_fail(ld, w, key, "needs at least one endpoint");
    strv_store(def, base, v, n);
    return 0;
}

static void
free_strv(const struct conf_key *def, void *base)
{
    sl_strv_free(*(char ***)field(base, def->off), *(size_t *)field(base, def->off2));
    *(char ***)field(base, def->off) = NULL;
    *(size_t *)field(base, def->off2) = 0;
}

static bool
equal_strv(const struct conf_key *def, const void *a, const void *b)
{
    char *const *va = *(char *const *const *)cfield(a, def->off);
    char *const *vb = *(char *const *const *)cfield(b, def->off);
    size_t na = *(const size_t *)cfield(a, def->off2);

    if (na != *(const size_t *)cfield(b, def->off2))
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(va[i], vb[i]) != 0)
            return false;
    return true;
}

static void
print_strv(FILE *out, const struct conf_key *def, const void *base)
{
    char *const *v = *(char *const *const *)cfield(base, def->off);
    size_t n = *(const size_t *)cfield(base, def->off2);

    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fputs(", ", out);
        conf_print_quoted(out, v[i]);
    }
    fputc(']', out);
}

static void
copy_strv(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(char **));
    memcpy(field(dst, def->off2), cfield(src, def->off2), sizeof(size_t));
}

static void
dup_strv(const struct conf_key *def, void *dst, const void *src)
{
    char *const *v = *(char *const *const *)cfield(src, def->off);
    size_t n = *(const size_t *)cfield(src, def->off2);
    char **copy = n > 0 ? sl_calloc(n, sizeof(*copy)) : NULL;

    for (size_t i = 0; i < n; i++)
        copy[i] = sl_strdup(v[i]);
    strv_store(def, dst, copy, n);
}

/* ---- networks ---------------------------------------------------------- */

int
conf_cidr_parse(struct conf_loader *ld, const struct conf_where *w, const char *key,
                const char *text, struct sl_cidr_list *list_r)
{
    char *error;

    if (sl_cidr_list_parse(text, list_r, &error) < 0) {
        conf_fail(ld, w, key, "%s", error);
        free(error);
        return -1;
    }
    return 0;
}

/* The parsed list at off, the text as written at off2 (for printing). */
static int
set_cidr(struct conf_loader *ld, const struct conf_where *w, const char *key,
         const struct conf_key *def, void *base, const char *value)
{
    struct sl_cidr_list list;

    if (conf_cidr_parse(ld, w, key, value, &list) < 0)
        return -1;
    conf_type(def)->free(def, base);
    *(struct sl_cidr_list *)field(base, def->off) = list;
    *(char **)field(base, def->off2) = sl_strdup(value);
    return 0;
}

static void
free_cidr(const struct conf_key *def, void *base)
{
    sl_cidr_list_free(field(base, def->off));
    sl_free_and_clear(field(base, def->off2));
}

/* By the networks parsed, not the text: "127.0.0.0/8,::1" is the default. */
static bool
equal_cidr(const struct conf_key *def, const void *a, const void *b)
{
    const struct sl_cidr_list *la = cfield(a, def->off), *lb = cfield(b, def->off);

    if (la->n != lb->n)
        return false;
    for (size_t i = 0; i < la->n; i++)
        if (la->items[i].family != lb->items[i].family ||
            la->items[i].prefix != lb->items[i].prefix ||
            memcmp(la->items[i].addr, lb->items[i].addr, 16) != 0)
            return false;
    return true;
}

static void
print_cidr(FILE *out, const struct conf_key *def, const void *base)
{
    conf_print_quoted(out, *(char *const *)cfield(base, def->off2));
}

static void
copy_cidr(const struct conf_key *def, void *dst, const void *src)
{
    memcpy(field(dst, def->off), cfield(src, def->off), sizeof(struct sl_cidr_list));
    memcpy(field(dst, def->off2), cfield(src, def->off2), sizeof(char *));
}

/* Parsed again from the text: it parsed once. */
static void
dup_cidr(const struct conf_key *def, void *dst, const void *src)
{
    const char *text = *(char *const *)cfield(src, def->off2);
    struct sl_cidr_list list;
    char *error = NULL;
    int r = sl_cidr_list_parse(text, &list, &error);

    SL_BUG_ON(r < 0);
    conf_type(def)->free(def, dst);
    *(struct sl_cidr_list *)field(dst, def->off) = list;
    *(char **)field(dst, def->off2) = sl_strdup(text);
}

/* ---- origins.<name>.reinject ------------------------------------------ */

/* Parsed into the origin's reinject_* fields; base is the origin. */
static int
set_reinject(struct conf_loader *ld, const struct conf_where *w, const char *key,
             const struct conf_key *def, void *base, const char *value)
{
    struct sl_origin_config *o = base;
    const char *port_text = sl_strcase_prefix(value, "client:");
    char *host = NULL;
    unsigned port = 0;
    bool to_client = port_text != NULL;

    if (to_client) {
        /* Reuse the host:port parser for the port rules. */
        char *tmp = sl_asprintf("client:%s", port_text);
        int r = sl_hostport_parse(tmp, &host, &port);
        free(tmp);
        sl_free_and_clear(&host);
        if (r < 0)
            port = 0;
    } else if (sl_hostport_parse(value, &host, &port) < 0) {
        port = 0;
    }
    if (port == 0)
        return conf_fail(ld, w, key,
                         "expected client:PORT (the connecting Postfix's own address) or "
                         "host:port, not \"%s\"",
                         value);
    conf_type(def)->free(def, base);
    o->reinject = sl_strdup(value);
    o->reinject_to_client = to_client;
    o->reinject_host = host;
    o->reinject_port = port;
    return 0;
}

static void
free_reinject(const struct conf_key *def, void *base)
{
    struct sl_origin_config *o = base;

    sl_free_and_clear(&o->reinject);
    sl_free_and_clear(&o->reinject_host);
    o->reinject_to_client = false;
    o->reinject_port = 0;
}

/* By where it goes: "CLIENT:10025" is the default too. */
static bool
equal_reinject(const struct conf_key *def, const void *a, const void *b)
{
    const struct sl_origin_config *oa = a, *ob = b;

    return oa->reinject_to_client == ob->reinject_to_client &&
           oa->reinject_port == ob->reinject_port &&
           (oa->reinject_to_client || strcmp(oa->reinject_host, ob->reinject_host) == 0);
}

static void
copy_reinject(const struct conf_key *def, void *dst, const void *src)
{
    struct sl_origin_config *od = dst;
    const struct sl_origin_config *os = src;

    od->reinject = os->reinject;
    od->reinject_to_client = os->reinject_to_client;
    od->reinject_host = os->reinject_host;
    od->reinject_port = os->reinject_port;
}

static void
dup_reinject(const struct conf_key *def, void *dst, const void *src)
{
    struct sl_origin_config *od = dst;
    const struct sl_origin_config *os = src;

    conf_type(def)->free(def, dst);
    od->reinject = sl_strdup(os->reinject);
    od->reinject_to_client = os->reinject_to_client;
    od->reinject_host = os->reinject_host != NULL ? sl_strdup(os->reinject_host) : NULL;
    od->reinject_port = os->reinject_port;
}

/* ---- the table --------------------------------------------------------- */

/* (clang-format would spread each initializer over four lines) */
/* clang-format off */
#define STRING_TYPE(setter, printer)                                                               \
    {setter, free_string, equal_string, printer, copy_pointer, dup_string, false}
#define NUMBER_TYPE(equal, printer, copy) {set_number, free_nothing, equal, printer, copy, copy, false}
#define LIST_TYPE(setter) {setter, free_strv, equal_strv, print_strv, copy_strv, dup_strv, true}
/* clang-format on */

const struct conf_type_ops conf_types[KT_COUNT] = {
    [KT_HOSTPORT] = STRING_TYPE(set_hostport, print_string),
    [KT_HOSTNAME] = STRING_TYPE(set_hostname, print_string),
    [KT_ENDPOINT] = STRING_TYPE(set_endpoint, print_string),
    [KT_ENUM] = STRING_TYPE(set_enum, print_string),
    [KT_REDIS_URL] = STRING_TYPE(set_redis_url, print_redis_url),
    [KT_STRING] = STRING_TYPE(set_string, print_string),
    [KT_Z85KEY] = STRING_TYPE(set_z85key, print_string),
    [KT_IDENT] = STRING_TYPE(set_ident, print_string),
    [KT_SIZE] = NUMBER_TYPE(equal_size, print_size, copy_size),
    [KT_DURATION] = NUMBER_TYPE(equal_unsigned, print_duration, copy_unsigned),
    [KT_UINT] = NUMBER_TYPE(equal_unsigned, print_unsigned, copy_unsigned),
    [KT_LEVEL] = {set_level, free_nothing, equal_level, print_level, copy_level, copy_level, false},
    [KT_BOOL] = {set_bool, free_nothing, equal_bool, print_bool, copy_bool, copy_bool, false},
    [KT_ENDPOINTS] = LIST_TYPE(set_endpoints),
    [KT_LIST] = LIST_TYPE(set_list),
    [KT_LEVELMAP] = LIST_TYPE(set_levelmap),
    [KT_PATTERNS] = LIST_TYPE(set_patterns),
    [KT_SERVERS] = LIST_TYPE(set_servers),
    [KT_CIDR] = {set_cidr, free_cidr, equal_cidr, print_cidr, copy_cidr, dup_cidr, false},
    [KT_REINJECT] = {set_reinject, free_reinject, equal_reinject, print_string, copy_reinject,
                     dup_reinject, false},
};
