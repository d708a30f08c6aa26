/* quar_sql.c - the sql: store: PostgreSQL with amavisd-new's own schema
 * (deploy/sql/amavisd-pg.sql), written as amavis writes it,
 * so that the web front ends that read amavis' tables show sluice's
 * quarantine unchanged:
 *   maddr        one row per address (partition_tag, email, domain with its
 *                fields reversed), found or added as amavis' find_or_save_addr
 *   msgs         one row per message: mail_id, secret_id, time, sender,
 *                content type (V B S Y H ...), quar_type 'Q', quar_loc = mail_id
 *   msgrcpt      one row per recipient: its content type, delivery status
 *                (P R B D T), release status ' ' ('R' once released)
 *   quarantine   the stored text in chunks of at most 16384 bytes, 1..
 * all in one transaction, COMMITted before sl_quar_put returns. sluice
 * writes partition_tag 0 (amavis' default) and reads any.
 *
 * libpq is used blocking, on a store thread: every connection gets
 * connect_timeout, statement_timeout and tcp_user_timeout from
 * quarantine.timeout, so a call that hangs on PostgreSQL ends. A broken
 * connection is dropped and made again on the next call. */
#include "quar_int.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg/sl_pg.h"

#define CHUNK_MAX 16384 /* amavis' $sql_quarantine_chunksize_max */
/* pg_try_advisory_xact_lock's key for the expiry: "sluiceQX" */
#define EXPIRE_LOCK "8317991466113815384"

/* ---- connection and statements ----------------------------------------- */

static int
pg_fail(char *msg_owned, char **error_r)
{
    quar_fail(error_r, "%s", msg_owned);
    free(msg_owned);
    return -1;
}

static PGconn *
sql_conn(struct sl_quar_store *s, char **error_r)
{
    if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
        return s->conn;
    if (s->conn != NULL)
        PQfinish(s->conn);
    s->conn = sl_pg_connect(s->where, s->timeout_s, error_r);
    return s->conn;
}

/* One statement, parameters as text except where lens[i] >= 0 (binary,
 * for bytea). want: the status that means success. NULL with *error_r. */
static PGresult *
sql_exec(struct sl_quar_store *s, const char *sql, int n, const char *const *vals, const int *lens,
         int binary_result, ExecStatusType want, char **error_r)
{
    int fmts[24], lengths[24];
    PGresult *res;

    SL_BUG_ON(n > 24);
    for (int i = 0; i < n; i++) {
        fmts[i] = lens != NULL && lens[i] >= 0;
        lengths[i] = fmts[i] ? lens[i] : 0;
    }
    res = PQexecParams(s->conn, sql, n, NULL, vals, lengths, fmts, binary_result);
    if (PQresultStatus(res) == want)
        return res;
    pg_fail(sl_pg_result_error(s->conn, res), error_r);
    PQclear(res);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn); /* made again at the next call */
        s->conn = NULL;
    }
    return NULL;
}

