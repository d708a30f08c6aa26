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

# log_has PATTERN: whether standard input has a line matching PATTERN. Reads
# all of it: with pipefail, "producer | grep -q" fails when grep exits at the
# first match and the producer dies of SIGPIPE writing the rest.
log_has() { grep -c -- "$1" >/dev/null; }

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

# debootstrap_cached NAME INCLUDE [FORMAT [OPTION...]]: a Debian 12 minbase
# root file system (FORMAT dir, the default) or tarball (tar) with INCLUDE
# (a comma-separated package list) and mmdebstrap's OPTIONs, from the cache
# or made now. Prints its path.
debootstrap_cached() {
    local name=$1 include=$2 format=${3:-dir} key path src
    shift 3 2>/dev/null || shift $#
    key=$(cache_key "$name" "$include" "$format" "$@" v1)
    path=$DEPLOY_CACHE/$name-$key
    [ "$format" = tar ] && path=$path.tar
    if [ ! -e "$path" ]; then
        rm -rf "$DEPLOY_CACHE/$name"-* 2>/dev/null || true
        src=$(mktemp)
        apt_sources "$src"
        say "making $path with mmdebstrap (cached for later runs)" >&2
        if ! timeout 900 mmdebstrap --quiet --variant=minbase --format="$format" "$@" \
            ${include:+--include="$include"} bookworm "$path.new" "$src" >&2; then
            rm -rf "$path.new" "$src"
            fail "mmdebstrap $name failed"
        fi
        rm -f "$src"
        mv "$path.new" "$path"
    fi
    echo "$path"
}

# deb_depends DEB: the package's Depends as a comma-separated list of names.
deb_depends() {
    dpkg-deb -f "$1" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/[[:space:]]//g' |
        grep . | sort -u | paste -sd, -
}

# The booted container's root file system: systemd as PID 1, Postfix,
# Ansible (applied from inside) and sluice's own dependencies, so that the
# test installs the package without downloading anything.
nspawn_rootfs() {
    local deps
    deps=$(deb_depends "$DEPLOY_DEB")
    debootstrap_cached nspawn-bookworm \
        "systemd,systemd-sysv,dbus,libpam-systemd,postfix,python3,python3-apt,ansible-core,procps,iproute2,man-db,$deps"
}

# ---------------------------------------------------------------------------
# A booted Debian 12 with systemd as PID 1 (systemd-nspawn).
#
# nspawn_boot ROOTFS: boots an ephemeral copy of ROOTFS (thrown away when it
# stops) with this repository at /src and build-deploy at /deploy, read-only.
# It shares the host's network: tests pick their own free loopback ports.
# --register=no --keep-unit: the host's PID 1 is not systemd (no machined).
NSPAWN_PID=
NSPAWN_LEADER=
nspawn_boot() {
    local rootfs=$1 log=$DEPLOY_WORK/$DEPLOY_NAME.console.log
    NSPAWN_MACHINE=sluice-ci-$$
    systemd-nspawn -q -b -x -D "$rootfs" --register=no --keep-unit -M "$NSPAWN_MACHINE" \
        --bind-ro="$DEPLOY_SRC:/src" --bind-ro="$DEPLOY_WORK:/deploy" \
        </dev/null >"$log" 2>&1 &
    NSPAWN_PID=$!
    trap nspawn_cleanup EXIT
    # the container's PID 1, once nspawn has made it (an ephemeral copy of
    # the tree comes first, and a short-lived helper may show meanwhile)
    nspawn_leader() {
        NSPAWN_LEADER=$(ps --ppid "$NSPAWN_PID" -o pid=,comm= | awk '$2 == "systemd" { print $1; exit }')
        [ -n "$NSPAWN_LEADER" ]
    }
    wait_for 60 nspawn_leader || { cat "$log" >&2; fail "the container did not start"; }
    # systemctl fails at once until PID 1 listens on its private socket
    NSPAWN_STATE=
    booted() {
        NSPAWN_STATE=$(cx systemctl is-system-running 2>/dev/null || true)
        case $NSPAWN_STATE in running | degraded) return 0 ;; *) return 1 ;; esac
    }
    wait_for 120 booted || true
    local state=$NSPAWN_STATE
    case $state in
    running) ;;
    degraded) say "the container is up but degraded: $(cx systemctl --failed --no-legend --plain | tr '\n' ' ')" ;;
    *) tail -n 30 "$log" >&2; fail "the container did not boot: '$state'" ;;
    esac
}

# cx CMD...: runs CMD in the container, as root, with a clean environment.
cx() {
    nsenter -t "$NSPAWN_LEADER" -m -u -i -n -p -r -w \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 HOME=/root TERM=dumb "$@"
}

# cxsh SCRIPT: a shell script in the container.
cxsh() { cx /bin/sh -ec "$1"; }

