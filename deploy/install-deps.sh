#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages sluice needs.
#
# SYNOPSIS
#   deploy/install-deps.sh            build and run sluice
#   deploy/install-deps.sh --test     also everything tests/run.sh uses
#
# DESCRIPTION
#   Without options: the compiler, CMake and the -dev packages that
#   building sluice needs, nothing else. It changes no configuration and
#   stops, starts or restarts no service, so it is safe on a mail server
#   that already runs Postfix, Redis, clamd, spamd, rspamd or amavisd-new.
#
#   --test: also the test, benchmark, fuzzing and deployment toolchain
#   (Postfix, Redis, the scanner daemons, amavisd-new for the benchmark,
#   clang, debhelper, lintian, mmdebstrap, systemd-nspawn, podman,
#   ansible...). The tests start private instances of the daemons on
#   loopback ports, so the system services these packages start are
#   stopped (service ... stop: they would hold the standard ports), and
#   Postfix is installed unconfigured ("No configuration"). This is for a
#   test or CI machine, never a mail server: README and .ci/run use it.
#
#   Idempotent; safe to run again. Must run as root (uses sudo otherwise).
#   The lists are the single source of truth: README, .ci/run, docs/ and
#   debian/control point here.
set -euo pipefail

usage() {
    sed -n '3,5p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

with_test=0
for arg in "$@"; do
    case $arg in
    --test) with_test=1 ;;
    -h | --help) usage ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; usage ;;
    esac
done

build_pkgs=(
    build-essential cmake pkg-config git
    libevent-dev          # event loop of the frontend (and evhttp later)
    libzmq3-dev           # broker/worker/frontend transport
    libhiredis-dev        # Redis client (0.14 API, libevent adapter)
    libsodium-dev         # random ids, CURVE keys, quarantine encryption
    libprotobuf-c-dev protobuf-c-compiler   # wire format between roles
    libgmime-3.0-dev      # MIME parsing in workers
    libyaml-dev           # configuration parser (line/column for errors)
    libsystemd-dev        # sd_notify, the watchdog, socket activation (no-ops without systemd)
    libarchive-dev        # archives inside mail (zip, 7z, rar, tar, gz...) for banned checks
    libmagic-dev          # real file type vs the declared one (one magic_t per thread)
    libpcre2-dev          # banned-name patterns
    libjansson-dev        # rspamd's JSON replies (docs/architecture.md, dependencies)
    libpq-dev             # the quarantine's sql: store and lookup.sql (PostgreSQL, amavisd-new's schema)
    libldap-dev           # lookup.ldap: each recipient's policy from amavisAccount entries (OpenLDAP)
    libcmocka-dev         # unit tests (CMake configures them with the build)
)
test_pkgs=(
    postfix               # the real origin MTA, smtp-source, smtp-sink
    redis-server          # shared state
    swaks                 # scripted SMTP/LMTP client for end-to-end tests
    python3               # tests/dialogue/run.py, the dialogue test runner
    systemd               # systemd-socket-activate: t_systemd_socket.sh (LISTEN_FDS)
    prometheus            # prometheus and promtool: t_metrics_prometheus.sh, deploy/prometheus's rule tests
    logwatch              # its amavis service reads sluice's log: t_log_tools.sh
    procps iproute2 netcat-openbsd
    libczmq-dev           # CZMQ; not linked (lib/net/sl_zap.c is its own ZAP handler)
    postgresql            # initdb, postgres: the sql: quarantine and lookup tests run a private one
    slapd ldap-utils      # slapd, slaptest, ldapadd: the LDAP lookup test runs a private one
    iptables              # partitions in the cluster tests (a chain of their own on lo)
)
# Scanners: the real daemons the scanner tests start on loopback. Debian
# ships clamd without signatures: the tests write their own EICAR .ndb;
# spamd runs with -L (offline) and rspamd with a temp config dir.
scanner_pkgs=(
    clamav-daemon         # clamd, zINSTREAM
    clamav-testfiles      # clam.exe, clam.zip ... (harmless test samples)
    spamassassin spamd    # spamd -L, SPAMC/1.5
    rspamd                # /checkv2 over HTTP
)
# Benchmarks (tests/bench/bench.sh, docs/benchmarks.md): amavisd-new, the
# program sluice replaces, measured in the same run with the same daemons.
# The bench starts private instances (its own amavisd.conf, loopback port);
# the system service stays stopped.
bench_pkgs=(
    amavisd-new           # amavisd-new 2.13 (Perl; SpamAssassin in-process when enabled);
                          # its amavisd-release is what the quarantine tests release with
    libdbd-pg-perl        # amavisd-new's SQL lookups, compared with sluice's in t_lookup_amavis
)
# Fuzzing (tests/fuzz, docs/fuzzing.md): clang and libFuzzer's runtime for
# the `fuzz` preset that tests/run.sh builds; ASan/UBSan come with gcc.
fuzz_pkgs=(
    clang                 # clang-14 on Debian 12
    libclang-rt-14-dev    # libFuzzer + sanitizer runtimes for clang-14 (-fsanitize=fuzzer)
)
# Deployment (tests/deploy, docs/deploy.md): the package, the booted
# systemd container, the image, Ansible and the Kubernetes manifests, each
# built and run for real. kubectl (for `kubectl kustomize`) is not in
# Debian 12 in a version with kustomize v5; tests/deploy uses the one on
# the PATH and says so when there is none.
deploy_pkgs=(
    debhelper dpkg-dev fakeroot lintian   # dpkg-buildpackage -us -uc -b, lintian
    mmdebstrap            # Debian 12 root file systems from the machine's own apt sources
    systemd-container     # systemd-nspawn: a booted Debian 12 with systemd as PID 1
    podman runc           # the image; runc, not crun (crun fails on hybrid cgroups)
    golang-github-containernetworking-plugin-dnsname   # pods find each other by name (kube play)
    uidmap                # newuidmap for podman
    catatonit             # the pods' pause image, built locally (no registry)
    ansible-core ansible-lint yamllint
    nodejs npm            # tests/deploy/validate: kubernetes-models, pinned in its lock file
    man-db                # man -l: the man pages render without warnings
)

if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive
wanted=("${build_pkgs[@]}")
if [ "$with_test" -eq 1 ]; then
    # Postfix asks what kind of mail system this is; the tests run their own
    # instances with their own config_directory, so the system one stays
    # unconfigured.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    wanted+=("${test_pkgs[@]}" "${scanner_pkgs[@]}" "${bench_pkgs[@]}" "${fuzz_pkgs[@]}"
        "${deploy_pkgs[@]}")
fi

missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# nodejs may come from elsewhere than Debian (then npm comes with it)
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    keep=()
    for p in "${missing[@]}"; do
        case $p in nodejs | npm) ;; *) keep+=("$p") ;; esac
    done
    missing=("${keep[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "$with_test" -eq 1 ] && command -v service >/dev/null 2>&1; then
    # Debian starts these from their packages; the tests run their own
    # instances on loopback, and the system ones would hold the standard ports.
    for svc in redis-server postfix clamav-daemon clamav-freshclam spamd spamassassin rspamd amavis prometheus postgresql slapd; do
        service "$svc" stop >/dev/null 2>&1 || true
    done
fi
if [ "$with_test" -eq 1 ]; then
    echo "install-deps: all packages present (build, test and deployment)"
else
    echo "install-deps: all packages present (build; --test adds the test toolchain)"
fi
