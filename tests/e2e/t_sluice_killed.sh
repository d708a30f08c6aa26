#!/usr/bin/env bash
# t_sluice_killed.sh - sluice dies (SIGKILL) in the middle of a transaction:
# Postfix must keep the message and deliver it exactly once after a restart.
#
# Proves that Postfix's queue is the only durable store: sluice is killed
# while it holds the message (the scan is slowed to 15 s with the test-only
# SLUICE_TEST_WORKER_DELAY_MS), Postfix logs a deferral and no "sent", the
# mailbox stays empty; after sluice restarts (no delay) and the queue is
# flushed, the message arrives exactly once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd swaks ss

pf_choose_ports
start_postfix
# The delay only bounds the window in which the kill must land (sluice dies
# long before it ends): 3 s was too short under ASan on a loaded 2-core box.
SLUICE_TEST_WORKER_DELAY_MS=15000 start_sluice_for_postfix

msgid="killed.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT" "$msgid"
qid=$INJECT_QID
qre=$(ere_quote "$qid")
rcpt_re=$(ere_quote "$E2E_RCPT")

# Kill sluice once Postfix has sent the whole message (LHLO .. DATA, the
# content, "."): then sluice holds it and is inside the 15 s scan. Signal:
# the LMTP connection's bytes_acked (ss -i, Postfix's side) has reached the
# message size qmgr logged (commands and CRLFs only add to it).
wait_maillog "$qre: from=<.*>, size=[0-9]+, nrcpt=1 \(queue active\)" 30 ||
    fail "qmgr did not activate $qid within 30 s"
size=$(maillog_grep "$qre: from=<" | sed -n 's/.*, size=\([0-9]*\),.*/\1/p' | head -n 1)
lmtp_bytes_acked() {
    ss -Htin state established "( dport = :$PF_FILTER_PORT )" 2>/dev/null |
        grep -o 'bytes_acked:[0-9]*' | cut -d: -f2 | sort -n | tail -n 1
}
message_sent() { [ "$(lmtp_bytes_acked)" -ge "$size" ] 2>/dev/null; }
wait_for 30 message_sent ||
    fail "Postfix's LMTP connection to :$PF_FILTER_PORT did not carry the $size-byte message within 30 s (bytes acked: $(lmtp_bytes_acked))"
ok "Postfix's LMTP client has sent $qid to sluice ($(lmtp_bytes_acked) bytes acked, message size $size)"
sleep 0.3
if maillog_has "$qre: to=<$rcpt_re>, .*status="; then
    fail "Postfix already has a result for $qid before the kill (SLUICE_TEST_WORKER_DELAY_MS not honoured?): $(maillog_grep "$qre: to=")"
fi
kill_sluice

defer_re="postfix/lmtp\[[0-9]+\]: $qre: to=<$rcpt_re>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=deferred "
wait_maillog "$defer_re" 30 || fail "Postfix did not log a deferral of $qid within 30 s after sluice died"
line=$(maillog_grep "$defer_re" | head -n 1)
ok "Postfix: ${line#* postfix/}"
case $line in
*"while sending end of data"*) ok "the connection died while Postfix waited for the end-of-data reply, as intended" ;;
*) say "NOTE: the deferral is not the expected \"lost connection ... while sending end of data\"" ;;
esac
maillog_has "$qre: .*status=sent" && fail "Postfix logged status=sent for $qid: $(maillog_grep "$qre: .*status=sent")"
n=$(maildir_count)
[ "$n" -eq 0 ] || fail "$n message(s) delivered although sluice was killed before reinjecting"
[ "$(pf_queue_count)" -ge 1 ] || fail "Postfix's queue is empty but nothing was delivered: the message is lost"
ok "not sent, nothing delivered, Postfix still holds $qid"

start_sluice_for_postfix
pf_flush
wait_delivered 1 60 || fail "message <$msgid> not delivered within 60 s after sluice restarted"
n=$(maildir_count_msgid "$msgid")
[ "$n" -eq 1 ] || fail "expected exactly 1 copy of <$msgid>, found $n"
ok "delivered exactly once after the restart"
sent_re="$qre: to=<$rcpt_re>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:$PF_REINJECT_PORT\): 250 2\.0\.0 Ok: queued as [0-9A-Za-z]+"
n=$(maillog_count "$sent_re")
[ "$n" -eq 1 ] || fail "expected 1 amavisfeed status=sent line for $qid, found $n"
ok "Postfix: $(maillog_grep "$sent_re" | sed 's/.* postfix\///')"

wait_for 20 pf_queue_empty || fail "Postfix queue not empty at the end: $(pf_queue_count) file(s)"
ok "Postfix queue empty"
