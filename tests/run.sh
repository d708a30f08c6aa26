#!/usr/bin/env bash
# run.sh - the whole test suite, exactly as CI runs it (README, .ci/run).
#
# SYNOPSIS
#   tests/run.sh
#   SLUICE_FUZZ_SECONDS=600 tests/run.sh
#
# DESCRIPTION
#   Three builds from CMakePresets.json, one after another, then the
#   deployment step:
#     1. default (build/): build, then ctest: unit and end-to-end tests;
#     2. asan (build-asan/): ASan + UBSan with -fno-sanitize-recover=all,
#        the same ctest but for nine e2e scripts that mostly wait (the
#        asan test preset's filter, docs/fuzzing.md); tests/CMakeLists.txt
#        makes every test, and the
#        sluice binary the e2e tests start, stop at the first sanitizer or
#        leak report (tests/lsan.supp lists the tolerated third-party leaks);
#     3. fuzz (build-fuzz/, clang): ctest replays every seed corpus, then each
#        libFuzzer target of tests/fuzz runs for SLUICE_FUZZ_SECONDS with its
#        dictionary, writing new inputs to build-fuzz/fuzz-run/<target>/ (the
#        corpus in the repository is only read). A crash, an invariant
#        violation, a leak or a 10 s input is a failure; the input is kept
#        in build-fuzz/fuzz-run/<target>/ (docs/fuzzing.md: reproduce, fix,
#        add it to the corpus);
#     4. deploy (build-deploy/): tests/deploy/run.sh: the Debian package
#        built and lintian-checked, installed on a booted Debian 12 systemd
#        container with Postfix, the Ansible playbook applied there, the
#        container image built and run, the Kubernetes overlays rendered,
#        validated and played with podman (docs/deploy.md, "Tested").
#   Every step runs even when an earlier one failed (a build failure skips
#   only its own tests), so one CI run shows everything; ctest's own output
#   and summary lines are printed as they come. A summary follows.
#
#   Bounded: ctest gives each test 300 s unless it sets its own TIMEOUT (the
#   e2e scripts: 600 s, plus their own watchdogs), each fuzz target runs
#   under timeout(1). Measured on 2 cores: docs/fuzzing.md, "CI".
#
# ENVIRONMENT
#   SLUICE_TEST_PRESETS  which of the four steps run (default "default asan fuzz deploy":
#                        all four, as CI; "default" alone is the quick local run,
#                        "deploy" the deployment step alone)
#   SLUICE_FUZZ_SECONDS  seconds per fuzz target (default 60; 0: corpus replay only)
#
# EXIT STATUS
#   0 if every step passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

FUZZ_SECONDS=${SLUICE_FUZZ_SECONDS:-60}
FUZZ_TARGETS=(smtp_parser smtp_reply wire config message status_json mime)
case $FUZZ_SECONDS in '' | *[!0-9]*)
    echo "run.sh: SLUICE_FUZZ_SECONDS must be a number of seconds, not '$FUZZ_SECONDS'" >&2
    exit 1 ;;
esac

SUMMARY=()
FAILED=0
T0=$SECONDS

# step NAME CMD...: runs CMD, records its result and duration. Returns CMD's status.
step() {
    local name=$1 t=$SECONDS rc=0
    shift
    printf '\n===== run.sh: %s: %s\n' "$name" "$*"
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("$(printf '%-34s ok     %5d s' "$name" $((SECONDS - t)))")
    else
        SUMMARY+=("$(printf '%-34s FAILED %5d s  (exit %d)' "$name" $((SECONDS - t)) "$rc")")
        FAILED=1
    fi
    return "$rc"
}

skip() {
    SUMMARY+=("$(printf '%-34s skipped (%s)' "$1" "$2")")
}

# preset NAME: configure + build, then ctest.
preset() {
    local p=$1
    if step "$p: configure" cmake --preset "$p" && step "$p: build" cmake --build --preset "$p"; then
        step "$p: ctest" ctest --preset "$p"
    else
        skip "$p: ctest" "no build"
    fi
}

