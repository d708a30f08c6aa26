# shellcheck shell=bash
# lib.sh - shared helpers for the sluice end-to-end tests (tests/e2e/t_*.sh).
#
# SYNOPSIS
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   e2e_init [SECONDS]        # private temp dir, EXIT trap, watchdog
#   start_postfix             # private Postfix instance, the filter setup of docs/postfix.md
#   start_sluice [ARGS...]    # "$SLUICE_BIN" all ARGS..., waits for its port
#   inject_mail TO MSGID      # SMTP into the instance with swaks
#   wait_delivered COUNT SECONDS
#
# DESCRIPTION
#   Every test sources this file and calls e2e_init first. e2e_init makes a
#   private directory under /tmp and installs an EXIT trap that stops every
#   daemon the test started (sluice, smtp-sink, the private Postfix) and
#   removes the directory. Daemons are started with setsid, so each is its own
#   process group and is killed as a group; as a last resort the trap also
#   kills, by pid, any process whose working directory is inside the private
#   directory (the Postfix daemons chdir to their queue directory there, the
#   other daemons are started from it). A watchdog ends the test after
#   E2E_TIME_LIMIT seconds. Every external command that can block runs under
#   timeout(1).
#
#   Nothing here touches the system Postfix: the private instance has its own
#   config_directory, queue_directory and data_directory, listens on 127.0.0.1
#   only, on a free port for its main smtpd, and logs to a file (maillog_file,
#   Postfix >= 3.4) because syslog is usually not running. As root,
#   `postfix -c DIR`, `postqueue -c DIR` and `sendmail -C DIR` accept any
#   directory (the alternate_config_directories check in the default main.cf
#   applies to unprivileged users only), so /etc/postfix is left alone.
#
# ENVIRONMENT
#   SLUICE_BIN      the sluice binary (default: $SLUICE_SRC/build/sluice)
#   SLUICE_SRC      the repository root (default: derived from this file)
#   E2E_KEEP=1      keep the private directory after the test (path printed)
#   E2E_VERBOSE=1   print the tails of all logs even when the test passes
#   E2E_TIME_LIMIT  watchdog in seconds (default: the e2e_init argument, 170)
#
# DIAGNOSTICS
#   On failure the test prints "FAIL: ..." and the tails of the sluice log,
#   the Postfix maillog and the Postfix queue, then exits non-zero.

# The variables below are part of the interface for the t_*.sh scripts.
# shellcheck disable=SC2034

set -Eeuo pipefail

E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SLUICE_SRC=${SLUICE_SRC:-$(cd "$E2E_LIB_DIR/../.." && pwd)}
SLUICE_BIN=${SLUICE_BIN:-$SLUICE_SRC/build/sluice}
E2E_NAME=$(basename "${0%.sh}")
# Tests state their configuration on the command line; a configuration the
# caller's environment points at must not leak in.
unset SLUICE_CONFIG

E2E_TMP=
E2E_WATCHDOG_PID=
E2E_SLUICE_PID=
E2E_SLUICE_STARTS=0
E2E_SINK_PIDS=()
E2E_POSTFIX_UP=0
E2E_FAILED=0

# The standard ports (docs/postfix.md), which are sluice's defaults too. A
# test may move them (pf_choose_ports) when something else on the machine
# already holds them.
STD_FILTER_PORT=10024
STD_REINJECT_PORT=10025

# Addresses used by the tests: one virtual mailbox domain of the instance.
E2E_DOMAIN=e2e.test
E2E_RCPT=user@e2e.test
E2E_FROM=sender@e2e.test

# ---------------------------------------------------------------------------
# Reporting

say() { printf '[%s %s] %s\n' "$E2E_NAME" "$(date +%H:%M:%S)" "$*"; }
ok() { printf '[%s %s] ok: %s\n' "$E2E_NAME" "$(date +%H:%M:%S)" "$*"; }

# fail MESSAGE: report, dump diagnostics (from the EXIT trap), exit 1.
fail() {
    printf '[%s %s] FAIL: %s\n' "$E2E_NAME" "$(date +%H:%M:%S)" "$*" >&2
    E2E_FAILED=1
    exit 1
}

