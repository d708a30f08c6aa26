#!/usr/bin/env bash
# t_cli.sh - the command line's contract, which scripts and unit files
# depend on: every command's exit status and first words, without Postfix
# and without starting a role (each role command stops at a check).
#
# Proves: help, --help and -h print the same text on stdout (exit 0), no
# command prints it on stderr (64); -h and --version win over any other
# argument; unknown commands, options, stray arguments and -o without
# '=' are usage errors (64), for drill and check-postfix too (their own
# options come after their name); version names libzmq and libevent; keygen
# needs a NAME (64), writes NAME.key/NAME.pub, never overwrites (73);
# config and config -n print YAML, -o takes effect, a wrong key, value or
# file is 78 naming it; status without redis.url is 78, with an
# unreachable Redis 69 (text and JSON say degraded); a role with an
# unknown security.user is 77, with a tcp:// link and no keys 78, with a
# frontend.listen it cannot bind 71 (with and without -F), and with no
# configuration file it says it runs the built-in defaults.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 60

# run ARGS...: runs sluice (the real binary: the root wrapper would add an
# -o) in $E2E_TMP; sets rc, out and err.
run() {
    rc=0
    (cd "$E2E_TMP" && timeout 10 "$SLUICE_BIN_REAL" "$@") >"$E2E_TMP/out" 2>"$E2E_TMP/err" || rc=$?
    out=$(cat "$E2E_TMP/out")
    err=$(cat "$E2E_TMP/err")
}

# expect RC STDOUT_ERE STDERR_ERE ARGS...: an empty ERE means "empty".
expect() {
    local want_rc=$1 want_out=$2 want_err=$3
    shift 3
    run "$@"
    [ "$rc" -eq "$want_rc" ] || fail "sluice $*: exit $rc, expected $want_rc; stderr: $err"
    if [ -z "$want_out" ]; then
        [ -z "$out" ] || fail "sluice $*: unexpected stdout: $out"
    else
        grep -qE -- "$want_out" <<<"$out" || fail "sluice $*: stdout does not match '$want_out': $out"
    fi
    if [ -z "$want_err" ]; then
        [ -z "$err" ] || fail "sluice $*: unexpected stderr: $err"
    else
        grep -qE -- "$want_err" <<<"$err" || fail "sluice $*: stderr does not match '$want_err': $err"
    fi
}

# ---- help, version, usage errors
run help
help_text=$out
[ "$rc" -eq 0 ] && grep -q '^Usage: sluice \[-c FILE\]' <<<"$help_text" || fail "help: exit $rc: $out"
for args in --help -h "-h bogus" "bogus -h" "keygen --help" "drill --help" "check-postfix -h"; do
    # shellcheck disable=SC2086
    run $args
    [ "$rc" -eq 0 ] && [ "$out" = "$help_text" ] && [ -z "$err" ] ||
        fail "sluice $args: exit $rc, not the help text on stdout"
done
run
[ "$rc" -eq 64 ] && [ -z "$out" ] && [ "$err" = "$help_text" ] ||
    fail "no command: exit $rc, not the help text on stderr"
ok "help, --help, -h: the usage on stdout, exit 0; no command: on stderr, exit 64"

expect 0 '^sluice [0-9.]+ \(libzmq [0-9.]+, libevent [0-9.a-z-]+\)$' '' version
expect 0 '^sluice [0-9.]+ \(libzmq' '' --version
expect 0 '^sluice [0-9.]+ \(libzmq' '' config --version
expect 64 '' "^sluice: unknown command 'bogus'$" bogus
expect 64 '' "^sluice: unexpected argument 'extra'$" bogus extra
expect 64 '' "^sluice: unexpected argument 'extra'$" help extra
expect 64 '' "^sluice: unexpected argument 'extra'$" config extra
expect 64 '' "invalid option -- 'x'" -x
expect 64 '' "unrecognized option '--frob'" --frob
expect 64 '' "^Try 'sluice --help'.$" --frob
expect 64 '' '^sluice: -o foo: expected KEY=VALUE$' -o foo all
expect 64 '' '^sluice: drill needs --via HOST:PORT' drill
expect 64 '' "^sluice: drill: bad option '--frob'$" drill --frob
expect 64 '' "^sluice: unexpected argument 'extra'$" check-postfix extra
ok "version; unknown command, option, argument and -o without '=': exit 64"

