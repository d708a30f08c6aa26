#!/usr/bin/env bash
# wire_bytes.sh - bytes on every hop, and Redis operations, per message.
#
# SYNOPSIS
#   tests/bench/wire_bytes.sh [N [SIZE [IDLE]]]   (as root; defaults 2000, 4096, 5)
#
# WHAT IT RUNS
#   Redis, one broker, one worker process (two threads) and one frontend as
#   separate processes on loopback, the ledger on, CURVE unless
#   CL_SECURITY=plain; smtp-sink as the reinjection target. After a warm-up
#   it counts for IDLE seconds with no mail (the heartbeats' bytes and the
#   registry's Redis traffic), then N messages of SIZE bytes (smtp-source -L
#   -d, 10 sessions), and prints per message, the idle rate taken away:
#     - LMTP in (client to frontend) and SMTP out (frontend to the
#       reinjection target), both directions: TCP payload from an iptables
#       chain of the script's own on lo (packet bytes less 52 header bytes a
#       packet: IPv4 and TCP with timestamps; a SYN's longer options make a
#       connection about 56 bytes more), removed on exit;
#     - frontend to broker, broker to frontend, worker to broker, broker to
#       worker: the payload counters of the ZeroMQ connections (ss -ti
#       bytes_sent and bytes_received, whose connections last the run);
#     - Redis: commands (INFO commandstats) and bytes in and out (INFO stats).
#   Counts bytes, not time: the figures do not depend on the machine's load.
#
# ENVIRONMENT
#   SLUICE_BIN    the sluice binary (default: build/sluice)
#   CL_SECURITY   curve (default) or plain
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"
# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

N=${1:-2000}
SIZE=${2:-4096}
IDLE=${3:-5}
SESSIONS=10

e2e_init 600
cl_init
need_cmd smtp-sink iptables

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 1024
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not listen on :$sink"

cl_start_redis
cl_start_broker b1 -o log.level=warning
cl_start_worker w1 2 worker -o log.level=warning
cl_start_frontend f1 -o log.level=warning -o origins.default.concurrency=$SESSIONS \
    -o "origins.default.reinject=127.0.0.1:$sink" -o frontend.max_message_size=$((SIZE * 2 + 1048576))
FE=${CL_FE_PORT[f1]} BR=${CL_BROKER_PORT[b1]}

# The byte-counting chain: one rule a direction a port, counters only.
CHAIN=sluice-bytes-$$
ipt_cleanup() {
    iptables -D OUTPUT -o lo -j "$CHAIN" 2>/dev/null
    iptables -F "$CHAIN" 2>/dev/null
    iptables -X "$CHAIN" 2>/dev/null
    return 0
}
iptables -N "$CHAIN" || fail "iptables: cannot make chain $CHAIN"
iptables -I OUTPUT -o lo -j "$CHAIN"
# shellcheck disable=SC2154 # cl_rc is set inside the trap itself
trap 'cl_rc=$?; ipt_cleanup; cl_cleanup; (exit $cl_rc); e2e_cleanup' EXIT
for p in "$FE" "$sink"; do
    iptables -A "$CHAIN" -p tcp --dport "$p"
    iptables -A "$CHAIN" -p tcp --sport "$p"
done

# ipt_payload DPORT|SPORT PORT: TCP payload bytes counted so far.
ipt_payload() {
    iptables -nvxL "$CHAIN" | awk -v want="${1:0:1}pt:$2" '
        $0 ~ want"( |$)" { print $2 - 52 * $1; found = 1 } END { if (!found) print 0 }'
}

# role_of PID: f or w (the process or its master), else nothing.
role_of() {
    local pid=$1 ppid
    ppid=$(awk '{ print $4 }' "/proc/$pid/stat" 2>/dev/null)
    case "$pid $ppid" in
    "${CL_PID[f1]} "* | *" ${CL_PID[f1]}") echo f ;;
    "${CL_PID[w1]} "* | *" ${CL_PID[w1]}") echo w ;;
    esac
}

