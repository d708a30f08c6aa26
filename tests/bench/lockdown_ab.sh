#!/usr/bin/env bash
# lockdown_ab.sh - what CURVE and the exactly-once ledger cost together
# (target: at most 10%, docs/benchmarks.md): the cluster with both off and with both on,
# alternating, in one run.
#
# SYNOPSIS
#   tests/bench/lockdown_ab.sh [ROUNDS [N [SESSIONS]]]   (as root; not a ctest test)
#
# WHAT IT RUNS
#   One redis-server (the cluster's shared state, as in every cluster), one
#   smtp-sink (the reinjection target), and two clusters side by side, each
#   a broker, two worker processes of two threads and a frontend, separate
#   processes over tcp://127.0.0.1 as on separate machines:
#     open    security.mode: plain, dedup.enabled: no
#     locked  CURVE on every link (keys from sluice keygen, the broker's
#             allow-list), the ledger on (redis.url, dedup.enabled: yes)
#   Then ROUNDS times (default 5): smtp-source -L -s SESSIONS -d -m N
#   -l 4096 (default 3000 messages, 20 sessions) into the open cluster,
#   then into the locked one; the idle cluster only sends heartbeats.
#   Per run: msg/s, and the CPU per message (user + system) of that
#   cluster's frontend, broker and workers, and of Redis. At the end: the mean of each
#   side, the ratio of the means, the ratio of each round and its median.
#   No scanner runs by default: this is the pair against the cluster's
#   fastest path, where their cost shows most.
#
#   LOCKDOWN_SCAN=clamd makes the workers scan every message with a private
#   clamd (scan_lib.sh's: the EICAR signature only, so its own cost is
#   small) over its unix socket, as a content filter does.
#
#   LOCKDOWN_ONLY=curve or =ledger turns on only that one on the locked
#   side, to tell their costs apart.
#
#   LOCKDOWN_BASE=OLD_SLUICE compares two binaries instead: four clusters,
#   base-open and new-open (plain, no ledger), base-locked and new-locked
#   (CURVE and the ledger, or LOCKDOWN_ONLY's one), the new binary being
#   SLUICE_BIN; each round feeds all four, base and new alternating first.
#   At the end, per cluster: the mean msg/s and the mean CPU per message of
#   each role, and the ratios new/base.
#
#   tests/bench/ledger_ab.sh measures the ledger alone in `sluice all`
#   (one process: its roles are linked over inproc://, so CURVE has no part
#   there); docs/benchmarks.md has the figures of both.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"
# shellcheck source=../e2e/scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/scan_lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

ROUNDS=${1:-5}
N=${2:-3000}
S=${3:-20}
ONLY=${LOCKDOWN_ONLY:-}
SCAN=${LOCKDOWN_SCAN:-}
case $SCAN in "" | clamd) ;; *) echo "$0: LOCKDOWN_SCAN is clamd or empty" >&2; exit 2 ;; esac
case $ONLY in "" | curve | ledger) ;; *) echo "$0: LOCKDOWN_ONLY is curve or ledger" >&2; exit 2 ;; esac
case $ROUNDS$N$S in *[!0-9]*) echo "usage: $0 [ROUNDS [N [SESSIONS]]]" >&2; exit 2 ;; esac
BASE=${LOCKDOWN_BASE:-}
SIDES=(open locked)
if [ -n "$BASE" ]; then
    [ -x "$BASE" ] || { echo "$0: LOCKDOWN_BASE=$BASE is not an executable" >&2; exit 2; }
    SIDES=(base-open new-open base-locked new-locked)
fi

