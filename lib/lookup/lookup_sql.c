/* lookup_sql.c - lookups in amavisd-new's SQL tables (users, policy,
 * mailaddr, wblist; deploy/sql/amavisd-pg.sql) with PostgreSQL, asking
 * what amavis' default $sql_select_policy and $sql_select_white_black_list
 * ask:
 *
 *   SELECT users.*, policy.*, users.id FROM users
 *     LEFT JOIN policy ON users.policy_id = policy.id
 *     WHERE users.email IN (keys) ORDER BY users.priority DESC
 *
 * then the sender lists of every matching users record at once (amavis
 * asks per record and per sender; the cache keeps the lists instead, so a
 * recipient costs two queries per lookup.cache_ttl, not per message).
 * Columns are read by name and may be missing: a schema without
 * "local" or with fewer policy columns works, as with amavis.
 *
 * libpq, blocking, on the worker's thread, every wait bounded by
 * lookup.timeout (sl_pg_connect). */
#include "lookup_int.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/sl_pg.h"
#include "util/sl_buf.h"

#define MAX_WBLIST_ROWS 100000 /* of one recipient's records; more are left out */

static void *
sql_open(const struct lookup_settings *set, char **error_r)
{
    return sl_pg_connect(set->sql, set->timeout_s, error_r);
}

static void
sql_close(void *conn)
{
    PQfinish(conn);
}

static int
sql_fail(PGconn *c, PGresult *res, char **error_r)
{
    *error_r = sl_pg_result_error(c, res);
    PQclear(res);
    return -1;
}

static char *
cell(const PGresult *res, int row, int col)
{
    if (col < 0 || PQgetisnull(res, row, col))
        return NULL;
    return sl_strdup(PQgetvalue(res, row, col));
}

/* "IN ($1::bytea, ...)": users.email is bytea in amavis' PostgreSQL
 * schema; the keys go as binary bytea parameters, their octets as they
 * are (amavis binds them as PG_BYTEA: README.sql requires
 * $sql_allow_8bit_address = 1 with that schema, so an SMTPUTF8 address
 * matches its UTF-8 row). */
static char *
in_list(size_t n, unsigned first)
{
    struct sl_buf b;

    sl_buf_init(&b);
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "%s$%zu::bytea", i > 0 ? ", " : "", first + i);
    return sl_buf_steal(&b, NULL);
}

static void
records_from(const PGresult *res, struct lookup_records *out)
{
    int n = PQntuples(res);
    int col[SL_LF_COUNT];
    int c_key = PQfnumber(res, "sl_key"), c_name = PQfnumber(res, "policy_name");
    int c_id = PQfnumber(res, "sl_user_id");

    for (size_t f = 0; f < SL_LF_COUNT; f++)
        col[f] = PQfnumber(res, sl_lookup_field_names[f].sql);
    out->v = sl_calloc(n > 0 ? (size_t)n : 1, sizeof(*out->v));
    out->n = (size_t)n;
    for (int i = 0; i < n; i++) {
        struct lookup_record *r = &out->v[i];
        r->key = cell(res, i, c_key);
        if (r->key == NULL)
            r->key = sl_strdup("");
        for (size_t f = 0; f < SL_LF_COUNT; f++)
            r->value[f] = cell(res, i, col[f]);
        /* amavis: a match makes the recipient local unless a column
         * "local" says otherwise; the catch-all "@." does not. */
        if (col[SL_LF_LOCAL] < 0 && strcmp(r->key, "@.") != 0)
            r->value[SL_LF_LOCAL] = sl_strdup("Y");
        r->policy_name = cell(res, i, c_name);
        r->id = cell(res, i, c_id);
    }
}

static int
fetch_wblist(PGconn *c, struct lookup_records *out, char **error_r)
{
    const char **ids = sl_calloc(out->n, sizeof(*ids));
    struct sl_buf q;
    PGresult *res;

    sl_buf_init(&q);
    sl_buf_printf(&q, "SELECT wblist.rid::text, convert_from(mailaddr.email, 'UTF8'), "
                      "mailaddr.priority, wblist.wb FROM wblist "
                      "JOIN mailaddr ON wblist.sid = mailaddr.id WHERE wblist.rid IN (");
    for (size_t i = 0; i < out->n; i++) {
        ids[i] = out->v[i].id != NULL ? out->v[i].id : "-1";
        sl_buf_printf(&q, "%s$%zu::integer", i > 0 ? ", " : "", i + 1);
    }
    sl_buf_printf(&q, ") ORDER BY mailaddr.priority DESC LIMIT %d", MAX_WBLIST_ROWS);
    res = PQexecParams(c, q.data, (int)out->n, NULL, ids, NULL, NULL, 0);
    sl_buf_free(&q);
    free(ids);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return sql_fail(c, res, error_r);
    int n = PQntuples(res);
    out->wb = sl_calloc(n > 0 ? (size_t)n : 1, sizeof(*out->wb));
    for (int i = 0; i < n; i++) {
        const char *rid = PQgetvalue(res, i, 0);
        struct sl_lookup_wb *w = &out->wb[out->n_wb];
        for (size_t r = 0; r < out->n; r++)
            if (out->v[r].id != NULL && strcmp(out->v[r].id, rid) == 0) {
                w->rank = (unsigned)r;
                break;
            }
        w->sender_key = sl_strdup(PQgetvalue(res, i, 1));
        w->priority = strtol(PQgetvalue(res, i, 2), NULL, 10);
        w->wb = sl_strdup(PQgetvalue(res, i, 3));
        out->n_wb++;
    }
    PQclear(res);
    return 0;
}

static int
sql_fetch(void *conn, const struct lookup_settings *set, const char *rcpt, char *const *keys,
          size_t n_keys, struct lookup_records *out, char **error_r)
{
    PGconn *c = conn;
    char *in = in_list(n_keys, 1);
    char *q = sl_asprintf("SELECT users.*, policy.*, users.id::text AS sl_user_id, "
                          "convert_from(users.email, 'UTF8') AS sl_key "
                          "FROM users LEFT JOIN policy ON users.policy_id = policy.id "
                          "WHERE users.email IN (%s) ORDER BY users.priority DESC",
                          in);
    int *lens = sl_calloc(n_keys > 0 ? n_keys : 1, sizeof(*lens));
    int *binary = sl_calloc(n_keys > 0 ? n_keys : 1, sizeof(*binary));
    PGresult *res;

    (void)set;
    (void)rcpt;
    for (size_t i = 0; i < n_keys; i++) {
        lens[i] = (int)strlen(keys[i]);
        binary[i] = 1;
    }
    res = PQexecParams(c, q, (int)n_keys, NULL, (const char *const *)keys, lens, binary, 0);
    free(lens);
    free(binary);
    free(q);
    free(in);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return sql_fail(c, res, error_r);
    records_from(res, out);
    PQclear(res);
    if (out->n == 0)
        return 0;
    return fetch_wblist(c, out, error_r);
}

const struct lookup_source_ops lookup_sql_ops = {
    .name = "sql",
    .open = sql_open,
    .close = sql_close,
    .fetch = sql_fetch,
};