# ---- keygen
expect 64 '' '^sluice: keygen needs a NAME \(writes NAME.key and NAME.pub\)$' keygen
expect 64 '' "^sluice: unexpected argument 'b'$" keygen a b
expect 0 '^node.key: secret key \(mode 0600' '' keygen node
[ "$(stat -c %a "$E2E_TMP/node.key")" = 600 ] && [ -s "$E2E_TMP/node.pub" ] ||
    fail "keygen: node.key mode $(stat -c %a "$E2E_TMP/node.key")"
expect 73 '' '^sluice: keygen: node.key: File exists' keygen node
expect 73 '' '^sluice: keygen: /nonexistent/n.key: ' keygen /nonexistent/n
ok "keygen: NAME needed (64), key pair written, never overwritten (73)"

# ---- config
expect 0 '^frontend:' '' config
expect 0 'concurrency: 10' '' -o origins.default.concurrency=10 config -n
expect 0 'concurrency: 10' '' config -n -o origins.default.concurrency=10
expect 78 '' '^sluice: fatal: -o no.such.key=1: no.such.key: unknown key$' -o no.such.key=1 config
expect 78 '' 'origins.default.concurrency: "abc" is not a number' \
    -o origins.default.concurrency=abc config
expect 78 '' '^sluice: fatal: /nonexistent.yaml: cannot open: ' -c /nonexistent.yaml config
printf 'log: [\n' >"$E2E_TMP/bad.yaml"
expect 78 '' '^sluice: fatal: bad.yaml:2:1: YAML syntax error' -c bad.yaml config
ok "config: YAML on stdout, -o applied; a wrong key, value or file: exit 78 naming it"

# ---- status (the e2e cluster tests read a live registry)
expect 78 '' '^sluice: status reads the cluster registry in Redis: set redis.url' status
expect 78 '' '^sluice: fatal: -o redis.url=bogus://x: redis.url: ' -o redis.url=bogus://x status
port=$(free_port)
expect 69 "^sluice status: DEGRADED$" '' -o "redis.url=redis://127.0.0.1:$port" status
grep -q "registry unreachable (127.0.0.1:$port/0): cannot connect to Redis" <<<"$out" ||
    fail "status, Redis down: $out"
expect 69 '^\{"state":"degraded","reasons":\["registry unreachable' '' \
    -o "redis.url=redis://127.0.0.1:$port" status --json
ok "status: no redis.url 78, a bad one 78, Redis unreachable 69 (text and JSON)"

# ---- roles stop at their checks, before binding anything
if [ "$(id -u)" -eq 0 ]; then     # the user is only looked up when there is root to drop
    expect 77 '' 'fatal: security.user: no such user: no-such-user-e2e' \
        all -o log.target=stderr -o security.user=no-such-user-e2e
else
    say "not root: the unknown security.user (77) is not tried"
fi
expect 78 '' 'fatal: \(configuration\): security.secret_key_file: required' \
    worker -o log.target=stderr -o security.user=root -o broker.endpoints=tcp://127.0.0.1:1
grep -q 'no configuration file: built-in defaults (the standard single-node Postfix setup)' \
    <<<"$err" || fail "no word of the built-in defaults: $err"
expect 78 '' 'fatal: \(configuration\): security.secret_key_file: required' \
    broker -o log.target=stderr -o security.user=root -o broker.listen=tcp://127.0.0.1:1
for f in "" -F; do
    # shellcheck disable=SC2086
    expect 71 '' 'fatal: frontend.listen: 256.0.0.1:1: ' \
        frontend $f -o log.target=stderr -o security.user=root -o frontend.listen=256.0.0.1:1
done
ok "roles: unknown user 77 (as root), missing keys 78, frontend.listen not bindable 71 (with and without -F)"
