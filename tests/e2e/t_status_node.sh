#!/usr/bin/env bash
# t_status_node.sh - `sluice status` for a single node without Redis
# (docs/cluster.md, "sluice status"; docs/operations.md, "Metrics and
# health"): the node answers for itself on metrics.listen.
#
# Proves, with a real Postfix in front of `sluice all` (no redis.url):
#   - a message goes through; `sluice -o metrics.listen=... status` exits 0
#     and prints the cluster status' table: the broker, frontend and worker
#     of the node alive, the default origin with its concurrency 2, 2
#     worker slots, no shortfall;
#   - `status --json` has the cluster JSON's keys and shape (state, reasons,
#     registry with the node's URL, nodes with id/role/address/alive,
#     queue, workers, origins, provisioning), and the frontend node carries
#     the registry's fields (sessions, brokers_alive, origin.default.*);
#   - GET /status on the node gives that JSON itself;
#   - exit statuses: 78 with neither redis.url nor metrics.listen (the
#     message names both), 1 for a node that is degraded (a lone frontend,
#     no broker), 69 when nothing answers (text and JSON say degraded);
#     and `sluice all` whose metrics.listen is taken exits 71 at start;
#   - with redis.url set, status reads Redis as before (69 when Redis is
#     not there, though the node answers on metrics.listen).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd swaks python3

# ports of its own: the standard ones prove nothing here, and another run
# on the machine may take them between a look and the bind
PF_FILTER_PORT=$(free_port)
PF_REINJECT_PORT=$(free_port)
start_postfix
MPORT=$(free_port)
MLISTEN=127.0.0.1:$MPORT
start_sluice_for_postfix -o "metrics.listen=$MLISTEN"

msgid="status-node.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT" "$msgid"
wait_delivered 1 60 || fail "message <$msgid> not delivered within 60 s"
ok "a message through Postfix and sluice all"

status() { timeout 10 "$SLUICE_BIN" "$@"; }

# ---- text
rc=0
out=$(status -o "metrics.listen=$MLISTEN" status) || rc=$?
[ "$rc" -eq 0 ] || fail "status exited $rc: $out"
[ "${out%%$'\n'*}" = 'sluice status: ok' ] || fail "status text: $out"
for role in broker frontend worker; do
    grep -qE "^$role:[^ ]+ +$role +.* yes " <<<"$out" ||
        fail "status text has no live $role: $out"
done
grep -qE '^default +[0-9]+ +2$' <<<"$out" || fail "status text: no origin default with concurrency 2: $out"
grep -q '^worker slots: 2 ' <<<"$out" || fail "status text: worker slots: $out"
grep -q 'no shortfall' <<<"$out" || fail "status text: provisioning: $out"
ok "status (text) from the node itself, exit 0: $(printf '%s\n' "$out" | grep -c ' yes ') live nodes"

# ---- JSON, the cluster's shape
check_json() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
assert set(d) == {"state", "reasons", "registry", "nodes", "queue", "workers", "origins",
                  "provisioning"}, sorted(d)
assert d["state"] == "ok" and d["reasons"] == [], d
assert d["registry"] == {"url": "http://" + sys.argv[1] + "/status", "reachable": True}, d["registry"]
roles = sorted(n["role"] for n in d["nodes"])
assert roles == ["broker", "frontend", "worker"], roles
for n in d["nodes"]:
    assert n["alive"] is True and n["id"].startswith(n["role"] + ":"), n
    assert {"id", "role", "address", "alive", "last_seen_seconds_ago", "version", "pid",
            "uptime_s"} <= set(n), n
