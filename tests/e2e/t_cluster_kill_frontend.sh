#!/usr/bin/env bash
# t_cluster_kill_frontend.sh - SIGKILL one of two frontends under a steady
# load from two Postfix origins. The process killed is the frontend's child;
# its master holds the listening socket and starts a new child at once
# (1 s), as it would after a crash or the OOM killer (cluster_lib.sh,
# cl_kill_run).
#
# Proves: nothing is lost and nothing is refused. The LMTP sessions the
# killed child held end without a reply, so Postfix defers those messages
# and retries them; connections made while no child runs wait in the
# listen backlog, so Postfix logs no "Connection refused", no lost
# connection or timeout while receiving the greeting, no "refused to talk
# to me"; every message is delivered to its own origin. Duplicates are
# counted and reported, not hidden: a message the killed frontend had
# already reinjected but not yet answered comes again (the Redis ledger of
# docs/exactly-once.md removes them).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

e2e_init 175
cl_init
cl_kill_run frontend "${E2E_CLUSTER_COUNT:-300}"
[ "$CL_REFUSALS" -eq 0 ] ||
    fail "Postfix logged $CL_REFUSALS refused connection/greeting line(s): $(grep -hE "$CL_REFUSAL_RE" "${CL_PF_LOG[o2]}" "${CL_PF_LOG[o3]}" | head -n 3)"
ok "Postfix logged no refused connection and no greeting failure"
grep -qE "warning: master: frontend child pid $CL_FE_CHILD1 killed by signal 9 \(Killed\); restarting in [0-9]{1,3} ms" "${CL_LOG[fa]}" ||
    fail "fa's master did not log its child's death, with a restart within a second"
# The restarted child registers under its master's pid: status shows fa
# once, alive, with the new child's pid, not a "gone" node beside it.
r=$(cl_json '" ".join("%s:%s:%s" % (n["id"].rsplit(":", 1)[1], n["alive"], n.get("pid")) for n in d["nodes"] if n["role"] == "frontend" and n["address"].endswith(":'"${CL_FE_PORT[fa]}"'"))')
[ "$r" = "${CL_PID[fa]}:True:$CL_FE_CHILD2" ] ||
    fail "status lists fa as '$r' (node pid:alive:process pid), expected '${CL_PID[fa]}:True:$CL_FE_CHILD2'"
ok "status: fa is one node, alive, named by its master's pid ${CL_PID[fa]}, process pid $CL_FE_CHILD2"
say "Postfix deferrals (sessions the killed child held, retried):"
{ grep -hE "status=deferred" "${CL_PF_LOG[o2]}" "${CL_PF_LOG[o3]}" || true; } |
    sed -E 's/.*status=deferred \(//' | cut -c1-90 | sort | uniq -c | sed 's/^/    /'
n=$(grep -c "Passed CLEAN" "${CL_LOG[fb]}" || true)
ok "frontend fa's child $CL_FE_CHILD1 -> $CL_FE_CHILD2 under the same master; fb passed $n message(s); refusals: $CL_REFUSALS; deferrals (retried): $CL_DEFERRALS; duplicates: $CL_DUPLICATES"
