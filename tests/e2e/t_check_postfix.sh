#!/usr/bin/env bash
# t_check_postfix.sh - sluice check-postfix against real Postfix
# configuration directories, read by the real postconf.
#
# Proves: the instance lib.sh writes for every Postfix test (docs/postfix.md's
# setup, line for line) gives exit 0 and no warning; each single mistake,
# made with postconf -e/-X (main.cf), -P/-PX (a service's -o), -F (a
# master.cf column) or -M/-MX (a whole entry), gives exit 1 and its own
# warning, and only that one; the fix the warning names, run as printed,
# makes the instance pass again. Mistakes on sluice's side (job.timeout,
# frontend.acl, an origin's concurrency, --origin) are found the same way;
# an instance feeding a named origin from lmtp_bind_address 127.0.0.2
# passes against that origin. -c with a file is a usage error (64), a
# directory postconf cannot read 78.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 150
need_cmd postconf

# The correct instance: lib.sh's writers, as start_postfix uses them, on the
# standard ports (nothing is started: postconf only reads the files).
pf_layout "$E2E_TMP/postfix"
PF_SMTP_PORT=$(free_port)
PF_FILTER_PORT=$STD_FILTER_PORT
PF_REINJECT_PORT=$STD_REINJECT_PORT
pf_write_main_cf
pf_write_master_cf
GOOD=$PF_CONF

# check [SLUICE ARGS...] -- DIR [CHECK ARGS...]: sluice (the real binary:
# the root wrapper would add an -o) ARGS check-postfix -c DIR ARGS; sets rc,
# out (stdout), err (stderr) and warnings (the warning lines).
check() {
    local pre=() dir
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    dir=$1
    shift
    rc=0
    timeout 20 "$SLUICE_BIN_REAL" "${pre[@]}" check-postfix -c "$dir" "$@" \
        >"$E2E_TMP/out" 2>"$E2E_TMP/err" || rc=$?
    out=$(cat "$E2E_TMP/out")
    err=$(cat "$E2E_TMP/err")
    warnings=$(grep '^sluice: warning: ' "$E2E_TMP/out" || true)
}

n_warnings() { [ -z "$warnings" ] && echo 0 || grep -c . <<<"$warnings"; }

# fresh NAME: a copy of the correct instance in $E2E_TMP/NAME; prints it.
fresh() {
    rm -rf "${E2E_TMP:?}/$1"
    cp -r "$GOOD" "$E2E_TMP/$1"
    echo "$E2E_TMP/$1"
}

# expect_one NAME ERE [SLUICE ARGS...] [-- CHECK ARGS...]: check-postfix on
# $E2E_TMP/NAME gives exit 1 and exactly one warning, matching ERE; when its
# fix is a postconf command, running it as printed makes the instance pass.
expect_one() {
    local name=$1 ere=$2 dir=$E2E_TMP/$1 fix pre=() post=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do pre+=("$1"); shift; done
    [ $# -eq 0 ] || { shift; post=("$@"); }
    set -- "${pre[@]}" -- "$dir" "${post[@]}"
    check "$@"
    [ "$rc" -eq 1 ] || fail "$name: exit $rc, expected 1; stdout: $out; stderr: $err"
    [ "$(n_warnings)" -eq 1 ] || fail "$name: $(n_warnings) warnings, expected 1: $warnings"
    grep -qE -- "$ere" <<<"$warnings" || fail "$name: the warning does not match '$ere': $warnings"
    grep -qE "^sluice: check-postfix: 1 mismatch between Postfix $dir and origins\." <<<"$out" ||
        fail "$name: no summary line: $out"
    fix=${warnings##*; fix: }
    case $fix in
    "postconf -c $dir "*"'")
        eval "$fix" >/dev/null || fail "$name: the fix failed: $fix"
        check "$@"
        [ "$rc" -eq 0 ] && [ -z "$warnings" ] ||
            fail "$name: after the fix ($fix): exit $rc: $out"
        ok "$name: one warning; its fix ($fix) mends it"
        ;;
    *) ok "$name: one warning ($fix)" ;;
    esac
}

