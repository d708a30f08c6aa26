# shellcheck shell=bash
# bench_lib.sh - measuring helpers shared by the benchmark scripts (after
# ../e2e/lib.sh):
#   now_us               the wall clock in microseconds
#   cpu_ticks PID...     utime + stime of the processes, summed (clock ticks)
#   us_per_msg TICKS N   TICKS of CPU spread over N messages, in microseconds

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

us_per_msg() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }'; }
