#!/usr/bin/env bash
# t_quarantine_sql.sh - the sql: quarantine through a real Postfix, a real
# clamd and a private PostgreSQL with amavisd-new's own schema
# (deploy/sql/amavisd-pg.sql, docs/quarantine.md).
#
# Proves:
#   1. EICAR submitted to Postfix is not delivered: Postfix logs sluice's
#      "250 2.7.0 Ok, discarded"; sluice logs "{DiscardedInbound,
#      QuarantinedInbound}" and "quarantine: virus-<mail_id>"; the store
#      holds one msgs row (quar_type Q, content V, its secret_id), its
#      msgrcpt row and the message in quarantine chunks; the administrator
#      (policy.virus_admin) and the recipient (warn_virus_recip) get
#      amavis' notifications, and Postfix queued both;
#   2. the query an amavis web front end runs to list a recipient's
#      quarantine (MailZu's: msgs joined with msgrcpt, maddr twice and
#      quarantine) returns sluice's row;
#   3. sluice quarantine list --recipient --since shows it (and only
#      it), show gives its secret_id; release sends it back
#      through the origin's :10025: delivered exactly once, with amavis'
#      X-Quarantine-ID, msgrcpt.rs = 'R', and the release logged as
#      amavisd-new logs it; release --rcpt sends it elsewhere;
#   4. Debian's amavisd-release, unmodified, releases another one over
#      AM.PDP (quarantine.release_socket) with the secret_id from msgs; a
#      wrong secret_id is refused; sluice quarantine delete removes it;
#   5. PostgreSQL stopped while a virus arrives: Postfix gets 451 and keeps
#      the message; once PostgreSQL is back it is quarantined, once;
#   6. expiry run by three nodes at once removes each old entry once.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2119 # lib helpers take optional arguments
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"
# shellcheck source=pg_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"
# shellcheck source=quar_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/quar_lib.sh"

e2e_init 200
need_root
need_cmd swaks clamd

start_clamd
start_pg
pf_private_ports
start_postfix
mkdir -p "$E2E_TMP/amavis"
RELSOCK=$E2E_TMP/amavis/amavisd.sock
STORE=(-o "quarantine.store=sql:$PG_CONNINFO")
mapfile -t PF_ARGS < <(sluice_args_for_postfix)
start_sluice_for_postfix -o "scanners.clamd.servers=unix:$CLAMD_SOCK" "${STORE[@]}" \
    -o "quarantine.release_socket=$RELSOCK" -o policy.virus_admin=admin@e2e.test \
    -o policy.warn_virus_recip=yes
qcmd() { "$SLUICE_BIN" "${PF_ARGS[@]}" "${STORE[@]}" quarantine "$@"; }

# ---- 1. quarantined, not delivered, notified -------------------------------
m=$(mk_msg v1 "have a look" "$(eicar)")
msgid1=$(msg_id_of "$m")
pf_send "$m" "$E2E_RCPT"
wait_maillog "$(ere_quote "$INJECT_QID"): to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.7\.0 Ok, discarded" 60 ||
    fail "Postfix did not log sluice's discard for $INJECT_QID"