# ---- the correct instance
check -- "$GOOD"
[ "$rc" -eq 0 ] && [ -z "$warnings" ] && [ -z "$err" ] ||
    fail "the correct instance: exit $rc, stdout: $out, stderr: $err"
grep -qE '^sluice: check-postfix: Postfix .* feeds sluice as configured: transport amavisfeed, origins\.default \(lmtp_bind_address not set: 127\.0\.0\.1\), concurrency 2$' <<<"$out" ||
    fail "the correct instance: summary: $out"
ok "docs/postfix.md's instance: exit 0, no warning ($out)"

# mistake NAME ERE POSTCONF-ARGS...: a copy of the correct instance with
# one change made by postconf -c COPY POSTCONF-ARGS, then expect_one.
mistake() {
    local name=$1 ere=$2 d
    shift 2
    d=$(fresh "$name")
    postconf -c "$d" "$@" || fail "$name: postconf -c $d $* failed"
    expect_one "$name" "$ere"
}

# ---- one mistake each: main.cf (-e, -X)
mistake filter_port 'content_filter = amavisfeed:\[127\.0\.0\.1\]:10026 sends mail to 127\.0\.0\.1:10026, but sluice listens on frontend\.listen 127\.0\.0\.1:10024' \
    -e 'content_filter = amavisfeed:[127.0.0.1]:10026'
mistake filter_unset 'content_filter is not set.*fix: .*content_filter = amavisfeed:\[127\.0\.0\.1\]:10024' \
    -X content_filter
mistake limit_4 'amavisfeed_destination_concurrency_limit is 4, not origins\.default\.concurrency \(2\)' \
    -e 'amavisfeed_destination_concurrency_limit = 4'
mistake limit_unset 'amavisfeed_destination_concurrency_limit is not set: Postfix uses default_destination_concurrency_limit \(20\), not origins\.default\.concurrency \(2\)' \
    -X amavisfeed_destination_concurrency_limit
mistake size_unlimited 'message_size_limit is 0 .* above frontend\.max_message_size \(52428800\)' \
    -e 'message_size_limit = 0'

# ---- master.cf: the feed to sluice (-F a column, -M/-MX an entry, -P/-PX an -o)
mistake feed_smtp "transport amavisfeed runs Postfix's SMTP client.*command = lmtp -o lmtp_data_done_timeout=1200 -o lmtp_send_xforward_command=yes -o lmtp_tls_note_starttls_offer=no'\$" \
    -F 'amavisfeed/unix/command = smtp -o smtp_data_done_timeout=1200 -o smtp_send_xforward_command=yes -o smtp_tls_note_starttls_offer=no'
mistake feed_missing "content_filter's transport amavisfeed is not a service in master\.cf" \
    -MX amavisfeed/unix
mistake maxproc_4 "amavisfeed's maxproc in master\.cf is 4, not origins\.default\.concurrency \(2\)" \
    -F 'amavisfeed/unix/process_limit = 4'
mistake done_timeout_300 "amavisfeed's lmtp_data_done_timeout is 300, not above job\.timeout \(480 s\)" \
    -P 'amavisfeed/unix/lmtp_data_done_timeout = 300'
mistake no_xforward "amavisfeed's lmtp_send_xforward_command is no" \
    -PX amavisfeed/unix/lmtp_send_xforward_command

# ---- master.cf: the reinjection listener
mistake reinject_missing 'no smtpd in master\.cf listens on 127\.0\.0\.1:10025, where origins\.default\.reinject \(client:10025\)' \
    -MX 127.0.0.1:10025/inet
mistake reinject_loop 'the reinjection smtpd 127\.0\.0\.1:10025 has content_filter = amavisfeed:\[127\.0\.0\.1\]:10024 \(from main\.cf.*in a loop' \
    -PX 127.0.0.1:10025/inet/content_filter
mistake reinject_overrides "receive_override_options \(no_header_body_checks,no_unknown_recipient_checks\) lacks no_milters" \
    -P '127.0.0.1:10025/inet/receive_override_options = no_header_body_checks,no_unknown_recipient_checks'
mistake reinject_xforward "smtpd_authorized_xforward_hosts is empty" \
    -PX 127.0.0.1:10025/inet/smtpd_authorized_xforward_hosts
