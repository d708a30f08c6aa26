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
#   (c) the same through amavisd-new (no AV, no SpamAssassin, $max_servers =
#       S), only when the amavisd-new program is installed
#   for S = 4 and 20 sessions, each twice: with one connection per message
#   (smtp-source's default, as in REFERENCE.md section 3) and with every
#   message of a session over one connection (-d, as Postfix's LMTP client
#   does with connection caching). Then the per-message latency with one
#   session (see lmtp_latency) for the yardstick and for sluice.
#
# ENVIRONMENT
#   SLUICE_BIN         the sluice binary (default: build/sluice)
#   BENCH_N            messages per throughput run (default 2000; or $1)
#   BENCH_LAT_N        sequential messages for the latency runs (default 200)
#   BENCH_SIZE         payload bytes per message (default 4096)
#   BENCH_RUN_TIMEOUT  seconds allowed per smtp-source run (default 150)
#   BENCH_TIME_LIMIT   seconds for the whole benchmark (default 1500)
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
BENCH_LAT_N=${BENCH_LAT_N:-200}
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

# lmtp_reply FD WANT: read one (possibly multi-line) reply; succeed if its
# code starts with WANT. Bounded by read -t.
lmtp_reply() {
    local fd=$1 want=$2 line
    while :; do
        IFS= read -r -t 60 -u "$fd" line || return 1
        line=${line%$'\r'}
        [ "${line:3:1}" = - ] || break
    done
    [ "${line#"$want"}" != "$line" ] || { say "unexpected reply (wanted $want): $line"; return 1; }
}

# lmtp_latency PORT COUNT OUTFILE: per-message latency with one session.
#
# How: one LMTP connection, COUNT (+ warm-up) transactions strictly one after
# the other; for each, the time from writing MAIL FROM to reading the final
# reply after "." (MAIL, RCPT, DATA, 354, the message, the per-recipient
# reply), i.e. what Postfix's LMTP client waits per message on a cached
# connection. The client is bash (/dev/tcp, $EPOCHREALTIME, no forks in the
# loop); it reads replies a byte at a time, which adds some tens of
# microseconds per message, the same for both paths: compare the two, and
# read "added p50" as the cost of going through sluice.
#
# The message is about 4 KiB in total (headers + 48 lines of 78 X + ".")
# and goes out in ONE write: bash's output buffer is 4096 bytes, and a
# larger message would leave in two writes, the second held back by Nagle's
# algorithm until the peer's delayed ACK (40 ms on Linux) -- a client-side
# artefact Postfix does not have (it sizes its stream buffers above the MSS).
#
# Not chosen: smtp-source reports no per-message times, and timing 200
# separate smtp-source processes would mostly measure fork+exec+connect.
lmtp_latency() {
    local port=$1 count=$2 out=$3 fd i t0 t1 lines='' msg total0 total1 n
    local x=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX
    for ((n = 0; n < 48; n++)); do lines+="$x"$'\r\n'; done
    : >"$out"
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    lmtp_reply "$fd" 220 || return 1
    printf 'LHLO bench.test\r\n' >&"$fd"
    lmtp_reply "$fd" 250 || return 1
    total0=$(now_us)
    for ((i = -WARMUP; i < count; i++)); do
        [ "$i" -eq 0 ] && total0=$(now_us)
        printf -v msg 'From: <bench@bench.test>\r\nTo: <lat%d@bench.test>\r\nSubject: latency %d\r\nMessage-Id: <lat.%d.%d@bench.test>\r\n\r\n%s.\r\n' \
            "$i" "$i" "$i" "$$" "$lines"
        [ "${#msg}" -le 4096 ] || fail "latency message is ${#msg} bytes, more than one 4096-byte write"
        t0=$EPOCHREALTIME
        printf 'MAIL FROM:<bench@bench.test>\r\n' >&"$fd"
        lmtp_reply "$fd" 250 || return 1
        printf 'RCPT TO:<lat%d@bench.test>\r\n' "$i" >&"$fd"
        lmtp_reply "$fd" 250 || return 1
        printf 'DATA\r\n' >&"$fd"
        lmtp_reply "$fd" 354 || return 1
        printf '%s' "$msg" >&"$fd"
        lmtp_reply "$fd" 250 || return 1
        t1=$EPOCHREALTIME
        [ "$i" -ge 0 ] && echo $((${t1//[!0-9]/} - ${t0//[!0-9]/})) >>"$out"
    done
    total1=$(now_us)
    printf 'QUIT\r\n' >&"$fd"
    lmtp_reply "$fd" 221 || true
    exec {fd}>&-
    echo $((total1 - total0)) >"$out.total"
}

# run_latency PATH PORT: fills LAT[PATH,p50|p99|rate] (ms, msg/s).
run_latency() {
    local path=$1 port=$2 f=$E2E_TMP/latency.$1
    if ! lmtp_latency "$port" "$BENCH_LAT_N" "$f"; then
        LAT[$path,p50]=error LAT[$path,p99]=error LAT[$path,rate]=error
        say "$path: latency run failed"
        return 0
    fi
    LAT[$path,p50]=$(sort -n "$f" | awk '{ v[NR] = $1 } END { i = int(NR * 0.50 + 0.999999); printf "%.2f", v[i] / 1000 }')
    LAT[$path,p99]=$(sort -n "$f" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99 + 0.999999); printf "%.2f", v[i] / 1000 }')
    LAT[$path,rate]=$(awk -v n="$BENCH_LAT_N" -v us="$(cat "$f.total")" 'BEGIN { printf "%.0f", n * 1e6 / us }')
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
for path in direct sluice amavisd-new; do
    [ -n "${RATE[$path,${SESSIONS_LIST[0]},conn]:-}" ] || continue
    printf '%-14s' "$path"
    for s in "${SESSIONS_LIST[@]}"; do
        printf '%12s %12s' "$(fmt "${RATE[$path,$s,conn]:-}")" "$(fmt "${RATE[$path,$s,reuse]:-}")"
    done
    echo
done
for path in sluice amavisd-new; do
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
for path in direct sluice amavisd-new; do
    [ -n "${LAT[$path,p50]:-}" ] || continue
    printf '%-14s %10s %10s %10s\n' "$path" "${LAT[$path,p50]}" "${LAT[$path,p99]}" "${LAT[$path,rate]}"
done
for path in sluice amavisd-new; do
    [ -n "${LAT[$path,p50]:-}" ] || continue
    case "${LAT[$path,p50]}${LAT[direct,p50]}" in *error*) continue ;; esac
    printf 'added p50 (%s - direct): %s ms\n' "$path" \
        "$(awk -v a="${LAT[$path,p50]}" -v b="${LAT[direct,p50]}" 'BEGIN { printf "%.2f", a - b }')"
done
