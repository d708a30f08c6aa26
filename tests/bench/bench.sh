#!/usr/bin/env bash
# bench.sh - throughput and latency of sluice against a no-filter yardstick
# and against amavisd-new, measured in one run on loopback (absolute numbers
# swing by up to 50% between runs on shared machines: only the comparison
# within a run counts).
#
# SYNOPSIS
#   tests/bench/bench.sh [--quick] [N]    (as root; not a ctest test)
#
# WHAT IT RUNS
#   (a) yardstick: smtp-source -L -s S -m N -l 4096 straight into smtp-sink -L
#   (b) the same through `sluice all` (origins.default.concurrency=20,
#       reinjecting over SMTP into a second smtp-sink)
#   (b2) the same through `sluice all` with the exactly-once ledger on
#       (a private redis-server; BENCH_LEDGER=0 skips it,
#       BENCH_REDIS_AOF=yes runs Redis with appendonly yes)
#   (c) the same through amavisd-new (no AV, no SpamAssassin, $max_servers =
#       S), when amavisd-new is installed (deploy/install-deps.sh --test)
#   (d) scanners, when clamd/spamd/rspamd are installed and
#       BENCH_SCANNERS is not 0, 4 concurrent clients and the very message
#       smtp-source sends, in one run:
#         clamd alone (tests/bench/scan_rate: sluice's scanner client),
#           amavisd-new + clamd, sluice + clamd;
#         spamd alone, amavisd-new + SpamAssassin (in-process, as amavisd-new
#           runs it), sluice + spamd;
#         rspamd alone, sluice + rspamd;
#       the paths through a filter are smtp-source -s 4 -d, reinjecting into
#       the same smtp-sink. Then the ratios that have targets
#       (docs/benchmarks.md, "Targets").
#   for S = 4 and 20 sessions, each twice: with one connection per message
#   (smtp-source's default, as in docs/benchmarks.md's reference figures)
#   and with every message of a session over one connection (-d, as Postfix's LMTP client
#   does with connection caching). Then the per-message latency with one
#   session (see run_latency) for the yardstick and for sluice.
#
#   --quick: a short run to check that everything works (S = 4 only, few
#   messages); its figures are not worth publishing.
#
# amavisd-new runs as private instances (amavis_start): an amavisd.conf in the
# private directory, a free loopback port, $max_servers = the sessions of the
# run, reinjection ($forward_method, $notify_method) into the same smtp-sink as
# sluice's runs, @av_scanners = the bench's clamd. The system service is not
# used (install-deps.sh --test keeps it stopped).
#
# ENVIRONMENT
#   SLUICE_BIN         the sluice binary (default: build/sluice)
#   BENCH_N            messages per throughput run (default 2000; or $1)
#   BENCH_LAT_N        sequential messages for the latency runs (default 1000)
#   LMTP_LATENCY       the latency client (default: build/tests/lmtp_latency)
#   BENCH_SIZE         payload bytes per message (default 4096)
#   BENCH_RUN_TIMEOUT  seconds allowed per smtp-source run (default 150)
#   BENCH_TIME_LIMIT   seconds for the whole benchmark (default 1800)
#   BENCH_PLAIN        0: skip (a) to (c)
#   BENCH_SCANNERS     0: skip (d)
#   BENCH_SCAN_N       messages per clamd and rspamd run (default 1000)
#   BENCH_SPAM_N       messages per SpamAssassin run (spamd, amavisd-new+SA;
#                      default 100: they do 5-10 msg/s here)
#   E2E_KEEP=1         keep the private directory (logs) afterwards
#
# smtp-sink runs without -d: dumping to disk would measure the disk.
# Everything it starts is stopped on exit (tests/e2e/lib.sh does the
# bookkeeping: private temp dir, process groups, watchdog).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
# shellcheck source=../e2e/amavis_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/amavis_lib.sh"

QUICK=0
if [ "${1:-}" = --quick ]; then
    QUICK=1
    shift
fi
if [ "$QUICK" = 1 ]; then
    BENCH_N=${1:-${BENCH_N:-300}}
    BENCH_LAT_N=${BENCH_LAT_N:-200}
    BENCH_SCAN_N=${BENCH_SCAN_N:-200}
    BENCH_SPAM_N=${BENCH_SPAM_N:-16}
    WARMUP=20
    SPAM_WARMUP=4
    SESSIONS_LIST=(4)
