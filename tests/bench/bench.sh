#!/usr/bin/env bash
# bench.sh - throughput and latency of sluice against a no-filter yardstick,
# measured in one run on loopback (absolute numbers swing by up to 50%
# between runs on shared machines: only the comparison within a run counts).
#
# SYNOPSIS
#   tests/bench/bench.sh [N]          (as root; not a ctest test)
#
# WHAT IT RUNS
#   (a) yardstick: smtp-source -L -s S -m N -l 4096 straight into smtp-sink -L
#   (b) the same through `sluice all` (origins.default.concurrency=20,
#       reinjecting over SMTP into a second smtp-sink)
#   (b2) the same through `sluice all` with the exactly-once ledger on
#       (a private redis-server; BENCH_LEDGER=0 skips it,
#       BENCH_REDIS_AOF=yes runs Redis with appendonly yes)
#   (c) the same through amavisd-new (no AV, no SpamAssassin, $max_servers =
#       S), only when the amavisd-new program is installed
#   (d) scanners (issue 4), when clamd/spamd/rspamd are installed and
#       BENCH_SCANNERS is not 0: each daemon's own rate (tests/bench/
#       scan_rate: sluice's scanner client, 4 concurrent clients, the very
#       message smtp-source sends), then smtp-source -s 4 -d through
#       `sluice all` with only that scanner, BENCH_SCAN_N messages
#   for S = 4 and 20 sessions, each twice: with one connection per message
#   (smtp-source's default, as in REFERENCE.md section 3) and with every
#   message of a session over one connection (-d, as Postfix's LMTP client
#   does with connection caching). Then the per-message latency with one
#   session (see run_latency) for the yardstick and for sluice.
#
# ENVIRONMENT
#   SLUICE_BIN         the sluice binary (default: build/sluice)
#   BENCH_N            messages per throughput run (default 2000; or $1)
#   BENCH_LAT_N        sequential messages for the latency runs (default 1000)
#   LMTP_LATENCY       the latency client (default: build/tests/lmtp_latency)
#   BENCH_SIZE         payload bytes per message (default 4096)
#   BENCH_RUN_TIMEOUT  seconds allowed per smtp-source run (default 150)
#   BENCH_TIME_LIMIT   seconds for the whole benchmark (default 1500)
#   BENCH_SCANNERS     0: skip (d); BENCH_SCAN_N messages per scanner run (default 300)
#   E2E_KEEP=1         keep the private directory (logs) afterwards
#
# smtp-sink runs without -d: dumping to disk would measure the disk.
# Everything it starts is stopped on exit (tests/e2e/lib.sh does the
# bookkeeping: private temp dir, process groups, watchdog).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

BENCH_N=${1:-${BENCH_N:-2000}}
BENCH_LAT_N=${BENCH_LAT_N:-1000}
BENCH_SIZE=${BENCH_SIZE:-4096}
BENCH_RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-150}
WARMUP=50
SESSIONS_LIST=(4 20)

case $BENCH_N$BENCH_LAT_N$BENCH_SIZE in *[!0-9]*) echo "usage: $0 [N] (numbers only)" >&2; exit 2 ;; esac

e2e_init "${BENCH_TIME_LIMIT:-1500}"
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

now_us() { local t=$EPOCHREALTIME; echo "${t//[!0-9]/}"; }

# run_source PATH PORT SESSIONS MODE [SMTP-SOURCE ARGS]: one timed
# smtp-source run of BENCH_N messages; stores msg/s in RATE.
run_source() {
    local path=$1 port=$2 s=$3 mode=$4 t0 t1 rc=0 out
    shift 4
    out=$E2E_TMP/smtp-source.$path.$s.$mode.log
    # Warm-up (connections, allocator, first-message paths); not timed.
    timeout 60 smtp-source -L -s "$s" -m "$WARMUP" -l "$BENCH_SIZE" "$@" \
        -f bench@bench.test -t warm@bench.test "127.0.0.1:$port" >/dev/null 2>&1 || true
    t0=$(now_us)
    timeout "$BENCH_RUN_TIMEOUT" smtp-source -L -s "$s" -m "$BENCH_N" -l "$BENCH_SIZE" "$@" \
        -f bench@bench.test -t rcpt@bench.test "127.0.0.1:$port" >"$out" 2>&1 || rc=$?
    t1=$(now_us)
    if [ "$rc" -ne 0 ] || [ -s "$out" ]; then
        RATE[$path,$s,$mode]=error
        say "$path, $s sessions, $mode: smtp-source exited $rc$([ "$rc" -eq 124 ] && echo " (timed out after $BENCH_RUN_TIMEOUT s)"): $(head -c 300 "$out")"
        return 0
    fi
    RATE[$path,$s,$mode]=$(awk -v n="$BENCH_N" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1e6 / us }')
    say "$path, $s sessions, $mode: $BENCH_N messages in $(((t1 - t0) / 1000)) ms = ${RATE[$path,$s,$mode]} msg/s"
}

