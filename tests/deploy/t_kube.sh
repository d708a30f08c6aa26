#!/usr/bin/env bash
# t_kube.sh - deploy/kubernetes: both overlays rendered, validated offline,
# and the cluster overlay run for real with podman kube play.
#
# Proves: `kubectl kustomize` renders single and cluster; yamllint is
# clean; every rendered object validates against the Kubernetes and KEDA
# schemas (npm's kubernetes-models and @kubernetes-models/keda, pinned in
# tests/deploy/validate/package-lock.json) and keeps the promises a schema
# cannot see (non-root, read-only root file system, capabilities dropped,
# probes, resources, PodDisruptionBudgets, no secret in a ConfigMap:
# validate.mjs); then the cluster overlay, with the Secrets and the
# allow-list an operator would make (keys from `sluice keygen`, a random
# Redis password), runs under `podman kube play` from the images built
# here: two brokers, two workers, two Postfix pods each with its frontend,
# and Redis. A message handed to one Postfix goes through its frontend, a
# broker and a worker (CURVE on every tcp link) and back into that
# Postfix's mailbox, scanned; the registry in Redis sees the cluster (its
# worker slots) and KEDA's demand list.
#
# kube2podman.py says what changes on the way to podman (StatefulSet and
# Deployments as Pods, per-pod names instead of the headless Service's).
#
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd kubectl node npm podman yamllint python3

podman_env
out=$DEPLOY_WORK/kube
# a run that was killed may have left its pods
[ ! -f "$out/play.yaml" ] || timeout 120 podman kube down "$out/play.yaml" >/dev/null 2>&1 || true
rm -rf "$out"
mkdir -p "$out"
for o in single cluster; do
    kubectl kustomize "$DEPLOY_SRC/deploy/kubernetes/overlays/$o" >"$out/$o.yaml" ||
        fail "kubectl kustomize overlays/$o"
done
ok "rendered: single ($(grep -c '^kind:' "$out/single.yaml") objects), cluster ($(grep -c '^kind:' "$out/cluster.yaml") objects) with $(kubectl version --client 2>/dev/null | grep -i kustomize | tr -d '\n')"
(cd "$DEPLOY_SRC" && yamllint -s deploy/kubernetes) || fail "yamllint deploy/kubernetes"

# the validator's packages, pinned by the lock file, installed once per lock
lock=$DEPLOY_SRC/tests/deploy/validate/package-lock.json
vdir=$DEPLOY_CACHE/npm-validate-$(cache_key "$(cat "$lock")")
if [ ! -d "$vdir/node_modules" ]; then
    rm -rf "$DEPLOY_CACHE"/npm-validate-*
    mkdir -p "$vdir"
    cp "$DEPLOY_SRC/tests/deploy/validate/package.json" "$lock" "$vdir/"
    (cd "$vdir" && timeout 300 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) ||
        { rm -rf "$vdir"; fail "npm ci of the validator"; }
fi
cp "$DEPLOY_SRC/tests/deploy/validate/validate.mjs" "$vdir/"
timeout 120 node "$vdir/validate.mjs" "$out/single.yaml" "$out/cluster.yaml" || fail "the rendered objects do not validate"
ok "validated offline: kubernetes-models $(node -p "require('$vdir/node_modules/kubernetes-models/package.json').version"), @kubernetes-models/keda $(node -p "require('$vdir/node_modules/@kubernetes-models/keda/package.json').version")"

# ---- the cluster overlay under podman
podman image exists "$DEPLOY_IMAGE" || fail "no $DEPLOY_IMAGE: run tests/deploy/t_image.sh first"
base=$(base_image)
build() {
    local tag=$1 file=$2 ctx=$3
    timeout 900 podman build --pull=never --format docker --build-arg "BASE=$base" -f "$file" -t "$tag" "$ctx" \
        >"$out/build-$(basename "${tag%%:*}").log" 2>&1 || { tail -n 20 "$out/build-$(basename "${tag%%:*}").log" >&2; fail "podman build $tag"; }
}
build "localhost/sluice-postfix:$DEPLOY_VERSION" "$DEPLOY_SRC/deploy/container/postfix/Containerfile" \
    "$DEPLOY_SRC/deploy/container/postfix"
build docker.io/library/redis:7.0 "$DEPLOY_SRC/tests/deploy/redis.Containerfile" "$DEPLOY_SRC/tests/deploy"
ok "images: $DEPLOY_IMAGE, localhost/sluice-postfix:$DEPLOY_VERSION (example Postfix), docker.io/library/redis:7.0 (Debian's redis-server standing in)"

# What the operator makes: key pairs, the Secrets, the allow-list.
keys=$out/keys
mkdir -p "$keys"
for n in broker frontend worker; do
    podman run --rm --network none --user 0 -v "$keys:/k" -w /k --entrypoint /usr/sbin/sluice \
        "$DEPLOY_IMAGE" keygen "$n" >/dev/null || fail "sluice keygen $n"