fe = [n for n in d["nodes"] if n["role"] == "frontend"][0]
assert fe["brokers_alive"] == 1 and fe["origin.default.concurrency"] == 2, fe
assert set(d["queue"]) == {"depth", "oldest_age_seconds", "inflight"}, d["queue"]
assert d["workers"]["slots"] == 2, d["workers"]
assert d["origins"] == [{"name": "default", "sessions": 0, "concurrency": 2}], d["origins"]
assert d["provisioning"] == {"origin_concurrency": 2, "worker_slots": 2, "shortfall": 0}, d["provisioning"]
' "$MLISTEN"
}
rc=0
out=$(status -o "metrics.listen=$MLISTEN" status --json) || rc=$?
[ "$rc" -eq 0 ] || fail "status --json exited $rc: $out"
printf '%s\n' "$out" | check_json || fail "status --json: $out"
ok "status --json: the cluster JSON's shape, 3 nodes alive, origin default 0/2, 2 slots, no shortfall"

out=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://$MLISTEN/status")
printf '%s\n' "$out" | check_json || fail "GET /status: $out"
ok "GET http://$MLISTEN/status serves the same JSON"

# ---- exit statuses
# metrics.listen taken: the start fails at once (the master binds it before
# its child), not a child restarted for ever
rc=0
out=$(timeout 20 "$SLUICE_BIN" -o security.user=root -o log.target=stderr \
    -o "frontend.listen=127.0.0.1:$(free_port)" -o "metrics.listen=$MLISTEN" all 2>&1) || rc=$?
[ "$rc" -eq 71 ] || fail "sluice all with metrics.listen taken exited $rc: $out"
case $out in *"metrics.listen: cannot listen on $MLISTEN"*) ;; *) fail "metrics.listen taken: $out" ;; esac
ok "metrics.listen taken: sluice all exits 71 at start, naming it"

rc=0
out=$(status status 2>&1) || rc=$?
[ "$rc" -eq 78 ] || fail "status with neither redis.url nor metrics.listen exited $rc: $out"
case $out in *redis.url*metrics.listen*) ;; *) fail "status without either: message does not name both: $out" ;; esac
ok "no redis.url, no metrics.listen: exit 78, naming both"

stop_sluice >/dev/null || true
rc=0
out=$(status -o "metrics.listen=$MLISTEN" status) || rc=$?
[ "$rc" -eq 69 ] || fail "status of a stopped node exited $rc: $out"
[ "${out%%$'\n'*}" = 'sluice status: DEGRADED' ] || fail "status of a stopped node: $out"
rc=0
out=$(status -o "metrics.listen=$MLISTEN" status --json) || rc=$?
[ "$rc" -eq 69 ] || fail "status --json of a stopped node exited $rc: $out"
printf '%s\n' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["state"] == "degraded" and d["registry"]["reachable"] is False, d
' || fail "status --json of a stopped node: $out"
ok "a node that does not answer: exit 69, text and JSON degraded"

# a lone frontend: its broker is elsewhere and not running: degraded, 1
FPORT=$(free_port)
BPORT=$(free_port)
e2e_spawn "$E2E_TMP/frontend.log" "$SLUICE_BIN" -o security.user=root -o security.mode=plain \
    -o log.target=stderr -o "frontend.listen=127.0.0.1:$FPORT" \
    -o "broker.endpoints=tcp://127.0.0.1:$BPORT" -o "metrics.listen=$MLISTEN" frontend
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID") # stopped at the end like a sink
wait_port 127.0.0.1 "$MPORT" 15 || fail "the lone frontend does not serve metrics.listen"
rc=0
out=$(status -o "metrics.listen=$MLISTEN" status) || rc=$?
[ "$rc" -eq 1 ] || fail "status of a lone frontend without its broker exited $rc: $out"
grep -q '! no broker alive' <<<"$out" || fail "status of a lone frontend: $out"
ok "a lone frontend whose broker is down: exit 1, degraded: $(printf '%s\n' "$out" | grep -c '  ! ') reason(s)"

# with redis.url, Redis is asked as before, even though the node answers
rc=0
out=$(status -o "metrics.listen=$MLISTEN" -o "redis.url=redis://127.0.0.1:$(free_port)" status) || rc=$?
[ "$rc" -eq 69 ] || fail "status with redis.url (Redis not running) exited $rc: $out"
case $out in *"registry unreachable"*) ;; *) fail "status with redis.url did not read Redis: $out" ;; esac
ok "with redis.url the registry in Redis is read, as before (69: not running)"
