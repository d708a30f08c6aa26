#!/usr/bin/env bash
# fault_latency.sh - what faults of brokers and workers cost mail in a
# cluster (docs/cluster.md, "Pauses and partitions: what to expect").
#
# SYNOPSIS
#   tests/bench/fault_latency.sh [OUT_SECONDS [SESSIONS [SCENARIO...]]]   (as root)
#
# WHAT IT RUNS
#   One cluster of processes on loopback (cluster_lib.sh): two brokers, two
#   worker processes of 2 threads with a 20 ms scan (the test knob), one
#   frontend reinjecting into smtp-sink. SESSIONS (default 8) LMTP sessions
#   send messages back to back the whole time (a Python client: each
#   message's start, end and reply). Each scenario lets mail flow for 3 s,
#   makes its fault for OUT_SECONDS (default 5), undoes it, and lets mail
#   flow for 6 s more:
#     kill1 / pause1 / part1   one broker SIGKILLed (then started again),
#                              SIGSTOPped, or cut off both ways (iptables)
#     kill2 / pause2 / part2   both brokers at once
#     wkill / wpause           one worker process SIGKILLed (then started
#                              again) or SIGSTOPped
#   Per scenario it reports: the longest time without any reply
#   ("stop"), for two-broker faults the time from the first broker's
#   return to the first reply after it ("back"), p50, p99 and the maximum
#   of the latency of the messages of that scenario, and replies other
#   than 250.
#   Nothing is asserted: the figures go to docs/cluster.md.
#
# ENVIRONMENT
#   SLUICE_BIN    the sluice binary (default: build/sluice); run it once per
#                 binary to compare two builds
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"

OUT=${1:-5}
SESSIONS=${2:-8}
shift $(($# < 2 ? $# : 2))
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(kill1 pause1 part1 kill2 pause2 part2 wkill wpause)

e2e_init $((120 + ${#SCENARIOS[@]} * (OUT + 30)))
need_root
need_cmd smtp-sink python3 iptables
[ -x "$SLUICE_BIN" ] || fail "SLUICE_BIN=$SLUICE_BIN is not an executable"
cl_trap
cl_keys_init
cl_partition_init

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not start"

cl_start_broker b1
cl_start_broker b2
export SLUICE_TEST_WORKER_DELAY_MS=20
cl_start_worker w1 2
cl_start_worker w2 2
unset SLUICE_TEST_WORKER_DELAY_MS
CL_ORIGINS=()
cl_start_frontend fa -o "origins.default.reinject=127.0.0.1:$sink" -o origins.default.concurrency=64
sleep 2

EVENTS=$E2E_TMP/events
: >"$EVENTS"
mark() { echo "$1 $EPOCHREALTIME" >>"$EVENTS"; }

# the load: SESSIONS LMTP sessions, messages back to back, one line per
# message: start end code
cat >"$E2E_TMP/load.py" <<'PY'
import smtplib, sys, threading, time, os
port, sessions, out, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
rows = []
body = ("Subject: fault latency\r\nMessage-ID: <%d.%%d@bench.test>\r\n\r\n" % os.getpid()) + "x" * 1000 + "\r\n"
def run(k):
    n = 0
    while not os.path.exists(stop):
        try:
            c = smtplib.LMTP("127.0.0.1", port, timeout=300)
            while not os.path.exists(stop):
                n += 1
                t0 = time.time()
                try:
                    c.sendmail("bench@bench.test", ["rcpt@bench.test"], body % (k * 1000000 + n))
                    code = 250
                except smtplib.SMTPResponseException as e:
                    code = e.smtp_code
                except smtplib.SMTPRecipientsRefused as e:
                    code = list(e.recipients.values())[0][0]
                with lock:
                    rows.append((t0, time.time(), code))
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)
ts = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(sessions)]
for t in ts: t.start()
for t in ts: t.join()
with open(out, "w") as f:
    for r in rows: f.write("%.6f %.6f %d\n" % r)
PY

# scenario NAME: the fault, with marks "start NAME", "fault", "back", "end"
scenario() {
    local s=$1
    mark "start $s"
    sleep 3
    mark fault
    case $s in
    kill1) cl_kill b1 KILL ;;
    kill2) cl_kill b1 KILL; cl_kill b2 KILL ;;
    pause1) kill -STOP "${CL_PID[b1]}" ;;
    pause2) kill -STOP "${CL_PID[b1]}" "${CL_PID[b2]}" ;;
    part1) cl_partition "${CL_BROKER_PORT[b1]}" ;;
    part2) cl_partition "${CL_BROKER_PORT[b1]}"; cl_partition "${CL_BROKER_PORT[b2]}" ;;
    wkill) cl_kill w1 KILL ;;
    wpause) kill -STOP "${CL_PID[w1]}" ;;
    *) fail "unknown scenario $s" ;;
    esac
    sleep "$OUT"
    case $s in
    kill1) mark back; cl_restart b1 ;;
    kill2) mark back; cl_restart b1; cl_restart b2 ;;
    pause1) mark back; kill -CONT "${CL_PID[b1]}" ;;
    pause2) mark back; kill -CONT "${CL_PID[b1]}" "${CL_PID[b2]}" ;;
    part1) mark back; cl_heal "${CL_BROKER_PORT[b1]}" ;;
    part2) mark back; cl_heal "${CL_BROKER_PORT[b1]}"; cl_heal "${CL_BROKER_PORT[b2]}" ;;
    wkill) mark back; SLUICE_TEST_WORKER_DELAY_MS=20 cl_restart w1 ;;
    wpause) mark back; kill -CONT "${CL_PID[w1]}" ;;
    esac
    sleep 6
    mark end
}

python3 "$E2E_TMP/load.py" "${CL_FE_PORT[fa]}" "$SESSIONS" "$E2E_TMP/rows" "$E2E_TMP/stop" &
load=$!
sleep 3     # every session connected and sending
for s in "${SCENARIOS[@]}"; do
    scenario "$s"
done
touch "$E2E_TMP/stop"
wait "$load" || fail "the load client failed"

say "$SLUICE_BIN_REAL: $SESSIONS sessions, faults of $OUT s"
python3 - "$E2E_TMP/rows" "$EVENTS" <<'PY'
import sys
rows = sorted(tuple(map(float, l.split())) for l in open(sys.argv[1]))
ev = [l.split() for l in open(sys.argv[2])]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0
print("%-7s %8s %8s %8s %8s %8s %7s %6s" % ("fault", "stop s", "back s", "p50 ms", "p99 ms", "max ms", "msgs", "non250"))
i = 0
while i < len(ev):
    name, t_start = ev[i][1], float(ev[i][2])
    t_fault = float(ev[i + 1][1]); t_back = float(ev[i + 2][1]); t_end = float(ev[i + 3][1])
    i += 4
    mine = [r for r in rows if t_start <= r[0] < t_end]
    ends = sorted(r[1] for r in rows if t_fault - 1 <= r[1] <= t_end)
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    stop = max(gaps) if gaps else float("nan")
    after = [r[1] for r in rows if r[1] > t_back]
    back = (min(after) - t_back) if after and name.endswith("2") else float("nan")
    lat = [(r[1] - r[0]) * 1000 for r in mine]
    bad = sum(1 for r in mine if int(r[2]) != 250)
    print("%-7s %8.2f %8s %8.0f %8.0f %8.0f %7d %6d" % (name, stop, "%.2f" % back if back == back else "-",
          pct(lat, 0.5), pct(lat, 0.99), max(lat) if lat else 0, len(mine), bad))
PY