# run_latency PATH PORT: fills LAT[PATH,p50|p99|rate] (ms, msg/s).
#
# How: tests/bench/lmtp_latency.c (built as build/tests/lmtp_latency) opens
# one LMTP connection and sends the messages strictly one after the other, as
# Postfix's LMTP client does on a cached connection: MAIL, RCPT and DATA
# pipelined, the message after the 354. A message's latency is the time from
# writing MAIL to reading its final reply. A C client with TCP_NODELAY, so
# the figure is the path's and not the client's (an earlier bash client added
# ~1 ms of its own). WARMUP messages first, not counted.
LMTP_LATENCY=${LMTP_LATENCY:-$(dirname "$SLUICE_BIN")/tests/lmtp_latency}
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

# (c) amavisd-new, when installed (never installed by this script).
AMAVIS_BIN=$(command -v amavisd-new || command -v amavisd || true)
if [ -n "$AMAVIS_BIN" ]; then
    amavis_sink=$(free_port)
    start_plain_sink "$amavis_sink"
    adir=$E2E_TMP/amavis
    mkdir -p "$adir/tmp" "$adir/db" "$adir/var"
    auser=$(id -un amavis 2>/dev/null || echo nobody)
    chown -R "$auser" "$adir"
    for s in "${SESSIONS_LIST[@]}"; do
        aport=$(free_port)
        # No virus or spam scanning: what is left is amavisd-new's own cost
        # (MIME decoding, policy, reinjection), as in REFERENCE.md section 3.
        cat >"$adir/amavisd.conf" <<EOF
use strict;
\$MYHOME = '$adir';
\$TEMPBASE = '$adir/tmp';
\$db_home = '$adir/db';
\$pid_file = '$adir/var/amavisd.pid';
\$lock_file = '$adir/var/amavisd.lock';
\$daemon_user = '$auser';
\$daemon_group = '$(id -gn "$auser")';
\$myhostname = 'localhost';
\$mydomain = 'localdomain';
\$max_servers = $s;
\$inet_socket_bind = '127.0.0.1';
\$inet_socket_port = $aport;
@inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$amavis_sink';
\$notify_method = \$forward_method;
@local_domains_maps = (1);
@bypass_virus_checks_maps = (1);
@bypass_spam_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
@av_scanners = ();
@av_scanners_backup = ();
\$enable_db = 0;
\$enable_global_cache = 0;
\$do_syslog = 0;
\$LOGFILE = '$adir/amavisd.log';
\$log_level = 0;
1;
EOF
        e2e_spawn "$E2E_TMP/amavis.$s.log" "$AMAVIS_BIN" -c "$adir/amavisd.conf" foreground
        apid=$E2E_SPAWNED_PID
        E2E_SINK_PIDS+=("$apid")
        if wait_port 127.0.0.1 "$aport" 60; then
            if [ "$s" = "${SESSIONS_LIST[0]}" ]; then run_latency amavisd-new "$aport"; fi
            run_source amavisd-new "$aport" "$s" conn
            run_source amavisd-new "$aport" "$s" reuse -d
        else
            say "amavisd-new did not listen on :$aport within 60 s (see $E2E_TMP/amavis.$s.log)"
        fi
        e2e_kill_group "$apid" 10
    done
else
    say "SKIP amavisd-new: not installed (REFERENCE.md section 3 has earlier figures: 55-67 msg/s at 4 sessions, ~33 ms a message at 1 session)"
fi

