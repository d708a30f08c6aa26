#!/usr/bin/env bash
# t_log_tools.sh - sluice's log as the tools written for amavisd-new's
# read it, and as systemd's journal takes it.
#
# Proves: a real run (clamd, spamd, LMTP from swaks, reinjection into
# smtp-sink) with log.ident amavis logs lines that Debian's logwatch, with
# its amavis service, counts: 2 clean messages passed, 1 spam passed, 1
# malware blocked, 1 banned file blocked, 5 scanned in all; the same log
# under the ident sluice is not amavisd-new's for logwatch (nothing
# counted). Started with stderr as the journal's stream (JOURNAL_STREAM
# naming it, as systemd sets it), every line, the master's too, carries
# its sd-daemon(3) priority prefix (<4> for a warning, <6> for info) and
# no time stamp of its own.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 170
need_root
need_cmd smtp-sink swaks clamd spamd logwatch

start_clamd
start_spamd
SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
LISTEN=127.0.0.1:$(free_port)
start_sluice -o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
    -o "scanners.clamd.servers=unix:$CLAMD_SOCK" -o "scanners.spamd.servers=$SPAMD_ADDR" \
    -o log.ident=amavis

# 1. a real run: what a mail server's day is made of
send() {
    lmtp_send "$1" "$E2E_RCPT"
    case $(reply_n 1) in "$2"*) ;; *) fail "$(basename "$1"): $(reply_n 1)" ;; esac
}
send "$(mk_msg clean1 "hello" "Hi Bob, lunch tomorrow?")" "250 2.0.0 from MTA"
send "$(mk_msg clean2 "minutes" "The minutes of today's meeting follow.")" "250 2.0.0 from MTA"
send "$(mk_msg spam "buy now" "$(gtube)")" "250 2.0.0 from MTA"
send "$(mk_msg virus "invoice" "$(eicar)")" "250 2.7.0 Ok, discarded"
send "$(printf 'MZ\x90\x00 not really a program' | mk_attach banned "setup" setup.exe application/octet-stream)" \
    "250 2.7.0 Ok, discarded"
stop_sluice >/dev/null
n=$(sluice_log_count ' amavis\[[0-9]+\]: \([^)]+\) (Passed|Blocked) ')
[ "$n" -eq 5 ] || fail "expected 5 amavis[PID] summary lines, found $n"
ok "5 messages, logged as amavis[PID]: $(grep -E 'Blocked INFECTED' "$SLUICE_LOG" | head -n 1 | cut -c1-110)"

# 2. logwatch's amavis service over that log, as over /var/log/mail.log
# run_logwatch FILE: its report on stdout
run_logwatch() {
    local dir=$E2E_TMP/logwatch.$RANDOM
    mkdir -p "$dir"
    grep -v '^=====' "$1" >"$dir/mail.log"
    timeout 60 logwatch --service amavis --logdir "$dir" --logfile maillog --range all \
        --detail 10 --output stdout --hostname e2e 2>&1
}
report=$(run_logwatch "$SLUICE_LOG")
# count LABEL: the figure logwatch gives the summary line LABEL
count() { sed -n "s/^ *\([0-9][0-9]*\) *$1 .*/\1/p" <<<"$report" | head -n 1; }
for want in "5:Total messages scanned" "2:Clean passed" "1:Spam passed" "1:Malware blocked" \
    "1:Banned name blocked"; do
    got=$(count "${want#*:}")
    [ "$got" = "${want%%:*}" ] || { printf '%s\n' "$report" >&2; fail "logwatch: '${want#*:}' is '$got', expected ${want%%:*}"; }
done
ok "logwatch --service amavis: $(grep -E 'Total messages scanned' <<<"$report" | tr -s ' ')"
ok "logwatch: clean passed 2, spam passed 1, malware blocked 1, banned name blocked 1"
# the same lines under sluice's own name are not amavisd-new's
sed 's/ amavis\[/ sluice[/' "$SLUICE_LOG" >"$E2E_TMP/as-sluice.log"
report=$(run_logwatch "$E2E_TMP/as-sluice.log")
[ -z "$(count 'Total messages scanned')" ] || fail "logwatch counted sluice[PID] lines as amavis"
ok "the same log as sluice[PID]: logwatch's amavis service counts nothing (log.ident decides)"

# 3. under systemd: stderr is the journal's stream (JOURNAL_STREAM=dev:inode)
journal=$(stat -c '%d:%i' "$SLUICE_LOG")
JOURNAL_STREAM=$journal start_sluice -o "frontend.listen=$LISTEN" \
    -o "origins.default.reinject=127.0.0.1:$SINK_PORT"
send "$(mk_msg journal "hello journal" "Hi.")" "250 2.0.0 from MTA"
stop_sluice >/dev/null
run2=$(sed -n '/^===== e2e: start #2/,$p' "$SLUICE_LOG" | grep -v '^=====')
grep -qE '^<4>warning: workers: no virus or spam scanner configured' <<<"$run2" ||
    { printf '%s\n' "$run2" >&2; fail "no <4> warning line"; }
grep -qE '^<6>\([^)]+\) Passed CLEAN \{RelayedInbound\}' <<<"$run2" || fail "no <6> summary line"
grep -qE '^<6>master: pid [0-9]+' <<<"$run2" || fail "the master's lines have no prefix"
bad=$(grep -vE '^<[0-7]>' <<<"$run2" || true)
[ -z "$bad" ] || fail "lines without a priority prefix under the journal: $(head -n 3 <<<"$bad")"
ok "under the journal: every line has its priority: $(grep -E '^<4>' <<<"$run2" | head -n 1 | cut -c1-80)"
