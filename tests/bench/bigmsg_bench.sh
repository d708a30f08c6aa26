#!/usr/bin/env bash
# bigmsg_bench.sh - the resident memory one big message costs (docs/capacity.md,
# "A 50 MB message").
#
# SYNOPSIS
#   tests/bench/bigmsg_bench.sh [ROUNDS [SIZE [KIND]]]   (defaults 3, 52428016, base64)
#
# WHAT IT RUNS
#   Per round and binary (BASE_BIN first if set, then SLUICE_BIN, alternating):
#   a fresh `sluice all` (frontend.max_message_size=60000000, reinjection
#   into smtp-sink on loopback), and bigmsg_send.py sending one message of
#   SIZE bytes over LMTP while it samples every sluice process's VmRSS from
#   /proc every 2 ms; prints each process's VmHWM, its ratio to SIZE, and
#   the LMTP reply. KIND: base64 (a base64 attachment: the MIME check's
#   decoding path) or text (one 7bit body). With CLUSTER=1, also a round
#   per binary of frontend, broker and worker as separate processes over
#   tcp://127.0.0.1 (security.mode plain; CL_SECURITY=curve for CURVE),
#   each node's peak reported.
#   Fails when a message is not answered 250, never on a size.
#
# ENVIRONMENT
#   SLUICE_BIN   the sluice binary (default: build/sluice)
#   BASE_BIN     a second binary, run alternately with the first
#   CLUSTER=1    the cluster rounds too
#   TRACE_DIR    where to write each all-in-one run's RSS samples (bigmsg_send.py)
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
CL_SECURITY=${CL_SECURITY:-plain}
# shellcheck source=../e2e/cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster_lib.sh"

ROUNDS=${1:-3}
SIZE=${2:-52428016}
KIND=${3:-base64}
SEND=$(dirname "${BASH_SOURCE[0]}")/bigmsg_send.py

e2e_init 1800
need_cmd python3 smtp-sink
cl_trap
[ "${CLUSTER:-0}" != 1 ] || cl_keys_init

sink=$(free_port)
e2e_spawn "$E2E_TMP/sink.log" smtp-sink -u nobody "127.0.0.1:$sink" 64
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$sink" 10 || fail "smtp-sink does not start"

# report LABEL FILE: bigmsg_send.py's lines, with each VmHWM as a ratio to SIZE.
report() {
    grep -q '^reply=250' "$2" || fail "$1: the message was not accepted: $(cat "$2")"
    awk -v label="$1" -v size="$SIZE" '
        /^pid=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                  printf "%s %s: VmHWM %.1f MB = %.2fx the message (RSS before %.1f MB, peak RSS seen %.1f MB)\n",
                      label, v["role"], v["hwm_kb"] * 1024 / 1e6, v["hwm_kb"] * 1024 / size,
                      v["before_rss_kb"] * 1024 / 1e6, v["peak_rss_kb"] * 1024 / 1e6 }
        /^(reply|seconds)=/ { printf "%s %s\n", label, $0 }' "$2"
}

one_all() {
    local bin=$1 label=$2 port
    port=$(free_port)
    SLUICE_BIN=$bin start_sluice -o log.level=warning -o "frontend.listen=127.0.0.1:$port" \
        -o frontend.max_message_size=60000000 -o "origins.default.reinject=127.0.0.1:$sink"
    sleep 1
    TRACE=${TRACE_DIR:+$TRACE_DIR/all.$label} python3 "$SEND" 127.0.0.1 "$port" "$SIZE" "$KIND" "$E2E_SLUICE_PID" >"$E2E_TMP/out.$label" 2>&1 ||
        fail "$label: bigmsg_send.py failed: $(tail -n 5 "$E2E_TMP/out.$label")"
    report "$label all" "$E2E_TMP/out.$label"
    stop_sluice || true
}

one_cluster() {
    local bin=$1 label=$2
    CL_BROKERS=()
    SLUICE_BIN=$bin cl_start_broker "${label}b" -o log.level=warning
    SLUICE_BIN=$bin cl_start_worker "${label}w" 1 worker -o log.level=warning
    SLUICE_BIN=$bin cl_start_frontend "${label}f" -o log.level=warning \
        -o frontend.max_message_size=60000000 -o "origins.default.reinject=127.0.0.1:$sink"
    sleep 2
    python3 "$SEND" 127.0.0.1 "${CL_FE_PORT[${label}f]}" "$SIZE" "$KIND" \
        "frontend=${CL_PID[${label}f]},broker=${CL_PID[${label}b]},worker=${CL_PID[${label}w]}" >"$E2E_TMP/out.c$label" 2>&1 ||
        fail "$label: bigmsg_send.py failed: $(tail -n 5 "$E2E_TMP/out.c$label")"
    report "$label cluster" "$E2E_TMP/out.c$label"
    for n in f w b; do cl_kill "$label$n" TERM; done
}

say "message: $SIZE bytes, $KIND"
for ((r = 1; r <= ROUNDS; r++)); do
    [ -z "${BASE_BIN:-}" ] || one_all "$BASE_BIN" "base#$r"
    one_all "$SLUICE_BIN" "new#$r"
done
if [ "${CLUSTER:-0}" = 1 ]; then
    [ -z "${BASE_BIN:-}" ] || one_cluster "$BASE_BIN" base
    one_cluster "$SLUICE_BIN" new
fi
ok "done"
