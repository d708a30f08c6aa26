#!/usr/bin/env bash
# capacity_check.sh - the capacity model (docs/capacity.md) against a
# cluster of several brokers, workers and frontends on loopback.
#
# SYNOPSIS
#   tests/bench/capacity_check.sh [N [SESSIONS [SIZE]]]   (as root; defaults 6000, 20, 4096)
#
# WHAT IT RUNS
#   1. calibration: three clusters of separate processes over
#      tcp://127.0.0.1 (CAPACITY_MODE below), every frontend and worker
#      connected to every broker: one frontend, one broker and two worker
#      processes of two threads; the same with two brokers; two frontends,
#      one broker and four worker processes. Into each, SIZE-byte messages
#      (smtp-source -L -d) at three rates: N messages over SESSIONS
#      sessions a frontend, N/2 over half of them, N/5 over a fifth. Over
#      these runs, each role's CPU is fitted (least squares) as
#          cost a message = fixed + per_wake / (messages a second a process)
#      (messages that arrive together share a wake-up of the process, its
#      system calls and its polls: the more a process carries, the more
#      arrive while it is busy and the fewer wake-ups each). The three
#      shapes give every role rates that differ by about half at the same
#      sessions, which gives the fit its lever;
#   2. the check: two frontends, two brokers and three worker processes of
#      two threads (CAPACITY_CHECK below), every frontend and worker
#      connected to every broker, N messages spread over the frontends at
#      once. The model predicts each
#      role's CPU from the fit at the check's own rate over the role's
#      processes (a sizing starts from the rate it must carry); the
#      script prints prediction, measurement and their ratio.
#   The calibration runs twice and the check after each round: the idle
#   clusters only heartbeat, and a drift of the machine's speed weighs on
#   the fit and the check alike.
#   Each run also prints the context switches a message of each role (every
#   thread), voluntary+involuntary: the wake-ups the messages share, and
#   the preemptions by other processes.
#   Prints figures only: no speed or ratio is asserted.
#
# ENVIRONMENT
#   SLUICE_BIN     the sluice binary (default: build/sluice)
#   CAPACITY_MODE  open (default: security.mode plain, no ledger) or locked
#                  (CURVE on every link, the ledger on a private Redis)
#   CAPACITY_CHECK "BROKERS WORKERS FRONTENDS" of the check (default "2 3 2")
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
MODE=${CAPACITY_MODE:-open}
case $MODE in
open) CL_SECURITY=plain ;;
locked) CL_SECURITY=curve ;;
*) echo "capacity_check.sh: CAPACITY_MODE is open or locked, not $MODE" >&2; exit 2 ;;
esac
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

N=${1:-6000}
S=${2:-20}
SIZE=${3:-4096}

e2e_init 900
need_root
need_cmd smtp-source smtp-sink
cl_trap
cl_keys_init

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not listen on :$sink"

[ "$MODE" = open ] || cl_start_redis
# role_args ROLE: the node's arguments (security, Redis and the ledger).
role_args() {
    cl_sluice_common "$1"
    printf '%s\n' -o log.level=warning
    [ "$MODE" = open ] || printf '%s\n' -o dedup.enabled=yes
}

