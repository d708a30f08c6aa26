#!/usr/bin/env bash
# t_privs.sh - least privilege (docs/operations.md, "Running as root"):
# started as root, sluice binds, reads its keys, then runs every thread as
# security.user for good (nobody when it is unset: the README's
# `sluice all` works as root).
#
# Proves: exit 77 for an unknown user; with security.user=nobody (a
# broker with CURVE keys and a tcp:// endpoint) and with security.user
# unset (sluice all, the embedded default) every thread's real,
# effective, saved and filesystem uid and gid are nobody's
# (/proc/PID/task/*/status), no capabilities remain (CapEff, CapPrm),
# supplementary groups are nobody's own, and mail
# still flows (LMTP in, SMTP out to smtp-sink).
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 120
need_root
need_cmd smtp-sink python3

rc=0
out=$("$SLUICE_BIN_REAL" all -o log.target=stderr -o security.user=no-such-user-e2e 2>&1) || rc=$?
[ "$rc" -eq 77 ] || fail "unknown security.user: exit $rc, expected 77: $out"
grep -q "no such user: no-such-user-e2e" <<<"$out" || fail "unknown user not named: $out"
ok "unknown security.user: refused (exit 77)"

# ---- security.user=nobody: drop after binding and reading keys
sink_port=$(free_port)
start_sink "$sink_port" "$E2E_TMP/sink"
(cd "$E2E_TMP" && "$SLUICE_BIN_REAL" keygen node >/dev/null)
mkdir -p "$E2E_TMP/allow/worker"
cp "$E2E_TMP/node.pub" "$E2E_TMP/allow/worker/"
bport=$(free_port)
fport=$(free_port)
SLUICE_LOG=$E2E_TMP/sluice.log
e2e_spawn "$SLUICE_LOG" "$SLUICE_BIN_REAL" broker -o log.target=stderr -o security.user=nobody \
    -o "broker.listen=tcp://127.0.0.1:$bport" -o "security.secret_key_file=$E2E_TMP/node.key" \
    -o "security.allow_dir=$E2E_TMP/allow"
bpid=$E2E_SPAWNED_PID
E2E_SINK_PIDS+=("$bpid")     # stopped with the sinks at the end
# no security.user: root becomes nobody by default
e2e_spawn "$E2E_TMP/fe.log" "$SLUICE_BIN_REAL" all -o log.target=stderr \
    -o "frontend.listen=127.0.0.1:$fport" -o "origins.default.reinject=127.0.0.1:$sink_port"
pid=$E2E_SPAWNED_PID
E2E_SINK_PIDS+=("$pid")
wait_port 127.0.0.1 "$fport" 10 || fail "sluice all does not listen: $(tail -n 5 "$E2E_TMP/fe.log")"
wait_port 127.0.0.1 "$bport" 10 || fail "the broker does not listen: $(tail -n 5 "$SLUICE_LOG")"
sleep 0.5

nobody_uid=$(id -u nobody)
nobody_gid=$(id -g nobody)
check_ids() {
    local p=$1 what=$2 t n=0
    for t in /proc/"$p"/task/*; do
        read -r _ r e s f < <(grep '^Uid:' "$t/status")
        [ "$r $e $s $f" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" ] ||
            fail "$what thread $t: Uid $r $e $s $f, expected $nobody_uid everywhere"
        read -r _ r e s f < <(grep '^Gid:' "$t/status")
        [ "$r $e $s $f" = "$nobody_gid $nobody_gid $nobody_gid $nobody_gid" ] ||
            fail "$what thread $t: Gid $r $e $s $f, expected $nobody_gid everywhere"
        grep -qE "^Groups:[[:space:]]*($nobody_gid)?[[:space:]]*$" "$t/status" ||
            fail "$what thread $t: $(grep '^Groups:' "$t/status"), expected only nobody's"
        # no capability left either: root's powers cannot come back
        grep -qE "^CapEff:[[:space:]]*0+$" "$t/status" && grep -qE "^CapPrm:[[:space:]]*0+$" "$t/status" ||
            fail "$what thread $t: capabilities left: $(grep -E '^Cap(Eff|Prm):' "$t/status" | tr '\n' ' ')"
        n=$((n + 1))
    done
    ok "$what: all $n threads run as nobody (uid/gid $nobody_uid/$nobody_gid: real, effective, saved, fs)"
}
check_ids "$bpid" "sluice broker (CURVE, keys read before the drop)"
check_ids "$pid" "sluice all (the master; security.user unset)"
grep -q "security.user is not set: running as nobody" "$E2E_TMP/fe.log" ||
    fail "sluice all did not say it chose nobody: $(tail -n 5 "$E2E_TMP/fe.log")"
child=$(awk '{ print $1 }' "/proc/$pid/task/$pid/children" 2>/dev/null || true)
[ -n "$child" ] || fail "sluice all (pid $pid) has no child"
check_ids "$child" "sluice all (the child, with the broker and worker threads)"
grep -q "running as nobody" "$SLUICE_LOG" || fail "the broker did not log the drop"

# the broker still re-reads its allow-list on SIGHUP as nobody (the dir is world-readable)
kill -HUP "$bpid"
wait_for 5 grep -q "allow-list reloaded" "$SLUICE_LOG" || fail "no reload on SIGHUP after the drop"
ok "SIGHUP after the drop: allow-list reloaded"

python3 - "$fport" <<'PYEOF' || fail "LMTP through the unprivileged sluice failed"
import smtplib, sys
c = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
assert not c.sendmail("a@e2e.test", ["b@e2e.test"], "Subject: privs\r\n\r\nhello\r\n")
c.quit()
PYEOF
wait_for 10 test -n "$(find "$E2E_TMP/sink" -name 'm.*' -print -quit)" || fail "nothing reached the sink"
ok "mail flows through sluice all running as nobody"
