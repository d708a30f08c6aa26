/* sl_pg.h - a PostgreSQL connection made the way sluice uses them: blocking
 * on a thread of its own (the quarantine's store threads, the workers'
 * lookups), with every wait bounded, and libpq's errors as one line.
 *
 * The configured string may be a libpq connection string or a URI; it
 * goes in as "dbname", where libpq expands either, and the keywords after
 * it win: connect_timeout, statement_timeout (through "options"),
 * tcp_user_timeout and keepalives_idle all come from timeout_s, so a call
 * that hangs on a dead or frozen server ends. The password is libpq's
 * business (PGPASSWORD, a PGPASSFILE): it never appears in sluice's
 * configuration. */
#ifndef SL_PG_H
#define SL_PG_H

#include <libpq-fe.h>

/* A connection, or NULL with *error_r ("PostgreSQL: ..."). */
PGconn *sl_pg_connect(const char *conninfo, unsigned timeout_s, char **error_r);

/* libpq's message as ours, malloc'ed: "PostgreSQL: " and its first line
 * ("ERROR:  ..."; LINE and DETAIL do not fit an SMTP reply or a log
 * line), trimmed. */
char *sl_pg_error(const char *raw);

/* The error of a failed result (or, without one, of the connection). */
char *sl_pg_result_error(const PGconn *conn, const PGresult *res);

#endif
