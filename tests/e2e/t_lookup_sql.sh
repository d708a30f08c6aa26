#!/usr/bin/env bash
# t_lookup_sql.sh - each recipient's policy from amavisd-new's SQL tables
# (users, policy, mailaddr, wblist; deploy/sql/amavisd-pg-lookups.sql) in a
# private PostgreSQL, through a real Postfix and a real spamd
# (docs/lookups.md).
#
# Proves:
#   1. sluice lookup follows amavis' keys and priorities: the full address,
#      user@domain for an extension, @domain, @.parent and @. records; a
#      field NULL in the more specific record comes from the next one;
#   2. GTUBE from one sender to three recipients with three policies in
#      one LMTP transaction (the default kill level is 2000 here): the
#      spam lover's copy is delivered, the low kill level's (500) is
#      refused with 554, the default's is delivered tagged; the log line
#      names the policies ("sql:lovers");
#   3. the sender on one recipient's block list (wblist 'B') is refused for
#      that recipient only, a clean message; a sender on another's allow
#      list ('W') passes GTUBE for that recipient only;
#   4. PostgreSQL stopped: a recipient not in the cache gets 451, Postfix
#      keeps the message; PostgreSQL back, it is delivered once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"
# shellcheck source=pg_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"
# shellcheck source=quar_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/quar_lib.sh"

e2e_init 200
need_root
need_cmd swaks spamd

start_spamd
start_pg
pg_sql "
INSERT INTO policy (id, policy_name) VALUES (1, 'default');
INSERT INTO policy (id, policy_name, spam_lover, spam_kill_level) VALUES (2, 'lovers', 'Y', 500);
INSERT INTO policy (id, policy_name, spam_kill_level, spam_tag2_level) VALUES (3, 'lowkill', 500, 5);
INSERT INTO policy (id, policy_name, spam_tag2_level) VALUES (4, 'sub', NULL);
INSERT INTO policy (id, policy_name, spam_tag2_level, spam_kill_level) VALUES (5, 'parent', 42, 77);
INSERT INTO policy (id, policy_name, spam_tag2_level) VALUES (6, 'catchall', 99);
INSERT INTO users (id, priority, policy_id, email) VALUES
  (1, 9, 2, 'lover@e2e.test'), (2, 9, 3, 'low@e2e.test'), (3, 9, 1, 'plain@e2e.test'),
  (4, 9, 3, 'friendly@e2e.test'), (5, 8, 3, 'ext@e2e.test'),
  (6, 5, 4, '@sub.example.com'), (7, 2, 5, '@.example.com'), (8, 0, 6, '@.');
INSERT INTO mailaddr (id, priority, email) VALUES (1, 9, 'spammer@e2e.test'), (2, 5, '@friend.test');
INSERT INTO wblist (rid, sid, wb) VALUES (3, 1, 'B'), (4, 2, 'W');
" >/dev/null
LOOKUP=(-o "lookup.sql=$PG_CONNINFO")
lk() { "$SLUICE_BIN" "${LOOKUP[@]}" lookup "$@"; }
field() { lk "$1" | sed -n "s/^$2: //p"; }

# ---- 1. keys and priorities -------------------------------------------------
[ "$(field ext+news@e2e.test key)" = "ext@e2e.test" ] || { lk ext+news@e2e.test >&2; fail "ext+news@e2e.test did not find ext@e2e.test"; }
[ "$(field ext+news@e2e.test policy)" = lowkill ] || fail "ext+news@e2e.test: wrong policy"
[ "$(field a@sub.example.com key)" = "@sub.example.com" ] || fail "a@sub.example.com: $(lk a@sub.example.com)"
# 'sub' sets no levels: each comes from the next record, @.example.com
[ "$(field a@sub.example.com spam_tag2_level)" = 42 ] || fail "a@sub.example.com: tag2 not from @.example.com: $(lk a@sub.example.com)"
[ "$(field a@deep.sub.example.com key)" = "@.example.com" ] || fail "a@deep.sub.example.com: $(lk a@deep.sub.example.com)"
[ "$(field a@elsewhere.test key)" = "@." ] || fail "a@elsewhere.test: $(lk a@elsewhere.test)"
[ "$(field a@elsewhere.test spam_tag2_level)" = 99 ] || fail "a@elsewhere.test: no catch-all tag2"
lk plain@e2e.test --sender spammer@e2e.test | grep -qx 'sender <spammer@e2e.test>: blacklisted, boost 0' ||
    fail "sluice lookup: spammer@e2e.test not blacklisted for plain@e2e.test: $(lk plain@e2e.test --sender spammer@e2e.test)"
lk friendly@e2e.test --sender a@friend.test | grep -qx 'sender <a@friend.test>: whitelisted, boost 0' ||
    fail "sluice lookup: a@friend.test not whitelisted for friendly@e2e.test"
ok "sluice lookup: extension, @domain, @.parent, @. and per-field fallback as amavis; block and allow lists"

# ---- 2. three recipients, three policies, one transaction -------------------
pf_private_ports
start_postfix
start_sluice_for_postfix -o "scanners.spamd.servers=$SPAMD_ADDR" "${LOOKUP[@]}" \
    -o policy.final_spam_destiny=reject -o policy.spam_kill_level=2000 -o policy.spam_tag_level=-999