e2e_init $((180 + ROUNDS * ${#SIDES[@]} * (N / 300 + 20)))
need_root
need_cmd smtp-source smtp-sink redis-server redis-cli
[ -x "$SLUICE_BIN" ] || fail "SLUICE_BIN=$SLUICE_BIN is not an executable"
cl_trap
CL_SECURITY=curve
cl_keys_init
cl_start_redis
scan=()
if [ "$SCAN" = clamd ]; then
    start_clamd
    scan=(-o "scanners.clamd.servers=unix:$CLAMD_SOCK" -o scanners.clamd.max_size=0)
fi

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not listen on :$sink"

declare -A FE_PORT=()
# start_side SIDE: its broker, two workers and frontend (-F: one process
# each, so the pids below are the ones that work).
start_side() {
    local side=$1 bport fport sec=() opts=() name bin=$SLUICE_BIN
    CL_SECURITY=plain
    opts=(-o "redis.url=$CL_REDIS_URL" -o dedup.enabled=no)
    case $side in base-*) bin=$E2E_TMP/base-as-root ;; esac
    if [ "${side#*-}" = locked ]; then
        [ "$ONLY" = ledger ] || CL_SECURITY=curve
        [ "$ONLY" = curve ] || opts=(-o "redis.url=$CL_REDIS_URL" -o dedup.enabled=yes)
    fi
    bport=$(free_port)
    mapfile -t sec < <(cl_security_args broker)
    cl_spawn "$side-broker" "$bin" broker -o log.target=stderr -o log.level=warning \
        "${sec[@]}" -o "broker.listen=tcp://127.0.0.1:$bport"
    wait_port 127.0.0.1 "$bport" 10 || fail "$side: the broker does not listen on :$bport"
    for name in w1 w2; do
        mapfile -t sec < <(cl_security_args worker)
        cl_spawn "$side-$name" "$bin" worker -o log.target=stderr -o log.level=warning \
            "${sec[@]}" "${scan[@]}" -o "broker.endpoints=tcp://127.0.0.1:$bport" -o workers.count=2
    done
    fport=$(free_port)
    mapfile -t sec < <(cl_security_args frontend)
    cl_spawn "$side-frontend" "$bin" frontend -F -o log.target=stderr -o log.level=warning \
        "${sec[@]}" "${opts[@]}" -o "frontend.listen=127.0.0.1:$fport" \
        -o "broker.endpoints=tcp://127.0.0.1:$bport" \
        -o origins.default.concurrency=20 -o "origins.default.reinject=127.0.0.1:$sink"
    wait_port 127.0.0.1 "$fport" 10 || fail "$side: the frontend does not listen on :$fport"
    FE_PORT[$side]=$fport
    say "$side cluster: broker :$bport, workers w1 w2, frontend :$fport (security.mode $CL_SECURITY)"
}
if [ -n "$BASE" ]; then
    # as e2e_init's wrapper does for SLUICE_BIN
    printf '#!/bin/sh\nexec %q -o security.user=root "$@"\n' "$BASE" >"$E2E_TMP/base-as-root"
    chmod 755 "$E2E_TMP/base-as-root"
fi
for side in "${SIDES[@]}"; do start_side "$side"; done
CL_SECURITY=curve
sleep 2 # the workers' first heartbeats
for side in "${SIDES[@]}"; do
    timeout 120 smtp-source -L -s "$S" -d -m 300 -l 4096 -f bench@bench.test -t warm@bench.test \
        "127.0.0.1:${FE_PORT[$side]}" >"$E2E_TMP/warm.log" 2>&1 ||
        fail "$side: the warm-up failed: $(head -c 300 "$E2E_TMP/warm.log")"
    [ ! -s "$E2E_TMP/warm.log" ] || fail "$side: warm-up: $(head -c 300 "$E2E_TMP/warm.log")"
done
# ledger entries (the registry's keys come and go with the nodes' heartbeats)
ledger_keys() { cl_redis --scan --pattern 'sluice:ledger:*' | wc -l; }
keys_before=$(ledger_keys)

declare -a RATES_OPEN=() RATES_LOCKED=()
declare -A RES=()   # RES[side] = lines "rate frontend broker workers redis"
run_one() {
    local side=$1 t0 t1 f0 f1 b0 b1 w0 w1 r0 r1 c0=0 c1=0 rate
    f0=$(cpu_ticks "${CL_PID[$side-frontend]}")
    b0=$(cpu_ticks "${CL_PID[$side-broker]}")
    w0=$(cpu_ticks "${CL_PID[$side-w1]}" "${CL_PID[$side-w2]}")
    r0=$(cpu_ticks "${CL_PID[redis]}")
    [ -z "$SCAN" ] || c0=$(cpu_ticks "$CLAMD_PID")
    t0=$(now_us)
    timeout 300 smtp-source -L -s "$S" -d -m "$N" -l 4096 -f bench@bench.test -t rcpt@bench.test \
        "127.0.0.1:${FE_PORT[$side]}" >"$E2E_TMP/source.log" 2>&1 ||
        fail "$side: smtp-source failed: $(head -c 300 "$E2E_TMP/source.log")"
    [ ! -s "$E2E_TMP/source.log" ] || fail "$side: smtp-source: $(head -c 300 "$E2E_TMP/source.log")"
    t1=$(now_us)
    f1=$(cpu_ticks "${CL_PID[$side-frontend]}")
    b1=$(cpu_ticks "${CL_PID[$side-broker]}")
    w1=$(cpu_ticks "${CL_PID[$side-w1]}" "${CL_PID[$side-w2]}")
    r1=$(cpu_ticks "${CL_PID[redis]}")
    [ -z "$SCAN" ] || c1=$(cpu_ticks "$CLAMD_PID")
    rate=$(awk -v n="$N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    say "$side: $N messages in $(((t1 - t0) / 1000)) ms = $rate msg/s; CPU per message (us): frontend $(us_per_msg $((f1 - f0)) "$N"), broker $(us_per_msg $((b1 - b0)) "$N"), workers $(us_per_msg $((w1 - w0)) "$N"), redis $(us_per_msg $((r1 - r0)) "$N")${SCAN:+, clamd $(us_per_msg $((c1 - c0)) "$N")}"
    # clamd that does not work for the cluster would make this a run without scanning
    [ -z "$SCAN" ] || [ $((c1 - c0)) -gt 0 ] || fail "$side: clamd used no CPU: the workers did not scan"
    if [ "$side" = open ]; then RATES_OPEN+=("$rate"); else RATES_LOCKED+=("$rate"); fi
    RES[$side]+="$rate $(us_per_msg $((f1 - f0)) "$N") $(us_per_msg $((b1 - b0)) "$N") $(us_per_msg $((w1 - w0)) "$N") $(us_per_msg $((r1 - r0)) "$N")"$'\n'
}

say "$ROUNDS rounds, $N messages each, $S sessions, 4 KiB, $(nproc) CPUs, scanner: ${SCAN:-none}${BASE:+, base $BASE against $SLUICE_BIN}"
for r in $(seq 1 "$ROUNDS"); do
    if [ -z "$BASE" ]; then
        run_one open
        run_one locked
    elif [ $((r % 2)) -eq 1 ]; then
        for side in base-open new-open new-locked base-locked; do run_one "$side"; done
    else
        for side in new-open base-open base-locked new-locked; do run_one "$side"; done
    fi
done

if [ -n "$BASE" ]; then
    keys_after=$(ledger_keys)
    want=$((ROUNDS * N * 2))
    [ "$ONLY" != curve ] || want=0
    [ $((keys_after - keys_before)) -eq "$want" ] ||
        fail "Redis holds $((keys_after - keys_before)) new ledger entries after the timed runs, not the $want of the locked sides"
    for side in "${SIDES[@]}"; do
        case $side in
        *-open) grep -q "security.mode is plain" "${CL_LOG[$side-broker]}" ||
            fail "$side: the broker did not say it runs without CURVE" ;;
        *) [ "$ONLY" = ledger ] || ! grep -q "security.mode is plain" "${CL_LOG[$side-broker]}" ||
            fail "$side: the broker runs without CURVE" ;;
        esac
    done
    python3 - "${RES[base-open]}" "${RES[new-open]}" "${RES[base-locked]}" "${RES[new-locked]}" <<'EOF'
import sys, statistics
names = ["base-open", "new-open", "base-locked", "new-locked"]
cols = ["msg/s", "frontend", "broker", "workers", "redis", "sum"]
rows = {}
for name, text in zip(names, sys.argv[1:]):
    runs = [[float(x) for x in l.split()] for l in text.strip().splitlines()]
    for r in runs:
        r.append(sum(r[1:5]))
    rows[name] = [statistics.mean(c) for c in zip(*runs)]
    rows[name + " median"] = [statistics.median(c) for c in zip(*runs)]
print("means of the rounds (CPU: us per message, user + system):")
print("%-20s" % "" + "".join("%10s" % c for c in cols))
for name in names:
    print("%-20s" % name + "".join("%10.0f" % v for v in rows[name]))
for side in ("open", "locked"):
    b, n = rows["base-" + side], rows["new-" + side]
    print("%-20s" % ("new/base " + side) + "".join("%10.3f" % (y / x if x else 0) for x, y in zip(b, n)))
    b, n = rows["base-" + side + " median"], rows["new-" + side + " median"]
    print("%-20s" % "  medians" + "".join("%10.3f" % (y / x if x else 0) for x, y in zip(b, n)))
EOF
    exit 0
fi

# the check that the locked side really used the ledger (and the open one
# did not): one ledger key per message of the locked side
keys_after=$(ledger_keys)
want=$((ROUNDS * N))
[ "$ONLY" != curve ] || want=0
[ $((keys_after - keys_before)) -eq "$want" ] ||
    fail "Redis holds $((keys_after - keys_before)) new ledger entries after the timed runs, not the $want of the locked side"
grep -q "security.mode is plain" "${CL_LOG[open-broker]}" ||
    fail "the open side's broker did not say it runs without CURVE"
if [ "$ONLY" = ledger ]; then
    grep -q "security.mode is plain" "${CL_LOG[locked-broker]}" ||
        fail "LOCKDOWN_ONLY=ledger, but the locked side's broker runs with CURVE"
elif grep -q "security.mode is plain" "${CL_LOG[locked-broker]}"; then
    fail "the locked side's broker runs without CURVE"
fi

locked_is="CURVE + ledger"
[ -z "$ONLY" ] || locked_is="$ONLY only"
python3 - "${RATES_OPEN[*]}" "${RATES_LOCKED[*]}" "$locked_is" <<'EOF'
import sys, statistics
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
pairs = [y / x for x, y in zip(a, b)]
print("open (plain, no ledger): mean %.0f msg/s; locked (%s): mean %.0f msg/s; ratio of means %.3f" %
      (statistics.mean(a), sys.argv[3], statistics.mean(b), statistics.mean(b) / statistics.mean(a)))
print("  ratio per round: %s; median %.3f" % (", ".join("%.2f" % p for p in pairs), statistics.median(pairs)))
EOF
