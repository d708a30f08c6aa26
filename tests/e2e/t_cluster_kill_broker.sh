#!/usr/bin/env bash
# t_cluster_kill_broker.sh - SIGKILL the busier of two brokers under a
# steady load from two Postfix origins (cluster_lib.sh, cl_kill_run).
#
# Proves: the frontends notice the dead broker (no heartbeat for 3 s) and
# resubmit every job it held through the other broker, inside the same LMTP
# sessions and within about 3 s; every message is delivered to its own
# origin; Postfix logs no refused connection or greeting and no deferral;
# duplicates (a verdict from both brokers is used once) are counted.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init
# slow scans (200 ms) so that each broker holds several jobs when one dies
CL_DELAY_MS=${CL_DELAY_MS:-200}
cl_kill_run broker "${E2E_CLUSTER_COUNT:-200}"
[ "$CL_REFUSALS" -eq 0 ] || fail "Postfix logged $CL_REFUSALS refused connection/greeting line(s)"
[ "$CL_DEFERRALS" -eq 0 ] || fail "Postfix deferred $CL_DEFERRALS message(s)"
port=${CL_BROKER_PORT[$CL_VICTIM]}
lines=$(cat "${CL_LOG[fa]}" "${CL_LOG[fb]}" | grep -E "resubmitted to broker .*: broker tcp://127\.0\.0\.1:$port " || true)
n=$(printf '%s' "$lines" | grep -c . || true)
[ "$n" -ge 1 ] || fail "no frontend resubmitted a job of the killed broker"
last=$(printf '%s\n' "$lines" | awk '{ print $3 }' | sort | tail -n 1 | cl_log_secs)
delay=$(awk -v a="$last" -v b="$CL_KILL_T0" 'BEGIN { printf "%.1f", a - b }')
ok "$n job(s) of the killed broker resubmitted through the other, the last $delay s after the kill"
awk -v d="$delay" 'BEGIN { exit !(d <= 3.5) }' || fail "resubmission took $delay s (> 3.5 s)"