# fuzz_one TARGET: SLUICE_FUZZ_SECONDS of libFuzzer, starting from its corpus.
fuzz_one() {
    local t=$1 dir=build-fuzz/fuzz-run/$1 rc=0
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    # The first directory receives new inputs; the repository's is only read.
    timeout $((FUZZ_SECONDS + 120)) build-fuzz/tests/fuzz/fuzz_"$t" \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -max_len=8192 -print_final_stats=1 \
        -dict=tests/fuzz/"$t".dict -artifact_prefix="$dir/" \
        "$dir/corpus" tests/fuzz/corpus/"$t" >"$dir/log" 2>&1 || rc=$?
    # libFuzzer's progress lines are many; show its verdict and statistics.
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|^Done |ERROR|SUMMARY|invariant failed|^artifact_prefix|Test unit written' \
        "$dir/log" | tail -n 20
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    cov=$(grep -oE '^#[0-9]+[[:space:]]+DONE[[:space:]]+cov: [0-9]+' "$dir/log" | tail -n 1 | sed 's/.*cov: //')
    FUZZ_STATS+=("$(printf '%-12s %10s execs  cov %5s  %s' "$t" "${execs:-?}" "${cov:-?}" \
        "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED: see $dir/log and $dir/crash-* / timeout-* / leak-*")")")
    if [ "$rc" -ne 0 ]; then
        echo "run.sh: fuzz_$t failed (exit $rc); the log is $dir/log:"
        tail -n 60 "$dir/log"
    fi
    return "$rc"
}

PRESETS=" ${SLUICE_TEST_PRESETS:-default asan fuzz deploy} "
wanted() { case $PRESETS in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if wanted default; then preset default; else skip "default" "not in SLUICE_TEST_PRESETS"; fi
if wanted asan; then preset asan; else skip "asan" "not in SLUICE_TEST_PRESETS"; fi

FUZZ_STATS=()
if ! wanted fuzz; then
    skip "fuzz" "not in SLUICE_TEST_PRESETS"
elif step "fuzz: configure" cmake --preset fuzz && step "fuzz: build" cmake --build --preset fuzz; then
    step "fuzz: corpus replay (ctest)" ctest --preset fuzz
    if [ "$FUZZ_SECONDS" -gt 0 ]; then
        for t in "${FUZZ_TARGETS[@]}"; do
            step "fuzz: fuzz_$t ${FUZZ_SECONDS} s" fuzz_one "$t"
        done
    else
        skip "fuzz: timed runs" "SLUICE_FUZZ_SECONDS=0"
    fi
else
    skip "fuzz: corpus replay and runs" "no build"
fi

DEPLOY_TESTS=(deb nspawn ansible image kube)
if ! wanted deploy; then
    skip "deploy" "not in SLUICE_TEST_PRESETS"
else
    # one test at a time, so that the summary shows each; t_deb.sh builds the
    # package the others install
    for t in "${DEPLOY_TESTS[@]}"; do
        if [ "$t" != deb ] && [ ! -f "build-deploy/deb.ok" ]; then
            skip "deploy: $t" "no package"
            continue
        fi
        [ "$t" = deb ] && rm -f build-deploy/deb.ok
        if step "deploy: $t" tests/deploy/run.sh "$t" && [ "$t" = deb ]; then
            touch build-deploy/deb.ok
        fi
    done
fi

printf '\n===== run.sh summary =====\n'
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FUZZ_STATS[@]} -gt 0 ]; then
    printf -- '-- fuzzing, %s s per target:\n' "$FUZZ_SECONDS"
    printf '%s\n' "${FUZZ_STATS[@]}"
fi
printf 'total %d s: %s\n' $((SECONDS - T0)) "$([ "$FAILED" -eq 0 ] && echo PASS || echo FAIL)"
exit "$FAILED"
