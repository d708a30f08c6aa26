#!/usr/bin/env bash
# t_systemd_socket.sh - socket activation: `sluice all` started by
# systemd-socket-activate(1), which binds the port, passes it as descriptor
# 3 and 4 (LISTEN_FDS=2, LISTEN_PID) and starts sluice at the first connection,
# as systemd does with deploy/systemd/sluice.socket.
#
# Proves: sluice serves on both sockets it was given and binds nothing itself
# (frontend.listen names a port that is taken: binding it would fail with
# exit status 71); mail passes (smtp-source over LMTP into smtp-sink); the
# child is SIGKILLed and the next 20 messages, sent at once, all pass (the
# connections wait in the backlog of the socket systemd made until the new
# child accepts them); a socket of the wrong kind (ListenDatagram=) is
# refused at start with a message naming LISTEN_FDS and exit status 71.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd systemd-socket-activate smtp-source smtp-sink

sink_port=$(free_port)
port=$(free_port)
port2=$(free_port)
sink_dir=$E2E_TMP/sink
start_sink "$sink_port" "$sink_dir"

SLUICE_LOG=$E2E_TMP/sluice.log
# frontend.listen is the sink's port, which is taken: proof that nothing is bound
e2e_spawn "$SLUICE_LOG" systemd-socket-activate -l "127.0.0.1:$port" -l "127.0.0.1:$port2" \
    "$SLUICE_BIN" all -o log.target=stderr -o "frontend.listen=127.0.0.1:$sink_port" \
    -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=4
E2E_SLUICE_PID=$E2E_SPAWNED_PID      # systemd-socket-activate execs sluice: same pid
wait_port 127.0.0.1 "$port" 10 || fail "systemd-socket-activate does not listen on :$port"
say "systemd-socket-activate listens on 127.0.0.1:$port (pid $E2E_SLUICE_PID)"

# send ROUND COUNT [PORT]: COUNT messages over LMTP, one session each, 4 at
# once; smtp-source must report no error.
send() {
    local out=$E2E_TMP/smtp-source.$1.log rc=0
    timeout 60 smtp-source -L -N -s 4 -m "$2" -l 1024 -f "sender@$E2E_DOMAIN" \
        -t "rcpt$1@$E2E_DOMAIN" "127.0.0.1:${3:-$port}" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || [ -s "$out" ]; then
        tail -n 5 "$out" >&2
        fail "round $1: smtp-source exited $rc or reported errors (above)"
    fi
}
sink_has() { [ "$(sink_count "$sink_dir")" -ge "$1" ]; }

send 1 20      # the first connection starts sluice
wait_for 10 sink_has 20 || fail "round 1: $(sink_count "$sink_dir") of 20 messages reached the sink"
ok "round 1: 20 messages through the socket-activated sluice"
sluice_log_has "socket activation: 2 listening socket\(s\) from systemd \(first 127\.0\.0\.1:$port\); frontend\.listen is not used" ||
    fail "sluice did not log that it uses systemd's sockets"
sluice_log_has "frontend accepting on 127\.0\.0\.1:$port2" || fail "the frontend does not accept on systemd's second socket"
send 1b 10 "$port2"
wait_for 10 sink_has 30 || fail "round 1b: $(($(sink_count "$sink_dir") - 20)) of 10 messages reached the sink"
# the Received: line names the port the client came in on, not the first socket's
n1=$(grep -l "rcpt1b@" "$sink_dir"/m.* | xargs grep -l "(sluice [^,]*, port $port2)" | wc -l || true)
n2=$(grep -l "rcpt1@" "$sink_dir"/m.* | xargs grep -l "(sluice [^,]*, port $port)" | wc -l || true)
[ "$n1" -eq 10 ] && [ "$n2" -eq 20 ] ||
    fail "Received: lines: $n1 of 10 name port $port2, $n2 of 20 name port $port"
ok "sluice took descriptors 3 and 4 from systemd-socket-activate, serves both, and bound nothing (frontend.listen is a taken port); Received: names each message's own port"

master=$E2E_SLUICE_PID
child=$(awk '{ print $1 }' "/proc/$master/task/$master/children" 2>/dev/null || true)
[ -n "$child" ] || fail "sluice (pid $master) has no child"
kill -KILL "$child"
say "SIGKILL to the child, pid $child; sending round 2 at once"
t0=$(date +%s%N)
send 2 20
ms=$((($(date +%s%N) - t0) / 1000000))
wait_for 10 sink_has 50 || fail "round 2: $(($(sink_count "$sink_dir") - 30)) of 20 messages reached the sink"
[ "$(sink_count "$sink_dir")" -eq 50 ] || fail "$(sink_count "$sink_dir") messages at the sink, expected 50"
sluice_log_has "warning: master: sluice all child pid $child killed by signal 9" ||
    fail "the master did not log its child's death"
kill -0 "$master" 2>/dev/null || fail "the master is gone"
ok "round 2: 20 messages sent while the child was dead all passed in $ms ms (they waited in the backlog)"

rc=0
stop_sluice || rc=$?
[ "$rc" -eq 0 ] || fail "sluice exited with status $rc on SIGTERM, expected 0"
ok "SIGTERM: stopped, status 0"

# A datagram socket is not what sluice.socket may pass: refused at start.
uport=$(free_port)
e2e_spawn "$E2E_TMP/sluice-udp.log" systemd-socket-activate --datagram -l "127.0.0.1:$uport" \
    "$SLUICE_BIN" all -o log.target=stderr -o "origins.default.reinject=127.0.0.1:$sink_port"
E2E_SLUICE_PID=$E2E_SPAWNED_PID
sleep 0.5
echo x >"/dev/udp/127.0.0.1/$uport"      # activates it
rc=0
wait_for 10 eval '! kill -0 "$E2E_SLUICE_PID" 2>/dev/null' || fail "sluice does not exit on a datagram socket"
wait "$E2E_SLUICE_PID" || rc=$?
E2E_SLUICE_PID=
[ "$rc" -eq 71 ] || fail "exit status $rc on a datagram socket, expected 71 (EX_OSERR); log: $(tail -n 2 "$E2E_TMP/sluice-udp.log")"
grep -q "fatal: LISTEN_FDS: descriptor 3 is not a listening stream socket" "$E2E_TMP/sluice-udp.log" ||
    fail "no message naming LISTEN_FDS: $(tail -n 2 "$E2E_TMP/sluice-udp.log")"
ok "a datagram socket from systemd: refused at start, exit status 71, message names LISTEN_FDS"
