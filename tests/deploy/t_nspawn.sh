#!/usr/bin/env bash
# t_nspawn.sh - the package on a booted Debian 12 (systemd-nspawn, systemd as
# PID 1), with the container's own Postfix set up for the filter.
#
# Proves: the .deb installs (the sluice user, /etc/sluice/private 0700,
# nothing enabled or started); systemd-analyze verify has nothing to say
# about the units; sluice@all starts as Type=notify (active only once
# ready, a STATUS= line with sessions and messages in flight), as the
# sluice user with no capability and NoNewPrivileges, and a message sent
# through Postfix comes back scanned into root's mailbox; a secret key in
# root-owned 0600 /etc/sluice/private reaches the unprivileged service
# through LoadCredential= (a frontend with a tcp:// broker starts on it);
# `systemctl reload` is a SIGHUP (same MAINPID, still active, mail still
# flows); a SIGSTOPped child is killed by its master within WatchdogSec/3
# and replaced, mail flows again; a SIGSTOPped master is killed by
# systemd's watchdog and the service restarted; sluice.socket activates
# sluice@all at the first connection; `systemctl stop` drains (a message
# being scanned when the stop begins is still delivered, STOPPING=1 is
# seen, exit status 0); `apt-get purge` leaves no file, unit, user or
# process of sluice behind.
#
# Timing: the test sets WatchdogSec=6s by a drop-in (the shipped 30 s
# would only make it slower); nothing else differs from the package.
#
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd systemd-nspawn nsenter mmdebstrap
[ -f "$DEPLOY_DEB" ] || fail "no $DEPLOY_DEB: run tests/deploy/t_deb.sh first"

rootfs=$(nspawn_rootfs)
nspawn_boot "$rootfs"
ok "booted $(cx cat /etc/debian_version | tr -d '\n') with $(cx systemctl --version | head -n 1)"

fport=$(free_port)
rport=$(free_port)
while [ "$rport" = "$fport" ]; do rport=$(free_port); done
deb=/deploy/$(basename "$DEPLOY_DEB")

# ---- install
cx apt-get install -y -q --no-install-recommends "$deb" >"$DEPLOY_WORK/$DEPLOY_NAME.apt.log" 2>&1 ||
    { tail -n 20 "$DEPLOY_WORK/$DEPLOY_NAME.apt.log" >&2; fail "apt-get install $deb"; }
cx getent passwd sluice >/dev/null || fail "no sluice user after the install"
[ "$(cx stat -c '%a %U' /etc/sluice/private)" = "700 root" ] || fail "/etc/sluice/private is not 0700 root"
state=$(cx systemctl is-enabled sluice@all.service sluice.socket 2>/dev/null | tr '\n' ' ' || true)
case $state in *enabled*) fail "a unit is enabled by the install: $state" ;; esac
cx systemctl is-active -q sluice@all.service && fail "sluice@all runs after the install: nothing should start"
ok "installed: the sluice user, /etc/sluice/private 0700 root, no unit enabled or started"

out=$(cx systemd-analyze verify sluice@all.service sluice@frontend.service sluice@broker.service \
    sluice@worker.service sluice.socket 2>&1 || true)
[ -z "$out" ] || fail "systemd-analyze verify: $out"
ok "systemd-analyze verify: nothing to say about sluice@{all,frontend,broker,worker} and sluice.socket"

# ---- Postfix for the filter, sluice on the same ports
pf_filter_setup "$fport" "$rport"
cxsh "sed -i 's/127.0.0.1:10024/127.0.0.1:$fport/; s/client:10025/client:$rport/' /etc/sluice/sluice.yaml
mkdir -p /etc/systemd/system/sluice@.service.d
printf '[Service]\nWatchdogSec=6s\n' >/etc/systemd/system/sluice@.service.d/test.conf
systemctl daemon-reload"

t0=$(date +%s%N)
cx systemctl start sluice@all || fail "systemctl start sluice@all"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(cx systemctl show -p Type --value sluice@all)" = notify ] || fail "not Type=notify"
cx systemctl is-active -q sluice@all || fail "sluice@all is not active"
status=$(cx systemctl show -p StatusText --value sluice@all)
case $status in *"session(s)"*"message(s) in flight"*) ;; *) fail "StatusText: '$status'" ;; esac
ok "systemctl start sluice@all returned when it was ready ($ms ms); status: '$status'"

