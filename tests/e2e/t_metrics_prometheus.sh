#!/usr/bin/env bash
# t_metrics_prometheus.sh - metrics and health (docs/operations.md, "Metrics
# and health") read by Debian's real Prometheus from a cluster of processes.
#
# A cluster over tcp:// with CURVE (cluster_lib.sh): Redis (the ledger), two
# Postfix origins (o2 on 127.0.0.2, o3 on 127.0.0.3), a broker, two worker
# processes, two frontends; every sluice node with metrics.listen on a
# loopback port of its own.
#
# Proves:
#   - readiness: a frontend whose broker is not running answers /readyz 503
#     naming the broker, and 200 once the broker runs; a broker without
#     workers 503, with them 200; /healthz 200 everywhere;
#   - `promtool check metrics` finds nothing to say about any node's
#     /metrics, before and after mail;
#   - a private Prometheus (scrape interval 1 s, deploy/prometheus/alerts.yml
#     loaded) scrapes every node (up == 1) and, after N messages per origin
#     through the real Postfix instances, `sum(sluice_messages_total)`
#     equals the 2N messages sent (and N per origin, all CLEAN / pass);
#     replies, reinjections, broker hand-outs, worker jobs and ledger calls
#     agree with it; the alert rules load and none fires;
#   - every metric the alert rules and the Grafana dashboard
#     (deploy/prometheus/) use is one that the nodes export;
#   - a worker with a CURVE key not on the broker's allow-list is counted in
#     sluice_curve_handshakes_total{result="refused"};
#   - a frontend child killed by SIGKILL is restarted by its master and the
#     new child reports sluice_child_restarts_total 1.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init
need_cmd prometheus promtool
N=${E2E_METRICS_COUNT:-60}
CL_METRICS=1
PROM_DIR=$SLUICE_SRC/deploy/prometheus

# http_get URL: "STATUS BODY" of a GET (python3: no curl needed).
http_get() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status, r.read().decode(errors="replace"), end="")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode(errors="replace"), end="")
except Exception as e:
    print(0, e, end="")
EOF
}
node_url() { echo "http://127.0.0.1:${CL_METRICS_PORT[$1]}$2"; }
status_is() { local r; r=$(http_get "$(node_url "$1" "$2")"); [ "${r%% *}" = "$3" ]; }