# cluster_up PREFIX BROKERS WORKERS FRONTENDS: the processes, named
# PREFIX-b1.., PREFIX-w1.., PREFIX-f1..; FPORTS[PREFIX] the frontends' ports.
declare -A FPORTS=()
cluster_up() {
    local p=$1 nb=$2 nw=$3 nf=$4 i eps="" port args=()
    for ((i = 1; i <= nb; i++)); do
        port=$(free_port)
        mapfile -t args < <(role_args broker)
        cl_spawn "$p-b$i" "$SLUICE_BIN" broker "${args[@]}" -o "broker.listen=tcp://127.0.0.1:$port"
        wait_port 127.0.0.1 "$port" 10 || fail "$p-b$i does not listen"
        eps="${eps:+$eps,}tcp://127.0.0.1:$port"
    done
    for ((i = 1; i <= nw; i++)); do
        mapfile -t args < <(role_args worker)
        cl_spawn "$p-w$i" "$SLUICE_BIN" worker "${args[@]}" -o "broker.endpoints=$eps" \
            -o workers.count=2
    done
    FPORTS[$p]=""
    for ((i = 1; i <= nf; i++)); do
        port=$(free_port)
        mapfile -t args < <(role_args frontend)
        cl_spawn "$p-f$i" "$SLUICE_BIN" frontend -F "${args[@]}" -o "frontend.listen=127.0.0.1:$port" \
            -o "broker.endpoints=$eps" -o origins.default.concurrency="$S" \
            -o "origins.default.reinject=127.0.0.1:$sink"
        wait_port 127.0.0.1 "$port" 10 || fail "$p-f$i does not listen"
        FPORTS[$p]+="$port "
    done
    sleep 2 # the first heartbeats
    for port in ${FPORTS[$p]}; do
        timeout 60 smtp-source -L -s "$S" -d -m 200 -l "$SIZE" "127.0.0.1:$port" >/dev/null 2>&1 ||
            fail "$p: the warm-up into :$port failed"
    done
}

# role_pids PREFIX ROLE: PREFIX's processes of ROLE (b, w, f).
role_pids() {
    local name
    for name in "${!CL_PID[@]}"; do
        case $name in "$1-$2"[0-9]*) echo "${CL_PID[$name]}" ;; esac
    done
}
# role_ticks PREFIX ROLE: their CPU ticks; role_switches: their context switches.
role_ticks() { local pids; mapfile -t pids < <(role_pids "$1" "$2"); cpu_ticks "${pids[@]}"; }
role_switches() { local pids; mapfile -t pids < <(role_pids "$1" "$2"); ctx_switches "${pids[@]}"; }

# feed PREFIX MESSAGES_PER_FRONTEND SESSIONS: into every frontend at once.
feed() {
    local port pids=() k=0 pid
    for port in ${FPORTS[$1]}; do
        timeout 300 smtp-source -L -s "$3" -d -m "$2" -l "$SIZE" -f bench@bench.test -t rcpt@bench.test \
            "127.0.0.1:$port" >"$E2E_TMP/src.$k.log" 2>&1 &
        pids+=($!)
        k=$((k + 1))
    done
    for pid in "${pids[@]}"; do wait "$pid" || fail "$1: smtp-source failed"; done
    cat "$E2E_TMP"/src.*.log | head -c 300 | grep . && fail "$1: smtp-source reported errors"
    return 0
}

# measure PREFIX MESSAGES_PER_FRONTEND TOTAL SESSIONS: prints each role's
# CPU; sets M[role] (ticks) and RATE (messages/s).
measure() {
    local p=$1 r t0 t1
    declare -gA M=() CS=()
    declare -A before=() cs0=()
    for r in f b w; do
        before[$r]=$(role_ticks "$p" "$r")
        cs0[$r]=$(role_switches "$p" "$r")
    done
    t0=$(now_us)
    feed "$p" "$2" "$4"
    t1=$(now_us)
    RATE=$(awk -v n="$3" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    for r in f b w; do
        M[$r]=$(($(role_ticks "$p" "$r") - ${before[$r]}))
        CS[$r]=$(awk -v a="${cs0[$r]}" -v b="$(role_switches "$p" "$r")" -v n="$3" 'BEGIN {
            split(a, x, " "); split(b, y, " ")
            printf "%.2f+%.2f", (y[1] - x[1]) / n, (y[2] - x[2]) / n }')
    done
    say "$p: $3 messages in $(((t1 - t0) / 1000)) ms ($RATE msg/s); CPU per message (us): frontends $(us_per_msg "${M[f]}" "$3"), brokers $(us_per_msg "${M[b]}" "$3"), workers $(us_per_msg "${M[w]}" "$3"); context switches a message: ${CS[f]}, ${CS[b]}, ${CS[w]}"
}

# A process's load (the header above): the run's rate over the processes
# of its role.
load() { # ROLE BROKERS WORKERS FRONTENDS RATE
    awk -v r="$1" -v b="$2" -v w="$3" -v f="$4" -v rate="$5" 'BEGIN {
        printf "%.6g", rate / (r == "f" ? f : r == "b" ? b : w) }'
}
read -r CHK_B CHK_W CHK_F <<<"${CAPACITY_CHECK:-2 3 2}"
declare -A FIXED=() PER_WAKE=() FIT=()
SHAPES=("1 2 1" "2 2 1" "1 4 2")
for k in "${!SHAPES[@]}"; do
    read -r cb cw cf <<<"${SHAPES[$k]}"
    cluster_up "cal$k" "$cb" "$cw" "$cf"
