#!/usr/bin/env bash
# t_cluster_fairness.sh - fair scheduling across origins in the broker.
#
# One broker, one worker process with 2 threads and a 50 ms scan (the
# test-only SLUICE_TEST_WORKER_DELAY_MS), one frontend with two origins:
# "flood" (127.0.0.1, concurrency 20) and "trickle" (127.0.0.3, concurrency
# 2), both reinjecting into smtp-sink. A small LMTP client bound to
# 127.0.0.3 measures the trickle's per-message latency (end of data to the
# reply) alone, then while smtp-source floods from 127.0.0.1 with 20
# sessions. In arrival order (FIFO) each trickle message would wait behind
# ~18 flood jobs (~450 ms more); with the broker's proportional share it
# goes out at the next free slot.
#
# Proves: the trickle's median latency under the flood stays within 3x its
# unloaded median (and the flood itself is not refused anything).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 170
need_root
need_cmd smtp-source smtp-sink python3
cl_trap
cl_keys_init

sink_port=$(free_port)
start_sink "$sink_port" "$E2E_TMP/sink"
cl_start_broker b1
SLUICE_TEST_WORKER_DELAY_MS=50 cl_start_worker w1 2
fe_port=$(free_port)
CL_FE_PORT[fe]=$fe_port
mapfile -t sec < <(cl_security_args frontend)
cl_spawn fe "$SLUICE_BIN" frontend -o log.target=stderr "${sec[@]}" \
    -o "frontend.listen=127.0.0.1:$fe_port" \
    -o "broker.endpoints=$(cl_endpoints)" \
    -o origins.flood.match=127.0.0.1 -o "origins.flood.reinject=127.0.0.1:$sink_port" \
    -o origins.flood.concurrency=20 \
    -o origins.trickle.match=127.0.0.3 -o "origins.trickle.reinject=127.0.0.1:$sink_port" \
    -o origins.trickle.concurrency=2
wait_port 127.0.0.1 "$fe_port" 10 || fail "frontend does not listen"
sleep 1.5

# trickle COUNT GAP: COUNT messages over one LMTP session from 127.0.0.3,
# GAP seconds apart; prints the median and max latency in ms.
trickle() {
    timeout 120 python3 - "$fe_port" "$1" "$2" <<'PY'
import socket, sys, time
port, count, gap = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=("127.0.0.3", 0))
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed")
        if line[3:4] != b"-":
            return line
def cmd(c):
    s.sendall(c + b"\r\n")
    return reply()
reply()
cmd(b"LHLO trickle.test")
lat = []
for i in range(count):
    assert cmd(b"MAIL FROM:<t@trickle.test>").startswith(b"250")
    assert cmd(b"RCPT TO:<u@e2e.test>").startswith(b"250")
    assert cmd(b"DATA").startswith(b"354")
    s.sendall(b"Subject: trickle %d\r\nMessage-Id: <t%d@trickle.test>\r\n\r\nhello\r\n.\r\n" % (i, i))
    t0 = time.monotonic()
    r = reply()
    lat.append((time.monotonic() - t0) * 1000)
    assert r.startswith(b"250"), r
    time.sleep(gap)
cmd(b"QUIT")
lat.sort()
print("%.0f %.0f" % (lat[len(lat) // 2], lat[-1]))
PY
}

read -r base base_max < <(trickle 10 0.1)
ok "trickle alone: median ${base} ms, max ${base_max} ms"

(cd "$E2E_TMP" && exec timeout 120 smtp-source -L -s 20 -m 600 -l 1024 "127.0.0.1:$fe_port" \
    >"$E2E_TMP/flood.log" 2>&1) &
flood=$!
sleep 2
depth_line=$(grep -c "Passed CLEAN" "${CL_LOG[fe]}" || true)
read -r loaded loaded_max < <(trickle 10 0.3)
flood_done_at_trickle_end=$(grep -c "Passed CLEAN" "${CL_LOG[fe]}" || true)
kill -0 "$flood" 2>/dev/null || fail "the flood ended before the trickle measurement (make it longer)"
ok "trickle during the flood: median ${loaded} ms, max ${loaded_max} ms (flood messages passed meanwhile: $((flood_done_at_trickle_end - depth_line)))"
wait "$flood" || fail "smtp-source (flood) failed: $(tail -n 3 "$E2E_TMP/flood.log")"
awk -v a="$loaded" -v b="$base" 'BEGIN { exit !(a <= 3 * b + 20) }' ||
    fail "trickle median under the flood ${loaded} ms > 3 x unloaded ${base} ms (+20 ms)"
ok "fair share: the trickle's median latency under the flood is within 3x its unloaded latency"
n=$(grep -cE "Passed CLEAN .*\[127\.0\.0\.3\]" "${CL_LOG[fe]}" || true)
[ "$n" -eq 20 ] || fail "expected 20 trickle messages passed, found $n"
