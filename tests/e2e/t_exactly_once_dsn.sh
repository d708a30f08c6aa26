#!/usr/bin/env bash
# t_exactly_once_dsn.sh - the non-delivery report of a bounce destiny is in
# the ledger too: the frontend dies right after :10025 took the report and
# before its LMTP reply, Postfix retries, and the sender gets one report,
# not two (docs/exactly-once.md).
#
# A banned attachment (setup.exe) with policy.final_banned_destiny=bounce,
# through real Postfix; the test-only hook SLUICE_TEST_KILL_AFTER_REINJECT=1
# raises SIGKILL once :10025 accepted the report. First a control run
# without the ledger (dedup.enabled=no): the retry sends a second report,
# so the counting can fail; then the same with the ledger: the retry gets
# the stored reply and the sender has exactly one report.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"
# shellcheck source=ledger_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ledger_lib.sh"

e2e_init 240
need_root
need_cmd swaks

pf_choose_ports
start_postfix
start_redis

# inject_file FILE: the message as it is, from E2E_FROM to E2E_RCPT
inject_file() {
    local out=$E2E_TMP/swaks.$RANDOM.log
    timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --helo e2e-client.test \
        --from "$E2E_FROM" --to "$E2E_RCPT" --timeout 30 --data "@$1" >"$out" 2>&1 ||
        { cat "$out"; fail "swaks could not inject $1 into 127.0.0.1:$PF_SMTP_PORT"; }
}
# reports MSGID: non-delivery reports in the sender's mailbox returning
# <MSGID> (the report carries the original's headers)
reports() { mbox_count_msgid "$E2E_FROM" "$1"; }
reports_at_least_one() { [ "$(reports "$1")" -ge 1 ]; }

# one_round NAME [SLUICE ARGS]: sets ROUND_MSGID, the round's Message-ID
one_round() {
    local name=$1 m msgid
    shift
    m=$(echo "not really a program" | mk_attach "$name" "a program" setup.exe application/octet-stream)
    msgid=$(sed -n 's/^Message-ID: <\(.*\)>\r$/\1/p' "$m")
    [ -n "$msgid" ] || fail "no Message-ID in $m"
    # -F: no master, so the hook's SIGKILL ends sluice as a whole
    SLUICE_TEST_KILL_AFTER_REINJECT=1 start_sluice_for_postfix -F -o "redis.url=$REDIS_URL" \
        -o policy.final_banned_destiny=bounce "$@"
    inject_file "$m"
    wait_sluice_dead 60 || fail "sluice did not kill itself after the report for <$msgid> within 60 s"
    sluice_log_has "SLUICE_TEST_KILL_AFTER_REINJECT: killing myself" ||
        fail "sluice died, but not at the test hook"
    wait_for 30 reports_at_least_one "$msgid" ||
        fail "the report for <$msgid> was not delivered to <$E2E_FROM> within 30 s"
    ok "sluice sent the report for <$msgid> (:10025 queued it) and died before answering Postfix"
    start_sluice_for_postfix -o "redis.url=$REDIS_URL" -o policy.final_banned_destiny=bounce "$@"
    pf_flush
    wait_for 60 pf_queue_empty || fail "Postfix still holds <$msgid> 60 s after sluice restarted"
    sleep 2 # a late second report would land now
    ROUND_MSGID=$msgid
}

one_round ctl -o dedup.enabled=no
ctl=$ROUND_MSGID
n=$(reports "$ctl")
[ "$n" -eq 2 ] || fail "control run (no ledger): expected the second report, found $n"
ok "control, ledger off: the retry sent a second non-delivery report ($n for <$ctl>)"
stop_sluice

one_round once
msgid=$ROUND_MSGID
n=$(reports "$msgid")
[ "$n" -eq 1 ] || fail "with the ledger: expected exactly 1 non-delivery report, found $n"
ok "ledger on: exactly one non-delivery report after the kill and the retry"
[ "$(mbox_count_msgid "$E2E_RCPT" "$msgid")" -eq 0 ] || fail "the banned message reached <$E2E_RCPT>"
sluice_log_has "ledger: all 1 recipient\(s\) already reinjected|ledger: 1 recipient\(s\) already reinjected or reported" ||
    fail "sluice did not log that it answered the retry from the ledger"
ok "sluice: $(grep -E 'already reinjected' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
qre="postfix/lmtp\[[0-9]+\]: [0-9A-F]+: to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.7\.0 Ok, bounced"
[ "$(maillog_count "$qre")" -ge 1 ] || fail "Postfix did not log status=sent with the stored bounce reply"
ok "Postfix: $(maillog_grep "$qre" | tail -n 1 | sed 's/.* postfix\///')"
stop_sluice
