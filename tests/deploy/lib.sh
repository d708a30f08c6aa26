# shellcheck shell=bash
# lib.sh - shared helpers of the deployment tests (tests/deploy/t_*.sh).
#
# DESCRIPTION
#   Every test sources this file. It knows where things are:
#     DEPLOY_SRC    the repository
#     DEPLOY_WORK   build-deploy/ in it: the package, the image context,
#                   rendered manifests, logs (gitignored: /build*/)
#     DEPLOY_CACHE  what is slow to make and may outlive a run: the
#                   mmdebstrap root file system of the booted container and
#                   the base image's tarball. /var/cache/sluice-ci when it
#                   can be written, else DEPLOY_WORK/cache; each entry is
#                   keyed by a hash of how it is made, and made again when
#                   missing.
#   and gives bounded waits, free ports, and reporting in the e2e tests'
#   style ("ok: ...", "FAIL: ..."). Nothing here names a mirror: root file
#   systems are built from the apt sources of the machine itself.
#
# ENVIRONMENT
#   SLUICE_CI_CACHE   the cache directory (default above)
#   DEPLOY_KEEP=1     keep containers and work files after a test

set -Eeuo pipefail

DEPLOY_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_SRC=$(cd "$DEPLOY_LIB_DIR/../.." && pwd)
DEPLOY_WORK=${DEPLOY_WORK:-$DEPLOY_SRC/build-deploy}
DEPLOY_NAME=$(basename "${0%.sh}")
mkdir -p "$DEPLOY_WORK"
if [ -z "${SLUICE_CI_CACHE:-}" ]; then
    if mkdir -p /var/cache/sluice-ci 2>/dev/null && [ -w /var/cache/sluice-ci ]; then
        SLUICE_CI_CACHE=/var/cache/sluice-ci
    else
        SLUICE_CI_CACHE=$DEPLOY_WORK/cache
    fi
fi
DEPLOY_CACHE=$SLUICE_CI_CACHE
mkdir -p "$DEPLOY_CACHE"
# The package's version, from CMake's project() line (the one place it is).
DEPLOY_VERSION=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$DEPLOY_SRC/CMakeLists.txt")
DEPLOY_ARCH=$(dpkg --print-architecture)
DEPLOY_DEB=$DEPLOY_WORK/sluice_${DEPLOY_VERSION}_${DEPLOY_ARCH}.deb

say() { printf '[%s %s] %s\n' "$DEPLOY_NAME" "$(date +%H:%M:%S)" "$*"; }
ok() { printf '[%s %s] ok: %s\n' "$DEPLOY_NAME" "$(date +%H:%M:%S)" "$*"; }
fail() {
    printf '[%s %s] FAIL: %s\n' "$DEPLOY_NAME" "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}
need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || fail "required command not found: $c (deploy/install-deps.sh --test)"
    done
}

# wait_for SECONDS CMD...: runs CMD every 0.2 s until it succeeds; 1 if it
# never did within SECONDS.
wait_for() {
    local limit=$1 t0=$SECONDS
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ $((SECONDS - t0)) -lt "$limit" ] || return 1
        sleep 0.2
    done
}

# free_port: an unused TCP port on 127.0.0.1 between 33000 and 39999 (the
# e2e tests use 20000-32000; both stay below the ephemeral range).
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((33000 + RANDOM % 7000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    fail "no free port found"
}

# apt_sources FILE: the machine's own Debian 12 apt sources (the files apt
# uses, in either format), for mmdebstrap; fails when there are none.
apt_sources() {
    local out=$1 f n=0
    : >"$out"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # only the Debian archive's own entries: a third-party repository
        # would need its key inside the new system
        grep -qE 'bookworm' "$f" || continue
        grep -vE '^[[:space:]]*#' "$f" >>"$out" || true
        printf '\n' >>"$out"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || fail "no Debian 12 apt sources on this machine"
}

# cache_key WORDS...: a short hash naming a cache entry.
cache_key() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }

# debootstrap_cached NAME INCLUDE [FORMAT]: a Debian 12 minbase root file
# system (FORMAT dir, the default) or tarball (tar) with INCLUDE (a
# comma-separated package list), from the cache or made now. Prints its path.
debootstrap_cached() {
    local name=$1 include=$2 format=${3:-dir} key path src
    key=$(cache_key "$name" "$include" "$format" v1)
    path=$DEPLOY_CACHE/$name-$key
    [ "$format" = tar ] && path=$path.tar
    if [ ! -e "$path" ]; then
        rm -rf "$DEPLOY_CACHE/$name"-* 2>/dev/null || true
        src=$(mktemp)
        apt_sources "$src"
        say "making $path with mmdebstrap (cached for later runs)" >&2
        if ! timeout 900 mmdebstrap --quiet --variant=minbase --format="$format" \
            --include="$include" bookworm "$path.new" "$src" >&2; then
            rm -rf "$path.new" "$src"
            fail "mmdebstrap $name failed"
        fi
        rm -f "$src"
        mv "$path.new" "$path"
    fi
    echo "$path"
}
