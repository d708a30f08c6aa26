#!/usr/bin/env bash
# t_scan_builtin.sh - sluice's built-in checks, no scanner daemons: LMTP
# from swaks, reinjection into smtp-sink.
#
# Proves: a banned executable (.exe; clamav-testfiles' clam.exe when
# installed, a real PE found by libmagic) is discarded as BANNED; a double
# extension inside a zip (invoice.pdf.bat) is BANNED; a zip bomb (30 MiB
# of zeros, ~30 KiB zipped) hits the archive limits: UNCHECKED-OVERLIMIT,
# rejected (554) by default, quickly, and the worker stays alive (the next
# message passes); an encrypted zip is UNCHECKED-ENCRYPTED and passed by
# default; bad-header samples (duplicate Subject, unencoded 8-bit, missing
# Date when that test is on) are passed as BAD-HEADER with
# X-Amavis-Alert: BAD HEADER SECTION, ...
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 170
need_root
need_cmd smtp-sink swaks zip base64 dd

SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
LISTEN=127.0.0.1:$(free_port)
# one worker: had the bomb stuck it, the next message would time out
start_sluice -o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
    -o workers.count=1 -o "policy.bad_header_tests=mime, 8bit, control, long, syntax, missing, multiple"

delivered=0
expect_passed() {
    local what=$1
    case $(reply_n 1) in 250\ 2.0.0\ from\ MTA*) ;; *) fail "$what: $(reply_n 1)" ;; esac
    delivered=$((delivered + 1))
    wait_for 10 test "$(sink_count "$SINK_DIR")" -eq "$delivered" || fail "$what: not reinjected"
}
expect_blocked() {
    local what=$1 pattern=$2
    # shellcheck disable=SC2254 # pattern is a glob on purpose
    case $(reply_n 1) in $pattern) ;; *) fail "$what: $(reply_n 1)" ;; esac
    sleep 0.5
    [ "$(sink_count "$SINK_DIR")" -eq "$delivered" ] || fail "$what: reinjected anyway"
    ok "$what: $(reply_n 1)"
}

# 1. banned executable
if [ -f /usr/share/clamav-testfiles/clam.exe ]; then
    m=$(mk_attach exe "a program" clam.exe application/octet-stream </usr/share/clamav-testfiles/clam.exe)
else
    m=$(echo "not really a program" | mk_attach exe "a program" setup.exe application/octet-stream)
fi
lmtp_send "$m" "$E2E_RCPT"
expect_blocked "banned .exe" "250 2.7.0 Ok, discarded, id=* - BANNED: *.exe*"
sluice_log_has 'Blocked BANNED \(.*\.exe.*\) \{DiscardedInbound\}' || fail "no Blocked BANNED log line"

# the same program under an innocent name: libmagic's real type
if [ -f /usr/share/clamav-testfiles/clam.exe ]; then
    m=$(mk_attach exe2 "a document" report.txt text/plain </usr/share/clamav-testfiles/clam.exe)
    lmtp_send "$m" "$E2E_RCPT"
    expect_blocked "executable named report.txt" "250 2.7.0 Ok, discarded, id=* - BANNED: *real type*"
fi

# 2. double extension inside a zip
mkdir -p "$E2E_TMP/z"
echo '@echo off' >"$E2E_TMP/z/invoice.pdf.bat"
echo 'hello' >"$E2E_TMP/z/readme.txt"
(cd "$E2E_TMP/z" && zip -q ../docs.zip readme.txt invoice.pdf.bat)
m=$(mk_attach dbl "invoice" docs.zip application/zip <"$E2E_TMP/docs.zip")
lmtp_send "$m" "$E2E_RCPT"
expect_blocked "double extension in a zip" "250 2.7.0 Ok, discarded, id=* - BANNED: *docs.zip | invoice.pdf.bat (double extension .pdf.bat)"

# 3. zip bomb: limits hit, rejected, and the worker lives on
dd if=/dev/zero of="$E2E_TMP/z/zeros.bin" bs=1M count=30 status=none
(cd "$E2E_TMP/z" && zip -q -9 ../bomb.zip zeros.bin)
say "bomb.zip: $(stat -c %s "$E2E_TMP/bomb.zip") bytes, 30 MiB inside"
m=$(mk_attach bomb "bomb" bomb.zip application/zip <"$E2E_TMP/bomb.zip")
t0=$(date +%s%N)
lmtp_send "$m" "$E2E_RCPT"
ms=$((($(date +%s%N) - t0) / 1000000))
expect_blocked "zip bomb" "554 5.7.0 Reject, id=* - UNCHECKED-OVERLIMIT: *archive_max_ratio*"
sluice_log_has 'Blocked UNCHECKED-OVERLIMIT \{RejectedInbound\}' || fail "no UNCHECKED-OVERLIMIT log line"
ok "zip bomb answered in $ms ms"
m=$(mk_msg after "after the bomb" "Still alive?")
lmtp_send "$m" "$E2E_RCPT"
expect_passed "message after the bomb"
ok "worker alive after the bomb: $(reply_n 1)"
kill -0 "$E2E_SLUICE_PID" || fail "sluice died"

# 4. encrypted zip: UNCHECKED-ENCRYPTED, passed by default
(cd "$E2E_TMP/z" && zip -q -P s3cret ../secret.zip readme.txt)
m=$(mk_attach enc "encrypted" secret.zip application/zip <"$E2E_TMP/secret.zip")
lmtp_send "$m" "$E2E_RCPT"
expect_passed "encrypted zip"
sluice_log_has 'Passed UNCHECKED-ENCRYPTED \{RelayedInbound\}' || fail "no Passed UNCHECKED-ENCRYPTED log line"
ok "encrypted zip: passed as UNCHECKED-ENCRYPTED"

# 5. bad-header samples: passed, with X-Amavis-Alert
bad_header() {
    local what=$1 file=$2 alert=$3 f
    lmtp_send "$file" "$E2E_RCPT"
    expect_passed "$what"
    f=$(newest_dump "$SINK_DIR")
    mail_headers "$f" | grep -qF "X-Amavis-Alert: BAD HEADER SECTION, $alert" ||
        { mail_headers "$f" >&2; fail "$what: no X-Amavis-Alert: BAD HEADER SECTION, $alert"; }
    ok "$what: X-Amavis-Alert: BAD HEADER SECTION, $alert"
}
m=$(mk_msg dup "first subject" "body" "Subject: second subject")
bad_header "duplicate Subject" "$m" 'Duplicate header field: "Subject"'
m=$(mk_msg eight "caf$(printf '\xe9')" "body")
bad_header "8-bit Subject" "$m" 'Non-encoded 8-bit data (char E9 hex) in header field "Subject"'
nodate=$E2E_TMP/nodate.eml
printf 'From: <%s>\r\nTo: <%s>\r\nSubject: no date\r\n\r\nbody\r\n' "$E2E_FROM" "$E2E_RCPT" >"$nodate"
bad_header "missing Date" "$nodate" 'Missing required header field: "Date"'
sluice_log_has 'Passed BAD-HEADER \{RelayedInbound\}' || fail "no Passed BAD-HEADER log line"