# ---- readiness: the frontend first, its broker not running yet
cl_start_redis
cl_start_postfix o2 127.0.0.2 4
cl_start_postfix o3 127.0.0.3 2
CL_BROKER_PORT[b1]=$(free_port)
CL_BROKERS+=(b1)
cl_start_frontend fa
cl_start_frontend fb
wait_for 10 status_is fa /healthz 200 || fail "fa /healthz: $(http_get "$(node_url fa /healthz)")"
sleep 1
r=$(http_get "$(node_url fa /readyz)")
[ "${r%% *}" = 503 ] || fail "fa /readyz without a broker: '$r', expected 503"
case $r in *"no broker answers"*) ;; *) fail "fa /readyz does not name the broker: '$r'" ;; esac
r=${r#* }
ok "frontend without a broker: /healthz 200, /readyz 503 (${r%%$'\n'*})"

cl_start_broker b1
wait_for 10 status_is b1 /healthz 200 || fail "b1 /healthz: $(http_get "$(node_url b1 /healthz)")"
wait_for 10 status_is fa /readyz 200 || fail "fa /readyz with its broker up: $(http_get "$(node_url fa /readyz)")"
r=$(http_get "$(node_url b1 /readyz)")
[ "${r%% *}" = 503 ] || fail "b1 /readyz without workers: '$r', expected 503"
ok "frontend /readyz 200 once its broker runs; broker without workers: /readyz 503 (${r#* })"

cl_start_worker w1 2
cl_start_worker w2 2
for n in b1 w1 w2 fb; do
    wait_for 15 status_is "$n" /readyz 200 || fail "$n /readyz: $(http_get "$(node_url "$n" /readyz)")"
done
cl_point_postfix o2 fa fb
cl_point_postfix o3 fb fa
ok "every node ready: fa, fb, b1, w1, w2 /readyz 200"

NODES=(fa fb b1 w1 w2)
# lint_all WHEN: every node's /metrics into $E2E_TMP/metrics.NODE (one
# python3 for all), then promtool check metrics on each.
lint_all() {
    local n out urls=()
    for n in "${NODES[@]}"; do
        urls+=("$E2E_TMP/metrics.$n" "$(node_url "$n" /metrics)")
    done
    python3 - "${urls[@]}" <<'EOF' || fail "GET /metrics"
import sys, urllib.request
a = sys.argv[1:]
for path, url in zip(a[0::2], a[1::2]):
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        open(path, "wb").write(r.read())
EOF
    for n in "${NODES[@]}"; do
        grep -q '^sluice_build_info{version="' "$E2E_TMP/metrics.$n" ||
            fail "$n /metrics has no sluice_build_info: $(head -c 300 "$E2E_TMP/metrics.$n")"
        out=$(promtool check metrics <"$E2E_TMP/metrics.$n" 2>&1) ||
            fail "promtool check metrics on $n ($1): $out"
    done
    ok "promtool check metrics: nothing to say on ${NODES[*]} ($1)"
}
lint_all "before any mail"

# ---- a private Prometheus
PROM_PORT=$(free_port)
{
    printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n'
    printf 'rule_files:\n  - %s/alerts.yml\n' "$PROM_DIR"
    printf 'scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets:\n'
    for n in "${NODES[@]}"; do
        printf '          - 127.0.0.1:%s\n' "${CL_METRICS_PORT[$n]}"
    done
} >"$E2E_TMP/prometheus.yml"
out=$(promtool check config "$E2E_TMP/prometheus.yml" 2>&1) || fail "promtool check config: $out"
cl_spawn prometheus prometheus "--config.file=$E2E_TMP/prometheus.yml" \
    "--storage.tsdb.path=$E2E_TMP/prometheus-data" "--web.listen-address=127.0.0.1:$PROM_PORT"
wait_port 127.0.0.1 "$PROM_PORT" 20 || fail "prometheus does not listen on :$PROM_PORT"
say "prometheus started (pid ${CL_PID[prometheus]}, 127.0.0.1:$PROM_PORT)"

# prom_query EXPR: the value of an instant query's one result (the sum of
# all if several), "none" when it has none.
prom_query() {
    python3 - "http://127.0.0.1:$PROM_PORT/api/v1/query" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    d = json.load(urllib.request.urlopen(url, timeout=5))
except Exception as e:
    print("error", e)
    sys.exit(0)
r = d.get("data", {}).get("result", [])
if d.get("status") != "success" or not r:
    print("none")
else:
    v = sum(float(x["value"][1]) for x in r)
    print(int(v) if v == int(v) else v)
EOF
}
prom_is() { [ "$(prom_query "$1")" = "$2" ]; }

wait_for 30 prom_is 'sum(up{job="sluice"})' "${#NODES[@]}" ||
    fail "prometheus does not see all ${#NODES[@]} nodes up: $(prom_query 'sum(up{job="sluice"})')"
ok "prometheus scrapes all ${#NODES[@]} nodes (up == 1 each)"

# ---- mail through both origins
cl_inject o2 "$N" 2; p2=$CL_INJECT_PID
cl_inject o3 "$N" 2; p3=$CL_INJECT_PID
wait "$p2" || fail "smtp-source into o2 failed: $(tail -n 3 "$E2E_TMP/inject.o2.log")"
wait "$p3" || fail "smtp-source into o3 failed: $(tail -n 3 "$E2E_TMP/inject.o3.log")"
wait_for 120 cl_origin_done "$N" || fail "not every message delivered within 120 s"
cl_final_report "$N"
[ "$CL_DUPLICATES" -eq 0 ] || fail "$CL_DUPLICATES duplicate(s) without any failure"
deferred=0
for o in o2 o3; do
    deferred=$((deferred + $(grep -c "status=deferred" "${CL_PF_LOG[$o]}" || true)))
done
[ "$deferred" -eq 0 ] || fail "Postfix deferred $deferred message(s): the count below would include their retries"
SENT=$((2 * N))
ok "$SENT messages sent through the cluster ($N per origin), each delivered once, none deferred"

lint_all "after $SENT messages"

wait_for 30 prom_is 'sum(sluice_messages_total)' "$SENT" ||
    fail "prometheus: sum(sluice_messages_total) = $(prom_query 'sum(sluice_messages_total)'), sent $SENT"
ok "prometheus: sum(sluice_messages_total) = $(prom_query 'sum(sluice_messages_total)') = messages sent ($SENT)"

# The other families agree with it: EXPR|WANT, one query each, in one
# python3 (WANT ">=K": at least K).
python3 - "http://127.0.0.1:$PROM_PORT/api/v1/query" <<EOF || fail "prometheus: the counts above disagree"
import json, sys, urllib.parse, urllib.request
checks = """
sum(sluice_messages_total{origin="o2"})|$N
sum(sluice_messages_total{origin="o3"})|$N
sum(sluice_messages_total{category="CLEAN",destiny="pass"})|$SENT
sum(sluice_recipient_replies_total{class="2xx"})|$SENT
sum(sluice_recipient_replies_total{class="4xx"})|0
sum(sluice_reinjections_total{result="delivered"})|$SENT
sum(sluice_reinjections_total{result!="delivered"})|0
sum(sluice_message_duration_seconds_count)|$SENT
sum(sluice_broker_queue_wait_seconds_count)|$SENT
sum(sluice_broker_jobs_total)|$SENT
sum(sluice_broker_verdicts_total)|$SENT
sum(sluice_worker_jobs_total)|$SENT
sum(sluice_scan_duration_seconds_count{scanner="checks"})|$SENT
sum(sluice_ledger_operations_total{op="reserve"})|$SENT
sum(sluice_ledger_errors_total)|0
sum(sluice_curve_handshakes_total{result="admitted"})|>=6
sum(sluice_curve_handshakes_total{result="refused"})|0
max(sluice_origin_concurrency{origin="o2"})|4
max(sluice_origin_concurrency{origin="o3"})|2
sum(sluice_worker_slots)|4
sum(sluice_frontend_brokers_alive)|2
sum(sluice_broker_workers)|4
sum(sluice_broker_jobs_waiting)|0
"""
failed = 0
for line in checks.strip().splitlines():
    expr, want = line.rsplit("|", 1)
    d = json.load(urllib.request.urlopen(sys.argv[1] + "?" + urllib.parse.urlencode({"query": expr}), timeout=5))
    r = d["data"]["result"]
    got = sum(float(x["value"][1]) for x in r) if r else None
    good = got is not None and (got >= float(want[2:]) if want.startswith(">=") else got == float(want))
    print("[t_metrics_prometheus] %s: prometheus: %s = %s (expected %s)" % ("ok" if good else "FAIL", expr, got, want))
    failed += not good
sys.exit(1 if failed else 0)
EOF

# the alert rules: loaded by the real Prometheus, healthy, none firing
rules=$(python3 - "http://127.0.0.1:$PROM_PORT/api/v1/rules" <<'EOF'
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
rules = [r for g in d["data"]["groups"] for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok"]
firing = [r["name"] for r in rules if r.get("state") == "firing"]
print(len(rules), "bad=" + ",".join(bad), "firing=" + ",".join(firing))
EOF
)
case $rules in
*" bad= firing=") ;;
*) fail "alert rules in prometheus: $rules" ;;
esac
[ "${rules%% *}" -ge 5 ] || fail "prometheus loaded only ${rules%% *} alert rules"
ok "prometheus loaded deploy/prometheus/alerts.yml: ${rules%% *} rules, all healthy, none firing"

