# shellcheck shell=bash
# ledger_lib.sh - helpers for the exactly-once tests (t_exactly_once_*.sh),
# on top of lib.sh: a private redis-server, per-mailbox copy counts, and
# edits of the Postfix instance's master.cf options.
#
#   start_redis             redis-server on a free loopback port; sets
#                           REDIS_PORT, REDIS_URL, REDIS_PID
#   redis_cmd ARGS...       redis-cli against it
#   stop_redis              SIGTERM, wait
#   mbox_count_msgid RCPT MSGID
#                           copies of <MSGID> in RCPT's Maildir (user@ has
#                           its own; any other address of e2e.test goes to
#                           the catch-all)
#   pf_master_opt OLD NEW   replace an "-o OLD" option line in master.cf
#                           with "-o NEW" and reload Postfix
#   wait_sluice_dead SECS   the frontend killed itself (test hook)
#   ledger_fields PREFIX    fields of every ledger key whose value starts
#                           with PREFIX (pending:, done:)
#
# shellcheck source=lib.sh

REDIS_PORT=
REDIS_URL=
REDIS_PID=

start_redis() {
    need_cmd redis-server redis-cli
    REDIS_PORT=$(free_port)
    e2e_spawn "$E2E_TMP/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save '' --appendonly no --daemonize no --protected-mode no
    REDIS_PID=$E2E_SPAWNED_PID
    wait_port 127.0.0.1 "$REDIS_PORT" 10 || fail "redis-server does not listen on :$REDIS_PORT"
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT
    say "redis started (pid $REDIS_PID, $REDIS_URL)"
}

redis_cmd() { timeout 5 redis-cli -p "$REDIS_PORT" "$@"; }

ledger_fields() {
    local k n=0
    for k in $(redis_cmd --scan --pattern 'sluice:ledger:*'); do
        n=$((n + $(redis_cmd HVALS "$k" | { grep -c "^$1" || true; })))
    done
    echo "$n"
}

stop_redis() {
    [ -n "$REDIS_PID" ] || return 0
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    say "redis stopped (pid $REDIS_PID)"
    REDIS_PID=
}

mbox_count_msgid() {
    local rcpt=$1 msgid=$2 dir f n=0
    if [ "$rcpt" = "$E2E_RCPT" ]; then dir=$PF_VMAIL/e2e.test/user; else dir=$PF_VMAIL/e2e.test/catchall; fi
    while IFS= read -r f; do
        grep -qiF "Message-Id: <$msgid>" "$f" && n=$((n + 1))
    done < <(find "$dir" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null)
    echo "$n"
}

pf_master_opt() {
    local old=$1 new=$2
    grep -qF -- "-o $old" "$PF_CONF/master.cf" || fail "master.cf has no \"-o $old\""
    sed -i "s|-o $old\$|-o $new|" "$PF_CONF/master.cf"
    pf_reload
    say "Postfix master.cf: -o $old -> -o $new (reloaded)"
}

wait_sluice_dead() {
    local rc=0
    wait_for "$1" eval '! sluice_alive' || return 1
    wait "$E2E_SLUICE_PID" 2>/dev/null || rc=$?
    say "sluice is gone (status $rc)"
    E2E_SLUICE_PID=
}

# copies_total MSGID RCPT...: sum of copies over the recipients
copies_total() {
    local msgid=$1 r t=0
    shift
    for r in "$@"; do t=$((t + $(mbox_count_msgid "$r" "$msgid"))); done
    echo "$t"
}
copies_at_least() { [ "$(copies_total "$@")" -ge "$COPIES_WANTED" ]; }