e2e_on_err() {
    local rc=$1 line=$2 cmd=$3
    printf '[%s] FAIL: command exited %s at line %s: %s\n' "$E2E_NAME" "$rc" "$line" "$cmd" >&2
    E2E_FAILED=1
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || fail "required command not found: $c (run deploy/install-deps.sh --test)"
    done
}

need_root() {
    [ "$(id -u)" -eq 0 ] || fail "must run as root (private Postfix instances and smtp-sink -u nobody)"
}

# ---------------------------------------------------------------------------
# Life cycle

# e2e_init [SECONDS]: private temp dir, EXIT/INT/TERM traps, watchdog.
e2e_init() {
    local limit=${E2E_TIME_LIMIT:-${1:-170}}
    E2E_TMP=$(mktemp -d "/tmp/sluice-e2e.${E2E_NAME}.XXXXXX")
    chmod 755 "$E2E_TMP"        # postfix and nobody must traverse it
    trap 'e2e_on_err $? $LINENO "$BASH_COMMAND"' ERR
    trap e2e_cleanup EXIT
    trap 'say "interrupted"; E2E_FAILED=1; exit 130' INT
    trap 'say "TIMEOUT: watchdog fired after ${E2E_TIME_LIMIT:-?} s"; E2E_FAILED=1; exit 124' TERM
    E2E_TIME_LIMIT=$limit
    # Watchdog: a subshell blocked in the read builtin (no child process to
    # leave behind) on a FIFO nobody writes; when the read times out it
    # sends SIGTERM to the test, whose trap exits through e2e_cleanup.
    mkfifo "$E2E_TMP/.watchdog"
    (
        trap - ERR EXIT INT TERM
        exec 3<>"$E2E_TMP/.watchdog"
        read -r -t "$limit" -u 3 _ && exit 0
        # The test's trap runs only once its foreground command returns:
        # end the test's other direct children (by pid) so that happens now.
        kill -TERM "$$" 2>/dev/null || true
        for p in $(ps -o pid= --ppid "$$"); do
            [ "$p" = "$BASHPID" ] || kill -TERM "$p" 2>/dev/null || true
        done
    ) &
    E2E_WATCHDOG_PID=$!
    say "private dir $E2E_TMP (time limit ${limit}s)"
    e2e_sluice_as_root
}

# Started as root, sluice refuses to run unless security.user says whom to
# become (docs/operations.md). The tests run as root and keep the daemons
# as root on purpose (they read test files, talk to test sockets): SLUICE_BIN
# becomes a wrapper that passes -o security.user=root first, so a test's own
# -o security.user=... still wins. SLUICE_BIN_REAL is the binary itself.
e2e_sluice_as_root() {
    SLUICE_BIN_REAL=${SLUICE_BIN_REAL:-$SLUICE_BIN}
    [ "$(id -u)" = 0 ] || return 0
    printf '#!/bin/sh\nexec %q -o security.user=root "$@"\n' "$SLUICE_BIN_REAL" \
        >"$E2E_TMP/sluice-as-root"
    chmod 755 "$E2E_TMP/sluice-as-root"
    SLUICE_BIN=$E2E_TMP/sluice-as-root
}

