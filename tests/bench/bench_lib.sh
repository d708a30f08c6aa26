# shellcheck shell=bash
# bench_lib.sh - measuring helpers shared by the benchmark scripts (after
# ../e2e/lib.sh):
#   now_us               the wall clock in microseconds
#   cpu_ticks PID...     utime + stime of the processes, summed (clock ticks)
#   us_per_msg TICKS N   TICKS of CPU spread over N messages, in microseconds
#   ctx_switches PID...  context switches of every thread of the processes,
#                        summed: "VOLUNTARY INVOLUNTARY" (waits for work, and
#                        preemptions by other runnable threads)
#   bench_feed LABEL PORT SESSIONS N
#                        smtp-source -L -s SESSIONS -d -m N -l 4096 into
#                        127.0.0.1:PORT (to rcpt@bench.test); any error it
#                        reports fails the run, named LABEL
#   ab_report ...        the summary of an A/B run (below)

now_us() { local t=$EPOCHREALTIME; echo "${t//[!0-9]/}"; }

cpu_ticks() {
    local pid line sum=0
    for pid in "$@"; do
        read -r line <"/proc/$pid/stat"
        # shellcheck disable=SC2086 # split the fields after "(comm) "
        set -- ${line##*) }
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

ctx_switches() {
    local pid f key val vol=0 invol=0
    for pid in "$@"; do
        for f in /proc/"$pid"/task/*/status; do
            while read -r key val; do
                case $key in
                voluntary_ctxt_switches:) vol=$((vol + val)) ;;
                nonvoluntary_ctxt_switches:) invol=$((invol + val)) ;;
                esac
            done <"$f" 2>/dev/null
        done
    done
    echo "$vol $invol"
}

us_per_msg() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }'; }

bench_feed() {
    timeout 300 smtp-source -L -s "$3" -d -m "$4" -l 4096 -f bench@bench.test -t rcpt@bench.test \
        "127.0.0.1:$2" >"$E2E_TMP/source.log" 2>&1 || fail "$1: smtp-source failed: $(head -c 300 "$E2E_TMP/source.log")"
    [ ! -s "$E2E_TMP/source.log" ] || fail "$1: smtp-source: $(head -c 300 "$E2E_TMP/source.log")"
}

# ab_report NAME_A NAME_B "RATES_A" "RATES_B" "CPU_A" "CPU_B": the means,
# the ratio of the means (B / A), each round's ratio with their median, and
# the median CPU per message of each side (rates in msg/s, CPU in us).
ab_report() {
    python3 - "$@" <<'PY'
import sys, statistics
na, nb = sys.argv[1:3]
a, b, ca, cb = ([float(x) for x in arg.split()] for arg in sys.argv[3:7])
pairs = [y / x for x, y in zip(a, b)]
print("%s: mean %.0f msg/s; %s: mean %.0f msg/s; ratio of means (%s / %s) %.3f" %
      (na, statistics.mean(a), nb, statistics.mean(b), nb, na, statistics.mean(b) / statistics.mean(a)))
print("  ratio per round: %s; median %.3f" %
      (", ".join("%.2f" % p for p in pairs), statistics.median(pairs)))
print("  sluice CPU per message: %s median %.0f us, %s median %.0f us (%s / %s %.3f)" %
      (na, statistics.median(ca), nb, statistics.median(cb), nb, na,
       statistics.median(cb) / statistics.median(ca)))
PY
}
