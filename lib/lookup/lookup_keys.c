/* lookup_keys.c - the keys a recipient (or sender) is looked up by, as
 * amavisd-new's make_query_keys makes them for SQL and LDAP, and amavis'
 * reading of boolean fields (sl_lookup.h). */
#include "lookup/sl_lookup.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DOMAIN_KEYS 20 /* amavis' sanity limit on @.sub ... @. keys */

static void
lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

static size_t
key_add(char *keys[], size_t n, char *owned)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], owned) == 0) {
            free(owned);
            return n;
        }
    if (n == SL_LOOKUP_MAX_KEYS) {
        free(owned);
        return n;
    }
    keys[n] = owned;
    return n + 1;
}

/* amavis' split_localpart: the extension starts at the first delimiter
 * after the first character; postmaster and friends, owner-x and
 * x-request (with "-" as a delimiter) are never split. */
static size_t
extension_at(const char *local, const char *delimiter)
{
    size_t len = strlen(local);

    if (delimiter[0] == '\0' || strcasecmp(local, "postmaster") == 0 ||
        strcasecmp(local, "mailer-daemon") == 0 || strcasecmp(local, "double-bounce") == 0)
        return len;
    if (strchr(delimiter, '-') != NULL &&
        ((len > 6 && strncasecmp(local, "owner-", 6) == 0) ||
         (len > 8 && strcasecmp(local + len - 8, "-request") == 0)))
        return len;
    if (len == 0)
        return 0;
    size_t at = 1 + strcspn(local + 1, delimiter);
    return at;
}

size_t
sl_lookup_keys(const char *addr, bool include_bare_user, const char *delimiter,
               char *keys_r[SL_LOOKUP_MAX_KEYS])
{
    const char *at = strrchr(addr, '@');
    char *local = at != NULL ? sl_strndup(addr, (size_t)(at - addr)) : sl_strdup(addr);
    char *domain = sl_strdup(at != NULL ? at + 1 : "");
    size_t n = 0, dl = strlen(domain), ext;

    while (dl > 0 && domain[dl - 1] == '.') /* trailing dots */
        domain[--dl] = '\0';
    lower(local);
    lower(domain);
    ext = extension_at(local, delimiter);
    char *user = sl_strndup(local, ext);

    n = key_add(keys_r, n, sl_strdup(addr));
    if (local[ext] != '\0')
        n = key_add(keys_r, n, sl_asprintf("%s@%s", local, domain));
    n = key_add(keys_r, n, sl_asprintf("%s@%s", user, domain));
    if (include_bare_user) {
        if (local[ext] != '\0')
            n = key_add(keys_r, n, sl_strdup(local));
        n = key_add(keys_r, n, sl_strdup(user));
    }
    n = key_add(keys_r, n, sl_asprintf("@%s", domain));
    if (strchr(domain, '[') != NULL) { /* an address literal is not split */
        n = key_add(keys_r, n, sl_strdup("@."));
    } else {
        /* the last MAX_DOMAIN_KEYS of them, however many labels */
        const char *parts[MAX_DOMAIN_KEYS];
        size_t np = 0;
        for (const char *d = domain;;) {
            parts[np++ % MAX_DOMAIN_KEYS] = d;
            if (*d == '\0')
                break;
            const char *dot = strchr(d, '.');
            d = dot != NULL ? dot + 1 : d + strlen(d);
        }
        size_t first = np > MAX_DOMAIN_KEYS ? np - MAX_DOMAIN_KEYS : 0;
        for (size_t i = first; i < np; i++)
            n = key_add(keys_r, n, sl_asprintf("@.%s", parts[i % MAX_DOMAIN_KEYS]));
    }
    free(user);
    free(local);
    free(domain);
    return n;
}

void
sl_lookup_keys_free(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
}

bool
sl_lookup_bool(const char *v)
{
    if (v == NULL)
        return false;
    return strchr("NnFf0 ", v[0]) == NULL; /* "" too: its NUL is in the set */
}
