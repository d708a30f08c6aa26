/* lookup_ldap.c - the LDAP source (lookup_int.h): each recipient's
 * amavisAccount entries, found and read as amavisd-new's LDAP lookups
 * find and read them (Amavis::Lookup::LDAP, LDAPattr, LDAP::Connection),
 * so that a directory an ISP already keeps for amavis works unchanged:
 *
 *   filter   lookup.ldap.filter with each "(attr=%m)" made
 *            "(|(attr=k1)(attr=k2)...)", one term per key of
 *            sl_lookup_keys, escaped as filter values (RFC 4515);
 *   base     lookup.ldap.base with "%d" = the recipient's domain, lower
 *            case, trailing dots cut, escaped as a DN value (RFC 4514);
 *            a base that does not exist is no match (a foreign %d), as
 *            in amavis;
 *   order    an entry is as specific as the key its filter attribute
 *            (mail) matched: the entries are sorted by that key's index,
 *            most specific first (amavis' sort on $xref{$value});
 *   values   the first value of each attribute, booleans left as LDAP
 *            writes them ("TRUE", "FALSE": sl_lookup_bool reads them);
 *            cn is the policy's name, the DN the record's id;
 *   local    amavisLocal is boolean B1 in amavis: an entry without it
 *            makes the recipient local, except the catch-all "@.",
 *            whose missing amavisLocal says nothing (the next entry, or
 *            the configuration, decides);
 *   lists    amavisBlacklistSender and amavisWhitelistSender are 'L-'
 *            lookups with get_all off: each list is all the values of
 *            the first entry, in that order, that has the attribute.
 *
 * Where amavis keys the order on the first value of mail only, compared
 * as is to the escaped keys, this file takes every value and compares
 * without case (mail's equality is caseIgnoreIA5Match): the server
 * matched without case, and an entry with aliases is not sorted at random.
 * An entry whose values match no key (a filter that matches on something
 * else) comes last.
 *
 * libldap is used blocking on the worker's thread: connect, bind and
 * search are each bounded by lookup.timeout (LDAP_OPT_NETWORK_TIMEOUT,
 * LDAP_OPT_TIMEOUT, the search's own timeout and time limit). Like
 * amavis' do_search, a search that fails because the connection went
 * (slapd restarted, an idle connection closed) connects and searches once
 * more, within what is left of the time. */
#include "lookup_int.h"

#include <ctype.h>
#include <lber.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "util/sl_buf.h"

#define MAX_FILTER_ATTRS 8

struct ldap_conn {
    LDAP *ld;
};

static const char *const extra_attrs[] = {"mail", "cn", "amavisBlacklistSender",
                                          "amavisWhitelistSender"};

/* ---- connection ---------------------------------------------------------- */

static LDAP *
dir_connect(const struct lookup_settings *set, unsigned timeout_ms, char **error_r)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    const int version = LDAP_VERSION3, deref = LDAP_DEREF_FINDING;
    struct berval cred;
    LDAP *ld = NULL;
    int rc;

    rc = ldap_initialize(&ld, set->ldap_uri);
    if (rc != LDAP_SUCCESS) {
        *error_r = sl_asprintf("LDAP %s: %s", set->ldap_uri, ldap_err2string(rc));
        return NULL;
    }
    /* Referrals would be followed without our bounds: off. */
    if ((rc = ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_DEREF, &deref)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) != LDAP_OPT_SUCCESS) {
        *error_r = sl_asprintf("LDAP %s: %s", set->ldap_uri, ldap_err2string(rc));
        ldap_unbind_ext_s(ld, NULL, NULL);
        return NULL;
    }
    /* An anonymous simple bind when there is no bind_dn: it costs one
     * round trip and makes an unreachable server an error of open, not of
     * the first search. */
    cred.bv_val = set->ldap_bind_password;
    cred.bv_len = set->ldap_bind_dn[0] != '\0' ? strlen(set->ldap_bind_password) : 0;
    rc = ldap_sasl_bind_s(ld, set->ldap_bind_dn[0] != '\0' ? set->ldap_bind_dn : NULL,
                          LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
    if (rc != LDAP_SUCCESS) {
        *error_r = sl_asprintf("LDAP %s: %s", set->ldap_uri, ldap_err2string(rc));
        ldap_unbind_ext_s(ld, NULL, NULL);
        return NULL;
    }
    return ld;
}

static void *
ldap_source_open(const struct lookup_settings *set, char **error_r)
{
    LDAP *ld = dir_connect(set, set->timeout_s * 1000U, error_r);
    struct ldap_conn *c;

    if (ld == NULL)
        return NULL;
    c = sl_calloc(1, sizeof(*c));
    c->ld = ld;
    return c;
}

