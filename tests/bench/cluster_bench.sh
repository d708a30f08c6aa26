#!/usr/bin/env bash
# cluster_bench.sh - sluice as a cluster of processes over tcp:// against
# `sluice all`, and worker scaling with a slow scan (docs/cluster.md,
# "Performance"). Everything on loopback, in one run (absolute figures
# swing between runs on shared machines: compare within a run).
#
# SYNOPSIS
#   tests/bench/cluster_bench.sh [N]        (as root; not a ctest test)
#
# WHAT IT RUNS
#   1. throughput: smtp-source -L -s 20 -m N -l 4096 through
#        (a) `sluice all` with 4 worker threads (inproc://), and
#        (b) frontend, broker and two worker processes of 2 threads each,
#            separate processes over tcp://127.0.0.1, CURVE-encrypted, and
#        (p) the same cluster with security.mode: plain (the cost of CURVE),
#      both reinjecting into smtp-sink; plus (y) smtp-source straight into
#      smtp-sink as the yardstick.
#   2. latency: one LMTP session, sequential messages (lmtp_latency), p50
#      and p99 for (y), (a) and (b): (a) - (y) is what the filter adds in
#      one process, (b) - (a) what the tcp:// hops between nodes add
#      (frontend -> broker -> worker and back: four loopback crossings).
#   3. worker scaling: SLUICE_TEST_WORKER_DELAY_MS=20 (a 20 ms scan), 1, 2, 4
#      and 8 worker processes of one thread each behind one broker, 16
#      sessions; rate and rate / (workers x rate of one worker).
#
# ENVIRONMENT
#   SLUICE_BIN     the sluice binary (default: build/sluice)
#   LMTP_LATENCY   the latency client (default: next to SLUICE_BIN, tests/lmtp_latency)
#   BENCH_N        messages per throughput run (default 3000; or $1)
#   BENCH_LAT_N    sequential messages per latency run (default 1000)
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"

BENCH_N=${1:-${BENCH_N:-3000}}
BENCH_LAT_N=${BENCH_LAT_N:-1000}
LMTP_LATENCY=${LMTP_LATENCY:-$(dirname "$SLUICE_BIN")/tests/lmtp_latency}

e2e_init 1500
need_root
need_cmd smtp-source smtp-sink
[ -x "$LMTP_LATENCY" ] || fail "no latency client at $LMTP_LATENCY (cmake --build ... --target lmtp_latency)"
cl_trap
cl_keys_init

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not start"
ysink=$(free_port)
e2e_spawn "$E2E_TMP/ysink.log" smtp-sink -u nobody -L "127.0.0.1:$ysink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$ysink" 10 || fail "smtp-sink -L does not start"
say "smtp-sink on :$sink (reinjection, SMTP), smtp-sink -L on :$ysink (yardstick, LMTP)"