else
    BENCH_N=${1:-${BENCH_N:-2000}}
    BENCH_LAT_N=${BENCH_LAT_N:-1000}
    BENCH_SCAN_N=${BENCH_SCAN_N:-1000}
    BENCH_SPAM_N=${BENCH_SPAM_N:-100}
    WARMUP=50
    SPAM_WARMUP=8
    SESSIONS_LIST=(4 20)
fi
BENCH_SIZE=${BENCH_SIZE:-4096}
BENCH_RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-150}

case $BENCH_N$BENCH_LAT_N$BENCH_SIZE$BENCH_SCAN_N$BENCH_SPAM_N in
*[!0-9]*) echo "usage: $0 [--quick] [N] (numbers only)" >&2; exit 2 ;;
esac

e2e_init "${BENCH_TIME_LIMIT:-1800}"
need_root
need_cmd smtp-source smtp-sink ss setsid

declare -A RATE=()      # RATE[path,sessions,mode] = msg/s or "error"
declare -A LAT=()       # LAT[path,p50|p99|rate] = ms or msg/s

# start_plain_sink PORT [ARGS...]: smtp-sink that throws mail away (no -d).
start_plain_sink() {
    local port=$1
    shift
    e2e_spawn "$E2E_TMP/sink.$port.log" smtp-sink -u nobody "$@" "127.0.0.1:$port" 1024
    E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
    wait_port 127.0.0.1 "$port" 10 || fail "smtp-sink does not listen on 127.0.0.1:$port"
}

# run_source PATH PORT SESSIONS MODE [SMTP-SOURCE ARGS]: one timed
# smtp-source run of RUN_N messages (default BENCH_N) after RUN_WARMUP
# untimed ones (default WARMUP); stores msg/s in RATE (one decimal below 20).
run_source() {
    local path=$1 port=$2 s=$3 mode=$4 t0 t1 rc=0 out n=${RUN_N:-$BENCH_N}
    shift 4
    out=$E2E_TMP/smtp-source.$path.$s.$mode.log
    # Warm-up (connections, allocator, first-message paths); not timed.
    [ "${RUN_WARMUP:-$WARMUP}" -eq 0 ] ||
        timeout "$BENCH_RUN_TIMEOUT" smtp-source -L -s "$s" -m "${RUN_WARMUP:-$WARMUP}" -l "$BENCH_SIZE" "$@" \
            -f bench@bench.test -t warm@bench.test "127.0.0.1:$port" >/dev/null 2>&1 || true
    t0=$(now_us)
    timeout "$BENCH_RUN_TIMEOUT" smtp-source -L -s "$s" -m "$n" -l "$BENCH_SIZE" "$@" \
        -f bench@bench.test -t rcpt@bench.test "127.0.0.1:$port" >"$out" 2>&1 || rc=$?
    t1=$(now_us)
    if [ "$rc" -ne 0 ] || [ -s "$out" ]; then
        RATE[$path,$s,$mode]=error
        say "$path, $s sessions, $mode: smtp-source exited $rc$([ "$rc" -eq 124 ] && echo " (timed out after $BENCH_RUN_TIMEOUT s)"): $(head -c 300 "$out")"
        return 0
    fi
    RATE[$path,$s,$mode]=$(awk -v n="$n" -v us=$((t1 - t0)) \
        'BEGIN { r = n * 1e6 / us; printf (r < 20 ? "%.1f" : "%.0f"), r }')
    say "$path, $s sessions, $mode: $n messages in $(((t1 - t0) / 1000)) ms = ${RATE[$path,$s,$mode]} msg/s"
}

