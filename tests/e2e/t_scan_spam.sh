#!/usr/bin/env bash
# t_scan_spam.sh - sluice with a real spamd (-L, offline) and rspamd
# (minimal configuration, offline), LMTP from swaks, reinjection into
# smtp-sink.
#
# Proves: GTUBE is SPAM and gets the kill-level destiny (reject here: 554
# 5.7.0); per-recipient levels give different outcomes in one LMTP
# transaction (one recipient refused, one passed tagged with X-Spam-Flag
# and the ***SPAM*** subject tag, one passed with X-Spam-Status only: two
# reinjection transactions, since their edits differ); amavis' log words
# "Passed SPAM {RejectedInbound,RelayedTaggedInbound}" and "Hits: 1000";
# a ham sample passes with X-Spam-Status: No, ... tests=[...]; rspamd
# finds GTUBE (asserted on the symbol, which lands in X-Spam-Status).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 175
need_root
need_cmd smtp-sink swaks spamd rspamd

rspamd_launch           # ~20 s to start: meanwhile spamd and the spamd cases
start_spamd
SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
LISTEN=127.0.0.1:$(free_port)
VIP=vip@e2e.test
PLAIN=plain@e2e.test
start_sluice -o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
    -o "scanners.spamd.servers=$SPAMD_ADDR" -o policy.final_spam_destiny=reject \
    -o policy.spam_tag_level=-999 \
    -o "policy.spam_kill_level_map=$VIP=2000, $PLAIN=5000" \
    -o "policy.spam_tag2_level_map=$PLAIN=5000"

hdr() { mail_headers "$1" | grep -E "^$2: " | head -n 1; }
dump_for() { grep -l "^X-Rcpt-Args: <$1>" "$SINK_DIR"/m.* 2>/dev/null | head -n 1; }

# 1. GTUBE to three recipients with three different levels
m=$(mk_msg gtube "buy now" "$(gtube)")
lmtp_send "$m" "$E2E_RCPT" "$VIP" "$PLAIN"
case $(reply_n 1) in "554 5.7.0 Reject, id="*" - SPAM, score=1000"*) ;; *) fail "rcpt 1: $(reply_n 1)" ;; esac
case $(reply_n 2) in 250\ 2.0.0\ from\ MTA*) ;; *) fail "rcpt 2: $(reply_n 2)" ;; esac
case $(reply_n 3) in 250\ 2.0.0\ from\ MTA*) ;; *) fail "rcpt 3: $(reply_n 3)" ;; esac
ok "GTUBE, kill level: $(reply_n 1)"
ok "GTUBE, $VIP (kill level 2000): $(reply_n 2)"
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq 2 || fail "expected 2 reinjection transactions, got $(sink_count "$SINK_DIR")"
[ -z "$(grep -l "^X-Rcpt-Args: <$E2E_RCPT>" "$SINK_DIR"/m.* || true)" ] || fail "$E2E_RCPT got the spam"
f=$(dump_for "$VIP")
[ -n "$f" ] || fail "no transaction for $VIP"
hdr "$f" X-Spam-Flag | grep -q '^X-Spam-Flag: YES$' || { mail_headers "$f" >&2; fail "$VIP: no X-Spam-Flag: YES"; }
hdr "$f" Subject | grep -q '^Subject: \*\*\*SPAM\*\*\* buy now$' || fail "$VIP: no subject tag: $(hdr "$f" Subject)"
hdr "$f" X-Spam-Status | grep -qE '^X-Spam-Status: Yes, score=1000(\.[0-9]+)? tagged_above=-999 required=6.31 tests=\[.*GTUBE=1000' ||
    fail "$VIP: $(hdr "$f" X-Spam-Status)"
ok "$VIP: $(hdr "$f" X-Spam-Status)"
f=$(dump_for "$PLAIN")
[ -n "$f" ] || fail "no transaction for $PLAIN"
[ -z "$(hdr "$f" X-Spam-Flag)" ] || fail "$PLAIN: X-Spam-Flag although below its tag2 level"
hdr "$f" Subject | grep -q '^Subject: buy now$' || fail "$PLAIN: subject changed: $(hdr "$f" Subject)"
hdr "$f" X-Spam-Status | grep -q '^X-Spam-Status: No, score=1000' || fail "$PLAIN: $(hdr "$f" X-Spam-Status)"
ok "$PLAIN (tag2 5000): $(hdr "$f" X-Spam-Status)"
sluice_log_has 'Passed SPAM \{RejectedInbound,RelayedTaggedInbound,RelayedInbound\}, .* Hits: 1000(\.[0-9]+)?, ' ||
    fail "no 'Passed SPAM {RejectedInbound,RelayedTaggedInbound,RelayedInbound} ... Hits: 1000' line"
ok "log: $(grep -E 'Passed SPAM' "$SLUICE_LOG" | head -n 1 | sed 's/.*sluice\[[0-9]*\]: //')"

# 2. ham: passes, with X-Spam-Status (tag level -999)
before=$(sink_count "$SINK_DIR")
m=$(mk_msg ham "lunch tomorrow" "Hi Bob, shall we meet for lunch tomorrow at noon? Cheers, Alice")
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in 250\ 2.0.0\ from\ MTA*) ;; *) fail "ham: $(reply_n 1)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq $((before + 1)) || fail "ham not reinjected"
f=$(newest_dump "$SINK_DIR")
hdr "$f" X-Spam-Status | grep -qE '^X-Spam-Status: No, score=-?[0-9.]+ tagged_above=-999 required=6.31 tests=\[' ||
    { mail_headers "$f" >&2; fail "ham: no X-Spam-Status"; }
ok "ham: $(hdr "$f" X-Spam-Status)"
sluice_log_has 'Passed CLEAN \{RelayedInbound\}, .* Hits: -?[0-9.]+, ' || fail "no Passed CLEAN line with Hits"

# 3. rspamd as the spam scanner: GTUBE found (its symbol)
rspamd_wait
stop_sluice >/dev/null
start_sluice -o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
    -o "scanners.rspamd.servers=$RSPAMD_ADDR"
before=$(sink_count "$SINK_DIR")
m=$(mk_msg rgtube "buy again" "$(gtube)")
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in 250\ 2.0.0\ from\ MTA*) ;; *) fail "rspamd GTUBE: $(reply_n 1)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq $((before + 1)) || fail "rspamd GTUBE not reinjected"
f=$(newest_dump "$SINK_DIR")
hdr "$f" X-Spam-Status | grep -qE 'tests=\[([^]]*, )?GTUBE=' || { mail_headers "$f" >&2; fail "rspamd: no GTUBE symbol"; }
ok "rspamd: $(hdr "$f" X-Spam-Status)"
sluice_log_has 'Passed SPAM \{RelayedTaggedInbound\}, .* Hits: 15(\.[0-9]+)?, ' || fail "no Passed SPAM line for rspamd's GTUBE"
ok "log: $(grep -E 'Passed SPAM \{RelayedTaggedInbound\}' "$SLUICE_LOG" | tail -n 1 | sed 's/.*sluice\[[0-9]*\]: //')"
