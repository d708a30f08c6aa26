#!/usr/bin/env bash
# t_quarantine_local.sh - the local: quarantine through a real Postfix and
# clamd, and exactly once with the ledger (docs/quarantine.md).
#
# Proves:
#   1. EICAR submitted to Postfix is not delivered and is kept once, in
#      amavisd-new's layout: DIR/<first character>/virus-<mail_id>, with
#      amavis' X-Envelope-From, X-Envelope-To, X-Quarantine-ID; sluice
#      quarantine list shows it; Debian's amavisd-release, unmodified,
#      releases it over AM.PDP with the secret_id sluice quarantine show
#      gives; it is delivered exactly once, with X-Quarantine-ID;
#   2. with the test hook SLUICE_TEST_KILL_AFTER_REINJECT the frontend dies
#      after it kept the message and Postfix queued both notifications, and
#      before its LMTP reply; Postfix retries. Without the ledger (control)
#      the retry keeps a second copy and notifies twice, which the counting
#      below sees; with the ledger (redis.url) the administrator and the
#      recipient have one notification each and the quarantine one entry,
#      the retry answered with the same quarantine id;
#   3. the frontend expires what is past quarantine.max_age by itself.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"
# shellcheck source=ledger_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ledger_lib.sh"
# shellcheck source=quar_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/quar_lib.sh"

e2e_init 200
need_root
need_cmd swaks clamd

start_clamd
start_redis
pf_private_ports
start_postfix
Q=$E2E_TMP/quarantine
mkdir -p "$E2E_TMP/amavis"
RELSOCK=$E2E_TMP/amavis/amavisd.sock
BASE=(-o "scanners.clamd.servers=unix:$CLAMD_SOCK" -o "quarantine.store=local:$Q"
    -o policy.virus_admin=admin@e2e.test -o policy.warn_virus_recip=yes)
mapfile -t PF_ARGS < <(sluice_args_for_postfix)
qcmd() { "$SLUICE_BIN" "${PF_ARGS[@]}" -o "quarantine.store=local:$Q" quarantine "$@"; }
discarded_re() {
    printf '%s: to=<%s>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:%s, .*status=sent \\(250 2\\.7\\.0 Ok, discarded' \
        "$(ere_quote "$1")" "$(ere_quote "$E2E_RCPT")" "$PF_FILTER_PORT"
}
# files holding the message: quarantine entries, notifications about it
quarantined() { grep -rlF "Message-ID: <$1>" "$Q" 2>/dev/null | grep -c . || true; }
notices() { mbox_files "$1" | xargs -r grep -lF "Message-ID: <$2>" | xargs -r grep -lE "^Subject: VIRUS" | grep -c . || true; }
notified() { [ "$(notices "$1" "$2")" -ge 1 ]; }

