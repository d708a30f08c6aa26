#!/usr/bin/env bash
# t_scan_clamd.sh - sluice with a real clamd (EICAR signature only), LMTP
# from swaks, reinjection into smtp-sink.
#
# Proves: a clean message passes, with X-Virus-Scanned (clamd scanned it;
# sluice named clamd at start); EICAR is found plain, as a base64
# attachment, inside a zip and inside a forwarded message/rfc822, and each
# recipient gets amavis' "250 2.7.0 Ok, discarded, id=... - INFECTED:
# Eicar-Test-Signature.UNOFFICIAL" with nothing reinjected and the log line
# "Blocked INFECTED (Eicar-Test-Signature.UNOFFICIAL) {DiscardedInbound}";
# with policy.final_virus_destiny=reject it is "554 5.7.0 Reject";
# with clamd stopped a message is never passed unscanned: 451 and a log
# line naming clamd, "Blocked UNCHECKED {TempFailedInbound}"; a clamd that
# accepts and never answers costs scanners.clamd.timeout (5 s here, more
# than the broker's 3 s liveness) and the worker keeps heartbeating
# meanwhile: the broker never removes it.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 170
need_root
need_cmd smtp-sink swaks clamd zip base64 nc

start_clamd
SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
LISTEN=127.0.0.1:$(free_port)
sluice_args=(-o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT"
    -o "scanners.clamd.servers=unix:$CLAMD_SOCK")
start_sluice "${sluice_args[@]}"

VIRUS="Eicar-Test-Signature.UNOFFICIAL"
R2=other@e2e.test

# 1. clean
m=$(mk_msg clean "clean message" "Hello, nothing to see here.")
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in 250\ 2.0.0\ from\ MTA*) ;; *) fail "clean: $(reply_n 1)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq 1 || fail "clean message not reinjected"
sluice_log_has 'Passed CLEAN \{RelayedInbound\}' || fail "no Passed CLEAN log line"
ok "clean message passed: $(reply_n 1)"
# clamd scanned it: X-Virus-Scanned (only then), and sluice named clamd at start
f=$(newest_dump "$SINK_DIR")
[ "$(header_count "$f" '^X-Virus-Scanned: sluice at ')" -eq 1 ] ||
    { mail_headers "$f" >&2; fail "clean message scanned by clamd: no X-Virus-Scanned"; }
sluice_log_has "workers: scanners: clamd at unix:$CLAMD_SOCK" || fail "sluice did not log its scanners at start"
ok "X-Virus-Scanned after clamd's scan; at start: $(grep -E 'workers: scanners:' "$SLUICE_LOG" | head -n 1 | sed 's/.*: workers: //')"

expect_discarded() {
    local what=$1 n
    [ "$(printf '%s\n' "$LMTP_REPLIES" | wc -l)" -eq 2 ] || fail "$what: expected 2 replies: $LMTP_REPLIES"
    for n in 1 2; do
        case $(reply_n $n) in
        "250 2.7.0 Ok, discarded, id="*" - INFECTED: $VIRUS") ;;
        *) fail "$what: reply $n: $(reply_n $n)" ;;
        esac
    done
    sleep 0.5
    [ "$(sink_count "$SINK_DIR")" -eq 1 ] || fail "$what: something was reinjected"
    ok "$what: $(reply_n 1)"
}

# 2. plain
m=$(mk_msg plain "eicar plain" "$(eicar)")
lmtp_send "$m" "$E2E_RCPT" "$R2"
expect_discarded "EICAR in the body"
n=$(sluice_log_count "Blocked INFECTED \($(ere_quote "$VIRUS")\) \{DiscardedInbound\}, .* <$(ere_quote "$E2E_RCPT")>,<$(ere_quote "$R2")>")
[ "$n" -eq 1 ] || fail "expected one 'Blocked INFECTED ($VIRUS) {DiscardedInbound}' line, found $n"
ok "log: $(grep -E 'Blocked INFECTED' "$SLUICE_LOG" | head -n 1 | sed 's/.*sluice\[[0-9]*\]: //')"

# 3. base64 attachment
m=$(eicar | mk_attach attach "eicar attached" eicar.com application/octet-stream)
lmtp_send "$m" "$E2E_RCPT" "$R2"
expect_discarded "EICAR as a base64 attachment"

