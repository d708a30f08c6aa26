#!/usr/bin/env bash
# binary_ab.sh - two sluice binaries side by side: does a change cost
# throughput or latency? (docs/benchmarks.md)
#
# SYNOPSIS
#   tests/bench/binary_ab.sh OLD_SLUICE [ROUNDS [N]]    (as root; not a ctest test)
#
# WHAT IT RUNS
#   One smtp-sink (the reinjection target), then ROUNDS times (default 5)
#   for each side, old then new, alternating so that a swing of the shared
#   machine's load hits both alike: `sluice all` with no scanner, fresh,
#   origins.default.concurrency=20, fed
#     smtp-source -L -s 4 -d -m N -l 4096    (default N 4000)
#     smtp-source -L -s 20 -d -m N -l 4096
#   after 300 untimed messages, then the one-session latency client
#   (tests/bench/lmtp_latency: N/4 messages one after the other on one LMTP
#   connection, p50). At the end, per measure: the mean of each side, the
#   ratio new/old of the means and the median of the per-round ratios.
#   The new side is SLUICE_BIN (default build/sluice).
#
#   A ratio is only worth something inside one run: absolute figures swing
#   by up to 50% between runs on a shared machine.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

OLD=${1:-}
ROUNDS=${2:-5}
N=${3:-4000}
[ -n "$OLD" ] && [ -x "$OLD" ] || { echo "usage: $0 OLD_SLUICE [ROUNDS [N]]" >&2; exit 2; }
case $ROUNDS$N in *[!0-9]*) echo "usage: $0 OLD_SLUICE [ROUNDS [N]]" >&2; exit 2 ;; esac
LAT_N=$((N / 4))

e2e_init $((120 + ROUNDS * 2 * (N / 100 + 60)))
need_root
need_cmd smtp-source smtp-sink
LMTP_LATENCY=${LMTP_LATENCY:-$(dirname "$SLUICE_BIN_REAL")/tests/lmtp_latency}
[ -x "$LMTP_LATENCY" ] || fail "no latency client at $LMTP_LATENCY (build the tests first)"

sink_port=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink_port" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink_port" 10 || fail "smtp-sink does not listen on :$sink_port"
port=$(free_port)
printf '#!/bin/sh\nexec %q -o security.user=root "$@"\n' "$OLD" >"$E2E_TMP/old-as-root"
chmod 755 "$E2E_TMP/old-as-root"
NEW_BIN=$SLUICE_BIN

declare -A R=()   # R[side,measure] = "v1 v2 ..."

# throughput SIDE SESSIONS: one timed smtp-source run; appends msg/s.
throughput() {
    local side=$1 s=$2 t0 t1
    t0=$(now_us)
    timeout 300 smtp-source -L -s "$s" -d -m "$N" -l 4096 -f bench@bench.test -t rcpt@bench.test \
        "127.0.0.1:$port" >"$E2E_TMP/source.log" 2>&1 ||
        fail "$side: smtp-source -s $s failed: $(head -c 300 "$E2E_TMP/source.log")"
    [ ! -s "$E2E_TMP/source.log" ] || fail "$side: smtp-source: $(head -c 300 "$E2E_TMP/source.log")"
    t1=$(now_us)
    R[$side,s$s]+=" $(awk -v n="$N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')"
}

run_side() {
    local side=$1 line p50
    [ "$side" = old ] && SLUICE_BIN=$E2E_TMP/old-as-root
    start_sluice -F -o "frontend.listen=127.0.0.1:$port" \
        -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=20
    SLUICE_BIN=$NEW_BIN
    timeout 120 smtp-source -L -s 4 -d -m 300 -l 4096 -f bench@bench.test -t warm@bench.test \
        "127.0.0.1:$port" >/dev/null 2>&1 || true
    throughput "$side" 4
    throughput "$side" 20
    line=$(timeout 120 "$LMTP_LATENCY" 127.0.0.1 "$port" "$LAT_N" 4096 2>"$E2E_TMP/latency.err") ||
        fail "$side: latency client failed: $(cat "$E2E_TMP/latency.err")"
    p50=$(awk -v l="$line" 'BEGIN { match(l, /p50_us=[0-9]+/); print substr(l, RSTART + 7, RLENGTH - 7) }')
    [ -n "$p50" ] || fail "$side: no p50 in the latency client's output: $line"
    R[$side,p50]+=" $p50"
    stop_sluice >/dev/null || true
    say "$side: 4 sessions ${R[$side,s4]##* } msg/s, 20 sessions ${R[$side,s20]##* } msg/s, 1 session p50 ${p50} us"
}

say "$ROUNDS rounds, $N messages per throughput run, $LAT_N for latency, 4 KiB, $(nproc) CPUs"
say "old: $OLD; new: $NEW_BIN"
for _ in $(seq 1 "$ROUNDS"); do
    run_side old
    run_side new
done
python3 - "${R[old,s4]}" "${R[new,s4]}" "${R[old,s20]}" "${R[new,s20]}" \
    "${R[old,p50]}" "${R[new,p50]}" <<'EOF'
import sys, statistics
def series(i):
    return [float(x) for x in sys.argv[i].split()]
for name, i, better in (("4 sessions, msg/s", 1, "higher"), ("20 sessions, msg/s", 3, "higher"),
                        ("1 session, p50 latency us", 5, "lower")):
    old, new = series(i), series(i + 1)
    per = [n / o for o, n in zip(old, new)]
    print("%-28s old mean %8.0f  new mean %8.0f  new/old %.3f (median of rounds %.3f; %s is better)"
          % (name, statistics.mean(old), statistics.mean(new), statistics.mean(new) / statistics.mean(old),
             statistics.median(per), better))
EOF
