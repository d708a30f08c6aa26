#!/usr/bin/env bash
# t_lookup_ldap.sh - per-recipient policy from LDAP, amavisd-new's way
# (object class amavisAccount, amavis.schema), read by `sluice lookup`
# from a private slapd (ldap_lib.sh).
#
# Proves:
#   1. the keys and their order: an address entry wins over its domain
#      (@sub.example.com), the parent domains (@.example.com) and the
#      catch-all (@.); user+ext@domain finds user@domain's entry; a field
#      the most specific entry lacks comes from the next entry that has
#      it (levels, spam lover, bypass, size limit); cn is the policy's
#      name; mail compared without case;
#   2. amavisLocal: an entry without it makes the recipient local
#      ("local: TRUE"), the catch-all's missing one says nothing, an
#      explicit FALSE stays;
#   3. the sender lists: amavisBlacklistSender and amavisWhitelistSender
#      of the first entry that has each (a less specific entry's list is
#      shadowed), address and @domain values, @.domain for the domain and
#      its subdomains, "<>" for the null sender, without case;
#   4. keys escaped as filter values: "*" and "(" in an address are no
#      wildcard and no syntax error;
#   5. lookup.ldap.filter with two "(attr=%m)" (mail or uid);
#      lookup.ldap.base with %d: the recipient's domain's subtree, a
#      domain without one is no match (exit 0, found: no);
#   6. binds: the rootdn with its password (as is and as file:), anonymous;
#      a wrong password is exit 75 naming LDAP;
#   7. slapd stopped: exit 75 with an error naming LDAP; slapd frozen
#      (SIGSTOP): exit 75 within lookup.timeout; slapd back: answers;
#   8. the same directory behind sluice all (LMTP from swaks, reinjection
#      into smtp-sink, as t_scan_spam.sh): in one transaction from a
#      sender @sub.example.com blacklists, other@sub.example.com rejects
#      it as SPAM (554) and user@sub.example.com (its own list shadows
#      the domain's) passes; a sender user@sub.example.com blacklists is
#      passed as SPAM to it (a spam lover); the log names the policies
#      (ldap:<cn>); slapd stopped: a recipient not in the cache is
#      tempfailed (4xx, "policy lookup failed"), a cached one passes;
#      slapd back: the worker connects again and the recipient passes;
#   9. through a private Postfix (content_filter to sluice): a message for
#      a recipient whose policy cannot be read (slapd stopped) is deferred
#      by Postfix (4xx, "policy lookup failed"), not delivered; slapd
#      back and the queue flushed, it is delivered once, under the
#      catch-all's policy.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ldap_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ldap_lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"

e2e_init 150
need_root
need_cmd smtp-sink swaks

start_ldap
cat >"$E2E_TMP/policy.ldif" <<EOF
dn: cn=user-sub,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: user-sub
sn: user
mail: user@sub.example.com
amavisSpamTag2Level: 3.0
amavisSpamLover: TRUE
amavisBlacklistSender: spammer@bad.example
amavisBlacklistSender: @evil.example

dn: cn=dom-sub,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: dom-sub
sn: dom
mail: @sub.example.com
amavisSpamKillLevel: 8
amavisBypassSpamChecks: FALSE
amavisWhitelistSender: friend@good.example
amavisBlacklistSender: foe@bad.example

dn: cn=dom-parent,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: dom-parent
sn: dom
mail: @.example.com
amavisSpamTagLevel: -2
amavisSpamKillLevel: 12
amavisMessageSizeLimit: 1000000
amavisWhitelistSender: @.partner.example
amavisWhitelistSender: <>

dn: cn=catchall,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: catchall
sn: all
mail: @.
amavisSpamKillLevel: 20
amavisSpamTag2Level: 6.31
amavisVirusLover: FALSE

dn: cn=plain,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: plain
sn: plain
mail: plain@example.com
amavisSpamLover: TRUE
amavisBypassVirusChecks: TRUE
amavisLocal: FALSE
amavisSpamTag2Level: 4.5
amavisSpamQuarantineTo: spam-quarantine@example.com

