#!/usr/bin/env bash
# t_image.sh - the container image: deploy/container/Containerfile built
# with podman from the package of this tree, on a Debian 12 base image that
# mmdebstrap makes here (no registry is reachable, none is needed), then run.
#
# Proves: the image builds (--pull=never); it holds no key and no password;
# it runs as a non-root user (uid 999) with a read-only root file system;
# PID 1 is sluice's master (its child does the work); the health check
# passes; a message over LMTP to the container reaches an smtp-sink on
# loopback, scanned; `podman stop` (SIGTERM to PID 1) stops it cleanly and
# quickly with exit status 0. Prints the image's size.
#
# podman here: runc (crun fails on this machine's hybrid cgroups and on
# RLIMIT_NOFILE), limits runc may set, host networking and loopback ports;
# all of it through CONTAINERS_CONF, so the machine's own configuration is
# not touched. podman runs health checks from systemd timers, which this
# machine has not: the test runs the image's check itself (podman
# healthcheck run), --health-interval disable only turns the timer off.
#
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd podman runc mmdebstrap smtp-sink smtp-source
[ -f "$DEPLOY_DEB" ] || fail "no $DEPLOY_DEB: run tests/deploy/t_deb.sh first"

podman_env
base=$(base_image)
ok "base image $base (mmdebstrap minbase, from this machine's apt sources)"

ctx=$DEPLOY_WORK/image
rm -rf "$ctx"
mkdir -p "$ctx"
cp "$DEPLOY_DEB" "$ctx/"
t0=$SECONDS
if ! timeout 900 podman build --pull=never --format docker --build-arg "BASE=$base" \
    -f "$DEPLOY_SRC/deploy/container/Containerfile" -t "$DEPLOY_IMAGE" "$ctx" \
    >"$DEPLOY_WORK/$DEPLOY_NAME.build.log" 2>&1; then
    tail -n 30 "$DEPLOY_WORK/$DEPLOY_NAME.build.log" >&2
    fail "podman build"
fi
size=$(podman image inspect --format '{{.Size}}' "$DEPLOY_IMAGE")
ok "built $DEPLOY_IMAGE in $((SECONDS - t0)) s: $size bytes ($((size / 1048576)) MiB)"

# nothing secret inside: no key file, no configuration beyond the packaged default
found=$(podman run --rm --entrypoint /usr/bin/find "$DEPLOY_IMAGE" / -xdev \
    \( -name '*.key' -o -name '*.pub' -o -path '/etc/sluice/private/*' \) -print 2>/dev/null | grep -v '^/usr/share/' || true)
[ -z "$found" ] || fail "key files in the image: $found"
ok "no key file in the image"

sink_port=$(free_port)
port=$(free_port)
sink_dir=$DEPLOY_WORK/image-sink
rm -rf "$sink_dir"
mkdir -p "$sink_dir"
chmod 777 "$sink_dir"
(cd "$sink_dir" && exec setsid smtp-sink -u nobody -d "%M." -c "127.0.0.1:$sink_port" 100) \
    >/dev/null 2>&1 &
sink_pid=$!
name=sluice-ci-image-$$
cleanup() {
    local rc=$?
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    if [ "$rc" -eq 0 ]; then say "RESULT: PASS"; else say "RESULT: FAIL"; fi
    exit "$rc"
}
trap cleanup EXIT
wait_for 10 ss -Htln "sport = :$sink_port" || fail "smtp-sink did not start"

podman run -d --name "$name" --network host --read-only --cap-drop all \
    --security-opt no-new-privileges --health-interval disable \
    -e SLUICE_HEALTH_PORT="$port" "$DEPLOY_IMAGE" \
    -o "frontend.listen=127.0.0.1:$port" -o "origins.default.reinject=127.0.0.1:$sink_port" all \
    >/dev/null || fail "podman run"
listening() { ss -Htln "sport = :$port" | grep -q .; }
wait_for 30 listening || { podman logs "$name" | tail -n 20 >&2; fail "the container does not listen on :$port"; }

pid1=$(podman exec "$name" cat /proc/1/cmdline | tr '\0' ' ')
case $pid1 in /usr/sbin/sluice*) ;; *) fail "PID 1 is '$pid1', not sluice" ;; esac
[ "$(podman exec "$name" id -u)" = 999 ] || fail "not running as uid 999"
st=$(podman exec "$name" cat /proc/1/status)
[ "$(awk '/^Uid:/ { print $2 }' <<<"$st")" = 999 ] || fail "PID 1 is not uid 999"
for c in CapPrm CapEff CapAmb; do
    [ "$(awk -v c="$c:" '$1 == c { print $2 }' <<<"$st")" = 0000000000000000 ] || fail "PID 1 has $c"
done
podman exec "$name" sh -c 'touch /probe' 2>/dev/null && fail "the root file system is writable"
children=$(podman exec "$name" cat /proc/1/task/1/children)
[ -n "$children" ] || fail "PID 1 has no child"
ok "PID 1 is sluice's master ($pid1), child $children; uid 999, no capability; read-only root file system"

healthy() { podman healthcheck run "$name" >/dev/null 2>&1; }
wait_for 30 healthy || fail "the health check does not pass"
ok "health check passes (the greeting on :$port)"

timeout 60 smtp-source -L -s 2 -m 5 -l 2048 -f sender@image.test -t rcpt@image.test \
    "127.0.0.1:$port" || fail "smtp-source into the container"
sunk() { [ "$(find "$sink_dir" -type f | wc -l)" -ge 5 ]; }
wait_for 30 sunk || fail "$(find "$sink_dir" -type f | wc -l) of 5 messages reached the sink"
grep -l "(sluice [0-9]" "$sink_dir"/* >/dev/null || fail "the messages at the sink were not scanned"
# (the sink has the message before sluice has the sink's reply and logs)
logged() { podman logs "$name" 2>&1 | log_has "Passed CLEAN"; }
wait_for 15 logged || fail "no Passed CLEAN in the container's log"
ok "5 messages over LMTP into the container reached smtp-sink on loopback, scanned"

t0=$(date +%s%N)
podman stop -t 30 "$name" >/dev/null || fail "podman stop"
ms=$((($(date +%s%N) - t0) / 1000000))
rc=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$rc" = 0 ] || fail "exit code $rc after podman stop"
[ "$ms" -lt 10000 ] || fail "podman stop took $ms ms: SIGTERM was not taken"
stopped() { podman logs "$name" 2>&1 | log_has "sluice stopped"; }
wait_for 10 stopped || fail "no orderly stop in the log"
ok "podman stop: SIGTERM to PID 1, stopped cleanly in $ms ms, exit code 0"
