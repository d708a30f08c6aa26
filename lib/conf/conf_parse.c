/* conf_parse.c - the syntax of one configuration value: numbers with
 * units, levels, booleans, host names, ZeroMQ endpoints, Redis URLs,
 * scanner addresses, CURVE keys, PCRE2 patterns, level map items.
 *
 * Pure functions of the text: no loader, no messages but the "why" a
 * caller puts into its own (conf_types.c). */
#include "conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "util/sl_addr.h"

/* The multiplier of a unit letter, or 0 when type takes no such unit. */
static unsigned long long
number_unit(enum conf_type type, char unit)
{
    if (type == KT_SIZE) {
        switch (unit) {
        case 'k':
        case 'K':
            return 1024ULL;
        case 'm':
        case 'M':
            return 1024ULL * 1024;
        case 'g':
        case 'G':
            return 1024ULL * 1024 * 1024;
        }
    } else if (type == KT_DURATION) {
        switch (unit) {
        case 's':
            return 1;
        case 'm':
            return 60;
        case 'h':
            return 3600;
        case 'd':
            return 86400;
        }
    }
    return 0;
}

int
conf_parse_number(const char *s, enum conf_type type, unsigned long long *v_r, const char **why_r)
{
    unsigned long long v = 0, mult = 1;
    const char *p = s;

    *why_r = type == KT_SIZE       ? "is not a size (bytes, or a number with a k, M or G suffix)"
             : type == KT_DURATION ? "is not a duration (seconds, or a number with an s, m, h "
                                     "or d suffix)"
                                   : "is not a number";
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - digit) / 10) {
            *why_r = "is too large";
            return -1;
        }
        v = v * 10 + digit;
    }
    if (*p != '\0') {
        mult = number_unit(type, *p);
        if (mult == 0 || p[1] != '\0')
            return -1;
    }
    if (v > ULLONG_MAX / mult) {
        *why_r = "is too large";
        return -1;
    }
    *v_r = v * mult;
    return 0;
}

int
conf_parse_level(const char *s, double *v_r)
{
    char *end;
    double v;

    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    /* decimal only: no hex floats, inf or nan */
    for (const char *p = s; p < end; p++)
        if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+'))
            return -1;
    if (errno != 0 || *end != '\0' || !(v >= -CONF_LEVEL_MAX && v <= CONF_LEVEL_MAX))
        return -1;
    *v_r = v;
    return 0;
}

int
conf_parse_bool(const char *s, bool *v_r)
{
    if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "on") == 0 ||
        strcmp(s, "1") == 0)
        *v_r = true;
    else if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "off") == 0 ||
             strcmp(s, "0") == 0)
        *v_r = false;
    else
        return -1;
    return 0;
}

int
sl_config_level_item(const char *item, const char **key_r, size_t *keylen_r, double *level_r)
{
    const char *eq = strrchr(item, '=');

    if (eq == NULL || eq == item || conf_parse_level(eq + 1, level_r) < 0)
        return -1;
    for (const char *p = item; p < eq; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -1;
    *key_r = item;
    *keylen_r = (size_t)(eq - item);
    return 0;
}

bool
conf_hostname_valid(const char *s)
{
    size_t len = strlen(s);

    if (len == 0)
        return true;
    if (len > 253 || s[0] == '.' || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
            return false;
        if (*p == '.' && p[1] == '.')
            return false;
    }
    return true;
}

/* tcp://host:port (host may be * or an interface), ipc://path, inproc://name. */
bool
conf_endpoint_valid(const char *s)
{
    const char *rest;

    if ((rest = sl_strcase_prefix(s, "inproc://")) != NULL ||
        (rest = sl_strcase_prefix(s, "ipc://")) != NULL)
        return *rest != '\0';
    if ((rest = sl_strcase_prefix(s, "tcp://")) != NULL) {
        const char *colon = strrchr(rest, ':');
        char *end;
        unsigned long port;
        if (colon == NULL || colon == rest)
            return false;
        if (strcmp(colon + 1, "*") == 0)
            return true;
        if (!isdigit((unsigned char)colon[1]))
            return false;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
    }
    return false;
}

bool
conf_redis_url_valid(const char *s)
{
    const char *rest;
    bool ok;

    if (*s == '\0')
        return true;
    if (conf_secret_ref(s, &ok))
        return ok;
    if ((rest = sl_strcase_prefix(s, "redis://")) != NULL ||
        (rest = sl_strcase_prefix(s, "unix:")) != NULL) /* unix:/path, unix:///path */
        return *rest != '\0';
    return false;
}

/* unix:/absolute/path or host:port */
bool
conf_server_valid(const char *s)
{
    const char *path = sl_strcase_prefix(s, "unix:");
    char *host;
    unsigned port;

    if (path != NULL)
        return path[0] == '/' && path[1] != '\0' && strlen(path) < 108; /* sun_path */
    if (sl_hostport_parse(s, &host, &port) < 0)
        return false;
    free(host);
    return true;
}

/* 40 characters of ZeroMQ's Z85 alphabet (RFC 32): a 32-byte CURVE key. */
bool
conf_z85_key_valid(const char *s)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";

    if (strlen(s) != 40)
        return false;
    for (; *s != '\0'; s++)
        if (strchr(z85, *s) == NULL)
            return false;
    return true;
}

/* syslog's TAG (RFC 3164 4.1.3: at most 32 characters), as logwatch and
 * mailgraph find it before "[pid]:". */
bool
conf_ident_valid(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 32)
        return false;
    for (; *s != '\0'; s++)
        if (!(isalnum((unsigned char)*s) || strchr("._/-", *s) != NULL))
            return false;
    return true;
}

bool
conf_text_printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

int
conf_pattern_check(const char *re, char *why, size_t why_len, size_t *offset_r)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *compiled;

    compiled =
        pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                      PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (compiled == NULL) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)why, why_len);
        *offset_r = (size_t)off;
        return -1;
    }
    pcre2_code_free(compiled);
    return 0;
}

bool
conf_enum_lookup(const char *const *choices, const char *s, const char **canon_r)
{
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (strcasecmp(choices[i], s) == 0) {
            *canon_r = choices[i];
            return true;
        }
    }
    return false;
}

char *
conf_enum_list(const char *const *choices)
{
    char *s = sl_strdup("");
    for (size_t i = 0; choices[i] != NULL; i++) {
        char *t = sl_asprintf("%s%s%s", s, i ? ", " : "", choices[i]);
        free(s);
        s = t;
    }
    return s;
}