static void
ldap_source_close(void *conn)
{
    struct ldap_conn *c = conn;

    if (c == NULL)
        return;
    if (c->ld != NULL)
        ldap_unbind_ext_s(c->ld, NULL, NULL);
    free(c);
}

/* ---- the query ------------------------------------------------------------- */

/* RFC 4515 (Net::LDAP::Util::escape_filter_value): * ( ) \ and NUL as \hh. */
static void
filter_escape(struct sl_buf *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (strchr("*()\\", *v) != NULL)
            sl_buf_printf(b, "\\%02x", (unsigned char)*v);
        else
            sl_buf_append(b, v, 1);
    }
}

/* amavis' %m: the filter read as tokens, where each "(attr=%m)" becomes
 * "(|(attr=k1)(attr=k2)...)" and everything else is kept; the attributes
 * named so go to attrs_r (at most MAX_FILTER_ATTRS, spaces trimmed). */
static char *
filter_expand(const char *filter, char *const *keys, size_t n_keys, char *attrs_r[MAX_FILTER_ATTRS],
              size_t *n_attrs_r)
{
    struct sl_buf b;
    const char *p = filter;

    sl_buf_init(&b);
    *n_attrs_r = 0;
    while (*p != '\0') {
        size_t len = p[0] == '(' ? strcspn(p + 1, "(=") : 0;
        if (len == 0 || strncmp(p + 1 + len, "=%m)", 4) != 0) {
            sl_buf_append(&b, p++, 1);
            continue;
        }
        sl_buf_append_str(&b, "(|");
        for (size_t i = 0; i < n_keys; i++) {
            sl_buf_printf(&b, "(%.*s=", (int)len, p + 1);
            filter_escape(&b, keys[i]);
            sl_buf_append_str(&b, ")");
        }
        sl_buf_append_str(&b, ")");
        const char *a = p + 1;
        size_t alen = len;
        while (alen > 0 && isspace((unsigned char)*a))
            a++, alen--;
        while (alen > 0 && isspace((unsigned char)a[alen - 1]))
            alen--;
        if (alen > 0 && *n_attrs_r < MAX_FILTER_ATTRS)
            attrs_r[(*n_attrs_r)++] = sl_strndup(a, alen);
        p += 1 + len + 4;
    }
    return sl_buf_steal(&b, NULL);
}

/* amavis' %d: the recipient's domain, lower case, trailing dots cut,
 * escaped as a DN value (Net::LDAP::Util::escape_dn_value). Without a
 * domain the base stays as written, as in amavis. */
static char *
base_expand(const char *base, const char *rcpt)
{
    const char *at = strrchr(rcpt, '@');
    size_t dl = at != NULL ? strlen(at + 1) : 0;
    struct sl_buf dom, b;

    while (dl > 0 && at[dl] == '.') /* at[dl] is the domain's last character */
        dl--;
    if (dl == 0 || strstr(base, "%d") == NULL)
        return sl_strdup(base);
    sl_buf_init(&dom);
    for (size_t i = 0; i < dl; i++) {
        char c = (char)tolower((unsigned char)at[1 + i]);
        if (strchr("\\\",=+<>#;", c) != NULL || (c == ' ' && (i == 0 || i == dl - 1)))
            sl_buf_append(&dom, "\\", 1);
        sl_buf_append(&dom, &c, 1);
    }
    sl_buf_init(&b);
    for (const char *p = base; *p != '\0';) {
        if (p[0] == '%' && p[1] == 'd') {
            sl_buf_append(&b, dom.data, dom.len);
            p += 2;
        } else {
            sl_buf_append(&b, p++, 1);
        }
    }
    sl_buf_free(&dom);
    return sl_buf_steal(&b, NULL);
}

/* The attributes asked for: every field's, the filter's, mail, cn and the
 * sender lists; NULL-terminated, each once (names compared without case). */
static const char **
attrs_wanted(char *const *fattrs, size_t n_fattrs)
{
    const size_t max = SL_LF_COUNT + MAX_FILTER_ATTRS + SL_N_ELEMENTS(extra_attrs) + 1;
    const char **v = sl_calloc(max, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; i < SL_LF_COUNT + n_fattrs + SL_N_ELEMENTS(extra_attrs); i++) {
        const char *a = i < SL_LF_COUNT              ? sl_lookup_field_names[i].ldap
                        : i < SL_LF_COUNT + n_fattrs ? fattrs[i - SL_LF_COUNT]
                                                     : extra_attrs[i - SL_LF_COUNT - n_fattrs];
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcasecmp(v[j], a) == 0;
        if (!dup)
            v[n++] = a;
    }
    return v;
}

/* ---- entries into records ---------------------------------------------------- */