# group_cpu_ms PGID: CPU time (user + system, ms) of the processes of a
# process group (e2e_spawn makes each daemon its own), with what its leader
# collected from children that have exited (amavisd-new and spamd recycle
# theirs). For "where does the time go": CPU per message of each party.
group_cpu_ms() {
    local pg=$1 f line t=0
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue  # gone meanwhile
        # shellcheck disable=SC2086 # split the fields after "(comm) "
        set -- ${line##*) }
        [ "$3" = "$pg" ] || continue
        t=$((t + ${12} + ${13}))
        [ "$f" != "/proc/$pg/stat" ] || t=$((t + ${14} + ${15}))
    done
    echo $((t * 1000 / $(getconf CLK_TCK)))
}

# cpu_mark NAME PGID / cpu_per_msg NAME PGID N: CPU ms per message of a
# group between the mark and now, stored in CPU[NAME] (one decimal place
# more than the clock's 10 ms ticks can give over N messages).
declare -A CPU=() CPU0=()
cpu_mark() { CPU0[$1]=$(group_cpu_ms "$2"); }
cpu_per_msg() {
    CPU[$1]=$(awk -v a="${CPU0[$1]}" -v b="$(group_cpu_ms "$2")" -v n="$3" 'BEGIN { printf "%.2f", (b - a) / n }')
}

# scan_alone SCANNER SERVER N WHEN: the daemon's own rate with SCAN_S
# concurrent clients of tests/bench/scan_rate; SCAN[SCANNER,WHEN] = msg/s.
scan_alone() {
    local sc=$1 out
    out=$(timeout "$BENCH_RUN_TIMEOUT" "$SCAN_RATE" "$sc" "$2" "$3" "$SCAN_S" "$E2E_TMP/bench.eml" 2>/dev/null || true)
    SCAN[$sc,$4]=$(printf '%s' "$out" | sed -n 's/^rate=\([0-9.]*\) errors=0 .*/\1/p')
    SCAN[$sc,$4]=${SCAN[$sc,$4]:-error}
    say "$sc alone ($4): $3 messages, $SCAN_S clients: ${SCAN[$sc,$4]} msg/s"
}

# amavis_start, amavis_stop: ../e2e/amavis_lib.sh (AMAVIS_PORT, AMAVIS_PID,
# AMAVIS_LOG).

# amavis_check_log MODE: did amavisd-new really scan? Its summary lines
# ("Passed CLEAN {RelayedInbound}, ...", one per message) must say CLEAN
# (clamd answered; UNCHECKED would mean it did not), with a numeric Hits: in
# the sa mode (SpamAssassin ran; "Hits: -" otherwise).
amavis_check_log() {
    local total bad
    total=$(grep -c 'Passed CLEAN {' "$AMAVIS_LOG" 2>/dev/null || true)
    bad=$(grep -cE '(Passed|Blocked) [^{]*\{' "$AMAVIS_LOG" 2>/dev/null || true)
    bad=$((bad - total))
    case $1 in
    sa) local scored
        scored=$(grep -cE 'Passed CLEAN \{.*Hits: -?[0-9]' "$AMAVIS_LOG" 2>/dev/null || true)
        say "amavisd-new+SA log: $total Passed CLEAN, $scored with a SpamAssassin score, $bad other"
        if [ "$scored" -eq 0 ] || [ "$scored" -ne "$total" ]; then
            say "WARNING: SpamAssassin did not score every message"
        fi ;;
    *) say "amavisd-new+$1 log: $total Passed CLEAN, $bad other" ;;
    esac
    [ "$bad" -eq 0 ] || say "WARNING: amavisd-new did not scan everything (see $AMAVIS_LOG)"
}

# run_latency PATH PORT: fills LAT[PATH,p50|p99|rate] (ms, msg/s).
#
# How: tests/bench/lmtp_latency.c (built as build/tests/lmtp_latency) opens
# one LMTP connection and sends the messages strictly one after the other, as
# Postfix's LMTP client does on a cached connection: XFORWARD, MAIL, RCPT and
# DATA pipelined, the message after the 354. A message's latency is the time
# from that write to reading its final reply. A C client with TCP_NODELAY, so
# the figure is the path's and not the client's (an earlier bash client added
# ~1 ms of its own). WARMUP messages first, not counted.
# bench_tool NAME: a test tool, next to SLUICE_BIN or else in this tree's
# build (a SLUICE_BIN of another version, copied elsewhere, has none beside it)
bench_tool() {
    local t
    t=$(dirname "$SLUICE_BIN_REAL")/tests/$1
    [ -x "$t" ] || t=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/tests/$1
    echo "$t"
}
LMTP_LATENCY=${LMTP_LATENCY:-$(bench_tool lmtp_latency)}
run_latency() {
    local path=$1 port=$2 out=$E2E_TMP/latency.$1 line
    if [ ! -x "$LMTP_LATENCY" ] ||
        ! timeout 60 "$LMTP_LATENCY" 127.0.0.1 "$port" "$WARMUP" "$BENCH_SIZE" >/dev/null 2>"$out.err" ||
        ! timeout 120 "$LMTP_LATENCY" 127.0.0.1 "$port" "$BENCH_LAT_N" "$BENCH_SIZE" >"$out" 2>>"$out.err"; then
        LAT[$path,p50]=error LAT[$path,p99]=error LAT[$path,rate]=error
        say "$path: latency run failed: $(cat "$out.err" 2>/dev/null) (client: $LMTP_LATENCY)"
        return 0
    fi
    line=$(cat "$out")
    LAT[$path,p50]=$(awk -v l="$line" 'BEGIN { match(l, /p50_us=[0-9]+/); printf "%.2f", substr(l, RSTART + 7, RLENGTH - 7) / 1000 }')
    LAT[$path,p99]=$(awk -v l="$line" 'BEGIN { match(l, /p99_us=[0-9]+/); printf "%.2f", substr(l, RSTART + 7, RLENGTH - 7) / 1000 }')
    LAT[$path,rate]=$(awk -v l="$line" 'BEGIN { match(l, /rate=[0-9]+/); print substr(l, RSTART + 5, RLENGTH - 5) }')
    say "$path: 1 session, $BENCH_LAT_N messages: p50 ${LAT[$path,p50]} ms, p99 ${LAT[$path,p99]} ms, ${LAT[$path,rate]} msg/s"
}

