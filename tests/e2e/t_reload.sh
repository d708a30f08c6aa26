#!/usr/bin/env bash
# t_reload.sh - SIGHUP reloads the configuration under load, through a real
# Postfix and a real spamd (docs/operations.md, "Reloading").
#
# Proves: GTUBE (score 1000) passes untagged while the spam levels are
# 5000; the file is rewritten with levels of 3 and log.ident amavis and the
# master gets SIGHUP while a message is being scanned on the test's own
# LMTP connection: that message finishes under the old levels (untagged),
# the next one on the same connection and the next one through Postfix
# get the new verdict (X-Spam-Flag: YES, the subject tag, "Passed SPAM"),
# and the log lines carry the new ident at once; a file that does not
# load is logged with its file, line and key, the running settings stay
# (the next message is still tagged) and the process lives on; a changed
# frontend.listen is logged as needing a restart and sluice keeps serving
# the old port. Throughout, the test's LMTP connection is never dropped,
# the child is never restarted, and Postfix defers nothing. Last, the
# child is killed: the one the master starts reads the file as it is now
# (the new levels hold), not the master's copy from the start.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 175
need_root
need_cmd swaks spamd

start_spamd
# free ports, not the standard ones: the file names them, and a port that
# another program takes meanwhile would not be told from sluice's
PF_FILTER_PORT=$(free_port)
PF_REINJECT_PORT=$(free_port)
start_postfix
CONF=$E2E_TMP/sluice.yaml

# write_conf LEVEL [LISTEN-PORT [IDENT]]: the configuration file sluice
# reads (no -o for what the test changes: an -o would win over the file)
write_conf() {
    cat >"$CONF" <<EOF
frontend:
  listen: 127.0.0.1:${2:-$PF_FILTER_PORT}
log:
  ident: ${3:-sluice}
origins:
  default:
    reinject: client:$PF_REINJECT_PORT
scanners:
  spamd:
    servers: [$SPAMD_ADDR]
policy:
  final_spam_destiny: pass
  spam_tag_level: $1
  spam_tag2_level: $1
  spam_kill_level: $1
EOF
}

# One LMTP connection held by the test for the whole run, as Postfix's
# connection cache holds one: a reload must not drop it.
lmtp_say() { printf '%s\r\n' "$1" >&3; }
# lmtp_reply: the last line of the next (multi-line) reply
lmtp_reply() {
    local line
    while :; do
        IFS= read -r -t 60 line <&3 || fail "the test's LMTP connection to sluice was dropped (or timed out)"
        line=${line%$'\r'}
        case $line in [0-9][0-9][0-9]-*) continue ;; esac
        printf '%s\n' "$line"
        return 0
    done
}
lmtp_expect() {
    local got
    got=$(lmtp_reply)
    case $got in "$1"*) ;; *) fail "LMTP: expected '$1...', got '$got'" ;; esac
}
lmtp_open() {
    exec 3<>"/dev/tcp/127.0.0.1/$PF_FILTER_PORT" || fail "cannot connect to sluice"
    lmtp_expect 220
    lmtp_say "LHLO reload.e2e.test"
    lmtp_expect 250
}
# lmtp_data FILE: one transaction up to the final dot; its reply is read
# with lmtp_reply, so the test can act while the message is scanned
lmtp_data() {
    lmtp_say "MAIL FROM:<$E2E_FROM>"
    lmtp_expect 250
    lmtp_say "RCPT TO:<$E2E_RCPT>"
    lmtp_expect 250
    lmtp_say DATA
    lmtp_expect 354
    sed 's/^\./../' "$1" >&3
    lmtp_say .
}

# delivered_file NAME: the Maildir copy of the message mk_msg made as NAME
delivered_file() { grep -lF "Message-ID: <$1." $(maildir_files) 2>/dev/null | head -n 1; }
delivered() { [ -n "$(delivered_file "$1")" ]; }
# expect_tagged NAME yes|no
expect_tagged() {
    local f flag
    wait_for 60 delivered "$1" || fail "$1 was not delivered"
    f=$(delivered_file "$1")
    flag=$(mail_headers "$f" | grep -c '^X-Spam-Flag: YES$' || true)
    if [ "$2" = yes ]; then
        [ "$flag" -eq 1 ] && mail_headers "$f" | grep -q '^Subject: \*\*\*SPAM\*\*\* ' ||
            { mail_headers "$f" >&2; fail "$1: not tagged as spam"; }
        ok "$1: tagged: $(mail_headers "$f" | grep '^Subject:')"
    else
        [ "$flag" -eq 0 ] && ! mail_headers "$f" | grep -q '^X-Spam-' ||
            { mail_headers "$f" >&2; fail "$1: tagged, expected no X-Spam-* headers"; }
        ok "$1: untagged ($(mail_headers "$f" | grep '^Subject:'))"
    fi
}
send_postfix() {
    local m
    m=$(mk_msg "$1" "offer $1" "$(gtube)")
    timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --helo client.e2e.test \
        --from "$E2E_FROM" --to "$E2E_RCPT" --data "$m" --timeout 30 >"$E2E_TMP/swaks.$1.log" 2>&1 ||
        { cat "$E2E_TMP/swaks.$1.log" >&2; fail "swaks could not submit $1"; }
}
# log_more ERE N: more than N lines match (wait_for runs it again and again)
log_more() { [ "$(sluice_log_count "$1")" -gt "$2" ]; }
hup() {
    local before
    before=$(sluice_log_count "$1")
    kill -HUP "$E2E_SLUICE_PID"
    wait_for 10 log_more "$1" "$before" || fail "after SIGHUP: no log line /$1/"
}

