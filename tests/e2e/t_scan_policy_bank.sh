#!/usr/bin/env bash
# t_scan_policy_bank.sh - policy banks end to end: the original client that
# Postfix passes in XFORWARD ADDR selects amavisd-new's ORIGINATING bank,
# through a real Postfix (the content_filter setup of docs/postfix.md) and a real spamd.
#
# sluice runs with policy.mynetworks=127.0.0.2/32, policy.local_domains=
# e2e.test and a bank ORIGINATING that rejects spam (an ISP keeps its own
# customers' spam from leaving); inbound spam keeps the default: passed,
# tagged. Mail is submitted to the instance's smtpd from 127.0.0.1 (a
# client outside mynetworks) or from 127.0.0.2 (inside), so only the
# client address differs.
#
# Proves:
#   - inbound GTUBE (127.0.0.1 -> user@e2e.test) arrives tagged; log
#     "Passed SPAM {RelayedTaggedInbound}, [127.0.0.1]" (no bank);
#   - outbound GTUBE (127.0.0.2 -> x@remote.test) is refused with 554
#     5.7.0: Postfix logs status=bounced for the filter hop and returns the
#     mail to the sender, nothing reaches remote.test; log "Blocked SPAM
#     {RejectedOutbound}, ORIGINATING LOCAL [127.0.0.2]";
#   - clean mail gets amavisd-new's four direction words: {RelayedOutbound}
#     (127.0.0.2 -> remote.test, delivered there), {RelayedInternal}
#     (127.0.0.2 -> e2e.test), {RelayedInbound} (127.0.0.1 -> e2e.test),
#     {RelayedOpenRelay} (127.0.0.1 -> remote.test), with "ORIGINATING
#     LOCAL" exactly on the two from 127.0.0.2.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 175
need_root
need_cmd swaks spamd smtp-sink postconf

INSIDE=127.0.0.2        # in policy.mynetworks
OUTSIDE=127.0.0.1       # not
REMOTE=someone@remote.test
IN_RE=$(ere_quote "$INSIDE")
OUT_RE=$(ere_quote "$OUTSIDE")

start_spamd
pf_choose_ports
start_postfix
# remote.test is "the Internet": a dumping smtp-sink reached through a
# transport map of the private instance (no DNS).
OUT_PORT=$(free_port)
OUT_DIR=$E2E_TMP/remote
start_sink "$OUT_PORT" "$OUT_DIR"
printf 'remote.test smtp:[127.0.0.1]:%s\n' "$OUT_PORT" >"$PF_CONF/transport"
timeout 20 postconf -c "$PF_CONF" -e "transport_maps = texthash:$PF_CONF/transport" ||
    fail "postconf transport_maps"
pf_reload
start_sluice_for_postfix -o "scanners.spamd.servers=$SPAMD_ADDR" \
    -o "policy.mynetworks=$INSIDE/32" -o policy.local_domains=e2e.test \
    -o policy_banks.ORIGINATING.final_spam_destiny=reject

# pf_send_from ADDR FILE TO: submit FILE to the instance's smtpd from the
# local address ADDR; sets INJECT_QID
pf_send_from() {
    local out=$E2E_TMP/swaks.$RANDOM.log
    timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --local-interface "$1" \
        --helo client.e2e.test --from "$E2E_FROM" --to "$3" --data "$2" --timeout 30 >"$out" 2>&1 ||
        { cat "$out" >&2; fail "swaks could not submit $2 from $1"; }
    INJECT_QID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\).*/\1/p' "$out" | head -n 1)
    [ -n "$INJECT_QID" ] || fail "no queue id in $out"
    say "submitted $(basename "$2") from $1 for <$3>: queue id $INJECT_QID"
}
user_mail() { find "$PF_VMAIL/e2e.test/user" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null; }
sender_mail() { find "$PF_VMAIL/e2e.test/catchall" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null; }
count_lines() { grep -c . || true; }
# for wait_for, which runs a command again and again (not an expanded value)
user_has() { [ "$(user_mail | count_lines)" -ge "$1" ]; }
sender_has() { [ "$(sender_mail | count_lines)" -ge "$1" ]; }
remote_has() { [ "$(sink_count "$OUT_DIR")" -ge "$1" ]; }
# summary QID: sluice's amavis line for that Postfix queue id
summary() { grep -E "Queue-ID: $(ere_quote "$1")," "$SLUICE_LOG" | tail -n 1 | sed 's/.*sluice\[[0-9]*\]: //'; }
has_summary() { [ -n "$(summary "$1")" ]; }
wait_summary() { wait_for 60 has_summary "$1" || fail "no sluice summary line for Queue-ID $1"; }
# expect_summary QID ERE: the summary line matches
expect_summary() {
    wait_summary "$1"
    summary "$1" | grep -qE -- "$2" || fail "summary for $1 does not match '$2': $(summary "$1")"
    ok "log: $(summary "$1" | cut -c1-150)"
}