/* A statement that returns no rows: 0, or -1 with *error_r. */
static int
sql_do(struct sl_quar_store *s, const char *sql, int n, const char *const *vals, const int *lens,
       char **error_r)
{
    PGresult *res = sql_exec(s, sql, n, vals, lens, 0, PGRES_COMMAND_OK, error_r);

    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

static int
sql_simple(struct sl_quar_store *s, const char *sql, char **error_r)
{
    return sql_do(s, sql, 0, NULL, NULL, error_r);
}

static void
sql_rollback(struct sl_quar_store *s)
{
    if (s->conn != NULL && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(s->conn, "ROLLBACK");
        PQclear(res);
    }
}

/* ---- addresses (maddr) ------------------------------------------------- */

/* amavis' normalized form: local part and domain lower case (its
 * $localpart_is_case_sensitive = 0), trailing dots of the domain cut. */
static char *
addr_normal(const char *addr, char **domain_r)
{
    char *a = sl_strdup(addr);
    char *at = strrchr(a, '@');
    size_t len;

    for (char *p = a; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    len = strlen(a);
    while (at != NULL && len > (size_t)(at - a) + 1 && a[len - 1] == '.')
        a[--len] = '\0';
    if (domain_r != NULL) {
        /* "sub.example.com" -> "com.example.sub", as amavis' maddr.domain */
        const char *dom = at != NULL ? at + 1 : "";
        struct sl_buf b;
        const char *end = dom + strlen(dom);
        sl_buf_init(&b);
        while (end > dom) {
            const char *dot = end;
            while (dot > dom && dot[-1] != '.')
                dot--;
            if (b.len > 0)
                sl_buf_append(&b, ".", 1);
            sl_buf_append(&b, dot, (size_t)(end - dot));
            end = dot > dom ? dot - 1 : dom;
        }
        *domain_r = b.data != NULL ? sl_buf_steal(&b, NULL) : sl_strdup("");
    }
    return a;
}

/* maddr.id of addr, made if new. -1 with *error_r. */
static long long
addr_id(struct sl_quar_store *s, const char *addr, char **error_r)
{
    char *domain, *email = addr_normal(addr, &domain);
    const char *vals[2] = {email, domain};
    int lens[2] = {(int)strlen(email), -1};
    long long id = -1;
    PGresult *res;

    res = sql_exec(s, "SELECT id FROM maddr WHERE partition_tag = 0 AND email = $1", 1, vals, lens,
                   0, PGRES_TUPLES_OK, error_r);
    if (res != NULL && PQntuples(res) == 1) {
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else if (res != NULL) {
        PQclear(res);
        /* a concurrent insert of the same address waits for ours, or we
         * for it: DO UPDATE returns the id either way */
        res = sql_exec(s,
                       "INSERT INTO maddr (partition_tag, email, domain) VALUES (0, $1, $2) "
                       "ON CONFLICT (partition_tag, email) DO UPDATE SET domain = "
                       "EXCLUDED.domain RETURNING id",
                       2, vals, lens, 0, PGRES_TUPLES_OK, error_r);
        if (res != NULL && PQntuples(res) == 1)
            id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (res != NULL)
            quar_fail(error_r, "PostgreSQL: maddr: no id returned for <%s>", addr);
    }
    PQclear(res);
    free(email);
    free(domain);
    return id;
}

/* ---- put ------------------------------------------------------------- */

static int
sql_put_rows(struct sl_quar_store *s, const struct sl_quar_entry *e, const char *text, size_t len,
             char **error_r)
{
    char num[8][32];
    long long sid = addr_id(s, e->sender, error_r);
    int r;

    if (sid < 0)
        return -1;
    char *policy = quar_column_text(e->policy ? e->policy : "", 255);
    char *client = quar_column_text(e->client_addr ? e->client_addr : "", 255);
    char *mid = quar_column_text(e->message_id ? e->message_id : "", 255);
    char *from = quar_column_text(e->from ? e->from : "", 255);
    char *subject = quar_column_text(e->subject ? e->subject : "", 255);
    char *host = quar_column_text(e->host ? e->host : "", 255);
    char content[2] = {sl_quar_content_letter(e->category), '\0'};
    snprintf(num[0], sizeof(num[0]), "%llu", e->time_ms / 1000);
    snprintf(num[1], sizeof(num[1]), "%lld", sid);
    snprintf(num[2], sizeof(num[2]), "%zu", e->size);
    sl_format_score(e->spam_level, num[3], sizeof(num[3]));
    const char *vals[] = {e->mail_id, e->secret_id,
                          num[0],     num[1],
                          policy,     client,
                          num[2],     e->originating ? "Y" : "N",
                          content,    e->spam_scanned ? num[3] : NULL,
                          mid,        from,
                          subject,    host,
                          e->mail_id};
    int lens[] = {(int)strlen(e->mail_id),
                  (int)strlen(e->secret_id),
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1,
                  -1};
    r = sql_do(s,
               "INSERT INTO msgs (partition_tag, mail_id, secret_id, am_id, time_num, time_iso, "
               "sid, policy, client_addr, size, originating, content, quar_type, quar_loc, "
               "dsn_sent, spam_level, message_id, from_addr, subject, host) VALUES (0, $1, $2, "
               "$15, $3::integer, to_timestamp($3::integer), $4, $5, $6, $7, $8, $9, 'Q', $15, "
               "'N', $10, $11, $12, $13, $14)",
               15, vals, lens, error_r);
    free(policy);
    free(client);
    free(mid);
    free(from);
    free(subject);
    free(host);
    for (size_t i = 0; r == 0 && i < e->n_rcpts; i++) {
        const struct sl_quar_rcpt *rc = &e->rcpts[i];
        long long rid = addr_id(s, rc->address, error_r);
        if (rid < 0)
            return -1;
        char *resp = quar_column_text(rc->smtp_resp ? rc->smtp_resp : "", 255);
        char rcontent[2] = {rc->content ? rc->content : content[0], '\0'};
        char ds[2] = {rc->ds ? rc->ds : 'D', '\0'};
        snprintf(num[4], sizeof(num[4]), "%zu", i + 1);
        snprintf(num[5], sizeof(num[5]), "%lld", rid);
        const char *rv[] = {e->mail_id,
                            num[4],
                            num[5],
                            rc->is_local ? "Y" : "N",
                            rcontent,
                            ds,
                            e->spam_scanned ? num[3] : NULL,
                            resp};
        int rl[] = {(int)strlen(e->mail_id), -1, -1, -1, -1, -1, -1, -1};
        r = sql_do(s,
                   "INSERT INTO msgrcpt (partition_tag, mail_id, rseqnum, rid, is_local, content, "
                   "ds, rs, bl, wl, bspam_level, smtp_resp) VALUES (0, $1, $2, $3, $4, $5, $6, "
                   "' ', 'N', 'N', $7, $8)",
                   8, rv, rl, error_r);
        free(resp);
    }
    /* the text in chunks of at most CHUNK_MAX, numbered from 1 */
    for (size_t off = 0, ind = 1; r == 0 && (off < len || ind == 1); off += CHUNK_MAX, ind++) {
        size_t n = len - off < CHUNK_MAX ? len - off : CHUNK_MAX;
        snprintf(num[6], sizeof(num[6]), "%zu", ind);
        const char *qv[] = {e->mail_id, num[6], text + off};
        int ql[] = {(int)strlen(e->mail_id), -1, (int)n};
        r = sql_do(s,
                   "INSERT INTO quarantine (partition_tag, mail_id, chunk_ind, mail_text) "
                   "VALUES (0, $1, $2, $3)",
                   3, qv, ql, error_r);
        if (off + n >= len)
            break;
    }
    return r;
}

static int
sql_put(struct sl_quar_store *s, const struct sl_quar_entry *e, const char *text, size_t len,
        char **error_r)
{
    if (sql_conn(s, error_r) == NULL)
        return -1;
    if (sql_simple(s, "BEGIN", error_r) < 0)
        return -1;
    if (sql_put_rows(s, e, text, len, error_r) < 0 || sql_simple(s, "COMMIT", error_r) < 0) {
        sql_rollback(s);
        return -1;
    }
    return 0;
}

/* ---- get, list, delete -------------------------------------------------- */

static int
sql_get(struct sl_quar_store *s, const char *type, const char *mail_id, char **text_r,
        size_t *len_r, struct sl_quar_entry *meta, char **error_r)
{
    const char *vals[] = {mail_id};
    int lens[] = {(int)strlen(mail_id)};
    PGresult *res;
    struct sl_buf b;

    if (sql_conn(s, error_r) == NULL)
        return -1;
    res = sql_exec(s,
                   "SELECT encode(secret_id, 'escape'), time_num, content FROM msgs "
                   "WHERE mail_id = $1 ORDER BY partition_tag LIMIT 1",
                   1, vals, lens, 0, PGRES_TUPLES_OK, error_r);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        snprintf(meta->secret_id, sizeof(meta->secret_id), "%s", PQgetvalue(res, 0, 0));
        meta->time_ms = strtoull(PQgetvalue(res, 0, 1), NULL, 10) * 1000;
        const char *t = quar_type_of_letter(PQgetvalue(res, 0, 2)[0]);
        snprintf(meta->type, sizeof(meta->type), "%s", t != NULL ? t : type);
    }
    PQclear(res);
    res = sql_exec(s,
                   "SELECT mail_text FROM quarantine WHERE mail_id = $1 "
                   "ORDER BY partition_tag, chunk_ind",
                   1, vals, lens, 1, PGRES_TUPLES_OK, error_r);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    sl_buf_init(&b);
    for (int i = 0; i < PQntuples(res); i++)
        sl_buf_append(&b, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    PQclear(res);
    *text_r = sl_buf_steal(&b, len_r);
    return 1;
}

static void
list_flush(struct sl_quar_entry *e, sl_quar_list_fn *cb, void *ctx)
{
    if (e->mail_id[0] != '\0')
        cb(ctx, e);
    sl_quar_entry_clear(e);
}

static char *
value_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : sl_strdup(PQgetvalue(res, row, col));
}

static int
sql_list(struct sl_quar_store *s, const struct sl_quar_filter *f, sl_quar_list_fn *cb, void *ctx,
         char **error_r)
{
    char since[32];
    char *email = f->recipient != NULL ? addr_normal(f->recipient, NULL) : NULL;
    const char *vals[] = {since, email};
    int lens[] = {-1, email != NULL ? (int)strlen(email) : 0};
    struct sl_quar_entry e = {0};
    PGresult *res;

    snprintf(since, sizeof(since), "%llu", f->since_ms / 1000);
    if (sql_conn(s, error_r) == NULL) {
        free(email);
        return -1;
    }
    res = sql_exec(
        s,
        "SELECT encode(m.mail_id, 'escape'), m.time_num, m.content, "
        "encode(coalesce(sa.email, ''), 'escape'), m.subject, m.from_addr, m.size, "
        "encode(ra.email, 'escape'), mr.ds, mr.rs, mr.content, m.host "
        "FROM msgs m JOIN msgrcpt mr ON mr.partition_tag = m.partition_tag AND "
        "mr.mail_id = m.mail_id JOIN maddr ra ON ra.id = mr.rid "
        "LEFT JOIN maddr sa ON sa.id = m.sid "
        "WHERE m.quar_type = 'Q' AND m.time_num >= $1 AND ($2::bytea IS NULL OR m.mail_id IN "
        "(SELECT r2.mail_id FROM msgrcpt r2 JOIN maddr a2 ON a2.id = r2.rid WHERE a2.email = $2)) "
        "ORDER BY m.time_num, m.mail_id, mr.rseqnum",
        2, vals, lens, 0, PGRES_TUPLES_OK, error_r);
    free(email);
    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *mail_id = PQgetvalue(res, i, 0);
        if (strcmp(mail_id, e.mail_id) != 0) {
            list_flush(&e, cb, ctx);
            snprintf(e.mail_id, sizeof(e.mail_id), "%s", mail_id);
            e.time_ms = strtoull(PQgetvalue(res, i, 1), NULL, 10) * 1000;
            const char *t = quar_type_of_letter(PQgetvalue(res, i, 2)[0]);
            snprintf(e.type, sizeof(e.type), "%s", t != NULL ? t : "");
            e.sender = sl_strdup(PQgetvalue(res, i, 3));
            e.subject = value_or_null(res, i, 4);
            e.from = value_or_null(res, i, 5);
            e.size = (size_t)strtoull(PQgetvalue(res, i, 6), NULL, 10);
            e.host = value_or_null(res, i, 11);
        }
        e.rcpts = sl_realloc(e.rcpts, (e.n_rcpts + 1) * sizeof(*e.rcpts));
        struct sl_quar_rcpt *r = &e.rcpts[e.n_rcpts++];
        memset(r, 0, sizeof(*r));
        r->address = sl_strdup(PQgetvalue(res, i, 7));
        r->ds = PQgetvalue(res, i, 8)[0];
        r->rs = PQgetvalue(res, i, 9)[0];
        r->content = PQgetvalue(res, i, 10)[0];
        r->blocked = r->ds != 'P';
    }
    list_flush(&e, cb, ctx);
    PQclear(res);
    return 0;
}

static int
sql_del(struct sl_quar_store *s, const char *type, const char *mail_id, char **error_r)
{
    const char *vals[] = {mail_id};
    int lens[] = {(int)strlen(mail_id)};
    PGresult *res;
    int n;

    (void)type;
    if (sql_conn(s, error_r) == NULL || sql_simple(s, "BEGIN", error_r) < 0)
        return -1;
    res = sql_exec(s,
                   "WITH q AS (DELETE FROM quarantine WHERE mail_id = $1), "
                   "r AS (DELETE FROM msgrcpt WHERE mail_id = $1) "
                   "DELETE FROM msgs WHERE mail_id = $1 AND quar_type = 'Q'",
                   1, vals, lens, 0, PGRES_COMMAND_OK, error_r);
    if (res == NULL) {
        sql_rollback(s);
        return -1;
    }
    n = atoi(PQcmdTuples(res));
    PQclear(res);
    if (sql_simple(s, "COMMIT", error_r) < 0) {
        sql_rollback(s);
        return -1;
    }
    return n > 0 ? 1 : 0;
}

/* ---- expiry, release status ------------------------------------------- */

static int
sql_expire(struct sl_quar_store *s, unsigned long long before_ms, unsigned long *n_r,
           char **error_r)
{
    char before[32];
    const char *vals[] = {before};
    PGresult *res;
    bool mine;

    snprintf(before, sizeof(before), "%llu", before_ms / 1000);
    if (sql_conn(s, error_r) == NULL || sql_simple(s, "BEGIN", error_r) < 0)
        return -1;
    /* one node at a time; released at COMMIT or ROLLBACK */
    res = sql_exec(s, "SELECT pg_try_advisory_xact_lock(" EXPIRE_LOCK ")", 0, NULL, NULL, 0,
                   PGRES_TUPLES_OK, error_r);
    if (res == NULL)
        goto fail;
    mine = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!mine) {
        sql_rollback(s);
        return 0;
    }
    res = sql_exec(s,
                   "WITH d AS (DELETE FROM msgs WHERE quar_type = 'Q' AND time_num < $1 "
                   "RETURNING partition_tag, mail_id), "
                   "q AS (DELETE FROM quarantine USING d WHERE quarantine.partition_tag = "
                   "d.partition_tag AND quarantine.mail_id = d.mail_id), "
                   "r AS (DELETE FROM msgrcpt USING d WHERE msgrcpt.partition_tag = "
                   "d.partition_tag AND msgrcpt.mail_id = d.mail_id) "
                   "SELECT count(*) FROM d",
                   1, vals, NULL, 0, PGRES_TUPLES_OK, error_r);
    if (res == NULL)
        goto fail;
    *n_r = strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    /* addresses nobody refers to any more (amavis' documented housekeeping) */
    if (*n_r > 0 &&
        sql_simple(s,
                   "DELETE FROM maddr WHERE NOT EXISTS (SELECT 1 FROM msgs WHERE sid = maddr.id) "
                   "AND NOT EXISTS (SELECT 1 FROM msgrcpt WHERE rid = maddr.id)",
                   error_r) < 0)
        goto fail;
    if (sql_simple(s, "COMMIT", error_r) < 0)
        goto fail;
    return 1;
fail:
    sql_rollback(s);
    *n_r = 0;
    return -1;
}

static int
sql_mark_released(struct sl_quar_store *s, const char *mail_id, const char *const *rcpts, size_t n,
                  char **error_r)
{
    int r = sql_conn(s, error_r) != NULL ? 0 : -1;

    for (size_t i = 0; r == 0 && i < n; i++) {
        char *email = addr_normal(rcpts[i], NULL);
        const char *vals[] = {mail_id, email};
        int lens[] = {(int)strlen(mail_id), (int)strlen(email)};
        r = sql_do(s,
                   "UPDATE msgrcpt SET rs = 'R' WHERE mail_id = $1 AND rid IN "
                   "(SELECT id FROM maddr WHERE email = $2)",
                   2, vals, lens, error_r);
        free(email);
    }
    return r;
}

static void
sql_close(struct sl_quar_store *s)
{
    if (s->conn != NULL)
        PQfinish(s->conn);
    s->conn = NULL;
}

const struct quar_backend quar_sql_backend = {
    .put = sql_put,
    .get = sql_get,
    .list = sql_list,
    .del = sql_del,
    .expire = sql_expire,
    .mark_released = sql_mark_released,
    .close = sql_close,
};