# every metric the rules and the dashboard name is exported by some node
used=$(python3 - "$PROM_DIR/alerts.yml" "$PROM_DIR/grafana-dashboard.json" "$E2E_TMP"/metrics.* <<'EOF'
import json, re, sys
exported = set()
for path in sys.argv[3:]:
    for line in open(path):
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            exported.add(m.group(1))
            if m.group(2) == "histogram":
                exported |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
exprs = re.findall(r"expr:\s*(.+)", open(sys.argv[1]).read())
dash = json.load(open(sys.argv[2]))
for p in dash["panels"]:
    exprs += [t["expr"] for t in p.get("targets", [])]
used = set(n for e in exprs for n in re.findall(r"\bsluice_[a-z_]+", e))
missing = sorted(used - exported)
if missing:
    print("used but not exported:", ", ".join(missing))
    sys.exit(1)
print(len(used))
EOF
) || fail "deploy/prometheus uses metrics no node exports: $used"
ok "every sluice_* metric in alerts.yml and grafana-dashboard.json ($used) is exported"

# every dashboard query is one the real Prometheus accepts (the panel
# variables replaced as Grafana would)
queries=$(python3 - "http://127.0.0.1:$PROM_PORT/api/v1/query" "$PROM_DIR/grafana-dashboard.json" <<'EOF'
import json, sys, urllib.error, urllib.parse, urllib.request
bad = []
n = 0
for p in json.load(open(sys.argv[2]))["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
        n += 1
        try:
            d = json.load(urllib.request.urlopen(sys.argv[1] + "?" + urllib.parse.urlencode({"query": e}), timeout=5))
            if d.get("status") != "success":
                bad.append(e)
        except urllib.error.HTTPError as err:
            bad.append("%s: %s" % (e, err.read().decode(errors="replace")))
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(n)
EOF
) || fail "grafana-dashboard.json has queries prometheus refuses: $queries"
ok "all $queries queries of grafana-dashboard.json are accepted by prometheus"

# ---- a worker whose key is not on the allow-list: the broker counts it
cl_keygen stranger
cl_start_worker wx 1 stranger
refused() {
    http_get "$(node_url b1 /metrics)" |
        awk '/^sluice_curve_handshakes_total\{result="refused"\}/ { print $2 }'
}
refused_some() { [ "$(refused)" -ge 1 ] 2>/dev/null; }
wait_for 15 refused_some || fail "b1: sluice_curve_handshakes_total{result=\"refused\"} '$(refused)' after an unknown key"
cl_kill wx TERM
ok "a worker with a key not on the allow-list: b1 counts $(refused) refused CURVE handshake(s)"

# ---- a frontend's child killed: its master restarts it, and says so
child=$(cl_child fa)
[ -n "$child" ] || fail "fa has no child process"
kill -KILL "$child"
wait_for 15 cl_child_replaced fa "$child" || fail "fa's master did not start a new child"
restarts() { http_get "$(node_url fa /metrics)" | grep -E '^sluice_child_restarts_total ' | awk '{ print $2 }'; }
restarts_is_1() { [ "$(restarts)" = 1 ]; }
wait_for 15 restarts_is_1 || fail "fa's new child: sluice_child_restarts_total '$(restarts)', expected 1"
ok "fa's child SIGKILLed: the new child reports sluice_child_restarts_total 1"
