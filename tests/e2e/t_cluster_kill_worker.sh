#!/usr/bin/env bash
# t_cluster_kill_worker.sh - SIGKILL one of three worker processes under a
# steady load from two Postfix origins (cluster_lib.sh, cl_kill_run).
#
# Proves: the brokers notice the dead worker (heartbeats) and hand its jobs
# to the others inside the same LMTP sessions; every message is delivered to
# its own origin; Postfix logs no refused connection or greeting and no
# deferral; duplicates are counted and reported (none are expected: a worker
# never talks to :10025).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init
cl_kill_run worker "${E2E_CLUSTER_COUNT:-300}"
[ "$CL_REFUSALS" -eq 0 ] || fail "Postfix logged $CL_REFUSALS refused connection/greeting line(s)"
[ "$CL_DEFERRALS" -eq 0 ] || fail "Postfix deferred $CL_DEFERRALS message(s)"
n=$(cat "${CL_LOG[b1]}" "${CL_LOG[b2]}" | grep -cE "worker vm:[0-9]+:p1w[01]:[A-Za-z0-9_-]+ removed \((silent for 3 heartbeats|connection gone|unreachable)" || true)
[ "$n" -ge 1 ] || fail "no broker logged the dead worker's removal"
n=$(cat "${CL_LOG[b1]}" "${CL_LOG[b2]}" | grep -c "requeued after attempt" || true)
ok "brokers removed the dead worker; $n job(s) requeued to the others; no refusal, no deferral"
