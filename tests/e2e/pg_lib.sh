# shellcheck shell=bash
# pg_lib.sh - a private PostgreSQL for the quarantine's sql: tests
# (t_quarantine_sql.sh), on top of lib.sh. Source lib.sh first.
#
#   start_pg       initdb (from pg_config --bindir) into the private
#                  directory (as user postgres:
#                  PostgreSQL refuses to run as root), postgres on a free
#                  loopback port, trust authentication, a database
#                  mail_log with amavisd-new's schema
#                  (deploy/sql/amavisd-pg.sql, amavisd-pg-lookups.sql); sets PG_PORT, PG_PID,
#                  PG_CONNINFO (for quarantine.store=sql:$PG_CONNINFO)
#   stop_pg        fast shutdown (SIGINT), waits for it
#   restart_pg     postgres again on the same port and data
#   pg_sql SQL     psql -At on mail_log (one value per line, | between)
#
# postgres runs in the foreground under e2e_spawn (its own process group,
# cwd in the private directory) and is registered in E2E_SINK_PIDS, so
# lib.sh's EXIT trap ends it, pass or fail.

# shellcheck disable=SC2034 # PG_CONNINFO is for the tests
PG_BIN=
PG_DIR=
PG_PORT=
PG_PID=
PG_CONNINFO=

pg_find_bin() {
    need_cmd pg_config psql setpriv
    PG_BIN=$(pg_config --bindir)
    [ -x "$PG_BIN/initdb" ] || fail "no initdb in $PG_BIN (pg_config --bindir; package postgresql)"
    id postgres >/dev/null 2>&1 || fail "no user postgres (package postgresql)"
}

pg_as() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

pg_ready() { timeout 5 psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; }

pg_spawn() {
    e2e_spawn "$E2E_TMP/pg.log" setpriv --reuid=postgres --regid=postgres --init-groups -- \
        "$PG_BIN/postgres" -D "$PG_DIR/data" -p "$PG_PORT" -k "$PG_DIR" \
        -c listen_addresses=127.0.0.1 -c logging_collector=off
    PG_PID=$E2E_SPAWNED_PID
    E2E_SINK_PIDS+=("$PG_PID")
    wait_for 30 pg_ready || fail "PostgreSQL does not answer on 127.0.0.1:$PG_PORT (see $E2E_TMP/pg.log)"
}

start_pg() {
    local out
    pg_find_bin
    PG_DIR=$E2E_TMP/pg
    mkdir -p "$PG_DIR"
    chown postgres "$PG_DIR"
    out=$(cd "$PG_DIR" && pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 \
        --locale=C --no-sync 2>&1) || { echo "$out" >&2; fail "initdb failed"; }
    PG_PORT=$(free_port)
    pg_spawn
    timeout 20 psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc 'CREATE DATABASE mail_log' ||
        fail "CREATE DATABASE mail_log failed"
    timeout 20 psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d mail_log -q -v ON_ERROR_STOP=1 \
        -f "$SLUICE_SRC/deploy/sql/amavisd-pg.sql" -f "$SLUICE_SRC/deploy/sql/amavisd-pg-lookups.sql" \
        >/dev/null || fail "amavisd-new's schema does not load"
    PG_CONNINFO="host=127.0.0.1 port=$PG_PORT dbname=mail_log user=postgres"
    say "PostgreSQL started (pid $PG_PID, 127.0.0.1:$PG_PORT), database mail_log with amavisd-new's schema"
}

pg_gone() { ! kill -0 "$PG_PID" 2>/dev/null; }

stop_pg() {
    [ -n "$PG_PID" ] || return 0
    kill -INT "$PG_PID" 2>/dev/null || true
    wait_for 30 pg_gone || fail "PostgreSQL does not stop"
    wait "$PG_PID" 2>/dev/null || true
    say "PostgreSQL stopped (pid $PG_PID)"
    PG_PID=
}

restart_pg() {
    pg_spawn
    say "PostgreSQL started again (pid $PG_PID)"
}

pg_sql() { timeout 20 psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d mail_log -At -v ON_ERROR_STOP=1 -c "$1"; }