dn: cn=weird,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: weird
sn: weird
mail: we*rd(1)@example.com
amavisSpamKillLevel: 99

dn: cn=mixed,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: mixed
sn: mixed
mail: MixedCase@Example.COM
amavisSpamKillLevel: 7

dn: cn=alias,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: alias
sn: alias
mail: real@example.com
uid: alias@example.com
amavisSpamKillLevel: 33

dn: ou=example.org,$LDAP_BASE
objectClass: organizationalUnit
ou: example.org

dn: cn=org-dom,ou=example.org,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: org-dom
sn: org
mail: @example.org
amavisSpamKillLevel: 42
EOF
ldap_add_ldif "$E2E_TMP/policy.ldif" >/dev/null
say "amavisAccount entries added"

export SLUICE_TEST_LDAP_PW=$LDAP_BIND_PW
LK_ARGS=(-o "lookup.ldap.uri=$LDAP_URI" -o "lookup.ldap.base=$LDAP_BASE"
    -o "lookup.ldap.bind_dn=$LDAP_BIND_DN" -o "lookup.ldap.bind_password=env:SLUICE_TEST_LDAP_PW"
    -o lookup.timeout=2)
OUT=$E2E_TMP/lookup.out
ERR=$E2E_TMP/lookup.stderr.log # lib.sh looks for sanitizer reports in *.log

# lk [-o K=V]... RCPT [--sender S]...: sluice lookup into $OUT/$ERR, its
# status in LK_RC (never fails by itself).
lk() {
    local opts=()
    while [ "${1:-}" = -o ]; do
        opts+=(-o "$2")
        shift 2
    done
    LK_RC=0
    timeout 30 "$SLUICE_BIN" "${LK_ARGS[@]}" "${opts[@]}" lookup "$@" >"$OUT" 2>"$ERR" || LK_RC=$?
}

# expect RCPT LINE...: the last lookup (of RCPT) exited 0 and printed each
# LINE (exactly, as a whole line).
expect() {
    local rcpt=$1 line
    shift
    [ "$LK_RC" -eq 0 ] || { cat "$ERR" >&2; fail "$rcpt: sluice lookup exited $LK_RC"; }
    for line in "$@"; do
        grep -qxF -- "$line" "$OUT" || { cat "$OUT" >&2; fail "$rcpt: no line '$line'"; }
    done
}

# expect_not RCPT ERE: no line of the last lookup's output matches ERE.
expect_not() {
    ! grep -qE -- "$2" "$OUT" || { cat "$OUT" >&2; fail "$1: a line matches '$2'"; }
}

# ---- 1. keys, order, per-field fallback ------------------------------------
r=user+foo@sub.example.com
lk "$r"
expect "$r" "recipient: $r" "source: ldap" "found: yes" "key: user@sub.example.com" \
    "policy: user-sub" "spam_tag_level: -2" "spam_tag2_level: 3.0" "spam_kill_level: 8" \
    "spam_lover: TRUE" "bypass_spam_checks: FALSE" "virus_lover: FALSE" \
    "message_size_limit: 1000000" "local: TRUE"
ok "$r: its address entry (extension stripped), then @sub.example.com, @.example.com, @."
r=other@sub.example.com
lk "$r"
expect "$r" "found: yes" "key: @sub.example.com" "policy: dom-sub" "spam_kill_level: 8" \
    "spam_tag_level: -2" "spam_tag2_level: 6.31" "local: TRUE"
