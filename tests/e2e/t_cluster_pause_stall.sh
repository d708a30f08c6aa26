#!/usr/bin/env bash
# t_cluster_pause_stall.sh - a node that was frozen (SIGSTOP, as in a VM
# migration or a long stall) does not take its healthy peers for dead when
# it resumes (cluster_lib.sh; docs/cluster.md, "Pauses and partitions").
#
# Messages are in flight on 8 s scans through two brokers while:
#   1. the frontend is frozen for 2.8 s, three times: its brokers'
#      heartbeats look about 3 s old when it resumes, but only because it
#      did not read them. Before this was fixed it declared them dead
#      ("silent for 3 heartbeats, presumed dead") and resubmitted every job
#      to the other broker, which scanned it a second time;
#   2. the frontend is frozen for 5 s: still one scan per message, and no
#      broker taken for dead. (The brokers' ZMTP heartbeats, every 10 s
#      with a 30 s timeout, no longer drop its connections within 5 s; when
#      they do, it reconnects and sends its jobs again to the same brokers,
#      which hold them and answer over the new connection.)
#   3. a broker is frozen for 2.8 s while its workers scan: when it resumes
#      it gives them a fresh liveness period instead of removing them as
#      "silent for 3 heartbeats" (which requeued their jobs).
# Every message is delivered once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init

cl_start_postfix o2 127.0.0.2 2
cl_start_broker b1 -o log.level=debug
cl_start_broker b2 -o log.level=debug
export SLUICE_TEST_WORKER_DELAY_MS=8000
cl_start_worker w1 2
cl_start_worker w2 2
unset SLUICE_TEST_WORKER_DELAY_MS
cl_start_frontend fa
cl_point_postfix o2 fa
sleep 2

handouts() { cat "${CL_LOG[b1]}" "${CL_LOG[b2]}" | grep -cE "broker: attempt [0-9]+ to worker" || true; }
has_handouts() { [ "$(handouts)" -ge "$1" ]; }
fa_says() { grep -cE "$1" "${CL_LOG[fa]}" || true; }

# round PAUSE_WHAT SECONDS: two messages, frozen while they are scanned
sent=0
round() {
    local what=$1 secs=$2 before p
    before=$(handouts)
    cl_inject o2 2 2
    p=$CL_INJECT_PID
    wait_for 20 has_handouts $((before + 2)) || fail "two jobs were not handed to workers"
    sleep 1     # heartbeats only, both ways, until the pause
    cl_pause "$what" "$secs"
    wait "$p" || fail "smtp-source failed: $(tail -n 3 "$E2E_TMP/inject.o2.log")"
    sent=$((sent + 2))
    wait_for 40 cl_origin_done "$sent" || fail "the messages of the $what pause were not delivered"
}

for i in 1 2 3; do
    round fa 2.8
done
dead=$(fa_says "presumed dead")
resub=$(fa_says "resubmitted to broker")
say "after 3 pauses of 2.8 s: fa logged $dead 'presumed dead', $resub resubmission(s); $(handouts) hand-out(s) for $sent message(s)"
[ "$dead" -eq 0 ] || fail "fa took a healthy broker for dead after its pause: $(grep -m1 "presumed dead" "${CL_LOG[fa]}")"
[ "$resub" -eq 0 ] || fail "fa resubmitted $resub job(s) after its pause"
[ "$(handouts)" -eq "$sent" ] || fail "$(handouts) hand-outs for $sent messages: some were scanned twice"
[ "$(fa_says "this process was stalled")" -ge 3 ] || fail "fa did not notice its own stalls"
ok "three 2.8 s pauses of the frontend: no broker taken for dead, no job resubmitted, one scan per message"

round fa 5
dead=$(fa_says "presumed dead")
say "after a 5 s pause: fa logged $dead 'presumed dead', $(fa_says "sent again over the new connection") resend(s); $(handouts) hand-out(s) for $sent message(s)"
[ "$dead" -eq 0 ] || fail "fa took a broker for dead after its 5 s pause: $(grep -m1 "presumed dead" "${CL_LOG[fa]}")"
[ "$(handouts)" -eq "$sent" ] || fail "$(handouts) hand-outs for $sent messages after the 5 s pause: some were scanned twice"
ok "a 5 s pause of the frontend: its jobs went again to the brokers holding them, one scan per message"

before=$(grep -c "removed (silent for 3 heartbeats)" "${CL_LOG[b1]}" || true)
round b1 2.8
grep -q "broker: this process was stalled" "${CL_LOG[b1]}" || fail "b1 did not notice its own stall"
after=$(grep -c "removed (silent for 3 heartbeats)" "${CL_LOG[b1]}" || true)
[ "$after" -eq "$before" ] ||
    fail "b1 removed $((after - before)) worker(s) as silent right after its own pause: $(grep -m1 "removed (silent" "${CL_LOG[b1]}")"
ok "a 2.8 s pause of a broker: it gave its workers a fresh liveness period, removed none"
cl_final_report "$sent"
