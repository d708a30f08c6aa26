#!/usr/bin/env bash
# run.sh - the deployment step of tests/run.sh: every deployment artifact
# built from this tree and run for real (docs/deploy.md, "Tested").
#
# SYNOPSIS
#   tests/deploy/run.sh [TEST...]      # TEST: deb nspawn ansible image kube
#   SLUICE_TEST_PRESETS=deploy tests/run.sh
#
# DESCRIPTION
#   t_deb.sh builds the package that the others install: when it fails
#   they are skipped. Each test is bounded (timeout(1) around it, and its
#   own bounded waits) and prints "ok: ..." lines; a summary with each
#   test's time and the package's and image's sizes follows. The slow
#   things that can outlive a run (the booted container's root file system,
#   the base image) are cached (tests/deploy/lib.sh: SLUICE_CI_CACHE).
#
# EXIT STATUS
#   0 if every test passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")" || exit 1

TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(deb nspawn ansible image kube)
# each test's limit in seconds (cold cache included)
declare -A LIMIT=([deb]=1500 [nspawn]=900 [ansible]=900 [image]=900 [kube]=900)
SUMMARY=()
FAILED=0
DEB_OK=1
T0=$SECONDS
for t in "${TESTS[@]}"; do
    if [ -z "${LIMIT[$t]:-}" ]; then
        echo "deploy/run.sh: no test '$t' (deb nspawn ansible image kube)" >&2
        exit 1
    fi
    if [ "$t" != deb ] && [ "$DEB_OK" -eq 0 ]; then
        SUMMARY+=("$(printf '%-10s skipped (no package)' "$t")")
        FAILED=1
        continue
    fi
    printf '\n===== deploy: %s\n' "$t"
    ts=$SECONDS rc=0
    timeout --kill-after=30 "${LIMIT[$t]}" bash "./t_$t.sh" || rc=$?
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("$(printf '%-10s ok     %5d s' "$t" $((SECONDS - ts)))")
    else
        SUMMARY+=("$(printf '%-10s FAILED %5d s (exit %d)' "$t" $((SECONDS - ts)) "$rc")")
        FAILED=1
        [ "$t" = deb ] && DEB_OK=0
    fi
done
printf '\n===== deploy summary\n'
printf '%s\n' "${SUMMARY[@]}"
. ./lib.sh
[ -f "$DEPLOY_DEB" ] && printf 'package: %s, %s bytes\n' "$(basename "$DEPLOY_DEB")" "$(stat -c %s "$DEPLOY_DEB")"
if command -v podman >/dev/null 2>&1; then
    podman_env
    s=$(podman image inspect --format '{{.Size}}' "$DEPLOY_IMAGE" 2>/dev/null || true)
    [ -n "$s" ] && printf 'image: %s, %s bytes (%s MiB)\n' "$DEPLOY_IMAGE" "$s" $((s / 1048576))
fi
printf 'cache: %s\n' "$DEPLOY_CACHE"
printf 'deploy total %d s: %s\n' $((SECONDS - T0)) "$([ "$FAILED" -eq 0 ] && echo PASS || echo FAIL)"
exit "$FAILED"
