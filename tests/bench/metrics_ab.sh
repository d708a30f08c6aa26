#!/usr/bin/env bash
# metrics_ab.sh - what metrics cost (docs/benchmarks.md): `sluice all` with
# metrics.listen empty (off: nothing registered, nothing counted) and set
# (every counter and histogram counted, /metrics scraped every second),
# alternating, in one run, the same binary.
#
# SYNOPSIS
#   tests/bench/metrics_ab.sh [PAIRS [N [SESSIONS]]]    (as root)
#
# WHAT IT RUNS
#   One smtp-sink (the reinjection target), then PAIRS times (default 5):
#   `sluice all -F` without metrics.listen, then with it, each fresh, each
#   fed smtp-source -L -s SESSIONS -d -m N -l 4096 (default 6000 messages,
#   4 sessions) after 500 untimed ones. On the "on" side a scraper asks
#   /metrics every second while the messages flow, as a Prometheus with a
#   1 s scrape interval would (15-60 s is usual: this is the harsh case).
#   Runs alternate (off-on, on-off, ...) so that a swing of the shared
#   machine's load hits both sides alike; only their ratio counts. Per run: msg/s and sluice's CPU
#   per message. At the end: the mean of each side, the ratio of the means,
#   each pair's ratio and their median. No scanner runs: this is sluice's
#   fastest path, where the counting shows most.
#
#   It checks what it compares: on the "on" side /metrics answers, was
#   scraped, and counted every message (sum of sluice_messages_total = the
#   warm-up plus N); on the "off" side nothing listens there. No speed is
#   asserted (ctest runs it small: bench/metrics_ab_smoke).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

PAIRS=${1:-5}
N=${2:-6000}
S=${3:-4}
WARM=500
case $PAIRS$N$S in *[!0-9]*) echo "usage: $0 [PAIRS [N [SESSIONS]]]" >&2; exit 2 ;; esac

e2e_init $((120 + PAIRS * 2 * (N / 500 + 30)))
need_root
need_cmd smtp-source smtp-sink python3

sink_port=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink_port" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink_port" 10 || fail "smtp-sink does not listen on :$sink_port"
port=$(free_port)
mport=$(free_port)

# The scraper: GET URL every second until killed; FILE counts the scrapes
# and keeps the last body.
cat >"$E2E_TMP/scrape.py" <<'EOF'
import sys, time, urllib.request
n = 0
while True:
    body = urllib.request.urlopen(sys.argv[1], timeout=5).read()
    n += 1
    with open(sys.argv[2] + ".new", "wb") as f:
        f.write(b"# scrapes %d\n" % n + body)
    __import__("os").rename(sys.argv[2] + ".new", sys.argv[2])
    time.sleep(1)
EOF

scrape_count() {
    awk '/^sluice_messages_total[{ ]/ { n += $NF } END { print n + 0 }' "$E2E_TMP/scrape" 2>/dev/null ||
        echo 0
}
scraped_all() { [ "$(scrape_count)" -eq $((WARM + N)) ]; }

declare -a RATES_OFF=() RATES_ON=() CPU_OFF=() CPU_ON=()
run_one() {
    local side=$1 extra=() t0 t1 s0 s1 rate child scraper=
    [ "$side" = on ] && extra=(-o "metrics.listen=127.0.0.1:$mport")
    # -F: one process (no master), so its CPU is the filter's
    start_sluice -F -o "frontend.listen=127.0.0.1:$port" \
        -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=20 \
        "${extra[@]}"
    child=$E2E_SLUICE_PID
    if [ "$side" = on ]; then
        wait_port 127.0.0.1 "$mport" 10 || fail "on: nothing serves metrics.listen"
        rm -f "$E2E_TMP/scrape"
        e2e_spawn "$E2E_TMP/scraper.log" python3 "$E2E_TMP/scrape.py" \
            "http://127.0.0.1:$mport/metrics" "$E2E_TMP/scrape"
        scraper=$E2E_SPAWNED_PID
        # scraping from the start of the timed run (python3 may start slowly)
        wait_for 20 test -s "$E2E_TMP/scrape" || fail "on: the scraper does not scrape"
    elif port_listening 127.0.0.1 "$mport"; then
        fail "off: something listens on the metrics port"
    fi
    timeout 120 smtp-source -L -s "$S" -d -m "$WARM" -l 4096 -f bench@bench.test \
        -t warm@bench.test "127.0.0.1:$port" >/dev/null 2>&1 || true
    s0=$(cpu_ticks "$child")
    t0=$(now_us)
    bench_feed "$side" "$port" "$S" "$N"
    t1=$(now_us)
    s1=$(cpu_ticks "$child")
    if [ "$side" = on ]; then
        # a scrape after the last message (the scraper may start late on
        # a loaded machine)
        wait_for 15 scraped_all || true
        e2e_kill_group "$scraper" 2
        counted=$(scrape_count)
        scrapes=$(sed -n '1s/^# scrapes //p' "$E2E_TMP/scrape")
        [ "$counted" -eq $((WARM + N)) ] ||
            fail "on: sluice_messages_total sums to $counted, expected $((WARM + N))"
        if command -v promtool >/dev/null; then
            out=$(sed 1d "$E2E_TMP/scrape" | promtool check metrics 2>&1) ||
                fail "on: promtool check metrics: $out"
        fi
    fi
    stop_sluice >/dev/null || true
    rate=$(awk -v n="$N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    say "$side: $N messages in $(((t1 - t0) / 1000)) ms = $rate msg/s; sluice CPU per message $(us_per_msg $((s1 - s0)) "$N") us${scraper:+; /metrics scraped $scrapes time(s) in all, sluice_messages_total $counted}"
    cpu=$(us_per_msg $((s1 - s0)) "$N")
    if [ "$side" = on ]; then
        RATES_ON+=("$rate")
        CPU_ON+=("$cpu")
    else
        RATES_OFF+=("$rate")
        CPU_OFF+=("$cpu")
    fi
}

say "$PAIRS pairs, $N messages each, $S sessions, 4 KiB, $(nproc) CPUs"
for i in $(seq 1 "$PAIRS"); do
    # off-on, then on-off: a drift of the machine's load over the run
    # favours neither side
    if [ $((i % 2)) = 1 ]; then
        run_one off
        run_one on
    else
        run_one on
        run_one off
    fi
done
python3 - "${RATES_OFF[*]}" "${RATES_ON[*]}" "${CPU_OFF[*]}" "${CPU_ON[*]}" <<'EOF'
import sys, statistics
a, b, ca, cb = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
pairs = [y / x for x, y in zip(a, b)]
print("metrics off: mean %.0f msg/s; metrics on: mean %.0f msg/s; ratio of means %.3f" %
      (statistics.mean(a), statistics.mean(b), statistics.mean(b) / statistics.mean(a)))
print("  ratio per round: %s; median %.3f" %
      (", ".join("%.2f" % p for p in pairs), statistics.median(pairs)))
print("  sluice CPU per message: off median %.0f us, on median %.0f us (on/off %.3f)" %
      (statistics.median(ca), statistics.median(cb), statistics.median(cb) / statistics.median(ca)))
EOF
