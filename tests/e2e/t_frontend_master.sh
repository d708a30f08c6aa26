#!/usr/bin/env bash
# t_frontend_master.sh - `sluice all`'s child is SIGKILLed twice while
# smtp-source feeds Postfix, which feeds sluice: the master keeps the port.
#
# Proves (docs/operations.md, "Processes"): the master holds the listening
# socket, so while no child runs Postfix's connects wait in the listen
# backlog and are never refused: the maillog has no "Connection refused",
# no lost connection or timeout "while receiving the initial server
# greeting", no "refused to talk to me". The master logs each death
# ("killed by signal 9 (Killed); restarting in 0 ms"), restarts the
# child (a new pid, the master's pid unchanged) at once each time: a child
# that was ready and served is not backed off (that is for a child that
# fails to start), so a second kill soon after is restarted at once too. Every message injected is
# delivered; the sessions the killed child held end without a reply, so
# Postfix defers and retries them (deferrals reported); duplicates (a
# message reinjected but not yet answered when the child died) are counted
# and reported, not hidden.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 175
need_root
need_cmd smtp-source ss python3

N=${E2E_MASTER_COUNT:-200}
REFUSAL_RE='Connection refused|while receiving the initial server greeting|refused to talk to me'

pf_choose_ports
start_postfix
# 100 ms a scan keeps messages in flight when the child dies
SLUICE_TEST_WORKER_DELAY_MS=100 start_sluice_for_postfix
master=$E2E_SLUICE_PID

child_of() { awk '{ print $1 }' "/proc/$1/task/$1/children" 2>/dev/null || true; }
child_is_new() { local c; c=$(child_of "$master"); [ -n "$c" ] && [ "$c" != "$1" ]; }
wait_for 15 child_is_new none || fail "sluice's master (pid $master) has no child"
child1=$(child_of "$master")
ok "master pid $master, child pid $child1"

# delivered_report: "files distinct duplicates" in the Maildirs
delivered_report() {
    maildir_files | python3 -c '
import sys, email
ids = {}
for path in sys.stdin.read().split():
    with open(path, "rb") as f:
        m = email.message_from_binary_file(f)
    mid = (m.get("Message-Id") or path).strip()
    ids[mid] = ids.get(mid, 0) + 1
n = sum(ids.values())
print(n, len(ids), n - len(ids))'
}
all_done() {
    local r
    r=$(delivered_report)
    # shellcheck disable=SC2086
    set -- $r
    [ "$2" -ge "$N" ] && pf_queue_empty
}

(cd "$E2E_TMP" && exec timeout 120 smtp-source -s 4 -m "$N" -l 1024 -f "sender@$E2E_DOMAIN" \
    -t "$E2E_RCPT" -S "master test" -M master.e2e.test \
    "127.0.0.1:$PF_SMTP_PORT" >"$E2E_TMP/inject.log" 2>&1) &
inject_pid=$!

wait_for 60 maildir_at_least 10 || fail "mail does not flow through sluice"
say "mail flows ($(maildir_count) delivered); SIGKILL to the child, pid $child1"
kill -KILL "$child1"
wait_for 10 child_is_new "$child1" || fail "the master did not start a new child within 10 s"
child2=$(child_of "$master")
kill -0 "$master" 2>/dev/null || fail "the master died with its child"
ok "the master (pid $master, the same) started child pid $child2 in place of $child1"

# Again, soon after: a child that served is restarted at once again.
before=$(maildir_count)
more_delivered() { [ "$(maildir_count)" -ge $((before + 5)) ]; }
wait_for 60 more_delivered || fail "mail does not flow through the restarted child"
say "mail flows through the new child ($(maildir_count) delivered); SIGKILL to it, pid $child2"
kill -KILL "$child2"
wait_for 15 child_is_new "$child2" || fail "the master did not start a third child within 15 s"
child3=$(child_of "$master")
ok "the master started child pid $child3 in place of $child2"

wait "$inject_pid" || fail "smtp-source failed: $(tail -n 3 "$E2E_TMP/inject.log")"
ok "smtp-source: $N messages accepted by Postfix"
wait_for 150 all_done || fail "not every message delivered within 150 s: $(delivered_report) (files distinct duplicates), queue $(pf_queue_count)"
sleep 2     # late extra copies would show up now
# shellcheck disable=SC2046
set -- $(delivered_report)
[ "$2" -eq "$N" ] || fail "$2 distinct messages delivered, expected $N"
ok "all $N messages delivered ($1 file(s), $2 distinct); DUPLICATES: $3 (counted, not hidden)"

n=$(maillog_count "$REFUSAL_RE")
[ "$n" -eq 0 ] || fail "Postfix logged $n refused connection/greeting line(s): $(maillog_grep "$REFUSAL_RE" | head -n 3)"
ok "Postfix logged no refused connection and no greeting failure"
# The sessions a killed child held end without a reply: Postfix defers
# those messages ("lost connection ... while sending end of data") and,
# having lost every connection to the filter at once, suspends the
# destination for a few seconds ("delivery temporarily suspended"): the
# queued messages wait and are retried; none is lost (checked above).
say "Postfix deferrals by reason (retried, not lost):"
{ maillog_grep 'status=deferred' || true; } | sed -E 's/.*status=deferred \(//' | cut -c1-90 |
    sort | uniq -c | sed 's/^/    /'

sluice_log_has "warning: master: sluice all child pid $child1 killed by signal 9 \(Killed\); restarting in [0-9]{1,3} ms" ||
    fail "the master did not log the first death with a restart within a second"
sluice_log_has "warning: master: sluice all child pid $child2 killed by signal 9 \(Killed\); restarting in [0-9]{1,3} ms" ||
    fail "the master did not restart the second child within a second"
ok "the master logged both deaths, restarting each child within a second"
[ "$(child_of "$master")" = "$child3" ] || fail "the child changed again: $(child_of "$master")"
kill -0 "$master" 2>/dev/null || fail "the master is gone"

rc=0
stop_sluice || rc=$?
[ "$rc" -eq 0 ] || fail "sluice (master) exited with status $rc on SIGTERM, expected 0"
sluice_log_has "master: sluice all child pid $child3 stopped \(exit status 0\)" ||
    fail "the master did not log its child's orderly stop"
ok "SIGTERM to the master: the child stopped gracefully, the master exited 0"