write_conf 5000
# every scan takes 2 s more, so that a message is still being scanned when
# the reload comes
SLUICE_TEST_WORKER_DELAY_MS=2000 E2E_SLUICE_PORT=$PF_FILTER_PORT start_sluice -c "$CONF"
lmtp_open

# 1. the old levels: GTUBE passes untagged
send_postfix before
expect_tagged before no
sluice_log_has 'Passed CLEAN \{RelayedInbound\}, .*Hits: [0-9]{3,4}(\.[0-9]+)?, ' || fail "no Passed CLEAN line with GTUBE's hits"

# 2. the reload while a message is scanned on the held connection
m=$(mk_msg inflight "offer inflight" "$(gtube)")
lmtp_data "$m"
sleep 1 # the worker holds it now (2 s test delay)
write_conf 3 "$PF_FILTER_PORT" amavis
hup 'SIGHUP: configuration reloaded from .*changed log\.ident, policy\.spam_tag_level, policy\.spam_tag2_level, policy\.spam_kill_level'
lmtp_expect "250 2.0.0 from MTA"
expect_tagged inflight no
ok "the message in flight during the reload finished under the old levels"
sluice_log_has 'amavis\[[0-9]+\]: ' || fail "no line with the new log.ident after the reload"
ok "log.ident took effect at once: $(grep -E 'amavis\[[0-9]+\]: ' "$SLUICE_LOG" | head -n 1 | cut -c1-100)"

# 3. the new levels: the next message on the same connection, and through Postfix
m=$(mk_msg after "offer after" "$(gtube)")
lmtp_data "$m"
lmtp_expect "250 2.0.0 from MTA"
expect_tagged after yes
send_postfix afterpf
expect_tagged afterpf yes
sluice_log_has 'amavis\[[0-9]+\]: \([^)]+\) Passed SPAM \{RelayedTaggedInbound\}, .*Hits: [0-9]{3,4}' ||
    fail "no Passed SPAM line after the reload"
ok "after the reload: $(grep -E 'Passed SPAM' "$SLUICE_LOG" | tail -n 1 | sed 's/.*amavis\[[0-9]*\]: //' | cut -c1-90)"

# 4. a file that does not load: named with file, line and key; the running
# settings stay
printf 'policy:\n  final_spam_destiny: pass\n  spam_kill_level: lots\n' >"$CONF"
hup "error: SIGHUP: configuration not reloaded, the running one stays: $(ere_quote "$CONF"):3: policy\.spam_kill_level: \"lots\" is not a level"
ok "bad file: $(grep -E 'configuration not reloaded' "$SLUICE_LOG" | tail -n 1 | sed 's/.*error: //')"
m=$(mk_msg broken "offer broken" "$(gtube)")
lmtp_data "$m"
lmtp_expect "250 2.0.0 from MTA"
expect_tagged broken yes
ok "the running settings stayed in force"

# 5. a key that needs a restart: logged, the old port keeps serving
other=$(free_port)
write_conf 3 "$other" amavis
hup "warning: SIGHUP: frontend\.listen changed \(\"127\.0\.0\.1:$PF_FILTER_PORT\" -> \"127\.0\.0\.1:$other\"\) and needs a restart; the running value stays"
ok "$(grep -E 'frontend\.listen changed' "$SLUICE_LOG" | tail -n 1 | sed 's/.*warning: //')"
port_listening 127.0.0.1 "$other" && fail "sluice listens on the new port without a restart"
send_postfix listen
expect_tagged listen yes

# throughout: the held connection answers, nothing was restarted, dropped or deferred
lmtp_say QUIT
lmtp_expect 221
exec 3<&-
sluice_alive || fail "sluice is not running"
n=$(sluice_log_count 'master: sluice all child pid [0-9]+ started')
[ "$n" -eq 1 ] || fail "the child was started $n times"
[ "$(maillog_count 'status=deferred')" -eq 0 ] || fail "Postfix deferred: $(maillog_grep status=deferred | head -n 3)"
[ "$(maillog_count 'lost connection|Connection refused|conversation with .* timed out')" -eq 0 ] ||
    fail "Postfix lost its connection: $(maillog_grep 'lost connection|refused|timed out' | head -n 3)"
n=$(maillog_count "relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent")
[ "$n" -eq 3 ] || fail "expected 3 amavisfeed deliveries by Postfix, found $n"
ok "one connection held across three reloads, one child, Postfix: 3 sent through sluice, nothing deferred"

# 6. a child the master starts after the reloads (its predecessor killed)
# reads the file as it is now, not the master's copy from the start: the
# new levels hold, and the listen address still needs a restart
child=$(sed -n 's/.*master: sluice all child pid \([0-9]*\) started.*/\1/p' "$SLUICE_LOG" | tail -n 1)
kill -KILL "$child"
wait_for 20 log_more 'master: sluice all child pid [0-9]+ started' 1 ||
    fail "the master did not start a new child"
wait_for 10 sluice_log_has "warning: child start: frontend\.listen changed" ||
    fail "the new child did not say that frontend.listen needs a restart"
send_postfix restarted
expect_tagged restarted yes
ok "a new child runs with the file as reloaded, not with the master's start-up copy"
