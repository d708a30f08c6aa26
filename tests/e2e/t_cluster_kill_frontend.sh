#!/usr/bin/env bash
# t_cluster_kill_frontend.sh - SIGKILL one of two frontends under a steady
# load from two Postfix origins; it is started again 5 s later, as systemd's
# Restart= would (cluster_lib.sh, cl_kill_run).
#
# Proves: nothing is lost: the LMTP sessions the frontend held end without
# a reply, so Postfix defers those messages and retries them; meanwhile the
# origin fails over to the other frontend (lmtp_fallback_relay); every
# message is delivered to its own origin. Duplicates are counted and
# reported, not hidden: a message the killed frontend had already
# reinjected but not yet answered comes again (the exactly-once issue's
# Redis ledger removes them).
#
# Not avoidable here, and reported: while the killed frontend's port has no
# listener, Postfix's connects to it are refused ("Connection refused") and
# it uses the fallback; the rule "never refuse a connection or greeting" is
# about a running filter (overload), which the other runs check.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init
cl_kill_run frontend "${E2E_CLUSTER_COUNT:-300}"
n=$({ grep -hE "greeting" "${CL_PF_LOG[o2]}" "${CL_PF_LOG[o3]}" || true; } | wc -l)
[ "$n" -eq 0 ] || fail "Postfix logged $n greeting failure(s): $(grep -hE greeting "${CL_PF_LOG[o2]}" | head -n 2)"
say "Postfix lines about the dead frontend (expected while nothing listens on its port):"
{ grep -hE "$CL_REFUSAL_RE|status=deferred" "${CL_PF_LOG[o2]}" "${CL_PF_LOG[o3]}" || true; } |
    sed 's/^/    /' | head -n 10
n=$(grep -c "Passed CLEAN" "${CL_LOG[fb]}" || true)
ok "the surviving frontend fb passed $n message(s); refused connects to the dead one: $CL_REFUSALS; deferrals (retried): $CL_DEFERRALS; duplicates: $CL_DUPLICATES"
