#!/usr/bin/env bash
# t_origin_concurrency.sh - origins.<name>.concurrency caps an origin's
# simultaneous transactions without ever refusing a connection or greeting.
#
# Proves: with concurrency 2 and two messages held by a slow scan, a third
# session is still greeted 220 and accepted at LHLO and MAIL, and its message
# gets "451 4.3.2" at the final "." (so Postfix defers only that message,
# never marking the filter dead): a session counts against the concurrency
# from its final "." on (docs/protocol.md), no longer from MAIL. sluice logs a
# warning that names amavisfeed_destination_concurrency_limit. Once the
# first two are answered, the slot is free again: the retry passes.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 120
need_root
need_cmd smtp-sink swaks

sink_port=$(free_port)
port=$(free_port)
sink_dir=$E2E_TMP/sink
start_sink "$sink_port" "$sink_dir"
# Each scan takes 4 s (test-only knob), so the first two transactions are
# still open when the third one starts.
SLUICE_TEST_WORKER_DELAY_MS=4000 start_sluice -v -o "frontend.listen=127.0.0.1:$port" \
    -o "origins.default.reinject=127.0.0.1:$sink_port" -o origins.default.concurrency=2

send() { # send N: one LMTP transaction with swaks, transcript in $E2E_TMP/swaks.N
    timeout 60 swaks --protocol LMTP --server "127.0.0.1:$port" --from "$E2E_FROM" \
        --to "rcpt$1@$E2E_DOMAIN" --header "Message-Id: <conc$1@e2e.test>" \
        >"$E2E_TMP/swaks.$1" 2>&1 || true
}

send 1 &
p1=$!
send 2 &
p2=$!
two_in_flight() { [ "$(sluice_log_count 'queued for scanning')" -ge 2 ]; }
wait_for 10 two_in_flight || fail "the first two messages did not reach the scanner"
send 3
grep -q '^<-  220 ' "$E2E_TMP/swaks.3" || fail "session 3 was not greeted with 220: $(cat "$E2E_TMP/swaks.3")"
grep -q '^<-  250 ' "$E2E_TMP/swaks.3" || fail "session 3's LHLO was not accepted"
grep -q '^<-  250 2\.1\.0 ' "$E2E_TMP/swaks.3" || fail "session 3's MAIL was not accepted"
grep -q '^<\*\* 451 4\.3\.2 ' "$E2E_TMP/swaks.3" ||
    fail "session 3 did not get 451 4.3.2 after its message: $(grep -E '^(<-|<\*\*)' "$E2E_TMP/swaks.3")"
grep -B3 '^<\*\* 451 4\.3\.2 ' "$E2E_TMP/swaks.3" | grep -q '^ -> \.$' ||
    fail "session 3's 451 4.3.2 was not the reply to its final dot: $(grep -E '^(<-|<\*\*| ->)' "$E2E_TMP/swaks.3")"
ok "third session greeted 220, LHLO 250, MAIL 250, 451 4.3.2 after its final dot (over the origin's limit)"
sluice_log_has 'warning: origin default: more than 2 concurrent.*amavisfeed_destination_concurrency_limit' ||
    fail "no warning naming amavisfeed_destination_concurrency_limit in the sluice log"
ok "sluice warned and named amavisfeed_destination_concurrency_limit"

wait "$p1" "$p2"
for n in 1 2; do
    grep -q '^<-  250 2\.0\.0 from MTA(smtp:\[127\.0\.0\.1\]:'"$sink_port"'): 250 ' "$E2E_TMP/swaks.$n" ||
        fail "message $n was not answered with the next hop's 250: $(grep -E '^(<-|<\*\*)' "$E2E_TMP/swaks.$n")"
done
ok "the two messages within the limit were delivered and answered 250 from MTA(...)"

send 3
grep -q '^<-  250 2\.0\.0 from MTA' "$E2E_TMP/swaks.3" ||
    fail "the retry of message 3 was not accepted after the slots freed up"
ok "after the first two were answered, the retry of message 3 passed"
n=$(sink_count "$sink_dir")
[ "$n" -eq 3 ] || fail "$n messages reached smtp-sink, expected exactly 3"
ok "exactly 3 messages reached smtp-sink"
