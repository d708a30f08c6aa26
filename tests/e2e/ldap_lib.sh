# shellcheck shell=bash
# ldap_lib.sh - a private OpenLDAP server for the LDAP lookup tests
# (t_lookup_ldap.sh), on top of lib.sh. Source lib.sh first.
#
#   start_ldap         slapd (Debian's /usr/sbin/slapd) with a private
#                      slapd.conf: schemas core, cosine, nis, inetorgperson
#                      and amavisd-new's amavis.schema, one mdb database
#                      for dc=example,dc=com in the private directory,
#                      listening on ldap://127.0.0.1:$LDAP_PORT only;
#                      the base entry is added. Sets LDAP_PORT, LDAP_PID,
#                      LDAP_URI, LDAP_BASE, LDAP_BIND_DN, LDAP_BIND_PW
#   stop_ldap          SIGINT (slapd's clean shutdown), waits for it
#   restart_ldap       slapd again on the same port and data
#   ldap_add_ldif FILE ldapadd as the rootdn
#
# slapd runs in the foreground (-d 0) under e2e_spawn (its own process
# group, cwd in the private directory) and is registered in E2E_SINK_PIDS,
# so lib.sh's EXIT trap ends it, pass or fail. It keeps the user it was
# started as (root in the tests): the files are all in the private
# directory, so it needs no other user's rights.

# shellcheck disable=SC2034 # LDAP_URI ... are for the tests
LDAP_DIR=
LDAP_PORT=
LDAP_PID=
LDAP_URI=
LDAP_BASE=dc=example,dc=com
LDAP_BIND_DN=cn=admin,dc=example,dc=com
LDAP_BIND_PW=e2e-ldap-secret
LDAP_SLAPD=${LDAP_SLAPD:-/usr/sbin/slapd}
LDAP_SCHEMA_DIR=${LDAP_SCHEMA_DIR:-/etc/ldap/schema}
LDAP_MODULE_DIR=${LDAP_MODULE_DIR:-/usr/lib/ldap}

ldap_write_conf() {
    local s
    {
        for s in core cosine nis inetorgperson amavis; do
            [ -r "$LDAP_SCHEMA_DIR/$s.schema" ] ||
                fail "no $LDAP_SCHEMA_DIR/$s.schema (packages slapd, amavisd-new)"
            echo "include $LDAP_SCHEMA_DIR/$s.schema"
        done
        cat <<EOF
pidfile $LDAP_DIR/slapd.pid
argsfile $LDAP_DIR/slapd.args
EOF
        # Debian builds back_mdb as a module; a build with it inside has
        # no such file and needs no moduleload.
        if [ -e "$LDAP_MODULE_DIR/back_mdb.so" ]; then
            printf 'modulepath %s\nmoduleload back_mdb\n' "$LDAP_MODULE_DIR"
        fi
        cat <<EOF
database mdb
maxsize 67108864
suffix "$LDAP_BASE"
rootdn "$LDAP_BIND_DN"
rootpw $LDAP_BIND_PW
directory $LDAP_DIR/data
index objectClass eq
index mail eq
access to * by * read
EOF
    } >"$LDAP_DIR/slapd.conf"
}

ldap_ready() {
    timeout 5 ldapsearch -x -LLL -H "$LDAP_URI" -b "" -s base namingContexts >/dev/null 2>&1
}

ldap_spawn() {
    e2e_spawn "$E2E_TMP/slapd.log" "$LDAP_SLAPD" -d 0 -f "$LDAP_DIR/slapd.conf" -h "$LDAP_URI/"
    LDAP_PID=$E2E_SPAWNED_PID
    E2E_SINK_PIDS+=("$LDAP_PID")
    wait_for 30 ldap_ready || fail "slapd does not answer on $LDAP_URI (see $E2E_TMP/slapd.log)"
}

start_ldap() {
    local out
    need_cmd ldapadd ldapsearch slaptest
    [ -x "$LDAP_SLAPD" ] || fail "no $LDAP_SLAPD (package slapd)"
    LDAP_DIR=$E2E_TMP/ldap
    mkdir -p "$LDAP_DIR/data"
    ldap_write_conf
    out=$(timeout 20 slaptest -u -f "$LDAP_DIR/slapd.conf" 2>&1) ||
        { echo "$out" >&2; fail "slapd.conf does not load (slaptest)"; }
    LDAP_PORT=$(free_port)
    LDAP_URI=ldap://127.0.0.1:$LDAP_PORT
    ldap_spawn
    ldap_add_ldif - <<EOF >/dev/null
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
dc: example
o: example
EOF
    say "slapd started (pid $LDAP_PID, $LDAP_URI), $LDAP_BASE with amavis.schema"
}

ldap_gone() { ! kill -0 "$LDAP_PID" 2>/dev/null; }

stop_ldap() {
    [ -n "$LDAP_PID" ] || return 0
    kill -INT "$LDAP_PID" 2>/dev/null || true
    wait_for 30 ldap_gone || fail "slapd does not stop"
    wait "$LDAP_PID" 2>/dev/null || true
    say "slapd stopped (pid $LDAP_PID)"
    LDAP_PID=
}

restart_ldap() {
    ldap_spawn
    say "slapd started again (pid $LDAP_PID)"
}

# ldap_add_ldif FILE: the entries of FILE ("-": stdin) added as the rootdn.
ldap_add_ldif() {
    local from=(-f "$1")
    [ "$1" != - ] || from=()
    timeout 20 ldapadd -x -H "$LDAP_URI" -D "$LDAP_BIND_DN" -w "$LDAP_BIND_PW" "${from[@]}" ||
        fail "ldapadd of $1 failed"
}
