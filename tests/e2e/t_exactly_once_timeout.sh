#!/usr/bin/env bash
# t_exactly_once_timeout.sh - Postfix gives up on the filter before the
# scan ends (docs/exactly-once.md, case (b)).
#
# Postfix's lmtp_data_done_timeout is set to 4 s and the scan is slowed to
# 8 s (test-only SLUICE_TEST_WORKER_DELAY_MS). Every attempt Postfix makes
# times out. Without the ledger sluice abandons such a job (so no duplicate,
# but the message would never get through); with it sluice finishes the
# job after Postfix left, records the reply, and a later attempt is
# answered from the ledger at once, without waiting for a scan: the message
# is delivered, exactly once per recipient.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ledger_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ledger_lib.sh"

e2e_init 240
need_root
need_cmd swaks

R2=other@$E2E_DOMAIN
pf_choose_ports
start_postfix
pf_master_opt lmtp_data_done_timeout=1200 lmtp_data_done_timeout=4s
start_redis
SLUICE_TEST_WORKER_DELAY_MS=8000 start_sluice_for_postfix -o "redis.url=$REDIS_URL"

msgid="slow.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT,$R2" "$msgid"
qre=$(ere_quote "$INJECT_QID")

to_re="postfix/lmtp\[[0-9]+\]: $qre: to=<.*>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=deferred .*timed out while receiving the initial server greeting|$qre: .*status=deferred .*(timed out|timeout)"
wait_maillog "$to_re" 30 || fail "Postfix did not time out on the slow scan of $INJECT_QID"
ok "Postfix gave up waiting: $(maillog_grep "$qre: .*status=deferred" | head -n 1 | sed 's/.* postfix\///')"
wait_for 30 sluice_log_has "$(ere_quote "finishing the job for the ledger")" ||
    fail "sluice did not keep the job after Postfix left"
ok "sluice kept the job after Postfix left"

pf_flush
wait_for 120 pf_queue_empty || fail "Postfix still holds $INJECT_QID after 120 s"
sleep 2
n1=$(mbox_count_msgid "$E2E_RCPT" "$msgid")
n2=$(mbox_count_msgid "$R2" "$msgid")
[ "$n1" -eq 1 ] && [ "$n2" -eq 1 ] ||
    fail "expected exactly 1 copy per recipient, found $n1 for <$E2E_RCPT> and $n2 for <$R2>"
ok "delivered exactly once per recipient although Postfix timed out"
sent_re="$qre: to=<.*>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.0\.0 from MTA"
[ "$(maillog_count "$sent_re")" -eq 2 ] || fail "expected 2 status=sent lines for $INJECT_QID, found $(maillog_count "$sent_re")"
ok "Postfix: $(maillog_grep "$sent_re" | tail -n 1 | sed 's/.* postfix\///')"
ok "attempts Postfix made: $(maillog_count "$qre: to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1")"
sluice_log_has "already reinjected; stored replies given, not scanned" ||
    fail "no retry was answered from the ledger without a scan (the look FE_LEDGER_PEEK_DELAY_MS after end of data)"
ok "sluice: $(grep -E 'already reinjected' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
