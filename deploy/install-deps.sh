#!/usr/bin/env bash
# install-deps.sh - install every Debian 12 package sluice needs to build and test.
#
# Idempotent; safe to run again. Must run as root (or through sudo).
# The list is the single source of truth: README, .ci/run and docs/ point here.
set -euo pipefail

build_pkgs=(
    build-essential cmake pkg-config git
    libevent-dev          # event loop of the frontend (and evhttp later)
    libzmq3-dev           # broker/worker/frontend transport
    libczmq-dev           # CZMQ; not linked (lib/net/sl_zap.c is its own ZAP handler)
    libhiredis-dev        # Redis client (0.14 API, libevent adapter)
    libsodium-dev         # random ids, CURVE keys, quarantine encryption
    libprotobuf-c-dev protobuf-c-compiler   # wire format between roles
    libgmime-3.0-dev      # MIME parsing in workers
    libyaml-dev           # configuration parser (line/column for errors)
    libpq-dev             # the quarantine's sql: store (PostgreSQL, amavisd-new's schema)
    libcmocka-dev         # unit tests
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
    postgresql            # initdb, postgres: the sql: quarantine tests run a private one
    iptables              # partitions in the cluster tests (a chain of their own on lo)
)
# Scanners: libraries the worker's built-in checks and scanner
# clients link, and the real daemons the scanner tests start on loopback.
# Debian ships clamd without signatures: the tests write their own EICAR
# .ndb; spamd runs with -L (offline) and rspamd with a temp config dir.
scanner_pkgs=(
    libarchive-dev        # archives inside mail (zip, 7z, rar, tar, gz...) for banned checks
    libmagic-dev          # real file type vs the declared one (one magic_t per thread)
    libpcre2-dev          # banned-name patterns
    libjansson-dev        # rspamd's JSON replies (docs/architecture.md, dependencies)
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
)
# Fuzzing (tests/fuzz, docs/fuzzing.md): clang and libFuzzer's runtime for
# the `fuzz` preset that tests/run.sh builds; ASan/UBSan come with gcc.
fuzz_pkgs=(
    clang                 # clang-14 on Debian 12
    libclang-rt-14-dev    # libFuzzer + sanitizer runtimes for clang-14 (-fsanitize=fuzzer)
)

if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix asks what kind of mail system this is; the tests run their own
# instances with their own config_directory, so the system one stays unconfigured.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}" "${scanner_pkgs[@]}" "${bench_pkgs[@]}" "${fuzz_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts redis-server from the package; the tests run their own instances.
if command -v service >/dev/null 2>&1; then
    service redis-server stop >/dev/null 2>&1 || true
    service postfix stop >/dev/null 2>&1 || true
    # Likewise clamd, spamd, rspamd, amavisd-new, prometheus and postgresql: tests start their own on loopback.
    for svc in clamav-daemon clamav-freshclam spamd spamassassin rspamd amavis prometheus postgresql; do
        service "$svc" stop >/dev/null 2>&1 || true
    done
fi
echo "install-deps: all packages present"
