#!/usr/bin/env bash
# t_smtp_partial.sh - an SMTP feed (EHLO: one reply for all recipients) whose
# message the reinjection smtpd accepts for some recipients and refuses for
# others, with a single sluice node and no Redis (the local record).
#
# Proves, through a real Postfix feeding sluice over SMTP (the amavisfeed
# transport with smtp instead of lmtp, docs/postfix.md):
#   1. permanent refusals only (:10025 answers 550 for perm@, 250 for
#      user@): sluice answers 250, as an MTA does, and sends the sender a
#      DSN for perm@ (Status 5.1.1, the 550 quoted); Postfix does not retry;
#      user@ has exactly one copy. (A 451 here made Postfix retry until the
#      queue lifetime ended, delivering user@ again each time.)
#   2. a temporary refusal (451 for temp@): sluice keeps the 451, Postfix
#      retries with both recipients, and the retries reinject temp@ only:
#      user@ keeps exactly one copy (the local record gives it the stored
#      reply); once :10025 takes temp@, it gets its one copy and the queue
#      empties.
#   3. that last retry comes over LMTP (the feed switched back): while the
#      local record holds something, an LMTP transaction asks it too, so
#      user@ still gets the stored reply, not a second copy. (Only while it
#      holds nothing does an LMTP transaction skip it: an LMTP reply per
#      recipient means Postfix never sends an accepted one again.)
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

PERM=perm@$E2E_DOMAIN
TEMP=temp@$E2E_DOMAIN
pf_choose_ports
start_postfix
# feed_over FROM TO: the amavisfeed transport and its -o settings from
# client FROM to client TO (lmtp, smtp), as docs/postfix.md allows
feed_over() {
    sed -i -e "s|^\(amavisfeed unix .*\)$1\$|\1$2|" \
        -e "s|-o $1_data_done_timeout=|-o $2_data_done_timeout=|" \
        -e "s|-o $1_send_xforward_command=|-o $2_send_xforward_command=|" \
        -e "s|-o $1_tls_note_starttls_offer=|-o $2_tls_note_starttls_offer=|" "$PF_CONF/master.cf"
    grep -qE "^amavisfeed unix .* $2\$" "$PF_CONF/master.cf" || fail "could not make amavisfeed an $2 transport"
}
STORED_REPLY_RE='local record: 1 recipient\(s\) already reinjected or reported; stored reply given'
# the feed to sluice over SMTP instead of LMTP
feed_over lmtp smtp
printf '%s 550 5.1.1 no such user here (e2e)\n%s 451 4.7.1 try again later (e2e)\n' "$PERM" "$TEMP" \
    >"$PF_CONF/refuse"
pf_master_opt smtpd_recipient_restrictions=permit_mynetworks,reject \
    "smtpd_recipient_restrictions=check_recipient_access,texthash:$PF_CONF/refuse,permit_mynetworks,reject"
start_sluice_for_postfix

# ---- 1. permanent refusal: 250 and a DSN --------------------------------
msgid="perm.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT,$PERM" "$msgid"
qre=$(ere_quote "$INJECT_QID")
wait_for 60 pf_queue_empty || fail "Postfix still holds $INJECT_QID after 60 s: $(pf_queue)"
maillog_has "$qre: to=<$(ere_quote "$PERM")>.* relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT,.* status=sent \(250 " ||
    fail "Postfix's delivery of $INJECT_QID to sluice did not end in 250: $(maillog_grep "$qre: to=")"
ok "sluice answered the SMTP transaction 250: $(maillog_grep "$qre: to=<$(ere_quote "$PERM")>" | sed 's/.*status=//' | tail -n 1)"
sluice_log_has 'SMTP mode: 1 recipient\(s\) refused by the next-hop MTA, 1 accepted' ||
    fail "sluice did not report the refused recipient"
