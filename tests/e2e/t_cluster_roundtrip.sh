#!/usr/bin/env bash
# t_cluster_roundtrip.sh - the cluster (docs/cluster.md) on loopback, every
# role its own process over tcp://: two Postfix origins (127.0.0.2 with
# amavisfeed_destination_concurrency_limit 4, 127.0.0.3 with 2), Redis, two
# brokers, three worker processes (2 threads each), two frontends.
#
# Proves: mail injected into both instances comes back to the instance it
# came from (reinjection to client:PORT), every message exactly once; both
# brokers carried jobs (active-active); Postfix logs no refused connection
# or greeting; `sluice status --json` shows every node alive with role and
# address, the queue, per-origin sessions against limits and no provisioning
# shortfall (4 + 2 origin slots = 3 x 2 worker slots); the registry exports
# the queue for KEDA (sluice:keda:queue, a list) and the shortfall gauge;
# stopping a worker shows as a shortfall in status.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 170
cl_init
N=${E2E_CLUSTER_COUNT:-100}

cl_standard_cluster 2
sleep 2     # heartbeats and registrations

# ---- status before any mail
j=$(cl_status_json)
printf '%s\n' "$j" | python3 -c '
import json, sys
d = json.load(sys.stdin)
alive = [n for n in d["nodes"] if n["alive"]]
roles = sorted(n["role"] for n in alive)
assert roles == ["broker"] * 2 + ["frontend"] * 2 + ["worker"] * 3, roles
for n in alive:
    assert n["address"], n
o = {x["name"]: x for x in d["origins"]}
assert o["o2"]["concurrency"] == 4 and o["o3"]["concurrency"] == 2, o
assert d["provisioning"]["worker_slots"] == 6, d["provisioning"]
assert d["provisioning"]["shortfall"] == 0, d["provisioning"]
assert d["queue"]["depth"] == 0 and "oldest_age_seconds" in d["queue"], d["queue"]
assert d["state"] == "ok", d["reasons"]
' || fail "status --json before the run is not as expected: $j"
ok "status --json: 2 brokers, 2 frontends, 3 workers alive; origins o2 4, o3 2; 6 worker slots, no shortfall"

# ---- mail from both origins
cl_inject o2 "$N" 2; p2=$CL_INJECT_PID
cl_inject o3 "$N" 2; p3=$CL_INJECT_PID
wait "$p2" || fail "smtp-source into o2 failed: $(tail -n 3 "$E2E_TMP/inject.o2.log")"
wait "$p3" || fail "smtp-source into o3 failed: $(tail -n 3 "$E2E_TMP/inject.o3.log")"
ok "injected $N messages into each origin"
wait_for 120 cl_origin_done "$N" || fail "not every message delivered within 120 s"
sleep 2
cl_final_report "$N"
[ "$CL_DUPLICATES" -eq 0 ] || fail "$CL_DUPLICATES duplicate(s) without any failure"
ok "every message delivered once, each to its own origin"

for o in o2 o3; do
    n=$(cl_refusals "$o")
    [ "$n" -eq 0 ] || fail "Postfix $o logged $n refused connection/greeting line(s): $(grep -E "$CL_REFUSAL_RE" "${CL_PF_LOG[$o]}" | head -n 3)"
    n=$(grep -c "status=deferred" "${CL_PF_LOG[$o]}" || true)
    [ "$n" -eq 0 ] || fail "Postfix $o deferred $n message(s): $(grep status=deferred "${CL_PF_LOG[$o]}" | head -n 2)"
done
ok "Postfix logged no refused connection or greeting and no deferral"

for b in b1 b2; do
    n=$(grep -cE "broker: origin o[23], weight [24]" "${CL_LOG[$b]}" || true)
    [ "$n" -ge 1 ] || fail "broker $b saw no origin with its weight (jobs all on the other broker?)"
done
ok "both brokers carried jobs, with each origin's weight (o2 4, o3 2)"

n=$(grep -c "Passed CLEAN" "${CL_LOG[fa]}" || true)
m=$(grep -c "Passed CLEAN" "${CL_LOG[fb]}" || true)
[ $((n + m)) -eq $((2 * N)) ] || fail "frontends logged $n + $m Passed CLEAN lines, expected $((2 * N))"
ok "frontends: fa $n, fb $m Passed CLEAN lines"

# ---- registry keys for autoscalers
t=$(cl_redis TYPE sluice:keda:queue)
case $t in list | none) ;; *) fail "sluice:keda:queue is a $t, not a list" ;; esac
v=$(cl_redis HGET sluice:cluster worker_slots)
[ "$v" = 6 ] || fail "sluice:cluster worker_slots is '$v', expected 6"
v=$(cl_redis GET sluice:shortfall)
[ "$v" = 0 ] || fail "sluice:shortfall is '$v', expected 0"
ok "Redis: sluice:cluster worker_slots 6, sluice:shortfall 0, sluice:keda:queue a list (LLEN = depth)"

# ---- a worker leaves: shortfall; it comes back: none (no restart of anything else)
cl_kill w3 TERM
sleep 6     # its registration expires (TTL 5 s) or is deleted at stop
v=$(cl_json 'd["provisioning"]["shortfall"], [n["alive"] for n in d["nodes"] if n["id"].startswith("worker")].count(False)')
[ "$v" = "2 1" ] || fail "after stopping w3: (shortfall, workers gone) = $v, expected (2, 1)"
ok "w3 stopped: status shows it gone and a shortfall of 2"
{ "$SLUICE_BIN" -o "redis.url=$CL_REDIS_URL" status || true; } | sed 's/^/    /'
cl_restart w3
sleep 3
v=$(cl_json 'd["provisioning"]["shortfall"], d["state"]')
[ "$v" = "0 ok" ] || fail "after restarting w3: (shortfall, state) = $v"
ok "w3 back: no shortfall, state ok"
