#!/usr/bin/env bash
# ledger_ab.sh - what the exactly-once ledger costs (docs/benchmarks.md):
# `sluice all` without and with redis.url, alternating, in one run.
#
# SYNOPSIS
#   tests/bench/ledger_ab.sh [PAIRS [N [SESSIONS]]]    (as root; not a ctest test)
#
# WHAT IT RUNS
#   A private redis-server and one smtp-sink (the reinjection target), then
#   PAIRS times (default 5): `sluice all` without Redis, then with
#   redis.url (dedup.enabled auto = on), each fresh, each fed
#   smtp-source -L -s SESSIONS -d -m N -l 4096 (default 6000 messages, 4
#   sessions) after 500 untimed ones. Runs alternate so that a swing of the
#   shared machine's load hits both sides alike; only their ratio counts.
#   Per run: msg/s, and CPU per message (user + system, over the timed
#   run) of sluice and of Redis. At the end: the mean of each side and the
#   ratio, and the ratio of each pair with its median. No scanner runs:
#   this is the ledger against sluice's fastest path, where its cost shows
#   most (with clamd or spamd it is within the noise, docs/benchmarks.md).
#
#   LEDGER_AB_BASE=/path/to/an/older/sluice adds a third side to every
#   round, "base": that binary with the same Redis, so a change to the
#   ledger is measured against its predecessor in the same run.
#
#   CURVE is not involved: `sluice all` links its roles over inproc; the
#   tcp/CURVE cost is measured by tests/bench/cluster_bench.sh.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

PAIRS=${1:-5}
N=${2:-6000}
S=${3:-4}
case $PAIRS$N$S in *[!0-9]*) echo "usage: $0 [PAIRS [N [SESSIONS]]]" >&2; exit 2 ;; esac

e2e_init $((120 + PAIRS * 2 * (N / 500 + 30)))
need_root
need_cmd smtp-source smtp-sink redis-server redis-cli

sink_port=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink_port" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink_port" 10 || fail "smtp-sink does not listen on :$sink_port"
redis_port=$(free_port)
e2e_spawn "$E2E_TMP/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --protected-mode no
redis_pid=$E2E_SPAWNED_PID
E2E_SINK_PIDS+=("$redis_pid") # stopped with the sinks at the end
wait_port 127.0.0.1 "$redis_port" 10 || fail "redis-server does not listen on :$redis_port"
port=$(free_port)

BASE=${LEDGER_AB_BASE:-}
if [ -n "$BASE" ]; then
    [ -x "$BASE" ] || fail "LEDGER_AB_BASE=$BASE is not an executable"
    printf '#!/bin/sh\nexec %q -o security.user=root "$@"\n' "$BASE" >"$E2E_TMP/base-as-root"
    chmod 755 "$E2E_TMP/base-as-root"
fi
declare -a RATES_PLAIN=() RATES_LEDGER=() RATES_BASE=()
run_one() {
    local side=$1 extra=() t0 t1 s0 s1 r0 r1 rate child bin=$SLUICE_BIN
    [ "$side" != plain ] && extra=(-o "redis.url=redis://127.0.0.1:$redis_port")
    [ "$side" = base ] && SLUICE_BIN=$E2E_TMP/base-as-root
    # -F: one process (no master), so its CPU is the filter's
    start_sluice -F -o "frontend.listen=127.0.0.1:$port" \
        -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=20 \
        "${extra[@]}"
    child=$E2E_SLUICE_PID
    SLUICE_BIN=$bin
    timeout 120 smtp-source -L -s "$S" -d -m 500 -l 4096 -f bench@bench.test -t warm@bench.test \
        "127.0.0.1:$port" >/dev/null 2>&1 || true
    s0=$(cpu_ticks "$child")
    r0=$(cpu_ticks "$redis_pid")
    t0=$(now_us)
    bench_feed "$side" "$port" "$S" "$N"
    t1=$(now_us)
    s1=$(cpu_ticks "$child")
    r1=$(cpu_ticks "$redis_pid")
    stop_sluice >/dev/null || true
    rate=$(awk -v n="$N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    say "$side: $N messages in $(((t1 - t0) / 1000)) ms = $rate msg/s; CPU per message: sluice $(us_per_msg $((s1 - s0)) "$N") us, redis $(us_per_msg $((r1 - r0)) "$N") us"
    case $side in
    ledger) RATES_LEDGER+=("$rate") ;;
    base) RATES_BASE+=("$rate") ;;
    *) RATES_PLAIN+=("$rate") ;;
    esac
}

say "$PAIRS pairs, $N messages each, $S sessions, 4 KiB, $(nproc) CPUs"
for _ in $(seq 1 "$PAIRS"); do
    run_one plain
    run_one ledger
    [ -z "$BASE" ] || run_one base
done
python3 - "${RATES_PLAIN[*]}" "${RATES_LEDGER[*]}" "${RATES_BASE[*]}" <<'EOF'
import sys, statistics
a = [float(x) for x in sys.argv[1].split()]
for name, arg in (("with", sys.argv[2]), ("base (LEDGER_AB_BASE) with", sys.argv[3])):
    b = [float(x) for x in arg.split()]
    if not b:
        continue
    pairs = [y / x for x, y in zip(a, b)]
    print("without ledger: mean %.0f msg/s; %s: mean %.0f msg/s; ratio of means %.3f" %
          (statistics.mean(a), name, statistics.mean(b), statistics.mean(b) / statistics.mean(a)))
    print("  ratio per round: %s; median %.3f" %
          (", ".join("%.2f" % p for p in pairs), statistics.median(pairs)))
EOF
keys=$(timeout 5 redis-cli -p "$redis_port" DBSIZE 2>/dev/null || echo 0)
say "ledger keys in Redis after the runs: $keys"
# one per message of the ledger side at least: it really used the ledger
[ "$keys" -ge $((PAIRS * N)) ] || fail "Redis holds $keys keys, fewer than the $((PAIRS * N)) messages of the ledger side"