main=$(cx systemctl show -p MainPID --value sluice@all)
child_of() { cx sh -c "cat /proc/$1/task/$1/children" | awk '{ print $1 }'; }
child=$(child_of "$main")
[ -n "$child" ] || fail "the master (pid $main) has no child"
for p in "$main" "$child"; do
    st=$(cx cat "/proc/$p/status")
    uid=$(awk '/^Uid:/ { print $2 }' <<<"$st")
    [ "$(cx id -u sluice)" = "$uid" ] || fail "pid $p runs as uid $uid, not sluice"
    for c in CapInh CapPrm CapEff CapBnd CapAmb; do
        v=$(awk -v c="$c:" '$1 == c { print $2 }' <<<"$st")
        [ "$v" = 0000000000000000 ] || fail "pid $p: $c is $v, expected none"
    done
    [ "$(awk '/^NoNewPrivs:/ { print $2 }' <<<"$st")" = 1 ] || fail "pid $p: NoNewPrivs is not set"
done
ok "master $main and child $child run as sluice, with no capability at all, NoNewPrivs set"

send_mail first
wait_for 60 delivered first || fail "the first message did not come back through sluice into /var/mail/root"
cx journalctl -u sluice@all --no-pager | log_has "Passed CLEAN" || fail "no Passed CLEAN line in the journal"
ok "a message through Postfix -> sluice@all -> Postfix :$rport was delivered, scanned"

# ---- reload
cx systemctl reload sluice@all || fail "systemctl reload"
wait_for 10 cxsh "journalctl -u sluice@all --no-pager | grep -q 'SIGHUP'" || fail "no SIGHUP in the journal after reload"
[ "$(cx systemctl show -p MainPID --value sluice@all)" = "$main" ] || fail "reload changed the MAINPID"
cx systemctl is-active -q sluice@all || fail "inactive after reload"
send_mail after-reload
wait_for 60 delivered after-reload || fail "no mail after reload"
ok "systemctl reload: SIGHUP handled, same MAINPID $main, mail still flows"

# ---- a hung child: the master kills it (hang_ms = WatchdogSec/3 = 2 s)
child=$(child_of "$main")
cx kill -STOP "$child"
t0=$SECONDS
new_child() { local c; c=$(child_of "$main"); [ -n "$c" ] && [ "$c" != "$child" ]; }
wait_for 20 new_child || fail "the SIGSTOPped child $child was not replaced within 20 s"
took=$((SECONDS - t0))
cxsh "journalctl -u sluice@all --no-pager | grep -q 'child pid $child has not answered'" ||
    fail "the master did not log the hung child"
[ "$(cx systemctl show -p MainPID --value sluice@all)" = "$main" ] || fail "the service restarted: the master should have dealt with it"
send_mail after-hang
wait_for 60 delivered after-hang || fail "no mail after the hung child was replaced"
ok "SIGSTOPped child $child: killed by its master and replaced in ${took} s (same MAINPID); mail flows"

# ---- a hung master: systemd's watchdog
cx kill -STOP "$main"
t0=$SECONDS
new_main() { local m; m=$(cx systemctl show -p MainPID --value sluice@all); [ -n "$m" ] && [ "$m" != 0 ] && [ "$m" != "$main" ] && cx systemctl is-active -q sluice@all; }
wait_for 60 new_main || fail "the SIGSTOPped master $main was not replaced within 60 s"
took=$((SECONDS - t0))
cxsh "journalctl -u sluice@all --no-pager | grep -qi 'watchdog timeout'" || fail "systemd did not log a watchdog timeout"
main=$(cx systemctl show -p MainPID --value sluice@all)
send_mail after-watchdog
wait_for 60 delivered after-watchdog || fail "no mail after the watchdog restart"
ok "SIGSTOPped master: systemd's watchdog killed the service, Restart= started it (${took} s, MAINPID $main); mail flows"

# ---- a secret key through LoadCredential=: root-owned 0600, read by user sluice
cxsh "cd /etc/sluice/private && sluice keygen node >/dev/null && sluice keygen broker >/dev/null &&
    mv broker.pub /etc/sluice/broker.pub && rm broker.key && chmod 600 node.key &&
    cat >/etc/sluice/frontend-test.yaml <<EOT
