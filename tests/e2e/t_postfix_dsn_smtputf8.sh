#!/usr/bin/env bash
# t_postfix_dsn_smtputf8.sh - DSN and SMTPUTF8 through a real Postfix and
# `sluice all`, end to end.
#
# A message is submitted to the private Postfix with MAIL ... SMTPUTF8
# RET=HDRS ENVID=... and RCPT TO:<UTF-8 address> NOTIFY=SUCCESS,FAILURE
# ORCPT=rfc822;... Postfix's amavisfeed lmtp client hands these to sluice
# (which offers DSN and SMTPUTF8), sluice passes them on to the :10025
# smtpd, and the final delivery shows that each one arrived:
#   - SMTPUTF8: the :10025 smtpd received it "with UTF8SMTP" (its
#     Received: header), and accepted the UTF-8 recipient (without the
#     parameter it answers 553 5.6.7, and sluice would not even send it);
#   - NOTIFY=SUCCESS: the final hop sends a "delivered" DSN (Action:
#     delivered, not Postfix's "relayed" for a hop without DSN);
#   - ORCPT, ENVID and RET=HDRS: that DSN quotes Original-Recipient and
#     Original-Envelope-Id and holds the headers only.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_root
need_cmd python3

pf_choose_ports
start_postfix
start_sluice_for_postfix

msgid="dsn-utf8.$(date +%s).$$.$RANDOM@e2e.test"
envid="E2EENVID$RANDOM"
rcpt="jörg.müller@$E2E_DOMAIN"
orcpt="orig-rcpt@$E2E_DOMAIN"

# swaks cannot send SMTPUTF8 or DSN parameters: a small SMTP client.
out=$(timeout 60 python3 - "$PF_SMTP_PORT" "$msgid" "$envid" "$rcpt" "$orcpt" "$E2E_FROM" <<'EOF'
import socket, sys
port, msgid, envid, rcpt, orcpt, sender = sys.argv[1:]
port = int(port)
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")

def reply():
    lines = []
    while True:
        line = f.readline().decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines

def cmd(line, expect):
    s.sendall(line.encode("utf-8") + b"\r\n")
    r = reply()
    if not r[-1].startswith(expect):
        sys.exit("%r -> %r" % (line, r))
    return r[-1]

reply()
ehlo = cmd("EHLO e2e-client.test", "250")
cmd("MAIL FROM:<%s> SMTPUTF8 RET=HDRS ENVID=%s" % (sender, envid), "250")
cmd("RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;%s" % (rcpt, orcpt), "250")
cmd("DATA", "354")
body = ("From: <%s>\r\nTo: <%s>\r\nSubject: f\u00fcr dich\r\nMessage-Id: <%s>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nGr\u00fc\u00dfe aus dem Test.\r\n." %
        (sender, rcpt, msgid))
print(cmd(body, "250"))
cmd("QUIT", "221")
EOF
) || fail "could not submit the message to 127.0.0.1:$PF_SMTP_PORT: $out"
qid=$(printf '%s\n' "$out" | sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p')
[ -n "$qid" ] || fail "no queue id in \"$out\""
say "submitted <$msgid> for <$rcpt> (ORCPT $orcpt, ENVID $envid): Postfix queue id $qid"

# The message itself and the success DSN to the sender (both land in the
# domain's catch-all mailbox).
wait_delivered 2 60 || fail "expected the message and a success DSN within 60 s; $(maildir_count) found"

file=
dsn=
while IFS= read -r f; do
    if grep -qi '^Action: delivered' "$f"; then
        dsn=$f
    elif grep -qF "Message-Id: <$msgid>" "$f" && grep -q '^Received: .*(sluice ' "$f"; then
        file=$f
    fi
done < <(maildir_files)
[ -n "$file" ] || fail "the message <$msgid> was not delivered with sluice's Received header"
grep -q "Subject: für dich" "$file" || fail "the UTF-8 Subject did not arrive intact"
ok "delivered through sluice, UTF-8 intact: $(mail_headers "$file" | grep '^Subject:')"

# Postfix's lmtp client -> sluice -> the reinjection smtpd.
qre=$(ere_quote "$qid")
line=$(maillog_grep "postfix/lmtp\[[0-9]+\]: $qre: to=<$(ere_quote "$rcpt")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.0\.0 from MTA" | head -n 1)
[ -n "$line" ] || fail "no amavisfeed status=sent line for $qid to <$rcpt>"
ok "Postfix -> sluice: ${line#* postfix/}"
qid2=$(printf '%s\n' "$line" | sed -n 's/.*Ok: queued as \([0-9A-Za-z]*\).*/\1/p')
[ -n "$qid2" ] || fail "no reinjected queue id in: $line"

# SMTPUTF8 passed on: the :10025 smtpd's own Received: line says so.
mail_headers "$file" | grep -qE "^Received: .* with UTF8SMTP id $(ere_quote "$qid2") " ||
    fail "the reinjection smtpd did not receive $qid2 with SMTPUTF8: $(mail_headers "$file" | grep "id $qid2")"
ok "SMTPUTF8 passed on: $(mail_headers "$file" | grep -E "with UTF8SMTP id $(ere_quote "$qid2") " | cut -c1-120)"

# NOTIFY=SUCCESS, ENVID and RET=HDRS: the final hop's DSN.
[ -n "$dsn" ] || fail "no \"Action: delivered\" DSN arrived (NOTIFY=SUCCESS not passed on?)"
grep -qi "^Original-Envelope-Id: $envid" "$dsn" || fail "the DSN does not quote Original-Envelope-Id: $envid"
grep -qi "^Original-Recipient: rfc822; *$orcpt" "$dsn" || fail "the DSN has no Original-Recipient: rfc822;$orcpt"
grep -qiE '^Content-Type: (text/rfc822-headers|message/global-headers)' "$dsn" ||
    fail "the DSN does not carry the headers only (RET=HDRS)"
grep -q "Grüße aus dem Test" "$dsn" && fail "the DSN carries the body despite RET=HDRS"
ok "success DSN from the final hop: Action: delivered, Original-Envelope-Id: $envid, Original-Recipient: rfc822;$orcpt, headers only"

n=$(sluice_log_count "Passed CLEAN .*<$(ere_quote "$rcpt")>.*Queue-ID: $qre,")
[ "$n" -eq 1 ] || fail "expected 1 sluice Passed CLEAN line for <$rcpt>, found $n"
ok "sluice: $(grep -E -- "Passed CLEAN .*Queue-ID: $qre," "$SLUICE_LOG" | head -n 1)"
[ "$(sluice_log_count 'improper command pipelining')" -eq 0 ] ||
    fail "sluice saw improper pipelining from Postfix's lmtp client"
[ "$(maillog_count "status=(deferred|bounced)")" -eq 0 ] ||
    fail "Postfix deferred or bounced something: $(maillog_grep 'status=(deferred|bounced)' | head -n 3)"
wait_for 20 pf_queue_empty || fail "Postfix queue not empty at the end: $(pf_queue_count) file(s)"
ok "Postfix queue empty"