# rate PORT N SESSIONS: msg/s of smtp-source -L into PORT.
rate() {
    local port=$1 n=$2 s=$3 t0 t1
    timeout 60 smtp-source -L -s "$s" -m 50 -l 4096 "127.0.0.1:$port" >/dev/null 2>&1 ||
        fail "warm-up into :$port failed"
    t0=$(date +%s.%N)
    timeout 300 smtp-source -L -s "$s" -m "$n" -l 4096 "127.0.0.1:$port" >"$E2E_TMP/src.log" 2>&1 ||
        fail "smtp-source into :$port failed: $(tail -n 2 "$E2E_TMP/src.log")"
    t1=$(date +%s.%N)
    awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

# latency PORT: "p50 p99" in ms over BENCH_LAT_N sequential messages.
latency() {
    "$LMTP_LATENCY" 127.0.0.1 "$1" "$BENCH_LAT_N" 4096 >"$E2E_TMP/lat.log" 2>&1 ||
        fail "lmtp_latency into :$1 failed: $(cat "$E2E_TMP/lat.log")"
    sed -n 's/.*p50_us=\([0-9]*\).*p99_us=\([0-9]*\).*/\1 \2/p' "$E2E_TMP/lat.log" |
        awk '{ printf "%.2f %.2f\n", $1 / 1000, $2 / 1000 }'
}

common=(-o log.target=stderr -o log.level=warning -o origins.default.concurrency=20
        -o "origins.default.reinject=127.0.0.1:$sink")

# ---- (y) yardstick
y_rate=$(rate "$ysink" "$BENCH_N" 20)
read -r y50 y99 < <(latency "$ysink")
say "yardstick: $y_rate msg/s; latency p50 $y50 ms, p99 $y99 ms"

# ---- (a) sluice all
p=$(free_port)
cl_spawn all "$SLUICE_BIN" all "${common[@]}" -o "frontend.listen=127.0.0.1:$p" -o workers.count=4
wait_port 127.0.0.1 "$p" 10 || fail "sluice all does not listen"
sleep 1
a_rate=$(rate "$p" "$BENCH_N" 20)
read -r a50 a99 < <(latency "$p")
cl_kill all TERM
say "sluice all (4 worker threads): $a_rate msg/s; latency p50 $a50 ms, p99 $a99 ms"

# ---- (p) then (b): the cluster over tcp://, plain then CURVE (same run)
# cluster_run: CR_RATE, CR_P50, CR_P99 of the cluster in mode $CL_SECURITY.
cluster_run() {
    local p sec=()
    cl_start_broker b1
    cl_start_worker w1 2
    cl_start_worker w2 2
    p=$(free_port)
    mapfile -t sec < <(cl_security_args frontend)
    cl_spawn fe "$SLUICE_BIN" frontend "${common[@]}" "${sec[@]}" -o "frontend.listen=127.0.0.1:$p" \
        -o "broker.endpoints=$(cl_endpoints)"
    wait_port 127.0.0.1 "$p" 10 || fail "frontend does not listen"
    sleep 1.5
    CR_RATE=$(rate "$p" "$BENCH_N" 20)
    read -r CR_P50 CR_P99 < <(latency "$p")
    cl_kill fe TERM
    cl_kill w1 TERM
    cl_kill w2 TERM
    cl_kill b1 TERM
}
CL_SECURITY=plain
cluster_run
pl_rate=$CR_RATE pl50=$CR_P50 pl99=$CR_P99
say "cluster, security.mode plain: $pl_rate msg/s; latency p50 $pl50 ms, p99 $pl99 ms"
CL_SECURITY=curve
cluster_run
b_rate=$CR_RATE b50=$CR_P50 b99=$CR_P99
say "cluster (frontend, broker, 2 workers x 2 threads, tcp://, CURVE): $b_rate msg/s; latency p50 $b50 ms, p99 $b99 ms"
say "CURVE costs $(awk -v c="$b_rate" -v p="$pl_rate" 'BEGIN { printf "%.1f", 100 * (1 - c / p) }')% of the plain rate"
cl_start_broker b1

# ---- worker scaling, 20 ms scan
declare -A SC=()
p=$(free_port)
mapfile -t sec < <(cl_security_args frontend)
cl_spawn fe2 "$SLUICE_BIN" frontend -o log.target=stderr -o log.level=warning "${sec[@]}" \
    -o origins.default.concurrency=32 -o "origins.default.reinject=127.0.0.1:$sink" \
    -o "frontend.listen=127.0.0.1:$p" -o "broker.endpoints=$(cl_endpoints)"
wait_port 127.0.0.1 "$p" 10 || fail "frontend does not listen"
for n in 1 2 4 8; do
    for i in $(seq 1 "$n"); do
        SLUICE_TEST_WORKER_DELAY_MS=20 cl_start_worker "s$i" 1 >/dev/null
    done
    sleep 2
    SC[$n]=$(rate "$p" $((150 * n)) 16)
    for i in $(seq 1 "$n"); do cl_kill "s$i" TERM >/dev/null; done
    sleep 1
done
say "worker scaling with a 20 ms scan (one thread per worker process, 16 sessions):"
for n in 1 2 4 8; do
    eff=$(awk -v r="${SC[$n]}" -v one="${SC[1]}" -v n="$n" 'BEGIN { printf "%.2f", r / (n * one) }')
    say "  $n worker(s): ${SC[$n]} msg/s, ${eff}x of linear (ideal $((50 * n)) msg/s)"
done
echo
echo "| run | msg/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
echo "| smtp-source -> smtp-sink (yardstick) | $y_rate | $y50 | $y99 |"
echo "| sluice all, 4 worker threads, inproc:// | $a_rate | $a50 | $a99 |"
echo "| frontend + broker + 2 workers (2 threads), tcp://, plain | $pl_rate | $pl50 | $pl99 |"
echo "| frontend + broker + 2 workers (2 threads), tcp://, CURVE | $b_rate | $b50 | $b99 |"
echo
echo "| workers (20 ms scan) | msg/s | x linear |"
echo "|---|---|---|"
for n in 1 2 4 8; do
    echo "| $n | ${SC[$n]} | $(awk -v r="${SC[$n]}" -v one="${SC[1]}" -v n="$n" 'BEGIN { printf "%.2f", r / (n * one) }') |"
done
