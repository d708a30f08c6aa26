#!/usr/bin/env bash
# t_exactly_once_unavailable.sh - the ledger's Redis is down: the behaviour
# is dedup.on_unavailable's (docs/exactly-once.md, "Redis unavailable").
#
#   tempfail: Postfix gets 451 4.3.0 and keeps the message; nothing is
#             delivered while Redis is down;
#   deliver (the default): the message is delivered anyway (at-least-once)
#             and sluice logs that it went without duplicate suppression.
# Redis was running when sluice started and is stopped afterwards, so the
# connection breaks under sluice, as in production.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ledger_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ledger_lib.sh"

e2e_init 200
need_root
need_cmd swaks

pf_choose_ports
start_postfix
start_redis
start_sluice_for_postfix -o "redis.url=$REDIS_URL" -o dedup.on_unavailable=tempfail
stop_redis

msgid="noredis.$(date +%s).$$.$RANDOM@e2e.test"
inject_mail "$E2E_RCPT" "$msgid"
qre=$(ere_quote "$INJECT_QID")
def_re="postfix/lmtp\[[0-9]+\]: $qre: to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.3\.0 id=[A-Za-z0-9_-]+, duplicate check unavailable"
wait_maillog "$def_re" 30 || fail "Postfix did not get 451 4.3.0 for $INJECT_QID within 30 s"
ok "tempfail: Postfix: $(maillog_grep "$def_re" | head -n 1 | sed 's/.* postfix\///')"
[ "$(maildir_count_msgid "$msgid")" -eq 0 ] || fail "delivered although the ledger was down and on_unavailable=tempfail"
sluice_log_has "ledger unavailable .*tempfailing" || fail "sluice did not log why it tempfailed"
ok "nothing delivered; sluice: $(grep -E 'ledger unavailable' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
stop_sluice

start_sluice_for_postfix -o "redis.url=redis://127.0.0.1:$REDIS_PORT" -o dedup.on_unavailable=deliver
pf_flush
wait_for 60 pf_queue_empty || fail "Postfix still holds $INJECT_QID after 60 s with on_unavailable=deliver"
sleep 2
[ "$(maildir_count_msgid "$msgid")" -eq 1 ] || fail "expected 1 copy with on_unavailable=deliver, found $(maildir_count_msgid "$msgid")"
sluice_log_has "ledger unavailable .*reinjecting without duplicate suppression" ||
    fail "sluice did not log that it delivered without the ledger"
ok "deliver: delivered once; sluice: $(grep -E 'without duplicate suppression' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
