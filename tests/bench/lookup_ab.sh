#!/usr/bin/env bash
# lookup_ab.sh - what each recipient's policy lookup costs (docs/lookups.md,
# docs/benchmarks.md): `sluice all` without lookups ("off") and with
# lookup.sql and its cache ("warm"), alternating, in one run; then what a
# lookup costs when every message asks the database ("cold",
# lookup.cache_ttl=0).
#
# SYNOPSIS
#   tests/bench/lookup_ab.sh [PAIRS [N [SESSIONS]]]    (as root)
#
# WHAT IT RUNS
#   A private PostgreSQL with amavisd-new's lookup tables (the recipient's
#   record, its domain's and the catch-all, 200 wblist rows), one
#   smtp-sink (the reinjection target), then PAIRS times (default 3) each
#   side fresh: 200 untimed messages, then smtp-source -L -s SESSIONS -d -m
#   N -l 4096 (default 3000, 4 sessions) to one recipient. No scanner: the
#   lookup's share is as large as it gets. metrics.listen on both sides; the
#   lookup counters (sluice_lookups_total) must show the warm side asking
#   the database a few times and answering the rest from its cache, and the
#   cold side asking once per message; their histogram gives a query's time.
#   No speed is asserted.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=../e2e/pg_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/pg_lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

PAIRS=${1:-3}
N=${2:-3000}
S=${3:-4}
WARM=200
case $PAIRS$N$S in *[!0-9]*) echo "usage: $0 [PAIRS [N [SESSIONS]]]" >&2; exit 2 ;; esac

e2e_init $((150 + (PAIRS * 2 + 1) * (N / 200 + 30)))
need_root
need_cmd smtp-source smtp-sink python3

start_pg
pg_sql "
INSERT INTO policy (id, policy_name, spam_tag2_level, spam_kill_level) VALUES (1, 'default', NULL, NULL), (2, 'bench', 5, 8);
INSERT INTO users (id, priority, policy_id, email) VALUES (1, 9, 2, 'rcpt@bench.test'), (2, 5, 1, '@bench.test'), (3, 0, 1, '@.');
INSERT INTO mailaddr (id, priority, email) SELECT i, 9, convert_to('sender' || i || '@elsewhere.test', 'UTF8') FROM generate_series(1, 200) AS i;
INSERT INTO wblist (rid, sid, wb) SELECT 1, i, CASE WHEN i % 2 = 0 THEN 'W' ELSE 'B' END FROM generate_series(1, 200) AS i;
" >/dev/null
sink_port=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink_port" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink_port" 10 || fail "smtp-sink does not listen on :$sink_port"
port=$(free_port)
mport=$(free_port)

# one line per result: "<result> <count>", then "seconds <sum> <count>"
lookup_counts() {
    python3 - "http://127.0.0.1:$mport/metrics" <<'PY'
import re, sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for r in ("cached", "queried", "failed"):
    m = re.search(r'^sluice_lookups_total\{source="sql",result="%s"\} (\S+)' % r, body, re.M)
    print(r, int(float(m.group(1))) if m else 0)
s = re.search(r'^sluice_lookup_duration_seconds_sum\{source="sql"\} (\S+)', body, re.M)
c = re.search(r'^sluice_lookup_duration_seconds_count\{source="sql"\} (\S+)', body, re.M)
print("seconds", float(s.group(1)) if s else 0, int(float(c.group(1))) if c else 0)
PY
}

declare -a RATES_OFF=() RATES_WARM=() CPU_OFF=() CPU_WARM=()
run_one() {
    local side=$1 extra=() t0 t1 s0 s1 rate cpu child counts
    case $side in
    warm) extra=(-o "lookup.sql=$PG_CONNINFO") ;;
    cold) extra=(-o "lookup.sql=$PG_CONNINFO" -o lookup.cache_ttl=0) ;;
    esac
    # -F: one process (no master), so its CPU is the filter's
    start_sluice -F -o "frontend.listen=127.0.0.1:$port" -o "metrics.listen=127.0.0.1:$mport" \
        -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=8 \
        "${extra[@]}"
    child=$E2E_SLUICE_PID
    timeout 120 smtp-source -L -s "$S" -d -m "$WARM" -l 4096 -f bench@bench.test \
        -t rcpt@bench.test "127.0.0.1:$port" >/dev/null 2>&1 || true
    s0=$(cpu_ticks "$child")
    t0=$(now_us)
    bench_feed "$side" "$port" "$S" "$N"
    t1=$(now_us)
    s1=$(cpu_ticks "$child")
    counts=$(lookup_counts) || fail "$side: no metrics"
    stop_sluice >/dev/null || true
    rate=$(awk -v n="$N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    cpu=$(us_per_msg $((s1 - s0)) "$N")
    local cached queried failed qsum qn
    cached=$(awk '$1 == "cached" { print $2 }' <<<"$counts")
    queried=$(awk '$1 == "queried" { print $2 }' <<<"$counts")
    failed=$(awk '$1 == "failed" { print $2 }' <<<"$counts")
    read -r _ qsum qn < <(grep '^seconds ' <<<"$counts")
    say "$side: $N messages in $(((t1 - t0) / 1000)) ms = $rate msg/s; sluice CPU per message $cpu us; lookups: $cached cached, $queried queried ($(awk -v s="$qsum" -v n="$qn" 'BEGIN { printf "%.2f", n ? s * 1000 / n : 0 }') ms each), $failed failed"
    [ "$failed" -eq 0 ] || fail "$side: $failed lookup(s) failed"
    case $side in
    off) [ $((cached + queried)) -eq 0 ] || fail "off: lookups counted" ;;
    warm) # one query per thread at most (they may miss at once), the rest cached
        { [ "$queried" -ge 1 ] && [ "$queried" -le 8 ]; } || fail "warm: $queried queries, expected 1..8"
        [ $((cached + queried)) -eq $((WARM + N)) ] || fail "warm: $((cached + queried)) lookups for $((WARM + N)) messages" ;;
    cold) [ "$queried" -eq $((WARM + N)) ] || fail "cold: $queried queries for $((WARM + N)) messages"
        COLD_MS=$(awk -v s="$qsum" -v n="$qn" 'BEGIN { printf "%.2f", s * 1000 / n }') ;;
    esac
    case $side in
    off) RATES_OFF+=("$rate"); CPU_OFF+=("$cpu") ;;
    warm) RATES_WARM+=("$rate"); CPU_WARM+=("$cpu") ;;
    cold) COLD_RATE=$rate; COLD_CPU=$cpu ;;
    esac
}

say "$PAIRS pairs, $N messages each, $S sessions, 4 KiB, no scanner, $(nproc) CPUs"
for i in $(seq 1 "$PAIRS"); do
    # ABBA: a drift of the machine's load favours neither side
    if [ $((i % 2)) = 1 ]; then run_one off; run_one warm; else run_one warm; run_one off; fi
done
run_one cold
ab_report "lookups off" "lookups on (cache warm)" "${RATES_OFF[*]}" "${RATES_WARM[*]}" \
    "${CPU_OFF[*]}" "${CPU_WARM[*]}"
say "cold (lookup.cache_ttl=0, two queries per message): $COLD_RATE msg/s, sluice CPU per message $COLD_CPU us, one recipient's lookup $COLD_MS ms (mean)"