# 1. inbound spam: the default policy (pass, tagged)
m=$(mk_msg spam-in "inbound offer" "$(gtube)")
pf_send_from "$OUTSIDE" "$m" "$E2E_RCPT"
qid=$INJECT_QID
wait_for 60 user_has 1 || fail "the inbound spam was not delivered"
f=$(user_mail | head -n 1)
mail_headers "$f" | grep -q '^X-Spam-Flag: YES$' || { mail_headers "$f" >&2; fail "inbound spam without X-Spam-Flag: YES"; }
mail_headers "$f" | grep -q '^Subject: \*\*\*SPAM\*\*\* inbound offer$' || fail "inbound spam without the subject tag"
ok "inbound spam delivered tagged: $(mail_headers "$f" | grep '^Subject:')"
expect_summary "$qid" "^\([^)]+\) Passed SPAM \{RelayedTaggedInbound\}, \[$OUT_RE\]:[0-9]+ <"

# 2. outbound spam: the ORIGINATING bank rejects it; Postfix returns it to
# the sender, remote.test gets nothing
m=$(mk_msg spam-out "outbound offer" "$(gtube)")
pf_send_from "$INSIDE" "$m" "$REMOTE"
qid=$INJECT_QID
wait_maillog "$(ere_quote "$qid"): to=<$(ere_quote "$REMOTE")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 554 5\.7\.0 Reject, id=[^ ]+ - SPAM" 60 ||
    fail "no 'status=bounced (... 554 5.7.0 Reject ... SPAM' for $qid"
ok "Postfix: $(maillog_grep "$qid: to=<.*status=bounced" | head -n 1 | sed 's/.*postfix\///' | cut -c1-160)"
expect_summary "$qid" "^\([^)]+\) Blocked SPAM \{RejectedOutbound\}, ORIGINATING LOCAL \[$IN_RE\]:[0-9]+ <"
wait_for 60 sender_has 1 || fail "the sender got no bounce for the refused spam"
ok "the sender got Postfix's bounce: $(mail_headers "$(sender_mail | head -n 1)" | grep '^Subject:')"
[ "$(sink_count "$OUT_DIR")" -eq 0 ] || fail "outbound spam reached remote.test"

# 3. clean mail in the four directions
declare -A WANT=(
    ["$INSIDE $REMOTE"]="Passed CLEAN \{RelayedOutbound\}, ORIGINATING LOCAL \[$IN_RE\]:[0-9]+ <"
    ["$INSIDE $E2E_RCPT"]="Passed CLEAN \{RelayedInternal\}, ORIGINATING LOCAL \[$IN_RE\]:[0-9]+ <"
    ["$OUTSIDE $E2E_RCPT"]="Passed CLEAN \{RelayedInbound\}, \[$OUT_RE\]:[0-9]+ <"
    ["$OUTSIDE $REMOTE"]="Passed CLEAN \{RelayedOpenRelay\}, \[$OUT_RE\]:[0-9]+ <"
)
n=0
for key in "$INSIDE $REMOTE" "$INSIDE $E2E_RCPT" "$OUTSIDE $E2E_RCPT" "$OUTSIDE $REMOTE"; do
    n=$((n + 1))
    m=$(mk_msg "clean$n" "hello $n" "just a note, number $n")
    pf_send_from "${key%% *}" "$m" "${key#* }"
    expect_summary "$INJECT_QID" "^\([^)]+\) ${WANT[$key]}"
done
wait_for 60 remote_has 2 || fail "the clean mail for remote.test did not arrive there"
d=$(grep -l '^Subject: hello 1' "$OUT_DIR"/m.* | head -n 1)
[ -n "$d" ] || fail "the outbound clean mail is not at remote.test"
grep -qE '\(sluice [^)]*\)' "$d" || fail "the outbound mail did not go through sluice"
ok "outbound clean mail delivered to remote.test, $(sink_count "$OUT_DIR") transaction(s) there"
wait_for 30 pf_queue_empty || fail "Postfix queue not empty at the end"
