#!/usr/bin/env bash
# t_cluster_redis_down.sh - freeze Redis (SIGSTOP) for 10 s under a steady
# load from two Postfix origins (cluster_lib.sh, cl_kill_run).
#
# Proves: the registry is advisory: mail keeps flowing while Redis does not
# answer, every message is delivered to its own origin with no deferral and
# no refusal; `sluice status` says degraded (registry unreachable) during the
# outage; every node logs the outage once and registers again when Redis
# answers, and status is ok with every node alive afterwards.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init
CL_DELAY_MS=${CL_DELAY_MS:-80}
cl_kill_run redis "${E2E_CLUSTER_COUNT:-300}"
[ "$CL_REFUSALS" -eq 0 ] || fail "Postfix logged $CL_REFUSALS refused connection/greeting line(s)"
[ "$CL_DEFERRALS" -eq 0 ] || fail "Postfix deferred $CL_DEFERRALS message(s)"
for name in b1 b2 w1 w2 w3 fa fb; do
    grep -q "registry: Redis .*degraded" "${CL_LOG[$name]}" || fail "$name did not log the Redis outage"
    grep -q "registry: connected to Redis" "${CL_LOG[$name]}" || fail "$name did not reconnect"
done
ok "every node logged the outage and reconnected"
sleep 2
v=$(cl_json 'd["state"], sum(1 for n in d["nodes"] if n["alive"])')
[ "$v" = "ok 7" ] || fail "status after the outage: '$v', expected 'ok 7'"
ok "status after the outage: ok, 7 nodes alive"
