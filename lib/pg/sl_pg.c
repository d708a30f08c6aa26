/* sl_pg.c - PostgreSQL connections with bounded waits (sl_pg.h). */
#include "pg/sl_pg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_util.h"

PGconn *
sl_pg_connect(const char *conninfo, unsigned timeout_s, char **error_r)
{
    char timeout[16], tcp_ms[24], options[64];
    PGconn *c;

    snprintf(timeout, sizeof(timeout), "%u", timeout_s);
    snprintf(tcp_ms, sizeof(tcp_ms), "%u", timeout_s * 1000);
    snprintf(options, sizeof(options), "-c statement_timeout=%u", timeout_s * 1000);
    /* dbname first: the configured string is expanded there, and the
     * keywords after it win */
    const char *const keys[] = {"dbname",          "connect_timeout",  "options",
                                "tcp_user_timeout", "keepalives_idle", "application_name",
                                NULL};
    const char *const vals[] = {conninfo, timeout, options, tcp_ms, timeout, "sluice", NULL};
    c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        *error_r = sl_pg_error(PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

char *
sl_pg_error(const char *raw)
{
    char *msg = sl_strdup(raw != NULL ? raw : "");
    char *out;
    size_t n;

    msg[strcspn(msg, "\n")] = '\0';
    n = strlen(msg);
    while (n > 0 && isspace((unsigned char)msg[n - 1]))
        msg[--n] = '\0';
    out = sl_asprintf("PostgreSQL: %s", msg);
    free(msg);
    return out;
}

char *
sl_pg_result_error(const PGconn *conn, const PGresult *res)
{
    const char *raw = res != NULL ? PQresultErrorMessage(res) : "";
    return sl_pg_error(raw[0] != '\0' ? raw : PQerrorMessage(conn));
}
