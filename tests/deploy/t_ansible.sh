#!/usr/bin/env bash
# t_ansible.sh - deploy/ansible applied for real: ansible-lint and yamllint
# first, then site.yml on a booted Debian 12 (systemd-nspawn) that is at
# once an mx (with Postfix), a broker and a worker node, from inside it.
#
# Proves: the playbook and role are lint-clean (ansible-lint --offline,
# production profile; yamllint); the first run installs the package, writes
# the Postfix side (amavisfeed, the reinjection listener, content_filter),
# makes the node's key pair on the node (root, 0600 in /etc/sluice/private)
# and the brokers' pair, puts the node's public key in the broker's
# allow-list (frontend/ and worker/), reads Postfix's
# amavisfeed_destination_concurrency_limit into the frontend's origin, and
# starts sluice@broker, sluice@worker and sluice@frontend, which talk CURVE
# over tcp:// on loopback; a message through Postfix then comes back
# scanned; a second run reports no change.
#
# Ports: the container shares the host's network, so the test gives the
# role free loopback ports (frontend, reinjection, broker) instead of the
# standard ones.
#
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd systemd-nspawn nsenter ansible-lint yamllint
[ -f "$DEPLOY_DEB" ] || fail "no $DEPLOY_DEB: run tests/deploy/t_deb.sh first"

(cd "$DEPLOY_SRC" && yamllint -s deploy/ansible) || fail "yamllint deploy/ansible"
(cd "$DEPLOY_SRC/deploy/ansible" && timeout 300 ansible-lint --offline -q site.yml) >"$DEPLOY_WORK/$DEPLOY_NAME.lint.log" 2>&1 ||
    { cat "$DEPLOY_WORK/$DEPLOY_NAME.lint.log" >&2; fail "ansible-lint"; }
ok "ansible-lint --offline (production profile) and yamllint: clean"

rootfs=$(nspawn_rootfs)
nspawn_boot "$rootfs"
fport=$(free_port)
rport=$(free_port)
bport=$(free_port)

# The site's own Postfix, before sluice: a local mailbox, loopback only, no
# smtpd on :25 (mail is injected with sendmail). The filter lines are the
# role's.
cxsh "postconf -e 'myhostname = sluice-ci.test' 'mydestination = localhost, sluice-ci.test' \
    'inet_interfaces = loopback-only' 'inet_protocols = ipv4' 'mynetworks = 127.0.0.0/8' \
    'minimal_backoff_time = 5s' 'maximal_backoff_time = 10s' 'queue_run_delay = 5s' \
    'relayhost =' 'alias_maps =' 'smtputf8_enable = no'
postconf -MX smtp/inet
systemctl restart postfix"

inv=$DEPLOY_WORK/ansible-inventory.yml
cat >"$inv" <<EOT
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: /usr/bin/python3
    sluice_deb: /deploy/$(basename "$DEPLOY_DEB")
    sluice_address: 127.0.0.1
    sluice_frontend_listen: 127.0.0.1:$fport
    sluice_reinject_port: $rport
    sluice_broker_port: $bport
    sluice_broker_listen: tcp://127.0.0.1:$bport
    sluice_workers_count: 2
    sluice_postfix_manage: true
    sluice_postfix_concurrency: 3
  children:
    mx: {hosts: {node1: {}}}
    sluice_brokers: {hosts: {node1: {}}}
    sluice_workers: {hosts: {node1: {}}}
EOT

# play N: the playbook's Nth run; its timestamped log is kept as
# build-deploy/t_ansible.runN.timed.log
play() {
    local rc=0
    cx env ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_HOME=/root/.ansible ANSIBLE_PIPELINING=1 \
        ANSIBLE_LOG_PATH="/root/ansible-run$1.log" \
        timeout 600 ansible-playbook -i "/deploy/$(basename "$inv")" /src/deploy/ansible/site.yml || rc=$?
    cx cat "/root/ansible-run$1.log" >"$DEPLOY_WORK/$DEPLOY_NAME.run$1.timed.log" 2>/dev/null || true
    return "$rc"
}
t0=$SECONDS
play 1 >"$DEPLOY_WORK/$DEPLOY_NAME.run1.log" 2>&1 || { tail -n 40 "$DEPLOY_WORK/$DEPLOY_NAME.run1.log" >&2; fail "first ansible-playbook run"; }
recap1=$(grep -E '^node1 +:' "$DEPLOY_WORK/$DEPLOY_NAME.run1.log" | tail -n 1)
ok "first run in $((SECONDS - t0)) s: $recap1"

for u in sluice@broker sluice@worker sluice@frontend; do
    cx systemctl is-active -q "$u" || fail "$u is not active after the playbook"
    cx systemctl is-enabled -q "$u" || fail "$u is not enabled"
done
[ "$(cx stat -c '%a %U' /etc/sluice/private/sluice.key)" = "600 root" ] || fail "the node's secret key is not 0600 root"
[ "$(cx stat -c '%a %U' /etc/sluice/private/broker.key)" = "600 root" ] || fail "the brokers' secret key is not 0600 root"
for r in frontend worker; do
    cx cmp -s /etc/sluice/private/sluice.pub "/etc/sluice/allow/$r/node1.pub" ||
        fail "the node's public key is not in the broker's allow-list as $r"
done
cx grep -q 'concurrency: 3' /etc/sluice/frontend.yaml || fail "the frontend's origin does not have Postfix's concurrency 3"
cx grep -q "^content_filter = amavisfeed:\[127.0.0.1\]:$fport" /etc/postfix/main.cf || fail "content_filter not set"
cxsh "journalctl -u sluice@broker --no-pager | grep -q 'admitted'" || fail "the broker admitted no CURVE key"
ok "units active and enabled; keys made on the node (0600 root); public keys in the allow-list; origin concurrency 3 read from Postfix; CURVE handshakes admitted"

send_mail via-ansible
wait_for 90 delivered via-ansible || fail "the message did not come back through the cluster roles"
cxsh "journalctl -u sluice@frontend --no-pager | grep -q 'Passed CLEAN'" || fail "no Passed CLEAN in the frontend's journal"
ok "a message through Postfix -> sluice@frontend -> broker -> worker (CURVE on tcp://127.0.0.1) -> Postfix was delivered, scanned"

t0=$SECONDS
play 2 >"$DEPLOY_WORK/$DEPLOY_NAME.run2.log" 2>&1 || { tail -n 40 "$DEPLOY_WORK/$DEPLOY_NAME.run2.log" >&2; fail "second ansible-playbook run"; }
recap2=$(grep -E '^node1 +:' "$DEPLOY_WORK/$DEPLOY_NAME.run2.log" | tail -n 1)
case $recap2 in *" changed=0 "*) ;; *)
    grep -B2 '^changed:' "$DEPLOY_WORK/$DEPLOY_NAME.run2.log" | head -n 30 >&2
    fail "the second run changed something: $recap2" ;;
esac
ok "second run in $((SECONDS - t0)) s, no change: $recap2"
