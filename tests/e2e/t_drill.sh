#!/usr/bin/env bash
# t_drill.sh - sluice drill, the failover drill, against real nodes.
#
# Proves: against `sluice all` with no fault, every message is accepted and
# delivered, with no tempfail and no duplicate (exit 0, --json's keys).
# Against a cluster of processes (cluster_lib.sh: Redis with the
# exactly-once ledger, two brokers, two worker processes, a frontend as a
# master with its child), the drill plays an origin on 127.0.0.7 (--bind,
# matched by origins.drill, which reinjects to client:PORT, the drill's
# --sink) and sends 300 messages at 50/s while the test SIGKILLs a broker
# (and restarts it), a worker process, and the frontend's child (its
# master starts a new one): nothing is lost (exit 0, lost 0, every message
# accepted and delivered). The figures are printed.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 150
cl_init

# drill_figures FILE: the drill's --json as shell variables (sent=...,
# lost=..., ...) and keys=<its keys, sorted>; one python3 run.
drill_figures() {
    eval "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("keys=\"%s\"" % " ".join(sorted(d)))
for k, v in d.items():
    print("%s=%d" % (k, v))
' "$1")"
}
KEYS="accepted delivered duplicates lost p50_ms p99_ms sent tempfails"
keys='' sent=0 accepted=0 delivered=0 lost=0 duplicates=0 tempfails=0

# ---- 1. sluice all, no fault
fe=$(free_port)
sink=$(free_port)
start_sluice -o "frontend.listen=127.0.0.1:$fe" -o "origins.default.reinject=127.0.0.1:$sink" \
    -o origins.default.concurrency=4
rc=0
timeout 60 "$SLUICE_BIN_REAL" drill --via "127.0.0.1:$fe" --sink "127.0.0.1:$sink" --count 100 \
    --rate 0 --sessions 4 --rcpts 2 --size 4096 --json --quiet \
    >"$E2E_TMP/drill-all.json" 2>>"$E2E_TMP/drill-all.log" || rc=$?
[ "$rc" -eq 0 ] || fail "drill against sluice all: exit $rc: $(cat "$E2E_TMP/drill-all.json")"
drill_figures "$E2E_TMP/drill-all.json"
[ "$keys" = "$KEYS" ] || fail "--json keys: $keys"
[ "$sent" -eq 100 ] && [ "$accepted" -eq 100 ] && [ "$delivered" -eq 100 ] &&
    [ "$lost" -eq 0 ] && [ "$duplicates" -eq 0 ] && [ "$tempfails" -eq 0 ] ||
    fail "sluice all, no fault: $(cat "$E2E_TMP/drill-all.json")"
ok "sluice all: $(cat "$E2E_TMP/drill-all.json")"
stop_sluice

# ---- 2. a cluster, nodes killed while the drill runs
export SLUICE_TEST_WORKER_DELAY_MS=30 # scans take a while: jobs are in flight at each kill
cl_start_redis
cl_start_broker b1
cl_start_broker b2
cl_start_worker w1 4
cl_start_worker w2 4
sink=$(free_port)
cl_start_frontend fa -o origins.drill.match=127.0.0.7 -o "origins.drill.reinject=client:$sink" \
    -o origins.drill.concurrency=4
unset SLUICE_TEST_WORKER_DELAY_MS
sleep 1 # the links to both brokers are up

(cd "$E2E_TMP" && exec timeout 120 "$SLUICE_BIN_REAL" drill --via "127.0.0.1:${CL_FE_PORT[fa]}" \
    --bind 127.0.0.7 --sink "127.0.0.7:$sink" --count 300 --rate 50 --sessions 4 --timeout 90 \
    --grace 30 --json >"$E2E_TMP/drill.json" 2>"$E2E_TMP/drill.log") &
drill_pid=$!

# the kills, while the 6 s of sending last (the frontend spreads its jobs
# over both brokers: b1 holds some at any moment)
sleep 0.5
cl_kill b1 KILL
sleep 1
cl_restart b1
sleep 0.5
cl_kill w1 KILL
say "killed worker process w1"
sleep 0.5
child=$(cl_child fa)
[ -n "$child" ] || fail "frontend fa (pid ${CL_PID[fa]}) has no child process"
kill -KILL "$child"
say "fa: SIGKILL to its child, pid $child (master pid ${CL_PID[fa]})"
wait_for 10 cl_child_replaced fa "$child" || fail "fa's master did not start a new child within 10 s"
ok "fa: master pid ${CL_PID[fa]} started child pid $(cl_child fa)"
grep -q 'sending ended (every message answered)' "$E2E_TMP/drill.log" &&
    fail "the drill had sent everything before the last kill: the kills came too late"

rc=0
wait "$drill_pid" || rc=$?
cat "$E2E_TMP/drill.log"
figures=$(cat "$E2E_TMP/drill.json")
say "DRILL FIGURES: $figures"
drill_figures "$E2E_TMP/drill.json"
[ "$keys" = "$KEYS" ] || fail "--json keys: $keys"
[ "$lost" -eq 0 ] || fail "messages lost: $figures"
[ "$rc" -eq 0 ] || fail "drill exit $rc: $figures"
[ "$sent" -eq 300 ] && [ "$accepted" -eq 300 ] && [ "$delivered" -eq 300 ] ||
    fail "not every message accepted and delivered: $figures"
ok "broker, worker and frontend child killed during the drill: nothing lost ($figures)"