mistake reinject_xforward_net "smtpd_authorized_xforward_hosts \(10\.0\.0\.0/8\) does not hold 127\.0\.0\.1" \
    -P '127.0.0.1:10025/inet/smtpd_authorized_xforward_hosts = 10.0.0.0/8'
mistake reinject_mynetworks "mynetworks \(10\.0\.0\.0/8\) does not hold 127\.0\.0\.1, sluice's address" \
    -P '127.0.0.1:10025/inet/mynetworks = 10.0.0.0/8'

# ---- sluice's side
d=$(fresh done_timeout_default)
postconf -c "$d" -PX amavisfeed/unix/lmtp_data_done_timeout
check -- "$d"
[ "$rc" -eq 0 ] && [ -z "$warnings" ] ||
    fail "Postfix's default lmtp_data_done_timeout (600 s) with job.timeout 480: exit $rc: $out"
expect_one done_timeout_default "amavisfeed's lmtp_data_done_timeout is 600s, not above job\.timeout \(700 s\)" \
    -o job.timeout=700
ok "Postfix's default lmtp_data_done_timeout passes with job.timeout 480, not with 700"

fresh acl >/dev/null
expect_one acl 'frontend\.acl \(10\.0\.0\.0/8\) does not hold 127\.0\.0\.1.*fix: add 127\.0\.0\.1 to frontend\.acl' \
    -o frontend.acl=10.0.0.0/8

# a second origin (docs/postfix.md, "Several Postfix instances"): the
# instance connects from 127.0.0.2 and reinjects there
d=$(fresh o2)
sed -i 's/^127\.0\.0\.1:10025 /127.0.0.2:10025 /' "$d/master.cf"
postconf -c "$d" -e 'lmtp_bind_address = 127.0.0.2' 'amavisfeed_destination_concurrency_limit = 4'
postconf -c "$d" -F 'amavisfeed/unix/process_limit = 4'
o2=(-o origins.o2.match=127.0.0.2 -o origins.o2.concurrency=4)
check "${o2[@]}" -- "$d"
[ "$rc" -eq 0 ] && [ -z "$warnings" ] || fail "o2 against origins.o2: exit $rc: $out"
grep -qF 'origins.o2 (lmtp_bind_address 127.0.0.2), concurrency 4' <<<"$out" || fail "o2: summary: $out"
ok "an instance with lmtp_bind_address 127.0.0.2 is checked against origins.o2: exit 0"
check -o origins.o2.match=127.0.0.2 -o origins.o2.concurrency=3 -- "$d"
[ "$rc" -eq 1 ] && [ "$(n_warnings)" -eq 2 ] &&
    grep -q "maxproc in master.cf is 4, not origins.o2.concurrency (3)" <<<"$warnings" &&
    grep -q "amavisfeed_destination_concurrency_limit is 4, not origins.o2.concurrency (3)" <<<"$warnings" ||
    fail "o2 with origins.o2.concurrency 3: exit $rc: $out"
ok "origins.o2.concurrency 3 against maxproc and limit 4: both named"
expect_one o2 'this Postfix connects from 127\.0\.0\.2 \(lmtp_bind_address\), which sluice counts as origins\.o2, not origins\.o3' \
    "${o2[@]}" -o origins.o3.match=127.0.0.3 -o origins.o3.concurrency=4 -- --origin o3

# ---- usage and unreadable configurations
check -- "$GOOD/main.cf"
[ "$rc" -eq 64 ] && grep -q "not a directory: -c after check-postfix names Postfix's configuration directory" <<<"$err" ||
    fail "-c FILE: exit $rc: $err"
check -- "$E2E_TMP/nonexistent"
[ "$rc" -eq 78 ] && grep -q "postconf: fatal: open $E2E_TMP/nonexistent/main.cf" <<<"$err" ||
    fail "-c with no main.cf: exit $rc: $err"
check -- "$GOOD" --origin nosuch
[ "$rc" -eq 64 ] && grep -q -- "--origin nosuch: no such origin" <<<"$err" || fail "--origin nosuch: exit $rc: $err"
ok "-c FILE: 64; a directory postconf cannot read: 78 with postconf's words; an unknown origin: 64"
