#!/usr/bin/env bash
# t_reinject_down.sh - the reinjection smtpd (:10025) is down: sluice must
# tempfail the message (Postfix keeps it), and deliver it once :10025 is back.
#
# Proves the invariant "no 250 until reinjected": with nothing listening on
# the origin's :10025, Postfix logs status=deferred with a "451 4.x.x" reply
# said by sluice after DATA (not a connection failure, which would mark the
# filter dead), nothing reaches the mailbox, and after the listener is
# enabled (postfix reload) and the queue flushed, the message arrives
# exactly once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd swaks

pf_choose_ports
start_postfix --reinject-down
port_listening 127.0.0.1 "$PF_REINJECT_PORT" && fail "something listens on 127.0.0.1:$PF_REINJECT_PORT although the test disabled it"
start_sluice_for_postfix

msgid="reinject-down.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT" "$msgid"
qid=$INJECT_QID
qre=$(ere_quote "$qid")
rcpt_re=$(ere_quote "$E2E_RCPT")

defer_re="postfix/lmtp\[[0-9]+\]: $qre: to=<$rcpt_re>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 4[0-9][0-9] "
wait_maillog "$defer_re" 60 || fail "Postfix did not log a deferral of $qid with a 4xx said by sluice within 60 s"
line=$(maillog_grep "$defer_re" | head -n 1)
ok "Postfix: ${line#* postfix/}"
printf '%s\n' "$line" | grep -qE 'said: 451 4\.[0-9]+\.[0-9]+ ' ||
    fail "sluice's temporary failure is not \"451 4.x.x\" (as amavisd-new's \"451 4.5.0 ... Temporary MTA failure on relaying\"): $line"
ok "sluice answered 451 4.x.x"
maillog_has "$qre: .*status=sent" && fail "Postfix logged status=sent for $qid while :$PF_REINJECT_PORT was down: $(maillog_grep "$qre: .*status=sent")"
sleep 2
n=$(maildir_count)
[ "$n" -eq 0 ] || fail "$n message(s) delivered while the reinjection listener was down"
ok "nothing delivered while :$PF_REINJECT_PORT was down; Postfix still holds $qid ($(pf_queue_count) queue file(s))"
[ "$(pf_queue_count)" -ge 1 ] || fail "Postfix's queue is empty but nothing was delivered: the message is lost"
n=$(sluice_log_count "$qre")
say "sluice log lines naming $qid: $n"
grep -F -- "$qid" "$SLUICE_LOG" | head -n 3 || true

pf_reinject_up
pf_flush
wait_delivered 1 60 || fail "message <$msgid> not delivered within 60 s after :$PF_REINJECT_PORT came back"
n=$(maildir_count_msgid "$msgid")
[ "$n" -eq 1 ] || fail "expected exactly 1 copy of <$msgid>, found $n"
ok "delivered exactly once after the listener came back"

sent_re="$qre: to=<$rcpt_re>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:$PF_REINJECT_PORT\): 250 2\.0\.0 Ok: queued as [0-9A-Za-z]+"
n=$(maillog_count "$sent_re")
[ "$n" -eq 1 ] || fail "expected 1 amavisfeed status=sent line for $qid, found $n"
ok "Postfix: $(maillog_grep "$sent_re" | sed 's/.* postfix\///')"
ok "deferrals logged before that: $(maillog_count "$qre: .*status=deferred")"

wait_for 20 pf_queue_empty || fail "Postfix queue not empty at the end: $(pf_queue_count) file(s)"
ok "Postfix queue empty"
