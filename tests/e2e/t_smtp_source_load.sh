#!/usr/bin/env bash
# t_smtp_source_load.sh - 2 x 1000 messages from smtp-source through
# `sluice all` into smtp-sink, 4 LMTP sessions in parallel, no Postfix.
#
# Proves: under parallel load sluice neither loses nor duplicates mail, and
# answers every message positively. Round 1 opens one LMTP session per
# message (smtp-source's default), round 2 sends every message of a session
# over one connection (-d), as Postfix's LMTP client does with connection
# caching. smtp-source -N gives each message its own recipient
# (<N>rcptR@e2e.test), so every sink dump can be matched to one message:
# the test checks 1000 dumps per round and 1000 distinct recipients, each
# dump with sluice's Received header, and 1000 "Passed CLEAN" log lines.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 175
need_root
need_cmd smtp-source smtp-sink

COUNT=${E2E_LOAD_COUNT:-1000}
SESSIONS=4
sink_port=$(free_port)
port=$(free_port)
sink_dir=$E2E_TMP/sink

start_sink "$sink_port" "$sink_dir"
start_sluice -o "frontend.listen=127.0.0.1:$port" \
    -o "origins.default.reinject=127.0.0.1:$sink_port" \
    -o "origins.default.concurrency=$SESSIONS"

# run_round ROUND EXTRA-SMTP-SOURCE-ARGS...: send COUNT messages, check them.
run_round() {
    local round=$1 rc=0 t0 t1 ms out before after n
    shift
    out=$E2E_TMP/smtp-source.$round.log
    before=$(sink_count "$sink_dir")
    t0=$(date +%s%N)
    timeout 75 smtp-source -L -N -s "$SESSIONS" -m "$COUNT" -l 4096 "$@" \
        -f "sender@$E2E_DOMAIN" -t "rcpt$round@$E2E_DOMAIN" "127.0.0.1:$port" >"$out" 2>&1 || rc=$?
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    if [ "$rc" -ne 0 ] || [ -s "$out" ]; then
        tail -n 20 "$out" >&2
        [ "$rc" -eq 124 ] && fail "round $round: smtp-source did not finish $COUNT messages in 75 s ($(($(sink_count "$sink_dir") - before)) reached the sink)"
        fail "round $round: smtp-source exited $rc or reported errors (above)"
    fi
    ok "round $round: smtp-source -L -N -s $SESSIONS -m $COUNT -l 4096${*:+ $*} finished without errors in $ms ms ($((COUNT * 1000 / (ms > 0 ? ms : 1))) msg/s)"

    # Every message was answered 250 after the sink took it; allow a moment
    # for smtp-sink to close its last dump files.
    sink_has_all() { [ "$(sink_count "$sink_dir")" -ge $((before + COUNT)) ]; }
    wait_for 10 sink_has_all || true
    sleep 1
    after=$(sink_count "$sink_dir")
    [ $((after - before)) -eq "$COUNT" ] || fail "round $round: $((after - before)) messages reached smtp-sink, expected exactly $COUNT"
    ok "round $round: exactly $COUNT messages reached smtp-sink"

    n=$(grep -h '^X-Rcpt-Args:' "$sink_dir"/m.* | grep -oE "<[0-9]+rcpt$round@" | sort -u | wc -l)
    [ "$n" -eq "$COUNT" ] || fail "round $round: $n distinct recipients among the dumps, expected $COUNT (lost or duplicated messages)"
    ok "round $round: $COUNT distinct recipients, so each message arrived exactly once"
}

run_round 1
run_round 2 -d

total=$((2 * COUNT))
# sluice's Received header is folded; "(sluice VERSION, port N)" sits on a
# continuation line (smtp-sink's own header says "(smtp-sink)").
n=$(grep -lE '\(sluice [^)]*\)' "$sink_dir"/m.* | wc -l)
[ "$n" -eq "$total" ] || fail "$n of $total dumps carry sluice's Received header"
ok "all $total dumps carry sluice's Received header"
# no virus scanner here: no dump may claim a virus scan
n=$(grep -l '^X-Virus-Scanned:' "$sink_dir"/m.* | wc -l || true)
[ "$n" -eq 0 ] || fail "$n dumps carry X-Virus-Scanned although no virus scanner is configured"
ok "no dump carries X-Virus-Scanned (no virus scanner configured)"
n=$(sluice_log_count 'Passed CLEAN ')
[ "$n" -eq "$total" ] || fail "sluice logged $n \"Passed CLEAN\" lines, expected $total"
ok "sluice logged $total \"Passed CLEAN\" lines"
sluice_alive || fail "sluice died during the test"
rc=0
stop_sluice || rc=$?
if [ "$rc" -eq 0 ]; then
    ok "sluice exited with status 0 on SIGTERM"
else
    say "NOTE: sluice exited with status $rc on SIGTERM (not a failure of this test)"
fi