nspawn_cleanup() {
    local rc=$?
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        if [ "$rc" -ne 0 ] && [ -n "$NSPAWN_LEADER" ]; then
            say "journal of the container (last 60 lines):"
            cx journalctl --no-pager -n 60 2>/dev/null | sed 's/^/    /' || true
        fi
        # --force: the services need no orderly stop, the copy is thrown away
        [ -n "$NSPAWN_LEADER" ] && cx systemctl poweroff --force >/dev/null 2>&1 || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$NSPAWN_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    if [ "$rc" -eq 0 ]; then say "RESULT: PASS"; else say "RESULT: FAIL"; fi
    exit "$rc"
}

# pf_filter_setup MAIN_CF_FILTER_PORT REINJECT_PORT: the container's Postfix
# as docs/postfix.md sets it up for sluice, on the given loopback ports
# (the host's network is shared: never 10024/10025, never :25). Mail for
# root@localhost is delivered to /var/mail/root.
pf_filter_setup() {
    local fport=$1 rport=$2
    cxsh "
postconf -e 'myhostname = sluice-ci.test' 'mydestination = localhost, sluice-ci.test' \
    'inet_interfaces = loopback-only' 'inet_protocols = ipv4' 'mynetworks = 127.0.0.0/8' \
    'content_filter = amavisfeed:[127.0.0.1]:$fport' \
    'amavisfeed_destination_concurrency_limit = 2' 'minimal_backoff_time = 5s' \
    'maximal_backoff_time = 10s' 'queue_run_delay = 5s' 'relayhost =' 'alias_maps =' \
    'smtputf8_enable = no'
# no smtpd on :25 (mail is injected with sendmail)
postconf -MX smtp/inet
postconf -M 'amavisfeed/unix=amavisfeed unix - - n - 2 lmtp'
postconf -P 'amavisfeed/unix/lmtp_data_done_timeout=1200' \
    'amavisfeed/unix/lmtp_send_xforward_command=yes'
postconf -M '127.0.0.1:$rport/inet=127.0.0.1:$rport inet n - n - - smtpd'
for o in content_filter= smtpd_delay_reject=no \
    smtpd_client_restrictions=permit_mynetworks,reject smtpd_helo_restrictions= \
    smtpd_sender_restrictions= smtpd_recipient_restrictions=permit_mynetworks,reject \
    smtpd_data_restrictions=reject_unauth_pipelining mynetworks=127.0.0.0/8 \
    receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters \
    smtpd_authorized_xforward_hosts=127.0.0.0/8; do
    postconf -P \"127.0.0.1:$rport/inet/\$o\"
done
systemctl restart postfix
"
}

# send_mail ID: a message to root@localhost through the container's
# Postfix (sendmail), with Message-ID <ID@sluice-ci.test>.
send_mail() {
    cxsh "printf 'From: root@localhost\nTo: root@localhost\nSubject: %s\nMessage-ID: <%s@sluice-ci.test>\n\nbody of %s\n' '$1' '$1' '$1' |
        /usr/sbin/sendmail -f root@localhost root@localhost"
}

# delivered ID: the message is in root's mailbox, scanned by sluice
# (its Received: line, "by HOST (sluice VERSION, port N)"; without a virus
# scanner configured there is no X-Virus-Scanned).
delivered() {
    cxsh "test -f /var/mail/root && awk -v id='<$1@sluice-ci.test>' '
        function check() { if (mid == id && scanned) found = 1 }
        /^From / { check(); scanned = 0; mid = \"\" }
        /\(sluice [0-9]/ { scanned = 1 }
        tolower(\$1) == \"message-id:\" { mid = \$2 }
        END { check(); exit !found }' /var/mail/root"
}

# ---------------------------------------------------------------------------
# podman

DEPLOY_IMAGE=localhost/sluice:$DEPLOY_VERSION

# podman_env: podman as this machine needs it, without touching
# /etc/containers: runc (crun fails on hybrid cgroups and RLIMIT_NOFILE), a
# nofile limit podman can apply, cgroupfs.
podman_env() {
    local n
    # runc sets the limits it is given, and podman's own defaults are above
    # what a process may raise to here (no CAP_SYS_RESOURCE): both are named
    n=$(ulimit -Hn)
    [ "$n" = unlimited ] || [ "$n" -gt 65536 ] && n=65536
    export CONTAINERS_CONF=$DEPLOY_WORK/containers.conf
    cat >"$CONTAINERS_CONF" <<EOT
[containers]
default_ulimits = ["nofile=$n:$n", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOT
}

# base_image: the Debian 12 base image, imported into podman from the
# cached mmdebstrap tarball when podman does not have it yet. Prints its name.
base_image() {
    local tar key name
    # no documentation, manual or translation in an image (copyright files
    # stay): dpkg keeps these rules for what the image installs later
    tar=$(debootstrap_cached container-bookworm "" tar \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias')
    key=$(basename "$tar" .tar)
    name=localhost/sluice-base:${key#container-bookworm-}
    if ! podman image exists "$name"; then
        podman import --quiet "$tar" "$name" >/dev/null || fail "podman import $tar"
    fi
    echo "$name"
}
