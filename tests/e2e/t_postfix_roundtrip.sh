#!/usr/bin/env bash
# t_postfix_roundtrip.sh - one message through a real Postfix (the standard
# content_filter setup of docs/postfix.md) and `sluice all` with its defaults.
#
# Proves: Postfix's amavisfeed LMTP client talks to sluice on 127.0.0.1:10024,
# sluice reinjects to the connecting client's address :10025, answers Postfix
# with the amavis-style "from MTA(...)" reply only after :10025 queued the
# message, adds its Received header (and no X-Virus-Scanned: no virus
# scanner is configured, which sluice says at start), passes the origin
# queue id on with XFORWARD, logs one "Passed CLEAN" line carrying Postfix's
# queue ids, and the message lands in the mailbox exactly once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd smtp-sink swaks

pf_choose_ports
start_postfix
start_sluice_for_postfix

msgid="roundtrip.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT" "$msgid"
qid=$INJECT_QID

wait_delivered 1 60 || fail "message <$msgid> (queue id $qid) not delivered within 60 s"
n=$(maildir_count_msgid "$msgid")
[ "$n" -eq 1 ] || fail "expected exactly 1 copy of <$msgid> in the Maildir, found $n"
ok "delivered exactly once to the Maildir of $E2E_RCPT"

file=$(maildir_files | head -n 1)
n=$(header_count "$file" '^Received: .*\(sluice [^)]*\).* with LMTP ')
[ "$n" -eq 1 ] || {
    mail_headers "$file" >&2
    fail "expected 1 Received header with \"(sluice ...)\" and \"with LMTP\", found $n"
}
ok "sluice's Received header: $(mail_headers "$file" | grep -E '^Received: .*\(sluice ' | head -n 1)"
n=$(header_count "$file" '^X-Virus-Scanned:')
[ "$n" -eq 0 ] || {
    mail_headers "$file" >&2
    fail "X-Virus-Scanned although no virus scanner is configured"
}
sluice_log_has 'warning: workers: no virus or spam scanner configured' ||
    fail "sluice did not warn that it runs without a scanner"
ok "no X-Virus-Scanned, and at start: $(grep -E 'no virus or spam scanner' "$SLUICE_LOG" | head -n 1 | sed 's/.*warning: //')"

# Postfix's view of the filter hop: the amavisfeed (lmtp) delivery of the
# original queue file must be "sent" with amavisd-new's reply text.
qre=$(ere_quote "$qid")
sent_re="^.* postfix/lmtp\[[0-9]+\]: $qre: to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:$PF_REINJECT_PORT\): 250 2\.0\.0 Ok: queued as [0-9A-Za-z]+"
maillog_has "$sent_re" || fail "no amavisfeed status=sent line for $qid with \"250 2.0.0 from MTA(smtp:[127.0.0.1]:$PF_REINJECT_PORT): 250 2.0.0 Ok: queued as\""
line=$(maillog_grep "$sent_re" | head -n 1)
ok "Postfix: ${line#* postfix/}"
qid2=$(printf '%s\n' "$line" | sed -n 's/.*Ok: queued as \([0-9A-Za-z]*\).*/\1/p')
[ -n "$qid2" ] || fail "could not read the reinjected queue id from: $line"
# amavisd-new's text ends right after the queue id; note any extra text
# (log parsers keyed on "queued as ID" still work, but it is a difference).
case $line in
*"queued as $qid2)") ;;
*) say "NOTE: reply text goes on after \"queued as $qid2\" (amavisd-new's ends there): ${line##*"queued as $qid2"}" ;;
esac
[ "$(maillog_count "status=deferred")" -eq 0 ] || fail "Postfix deferred something: $(maillog_grep status=deferred | head -n 3)"

# The reinjected copy: XFORWARD carried the origin queue id; virtual(8) delivered it.
maillog_has "postfix/smtpd\[[0-9]+\]: $qid2: client=.*orig_queue_id=$qre" ||
    fail "reinjected $qid2 has no orig_queue_id=$qid (XFORWARD IDENT not passed on): $(maillog_grep "$qid2: client=")"
ok "reinjected as $qid2 with XFORWARD: $(maillog_grep "$qid2: client=" | sed 's/.*: client=/client=/')"
# XFORWARD, MAIL, RCPT and DATA came in one write; Postfix's smtpd names a
# command sent ahead where it must end a group.
[ "$(maillog_count "improper command pipelining")" -eq 0 ] ||
    fail "Postfix saw improper pipelining: $(maillog_grep "improper command pipelining" | head -n 3)"
maillog_has "$qid2: to=<$(ere_quote "$E2E_RCPT")>, relay=virtual, .*status=sent \(delivered to maildir\)" ||
    fail "no virtual(8) delivery line for $qid2"
ok "$qid2 delivered to maildir by virtual(8)"

# sluice's own log line, amavis style.
clean_re="Passed CLEAN .*Queue-ID: $qre, Message-ID: <$(ere_quote "$msgid")>, mail_id: [^,]+, .*queued_as: $(ere_quote "$qid2")"
n=$(sluice_log_count "$clean_re")
[ "$n" -eq 1 ] || fail "expected 1 sluice \"Passed CLEAN ... Queue-ID: $qid ... queued_as: $qid2\" line, found $n"
ok "sluice: $(grep -E -- "$clean_re" "$SLUICE_LOG" | head -n 1)"

wait_for 20 pf_queue_empty || fail "Postfix queue not empty at the end: $(pf_queue_count) file(s)"
ok "Postfix queue empty"