/* One entry as read, before the sort. */
struct ldap_hit {
    size_t pos, seq; /* index of the key it matched; arrival */
    struct lookup_record rec;
    struct berval **black, **white; /* the sender lists, NULL when absent */
};

static char *
first_value(LDAP *ld, LDAPMessage *e, const char *attr)
{
    struct berval **vals = ldap_get_values_len(ld, e, attr);
    char *v = NULL;

    if (vals != NULL && vals[0] != NULL)
        v = sl_strndup(vals[0]->bv_val, vals[0]->bv_len);
    ldap_value_free_len(vals);
    return v;
}

/* The most specific key among the values of the filter's attributes
 * (n_keys when none); *key_r: that key, else the first value, else "". */
static size_t
entry_pos(LDAP *ld, LDAPMessage *e, char *const *fattrs, size_t n_fattrs, char *const *keys,
          size_t n_keys, char **key_r)
{
    size_t best = n_keys;

    *key_r = NULL;
    for (size_t a = 0; a < n_fattrs; a++) {
        struct berval **vals = ldap_get_values_len(ld, e, fattrs[a]);
        for (size_t i = 0; vals != NULL && vals[i] != NULL; i++) {
            if (*key_r == NULL)
                *key_r = sl_strndup(vals[i]->bv_val, vals[i]->bv_len);
            for (size_t k = 0; k < best; k++)
                if (strlen(keys[k]) == vals[i]->bv_len &&
                    strncasecmp(keys[k], vals[i]->bv_val, vals[i]->bv_len) == 0) {
                    best = k;
                    break;
                }
        }
        ldap_value_free_len(vals);
    }
    if (best < n_keys) {
        free(*key_r);
        *key_r = sl_strdup(keys[best]);
    } else if (*key_r == NULL) {
        *key_r = sl_strdup("");
    }
    return best;
}

static void
entry_read(LDAP *ld, LDAPMessage *e, char *const *fattrs, size_t n_fattrs, char *const *keys,
           size_t n_keys, struct ldap_hit *h)
{
    char *dn = ldap_get_dn(ld, e);

    h->pos = entry_pos(ld, e, fattrs, n_fattrs, keys, n_keys, &h->rec.key);
    for (size_t f = 0; f < SL_LF_COUNT; f++)
        h->rec.value[f] = first_value(ld, e, sl_lookup_field_names[f].ldap);
    /* amavis: amavisLocal is B1 (absent = true), but the catch-all's
     * absent amavisLocal is undef: it says nothing. */
    if (h->rec.value[SL_LF_LOCAL] == NULL && strcmp(h->rec.key, "@.") != 0)
        h->rec.value[SL_LF_LOCAL] = sl_strdup("TRUE");
    h->rec.policy_name = first_value(ld, e, "cn");
    h->rec.id = sl_strdup(dn != NULL ? dn : "");
    ldap_memfree(dn);
    h->black = ldap_get_values_len(ld, e, "amavisBlacklistSender");
    h->white = ldap_get_values_len(ld, e, "amavisWhitelistSender");
}

static int
hit_cmp(const void *a, const void *b)
{
    const struct ldap_hit *x = a, *y = b;

    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq; /* stable, as perl's sort */
}

static void
wb_add(struct lookup_records *out, struct berval **vals, const char *wb)
{
    size_t n = 0;

    while (vals[n] != NULL)
        n++;
    out->wb = sl_realloc(out->wb, (out->n_wb + n + 1) * sizeof(*out->wb));
    for (size_t i = 0; i < n; i++) {
        struct sl_lookup_wb *w = &out->wb[out->n_wb++];
        memset(w, 0, sizeof(*w));
        w->sender_key = sl_strndup(vals[i]->bv_val, vals[i]->bv_len);
        w->wb = sl_strdup(wb);
    }
}

/* The sorted hits become out's records; each sender list is the one of
 * the first hit that has it (LDAPattr 'L-', get_all off). */
static void
hits_to_records(struct ldap_hit *hits, size_t n, struct lookup_records *out)
{
    bool black_done = false, white_done = false;

    qsort(hits, n, sizeof(*hits), hit_cmp);
    out->v = sl_calloc(n > 0 ? n : 1, sizeof(*out->v));
    for (size_t i = 0; i < n; i++) {
        out->v[out->n++] = hits[i].rec;
        if (!black_done && hits[i].black != NULL && hits[i].black[0] != NULL) {
            wb_add(out, hits[i].black, "B");
            black_done = true;
        }
        if (!white_done && hits[i].white != NULL && hits[i].white[0] != NULL) {
            wb_add(out, hits[i].white, "W");
            white_done = true;
        }
        ldap_value_free_len(hits[i].black);
        ldap_value_free_len(hits[i].white);
    }
}

/* ---- fetch --------------------------------------------------------------------- */