# zmq_bytes ROLE: "sent received" over ROLE's connections to the broker.
zmq_bytes() {
    local line pid sent=0 recv=0 s r
    while read -r line; do
        pid=$(grep -o 'pid=[0-9]*' <<<"$line" | head -1 | cut -d= -f2)
        if [ -z "$pid" ] || [ "$(role_of "$pid")" != "$1" ]; then continue; fi
        s=$(grep -o 'bytes_sent:[0-9]*' <<<"$line" | cut -d: -f2)
        r=$(grep -o 'bytes_received:[0-9]*' <<<"$line" | cut -d: -f2)
        sent=$((sent + ${s:-0})) recv=$((recv + ${r:-0}))
    done < <(ss -HOtinp state established "( dport = :$BR )")
    echo "$sent $recv"
}

redis_calls() { cl_redis INFO commandstats | awk -F'[=,:]' '/^cmdstat_/ { n += $3 } END { print n + 0 }'; }
redis_net() { cl_redis INFO stats | awk -F: '/^total_net_(input|output)_bytes/ { printf "%d ", $2 }'; }

# snapshot: every counter, in a fixed order, on one line.
snapshot() {
    echo "$(ipt_payload dport "$FE") $(ipt_payload sport "$FE") $(ipt_payload dport "$sink")" \
        "$(ipt_payload sport "$sink") $(zmq_bytes f) $(zmq_bytes w) $(redis_calls) $(redis_net)"
}

send() { # MESSAGES
    timeout 300 smtp-source -L -s $SESSIONS -d -m "$1" -l "$SIZE" -f bench@bench.test \
        -t rcpt@bench.test "127.0.0.1:$FE" >"$E2E_TMP/src.log" 2>&1 || fail "smtp-source failed"
    grep . "$E2E_TMP/src.log" | head -3 | grep . && fail "smtp-source reported errors"
    return 0
}

sleep 2 # the first heartbeats
send 50
s0=$(snapshot) t0=$(now_us)
sleep "$IDLE"
s1=$(snapshot) t1=$(now_us)
cl_redis INFO commandstats >"$E2E_TMP/cmd.1"
send "$N"
s2=$(snapshot) t2=$(now_us)
cl_redis INFO commandstats >"$E2E_TMP/cmd.2"
say "$N messages of $SIZE bytes, $CL_SECURITY, load $(((t2 - t1) / 1000)) ms after $(((t1 - t0) / 1000)) ms idle"

# The counters checked: every hop that carries the message carried it.
awk -v a="$s0" -v b="$s1" -v c="$s2" -v ti=$((t1 - t0)) -v tl=$((t2 - t1)) -v n="$N" -v size="$SIZE" 'BEGIN {
    split(a, x, " "); split(b, y, " "); split(c, z, " ")
    split("LMTP in: client to frontend|LMTP in: frontend to client|SMTP out: frontend to target|" \
          "SMTP out: target to frontend|frontend to broker|broker to frontend|worker to broker|" \
          "broker to worker|Redis commands|Redis bytes in|Redis bytes out", name, "|")
    printf "%-32s %12s %12s %10s\n", "per message", "idle/s", "per message", "x SIZE"
    for (i = 1; i <= 11; i++) {
        idle = (y[i] - x[i]) / (ti / 1e6)
        per = ((z[i] - y[i]) - idle * tl / 1e6) / n
        if (i == 9) printf "%-32s %12.1f %12.2f\n", name[i], idle, per
        else printf "%-32s %12.0f %12.0f %10.3f\n", name[i], idle, per, per / size
        if ((i == 1 || i == 3 || i == 5 || i == 8) && per < size) short = short " " name[i]
    }
    if (short != "") { print "carried less than the message:" short; exit 1 }
}' || fail "a hop's counter missed the message"
# Which commands, per message (the idle ones included: a few a second).
awk -F'[=,:]' -v n="$N" '/^cmdstat_/ { name = substr($1, 9) }
    FNR == NR && /^cmdstat_/ { before[name] = $3; next }
    /^cmdstat_/ && $3 - before[name] > 0 { printf "  %s %.2f", name, ($3 - before[name]) / n }
    END { print "" }' "$E2E_TMP/cmd.1" "$E2E_TMP/cmd.2" | sed 's/^/Redis commands a message:/'
ok "bytes counted for $N messages"