frontend: { listen: 127.0.0.1:$(free_port) }
broker: { endpoints: [tcp://127.0.0.1:$(free_port)] }
security:
  secret_key_file: \\\${CREDENTIALS_DIRECTORY}/private_node.key
  broker_public_key_file: /etc/sluice/broker.pub
EOT
mkdir -p /etc/systemd/system/sluice@frontend.service.d
printf '[Service]\nEnvironment=SLUICE_CONFIG=/etc/sluice/frontend-test.yaml\n' \
    >/etc/systemd/system/sluice@frontend.service.d/test.conf
systemctl daemon-reload"
[ "$(cx stat -c '%a %U' /etc/sluice/private/node.key)" = "600 root" ] || fail "node.key is not 0600 root"
cx systemctl start sluice@frontend || { cx journalctl -u sluice@frontend --no-pager | tail -n 5 >&2; fail "sluice@frontend did not start with its key"; }
cx systemctl stop sluice@frontend
ok "a root-owned 0600 key in /etc/sluice/private reached the unprivileged frontend through LoadCredential="

# ---- socket activation
cxsh "systemctl stop sluice@all
mkdir -p /etc/systemd/system/sluice.socket.d
printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:$fport\n' >/etc/systemd/system/sluice.socket.d/test.conf
systemctl daemon-reload && systemctl start sluice.socket"
cx systemctl is-active -q sluice@all && fail "sluice@all runs before the first connection"
send_mail socket
wait_for 60 delivered socket || fail "no mail through the socket-activated sluice"
cxsh "journalctl -u sluice@all --no-pager | grep -q 'socket activation: 1 listening socket'" ||
    fail "sluice@all did not take the socket from systemd"
ok "sluice.socket: the first connection started sluice@all, which took systemd's socket; mail flows"

# ---- stop drains
cxsh "printf '[Service]\nEnvironment=SLUICE_TEST_WORKER_DELAY_MS=4000\n' >/etc/systemd/system/sluice@.service.d/slow.conf
systemctl daemon-reload && systemctl restart sluice@all"
send_mail draining
inflight() { cx systemctl show -p StatusText --value sluice@all | grep -q '[1-9][0-9]* message(s) in flight'; }
wait_for 30 inflight || fail "the message never showed as in flight"
cx systemctl stop sluice@all || fail "systemctl stop"
cxsh "journalctl -u sluice@all --no-pager | grep -q 'stopping after the messages in flight'" ||
    fail "the stop did not drain"
wait_for 30 delivered draining || fail "the message in flight during the stop was not delivered"
[ "$(cx systemctl show -p Result --value sluice@all)" = success ] || fail "stop result: $(cx systemctl show -p Result --value sluice@all)"
ok "systemctl stop drained: the message being scanned was delivered, the service stopped with success"

# ---- purge
cx systemctl stop sluice.socket
# what the test wrote by hand, as an operator would, is the test's to remove
cx rm -f /etc/sluice/frontend-test.yaml /etc/sluice/broker.pub
cx apt-get purge -y -q sluice >>"$DEPLOY_WORK/$DEPLOY_NAME.apt.log" 2>&1 || fail "apt-get purge sluice"
cx rm -rf /etc/systemd/system/sluice@.service.d /etc/systemd/system/sluice@frontend.service.d \
    /etc/systemd/system/sluice.socket.d
left=$(cx find / -xdev \( -path /proc -o -path /sys -o -path /src -o -path /deploy \) -prune -o \
    -name '*sluice*' -print 2>/dev/null | grep -v '^/var/cache/man/' || true)
# (/var/cache/man: man-db's own cache of formatted pages, made when
# systemd-analyze verify looked the man pages up; mandb's to expire)
[ -z "$left" ] || fail "left behind after purge: $left"
cx getent passwd sluice >/dev/null && fail "the sluice user is left after purge"
cx pgrep -x sluice >/dev/null && fail "a sluice process is left after purge"
cx dpkg -s sluice >/dev/null 2>&1 && fail "dpkg still knows sluice"
ok "apt-get purge: no file, unit, user or process of sluice left"
