#!/usr/bin/env bash
# t_cluster_curve.sh - CURVE on the cluster's ZeroMQ links (docs/cluster.md,
# "Security"): a broker, workers and a frontend as separate processes over
# tcp://, keys made by `sluice keygen`, the broker's allow-list by role.
#
# Proves:
#   - a frontend and a worker whose keys are on the allow-list deliver mail;
#   - a worker with an unknown key never takes a job (the broker logs the
#     refused key id; the good worker still delivers everything);
#   - a plain (non-CURVE) worker cannot connect at all;
#   - a worker holding a frontend key cannot register as a worker (the
#     broker holds each key to its role);
#   - removing a key and sending SIGHUP locks that worker out at its next
#     connect; putting it back and SIGHUP lets it in again, no restart;
#   - the bytes between worker and broker (recorded by a TCP relay in
#     between) do not contain a marker of the message body with CURVE, and
#     DO contain it with security.mode: plain (so the check can fail).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 170
cl_init
need_cmd python3 smtp-sink

sink_port=$(free_port)
start_sink "$sink_port" "$E2E_TMP/sink"

# relay LISTEN_PORT UPSTREAM_PORT FILE: a TCP relay that appends every byte
# it carries, both ways, to FILE.
cat >"$E2E_TMP/relay.py" <<'EOF'
import socket, sys, threading
listen, upstream, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
out = open(path, "ab", buffering=0)
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            with lock:
                out.write(data)
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(16)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
EOF

# send_lmtp PORT COUNT MARKER: COUNT messages over LMTP, MARKER in each body;
# fails unless every one is answered 250.
send_lmtp() {
    timeout 60 python3 - "$1" "$2" "$3" <<'EOF' || fail "LMTP delivery through the frontend failed"
import smtplib, sys
port, count, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = smtplib.LMTP("127.0.0.1", port)
for i in range(count):
    body = ("From: a@e2e.test\r\nTo: b@e2e.test\r\nSubject: curve %d\r\n"
            "Message-ID: <curve.%d.%s@e2e.test>\r\n\r\n%s line %d\r\n" % (i, i, marker, marker, i))
    refused = c.sendmail("a@e2e.test", ["b@e2e.test"], body)
    assert not refused, refused
c.quit()
EOF
}

# start_relay NAME UPSTREAM_PORT: sets RELAY_PORT; records into $E2E_TMP/NAME.bytes.
start_relay() {
    RELAY_PORT=$(free_port)
    : >"$E2E_TMP/$1.bytes"
    cl_spawn "$1" python3 "$E2E_TMP/relay.py" "$RELAY_PORT" "$2" "$E2E_TMP/$1.bytes"
    wait_port 127.0.0.1 "$RELAY_PORT" 10 || fail "relay $1 does not listen"
}

# start_fe NAME [ARGS]: a frontend reinjecting into the sink.
start_fe() {
    local name=$1
    shift
    cl_start_frontend "$name" -o "origins.default.reinject=127.0.0.1:$sink_port" "$@"
}

sink_at_least() { [ "$(sink_count "$E2E_TMP/sink")" -ge "$1" ]; }
key_id() { grep -v '^#' "$CL_KEYS/$1.pub" | cut -c1-8; }
broker_log_has() { grep -qF -- "$1" "${CL_LOG[b1]}"; }
ready_from() { grep -qE "broker: worker [^ ]*:$1:[^ ]* ready" "${CL_LOG[b1]}"; }

# ---- CURVE: admitted keys deliver; the rogue, plain and wrong-role workers do not
marker_curve=CURVEMARK$RANDOM$RANDOM$RANDOM
cl_start_broker b1
broker_port=${CL_BROKER_PORT[b1]}
start_relay relay "$broker_port"
cl_keygen rogue
# w1 reaches the broker through the relay, so its traffic is recorded
CL_BROKER_PORT[b1]=$RELAY_PORT
cl_start_worker w1 2
CL_BROKER_PORT[b1]=$broker_port
cl_start_worker rogue 2 rogue
CL_SECURITY=plain cl_start_worker plainw 2
cl_start_worker wrongrole 2 frontend
start_fe fa
sleep 2
w1_pid=${CL_PID[w1]}
wait_for 10 ready_from "$w1_pid" || fail "worker w1 (key on the allow-list) did not register"
ok "worker w1 admitted: broker log shows it ready"