# ---- 1. kept in amavis' layout, listed, released by amavisd-release ----------
start_sluice_for_postfix "${BASE[@]}" -o "quarantine.release_socket=$RELSOCK" -o "redis.url=$REDIS_URL"
m=$(mk_msg v1 "have a look" "$(eicar)")
msgid=$(msg_id_of "$m")
pf_send "$m" "$E2E_RCPT"
wait_maillog "$(discarded_re "$INJECT_QID")" 60 || fail "Postfix did not log sluice's discard for $INJECT_QID"
id=$(quarantine_id_of "$msgid")
mail=${id#virus-}
f=$Q/${mail:0:1}/$id
[ -f "$f" ] || fail "no $f"
[ "$(stat -c %a "$f")" = 640 ] || fail "$f is not mode 0640"
sed -n 1,6p "$f" | tr '\n' '|' | grep -qF "Return-Path: <$E2E_FROM>|Delivered-To: virus-quarantine|X-Envelope-From: <$E2E_FROM>|X-Envelope-To: <$E2E_RCPT>|X-Envelope-To-Blocked: <$E2E_RCPT>|X-Quarantine-ID: <$mail>|" ||
    { head -n 8 "$f" >&2; fail "$f does not start with amavis' header fields"; }
grep -q 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE' "$f" || fail "$f does not hold the message"
ok "kept as ${f#"$E2E_TMP"/}: $(sed -n 6p "$f")"
qcmd list --recipient "$E2E_RCPT" | grep -q "^$id " || fail "sluice quarantine list does not show $id"
secret=$(qcmd show "$id" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret_id"])')
[ -n "$secret" ] || fail "sluice quarantine show gives no secret_id"
amavisd_release "$RELSOCK" "$id" "$secret" >"$E2E_TMP/amrel.out" 2>&1 ||
    { cat "$E2E_TMP/amrel.out" >&2; fail "amavisd-release failed"; }
grep -qE '^250 2\.0\.0 Ok, id=rel-' "$E2E_TMP/amrel.out" || { cat "$E2E_TMP/amrel.out" >&2; fail "amavisd-release: no 250"; }
ok "amavisd-release $id: $(head -n 1 "$E2E_TMP/amrel.out")"
sluice_log_has "Quarantined message release \(miscategorized\): $mail <$(ere_quote "$E2E_FROM")> -> <$(ere_quote "$E2E_RCPT")>" ||
    fail "the release is not logged in amavis' words"
wait_for 30 mbox_has_copy "$E2E_RCPT" "$msgid" || fail "the released message did not arrive"
sleep 2
[ "$(mbox_copies "$E2E_RCPT" "$msgid")" -eq 1 ] || fail "the released message arrived more than once"
[ "$(header_count "$(mbox_file_msgid "$E2E_RCPT" "$msgid")" "^X-Quarantine-ID: <$mail>\$")" -eq 1 ] ||
    fail "no X-Quarantine-ID: <$mail> in the delivered copy"
ok "delivered once, with X-Quarantine-ID: <$mail>"
stop_sluice

# ---- 2. killed after the quarantine and the notifications ---------------------
# one_round NAME [SLUICE ARGS]: ROUND_MSGID is the round's Message-ID
one_round() {
    local name=$1 m
    shift
    m=$(mk_msg "$name" "killed after the notifications" "$(eicar)")
    ROUND_MSGID=$(msg_id_of "$m")
    # -F: no master, so the hook's SIGKILL ends sluice as a whole
    SLUICE_TEST_KILL_AFTER_REINJECT=1 start_sluice_for_postfix -F "${BASE[@]}" "$@"
    pf_send "$m" "$E2E_RCPT"
    wait_sluice_dead 60 || fail "sluice did not kill itself after the notifications for <$ROUND_MSGID>"
    sluice_log_has "SLUICE_TEST_KILL_AFTER_REINJECT: killing myself" || fail "sluice died, but not at the test hook"
    wait_for 30 notified admin@e2e.test "$ROUND_MSGID" ||
        fail "the administrator's notification for <$ROUND_MSGID> did not arrive"
    start_sluice_for_postfix "${BASE[@]}" "$@"
    pf_flush
    wait_for 60 pf_queue_empty || fail "Postfix still holds <$ROUND_MSGID> 60 s after sluice restarted"
    sleep 2 # a late second notification would land now
    stop_sluice
}

one_round ctl -o dedup.enabled=no
n_admin=$(notices admin@e2e.test "$ROUND_MSGID")
n_kept=$(quarantined "$ROUND_MSGID")
if [ "$n_admin" -ne 2 ] || [ "$n_kept" -ne 2 ]; then
    fail "control run (no ledger): expected a second notification and entry, found $n_admin and $n_kept"
fi
ok "control, ledger off: the retry kept a second copy and notified again ($n_kept entries, $n_admin notifications)"

one_round once -o "redis.url=$REDIS_URL"
n_admin=$(notices admin@e2e.test "$ROUND_MSGID")
n_warn=$(notices "$E2E_RCPT" "$ROUND_MSGID")
n_kept=$(quarantined "$ROUND_MSGID")
[ "$n_admin" -eq 1 ] || fail "with the ledger: $n_admin administrator notifications, expected 1"
[ "$n_warn" -eq 1 ] || fail "with the ledger: $n_warn recipient warnings, expected 1"
[ "$n_kept" -eq 1 ] || fail "with the ledger: $n_kept quarantine entries, expected 1"
[ "$(mbox_copies "$E2E_RCPT" "$ROUND_MSGID")" -eq 0 ] || fail "the virus was delivered"
sluice_log_has "ledger: quarantined already as virus-" || fail "sluice did not log that the retry found the entry"
sluice_log_has "ledger: notification to <admin@e2e.test> sent already; not again" ||
    fail "sluice did not log that the retry found the notification sent"
ok "ledger on: one entry, one administrator notification, one recipient warning after the kill and the retry"

# ---- 3. the frontend's own expiry --------------------------------------------
entries() { find "$Q" -type f -name 'virus-*' | grep -c . || true; }
no_entries() { [ "$(entries)" -eq 0 ]; }
n=$(entries)
start_sluice_for_postfix "${BASE[@]}" -o quarantine.max_age=1 -o quarantine.expire_interval=10
wait_for 25 no_entries || fail "the frontend did not expire the $n entries"
sluice_log_has "quarantine: expired $n entries older than 1 s" || fail "no log line for the expiry"
ok "the frontend expired the $n entries (quarantine.max_age 1 s, quarantine.expire_interval 10 s)"
