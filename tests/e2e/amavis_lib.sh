# shellcheck shell=bash
# amavis_lib.sh - a private amavisd-new (Debian's package) for the tests that
# compare sluice with it (t_lookup_amavis.sh) and for the benchmarks
# (tests/bench/bench.sh), on top of lib.sh. Source lib.sh first.
#
#   amavis_start MODE SESSIONS SINK-PORT
#                  amavisd-new in the foreground on a free loopback port
#                  (AMAVIS_PORT), $max_servers = SESSIONS, reinjecting and
#                  notifying into 127.0.0.1:SINK-PORT; waits until it
#                  answers LHLO. MODE:
#                    plain  no virus, spam, banned or header checks
#                    clamd  @av_scanners = the test's clamd (CONTSCAN over
#                           CLAMD_SOCK, Debian's ClamAV-clamd entry); spam
#                           checks bypassed
#                    sa     SpamAssassin in-process (local tests only, as
#                           spamd -L); virus checks bypassed
#                  Returns 1 (and says why) when it does not answer LHLO
#                  within AMAVIS_WAIT seconds (default 120).
#   amavis_stop    TERM its process group, KILL after 10 s
#   amavis_lhlo_ok true when AMAVIS_PORT answers LHLO with "250 "
#
# Settings, read by amavis_start:
#   AMAVIS_BIN         the daemon (default: amavisd-new or amavisd on PATH)
#   AMAVIS_SQL_DSN     a DBI data source for @lookup_sql_dsn (amavis' SQL
#                      lookups: users, policy, mailaddr, wblist), e.g.
#                      "DBI:Pg:dbname=mail_log;host=127.0.0.1;port=5432";
#                      AMAVIS_SQL_USER (default postgres), AMAVIS_SQL_PASSWORD
#   AMAVIS_CONF_EXTRA  Perl lines added at the end of amavisd.conf: they
#                      override the defaults below (levels, destinies,
#                      @local_domains_maps, $recipient_delimiter ...)
#
# The defaults: $sa_tag_level_deflt 2.0, $sa_tag2_level_deflt and
# $sa_kill_level_deflt 6.31, $final_spam_destiny D_PASS, every domain local
# (@local_domains_maps = (1)), no database, no syslog: the log goes to
# AMAVIS_LOG (level AMAVIS_LOG_LEVEL, default 0). The daemon runs as user
# amavis (nobody when there is none); its files live in
# $E2E_TMP/amavis.MODE.SESSIONS, the configuration in a directory of its
# own that amavis cannot write (amavisd-new refuses one it could). It is
# started with e2e_spawn and registered in E2E_SINK_PIDS, so lib.sh's EXIT
# trap stops it, pass or fail. The system service is never used.

# shellcheck disable=SC2034 # AMAVIS_DIR, AMAVIS_LOG ... are for the callers
AMAVIS_BIN=${AMAVIS_BIN:-$(command -v amavisd-new || command -v amavisd || true)}
AMAVIS_PORT=
AMAVIS_PID=
AMAVIS_LOG=
AMAVIS_DIR=

amavis_start() {
    local mode=$1 s=$2 sink=$3 adir auser virus=1 spam=1 av='' sql=''
    [ -n "$AMAVIS_BIN" ] || fail "amavisd-new is not installed (deploy/install-deps.sh --test)"
    adir=$E2E_TMP/amavis.$mode.$s
    AMAVIS_DIR=$adir
    mkdir -p "$adir/tmp" "$adir/db" "$adir/var"
    auser=$(id -un amavis 2>/dev/null || echo nobody)
    chown -R "$auser" "$adir"
    # amavisd-new refuses a configuration in a directory it could write to
    mkdir -p "$adir/etc"
    AMAVIS_PORT=$(free_port)
    AMAVIS_LOG=$adir/amavisd.log
    case $mode in
    clamd)
        virus=0
        av="['ClamAV-clamd', \\&ask_daemon, [\"CONTSCAN {}\\n\", '$CLAMD_SOCK'],
    qr/\\bOK\$/m, qr/\\bFOUND\$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND\$/m ]" ;;
    sa) spam=0 ;;
    esac
    if [ -n "${AMAVIS_SQL_DSN:-}" ]; then
        sql="@lookup_sql_dsn = (['$AMAVIS_SQL_DSN', '${AMAVIS_SQL_USER:-postgres}', '${AMAVIS_SQL_PASSWORD:-}']);"
    fi
    cat >"$adir/etc/amavisd.conf" <<EOF
use strict;
\$MYHOME = '$adir';
\$TEMPBASE = '$adir/tmp';
\$db_home = '$adir/db';
\$helpers_home = '$adir/var';
\$pid_file = '$adir/var/amavisd.pid';
\$lock_file = '$adir/var/amavisd.lock';
\$daemon_user = '$auser';
\$daemon_group = '$(id -gn "$auser")';
\$myhostname = 'localhost';
\$mydomain = 'localdomain';
\$max_servers = $s;
\$inet_socket_bind = '127.0.0.1';
\$inet_socket_port = $AMAVIS_PORT;
@inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$sink';
\$notify_method = \$forward_method;
@local_domains_maps = (1);
@bypass_virus_checks_maps = ($virus);
@bypass_spam_checks_maps = ($spam);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
@av_scanners = ($av);
@av_scanners_backup = ();
\$sa_local_tests_only = 1;
\$sa_tag_level_deflt = 2.0;
\$sa_tag2_level_deflt = 6.31;
\$sa_kill_level_deflt = 6.31;
\$final_spam_destiny = D_PASS;
\$enable_db = 0;
\$enable_global_cache = 0;
\$do_syslog = 0;
\$LOGFILE = '$AMAVIS_LOG';
\$log_level = ${AMAVIS_LOG_LEVEL:-0};
$sql
${AMAVIS_CONF_EXTRA:-}
1;
EOF
    e2e_spawn "$adir/amavisd.out" "$AMAVIS_BIN" -c "$adir/etc/amavisd.conf" foreground
    AMAVIS_PID=$E2E_SPAWNED_PID
    E2E_SINK_PIDS+=("$AMAVIS_PID")
    # SpamAssassin compiles its rules at start-up: that can take a while
    if ! wait_for "${AMAVIS_WAIT:-120}" amavis_lhlo_ok; then
        say "amavisd-new ($mode) did not answer LHLO on 127.0.0.1:$AMAVIS_PORT within ${AMAVIS_WAIT:-120} s (see $adir/amavisd.out, $AMAVIS_LOG)"
        return 1
    fi
    say "amavisd-new ($mode, \$max_servers $s) answers LHLO on 127.0.0.1:$AMAVIS_PORT"
}

# amavis_lhlo_ok: the LHLO reply of AMAVIS_PORT ends with "250 ...".
amavis_lhlo_ok() {
    port_listening 127.0.0.1 "$AMAVIS_PORT" || return 1
    local reply
    # shellcheck disable=SC2016 # $1 and $l belong to the inner bash
    reply=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "LHLO bench.test\r\n" >&3
        while IFS= read -r -t 8 l <&3; do printf "%s\n" "$l"; case $l in 250\ *) break ;; esac; done
        printf "QUIT\r\n" >&3' _ "$AMAVIS_PORT" 2>/dev/null) || return 1
    printf '%s' "$reply" | grep -q '^250 '
}

amavis_stop() {
    [ -n "$AMAVIS_PID" ] || return 0
    e2e_kill_group "$AMAVIS_PID" 10
    AMAVIS_PID=
}
