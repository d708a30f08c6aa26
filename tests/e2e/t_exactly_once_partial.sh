#!/usr/bin/env bash
# t_exactly_once_partial.sh - one recipient tempfailed by :10025, and the
# message re-sent (docs/exactly-once.md, case (c)).
#
# The reinjection smtpd answers 451 for other@ (check_recipient_access) and
# accepts user@. So that Postfix's retry carries both recipients again (with
# LMTP a plain retry would carry only the deferred one), sluice also dies
# before answering (SLUICE_TEST_KILL_AFTER_REINJECT=1). The ledger has
# user@ as done and other@ released: the retry, with :10025 accepting
# everyone again, reinjects other@ only, and user@ gets the stored reply.
# Each recipient ends with exactly one copy.
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
printf '%s 451 4.7.1 try again later (e2e)\n' "$R2" >"$PF_CONF/tempfail"
pf_master_opt smtpd_recipient_restrictions=permit_mynetworks,reject \
    "smtpd_recipient_restrictions=check_recipient_access,texthash:$PF_CONF/tempfail,permit_mynetworks,reject"
start_redis
# -F: no master, so the hook's SIGKILL ends sluice as a whole (with a
# master the child would be restarted, still armed); the test restarts it
SLUICE_TEST_KILL_AFTER_REINJECT=1 start_sluice_for_postfix -F -o "redis.url=$REDIS_URL"

msgid="partial.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT,$R2" "$msgid"
qre=$(ere_quote "$INJECT_QID")
wait_sluice_dead 60 || fail "sluice did not kill itself after reinjecting within 60 s"
COPIES_WANTED=1
wait_for 30 copies_at_least "$msgid" "$E2E_RCPT" || fail "<$E2E_RCPT> did not get its copy"
[ "$(mbox_count_msgid "$R2" "$msgid")" -eq 0 ] || fail "<$R2> got a copy although :10025 tempfailed it"
ok ":10025 accepted <$E2E_RCPT>, tempfailed <$R2>; sluice died before answering"
maillog_has "NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 451 4\.7\.1 <$(ere_quote "$R2")>" ||
    say "NOTE: no NOQUEUE reject line for <$R2> in the maillog"

: >"$PF_CONF/tempfail"
pf_reload
start_sluice_for_postfix -o "redis.url=$REDIS_URL"
pf_flush
wait_for 60 pf_queue_empty || fail "Postfix still holds $INJECT_QID after 60 s"
sleep 2
n1=$(mbox_count_msgid "$E2E_RCPT" "$msgid")
n2=$(mbox_count_msgid "$R2" "$msgid")
[ "$n1" -eq 1 ] && [ "$n2" -eq 1 ] ||
    fail "expected exactly 1 copy per recipient, found $n1 for <$E2E_RCPT> and $n2 for <$R2>"
ok "exactly one copy per recipient after the partial failure and the retry"
sluice_log_has "ledger: 1 recipient\(s\) already reinjected" ||
    fail "the retry was not split by the ledger (1 stored reply, 1 reinjection)"
ok "sluice: $(grep -E 'already reinjected' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