expect_not "$r" '^spam_lover:'
ok "$r: the domain's entry, the parent's and the catch-all's fields under it"
r=someone@www.Example.com
lk "$r"
expect "$r" "key: @.example.com" "policy: dom-parent" "spam_kill_level: 12" "local: TRUE"
ok "$r: @.example.com covers the subdomains"
r=nobody@elsewhere.org
lk "$r"
expect "$r" "found: yes" "key: @." "policy: catchall" "spam_kill_level: 20" "virus_lover: FALSE"
expect_not "$r" '^local:'
ok "$r: the catch-all @., whose missing amavisLocal leaves local unset"
r=plain+tag@example.com
lk "$r"
expect "$r" "key: plain@example.com" "policy: plain" "spam_lover: TRUE" \
    "bypass_virus_checks: TRUE" "local: FALSE" "spam_tag2_level: 4.5" "spam_kill_level: 12" \
    "spam_quarantine_to: spam-quarantine@example.com"
ok "$r: amavisLocal FALSE kept, bypass and lover flags, quarantine address"
r=mixedcase@example.com
lk "$r"
expect "$r" "key: mixedcase@example.com" "policy: mixed" "spam_kill_level: 7"
ok "$r: found as MixedCase@Example.COM, and most specific"

# ---- 3. sender lists ---------------------------------------------------------
r=user@sub.example.com
lk "$r" --sender spammer@bad.example --sender SPAMMER@Bad.Example --sender x@evil.example \
    --sender x@sub.evil.example --sender foe@bad.example --sender friend@good.example \
    --sender a@partner.example --sender someone@else.example
expect "$r" "sender <spammer@bad.example>: blacklisted, boost 0" \
    "sender <SPAMMER@Bad.Example>: blacklisted, boost 0" \
    "sender <x@evil.example>: blacklisted, boost 0" \
    "sender <x@sub.evil.example>: none, boost 0" \
    "sender <foe@bad.example>: none, boost 0" \
    "sender <friend@good.example>: whitelisted, boost 0" \
    "sender <a@partner.example>: none, boost 0" \
    "sender <someone@else.example>: none, boost 0"
ok "$r: its own blacklist (address, @domain, no case), @sub.example.com's whitelist; the others shadowed"
r=other@sub.example.com
lk "$r" --sender foe@bad.example --sender spammer@bad.example --sender friend@good.example
expect "$r" "sender <foe@bad.example>: blacklisted, boost 0" \
    "sender <spammer@bad.example>: none, boost 0" \
    "sender <friend@good.example>: whitelisted, boost 0"
ok "$r: @sub.example.com's lists"
r=x@www.example.com
lk "$r" --sender a@partner.example --sender b@mx.partner.example --sender '' \
    --sender c@partner.example.net
expect "$r" "sender <a@partner.example>: whitelisted, boost 0" \
    "sender <b@mx.partner.example>: whitelisted, boost 0" \
    "sender <>: whitelisted, boost 0" \
    "sender <c@partner.example.net>: none, boost 0"
ok "$r: @.partner.example (domain and subdomains) and <> (the null sender) whitelisted"

# ---- 4. escaping -------------------------------------------------------------
r='we*rd(1)@example.com'
lk "$r"
expect "$r" "key: we*rd(1)@example.com" "policy: weird" "spam_kill_level: 99"
r='weXXrd(1)@example.com'
lk "$r"
expect "$r" "key: @.example.com" "spam_kill_level: 12"
ok "keys escaped as filter values: '*' is no wildcard, '(' no syntax error"

# ---- 5. filter and base -----------------------------------------------------
r=alias@example.com
lk "$r"
expect "$r" "key: @.example.com" "spam_kill_level: 12"
lk -o 'lookup.ldap.filter=(&(objectClass=amavisAccount)(|(mail=%m)(uid=%m)))' "$r"
expect "$r" "key: alias@example.com" "policy: alias" "spam_kill_level: 33"
ok "lookup.ldap.filter with (mail=%m) and (uid=%m): $r found by uid"
r=a@Example.ORG.
lk -o "lookup.ldap.base=ou=%d,$LDAP_BASE" "$r"
expect "$r" "found: yes" "key: @example.org" "policy: org-dom" "spam_kill_level: 42"
r=nobody@elsewhere.org
lk -o "lookup.ldap.base=ou=%d,$LDAP_BASE" "$r"
expect "$r" "found: no"
expect_not "$r" '^(key|policy|spam_kill_level):'
ok "lookup.ldap.base with %d: the domain's subtree; no subtree is no match, not an error"

