#!/usr/bin/env bash
# t_exactly_once_own_reservation.sh - a frontend is never blocked by its own
# leftover ledger reservation (docs/exactly-once.md, "Stale reservation
# rule").
#
# A message is reserved in the ledger at end of data; its scan is slow, so
# job.timeout (3 s) tempfails it, and the reservation is given back - but
# Redis is unreachable at that moment (its port answers with TCP resets),
# so the release is lost. Retries meanwhile get 451 4.3.0 "duplicate check
# unavailable" (dedup.on_unavailable: tempfail); Postfix retries through the
# same frontend process once Redis is back. Before this was fixed that process found its
# own reservation under its own node id, took it for a copy in flight
# elsewhere and answered every retry "451 4.3.0 ... another copy of this
# message is being delivered" for dedup.pending_timeout (15 min). Now the
# reservation is given back as soon as Redis is there again, and a
# reservation of its own that no job of the process serves any more is
# taken over at once: the retry is delivered, once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
# shellcheck source=ledger_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ledger_lib.sh"

e2e_init 150
cl_init
cl_partition_init

cl_start_redis
cl_start_postfix o2 127.0.0.2 2
cl_start_broker b1
SLUICE_TEST_WORKER_DELAY_MS=8000 cl_start_worker w1 1
cl_start_frontend fa -o job.timeout=3 -o redis.timeout=1 -o dedup.on_unavailable=tempfail
cl_point_postfix o2 fa
sleep 2

REDIS_PORT=$CL_REDIS_PORT    # ledger_lib's redis_cmd, on the cluster's Redis
pending() { ledger_fields pending:; }
has_pending() { [ "$(pending)" -ge 1 ]; }
timed_out() { grep -q "no verdict within job.timeout" "${CL_LOG[fa]}"; }
cl_inject o2 1 1
p=$CL_INJECT_PID
wait_for 20 has_pending || fail "no reservation in the ledger for the message"
ok "reserved in the ledger: $(pending) pending field(s)"
cl_refuse "$CL_REDIS_PORT"
wait_for 15 timed_out || fail "the job did not time out"
ok "job.timeout: tempfailed while Redis refuses connections (the release is lost)"
wait "$p" || fail "smtp-source failed: $(tail -n 3 "$E2E_TMP/inject.o2.log")"
# the retry must not wait for another slow scan
cl_kill w1 KILL
cl_start_worker w2 1
sleep 2
cl_heal "$CL_REDIS_PORT"
if ! wait_for 40 cl_origin_done 1; then
    say "fa refused $(cl_self_refusals "${CL_LOG[fa]}") retry(ies) because of its own reservation:"
    grep -m3 "is being reinjected by" "${CL_LOG[fa]}" >&2 || true
    fail "the message was not delivered within 40 s after Redis came back ($(pending) reservation(s) pending)"
fi
n=$(cl_self_refusals "${CL_LOG[fa]}")
[ "$n" -eq 0 ] || fail "fa refused $n retry(ies) because of its own reservation"
ok "delivered after Redis came back; fa never refused a retry because of its own reservation"
cl_final_report 1