# 4. inside a zip
eicar >"$E2E_TMP/eicar.com"
(cd "$E2E_TMP" && zip -q eicar.zip eicar.com)
m=$(mk_attach zipped "eicar zipped" eicar.zip application/zip <"$E2E_TMP/eicar.zip")
lmtp_send "$m" "$E2E_RCPT" "$R2"
expect_discarded "EICAR inside a zip"

# 5. inside a forwarded message (message/rfc822)
inner=$(eicar | mk_attach inner "the original" eicar.com application/octet-stream)
fwd=$E2E_TMP/forwarded.eml
{
    printf 'From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-ID: <fwd.%s@e2e.test>\r\nSubject: Fwd: the original\r\n' \
        "$E2E_FROM" "$E2E_RCPT" "$(date -R)" "$RANDOM"
    printf 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="=o="\r\n\r\n'
    printf -- '--=o=\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n--=o=\r\nContent-Type: message/rfc822\r\n\r\n'
    cat "$inner"
    printf -- '\r\n--=o=--\r\n'
} >"$fwd"
lmtp_send "$fwd" "$E2E_RCPT" "$R2"
expect_discarded "EICAR inside a forwarded message/rfc822"

# 6. destiny reject (per config): 554, Postfix would bounce
stop_sluice >/dev/null
start_sluice "${sluice_args[@]}" -o policy.final_virus_destiny=reject
m=$(mk_msg plain2 "eicar plain" "$(eicar)")
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in "554 5.7.0 Reject, id="*" - INFECTED: $VIRUS") ;; *) fail "reject: $(reply_n 1)" ;; esac
sluice_log_has 'Blocked INFECTED .* \{RejectedInbound\}' || fail "no {RejectedInbound} log line"
ok "final_virus_destiny=reject: $(reply_n 1)"

# 7. clamd stopped: never passed unscanned
stop_clamd
m=$(mk_msg clean2 "clean, but nobody can scan it" "Hello again.")
lmtp_send "$m" "$E2E_RCPT"
case $(reply_n 1) in 451\ 4.7.1\ id=*"UNCHECKED: clamd failed"*) ;; *) fail "clamd down: $(reply_n 1)" ;; esac
sleep 0.5
[ "$(sink_count "$SINK_DIR")" -eq 1 ] || fail "clamd down: the message was reinjected unscanned"
sluice_log_has 'clamd failed on every server .*: message is UNCHECKED' || fail "no log line about clamd failing"
sluice_log_has 'Blocked UNCHECKED \{TempFailedInbound\}' || fail "no Blocked UNCHECKED log line"
ok "clamd stopped: $(reply_n 1)"
ok "log: $(grep -E 'clamd failed on every server' "$SLUICE_LOG" | head -n 1 | sed 's/.*sluice\[[0-9]*\]: //')"

# 8. a clamd that never answers: 5 s timeout, the worker heartbeats throughout
hang_port=$(free_port)
e2e_spawn "$E2E_TMP/hang.log" nc -lk 127.0.0.1 "$hang_port"
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$hang_port" 10 || fail "nc does not listen"
stop_sluice >/dev/null
start_sluice "${sluice_args[@]/unix:$CLAMD_SOCK/127.0.0.1:$hang_port}" -o scanners.clamd.timeout=5 \
    -o workers.count=1
m=$(mk_msg slow "nobody answers" "Hello once more.")
t0=$(date +%s)
lmtp_send "$m" "$E2E_RCPT"
t=$(($(date +%s) - t0))
case $(reply_n 1) in 451\ 4.7.1\ id=*"UNCHECKED: clamd failed: 127.0.0.1:$hang_port: read: timed out"*) ;; *) fail "hung clamd: $(reply_n 1)" ;; esac
[ "$t" -ge 5 ] || fail "hung clamd: answered after $t s, before the 5 s timeout"
if sluice_log_has 'broker: worker .* removed \((silent for|connection gone)'; then
    fail "the broker declared the worker dead during the scan: $(grep -E 'broker: worker .* removed' "$SLUICE_LOG")"
fi
ok "hung clamd: $(reply_n 1) after $t s; the worker was never declared dead"