# ---- 6. binds ------------------------------------------------------------------
printf '%s\n' "$LDAP_BIND_PW" >"$E2E_TMP/ldap.pw"
chmod 600 "$E2E_TMP/ldap.pw"
r=user@sub.example.com
lk -o "lookup.ldap.bind_password=file:$E2E_TMP/ldap.pw" "$r"
expect "$r" "key: user@sub.example.com"
lk -o lookup.ldap.bind_dn= -o lookup.ldap.bind_password= "$r"
expect "$r" "key: user@sub.example.com"
ok "bind as the rootdn with its password from file:, and anonymous"
printf 'wrong\n' >"$E2E_TMP/ldap.wrong"
lk -o "lookup.ldap.bind_password=file:$E2E_TMP/ldap.wrong" "$r"
[ "$LK_RC" -eq 75 ] || fail "wrong bind password: exit $LK_RC, expected 75"
grep -q 'LDAP.*Invalid credentials' "$ERR" || { cat "$ERR" >&2; fail "wrong bind password: no LDAP error"; }
ok "wrong bind password: exit 75: $(head -n 1 "$ERR")"

# ---- 7. slapd down, frozen, back ------------------------------------------------
stop_ldap
lk "$r"
[ "$LK_RC" -eq 75 ] || fail "slapd stopped: exit $LK_RC, expected 75"
grep -q 'LDAP' "$ERR" || { cat "$ERR" >&2; fail "slapd stopped: the error does not name LDAP"; }
ok "slapd stopped: exit 75: $(head -n 1 "$ERR")"
restart_ldap
kill -STOP "$LDAP_PID"
t0=$SECONDS
lk "$r"
kill -CONT "$LDAP_PID"
[ "$LK_RC" -eq 75 ] || fail "slapd frozen: exit $LK_RC, expected 75"
grep -q 'LDAP' "$ERR" || { cat "$ERR" >&2; fail "slapd frozen: the error does not name LDAP"; }
[ $((SECONDS - t0)) -le 10 ] || fail "slapd frozen: sluice lookup took $((SECONDS - t0)) s (lookup.timeout=2)"
ok "slapd frozen: exit 75 after $((SECONDS - t0)) s: $(head -n 1 "$ERR")"
lk "$r" --sender spammer@bad.example
expect "$r" "found: yes" "key: user@sub.example.com" "spam_kill_level: 8" \
    "sender <spammer@bad.example>: blacklisted, boost 0"
ok "slapd back: answers again"

# ---- 8. behind sluice all ---------------------------------------------------------
SINK_PORT=$(free_port)
SINK_DIR=$E2E_TMP/sink
start_sink "$SINK_PORT" "$SINK_DIR"
LISTEN=127.0.0.1:$(free_port)
start_sluice -o "frontend.listen=$LISTEN" -o "origins.default.reinject=127.0.0.1:$SINK_PORT" \
    -o workers.count=1 -o policy.final_spam_destiny=reject "${LK_ARGS[@]}"
E2E_FROM=foe@bad.example
m=$(mk_msg bl "cheap stuff" "Buy now.")
lmtp_send "$m" other@sub.example.com user@sub.example.com
case $(reply_n 1) in 554\ 5.7.0\ *SPAM*) ;; *) fail "foe@bad.example to other@sub.example.com: $(reply_n 1)" ;; esac
case $(reply_n 2) in 250\ 2.0.0\ *) ;; *) fail "foe@bad.example to user@sub.example.com: $(reply_n 2)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq 1 || fail "user@sub.example.com's copy not reinjected"
grep -q '^X-Rcpt-Args: <user@sub.example.com>' "$(newest_dump "$SINK_DIR")" ||
    fail "the reinjected copy is not user@sub.example.com's"
