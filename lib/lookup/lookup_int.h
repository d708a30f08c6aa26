/* lookup_int.h - what lookup.c (the cache, the merge) asks of a source:
 * lookup_sql.c (libpq) and lookup_ldap.c (libldap). */
#ifndef SL_LOOKUP_INT_H
#define SL_LOOKUP_INT_H

#include "lookup/sl_lookup.h"

/* One matching record, as the source returned it. */
struct lookup_record {
    char *key;                /* the key it matched */
    char *value[SL_LF_COUNT]; /* NULL: NULL or absent */
    char *policy_name;
    char *id; /* users.id / the entry's DN */
};

struct lookup_records {
    struct lookup_record *v; /* most specific first (SQL: users.priority DESC) */
    size_t n;
    struct sl_lookup_wb *wb; /* SQL: wblist rows of every record (rank = index in v) */
    size_t n_wb;
    bool ldap;
};

void lookup_records_free(struct lookup_records *r);

/* Settings a source reads (lookup.*), copied at sl_lookup_new. */
struct lookup_settings {
    char *sql; /* libpq conninfo, secrets resolved */
    char *ldap_uri;
    char *ldap_base;   /* "%d": the recipient's domain */
    char *ldap_filter; /* "%m": the keys */
    char *ldap_bind_dn;
    char *ldap_bind_password; /* resolved */
    unsigned timeout_s;
};

struct lookup_source_ops {
    const char *name;
    /* A connection for one thread; NULL with *error_r. Called again after
     * a failure (close first). */
    void *(*open)(const struct lookup_settings *set, char **error_r);
    void (*close)(void *conn);
    /* The records matching keys (most specific first, as sl_lookup_keys
     * made them) with their sender lists. 0, or -1 with *error_r: the
     * connection is then closed and opened again at the next call. */
    int (*fetch)(void *conn, const struct lookup_settings *set, const char *rcpt, char *const *keys,
                 size_t n_keys, struct lookup_records *out, char **error_r);
};

extern const struct lookup_source_ops lookup_sql_ops;
extern const struct lookup_source_ops lookup_ldap_ops;

#endif