# (d) scanners: each daemon alone, then through sluice, same message, same
# concurrency (4). The daemons are the tests' own (tests/e2e/scan_lib.sh).
declare -A SCAN=()      # SCAN[scanner,alone|sluice] = msg/s
SCAN_RATE=${SCAN_RATE:-$(dirname "$SLUICE_BIN")/tests/scan_rate}
if [ "${BENCH_SCANNERS:-1}" != 0 ] && [ -x "$SLUICE_BIN" ] && [ -x "$SCAN_RATE" ]; then
    # shellcheck source=../e2e/scan_lib.sh
    . "$(dirname "${BASH_SOURCE[0]}")/../e2e/scan_lib.sh"
    BENCH_SCAN_N=${BENCH_SCAN_N:-300}
    scanners=()
    if command -v rspamd >/dev/null; then rspamd_launch; scanners+=(rspamd); fi
    if command -v clamd >/dev/null; then start_clamd; scanners=(clamd "${scanners[@]}"); fi
    if command -v spamd >/dev/null; then start_spamd; scanners+=(spamd); fi
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
        clamd) server=unix:$CLAMD_SOCK ;;
        spamd) server=$SPAMD_ADDR ;;
        rspamd) server=$RSPAMD_ADDR ;;
        esac
        # the daemon alone (after a warm-up)
        timeout 300 "$SCAN_RATE" "$sc" "$server" "$WARMUP" 4 "$E2E_TMP/bench.eml" >/dev/null 2>&1 || true
        out=$(timeout 600 "$SCAN_RATE" "$sc" "$server" "$BENCH_SCAN_N" 4 "$E2E_TMP/bench.eml" 2>/dev/null || true)
        SCAN[$sc,alone]=$(printf '%s' "$out" | sed -n 's/^rate=\([0-9.]*\) errors=0 .*/\1/p')
        SCAN[$sc,alone]=${SCAN[$sc,alone]:-error}
        # through sluice, 4 sessions, connections reused as Postfix does
        sport=$(free_port)
        start_sluice -o "frontend.listen=127.0.0.1:$sport" -o "origins.default.reinject=127.0.0.1:$scan_sink" \
            -o origins.default.concurrency=4 -o "scanners.$sc.servers=$server" -o "scanners.$sc.max_size=0"
        saved_n=$BENCH_N
        BENCH_N=$BENCH_SCAN_N
        run_source "sluice+$sc" "$sport" 4 reuse -d
        BENCH_N=$saved_n
        SCAN[$sc,sluice]=${RATE[sluice+$sc,4,reuse]}
        n_unchecked=$(sluice_log_count 'UNCHECKED')
        [ "$n_unchecked" -eq 0 ] || say "WARNING: $n_unchecked UNCHECKED message(s) with $sc (see $SLUICE_LOG)"
        stop_sluice || true
        # the same with the ledger, when (b2) started a Redis
        if [ -n "${redis_port:-}" ]; then
            start_sluice -o "frontend.listen=127.0.0.1:$sport" -o "origins.default.reinject=127.0.0.1:$scan_sink" \
                -o origins.default.concurrency=4 -o "scanners.$sc.servers=$server" -o "scanners.$sc.max_size=0" \
                -o "redis.url=redis://127.0.0.1:$redis_port"
            saved_n=$BENCH_N
            BENCH_N=$BENCH_SCAN_N
            run_source "sluice+ledger+$sc" "$sport" 4 reuse -d
            BENCH_N=$saved_n
            SCAN[$sc,ledger]=${RATE[sluice+ledger+$sc,4,reuse]}
            stop_sluice || true
        fi
        say "$sc: alone ${SCAN[$sc,alone]} msg/s, through sluice ${SCAN[$sc,sluice]} msg/s, with the ledger ${SCAN[$sc,ledger]:--} msg/s (4 clients, $BENCH_SCAN_N messages)"
    done
fi

# ---------------------------------------------------------------------------
fmt() { printf '%s' "${1:--}"; }
ratio() {
    case "$1|$2" in
    *error* | *skipped* | "|"* | *"|") printf -- - ;;
    *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }' ;;
    esac
}
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
if [ "${#SCAN[@]}" -gt 0 ]; then
    echo
    echo "== Scanners, 4 concurrent clients, the same ${BENCH_SIZE}-byte message (msg/s; sluice: smtp-source -s 4 -d, reinjection included)"
    printf '%-10s %12s %14s %14s %14s\n' scanner alone "through sluice" "sluice/alone" "with ledger"
    for sc in clamd spamd rspamd; do
        [ -n "${SCAN[$sc,alone]:-}" ] || continue
        printf '%-10s %12s %14s %14s %14s\n' "$sc" "${SCAN[$sc,alone]}" "${SCAN[$sc,sluice]}" \
            "$(ratio "${SCAN[$sc,sluice]}" "${SCAN[$sc,alone]}")" "${SCAN[$sc,ledger]:--}"
    done
    echo "(amavisd-new with the same daemons: REFERENCE.md and issue 4 measured ~56 msg/s with clamd," \
        "~9 msg/s with its in-process SpamAssassin; install amavisd-new for a same-run comparison)"
fi