/* Errors worth a new connection and one more search (amavis' do_search). */
static bool
rc_retry(int rc)
{
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_BUSY ||
           rc == LDAP_UNAVAILABLE || rc == LDAP_UNWILLING_TO_PERFORM || rc == LDAP_OTHER ||
           rc == LDAP_LOCAL_ERROR || rc == LDAP_OPERATIONS_ERROR;
}

static int
search_once(LDAP *ld, const char *base, const char *filter, const char **attrs, unsigned timeout_ms,
            LDAPMessage **res_r)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

    /* libldap bounds its wait by tv and sends the server tv's seconds
     * as the search's time limit */
    *res_r = NULL;
    return ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, filter, (char **)attrs, 0, NULL, NULL,
                             &tv, LDAP_NO_LIMIT, res_r);
}

/* The search, again on a new connection when the first one went away.
 * LDAP_SUCCESS or LDAP_NO_SUCH_OBJECT (no match) with *res_r, else -1. */
static int
dir_search(struct ldap_conn *c, const struct lookup_settings *set, const char *base,
           const char *filter, const char **attrs, LDAPMessage **res_r, char **error_r)
{
    const unsigned long long deadline = sl_now_mono_ms() + set->timeout_s * 1000ULL;
    unsigned long long now;
    int rc = search_once(c->ld, base, filter, attrs, set->timeout_s * 1000U, res_r);

    now = sl_now_mono_ms();
    if (rc_retry(rc) && now + 100 < deadline) {
        ldap_msgfree(*res_r);
        ldap_unbind_ext_s(c->ld, NULL, NULL);
        c->ld = dir_connect(set, (unsigned)(deadline - now), error_r);
        if (c->ld == NULL)
            return -1;
        now = sl_now_mono_ms();
        rc = now + 10 < deadline
                 ? search_once(c->ld, base, filter, attrs, (unsigned)(deadline - now), res_r)
                 : LDAP_TIMEOUT;
    }
    if (rc == LDAP_SUCCESS || rc == LDAP_NO_SUCH_OBJECT) /* a foreign %d */
        return rc;
    *error_r =
        sl_asprintf("LDAP %s: search in \"%s\": %s", set->ldap_uri, base, ldap_err2string(rc));
    ldap_msgfree(*res_r);
    *res_r = NULL;
    return -1;
}

/* The entries of res, read, sorted and moved into out. */
static void
read_entries(LDAP *ld, LDAPMessage *res, char *const *fattrs, size_t n_fattrs, char *const *keys,
             size_t n_keys, struct lookup_records *out)
{
    size_t n = 0;
    int count = ldap_count_entries(ld, res);
    struct ldap_hit *hits = sl_calloc(count > 0 ? (size_t)count : 1, sizeof(*hits));

    for (LDAPMessage *e = ldap_first_entry(ld, res); e != NULL && n < (size_t)count;
         e = ldap_next_entry(ld, e)) {
        hits[n].seq = n;
        entry_read(ld, e, fattrs, n_fattrs, keys, n_keys, &hits[n]);
        n++;
    }
    hits_to_records(hits, n, out);
    free(hits);
}

static int
ldap_source_fetch(void *conn, const struct lookup_settings *set, const char *rcpt,
                  char *const *keys_in, size_t n_keys_in, struct lookup_records *out,
                  char **error_r)
{
    struct ldap_conn *c = conn;
    char *keys[SL_LOOKUP_MAX_KEYS + 1], *fattrs[MAX_FILTER_ATTRS];
    size_t n_keys = 0, n_fattrs = 0;
    LDAPMessage *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    out->ldap = true;
    if (rcpt[0] == '\0') /* amavis' hack for the null address */
        keys[n_keys++] = (char *)"<>";
    for (size_t i = 0; i < n_keys_in && i < SL_LOOKUP_MAX_KEYS; i++)
        keys[n_keys++] = keys_in[i];
    char *filter = filter_expand(set->ldap_filter, keys, n_keys, fattrs, &n_fattrs);
    char *base = base_expand(set->ldap_base, rcpt);
    const char **attrs = attrs_wanted(fattrs, n_fattrs);

    rc = dir_search(c, set, base, filter, attrs, &res, error_r);
    if (rc == LDAP_SUCCESS)
        read_entries(c->ld, res, fattrs, n_fattrs, keys, n_keys, out);
    ldap_msgfree(res);
    free(attrs);
    for (size_t i = 0; i < n_fattrs; i++)
        free(fattrs[i]);
    free(base);
    free(filter);
    return rc < 0 ? -1 : 0;
}

const struct lookup_source_ops lookup_ldap_ops = {"ldap", ldap_source_open, ldap_source_close,
                                                  ldap_source_fetch};
