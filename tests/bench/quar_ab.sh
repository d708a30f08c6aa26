#!/usr/bin/env bash
# quar_ab.sh - what the quarantine costs clean mail (docs/benchmarks.md,
# docs/quarantine.md): `sluice all` scanning with clamd, quarantine off and
# on, alternating, in one run.
#
# SYNOPSIS
#   tests/bench/quar_ab.sh [PAIRS [N [SESSIONS]]]    (as root)
#
# WHAT IT RUNS
#   A private clamd (EICAR signature only) and one smtp-sink (the
#   reinjection target), then PAIRS times (default 3): `sluice all` with
#   scanners.clamd.servers, without quarantine.store ("off") and with
#   quarantine.store=local:DIR, policy.virus_admin and
#   policy.warn_virus_recip ("on"), each fresh, each fed
#   smtp-source -L -s SESSIONS -d -m N -l 4096 (default 2000 messages, 4
#   sessions) of clean mail after 200 untimed ones. Runs alternate (off
#   first in odd rounds, on first in even ones) so that a swing of the
#   shared machine's load hits both sides alike; only their ratio
#   counts. At the end: each side's mean, the ratio of the means (on /
#   off), the ratio of each pair with its median, and sluice's CPU time on
#   against off (less swayed by a loaded machine). The "on" side
#   must have opened its store and kept nothing (clean mail); no speed is
#   asserted.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=../e2e/scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/scan_lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

PAIRS=${1:-3}
N=${2:-2000}
S=${3:-4}
case $PAIRS$N$S in *[!0-9]*) echo "usage: $0 [PAIRS [N [SESSIONS]]]" >&2; exit 2 ;; esac

e2e_init $((120 + PAIRS * 2 * (N / 100 + 30)))
need_root
need_cmd smtp-source smtp-sink clamd

start_clamd
sink_port=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink_port" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink_port" 10 || fail "smtp-sink does not listen on :$sink_port"
port=$(free_port)
Q=$E2E_TMP/quarantine

declare -a RATES_OFF=() RATES_ON=() CPU_OFF=() CPU_ON=()
run_one() {
    local side=$1 extra=() t0 t1 s0 s1 rate child
    [ "$side" = on ] && extra=(-o "quarantine.store=local:$Q" -o policy.virus_admin=admin@bench.test
        -o policy.warn_virus_recip=yes)
    start_sluice -F -o "frontend.listen=127.0.0.1:$port" \
        -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=8 \
        -o "scanners.clamd.servers=unix:$CLAMD_SOCK" "${extra[@]}"
    child=$E2E_SLUICE_PID
    timeout 120 smtp-source -L -s "$S" -d -m 200 -l 4096 -f bench@bench.test -t warm@bench.test \
        "127.0.0.1:$port" >/dev/null 2>&1 || true
    s0=$(cpu_ticks "$child")
    t0=$(now_us)
    timeout 600 smtp-source -L -s "$S" -d -m "$N" -l 4096 -f bench@bench.test -t rcpt@bench.test \
        "127.0.0.1:$port" >"$E2E_TMP/source.log" 2>&1 || fail "$side: smtp-source failed: $(head -c 300 "$E2E_TMP/source.log")"
    [ ! -s "$E2E_TMP/source.log" ] || fail "$side: smtp-source: $(head -c 300 "$E2E_TMP/source.log")"
    t1=$(now_us)
    s1=$(cpu_ticks "$child")
    stop_sluice >/dev/null || true
    rate=$(awk -v n="$N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    say "quarantine $side: $N clean messages through clamd in $(((t1 - t0) / 1000)) ms = $rate msg/s; sluice CPU per message $(us_per_msg $((s1 - s0)) "$N") us"
    if [ "$side" = on ]; then RATES_ON+=("$rate"); else RATES_OFF+=("$rate"); fi
    if [ "$side" = on ]; then CPU_ON+=($((s1 - s0))); else CPU_OFF+=($((s1 - s0))); fi
}

say "$PAIRS pairs, $N messages each, $S sessions, 4 KiB, clamd, $(nproc) CPUs"
for i in $(seq 1 "$PAIRS"); do
    # ABBA: each side goes first every other round, so that an order effect
    # (a warmer clamd, the page cache) does not favour one of them
    if [ $((i % 2)) = 1 ]; then run_one off; run_one on; else run_one on; run_one off; fi
done
python3 - "${RATES_OFF[*]}" "${RATES_ON[*]}" "${CPU_OFF[*]}" "${CPU_ON[*]}" <<'PY'
import sys, statistics
off, on, coff, con = ([float(x) for x in a.split()] for a in sys.argv[1:5])
pairs = [y / x for x, y in zip(off, on)]
print("quarantine off: mean %.0f msg/s; on: mean %.0f msg/s; ratio of means (on / off) %.3f" %
      (statistics.mean(off), statistics.mean(on), statistics.mean(on) / statistics.mean(off)))
print("  ratio per round: %s; median %.3f" % (", ".join("%.2f" % p for p in pairs), statistics.median(pairs)))
print("  sluice CPU (on / off): %.3f" % (sum(con) / sum(coff) if sum(coff) else float("nan")))
PY
# the "on" side had its store, and clean mail was not kept
[ "$(sluice_log_count "quarantine: local:$(ere_quote "$Q")")" -eq "$PAIRS" ] ||
    fail "the quarantine side did not open its store every time"
[ "$(find "$Q" -type f 2>/dev/null | grep -c . || true)" -eq 0 ] || fail "clean mail was quarantined"
[ "$(sluice_log_count 'Passed CLEAN')" -ge $((PAIRS * 2 * N)) ] || fail "not every message was scanned and passed"