# bench_path PATH PORT: all throughput runs of one path; after a failed run
# the rest of that path is skipped (a stuck filter would otherwise cost
# BENCH_RUN_TIMEOUT per run).
bench_path() {
    local path=$1 port=$2 s mode
    for s in "${SESSIONS_LIST[@]}"; do
        for mode in conn reuse; do
            if [ -n "${BENCH_BROKEN:-}" ]; then
                RATE[$path,$s,$mode]=skipped
                continue
            fi
            if [ "$mode" = conn ]; then
                run_source "$path" "$port" "$s" conn
            else
                run_source "$path" "$port" "$s" reuse -d
            fi
            [ "${RATE[$path,$s,$mode]}" != error ] || BENCH_BROKEN=$path
        done
    done
    BENCH_BROKEN=
}

# ---------------------------------------------------------------------------
say "N=$BENCH_N messages per run, ${BENCH_SIZE}-byte payload, sessions ${SESSIONS_LIST[*]}, latency over $BENCH_LAT_N messages; $(nproc) CPUs"

# (a) to (c): without scanners
bench_plain() {
    # (a) yardstick
    direct_port=$(free_port)
    start_plain_sink "$direct_port" -L
    # Latency first, on a fresh process, then throughput.
    run_latency direct "$direct_port"
    bench_path direct "$direct_port"

    # (b) sluice
    if [ -x "$SLUICE_BIN" ]; then
        reinject_port=$(free_port)
        sluice_port=$(free_port)
        start_plain_sink "$reinject_port"
        start_sluice -o "frontend.listen=127.0.0.1:$sluice_port" \
            -o "origins.default.reinject=127.0.0.1:$reinject_port" \
            -o origins.default.concurrency=20
        run_latency sluice "$sluice_port"
        bench_path sluice "$sluice_port"
        sluice_alive || say "WARNING: sluice died during the benchmark (see $SLUICE_LOG)"
        # Every message sent must have been logged once: latency (+ warm-up) and
        # each throughput run (+ warm-up), when all of them completed.
        want=$((BENCH_LAT_N + WARMUP + ${#SESSIONS_LIST[@]} * 2 * (BENCH_N + WARMUP)))
        got=$(sluice_log_count 'Passed CLEAN ')
        case "${RATE[*]} ${LAT[*]}" in
        *error* | *skipped*) say "sluice logged $got \"Passed CLEAN\" lines (some runs failed)" ;;
        *) if [ "$got" -eq "$want" ]; then
               say "sluice logged $got \"Passed CLEAN\" lines, one per message sent"
           else
               say "WARNING: sluice logged $got \"Passed CLEAN\" lines for $want messages sent"
           fi ;;
        esac
        stop_sluice || true
        # (b2) the same with the exactly-once ledger on (docs/exactly-once.md):
        # a private redis-server, redis.url set, dedup.enabled auto = on
        if [ "${BENCH_LEDGER:-1}" != 0 ] && command -v redis-server >/dev/null; then
            redis_port=$(free_port)
            e2e_spawn "$E2E_TMP/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 \
                --save '' --appendonly "${BENCH_REDIS_AOF:-no}" --daemonize no --protected-mode no
            E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
            wait_port 127.0.0.1 "$redis_port" 10 || fail "redis-server does not listen on :$redis_port"
            start_sluice -o "frontend.listen=127.0.0.1:$sluice_port" \
                -o "origins.default.reinject=127.0.0.1:$reinject_port" \
                -o origins.default.concurrency=20 -o "redis.url=redis://127.0.0.1:$redis_port"
            run_latency sluice+ledger "$sluice_port"
            bench_path sluice+ledger "$sluice_port"
            n_keys=$(timeout 5 redis-cli -p "$redis_port" DBSIZE 2>/dev/null || echo "?")
            used=$(timeout 5 redis-cli -p "$redis_port" INFO memory 2>/dev/null | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')
            say "ledger: $n_keys keys in Redis after the runs, used_memory $used; $(sluice_log_count 'already reinjected') message(s) answered as already reinjected"
            stop_sluice || true
        fi
    else
        say "SKIP sluice: SLUICE_BIN=$SLUICE_BIN is not executable"
    fi

    # (c) amavisd-new without scanners, when installed (deploy/install-deps.sh --test).
    if [ -n "$AMAVIS_BIN" ]; then
        amavis_sink=$(free_port)
        start_plain_sink "$amavis_sink"
        for s in "${SESSIONS_LIST[@]}"; do
            # No virus or spam scanning: what is left is amavisd-new's own cost
            # (MIME decoding, policy, reinjection), as in docs/benchmarks.md's
            # reference figures.
            if amavis_start plain "$s" "$amavis_sink"; then
                if [ "$s" = "${SESSIONS_LIST[0]}" ]; then run_latency amavisd-new "$AMAVIS_PORT"; fi
                run_source amavisd-new "$AMAVIS_PORT" "$s" conn
                run_source amavisd-new "$AMAVIS_PORT" "$s" reuse -d
            fi
            amavis_stop
        done
    else
        say "SKIP amavisd-new: not installed (deploy/install-deps.sh --test installs it; earlier figures in docs/benchmarks.md: 55-67 msg/s at 4 sessions, ~33 ms a message at 1 session)"
    fi
}
if [ "${BENCH_PLAIN:-1}" = 0 ]; then
    say "BENCH_PLAIN=0: (a) to (c) skipped"
    SESSIONS_LIST=()
else
    bench_plain
fi

# (d) scanners, each in three forms with the same message and the same
# concurrency (SCAN_S clients): the daemon alone (scan_rate: sluice's own
# scanner client, so the difference to "through sluice" is sluice), through
# sluice, and through amavisd-new with the same daemon (clamd) or with the
# SpamAssassin that spamd runs, in-process (amavisd-new has no spamd client).
# The daemons are the tests' own (tests/e2e/scan_lib.sh).
declare -A SCAN=()      # SCAN[scanner,alone|sluice|amavisd] = msg/s
SCAN_S=4
SCAN_RATE=${SCAN_RATE:-$(bench_tool scan_rate)}
if [ "${BENCH_SCANNERS:-1}" != 0 ] && [ -x "$SLUICE_BIN" ] && [ -x "$SCAN_RATE" ]; then
    # shellcheck source=../e2e/scan_lib.sh
    . "$(dirname "${BASH_SOURCE[0]}")/../e2e/scan_lib.sh"
    scanners=()
    declare -A DAEMON_PGID=()
    if command -v rspamd >/dev/null; then
        rspamd_launch
        DAEMON_PGID[rspamd]=$E2E_SPAWNED_PID
        scanners+=(rspamd)
    fi
    if command -v clamd >/dev/null; then
        start_clamd
        DAEMON_PGID[clamd]=$CLAMD_PID
        scanners=(clamd "${scanners[@]}")
    fi
    # spamd gets as many children as there are clients, as amavisd-new gets
    # $max_servers SpamAssassin instances
    if command -v spamd >/dev/null; then
        SPAMD_CHILDREN=$SCAN_S start_spamd
        DAEMON_PGID[spamd]=$E2E_SPAWNED_PID
        scanners+=(spamd)
    fi
    # the message smtp-source sends, captured once by a dumping sink
    cap_port=$(free_port)
    mkdir -p "$E2E_TMP/cap" && chown nobody "$E2E_TMP/cap"
    e2e_spawn "$E2E_TMP/cap.log" smtp-sink -u nobody -d "$E2E_TMP/cap/m." "127.0.0.1:$cap_port" 16
    E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
    wait_port 127.0.0.1 "$cap_port" 10 || fail "capture sink"
    timeout 30 smtp-source -s 1 -m 1 -l "$BENCH_SIZE" -f bench@bench.test -t rcpt@bench.test \
        "127.0.0.1:$cap_port" >/dev/null 2>&1 || true
    wait_for 10 test -n "$(ls "$E2E_TMP"/cap/m.* 2>/dev/null)" || fail "no message captured"
    # the dump starts with smtp-sink's envelope lines: keep the message
    sed -n '/^X-Rcpt-Args:/,$p' "$(ls "$E2E_TMP"/cap/m.* | head -n 1)" | sed '1d' | sed 's/$/\r/' >"$E2E_TMP/bench.eml"
    scan_sink=$(free_port)
    start_plain_sink "$scan_sink"
    # rspamd's start-up compiles its rules for a while on every CPU: let it
    # finish before anything is measured
    case " ${scanners[*]} " in *" rspamd "*) rspamd_wait; sleep 5 ;; esac
    for sc in "${scanners[@]}"; do
        case $sc in
        clamd) server=unix:$CLAMD_SOCK n=$BENCH_SCAN_N warm=$WARMUP ;;
        spamd) server=$SPAMD_ADDR n=$BENCH_SPAM_N warm=$SPAM_WARMUP ;;
        rspamd) server=$RSPAMD_ADDR n=$BENCH_SCAN_N warm=$WARMUP ;;
        esac
        # the daemon alone (after a warm-up), before and again after the
        # filters' runs: the load of a shared machine drifts, the mean of
        # the two is the reference
        timeout 300 "$SCAN_RATE" "$sc" "$server" "$warm" "$SCAN_S" "$E2E_TMP/bench.eml" >/dev/null 2>&1 || true
        cpu_mark "$sc alone:$sc" "${DAEMON_PGID[$sc]}"
        scan_alone "$sc" "$server" "$n" before
        cpu_per_msg "$sc alone:$sc" "${DAEMON_PGID[$sc]}" "$n"
        # through sluice, connections reused as Postfix does
        sport=$(free_port)
        start_sluice -o "frontend.listen=127.0.0.1:$sport" -o "origins.default.reinject=127.0.0.1:$scan_sink" \
            -o origins.default.concurrency=$SCAN_S -o "scanners.$sc.servers=$server" -o "scanners.$sc.max_size=0"
        # warm-up, then the CPU of sluice and of the daemon over the timed run
        RUN_N=$warm RUN_WARMUP=0 run_source "warm-up" "$sport" "$SCAN_S" reuse -d
        cpu_mark "sluice+$sc:sluice" "$E2E_SLUICE_PID"
        cpu_mark "sluice+$sc:$sc" "${DAEMON_PGID[$sc]}"
        RUN_N=$n RUN_WARMUP=0 run_source "sluice+$sc" "$sport" "$SCAN_S" reuse -d
        SCAN[$sc,sluice]=${RATE[sluice+$sc,$SCAN_S,reuse]}
        cpu_per_msg "sluice+$sc:sluice" "$E2E_SLUICE_PID" "$n"
        cpu_per_msg "sluice+$sc:$sc" "${DAEMON_PGID[$sc]}" "$n"
        n_unchecked=$(sluice_log_count 'UNCHECKED')
        [ "$n_unchecked" -eq 0 ] || say "WARNING: $n_unchecked UNCHECKED message(s) with $sc (see $SLUICE_LOG)"
        stop_sluice || true
        # the same with the ledger, when (b2) started a Redis
        if [ -n "${redis_port:-}" ]; then
            start_sluice -o "frontend.listen=127.0.0.1:$sport" -o "origins.default.reinject=127.0.0.1:$scan_sink" \
                -o origins.default.concurrency=$SCAN_S -o "scanners.$sc.servers=$server" -o "scanners.$sc.max_size=0" \
                -o "redis.url=redis://127.0.0.1:$redis_port"
            RUN_N=$warm RUN_WARMUP=0 run_source "warm-up" "$sport" "$SCAN_S" reuse -d
            RUN_N=$n RUN_WARMUP=0 run_source "sluice+ledger+$sc" "$sport" "$SCAN_S" reuse -d
            SCAN[$sc,ledger]=${RATE[sluice+ledger+$sc,$SCAN_S,reuse]}
            stop_sluice || true
        fi
        # through amavisd-new: clamd as @av_scanners, or SpamAssassin in-process
        case $sc in clamd) amode=clamd ;; spamd) amode=sa ;; *) amode= ;; esac
        if [ -n "$amode" ] && [ -n "$AMAVIS_BIN" ]; then
            if amavis_start "$amode" "$SCAN_S" "$scan_sink"; then
                RUN_N=$warm RUN_WARMUP=0 run_source "warm-up" "$AMAVIS_PORT" "$SCAN_S" reuse -d
                cpu_mark "amavisd+$amode:amavisd" "$AMAVIS_PID"
                [ "$amode" != clamd ] || cpu_mark "amavisd+$amode:clamd" "${DAEMON_PGID[clamd]}"
                RUN_N=$n RUN_WARMUP=0 run_source "amavisd+$amode" "$AMAVIS_PORT" "$SCAN_S" reuse -d
                SCAN[$sc,amavisd]=${RATE[amavisd+$amode,$SCAN_S,reuse]}
                cpu_per_msg "amavisd+$amode:amavisd" "$AMAVIS_PID" "$n"
                [ "$amode" != clamd ] || cpu_per_msg "amavisd+$amode:clamd" "${DAEMON_PGID[clamd]}" "$n"
                amavis_check_log "$amode"
            else
                SCAN[$sc,amavisd]=error
            fi
            amavis_stop
        fi
        scan_alone "$sc" "$server" "$n" after
        SCAN[$sc,alone]=$(awk -v a="${SCAN[$sc,before]}" -v b="${SCAN[$sc,after]}" \
            'BEGIN { if (a == "error" || b == "error") print "error"; else { r = (a + b) / 2; printf (r < 20 ? "%.1f" : "%.0f"), r } }')
    done