dsn_for() { # dsn_for MSGID: reports in the sender's (catch-all) mailbox about MSGID
    local f n=0
    while IFS= read -r f; do
        grep -q '^Subject: Undeliverable mail' "$f" && grep -qF "Message-ID: <$1>" "$f" && n=$((n + 1))
    done < <(find "$PF_VMAIL/e2e.test/catchall" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null)
    echo "$n"
}
dsn_there() { [ "$(dsn_for "$msgid")" -ge 1 ]; }
wait_for 30 dsn_there || fail "no non-delivery report for <$msgid> reached <$E2E_FROM>"
f=$(grep -lF "Message-ID: <$msgid>" "$PF_VMAIL"/e2e.test/catchall/new/* | head -n 1)
grep -q "^Final-Recipient: rfc822; $PERM" "$f" && grep -q '^Status: 5\.1\.1' "$f" &&
    grep -q '^Diagnostic-Code: smtp; 550 5\.1\.1 .*no such user here (e2e)' "$f" ||
    { cat "$f" >&2; fail "the report does not name <$PERM> with Status 5.1.1 and :10025's 550"; }
ok "the sender got one report for <$PERM>: Status 5.1.1, $(grep '^Diagnostic-Code:' "$f" | cut -c1-100)..."
sleep 12 # two more queue runs: a retry would show now
n=$(mbox_count_msgid "$E2E_RCPT" "$msgid")
[ "$n" -eq 1 ] || fail "<$E2E_RCPT> has $n copies of <$msgid>, expected exactly 1"
[ "$(dsn_for "$msgid")" -eq 1 ] || fail "$(dsn_for "$msgid") reports for <$msgid>, expected 1"
ok "<$E2E_RCPT> has exactly one copy, the sender one report, Postfix's queue is empty"

# ---- 2. temporary refusal: 451, and no second copy on the retries --------
msgid="temp.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT,$TEMP" "$msgid"
qre=$(ere_quote "$INJECT_QID")
deferred_twice() { [ "$(maillog_count "$qre: to=<$(ere_quote "$TEMP")>.* status=deferred")" -ge 2 ]; }
wait_for 60 deferred_twice || fail "Postfix did not try $INJECT_QID twice: $(maillog_grep "$qre: to=")"
maillog_has "$qre: to=<$(ere_quote "$TEMP")>.* status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.5\.0 id=[^,]*, not every recipient could be handled; use LMTP for per-recipient replies" ||
    fail "the deferral does not carry sluice's 451: $(maillog_grep "$qre: to=<$(ere_quote "$TEMP")>" | tail -n 1)"
ok "Postfix tried twice and got sluice's 451 both times: $(maillog_grep "$qre: to=<$(ere_quote "$TEMP")>" | sed 's/.*said: //' | tail -n 1)"
n=$(mbox_count_msgid "$E2E_RCPT" "$msgid")
[ "$n" -eq 1 ] || fail "<$E2E_RCPT> has $n copies of <$msgid> after the retries, expected exactly 1"
sluice_log_has "$STORED_REPLY_RE" ||
    fail "the retry did not take <$E2E_RCPT>'s reply from the local record"
ok "the retries reinjected <$TEMP> only; <$E2E_RCPT> still has one copy (the local record)"
: >"$PF_CONF/refuse"
# a restart, not a reload: the :10025 smtpd that sluice keeps connected
# would go on with the map it loaded (sluice keeps running: the local
# record lives in it)
pf_stop
feed_over smtp lmtp
stored_before=$(sluice_log_count "$STORED_REPLY_RE")
out=$(timeout 60 postfix -c "$PF_CONF" start 2>&1) || fail "postfix start failed: $out"
E2E_POSTFIX_UP=1
wait_port 127.0.0.1 "$PF_REINJECT_PORT" 20 || fail "Postfix :$PF_REINJECT_PORT smtpd does not listen"
pf_flush
wait_for 60 pf_queue_empty || fail "Postfix still holds $INJECT_QID after 60 s: $(pf_queue)"
sleep 2
n1=$(mbox_count_msgid "$E2E_RCPT" "$msgid")
n2=$(mbox_count_msgid "$TEMP" "$msgid")
[ "$n1" -eq 1 ] && [ "$n2" -eq 1 ] ||
    fail "expected exactly 1 copy per recipient, found $n1 for <$E2E_RCPT> and $n2 for <$TEMP>"
ok "once :10025 took <$TEMP>: one copy each, the queue is empty"
maillog_has "/lmtp\[[0-9]+\]: $qre: to=<$(ere_quote "$TEMP")>.* relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT,.* status=sent \(250 " ||
    fail "the last retry to sluice was not an LMTP delivery ending in 250: $(maillog_grep "$qre: to=<$(ere_quote "$TEMP")>" | tail -n 1)"
stored_after=$(sluice_log_count "$STORED_REPLY_RE")
[ "$stored_after" -gt "$stored_before" ] ||
    fail "the LMTP retry did not take <$E2E_RCPT>'s reply from the local record ($stored_before stored replies before, $stored_after after)"
ok "the last retry came over LMTP and still took <$E2E_RCPT>'s stored reply from the local record"