send_lmtp "${CL_FE_PORT[fa]}" 20 "$marker_curve"
wait_for 20 sink_at_least 20 || true
[ "$(sink_count "$E2E_TMP/sink")" -eq 20 ] ||
    fail "$(sink_count "$E2E_TMP/sink") messages reached the sink, expected 20"
grep -qF "$marker_curve" "$E2E_TMP"/sink/m.* || fail "the marker is not in the delivered mail"
ok "20 messages through frontend, broker and worker over CURVE, all delivered"

rogue_id=$(key_id rogue)
broker_log_has "CURVE key $rogue_id from 127.0.0.1 refused: not on the allow-list" ||
    fail "the broker did not log the rogue key id $rogue_id as refused"
ready_from "${CL_PID[rogue]}" && fail "the rogue worker registered with the broker"
ok "worker with an unknown key refused (broker log names key id $rogue_id), never registered"

ready_from "${CL_PID[plainw]}" && fail "a plain (non-CURVE) worker registered with the broker"
ok "plain (non-CURVE) worker cannot connect: never registered"

ready_from "${CL_PID[wrongrole]}" && fail "a worker with a frontend key registered as a worker"
broker_log_has "dropped a ready frame from key frontend:$(key_id frontend)" ||
    fail "the broker did not log the wrong-role key"
ok "worker holding a frontend key: its frames dropped, never registered (wrong role)"

bytes=$(stat -c %s "$E2E_TMP/relay.bytes")
[ "$bytes" -gt 4000 ] || fail "the relay recorded only $bytes bytes: w1 did not use it"
if grep -qaF "$marker_curve" "$E2E_TMP/relay.bytes"; then
    fail "the body marker crossed the wire in plaintext with CURVE on"
fi
ok "worker<->broker traffic ($bytes bytes recorded) carries no plaintext marker with CURVE"

# ---- remove w1's key, SIGHUP: locked out at its next connect; back, SIGHUP: admitted
cl_kill rogue TERM
cl_kill plainw TERM
cl_kill wrongrole TERM
mv "$CL_KEYS/allow/worker/worker.pub" "$CL_KEYS/worker.pub.removed"
cl_kill b1 HUP
wait_for 5 broker_log_has "allow-list reloaded from $CL_KEYS/allow: 1 frontend, 0 worker" ||
    fail "the broker did not reload its allow-list on SIGHUP"
cl_kill w1 TERM
cl_restart w1
w1_pid=${CL_PID[w1]}
worker_id=$(key_id worker)
wait_for 10 broker_log_has "CURVE key $worker_id from 127.0.0.1 refused" ||
    fail "w1's key was not refused after its removal"
sleep 2
ready_from "$w1_pid" && fail "w1 registered although its key was removed"
ok "key removed + SIGHUP: w1 refused at its next connect (key id $worker_id), never registered"
mv "$CL_KEYS/worker.pub.removed" "$CL_KEYS/allow/worker/worker.pub"
cl_kill b1 HUP
wait_for 10 ready_from "$w1_pid" || fail "w1 not admitted after its key came back"
send_lmtp "${CL_FE_PORT[fa]}" 1 "$marker_curve"
wait_for 20 sink_at_least 21 || fail "mail does not flow after the key came back"
ok "key back + SIGHUP: w1 admitted again without restarting the broker, mail flows"
cl_kill fa TERM
cl_kill w1 TERM
cl_kill b1 TERM
cl_kill relay TERM

# ---- the same path in plain mode: the marker must show up in the capture
CL_SECURITY=plain
marker_plain=PLAINMARK$RANDOM$RANDOM$RANDOM
CL_BROKERS=()
CL_BROKER_PORT[b1]=$(free_port)
cl_start_broker b1
grep -qF "security.mode is plain" "${CL_LOG[b1]}" || fail "plain mode did not warn at start"
start_relay relay2 "${CL_BROKER_PORT[b1]}"
broker_port=${CL_BROKER_PORT[b1]}
CL_BROKER_PORT[b1]=$RELAY_PORT
cl_start_worker w2 2
CL_BROKER_PORT[b1]=$broker_port
start_fe fb
sleep 2
before=$(sink_count "$E2E_TMP/sink")
send_lmtp "${CL_FE_PORT[fb]}" 3 "$marker_plain"
wait_for 20 sink_at_least $((before + 3)) || fail "plain mode: mail does not flow"
grep -qaF "$marker_plain" "$E2E_TMP/relay2.bytes" ||
    fail "plain mode: the marker is not in the captured bytes, so the CURVE check proves nothing"
ok "security.mode plain: warning logged, and the same capture does show the marker (the check can fail)"