elif [ "${BENCH_SCANNERS:-1}" != 0 ]; then
    say "scanner runs (d) skipped: need $SLUICE_BIN and $SCAN_RATE (cmake --build build)"
fi

# ---------------------------------------------------------------------------
fmt() { printf '%s' "${1:--}"; }
ratio() {
    case "$1|$2" in
    *error* | *skipped* | "|"* | *"|") printf -- - ;;
    *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }' ;;
    esac
}
# times: "12.3x" (a / b), "-" when either is missing
times() {
    case "$1|$2" in
    *error* | *skipped* | "|"* | *"|") printf -- - ;;
    *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' ;;
    esac
}
# verdict A B TARGET: "met" when A / B >= TARGET
verdict() {
    case "$1|$2" in
    *error* | *skipped* | "|"* | *"|") printf 'not measured' ;;
    *) awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { print (a / b >= t ? "met" : "NOT met") }' ;;
    esac
}
if [ "${#SESSIONS_LIST[@]}" -gt 0 ]; then
    echo
    echo "== Throughput: smtp-source -L -m $BENCH_N -l $BENCH_SIZE (msg/s); conn = one connection per message, -d = connection reused"
    printf '%-14s' path
    for s in "${SESSIONS_LIST[@]}"; do printf '%12s %12s' "s=$s conn" "s=$s -d"; done
    echo
    for path in direct sluice sluice+ledger amavisd-new; do
        [ -n "${RATE[$path,${SESSIONS_LIST[0]},conn]:-}" ] || continue
        printf '%-14s' "$path"
        for s in "${SESSIONS_LIST[@]}"; do
            printf '%12s %12s' "$(fmt "${RATE[$path,$s,conn]:-}")" "$(fmt "${RATE[$path,$s,reuse]:-}")"
        done
        echo
    done
    for path in sluice sluice+ledger amavisd-new; do
        [ -n "${RATE[$path,${SESSIONS_LIST[0]},conn]:-}" ] || continue
        printf '%-14s' "$path/direct"
        for s in "${SESSIONS_LIST[@]}"; do
            printf '%12s %12s' "$(ratio "${RATE[$path,$s,conn]:-}" "${RATE[direct,$s,conn]:-}")" \
                "$(ratio "${RATE[$path,$s,reuse]:-}" "${RATE[direct,$s,reuse]:-}")"
        done
        echo
    done
    echo
    echo "== Latency, 1 session, one LMTP connection, $BENCH_LAT_N sequential ~4 KiB messages (MAIL FROM .. final reply)"
    printf '%-14s %10s %10s %10s\n' path "p50 ms" "p99 ms" "msg/s"
    for path in direct sluice sluice+ledger amavisd-new; do
        [ -n "${LAT[$path,p50]:-}" ] || continue
        printf '%-14s %10s %10s %10s\n' "$path" "${LAT[$path,p50]}" "${LAT[$path,p99]}" "${LAT[$path,rate]}"
    done
    for path in sluice sluice+ledger amavisd-new; do
        [ -n "${LAT[$path,p50]:-}" ] || continue
        case "${LAT[$path,p50]}${LAT[direct,p50]}" in *error*) continue ;; esac
        printf 'added p50 (%s - direct): %s ms\n' "$path" \
            "$(awk -v a="${LAT[$path,p50]}" -v b="${LAT[direct,p50]}" 'BEGIN { printf "%.2f", a - b }')"
    done
