#!/usr/bin/env bash
# fleet_bench.sh - one or more `sluice broker` processes under a simulated
# fleet (tests/bench/fleet_sim.c): a thousand workers and frontends keeping
# ten thousand jobs in flight, over the real wire protocol on loopback
# (docs/capacity.md).
#
# SYNOPSIS
#   tests/bench/fleet_bench.sh BROKERS [FLEET_SIM OPTIONS...]
#
# WHAT IT RUNS
#   BROKERS brokers (tcp://127.0.0.1, security.mode plain unless
#   CL_SECURITY=curve), then fleet_sim against all of them with the given
#   options (its defaults: 1,000 workers of 10 slots in 2 processes, 4
#   frontends, 10,000 jobs in flight, 100,000 jobs of 4 KiB, a 500 ms scan).
#   With BASE_BIN set, the same run again against brokers of that binary,
#   in the same invocation (absolute figures swing on shared machines:
#   compare within a run). Prints fleet_sim's key=value lines, each run's
#   headed by the binary; fails if fleet_sim does (a job without its
#   verdict, a refused frame), never on a speed.
#
# ENVIRONMENT
#   SLUICE_BIN   the sluice binary (default: build/sluice)
#   FLEET_SIM    the simulator (default: next to SLUICE_BIN, tests/fleet_sim)
#   BASE_BIN     a second sluice binary to run the same fleet against
#   BASE_SIM_ARGS  fleet_sim options added for the BASE_BIN run only, so that
#                the simulated workers behave as that version's did (workers
#                that heartbeat on their own timer with 1 s ZMTP PINGs:
#                "--zmtp-ivl 1000 --worker-hb timer"; workers that answer
#                heartbeats with 10 s ZMTP PINGs: "--zmtp-ivl 10000")
#   CL_SECURITY  plain (default) or curve
#   PIN          "B:S": the brokers on CPU B, the simulator on CPU S
#                (taskset), so that the brokers' latency is not the
#                simulator's scheduling
#   RT           "sim": the simulator runs SCHED_FIFO (chrt -f 10), so that a
#                simulated node woken by a message runs at once instead of
#                waiting out another's time slice on its CPU; "all": the
#                brokers too. The dispatch latency then shows less of the
#                kernel's scheduling of a shared CPU (docs/capacity.md)
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
CL_SECURITY=${CL_SECURITY:-plain}
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"

N_BROKERS=${1:?usage: fleet_bench.sh BROKERS [FLEET_SIM OPTIONS...]}
shift
FLEET_SIM=${FLEET_SIM:-$(dirname "$SLUICE_BIN")/tests/fleet_sim}

e2e_init 1500
[ -x "$FLEET_SIM" ] || fail "no simulator at $FLEET_SIM (cmake --build ... --target fleet_sim)"
if [ "$N_BROKERS" -lt 1 ] || [ "$N_BROKERS" -gt 8 ]; then fail "BROKERS: 1 to 8"; fi
cl_trap
cl_keys_init
[ "$CL_SECURITY" != curve ] || fail "fleet_sim speaks plain ZeroMQ only: CL_SECURITY=plain"

# fleet_run BIN LABEL: brokers of BIN, the fleet against them, brokers stopped.
fleet_run() {
    local bin=$1 label=$2 i pids="" rc=0 pin=()
    shift 2
    [ -z "${PIN:-}" ] || pin=(taskset -c "${PIN#*:}")
    case ${RT:-} in
    "") ;;
    sim | all) pin+=(chrt -f 10) ;;
    *) fail "RT: sim or all" ;;
    esac
    CL_BROKERS=()
    for ((i = 1; i <= N_BROKERS; i++)); do
        SLUICE_BIN=$bin cl_start_broker "$label$i" -o log.level=warning
        pids="${pids:+$pids,}${CL_PID[$label$i]}"
        [ -z "${PIN:-}" ] || taskset -a -p -c "${PIN%%:*}" "${CL_PID[$label$i]}" >/dev/null ||
            fail "taskset ${PIN%%:*} failed"
        [ "${RT:-}" != all ] || chrt -a -f -p 10 "${CL_PID[$label$i]}" >/dev/null ||
            fail "chrt for the broker failed"
    done
    say "$label: $bin, $N_BROKERS broker(s), fleet_sim $*"
    echo "binary=$label"
    timeout 900 "${pin[@]}" "$FLEET_SIM" --broker-pid "$pids" "$@" "$(cl_endpoints)" || rc=$?
    for ((i = 1; i <= N_BROKERS; i++)); do
        cl_alive "$label$i" || fail "$label: broker $label$i died under the fleet"
        cl_kill "$label$i" TERM
    done
    [ "$rc" = 0 ] || fail "$label: fleet_sim failed (exit $rc)"
}

fleet_run "$SLUICE_BIN" new "$@"
if [ -n "${BASE_BIN:-}" ]; then
    # shellcheck disable=SC2086 # options, split on blanks
    fleet_run "$BASE_BIN" base "$@" ${BASE_SIM_ARGS:-}
fi
ok "fleet against $N_BROKERS broker(s)"
