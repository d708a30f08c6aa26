#!/usr/bin/env bash
# t_scan_listener_bank.sh - a policy bank selected by the listener the
# message came in on (policy_banks.<name>.match_listener, amavisd-new's
# $interface_policy), end to end: LMTP from swaks to `sluice all`,
# reinjection into smtp-sink.
#
# The same banned attachment (setup.exe) twice, with a bank STRICT that
# turns the banned destiny from the default discard into reject:
#   - STRICT matches the port sluice listens on: 554 5.7.0, nothing
#     reinjected, the log line names the bank;
#   - STRICT matches another port: the default, 250 2.7.0 Ok, discarded.
# A clean message passes in both runs (the bank changes only what it names).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # sink_count takes no arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 120
need_root
need_cmd smtp-sink swaks

SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
sink_count() { find "$SINK_DIR" -maxdepth 1 -type f -name 'm.*' | wc -l; }
PORT=$(free_port)
OTHER=$(free_port)

# run BANK-PORT: one sluice whose bank STRICT matches BANK-PORT; sends the
# banned and the clean message
run() {
    start_sluice -o "frontend.listen=127.0.0.1:$PORT" \
        -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
        -o "policy_banks.STRICT.match_listener=$1" \
        -o policy_banks.STRICT.final_banned_destiny=reject
    BANNED=$(echo "not really a program" | mk_attach "banned.$1" "a program" setup.exe application/octet-stream)
    lmtp_send "$BANNED" "$E2E_RCPT"
    BANNED_REPLY=$(reply_n 1)
    CLEAN=$(echo "hello" | mk_attach "clean.$1" "notes" notes.txt text/plain)
    lmtp_send "$CLEAN" "$E2E_RCPT"
    CLEAN_REPLY=$(reply_n 1)
    stop_sluice
}

before=$(sink_count)
run "$PORT"
case $BANNED_REPLY in "554 5.7.0 Reject, id="*BANNED*) ;; *) fail "bank on our port: banned got: $BANNED_REPLY" ;; esac
ok "bank STRICT on :$PORT (ours): $BANNED_REPLY"
sluice_log_has "Blocked BANNED .*\{Rejected[A-Za-z]*\}, .*STRICT" ||
    fail "the log line does not name the bank: $(grep -E 'Blocked BANNED' "$SLUICE_LOG" | tail -n 1)"
ok "log: $(grep -E 'Blocked BANNED' "$SLUICE_LOG" | tail -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
case $CLEAN_REPLY in "250 2.0.0 from MTA"*) ;; *) fail "bank on our port: clean got: $CLEAN_REPLY" ;; esac
ok "clean message with the bank: $CLEAN_REPLY"
[ "$(sink_count)" -eq $((before + 1)) ] || fail "expected only the clean message at the sink, found $(($(sink_count) - before))"

before=$(sink_count)
: >"$SLUICE_LOG"
run "$OTHER"
case $BANNED_REPLY in "250 2.7.0 Ok, discarded, id="*BANNED*) ;; *) fail "bank on another port: banned got: $BANNED_REPLY" ;; esac
ok "bank STRICT on :$OTHER (not ours): $BANNED_REPLY"
if sluice_log_has "Blocked BANNED .*STRICT"; then fail "the bank of another port was applied"; fi
case $CLEAN_REPLY in "250 2.0.0 from MTA"*) ;; *) fail "bank on another port: clean got: $CLEAN_REPLY" ;; esac
[ "$(sink_count)" -eq $((before + 1)) ] || fail "expected only the clean message at the sink, found $(($(sink_count) - before))"
ok "clean message without the bank: $CLEAN_REPLY"