done
key() { grep -v '^#' "$keys/$1"; }
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
net=sluice-ci-kube-$$
# secret_json NAME KEY=VALUE...: a Secret's data as podman 4.3's kube play
# reads it from its secret store (a JSON object, each value base64)
secret_json() {
    python3 -c '
import base64, json, sys
print(json.dumps({kv.split("=", 1)[0]: base64.b64encode(kv.split("=", 1)[1].encode()).decode()
                  for kv in sys.argv[2:]}))' "$@"
}
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -f "$out/play.yaml" ]; then
        for c in sluice-broker-0-sluice sluice-worker-0-sluice postfix-0-sluice postfix-0-postfix; do
            say "log of $c (last 15 lines):"
            podman logs --tail 15 "$c" 2>&1 | sed 's/^/    /' || true
        done
    fi
    [ -f "$out/play.yaml" ] && timeout 120 podman kube down "$out/play.yaml" >/dev/null 2>&1 || true
    podman network rm -f "$net" >/dev/null 2>&1 || true
    podman secret rm sluice-curve sluice-redis >/dev/null 2>&1 || true
    if [ "$rc" -eq 0 ]; then say "RESULT: PASS"; else say "RESULT: FAIL"; fi
    exit "$rc"
}
trap cleanup EXIT
podman secret rm sluice-curve sluice-redis >/dev/null 2>&1 || true
secret_json sluice-curve "broker.key=$(key broker.key)" "broker.pub=$(key broker.pub)" \
    "frontend.key=$(key frontend.key)" "worker.key=$(key worker.key)" |
    podman secret create sluice-curve - >/dev/null || fail "podman secret create sluice-curve"
secret_json sluice-redis "password=$password" | podman secret create sluice-redis - >/dev/null ||
    fail "podman secret create sluice-redis"
python3 - "$keys" >"$out/operator.yaml" <<'EOT'
import sys, yaml
k = sys.argv[1]
yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sluice-allow"},
                "data": {"frontend-k8s.pub": open(k + "/frontend.pub").read(),
                         "worker-k8s.pub": open(k + "/worker.pub").read()}}, sys.stdout)
EOT
python3 "$DEPLOY_SRC/tests/deploy/kube2podman.py" "$out/volumes" "$out/cluster.yaml" "$out/operator.yaml" >"$out/play.yaml" ||
    fail "kube2podman.py"

podman network create "$net" >/dev/null || fail "podman network create"
timeout 300 podman kube play --network "$net" "$out/play.yaml" >"$out/play.log" 2>&1 ||
    { cat "$out/play.log" >&2; fail "podman kube play"; }
running=$(podman ps --format '{{.Names}}' | grep -cE '^(postfix-[01]|sluice-(broker-[01]|worker-[01]|redis))-' || true)
ok "podman kube play: $running containers running (brokers, workers, Postfix with its frontend, Redis)"

up() { podman logs "$1" 2>&1 | log_has "$2"; }
wait_for 60 up sluice-broker-0-sluice "CURVE key .* (worker, worker-k8s.pub) admitted" ||
    fail "no worker was admitted by sluice-broker-0"
wait_for 60 up postfix-0-sluice "broker tcp://sluice-broker-0:5555 is up" || fail "postfix-0's frontend has no broker"
wait_for 60 up postfix-0-sluice "broker tcp://sluice-broker-1:5555 is up" || fail "postfix-0's frontend lacks the second broker"
ok "brokers admitted the workers' and frontends' keys; the frontend reaches both brokers"

podman exec postfix-0-postfix sh -c "printf 'From: root@localhost\nTo: root@localhost\nSubject: kube\nMessage-ID: <kube@sluice-ci.test>\n\nthrough the cluster\n' | sendmail -f root@localhost root@localhost" ||
    fail "sendmail in postfix-0"
scanned() { podman exec postfix-0-postfix grep -q '(sluice [0-9]' /var/mail/root; }
wait_for 90 scanned || fail "the message did not come back scanned into postfix-0's mailbox"
wait_for 15 up postfix-0-postfix 'relay=127.0.0.1\[127.0.0.1\]:10024.*status=sent (250 2.0.0 from MTA(smtp:\[127.0.0.1\]:10025)' ||
    fail "Postfix did not log the delivery through sluice"
ok "a message handed to postfix-0 went frontend -> broker -> worker -> Postfix :10025 and into the mailbox, scanned"

slots() { [ "$(podman exec sluice-redis-redis redis-cli --no-auth-warning -a "$password" HGET sluice:cluster worker_slots)" = 16 ]; }
wait_for 30 slots || fail "the registry does not count 16 worker slots"
t=$(podman exec sluice-redis-redis redis-cli --no-auth-warning -a "$password" TYPE sluice:keda:demand)
case $t in list | none) ;; *) fail "sluice:keda:demand is a $t" ;; esac
ok "Redis (password from the Secret): the registry counts 16 worker slots; sluice:keda:demand is there for KEDA"