fi
if [ "${#SCAN[@]}" -gt 0 ]; then
    echo
    echo "== Scanners, $SCAN_S concurrent clients, the same ${BENCH_SIZE}-byte message (msg/s; through a filter:" \
        "smtp-source -s $SCAN_S -d, reinjection into smtp-sink included; $BENCH_SCAN_N messages, SpamAssassin $BENCH_SPAM_N)"
    printf '%-8s %20s %16s %10s %14s %12s\n' scanner "alone (before/after)" "amavisd-new" sluice "sluice/alone" "with ledger"
    for sc in clamd spamd rspamd; do
        [ -n "${SCAN[$sc,alone]:-}" ] || continue
        printf '%-8s %20s %16s %10s %14s %12s\n' "$sc" "${SCAN[$sc,alone]} (${SCAN[$sc,before]}/${SCAN[$sc,after]})" \
            "$(fmt "${SCAN[$sc,amavisd]:-}")$([ "$sc" = spamd ] && echo ' (SA)')" \
            "${SCAN[$sc,sluice]}" "$(times "${SCAN[$sc,sluice]}" "${SCAN[$sc,alone]}")" "${SCAN[$sc,ledger]:--}"
    done
    echo
    echo "== CPU per message (ms, user + system) in the runs above: where the time goes"
    for k in "clamd alone:clamd" sluice+clamd:sluice sluice+clamd:clamd amavisd+clamd:amavisd \
        amavisd+clamd:clamd "spamd alone:spamd" sluice+spamd:sluice sluice+spamd:spamd amavisd+sa:amavisd \
        "rspamd alone:rspamd" sluice+rspamd:sluice sluice+rspamd:rspamd; do
        [ -z "${CPU[$k]:-}" ] || printf '%-28s %8s\n' "${k%%:*}: ${k#*:}" "${CPU[$k]}"
    done
    echo
    echo "== Scanner targets (docs/benchmarks.md)"
    printf '%-44s %10s %8s  %s\n' ratio value target verdict
    printf '%-44s %10s %8s  %s\n' "clamd: sluice / amavisd-new" \
        "$(times "${SCAN[clamd,sluice]:-}" "${SCAN[clamd,amavisd]:-}")" ">= 20x" \
        "$(verdict "${SCAN[clamd,sluice]:-}" "${SCAN[clamd,amavisd]:-}" 20)"
    printf '%-44s %10s %8s  %s\n' "  ceiling: clamd alone / amavisd-new" \
        "$(times "${SCAN[clamd,alone]:-}" "${SCAN[clamd,amavisd]:-}")" "" "(sluice+clamd cannot beat clamd alone)"
    printf '%-44s %10s %8s  %s\n' "spamd: sluice / spamd alone" \
        "$(times "${SCAN[spamd,sluice]:-}" "${SCAN[spamd,alone]:-}")" ">= 0.9x" \
        "$(verdict "${SCAN[spamd,sluice]:-}" "${SCAN[spamd,alone]:-}" 0.9)"
    printf '%-44s %10s %8s  %s\n' "spamd: sluice / amavisd-new+SpamAssassin" \
        "$(times "${SCAN[spamd,sluice]:-}" "${SCAN[spamd,amavisd]:-}")" "" "(for comparison)"
    printf '%-44s %10s %8s  %s\n' "rspamd: sluice / amavisd-new+SpamAssassin" \
        "$(times "${SCAN[rspamd,sluice]:-}" "${SCAN[spamd,amavisd]:-}")" ">= 5x" \
        "$(verdict "${SCAN[rspamd,sluice]:-}" "${SCAN[spamd,amavisd]:-}" 5)"
fi
echo
echo "load: $(uptime | sed 's/.*load average/load average/'), $(nproc) CPUs$([ "$QUICK" = 1 ] && echo ', --quick run')"
