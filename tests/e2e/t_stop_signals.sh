#!/usr/bin/env bash
# t_stop_signals.sh - SIGTERM to the whole process group (kill -TERM --
# -PGID, pkill, KillMode=control-group) is one stop request, not two.
#
# Proves (docs/operations.md, "Signals and exit status"): `sluice all` runs
# as a master and its child; a signal to the process group reaches the child
# twice, from the sender and passed on by the master. The master passes a
# stop on as its own signal, so the child counts requests, not copies:
#   (a) one group SIGTERM while a message is in the scan: the child stops
#       after the message in flight (it is answered 250 and reinjected),
#       logs no "stopping now", the master exits 0;
#   (b) the same with SIGTERM sent to the master and the child one by one,
#       as pkill does;
#   (c) a second group SIGTERM while the message is still in flight: the
#       child stops at once; nothing was acknowledged, nothing reinjected
#       (Postfix would keep the message and retry), the master exits 0.
# The scan is slowed with the test-only SLUICE_TEST_WORKER_DELAY_MS, so the
# message is certainly in flight when the signals land.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd smtp-source smtp-sink ss

sink_port=$(free_port)
start_sink "$sink_port" "$E2E_TMP/sink"
port=$(free_port)

child_of() { awk '{ print $1 }' "/proc/$1/task/$1/children" 2>/dev/null || true; }
has_child() { [ -n "$(child_of "$E2E_SLUICE_PID")" ]; }
# an LMTP session to sluice is established (the message goes with it)
session_open() { [ -n "$(ss -Htn state established "( sport = :$port )" 2>/dev/null)" ]; }
sluice_exited() { ! kill -0 "$E2E_SLUICE_PID" 2>/dev/null; }
source_done() { ! kill -0 "$SRC_PID" 2>/dev/null; }

# run_case NAME HOW: start sluice all (master and child) with a 4 s scan,
# send one message, signal it HOW while the message is in the scan; sets
# SRC_RC (smtp-source's exit status), MASTER_RC, LOG (this case's lines).
run_case() {
    local name=$1 how=$2 master child lines_before
    lines_before=0
    [ ! -f "$E2E_TMP/sluice.log" ] || lines_before=$(wc -l <"$E2E_TMP/sluice.log")
    SLUICE_TEST_WORKER_DELAY_MS=4000 start_sluice -o "frontend.listen=127.0.0.1:$port" \
        -o "origins.default.reinject=127.0.0.1:$sink_port" -o log.level=info
    master=$E2E_SLUICE_PID
    wait_for 15 has_child || fail "$name: the master (pid $master) has no child"
    child=$(child_of "$master")
    timeout 60 smtp-source -L -s 1 -m 1 -l 2048 -f sender@e2e.test -t "rcpt-$name@e2e.test" \
        "127.0.0.1:$port" >"$E2E_TMP/source.$name.log" 2>&1 &
    SRC_PID=$!
    wait_for 15 session_open || fail "$name: no LMTP session to sluice"
    sleep 1 # the 2 KiB message is sent within this, and sits in the 4 s scan
    case $how in
    group) kill -TERM -- "-$master" ;;
    each) kill -TERM "$master" "$child" ;;
    group-twice) kill -TERM -- "-$master"; sleep 0.5; kill -TERM -- "-$master" ;;
    esac
    say "$name: SIGTERM sent ($how) with the message in flight"
    wait_for 30 sluice_exited || fail "$name: sluice did not exit within 30 s"
    MASTER_RC=0
    wait "$master" || MASTER_RC=$?
    E2E_SLUICE_PID=
    wait_for 30 source_done || fail "$name: smtp-source did not end"
    SRC_RC=0
    wait "$SRC_PID" || SRC_RC=$?
    LOG=$(tail -n +"$((lines_before + 1))" "$E2E_TMP/sluice.log")
}

sink_has() { grep -rqs "rcpt-$1@e2e.test" "$E2E_TMP/sink"; }

# ---- (a) and (b): one request, the message in flight finishes
for c in group each; do
    run_case "$c" "$c"
    [ "$MASTER_RC" -eq 0 ] || fail "$c: the master exited $MASTER_RC, expected 0"
    if [ "$SRC_RC" -ne 0 ] || [ -s "$E2E_TMP/source.$c.log" ]; then
        fail "$c: the message in flight was not answered 250: $(head -c 300 "$E2E_TMP/source.$c.log")"
    fi
    wait_for 10 sink_has "$c" || fail "$c: the message in flight was not reinjected"
    grep -qE "(Terminated|stop passed on by the master): stopping after the messages in flight" <<<"$LOG" ||
        fail "$c: no graceful stop in the log: $(grep -i stop <<<"$LOG")"
    if grep -q "stopping now" <<<"$LOG"; then
        fail "$c: one SIGTERM (two copies) stopped the child at once: $(grep -i stop <<<"$LOG")"
    fi
    ok "$c: one stop request: the message in flight was answered 250 and reinjected, master exit 0"
    # the master's copy was counted as the same request (unless it came
    # after the teardown had begun, when it is ignored)
    if grep -q "the same stop request again" <<<"$LOG"; then
        ok "$c: $(grep -oE "(Terminated|stop passed on by the master): the same stop request again.*" <<<"$LOG" | head -n 1)"
    fi
done

# ---- (c): a second request while the message is still in flight
run_case twice group-twice
[ "$MASTER_RC" -eq 0 ] || fail "twice: the master exited $MASTER_RC, expected 0"
grep -qE "(Terminated|stop passed on by the master) again: stopping now" <<<"$LOG" ||
    fail "twice: the second request did not stop the child at once: $(grep -i stop <<<"$LOG")"
[ "$SRC_RC" -ne 0 ] || fail "twice: smtp-source got an answer although the child stopped at once"
sleep 1
if sink_has twice; then
    fail "twice: the message was reinjected although the child stopped before answering"
fi
ok "twice: stopped at once, nothing acknowledged (smtp-source: $(head -c 120 "$E2E_TMP/source.twice.log")), nothing reinjected, master exit 0"