# Kill a process group started by e2e_spawn: TERM, wait up to $2 s, KILL.
e2e_kill_group() {
    local pid=$1 grace=${2:-5} i=0
    [ -n "$pid" ] || return 0
    if ! kill -0 "$pid" 2>/dev/null; then
        # Leader gone: still end whatever it left in its process group.
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt $((grace * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# PIDs of processes whose cwd is inside the private directory (ours by
# construction: nobody else knows the directory).
e2e_stray_pids() {
    [ -n "$E2E_TMP" ] || return 0
    # find exits 1 on processes that vanish during the walk: ignore that.
    { find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/cwd' \
        \( -lname "$E2E_TMP" -o -lname "$E2E_TMP/*" \) -printf '%h\n' 2>/dev/null || true; } |
        while IFS= read -r p; do
            p=${p#/proc/}
            if [ "$p" != "$$" ] && [ "$p" != "$BASHPID" ]; then echo "$p"; fi
        done
}

e2e_dump_diagnostics() {
    local f
    if [ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ]; then
        for f in "$E2E_TMP"/sluice.log "$E2E_TMP"/postfix/maillog "$E2E_TMP"/sink*.log; do
            [ -s "$f" ] || continue
            echo "----- last 40 lines of $f -----"
            tail -n 40 "$f"
        done
        if [ "$E2E_POSTFIX_UP" = 1 ]; then
            echo "----- postqueue -p -----"
            pf_queue || true
        fi
    fi
}

# e2e_sanitizer_report LOG: true, with the report on stderr, when LOG holds
# an ASan, UBSan or LeakSanitizer report (a sanitizer build writes them
# into the daemon's log; e2e_cleanup looks at every *.log of the run: any
# report, even a leak found at exit after every check passed, fails it).
e2e_sanitizer_report() {
    grep -qE '^==[0-9]+==ERROR: |^SUMMARY: [A-Za-z]+Sanitizer|:[0-9]+:[0-9]+: runtime error: ' "$1" || return 1
    printf '[%s] FAIL: sanitizer report in %s:\n' "$E2E_NAME" "$1" >&2
    grep -m1 -A60 -E '^==[0-9]+==ERROR: |:[0-9]+:[0-9]+: runtime error: ' "$1" >&2
    return 0
}

e2e_cleanup() {
    local rc=$? pid f
    trap - ERR EXIT INT TERM
    set +e
    [ "$rc" -ne 0 ] && E2E_FAILED=1
    if [ "$E2E_FAILED" = 1 ] || [ "${E2E_VERBOSE:-0}" = 1 ]; then
        e2e_dump_diagnostics >&2
    fi
    [ -n "$E2E_SLUICE_PID" ] && e2e_kill_group "$E2E_SLUICE_PID" 5
    for pid in "${E2E_SINK_PIDS[@]}"; do e2e_kill_group "$pid" 2; done
    if [ "$E2E_POSTFIX_UP" = 1 ]; then
        timeout 20 postfix -c "$PF_CONF" stop >/dev/null 2>&1
    fi
    # Anything left that runs inside our directory: Postfix children that
    # outlived their master, helpers of daemons.
    for pid in $(e2e_stray_pids); do kill -KILL "$pid" 2>/dev/null; done
    [ -n "$E2E_WATCHDOG_PID" ] && kill "$E2E_WATCHDOG_PID" 2>/dev/null && wait "$E2E_WATCHDOG_PID" 2>/dev/null
    # Every daemon has exited now (LeakSanitizer reports at exit): any
    # report in any log of the run fails it, whichever process wrote it.
    if [ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ]; then
        while IFS= read -r -d '' f; do
            ! e2e_sanitizer_report "$f" || E2E_FAILED=1
        done < <(find "$E2E_TMP" -name '*.log' -type f -print0 2>/dev/null)
    fi
    if [ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ]; then
        if [ "${E2E_KEEP:-0}" = 1 ]; then
            say "kept $E2E_TMP"
        else
            rm -rf "$E2E_TMP"
        fi
    fi
    if [ "$E2E_FAILED" = 1 ]; then
        say "RESULT: FAIL"
        [ "$rc" -eq 0 ] && rc=1
    else
        say "RESULT: PASS"
    fi
    exit "$rc"
}

# e2e_spawn LOGFILE CMD [ARGS...]: run CMD in the background in its own
# session/process group, cwd = private dir, stdout+stderr appended to
# LOGFILE. Sets E2E_SPAWNED_PID.
e2e_spawn() {
    local log=$1
    shift
    # Without job control a background job is not a process group leader, so
    # setsid(1) does not fork: $! is the daemon itself and its pgid.
    (cd "$E2E_TMP" && exec setsid "$@" >>"$log" 2>&1 </dev/null) &
    E2E_SPAWNED_PID=$!
}

# ---------------------------------------------------------------------------
# Ports and polling

# wait_for SECONDS CMD [ARGS...]: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

port_in_use() {
    [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
}

# free_port: print a TCP port with no socket on it, never the same twice in
# one test. Below the ephemeral range (32768+) so outgoing connections
# cannot take it between now and the bind.
free_port() {
    local p i
    for i in $(seq 1 500); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [ -e "$E2E_TMP/.port.$p" ] && continue
        port_in_use "$p" && continue
        : >"$E2E_TMP/.port.$p"
        echo "$p"
        return 0
    done
    fail "free_port: no free port found after $i tries"
}

port_listening() {
    local host=$1 port=$2
    ss -Hltn "( sport = :$port )" 2>/dev/null |
        awk -v a="$host:$port" -v p=":$port" '$4 == a || $4 == "0.0.0.0" p || $4 == "*" p || $4 == "[::]" p { f = 1 } END { exit !f }'
}

# wait_port HOST PORT SECONDS: wait until something listens there (checked
# with ss, so no connection is opened to the daemon).
wait_port() {
    wait_for "$3" port_listening "$1" "$2"
}

# ---------------------------------------------------------------------------
# sluice

SLUICE_LOG=
SLUICE_PORT=

sluice_alive() { [ -n "$E2E_SLUICE_PID" ] && kill -0 "$E2E_SLUICE_PID" 2>/dev/null; }

# True once sluice listens -- or has died (start_sluice tells which).
sluice_up_or_dead() {
    ! sluice_alive || port_listening 127.0.0.1 "$SLUICE_PORT"
}

# start_sluice [ARGS...]: "$SLUICE_BIN" all -o log.target=stderr ARGS... in
# the background, stderr to $E2E_TMP/sluice.log (appended across restarts),
# then wait for the listen port (frontend.listen from ARGS, else
# $E2E_SLUICE_PORT for a port set in a -c file, else 10024).
# The environment is passed on (e.g. SLUICE_TEST_WORKER_DELAY_MS).
start_sluice() {
    local a rc=0
    [ -x "$SLUICE_BIN" ] || fail "SLUICE_BIN=$SLUICE_BIN is not an executable (build it: cmake --build build --target sluice)"
    [ -z "$E2E_SLUICE_PID" ] || fail "start_sluice: sluice already running (pid $E2E_SLUICE_PID)"
    SLUICE_LOG=$E2E_TMP/sluice.log
    SLUICE_PORT=${E2E_SLUICE_PORT:-$STD_FILTER_PORT}
    for a in "$@"; do
        case $a in frontend.listen=*:*) SLUICE_PORT=${a##*:} ;; esac
    done
    if [ -e /etc/sluice/sluice.yaml ]; then
        case " $* " in *" -c "*) ;; *) say "NOTE: /etc/sluice/sluice.yaml exists and sluice reads it by default" ;; esac
    fi
    E2E_SLUICE_STARTS=$((E2E_SLUICE_STARTS + 1))
    echo "===== e2e: start #$E2E_SLUICE_STARTS: $SLUICE_BIN all -o log.target=stderr $*" >>"$SLUICE_LOG"
    e2e_spawn "$SLUICE_LOG" "$SLUICE_BIN" all -o log.target=stderr "$@"
    E2E_SLUICE_PID=$E2E_SPAWNED_PID
    wait_for 15 sluice_up_or_dead ||
        fail "sluice (pid $E2E_SLUICE_PID) does not listen on 127.0.0.1:$SLUICE_PORT after 15 s"
    if ! sluice_alive; then
        wait "$E2E_SLUICE_PID" 2>/dev/null || rc=$?
        E2E_SLUICE_PID=
        fail "sluice exited during start-up (status $rc); its log follows"
    fi
    say "sluice started (pid $E2E_SLUICE_PID, 127.0.0.1:$SLUICE_PORT): all -o log.target=stderr $*"
}

# stop_sluice: SIGTERM, wait up to 10 s, then SIGKILL. Returns sluice's exit
# status (or 137 if it had to be killed).
stop_sluice() {
    local rc=0 i=0
    [ -n "$E2E_SLUICE_PID" ] || return 0
    kill -TERM "$E2E_SLUICE_PID" 2>/dev/null || true
    while sluice_alive && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if sluice_alive; then
        say "sluice ignored SIGTERM for 10 s; killing it"
        kill -KILL -- "-$E2E_SLUICE_PID" 2>/dev/null || true
    fi
    wait "$E2E_SLUICE_PID" 2>/dev/null || rc=$?
    kill -KILL -- "-$E2E_SLUICE_PID" 2>/dev/null || true   # helpers, if any
    say "sluice stopped (status $rc)"
    E2E_SLUICE_PID=
    return "$rc"
}

# kill_sluice: SIGKILL the whole process group, as a crash or the OOM killer would.
kill_sluice() {
    [ -n "$E2E_SLUICE_PID" ] || return 0
    kill -KILL -- "-$E2E_SLUICE_PID" 2>/dev/null || kill -KILL "$E2E_SLUICE_PID" 2>/dev/null || true
    wait "$E2E_SLUICE_PID" 2>/dev/null || true
    say "sluice killed with SIGKILL (pid $E2E_SLUICE_PID)"
    E2E_SLUICE_PID=
}

# sluice_log_count ERE: number of lines of the sluice log matching ERE.
sluice_log_count() {
    [ -f "$SLUICE_LOG" ] || { echo 0; return 0; }
    grep -cE -- "$1" "$SLUICE_LOG" || true
}

sluice_log_has() { [ "$(sluice_log_count "$1")" -gt 0 ]; }

# ---------------------------------------------------------------------------
# smtp-sink

# start_sink PORT DIR [EXTRA SMTP-SINK ARGS...]: smtp-sink on 127.0.0.1:PORT
# dumping each mail transaction into its own file DIR/m.<random hex> (-d: the
# template goes through strftime(3), then a random hex suffix is appended;
# smtp-sink writes as "nobody" after -u). Sets SINK_PID.
start_sink() {
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    chown nobody "$dir"
    e2e_spawn "$E2E_TMP/sink.$port.log" smtp-sink -u nobody -d "$dir/m." "$@" "127.0.0.1:$port" 256
    SINK_PID=$E2E_SPAWNED_PID
    E2E_SINK_PIDS+=("$SINK_PID")
    wait_port 127.0.0.1 "$port" 10 || fail "smtp-sink does not listen on 127.0.0.1:$port (see $E2E_TMP/sink.$port.log)"
    say "smtp-sink started (pid $SINK_PID, 127.0.0.1:$port, dumps in $dir) $*"
}

stop_sink() {
    local pid=${1:-$SINK_PID}
    e2e_kill_group "$pid" 2
}

# sink_count DIR: number of transactions smtp-sink dumped into DIR.
sink_count() {
    find "$1" -maxdepth 1 -type f -name 'm.*' 2>/dev/null | wc -l
}

# ---------------------------------------------------------------------------
# Private Postfix instance

PF_DIR=
PF_CONF=
PF_QUEUE=
PF_DATA=
PF_VMAIL=
PF_LOG=
PF_SMTP_PORT=
PF_FILTER_PORT=$STD_FILTER_PORT
PF_REINJECT_PORT=$STD_REINJECT_PORT
PF_REINJECT_ENABLED=1

# pf_choose_ports: keep the standard 10024/10025 when both are free (the normal
# case; the tests then run sluice with its defaults), otherwise move both to
# free ports and say so. sluice_args_for_postfix prints the matching options.
pf_choose_ports() {
    # Only listeners matter: TIME-WAIT leftovers of an earlier test do not
    # stop Postfix or sluice from binding (SO_REUSEADDR).
    if port_listening 127.0.0.1 "$STD_FILTER_PORT" || port_listening 127.0.0.1 "$STD_REINJECT_PORT"; then
        PF_FILTER_PORT=$(free_port)
        PF_REINJECT_PORT=$(free_port)
        say "NOTE: 127.0.0.1:$STD_FILTER_PORT or :$STD_REINJECT_PORT is busy on this machine;" \
            "using filter port $PF_FILTER_PORT and reinjection port $PF_REINJECT_PORT instead of the standard ones"
    else
        PF_FILTER_PORT=$STD_FILTER_PORT
        PF_REINJECT_PORT=$STD_REINJECT_PORT
    fi
}

# sluice_args_for_postfix: the sluice options that match the instance's
# ports; nothing at all when the standard ports are in use (sluice defaults).
sluice_args_for_postfix() {
    if [ "$PF_FILTER_PORT" != "$STD_FILTER_PORT" ]; then
        printf '%s\n' -o "frontend.listen=127.0.0.1:$PF_FILTER_PORT"
    fi
    if [ "$PF_REINJECT_PORT" != "$STD_REINJECT_PORT" ]; then
        printf '%s\n' -o "origins.default.reinject=127.0.0.1:$PF_REINJECT_PORT"
    fi
}

pf_write_main_cf() {
    local nobody_uid nobody_gid
    nobody_uid=$(id -u nobody)
    nobody_gid=$(id -g nobody)
    cat >"$PF_CONF/main.cf" <<EOF
# Private Postfix instance for one sluice end-to-end test.
# Generated by tests/e2e/lib.sh; removed with the test's private directory.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
mail_owner = postfix
setgid_group = postdrop

# Loopback only; the main smtpd is on a free port (master.cf), not :25.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = localhost
mydomain = localdomain
myorigin = \$myhostname
mydestination = localhost
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = \$myhostname ESMTP Postfix (sluice e2e)

# Final delivery: virtual(8) into Maildirs under the private directory, as
# "nobody", so no system user is needed. Trailing "/" = Maildir.
virtual_mailbox_domains = $E2E_DOMAIN
virtual_mailbox_base = $PF_VMAIL
virtual_mailbox_maps = texthash:$PF_CONF/vmailbox
virtual_uid_maps = static:$nobody_uid
virtual_gid_maps = static:$nobody_gid
virtual_minimum_uid = 100

# syslog is usually not running here: postlogd writes this file.
maillog_file = $PF_LOG
maillog_file_prefixes = $E2E_TMP

# Test speed only, on the Postfix side: retry deferred mail and un-throttle a
# dead destination after seconds instead of minutes, and do not slow down
# injecting clients. These do not change the filter integration below.
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
transport_retry_time = 5s
in_flow_delay = 0
delay_warning_time = 0

# ---- The filter (docs/postfix.md, "main.cf"), as amavisd-new setups have it.
content_filter = amavisfeed:[127.0.0.1]:$PF_FILTER_PORT
amavisfeed_destination_concurrency_limit = 2
EOF
    cat >"$PF_CONF/vmailbox" <<EOF
$E2E_RCPT e2e.test/user/
@$E2E_DOMAIN e2e.test/catchall/
EOF
}

pf_write_master_cf() {
    local c=''
    [ "$PF_REINJECT_ENABLED" = 1 ] || c='#'
    cat >"$PF_CONF/master.cf" <<EOF
# Private Postfix instance for one sluice end-to-end test (tests/e2e/lib.sh).
# No chroot anywhere (the private directory is not a chroot jail).
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
# ==========================================================================
127.0.0.1:$PF_SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
#
# ---- The LMTP feed to the content filter (docs/postfix.md), as amavisd-new
# setups have it.
amavisfeed unix    -       -       n        -       2     lmtp
     -o lmtp_data_done_timeout=1200
     -o lmtp_send_xforward_command=yes
     -o lmtp_tls_note_starttls_offer=no
#
# ---- The reinjection smtpd (docs/postfix.md), as amavisd-new setups have
# it, plus the last line, smtpd_authorized_xforward_hosts, which the classic
# amavisd-new setup leaves out: without it this smtpd does not offer
# XFORWARD (and answers one with 550 5.7.0), so the filter cannot pass on
# the origin's client and queue id; with it Postfix
# logs "client=localhost[127.0.0.1], orig_queue_id=<origin queue id>,
# orig_client=<original client>" for each reinjected message.
# Lines start with "#" while the test keeps this listener down.
${c}127.0.0.1:$PF_REINJECT_PORT inet n  -       n       -       -  smtpd
${c}     -o content_filter=
${c}     -o smtpd_delay_reject=no
${c}     -o smtpd_client_restrictions=permit_mynetworks,reject
${c}     -o smtpd_helo_restrictions=
${c}     -o smtpd_sender_restrictions=
${c}     -o smtpd_recipient_restrictions=permit_mynetworks,reject
${c}     -o smtpd_data_restrictions=reject_unauth_pipelining
${c}     -o smtpd_end_of_data_restrictions=
${c}     -o smtpd_restriction_classes=
${c}     -o mynetworks=127.0.0.0/8
${c}     -o smtpd_error_sleep_time=0
${c}     -o smtpd_soft_error_limit=1001
${c}     -o smtpd_hard_error_limit=1000
${c}     -o smtpd_client_connection_count_limit=0
${c}     -o smtpd_client_connection_rate_limit=0
${c}     -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters
${c}     -o local_header_rewrite_clients=
${c}     -o smtpd_milters=
${c}     -o local_recipient_maps=
${c}     -o relay_recipient_maps=
${c}     -o smtpd_authorized_xforward_hosts=127.0.0.0/8
EOF
}

# pf_layout DIR: point the PF_* paths at a private instance under DIR
# (configuration in DIR/etc, queue, data, Maildirs, maillog) and make the
# directories; pf_write_main_cf and pf_write_master_cf write there.
pf_layout() {
    PF_DIR=$1
    PF_CONF=$PF_DIR/etc
    PF_QUEUE=$PF_DIR/spool
    PF_DATA=$PF_DIR/data
    PF_VMAIL=$PF_DIR/vmail
    PF_LOG=$PF_DIR/maillog
    mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$PF_VMAIL"
}

# start_postfix [--reinject-down]: create and start the private instance.
# --reinject-down writes the :10025 listener commented out (pf_reinject_up
# enables it later). Sets PF_* variables.
start_postfix() {
    local out
    [ "${1:-}" = --reinject-down ] && PF_REINJECT_ENABLED=0
    need_cmd postfix postconf postqueue swaks ss setsid
    pf_layout "$E2E_TMP/postfix"
    chown postfix "$PF_DATA"
    chown nobody "$PF_VMAIL"
    PF_SMTP_PORT=$(free_port)
    pf_write_main_cf
    pf_write_master_cf
    # "postfix check" creates the queue's subdirectories with the owners and
    # modes of postfix-files (set-permissions would also do).
    out=$(timeout 60 postfix -c "$PF_CONF" check 2>&1) || fail "postfix check failed: $out"
    [ -z "$out" ] || say "postfix check: $out"
    out=$(timeout 60 postfix -c "$PF_CONF" start 2>&1) || fail "postfix start failed: $out"
    E2E_POSTFIX_UP=1
    wait_port 127.0.0.1 "$PF_SMTP_PORT" 20 || fail "Postfix smtpd does not listen on 127.0.0.1:$PF_SMTP_PORT"
    if [ "$PF_REINJECT_ENABLED" = 1 ]; then
        wait_port 127.0.0.1 "$PF_REINJECT_PORT" 20 || fail "Postfix :$PF_REINJECT_PORT smtpd does not listen"
    fi
    say "Postfix started: config $PF_CONF, smtpd 127.0.0.1:$PF_SMTP_PORT," \
        "content_filter amavisfeed:[127.0.0.1]:$PF_FILTER_PORT," \
        "reinjection 127.0.0.1:$PF_REINJECT_PORT $([ "$PF_REINJECT_ENABLED" = 1 ] && echo up || echo DOWN)"
}

pf_reload() {
    local out
    out=$(timeout 30 postfix -c "$PF_CONF" reload 2>&1) || fail "postfix reload failed: $out"
}

# pf_reinject_up / pf_reinject_down: (un)comment the :10025 service, reload.
pf_reinject_up() {
    PF_REINJECT_ENABLED=1
    pf_write_master_cf
    pf_reload
    wait_port 127.0.0.1 "$PF_REINJECT_PORT" 20 || fail "Postfix :$PF_REINJECT_PORT smtpd does not listen after reload"
    say "Postfix reinjection listener 127.0.0.1:$PF_REINJECT_PORT enabled"
}

pf_reinject_closed() { ! port_listening 127.0.0.1 "$PF_REINJECT_PORT"; }

pf_reinject_down() {
    PF_REINJECT_ENABLED=0
    pf_write_master_cf
    pf_reload
    wait_for 20 pf_reinject_closed ||
        fail "Postfix :$PF_REINJECT_PORT still listens after reload"
    say "Postfix reinjection listener 127.0.0.1:$PF_REINJECT_PORT disabled"
}

pf_stop() {
    [ "$E2E_POSTFIX_UP" = 1 ] || return 0
    timeout 30 postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
    E2E_POSTFIX_UP=0
}

# postqueue helpers
pf_queue() { timeout 20 postqueue -c "$PF_CONF" -p; }
pf_flush() {
    timeout 20 postqueue -c "$PF_CONF" -f || fail "postqueue -f failed"
    say "Postfix queue flushed (postqueue -f)"
}
# Number of messages in the instance's queue (any state).
pf_queue_count() {
    find "$PF_QUEUE/incoming" "$PF_QUEUE/active" "$PF_QUEUE/deferred" "$PF_QUEUE/hold" \
        "$PF_QUEUE/maildrop" -type f 2>/dev/null | wc -l
}
pf_queue_empty() { [ "$(pf_queue_count)" -eq 0 ]; }

# maillog helpers: fixed-string or ERE match counts
maillog_count() {
    [ -f "$PF_LOG" ] || { echo 0; return 0; }
    grep -cE -- "$1" "$PF_LOG" || true
}
maillog_count_fixed() {
    [ -f "$PF_LOG" ] || { echo 0; return 0; }
    grep -cF -- "$1" "$PF_LOG" || true
}
maillog_has() { [ "$(maillog_count "$1")" -gt 0 ]; }
maillog_has_fixed() { [ "$(maillog_count_fixed "$1")" -gt 0 ]; }
maillog_grep() {
    [ -f "$PF_LOG" ] || return 0
    grep -E -- "$1" "$PF_LOG" || true
}
# wait_maillog ERE SECONDS
wait_maillog() { wait_for "$2" maillog_has "$1"; }

# ERE-quote a string (for queue ids and message ids in patterns).
ere_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'; }

# inject_mail TO MESSAGE-ID [SUBJECT]: one message over SMTP into the
# instance's main smtpd with swaks. Sets INJECT_QID to the queue id Postfix
# gave it (from "250 2.0.0 Ok: queued as ID").
INJECT_QID=
inject_mail() {
    local to=$1 msgid=$2 subject=${3:-sluice e2e $E2E_NAME} out
    out=$E2E_TMP/swaks.$RANDOM.log
    if ! timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --helo e2e-client.test \
        --from "$E2E_FROM" --to "$to" --timeout 30 \
        --header "Message-Id: <$msgid>" --header "Subject: $subject" \
        --body "sluice end-to-end test $E2E_NAME, message $msgid" >"$out" 2>&1; then
        cat "$out" >&2
        fail "swaks could not inject the message into 127.0.0.1:$PF_SMTP_PORT"
    fi
    INJECT_QID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\).*/\1/p' "$out" | head -n 1)
    [ -n "$INJECT_QID" ] || fail "no queue id in swaks transcript $out"
    say "injected <$msgid> for <$to>: Postfix queue id $INJECT_QID"
}

# inject_sendmail TO MESSAGE-ID: the same through sendmail -C (pickup path).
inject_sendmail() {
    local to=$1 msgid=$2
    printf 'From: <%s>\nTo: <%s>\nSubject: sluice e2e %s\nMessage-Id: <%s>\n\nsluice end-to-end test.\n' \
        "$E2E_FROM" "$to" "$E2E_NAME" "$msgid" |
        timeout 30 sendmail -C "$PF_CONF" -f "$E2E_FROM" "$to" ||
        fail "sendmail -C $PF_CONF failed"
    say "injected <$msgid> for <$to> with sendmail"
}

# Maildir helpers (all mailboxes of the instance)
maildir_files() {
    find "$PF_VMAIL" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null
}
maildir_count() { maildir_files | wc -l; }
# maildir_count_msgid MESSAGE-ID: delivered copies carrying that Message-Id
maildir_count_msgid() {
    local f n=0
    while IFS= read -r f; do
        grep -qiF "Message-Id: <$1>" "$f" && n=$((n + 1))
    done < <(maildir_files)
    echo "$n"
}
# wait_delivered COUNT SECONDS: wait until at least COUNT messages sit in the
# Maildirs, then 2 s more to catch extra copies; fail if more than COUNT.
maildir_at_least() { [ "$(maildir_count)" -ge "$1" ]; }
wait_delivered() {
    local want=$1 n
    wait_for "$2" maildir_at_least "$want" || return 1
    sleep 2
    n=$(maildir_count)
    [ "$n" -eq "$want" ] || fail "expected $want delivered message(s), found $n"
}

# start_sluice_for_postfix [EXTRA ARGS...]: start_sluice with the options
# that match the instance's ports (none when the standard ports are used).
start_sluice_for_postfix() {
    local args=()
    mapfile -t args < <(sluice_args_for_postfix)
    start_sluice "${args[@]}" "$@"
}

# mail_headers FILE: the header section with folded lines unfolded, one
# header per line, CRs removed.
mail_headers() {
    tr -d '\r' <"$1" | awk '
        /^$/ { if (have) print buf; have = 0; exit }
        /^[ \t]/ { sub(/^[ \t]+/, " "); buf = buf $0; next }
        { if (have) print buf; buf = $0; have = 1 }
        END { if (have) print buf }'
}

# header_count FILE ERE: number of (unfolded) header lines matching ERE.
header_count() { mail_headers "$1" | grep -cE -- "$2" || true; }