done
cluster_up chk "$CHK_B" "$CHK_W" "$CHK_F"
# Twice: each calibration shape at three concurrencies (all sessions,
# half, a fifth; fewer messages at the lower ones), then the check.
NCHK=$((N / CHK_F * CHK_F))
declare -A GOT=([f]=0 [b]=0 [w]=0)
CHK_RATE=0
for _ in 1 2; do
    for k in "${!SHAPES[@]}"; do
        read -r cb cw cf <<<"${SHAPES[$k]}"
        for div in 1 2 5; do
            n=$((N / div / cf * cf)) s=$((S / div > 2 ? S / div : 2))
            measure "cal$k" $((n / cf)) "$n" "$s"
            for r in f b w; do FIT[$r]+="${M[$r]} $n $(load "$r" "$cb" "$cw" "$cf" "$RATE") "; done
        done
    done
    measure chk $((N / CHK_F)) "$NCHK" "$S"
    for r in f b w; do GOT[$r]=$((GOT[$r] + M[$r])); done
    CHK_RATE=$((CHK_RATE + RATE))
done
# Least squares of the cost per message against 1/load, per role;
# when noise makes the slope negative, the mean cost alone.
for r in f b w; do
    read -r FIXED[$r] PER_WAKE[$r] < <(awk -v runs="${FIT[$r]}" 'BEGIN {
        k = split(runs, v, " ")
        for (i = 1; i <= k; i += 3) {
            c = v[i] / v[i + 1]; x = 1 / v[i + 2]; j++
            sx += x; sy += c; sxx += x * x; sxy += x * c
        }
        b = (j * sxy - sx * sy) / (j * sxx - sx * sx); a = (sy - b * sx) / j
        if (b < 0) { b = 0; a = sy / j }
        printf "%.9g %.9g\n", a, b }')
    awk -v role="$r" -v a="${FIXED[$r]}" -v b="${PER_WAKE[$r]}" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        printf "model %s: %.0f us a message + %.0f us x 1,000 / (its messages a second)\n",
            role == "f" ? "frontend" : role == "b" ? "broker" : "worker process",
            a * 1e6 / hz, b * 1e3 / hz }'
done
# The check's two runs together, at their mean rate.
for r in f b w; do
    awk -v role="$r" -v a="${FIXED[$r]}" -v b="${PER_WAKE[$r]}" -v n=$((2 * NCHK)) -v got="${GOT[$r]}" \
        -v x="$(load "$r" "$CHK_B" "$CHK_W" "$CHK_F" $((CHK_RATE / 2)))" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        name = role == "f" ? "frontends" : role == "b" ? "brokers" : "workers"
        pred = (a + b / x) * n
        printf "model %s: %.0f messages a second each, predicted %.2f s of CPU, measured %.2f s, measured/predicted %.2f\n",
            name, x, pred / hz, got / hz, (pred > 0 ? got / pred : 0) }'
done
ok "capacity model checked on $CHK_F frontends, $CHK_B brokers, $CHK_W workers"
