#!/usr/bin/env bash
# t_exactly_once_kill.sh - the frontend dies right after the reinjection's
# 250 and before its LMTP reply (docs/exactly-once.md, case (a)).
#
# The test-only hook SLUICE_TEST_KILL_AFTER_REINJECT=1 makes sluice raise
# SIGKILL at exactly that point: :10025 has queued the message for both
# recipients, Postfix never hears back and retries. First a control run
# without the ledger (dedup.enabled=no) shows that the retry then delivers
# a second copy to each recipient - so the counting can fail; then the same
# with the ledger: the retry gets the stored replies and each recipient has
# exactly one copy.
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
start_redis

# one_round MSGID SLUICE-OPTS...: inject to two recipients with the kill
# hook armed, wait for the hook to fire, restart sluice without it, flush,
# wait for Postfix's queue to empty.
one_round() {
    local msgid=$1
    shift
    # -F: no master, so the hook's SIGKILL ends sluice as a whole (with a
    # master the child would be restarted, still armed); the test restarts it
    SLUICE_TEST_KILL_AFTER_REINJECT=1 start_sluice_for_postfix -F -o "redis.url=$REDIS_URL" "$@"
    inject_mail "$E2E_RCPT,$R2" "$msgid"
    wait_sluice_dead 60 || fail "sluice did not kill itself after reinjecting <$msgid> within 60 s"
    sluice_log_has "SLUICE_TEST_KILL_AFTER_REINJECT: killing myself" ||
        fail "sluice died, but not at the test hook"
    COPIES_WANTED=2
    wait_for 30 copies_at_least "$msgid" "$E2E_RCPT" "$R2" ||
        fail "the reinjected copies of <$msgid> were not delivered within 30 s"
    ok "sluice reinjected <$msgid> (:10025 queued it for both) and died before answering Postfix"
    start_sluice_for_postfix -o "redis.url=$REDIS_URL" "$@"
    pf_flush
    wait_for 60 pf_queue_empty || fail "Postfix still holds <$msgid> 60 s after sluice restarted"
    sleep 2 # a late extra copy would land now
}

# ---- control: without the ledger the retry is a second delivery
ctl="ctl.$(date +%s).$$.$RANDOM@e2e.test"
one_round "$ctl" -o dedup.enabled=no
n1=$(mbox_count_msgid "$E2E_RCPT" "$ctl")
n2=$(mbox_count_msgid "$R2" "$ctl")
[ "$n1" -eq 2 ] && [ "$n2" -eq 2 ] ||
    fail "control run (no ledger): expected the duplicate (2 copies each), found $n1 and $n2"
ok "control, ledger off: the retry duplicated the message ($n1 copies for <$E2E_RCPT>, $n2 for <$R2>)"
stop_sluice

# ---- with the ledger
msgid="once.$(date +%s).$$.$RANDOM@e2e.test"
one_round "$msgid"
n1=$(mbox_count_msgid "$E2E_RCPT" "$msgid")
n2=$(mbox_count_msgid "$R2" "$msgid")
[ "$n1" -eq 1 ] && [ "$n2" -eq 1 ] ||
    fail "with the ledger: expected exactly 1 copy per recipient, found $n1 for <$E2E_RCPT> and $n2 for <$R2>"
ok "ledger on: exactly one copy per recipient after the kill and the retry"
sluice_log_has "ledger: all 2 recipient\(s\) already reinjected|ledger: 2 recipient\(s\) already reinjected" ||
    fail "sluice did not log that it answered the retry from the ledger"
ok "sluice: $(grep -E 'already reinjected' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
qre="postfix/lmtp\[[0-9]+\]: [0-9A-F]+: to=<($(ere_quote "$E2E_RCPT")|$(ere_quote "$R2"))>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.0\.0 from MTA"
[ "$(maillog_count "$qre")" -ge 2 ] || fail "Postfix did not log status=sent with the stored replies"
ok "Postfix: $(maillog_grep "$qre" | tail -n 1 | sed 's/.* postfix\///')"
v=$(redis_cmd --scan --pattern 'sluice:ledger:*' | head -n 5 | while read -r k; do redis_cmd HVALS "$k"; done | grep -c '^done:250' || true)
[ "$v" -ge 2 ] || fail "the ledger in Redis does not hold done:250 entries ($v)"
ok "Redis holds the recipients as done:250 ..."
stop_sluice
