#!/usr/bin/env bash
# t_scan_postfix.sh - scanning end to end through a real Postfix (the
# content_filter setup of docs/postfix.md, unchanged), with real clamd and spamd.
#
# Proves: a virus is discarded and never delivered, and Postfix logs
# amavis' "status=sent (250 2.7.0 Ok, discarded, id=... - INFECTED: ...)"
# for the filter hop; spam arrives in the mailbox tagged (X-Spam-Flag: YES,
# the ***SPAM*** subject tag, X-Spam-Status with GTUBE); with the bounce
# destiny a virus produces an RFC 3464 DSN (multipart/report,
# report-type=delivery-status) that Postfix delivers to the sender, and
# the recipient gets nothing.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 175
need_root
need_cmd swaks clamd spamd

start_clamd
start_spamd
pf_choose_ports
start_postfix
scan_args=(-o "scanners.clamd.servers=unix:$CLAMD_SOCK" -o "scanners.spamd.servers=$SPAMD_ADDR")
start_sluice_for_postfix "${scan_args[@]}"

# pf_send FILE TO: submit FILE to the instance's smtpd; sets INJECT_QID
pf_send() {
    local out=$E2E_TMP/swaks.$RANDOM.log
    timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --helo e2e-client.test \
        --from "$E2E_FROM" --to "$2" --data "$1" --timeout 30 >"$out" 2>&1 ||
        { cat "$out" >&2; fail "swaks could not submit $1"; }
    INJECT_QID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\).*/\1/p' "$out" | head -n 1)
    [ -n "$INJECT_QID" ] || fail "no queue id in $out"
    say "submitted $(basename "$1") for <$2>: queue id $INJECT_QID"
}
user_mail() { find "$PF_VMAIL/e2e.test/user" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null; }
sender_mail() { find "$PF_VMAIL/e2e.test/catchall" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null; }
count_lines() { grep -c . || true; }
hop_re() { printf '%s: to=<%s>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:%s, .*status=sent \\(%s' \
    "$(ere_quote "$1")" "$(ere_quote "$E2E_RCPT")" "$PF_FILTER_PORT" "$2"; }

# 1. a virus: discarded, never delivered
m=$(mk_msg virus "have a look" "$(eicar)")
pf_send "$m" "$E2E_RCPT"
qid=$INJECT_QID
wait_maillog "$(hop_re "$qid" '250 2\.7\.0 Ok, discarded, id=[^ ]+ - INFECTED: Eicar-Test-Signature\.UNOFFICIAL\)')" 60 ||
    fail "no 'status=sent (250 2.7.0 Ok, discarded, ... INFECTED' for $qid"
ok "Postfix: $(maillog_grep "$qid: to=<.*status=sent" | head -n 1 | sed 's/.*postfix\///')"
sluice_log_has "Blocked INFECTED \(Eicar-Test-Signature\.UNOFFICIAL\) \{DiscardedInbound\}, .*Queue-ID: $(ere_quote "$qid")," ||
    fail "no sluice 'Blocked INFECTED ... Queue-ID: $qid' line"
wait_for 20 pf_queue_empty || fail "Postfix queue not empty"
sleep 2
[ "$(user_mail | count_lines)" -eq 0 ] || fail "the virus was delivered"
ok "virus discarded, nothing delivered, Postfix queue empty"

# 2. spam: delivered, tagged
m=$(mk_msg spam "great offer" "$(gtube)")
pf_send "$m" "$E2E_RCPT"
wait_delivered 1 60 || fail "the spam was not delivered"
f=$(user_mail | head -n 1)
[ -n "$f" ] || fail "the spam went elsewhere"
mail_headers "$f" | grep -q '^X-Spam-Flag: YES$' || { mail_headers "$f" >&2; fail "no X-Spam-Flag: YES"; }
mail_headers "$f" | grep -q '^Subject: \*\*\*SPAM\*\*\* great offer$' || fail "no subject tag"
mail_headers "$f" | grep -qE '^X-Spam-Status: Yes, score=[0-9.]+ .*tests=\[.*GTUBE=1000' || fail "no X-Spam-Status with GTUBE"
ok "spam delivered tagged: $(mail_headers "$f" | grep '^X-Spam-Status:')"
sluice_log_has 'Passed SPAM \{RelayedTaggedInbound\}' || fail "no Passed SPAM {RelayedTaggedInbound} line"

# 3. bounce destiny: a DSN to the sender, nothing to the recipient
stop_sluice >/dev/null
start_sluice_for_postfix "${scan_args[@]}" -o policy.final_virus_destiny=bounce
m=$(mk_msg virus2 "have another look" "$(eicar)")
pf_send "$m" "$E2E_RCPT"
qid=$INJECT_QID
wait_maillog "$(hop_re "$qid" '250 2\.7\.0 Ok, bounced, id=[^ ]+ - INFECTED: ')" 60 ||
    fail "no 'status=sent (250 2.7.0 Ok, bounced' for $qid"
ok "Postfix: $(maillog_grep "$qid: to=<.*status=sent" | head -n 1 | sed 's/.*postfix\///')"
wait_for 60 test "$(sender_mail | count_lines)" -ge 1 || fail "no DSN delivered to $E2E_FROM"
d=$(sender_mail | head -n 1)
mail_headers "$d" | grep -q '^Content-Type: multipart/report; report-type=delivery-status;' ||
    { mail_headers "$d" >&2; fail "the DSN is not multipart/report"; }
mail_headers "$d" | grep -q '^Subject: Undeliverable mail, VIRUS in message$' || fail "DSN subject"
mail_headers "$d" | grep -qiE '^Return-Path: <>$' || fail "the DSN does not have the null sender"
grep -q '^Final-Recipient: rfc822; user@e2e.test' "$d" || fail "no Final-Recipient in the DSN"
grep -q '^Action: failed' "$d" || fail "no Action: failed in the DSN"
grep -q '^Content-Type: text/rfc822-headers' "$d" || fail "the DSN does not return the headers"
if grep -qF "$(eicar)" "$d"; then fail "the DSN carries the virus back"; fi
ok "DSN delivered to $E2E_FROM: $(mail_headers "$d" | grep '^Subject:')"
sleep 2
[ "$(user_mail | count_lines)" -eq 1 ] || fail "the recipient got the bounced virus"
sluice_log_has 'Blocked INFECTED \(Eicar-Test-Signature\.UNOFFICIAL\) \{BouncedInbound\}' ||
    fail "no 'Blocked INFECTED ... {BouncedInbound}' line"
ok "log: $(grep -E 'BouncedInbound' "$SLUICE_LOG" | head -n 1 | sed 's/.*sluice\[[0-9]*\]: //')"
wait_for 20 pf_queue_empty || fail "Postfix queue not empty at the end"