send_from() { # FROM FILE RCPT...
    local from=$1 file=$2 out=$E2E_TMP/swaks.$RANDOM.log to
    shift 2
    to=$(IFS=,; echo "$*")
    timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --from "$from" --to "$to" \
        --data "@$file" >"$out" 2>&1 || { cat "$out" >&2; fail "swaks could not submit $file"; }
    INJECT_QID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\).*/\1/p' "$out" | head -n 1)
}
lmtp_status() { # QID RCPT: Postfix's status=... for that recipient's LMTP delivery
    maillog_grep "$(ere_quote "$1"): to=<$(ere_quote "$2")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, " |
        sed -n 's/.*status=\([a-z]*\) .*/\1/p' | tail -n 1
}
lmtp_done() { [ -n "$(lmtp_status "$1" "$2")" ]; }

m=$(mk_msg spam3 "buy now" "$(gtube)")
msgid=$(msg_id_of "$m")
send_from "$E2E_FROM" "$m" lover@e2e.test low@e2e.test plain@e2e.test
qid=$INJECT_QID
wait_for 60 lmtp_done "$qid" plain@e2e.test || fail "Postfix did not log the LMTP delivery of $qid"
[ "$(lmtp_status "$qid" lover@e2e.test)" = sent ] || fail "the spam lover's copy: $(lmtp_status "$qid" lover@e2e.test)"
[ "$(lmtp_status "$qid" low@e2e.test)" = bounced ] || fail "low kill level: $(lmtp_status "$qid" low@e2e.test)"
[ "$(lmtp_status "$qid" plain@e2e.test)" = sent ] || fail "default: $(lmtp_status "$qid" plain@e2e.test)"
maillog_has "$(ere_quote "$qid"): to=<low@e2e\.test>.*said: 554 5\.7\.0 " || fail "no 554 5.7.0 for low@e2e.test"
wait_for 30 pf_queue_empty || fail "Postfix still holds mail"
[ "$(mbox_copies catchall "$msgid")" -eq 2 ] || fail "expected 2 delivered copies (lover, plain), got $(mbox_copies catchall "$msgid")"
sluice_log_has 'Passed SPAM \{RejectedInbound,RelayedTaggedInbound\}, sql:lovers/sql:lowkill/sql:default ' ||
    fail "the log line does not name the lookups' policies"
ok "GTUBE: lover sent, low kill level bounced (554), default sent; log: $(grep -E 'Passed SPAM' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //' | cut -c1-160)"

# ---- 3. block and allow lists, per recipient --------------------------------
m=$(mk_msg ham3 "lunch" "Hi, shall we meet for lunch tomorrow at noon? Cheers")
send_from spammer@e2e.test "$m" plain@e2e.test lover@e2e.test
qid=$INJECT_QID
wait_for 60 lmtp_done "$qid" lover@e2e.test || fail "Postfix did not log the LMTP delivery of $qid"
[ "$(lmtp_status "$qid" plain@e2e.test)" = bounced ] || fail "blacklisted sender for plain@: $(lmtp_status "$qid" plain@e2e.test)"
[ "$(lmtp_status "$qid" lover@e2e.test)" = sent ] || fail "blacklisted for another recipient only: $(lmtp_status "$qid" lover@e2e.test)"
ok "block list: spammer@e2e.test refused for plain@e2e.test only"
m=$(mk_msg spamw "buy now" "$(gtube)")
send_from news@friend.test "$m" friendly@e2e.test low@e2e.test
qid=$INJECT_QID
wait_for 60 lmtp_done "$qid" low@e2e.test || fail "Postfix did not log the LMTP delivery of $qid"
[ "$(lmtp_status "$qid" friendly@e2e.test)" = sent ] || fail "allow list: $(lmtp_status "$qid" friendly@e2e.test)"
[ "$(lmtp_status "$qid" low@e2e.test)" = bounced ] || fail "allowed for another recipient only: $(lmtp_status "$qid" low@e2e.test)"
ok "allow list: GTUBE from @friend.test passed for friendly@e2e.test only"

# ---- 4. the database down: 4xx, kept, delivered once after ------------------
stop_pg
m=$(mk_msg nodb "while the database is down" "nothing special")
msgid=$(msg_id_of "$m")
send_from "$E2E_FROM" "$m" fresh@e2e.test
qid=$INJECT_QID
wait_maillog "$(ere_quote "$qid"): to=<fresh@e2e\.test>.*status=deferred .*said: 4[0-9][0-9] " 60 ||
    fail "Postfix did not get a 4xx for $qid with the database down"
sluice_log_has "policy lookup for <fresh@e2e\.test> failed: PostgreSQL" || fail "sluice did not log the failed lookup"
ok "database down: $(maillog_grep "$(ere_quote "$qid"): to=<fresh@e2e\.test>.*status=deferred" | head -n 1 | sed 's/.*status=//' | cut -c1-140)"
restart_pg
pf_flush
wait_for 60 pf_queue_empty || fail "Postfix still holds $qid after the database came back"
[ "$(mbox_copies catchall "$msgid")" -eq 1 ] || fail "expected 1 copy after the database came back, got $(mbox_copies catchall "$msgid")"
ok "database back: delivered once"
