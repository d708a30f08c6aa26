#!/usr/bin/env bash
# t_exactly_once_release.sh - the ledger's reservation, taken at end of data
# (docs/exactly-once.md, "The steps"), is given back whenever a recipient is
# not reinjected, so a retry never waits for it to go stale:
#
#   1. a banned attachment, discarded: its reservation is gone; a clean
#      message next: recorded done:;
#   2. a verdict that never comes in time (job.timeout 2 s, a 4 s scan, the
#      SLUICE_TEST_WORKER_DELAY_MS knob): 451 for the client, and no
#      reservation left behind;
#   3. the client hangs up before that verdict: nothing left behind either.
# LMTP from swaks straight to `sluice all`, reinjection into smtp-sink,
# a private redis-server.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"
# shellcheck source=ledger_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ledger_lib.sh"

e2e_init 150
need_root
need_cmd smtp-sink swaks redis-server redis-cli nc

SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
start_redis

pending_left() { ledger_fields pending:; }
done_count() { ledger_fields done:; }

# wait_for runs its command again each time: these read anew
pending_is() { [ "$(pending_left)" -eq "$1" ]; }
done_is() { [ "$(done_count)" -eq "$1" ]; }
timeouts_at_least() { [ "$(sluice_log_count 'no verdict within job\.timeout')" -ge "$1" ]; }

# --- 1. a discarded message, then a clean one --------------------------------
LISTEN=127.0.0.1:$(free_port)
start_sluice -o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
    -o "redis.url=$REDIS_URL"
m=$(echo "not really a program" | mk_attach exe "a program" setup.exe application/octet-stream)
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in "250 2.7.0 Ok, discarded, id="*BANNED*) ;; *) fail "banned: $(reply_n 1)" ;; esac
ok "banned: $(reply_n 1)"
wait_for 10 pending_is 0 || fail "$(pending_left) reservation(s) left after the discard"
[ "$(done_count)" -eq 0 ] || fail "a discarded message recorded as reinjected"
ok "ledger: 0 pending, 0 done after the discard"
m=$(echo "hello" | mk_attach clean "a clean one" notes.txt text/plain)
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in "250 2.0.0 from MTA"*) ;; *) fail "clean: $(reply_n 1)" ;; esac
wait_for 10 done_is 1 || fail "the clean message is not recorded (done: $(done_count))"
[ "$(pending_left)" -eq 0 ] || fail "$(pending_left) reservation(s) left after the clean message"
ok "ledger: 1 done, 0 pending after the clean message"
stop_sluice

# --- 2. no verdict in time ---------------------------------------------------
SLUICE_TEST_WORKER_DELAY_MS=4000 start_sluice -o "frontend.listen=$LISTEN" \
    -o "origins.default.reinject=127.0.0.1:$SINK_PORT" -o "redis.url=$REDIS_URL" -o job.timeout=2
m=$(echo "slow" | mk_attach slow "a slow one" notes.txt text/plain)
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in "451 4.5.0 id="*"no scanner verdict in time"*) ;; *) fail "slow scan: $(reply_n 1)" ;; esac
ok "no verdict in time: $(reply_n 1)"
wait_for 10 pending_is 0 || fail "$(pending_left) reservation(s) left after the tempfail"
ok "ledger: 0 pending after the tempfail"

# --- 3. the client hangs up before the verdict -------------------------------
# LHLO alone (it ends a pipelined group), then MAIL, RCPT, DATA; the message
# after the 354; gone a second after the final dot, while the 4 s scan runs
{
    printf 'LHLO e2e.test\r\n'
    sleep 0.5
    printf 'MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n' "$E2E_FROM" "$E2E_RCPT"
    sleep 0.5
    printf 'Subject: gone\r\nMessage-ID: <gone.%s@e2e.test>\r\n\r\nbye\r\n.\r\n' "$RANDOM"
    sleep 1
} | timeout 10 nc -q 0 127.0.0.1 "${LISTEN##*:}" >"$E2E_TMP/nc.out" 2>&1 || true
grep -q '^354' "$E2E_TMP/nc.out" || fail "no 354 for the message: $(tr -d '\r' <"$E2E_TMP/nc.out")"
wait_for 10 sluice_log_has "client disconnected while the message was scanned; finishing the job" ||
    fail "sluice did not see the client leave during the scan"
wait_for 10 timeouts_at_least 2 ||
    fail "the orphaned job did not time out"
wait_for 10 pending_is 0 || fail "$(pending_left) reservation(s) left after the client left"
ok "client gone during the scan, no verdict in time: ledger: 0 pending"
[ "$(sink_count "$SINK_DIR")" -eq 1 ] || fail "expected 1 reinjection in all, found $(sink_count "$SINK_DIR")"
stop_sluice
stop_redis