sluice_log_has 'ldap:dom-sub' || fail "the log does not name the policy ldap:dom-sub"
ok "foe@bad.example, blacklisted by @sub.example.com: other@: $(reply_n 1); user@ (own list): $(reply_n 2)"
E2E_FROM=spammer@bad.example
m=$(mk_msg lover "cheap stuff again" "Buy now.")
lmtp_send "$m" user@sub.example.com
case $(reply_n 1) in 250\ 2.0.0\ *) ;; *) fail "spammer@bad.example to user@sub.example.com (spam lover): $(reply_n 1)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq 2 || fail "the spam lover's copy not reinjected"
sluice_log_has 'Passed SPAM .*ldap:user-sub.*<spammer@bad.example> -> <user@sub.example.com>' ||
    fail "no 'Passed SPAM ... ldap:user-sub' for the spam lover"
ok "spammer@bad.example, blacklisted by user@sub.example.com, a spam lover: passed as SPAM"

stop_ldap
E2E_FROM=sender@e2e.test
m=$(mk_msg down "hello" "Hello.")
lmtp_send "$m" other@sub.example.com fresh@sub.example.com
case $(reply_n 1) in 250\ 2.0.0\ *) ;; *) fail "slapd stopped, cached other@sub.example.com: $(reply_n 1)" ;; esac
case $(reply_n 2) in 4[0-9][0-9]\ 4.*) ;; *) fail "slapd stopped, fresh@sub.example.com: $(reply_n 2)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq 3 || fail "the cached recipient's copy not reinjected"
sluice_log_has 'policy lookup for <fresh@sub.example.com> failed: .*LDAP' ||
    fail "no 'policy lookup ... failed: ... LDAP' in the log"
ok "slapd stopped: cached recipient: $(reply_n 1); not cached: $(reply_n 2)"
restart_ldap
m=$(mk_msg back "hello again" "Hello again.")
lmtp_send "$m" fresh@sub.example.com
case $(reply_n 1) in 250\ 2.0.0\ *) ;; *) fail "slapd back, fresh@sub.example.com: $(reply_n 1)" ;; esac
wait_for 10 test "$(sink_count "$SINK_DIR")" -eq 4 || fail "fresh@sub.example.com's copy not reinjected"
ok "slapd back: $(reply_n 1)"

# ---- 9. through Postfix ----------------------------------------------------------
stop_sluice >/dev/null
PF_FILTER_PORT=$(free_port)
PF_REINJECT_PORT=$(free_port)
start_postfix
E2E_FROM=sender@e2e.test
start_sluice_for_postfix -o workers.count=1 "${LK_ARGS[@]}"
stop_ldap
inject_mail "$E2E_RCPT" "ldap-down.$$@e2e.test"
qre=$(ere_quote "$INJECT_QID")
wait_maillog "$qre: to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=deferred .*4[0-9][0-9] 4\.[0-9.]+ .*policy lookup failed" 30 ||
    fail "Postfix did not defer $INJECT_QID with sluice's policy lookup failure: $(maillog_grep "$qre")"
[ "$(maildir_count)" -eq 0 ] || fail "delivered while the policy could not be read"
ok "slapd stopped: Postfix deferred $INJECT_QID: $(maillog_grep "$qre: .*status=deferred" | head -n 1 | sed 's/.*status=deferred //')"
restart_ldap
pf_flush
wait_delivered 1 30 || fail "not delivered after slapd came back and the queue was flushed"
[ "$(maildir_count_msgid "ldap-down.$$@e2e.test")" -eq 1 ] || fail "the deferred message is not the one delivered"
sluice_log_has 'Passed CLEAN \{RelayedInbound\}, ldap:catchall .*-> <user@e2e\.test>' ||
    fail "no 'Passed CLEAN ... ldap:catchall ... <user@e2e.test>' in the log"
ok "slapd back: delivered once after the flush, under the catch-all's policy (ldap:catchall)"