id1=$(quarantine_id_of "$msgid1")
mail1=${id1#virus-}
ok "sluice: $(grep -E "quarantine: $id1" "$SLUICE_LOG" | head -n 1 | sed 's/^.*sluice\[[0-9]*\]: //')"
sluice_log_has "\{DiscardedInbound,QuarantinedInbound\}, .*quarantine: $id1," ||
    fail "no {DiscardedInbound,QuarantinedInbound} ... quarantine: $id1 log line"
[ "$(pg_sql "SELECT count(*) FROM msgs WHERE mail_id = '$mail1' AND quar_type = 'Q' AND content = 'V'")" = 1 ] ||
    fail "no msgs row for $mail1 (quar_type Q, content V)"
[ "$(pg_sql "SELECT count(*) FROM quarantine WHERE mail_id = '$mail1'")" -ge 1 ] || fail "no quarantine chunk for $mail1"
pg_sql "SELECT convert_from(string_agg(mail_text, '' ORDER BY chunk_ind), 'UTF8') FROM quarantine WHERE mail_id = '$mail1'" |
    grep -q 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE' || fail "the quarantined text does not hold the message"
ok "PostgreSQL: $(pg_sql "SELECT 'msgs ' || encode(mail_id, 'escape') || ' content=' || content || ' quar_type=' || quar_type || ' quar_loc=' || quar_loc FROM msgs WHERE mail_id = '$mail1'")"
wait_for 30 pf_queue_empty || fail "Postfix still holds mail"
[ "$(mbox_copies "$E2E_RCPT" "$msgid1")" -eq 0 ] || fail "the virus was delivered"
wait_for 30 mbox_has_subject admin@e2e.test "VIRUS \(Eicar-Test-Signature.UNOFFICIAL\) in mail FROM <$E2E_FROM>" ||
    fail "the administrator's notification did not arrive"
wait_for 30 mbox_has_subject "$E2E_RCPT" "VIRUS \(Eicar-Test-Signature.UNOFFICIAL\) in mail TO YOU from <$E2E_FROM>" ||
    fail "the recipient's warning did not arrive"
mbox_grep admin@e2e.test "The message has been quarantined as: $id1" || fail "the notification does not name $id1"
ok "not delivered; administrator and recipient notified; the notice names $id1"

# ---- 2. a web front end's listing query ------------------------------------
# MailZu's (lib/DBEngine.class.php) listing of a recipient's quarantine, with
# the quarantine table joined as its message view joins it.
rows=$(pg_sql "SELECT msgs.time_num, msgs.from_addr, encode(msgs.mail_id, 'escape'), msgs.subject,
        msgs.spam_level, msgs.content, msgrcpt.rs, msgs.quar_type, encode(recip.email, 'escape')
    FROM msgs INNER JOIN msgrcpt ON msgs.mail_id = msgrcpt.mail_id
        LEFT JOIN maddr AS sender ON msgs.sid = sender.id
        LEFT JOIN maddr AS recip ON msgrcpt.rid = recip.id
    WHERE msgs.content IN ('S', 'B', 'V', 'H') AND msgs.quar_type = 'Q'
        AND msgrcpt.rs IN ('', ' ', 'v') AND recip.email = '$E2E_RCPT'
        AND EXISTS (SELECT 1 FROM quarantine WHERE quarantine.mail_id = msgs.mail_id
                    AND quarantine.partition_tag = msgs.partition_tag)
    ORDER BY msgs.time_num DESC")
printf '%s\n' "$rows" | grep -q "|$mail1|have a look|.*|V| |Q|$E2E_RCPT\$" ||
    { printf '%s\n' "$rows" >&2; fail "the front end's query does not return $mail1"; }
ok "front end query: $(printf '%s\n' "$rows" | grep "$mail1")"

# ---- 3. listed and released, once, with X-Quarantine-ID ---------------------
qcmd list --recipient "$E2E_RCPT" --since 1h | grep -q "^$id1 " || fail "sluice quarantine list does not show $id1"
[ -z "$(qcmd list --since 2099-01-01)" ] || fail "sluice quarantine list --since 2099-01-01 shows entries"
[ -z "$(qcmd list --recipient nobody@e2e.test)" ] || fail "sluice quarantine list --recipient shows others' entries"
qcmd show "$id1" | grep -q "^Secret-ID: $(pg_sql "SELECT encode(secret_id, 'escape') FROM msgs WHERE mail_id = '$mail1'")\$" ||
    fail "sluice quarantine show does not give msgs.secret_id"
qcmd release "$id1" >"$E2E_TMP/release.out" 2>&1 || { cat "$E2E_TMP/release.out" >&2; fail "release failed"; }
ok "release: $(head -n 1 "$E2E_TMP/release.out")"
grep -q "Quarantined message release (miscategorized): $mail1 <$E2E_FROM> -> <$E2E_RCPT>" "$E2E_TMP/release.out" ||
    fail "the release is not logged in amavis' words"
wait_for 30 mbox_has_copy "$E2E_RCPT" "$msgid1" || fail "the released message did not arrive"
sleep 2
[ "$(mbox_copies "$E2E_RCPT" "$msgid1")" -eq 1 ] || fail "the released message arrived more than once"
f=$(mbox_file_msgid "$E2E_RCPT" "$msgid1")
[ "$(header_count "$f" "^X-Quarantine-ID: <$mail1>\$")" -eq 1 ] || fail "no X-Quarantine-ID: <$mail1> in the delivered copy"
[ "$(pg_sql "SELECT rs FROM msgrcpt WHERE mail_id = '$mail1'")" = R ] || fail "msgrcpt.rs is not R after the release"
ok "released and delivered once with X-Quarantine-ID: <$mail1>; msgrcpt.rs = R"
qcmd release "$id1" --rcpt other@e2e.test >/dev/null 2>&1 || fail "release --rcpt failed"
wait_for 30 mbox_has_copy other@e2e.test "$msgid1" || fail "release --rcpt other@e2e.test did not arrive"
[ "$(mbox_copies "$E2E_RCPT" "$msgid1")" -eq 1 ] || fail "release --rcpt went to the original recipient too"
ok "release --rcpt other@e2e.test: delivered there, not again to <$E2E_RCPT>"

# ---- 4. amavisd-release over AM.PDP ----------------------------------------
m=$(mk_msg v2 "another look" "$(eicar)")
msgid2=$(msg_id_of "$m")
pf_send "$m" "$E2E_RCPT"
wait_for 60 sluice_log_has "quarantine: virus-[^,]+, .*Message-ID: <$(ere_quote "$msgid2")>" ||
    fail "the second virus was not quarantined"
id2=$(quarantine_id_of "$msgid2")
secret=$(pg_sql "SELECT encode(secret_id, 'escape') FROM msgs WHERE mail_id = '${id2#virus-}'")
[ -n "$secret" ] || fail "no secret_id for $id2"
amavisd_release "$RELSOCK" "$id2" WrongSecret12 >"$E2E_TMP/wrong.out" 2>&1 || true
grep -q "^450 4.5.0 Failure: Secret_id WrongSecret12 does not match" "$E2E_TMP/wrong.out" ||
    { cat "$E2E_TMP/wrong.out" >&2; fail "a wrong secret_id was not refused"; }
amavisd_release "$RELSOCK" "$id2" "$secret" >"$E2E_TMP/amrel.out" 2>&1 ||
    { cat "$E2E_TMP/amrel.out" >&2; fail "amavisd-release failed"; }
grep -qE "^250 2\.0\.0 Ok, id=rel-[A-Za-z0-9_-]+, from MTA\(smtp:\[127\.0\.0\.1\]:$PF_REINJECT_PORT\): 250 2\.0\.0 Ok: queued as " "$E2E_TMP/amrel.out" ||
    { cat "$E2E_TMP/amrel.out" >&2; fail "amavisd-release did not print the release's reply"; }
ok "amavisd-release $id2 <secret>: $(head -n 1 "$E2E_TMP/amrel.out")"
wait_for 30 mbox_has_copy "$E2E_RCPT" "$msgid2" || fail "amavisd-release's message did not arrive"
sleep 1
[ "$(mbox_copies "$E2E_RCPT" "$msgid2")" -eq 1 ] || fail "amavisd-release's message arrived more than once"
ok "released by Debian's amavisd-release, delivered once"
qcmd delete "$id2" >/dev/null || fail "sluice quarantine delete $id2 failed"
[ "$(pg_sql "SELECT (SELECT count(*) FROM msgs WHERE mail_id = '${id2#virus-}') + (SELECT count(*) FROM msgrcpt WHERE mail_id = '${id2#virus-}') + (SELECT count(*) FROM quarantine WHERE mail_id = '${id2#virus-}')")" -eq 0 ] ||
    fail "rows of $id2 left after sluice quarantine delete"
! qcmd show "$id2" >/dev/null 2>&1 || fail "sluice quarantine show finds the deleted $id2"
ok "sluice quarantine delete $id2: its msgs, msgrcpt and quarantine rows gone"

# ---- 5. PostgreSQL down: 451, nothing lost, kept once when back --------------
stop_pg
m=$(mk_msg v3 "while the database is down" "$(eicar)")
msgid3=$(msg_id_of "$m")
pf_send "$m" "$E2E_RCPT"
qid3=$INJECT_QID
wait_maillog "$(ere_quote "$qid3"): to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.5\.0 id=[^ ]+, cannot quarantine the message" 60 ||
    fail "Postfix did not defer $qid3 with sluice's 451"
ok "Postfix: $(maillog_grep "$(ere_quote "$qid3"): to=.*status=deferred" | head -n 1 | sed 's/.*postfix\///')"
[ "$(pf_queue_count)" -ge 1 ] || fail "Postfix does not hold the message"
restart_pg
pf_flush
wait_maillog "$(ere_quote "$qid3"): to=<$(ere_quote "$E2E_RCPT")>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PF_FILTER_PORT, .*status=sent \(250 2\.7\.0 Ok, discarded" 90 ||
    fail "$qid3 was not quarantined once PostgreSQL was back"
n=$(pg_sql "SELECT count(*) FROM msgs WHERE message_id = '<$msgid3>'")
[ "$n" -eq 1 ] || fail "expected the message kept once, found $n msgs rows"
[ "$(mbox_copies "$E2E_RCPT" "$msgid3")" -eq 0 ] || fail "the virus was delivered"
ok "PostgreSQL down: 451 and kept in Postfix's queue; back: quarantined once ($n row)"

# ---- 6. expiry: three nodes at once, each entry removed once -----------------
stop_sluice >/dev/null
total=$(pg_sql "SELECT count(*) FROM msgs WHERE quar_type = 'Q'")
pg_sql "UPDATE msgs SET time_num = time_num - 40 * 86400, time_iso = time_iso - interval '40 days'" >/dev/null
pids=()
for i in 1 2 3; do
    qcmd expire --max-age 30d >"$E2E_TMP/expire.$i" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "sluice quarantine expire failed: $(cat "$E2E_TMP"/expire.?)"; done
removed=$(cat "$E2E_TMP"/expire.? | sed -n 's/^expire: \([0-9]*\) entries.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
cat "$E2E_TMP"/expire.? | sed 's/^/    /'
[ "$removed" -eq "$total" ] || fail "three nodes removed $removed entries in all, expected $total"
[ "$(pg_sql "SELECT count(*) FROM msgs")" -eq 0 ] || fail "old msgs rows left"
[ "$(pg_sql "SELECT count(*) FROM quarantine")" -eq 0 ] || fail "old quarantine rows left"
[ "$(pg_sql "SELECT count(*) FROM msgrcpt")" -eq 0 ] || fail "old msgrcpt rows left"
ok "expiry by three nodes at once: $removed of $total entries removed, each once"
