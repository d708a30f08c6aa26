#!/usr/bin/env bash
# hold_bench.sh - a frontend holding many LMTP sessions at once, each
# waiting for its verdict (tests/bench/hold_sessions.py, docs/capacity.md).
#
# SYNOPSIS
#   tests/bench/hold_bench.sh [SESSIONS [ORIGINS]]     (defaults 5000, 10)
#
# WHAT IT RUNS
#   A broker, one worker process of one thread whose scan takes ten
#   minutes (SLUICE_TEST_WORKER_DELAY_MS), and a frontend, separate
#   processes over tcp://127.0.0.1 (security.mode plain), with ORIGINS
#   origins on 127.0.0.11, .12, ... each of concurrency SESSIONS/ORIGINS.
#   hold_sessions.py opens SESSIONS sessions spread over the origins'
#   addresses and takes each to its final dot; the frontend then holds
#   them all, their jobs queued in the broker. Prints its key=value lines
#   (sessions held and refused, the frontend's resident memory per held
#   session) and the frontend's descriptor limit as logged; fails when a
#   session was refused or the frontend died, never on a size or a speed.
#
# ENVIRONMENT
#   SLUICE_BIN   the sluice binary (default: build/sluice)
#   BASE_BIN     a second sluice binary to run the same sessions against
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
CL_SECURITY=plain
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"

SESSIONS=${1:-5000}
ORIGINS=${2:-10}
HOLD=$(dirname "${BASH_SOURCE[0]}")/hold_sessions.py

e2e_init 900
need_cmd python3 smtp-sink
[ "$ORIGINS" -ge 1 ] && [ "$ORIGINS" -le 200 ] || fail "ORIGINS: 1 to 200"
cl_trap
cl_keys_init

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not start"

# hold_run BIN LABEL: the three processes of BIN, the sessions, all stopped.
hold_run() {
    local bin=$1 label=$2 i oargs=() srcs="" conc=$(((SESSIONS + ORIGINS - 1) / ORIGINS)) rc=0
    CL_BROKERS=()
    for ((i = 1; i <= ORIGINS; i++)); do
        oargs+=(-o "origins.o$i.match=127.0.0.$((10 + i))" -o "origins.o$i.concurrency=$conc"
                -o "origins.o$i.reinject=127.0.0.1:$sink")
        srcs="${srcs:+$srcs,}127.0.0.$((10 + i))"
    done
    SLUICE_BIN=$bin cl_start_broker "${label}b" -o log.level=warning
    SLUICE_TEST_WORKER_DELAY_MS=600000 SLUICE_BIN=$bin cl_start_worker "${label}w" 1
    SLUICE_BIN=$bin cl_start_frontend "${label}f" -o log.level=info "${oargs[@]}" -o job.timeout=900
    sleep 1
    echo "binary=$label"
    grep -ho 'file descriptor limit[^"]*' "${CL_LOG[${label}f]}" | head -n 2 || true

    timeout 600 python3 "$HOLD" --pid "${CL_PID[${label}f]}" --sources "$srcs" \
        127.0.0.1 "${CL_FE_PORT[${label}f]}" "$SESSIONS" || rc=$?
    cl_alive "${label}f" || fail "$label: the frontend died holding the sessions"
    for i in f w b; do cl_kill "$label$i" TERM; done
    [ "$rc" = 0 ] || fail "$label: not every session was held (exit $rc)"
}

hold_run "$SLUICE_BIN" new
if [ -n "${BASE_BIN:-}" ]; then
    hold_run "$BASE_BIN" base
fi
ok "$SESSIONS sessions held"
