#!/usr/bin/env bash
# t_config_print.sh - `sluice config` prints a file that loads back and
# means the same, secrets included, checked against a real Redis that asks
# for a password.
#
# Proves: sizes and durations print as an operator writes them (50M, 6d,
# 15m, 8m), and the printed file, read back, prints the same again; a
# redis.url written with its password prints as env:SLUICE_REDIS_URL, with
# neither the password nor a mask ("***", which would load back as the
# password and fail AUTH: shown against the real Redis); the printed file
# without the variable stops at start (78) naming it, and with the
# variable set it runs: a `sluice all` started from the printed file
# registers in the password-protected Redis and `sluice status` (from the
# printed file too) sees it alive (exit 0); a file: reference prints as
# written and reaches Redis as well.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init 120
need_cmd redis-server redis-cli

# run ARGS...: the real binary in $E2E_TMP; sets rc, out, err
run() {
    rc=0
    (cd "$E2E_TMP" && timeout 20 "$SLUICE_BIN_REAL" "$@") >"$E2E_TMP/out" 2>"$E2E_TMP/err" || rc=$?
    out=$(cat "$E2E_TMP/out")
    err=$(cat "$E2E_TMP/err")
}

# 1. units, and print -> load -> print
run config
[ "$rc" -eq 0 ] || fail "config: exit $rc: $err"
for want in '  max_message_size: 50M' '  ttl: 6d' '  pending_timeout: 15m' '  timeout: 8m' \
    '    max_size: 512k' '  ident: "sluice"'; do
    grep -qxF -- "$want" <<<"$out" || fail "config does not print '$want': $out"
done
printf '%s\n' "$out" >"$E2E_TMP/printed.yaml"
run -c printed.yaml config
[ "$rc" -eq 0 ] || fail "the printed configuration does not load: $err"
[ "$(tail -n +2 "$E2E_TMP/printed.yaml")" = "$(tail -n +2 <<<"$out")" ] ||
    fail "print -> load -> print differs: $(diff <(tail -n +2 "$E2E_TMP/printed.yaml") <(tail -n +2 <<<"$out") | head -n 5)"
ok "sizes and durations as written (50M, 6d, 15m, 8m, 512k); the printed file prints the same again"

# 2. a Redis that asks for a password
PASSWORD="s3cret-$RANDOM"
REDIS_PORT=$(free_port)
e2e_spawn "$E2E_TMP/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --requirepass "$PASSWORD"
E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
wait_port 127.0.0.1 "$REDIS_PORT" 10 || fail "redis-server does not listen on :$REDIS_PORT"
URL="redis://:$PASSWORD@127.0.0.1:$REDIS_PORT"
LISTEN=127.0.0.1:$(free_port)

run -o "redis.url=$URL" -o "frontend.listen=$LISTEN" config -n
[ "$rc" -eq 0 ] || fail "config -n: exit $rc: $err"
grep -qxF '  url: "env:SLUICE_REDIS_URL"' <<<"$out" || fail "redis.url not printed as a reference: $out"
! grep -qF -- "$PASSWORD" <<<"$out" || fail "the password is printed"
! grep -qF '***' <<<"$out" || fail "a mask is printed"
printf '%s\n' "$out" >"$E2E_TMP/secret.yaml"
ok "a redis.url with its password prints as: $(grep 'url:' <<<"$out" | sed 's/^ *//')"

# what a mask would have done: AUTH with the mask as the password
run -o "redis.url=redis://:***@127.0.0.1:$REDIS_PORT" status
[ "$rc" -eq 69 ] && grep -q 'WRONGPASS' <<<"$out" || fail "status with a masked password: exit $rc: $out"
ok "a masked password (the old print) fails AUTH: $(grep -o 'Redis AUTH: WRONGPASS[^.]*' <<<"$out")"

run -c secret.yaml status
[ "$rc" -eq 78 ] && grep -q 'env:SLUICE_REDIS_URL: the environment variable SLUICE_REDIS_URL is not set' <<<"$err" ||
    fail "printed file without SLUICE_REDIS_URL: exit $rc: $err"
ok "the printed file without the variable: exit 78, $(sed 's/^sluice: fatal: //' <<<"$err")"

# the printed file with the variable: a node registers, status sees it
export SLUICE_REDIS_URL=$URL
start_sluice -c "$E2E_TMP/secret.yaml" -o "frontend.listen=$LISTEN"
status_ok() { run -c secret.yaml status && [ "$rc" -eq 0 ]; }
wait_for 20 status_ok || fail "sluice status from the printed file: exit $rc: $out $err"
grep -q 'frontend:' <<<"$out" || fail "no frontend in status: $out"
ok "sluice all and sluice status from the printed file authenticate to Redis: $(head -n 1 <<<"$out")"
stop_sluice >/dev/null
unset SLUICE_REDIS_URL

# 3. file: reference: kept as written, resolved where used
printf '%s\n' "$URL" >"$E2E_TMP/redis.url"
chmod 600 "$E2E_TMP/redis.url"
run -o "redis.url=file:$E2E_TMP/redis.url" config -n
grep -qxF "  url: \"file:$E2E_TMP/redis.url\"" <<<"$out" || fail "file: reference not printed as written: $out"
run -o "redis.url=file:$E2E_TMP/redis.url" status
[ "$rc" -eq 1 ] && ! grep -q 'unreachable' <<<"$out" || fail "status with a file: reference: exit $rc: $out $err"
ok "redis.url: file:... prints as written and reaches Redis (status: no node alive, exit 1)"
