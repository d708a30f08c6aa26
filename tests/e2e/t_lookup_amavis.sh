#!/usr/bin/env bash
# t_lookup_amavis.sh - sluice and Debian's amavisd-new read the same rows of
# amavisd-new's SQL lookup tables (users, policy, mailaddr, wblist) in one
# private PostgreSQL and must come to the same answer for every recipient
# (docs/lookups.md; amavisd-new's README.lookups).
#
# amavisd-new runs with @lookup_sql_dsn on that database, $recipient_delimiter
# '+', local domains .example.com and local.test, SpamAssassin in-process
# (local tests only), tag level -999, tag2 and kill level 6.31, D_REJECT for
# spam; sluice with lookup.sql, the same delimiter, local domains and levels,
# spamd (-L) as its spam scanner, final_spam_destiny reject. Each reinjects
# into its own smtp-sink -d. The same messages (GTUBE, a plain ham) from
# several senders go by LMTP to both, each to the same 15 recipients in one
# transaction (amavisd-new starts in seconds to a minute: SpamAssassin
# compiles its rules; the whole test takes 20-40 s here).
#
# The rows follow README.lookups' examples: a full address (also asked in
# other case), user+foo@sub.example.com and user@sub.example.com (an
# extension), bare "carol" and "dave+news" (tried for local domains only),
# @sub.example.com whose NULL fields come from @.example.com (which also
# covers example.com itself and deeper subdomains), @.com, the catch-all @.
# (whose NULL fields leave the configured levels), a spam lover; sender
# lists on several matching users records: 'W' on a more specific record
# winning over 'B' on a less specific one, 'B' for a domain beaten by a
# neutral ' ' for one address of higher mailaddr priority, a neutral ' ' on
# a more specific record ending the search before a less specific 'B', soft
# listings (+20 and -3.5, added over records), a bare sender key ("boss") that
# matches a local sender only. And an SMTPUTF8 recipient whose row holds its
# UTF-8 octets (amavis binds keys as bytea, $sql_allow_8bit_address = 1 as
# README.sql requires for this schema): smtp-sink offers no SMTPUTF8, so that
# transaction compares the LMTP reply only (the row's kill level refuses
# GTUBE; the catch-all's would pass it).
#
# Proves, per transaction and recipient: the same LMTP reply class (2xx/5xx),
# and in the reinjected copy the same tagged_above= and required= of
# X-Spam-Status, X-Spam-Flag: YES or not, the same Subject tag; for the soft
# listing, the same score difference to a recipient without one (scores
# themselves differ slightly between in-process SpamAssassin and spamd and
# are not compared). Any difference fails the test; the table of both is
# printed either way.
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scan_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/scan_lib.sh"
# shellcheck source=pg_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"
# shellcheck source=amavis_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/amavis_lib.sh"

e2e_init 240
need_root
need_cmd swaks spamd smtp-sink
[ -n "$AMAVIS_BIN" ] || fail "amavisd-new is not installed (deploy/install-deps.sh --test)"
perl -MDBD::Pg -e 1 2>/dev/null || fail "amavisd-new needs DBD::Pg for SQL lookups (package libdbd-pg-perl)"

# ---- the rows ----------------------------------------------------------------
start_pg
pg_sql "
INSERT INTO policy (id, policy_name, spam_tag_level, spam_tag2_level, spam_kill_level,
                    spam_lover, spam_subject_tag2) VALUES
  (1, 'full',     -5,   3,    2000, NULL, '[full] '),
  (2, 'ext',      -6,   4,    500,  NULL, NULL),
  (3, 'user',     -7,   5.5,  2000, NULL, '[user] '),
  (4, 'bare',     -8,   7,    2000, NULL, '[bare] '),
  (5, 'bareext',  -9,   8,    2000, NULL, NULL),
  (6, 'sub',      NULL, NULL, 2000, NULL, NULL),
  (7, 'parent',   -11,  42,   500,  NULL, '[parent] '),
  (8, 'dotcom',   -12,  12,   NULL, NULL, '[dotcom] '),
  (9, 'catchall', NULL, NULL, 3000, NULL, NULL),
  (10, 'lover',   -13,  4,    5,    'Y',  NULL),
  (11, 'utf8',    -14,  2.5,  500,  NULL, '[utf8] ');
INSERT INTO users (id, priority, policy_id, email) VALUES
  (1, 9, 1, 'alice@sub.example.com'),
  (2, 9, 2, 'user+foo@sub.example.com'),
  (3, 8, 3, 'user@sub.example.com'),
  (4, 6, 4, 'carol'),
  (5, 7, 5, 'dave+news'),
  (6, 5, 6, '@sub.example.com'),
  (7, 2, 7, '@.example.com'),
  (8, 1, 8, '@.com'),
  (9, 0, 9, '@.'),
  (10, 9, 10, 'lover@local.test'),
  (11, 9, 11, convert_to('pingüino@local.test', 'UTF8'));
INSERT INTO mailaddr (id, priority, email) VALUES
  (1, 9, 'news@lists.test'), (2, 5, '@lists.test'),
  (3, 9, 'spammer@bad.test'), (4, 5, '@bad.test'),
  (5, 5, '@soft.test'), (6, 7, 'boss');
INSERT INTO wblist (rid, sid, wb) VALUES
  (2, 2, 'W'), (3, 1, 'B'),
  (7, 4, 'B'), (7, 3, ' '), (6, 4, ' '),
  (1, 5, '20'), (8, 5, '-3.5'),
  (8, 6, 'W');
" >/dev/null
ok "PostgreSQL: 11 policies, 11 users, 6 mailaddr, 8 wblist rows"

RCPTS=(alice@sub.example.com Alice@Sub.Example.COM user+foo@sub.example.com
    user+bar@sub.example.com user@sub.example.com carol@local.test carol@remote.com
    dave+news@local.test dave+misc@local.test zed@sub.example.com x@deep.sub.example.com
    x@example.com x@foo.com x@local.test lover@local.test)
REF_RCPT=x@local.test   # no soft listing: the reference for score differences

# ---- the two filters ---------------------------------------------------------
start_spamd
A_SINK=$(free_port)
start_sink "$A_SINK" "$E2E_TMP/sink.amavis"
S_SINK=$(free_port)
start_sink "$S_SINK" "$E2E_TMP/sink.sluice"
start_sluice -o "frontend.listen=127.0.0.1:$(free_port)" -o "origins.default.reinject=127.0.0.1:$S_SINK" \
    -o "scanners.spamd.servers=$SPAMD_ADDR" -o "lookup.sql=$PG_CONNINFO" -o lookup.recipient_delimiter=+ \
    -o "policy.local_domains=.example.com, local.test" -o policy.spam_tag_level=-999 \
    -o policy.spam_tag2_level=6.31 -o policy.spam_kill_level=6.31 -o policy.final_spam_destiny=reject
SLUICE_LMTP=$SLUICE_PORT

AMAVIS_SQL_DSN="DBI:Pg:dbname=mail_log;host=127.0.0.1;port=$PG_PORT"
# bytea addresses in amavisd-new's PostgreSQL schema: README.sql says
# $sql_allow_8bit_address must be 1
AMAVIS_CONF_EXTRA="
\$sql_allow_8bit_address = 1;
\$recipient_delimiter = '+';
@local_domains_maps = (['.example.com', 'local.test']);
\$sa_tag_level_deflt = -999;
\$sa_tag2_level_deflt = 6.31;
\$sa_kill_level_deflt = 6.31;
\$sa_spam_subject_tag = '***SPAM*** ';
\$final_spam_destiny = D_REJECT;"
AMAVIS_LOG_LEVEL=2   # per recipient: "Passed SPAMMY, <from> -> <rcpt>, Hits: ..., tag=, tag2=, kill="
amavis_start sa 2 "$A_SINK" || fail "amavisd-new did not start (see $AMAVIS_DIR/amavisd.out, $AMAVIS_LOG)"

# ---- the transactions ------------------------------------------------------------
declare -A RES=()   # RES[filter,tx,rcpt] = class|tagged_above|required|flag|subject tag|score
TXS=()
declare -A TX_RCPTS=()  # TX_RCPTS[tx] = its recipients, one per line

# copies DIR MSGID SUBJECT: one line per recipient of every reinjected copy
# of the message: rcpt, tagged_above, required, X-Spam-Flag YES or no, the
# Subject's tag (what precedes SUBJECT), score; "-" for what is absent
copies() {
    local files
    files=$(grep -lF "Message-ID: <$2>" "$1"/m.* 2>/dev/null) || return 0
    # shellcheck disable=SC2086 # one file name per word
    awk -v subj="$3" '
        function field(st, k,   m) {
            if (match(st, "[ ,]" k "=[^ ]*")) { m = substr(st, RSTART + 1, RLENGTH - 1); return substr(m, length(k) + 2) }
            return "-"
        }
        function header(line,   name, value, i) {
            i = index(line, ":"); name = tolower(substr(line, 1, i - 1)); value = substr(line, i + 1)
            sub(/^[ \t]+/, "", value)
            if (name == "x-rcpt-args") { sub(/^</, "", value); sub(/>.*/, "", value); rc[++n] = value }
            else if (name == "x-spam-status" && st == "") st = value
            else if (name == "x-spam-flag" && toupper(value) ~ /^YES/) flag = "YES"
            else if (name == "subject" && !have_subj) { subject = value; have_subj = 1 }
        }
        function flush(   i, tag) {
            if (buf != "") header(buf)
            tag = subject
            if (substr(tag, length(tag) - length(subj) + 1) == subj) tag = substr(tag, 1, length(tag) - length(subj))
            else tag = "?" tag
            for (i = 1; i <= n; i++)
                print rc[i] "\t" field(st, "tagged_above") "\t" field(st, "required") "\t" flag "\t\047" tag "\047\t" field(st, "score")
        }
        FNR == 1 { if (NR > 1) flush(); n = 0; st = ""; flag = "no"; subject = ""; have_subj = 0; buf = ""; body = 0 }
        { sub(/\r$/, "") }
        body { next }
        /^$/ { body = 1; next }
        /^[ \t]/ { sub(/^[ \t]+/, " "); buf = buf $0; next }
        { if (buf != "") header(buf); buf = $0 }
        END { if (NR > 0) flush() }' $files
}

# accepted_copies DIR MSGID N: at least N recipients in reinjected copies
accepted_copies() {
    [ "$(grep -lF "Message-ID: <$2>" "$1"/m.* 2>/dev/null | xargs -r grep -h '^X-Rcpt-Args: ' | wc -l)" -ge "$3" ]
}

# collect FILTER TX DIR MSGID SUBJECT: RES[...] from LMTP_REPLIES and the copies
collect() {
    local filt=$1 tx=$2 dir=$3 id=$4 subj=$5 i=0 r n_ok=0 line rest
    local -a replies
    local -A copy=()
    local -a rcpts
    mapfile -t replies <<<"$LMTP_REPLIES"
    mapfile -t rcpts <<<"${TX_RCPTS[$tx]}"
    for r in "${rcpts[@]}"; do
        line=${replies[$i]:-}
        i=$((i + 1))
        RES[$filt,$tx,$r]=${line:0:1}xx
        [ -n "$line" ] || RES[$filt,$tx,$r]=none
        [ "${RES[$filt,$tx,$r]}" != 2xx ] || n_ok=$((n_ok + 1))
    done
    wait_for 20 accepted_copies "$dir" "$id" "$n_ok" ||
        say "$filt, $tx: not every accepted recipient has a reinjected copy"
    while IFS=$'\t' read -r r rest; do
        if [ -n "${copy[$r]:-}" ]; then copy[$r]="two copies|-|-|-|-"; else copy[$r]=${rest//$'\t'/|}; fi
    done < <(copies "$dir" "$id" "$subj")
    for r in "${rcpts[@]}"; do
        if [ "${RES[$filt,$tx,$r]}" != 2xx ]; then
            [ -z "${copy[$r]:-}" ] || RES[$filt,$tx,$r]+="+copy"
            RES[$filt,$tx,$r]+="|-|-|-|-|-"
        else
            RES[$filt,$tx,$r]+="|${copy[$r]:-no copy|-|-|-|-}"
        fi
    done
}

# The raw LMTP client for SMTPUTF8 (swaks cannot declare it): lmtp_utf8
# PORT FILE RCPT... sends MAIL FROM:<$E2E_FROM> SMTPUTF8 and sets
# LMTP_REPLIES as lmtp_send does (one line per recipient: the reply to the
# final dot, or to RCPT for a recipient refused there). Every read is
# bounded (10 s).
LMTP_FD=
lmtp_reply() { # the last line of one (multi-line) reply
    local l
    while IFS= read -r -t 10 l <&"$LMTP_FD"; do
        l=${l%$'\r'}
        case $l in [0-9][0-9][0-9]-*) ;; *) printf '%s\n' "$l"; return 0 ;; esac
    done
    fail "lmtp_utf8: no reply within 10 s"
}
lmtp_utf8() {
    local port=$1 file=$2 r line i=0
    shift 2
    local -a at_rcpt=()
    exec {LMTP_FD}<>"/dev/tcp/127.0.0.1/$port"
    lmtp_reply >/dev/null
    printf 'LHLO origin.test\r\n' >&"$LMTP_FD"
    lmtp_reply >/dev/null
    printf 'MAIL FROM:<%s> SMTPUTF8\r\n' "$E2E_FROM" >&"$LMTP_FD"
    line=$(lmtp_reply)
    case $line in 250*) ;; *) fail "lmtp_utf8: MAIL FROM: $line" ;; esac
    for r in "$@"; do
        printf 'RCPT TO:<%s>\r\n' "$r" >&"$LMTP_FD"
        line=$(lmtp_reply)
        case $line in 2*) at_rcpt+=("") ;; *) at_rcpt+=("$line") ;; esac
    done
    printf 'DATA\r\n' >&"$LMTP_FD"
    line=$(lmtp_reply)
    case $line in 354*) ;; *) fail "lmtp_utf8: DATA: $line" ;; esac
    cat "$file" >&"$LMTP_FD"   # CRLF lines, none starting with a dot
    printf '.\r\n' >&"$LMTP_FD"
    LMTP_REPLIES=
    for r in "$@"; do
        if [ -n "${at_rcpt[$i]}" ]; then line=${at_rcpt[$i]}; else line=$(lmtp_reply); fi
        LMTP_REPLIES+="$line"$'\n'
        i=$((i + 1))
    done
    LMTP_REPLIES=${LMTP_REPLIES%$'\n'}
    printf 'QUIT\r\n' >&"$LMTP_FD"
    exec {LMTP_FD}>&-
}

# tx NAME SENDER gtube|ham [RCPT...]: the message to both filters (to RCPTS
# when no RCPT is given; with SMTPUTF8 when a recipient is not ASCII)
tx() {
    local name=$1 sender=$2 kind=$3 body m id subj="t_lookup_amavis $1" send=lmtp_send
    shift 3
    local -a to=("$@")
    [ "${#to[@]}" -gt 0 ] || to=("${RCPTS[@]}")
    E2E_FROM=$sender
    case $kind in
    gtube) body=$(gtube) ;;
    *) body="Hi, shall we meet for lunch tomorrow at noon? The usual place. Cheers, Alice" ;;
    esac
    m=$(mk_msg "$name" "$subj" "$body")
    id=$(sed -n 's/^Message-ID: <\(.*\)>\r$/\1/p' "$m")
    TXS+=("$name")
    TX_RCPTS[$name]=$(printf '%s\n' "${to[@]}")
    local LC_ALL=C   # bytes: a non-ASCII one is not [:print:]
    case "${to[*]}" in *[![:print:]]*) send=lmtp_utf8 ;; esac
    SLUICE_PORT=$AMAVIS_PORT
    if [ "$send" = lmtp_send ]; then lmtp_send "$m" "${to[@]}"; else lmtp_utf8 "$AMAVIS_PORT" "$m" "${to[@]}"; fi
    collect amavis "$name" "$E2E_TMP/sink.amavis" "$id" "$subj"
    SLUICE_PORT=$SLUICE_LMTP
    if [ "$send" = lmtp_send ]; then lmtp_send "$m" "${to[@]}"; else lmtp_utf8 "$SLUICE_LMTP" "$m" "${to[@]}"; fi
    collect sluice "$name" "$E2E_TMP/sink.sluice" "$id" "$subj"
    say "$name ($kind from <$sender>): both filters answered ${#to[@]} recipients"
}

tx gtube gtube-sender@e2e.test gtube    # levels, destinies, subject tags
tx ham sender@e2e.test ham              # the same with a low score
tx lists news@lists.test gtube          # 'W' (user+foo's record) over 'B' (user@'s)
tx badjoe joe@bad.test ham              # 'B' for @bad.test; neutral first for zed@
tx badspammer spammer@bad.test ham      # ' ' for the address beats 'B' for the domain
tx soft promo@soft.test ham             # +20 and -3.5, added over records
tx bosslocal boss@local.test gtube      # bare sender key "boss": a local sender
tx bossremote boss@elsewhere.test gtube # ... not a remote one
# SMTPUTF8, the key's octets as they are: smtp-sink offers no SMTPUTF8, so
# only the refusal at the LMTP level tells (the row's kill level 500; the
# catch-all's 3000 would pass the message and fail its reinjection)
tx utf8 sender@e2e.test gtube pingüino@local.test

# ---- the comparison ----------------------------------------------------------
# delta SCORE REFERENCE: SCORE - REFERENCE with 2 decimals, "-" without both
delta() {
    case $1$2 in *[!0-9.-]* | *-- | --*) echo - ;; *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a - b }' ;; esac
}
diffs=0
printf '\n%-11s %-25s | %-45s | %-45s\n' transaction recipient \
    "amavisd-new: reply tagged_above required flag subject-tag" "sluice: reply tagged_above required flag subject-tag"
total=0
for t in "${TXS[@]}"; do
    mapfile -t rcpts <<<"${TX_RCPTS[$t]}"
    for r in "${rcpts[@]}"; do
        total=$((total + 1))
        IFS='|' read -r c1 c2 c3 c4 c5 ac <<<"${RES[amavis,$t,$r]}"
        a="$c1 $c2 $c3 $c4 $c5"
        IFS='|' read -r c1 c2 c3 c4 c5 sc <<<"${RES[sluice,$t,$r]}"
        s="$c1 $c2 $c3 $c4 $c5"
        if [ "$t" = soft ]; then
            IFS='|' read -r _ _ _ _ _ ar <<<"${RES[amavis,$t,$REF_RCPT]}"
            IFS='|' read -r _ _ _ _ _ sr <<<"${RES[sluice,$t,$REF_RCPT]}"
            a+=" d=$(delta "$ac" "$ar")"
            s+=" d=$(delta "$sc" "$sr")"
        fi
        mark=''
        if [ "$a" != "$s" ]; then
            mark=' <-- DIFFERENT'
            diffs=$((diffs + 1))
        fi
        printf '%-11s %-25s | %-45s | %-45s%s\n' "$t" "$r" "$a" "$s" "$mark"
    done
done
echo
if [ "$diffs" -ne 0 ]; then
    echo "----- last 30 lines of $AMAVIS_LOG -----" >&2
    tail -n 30 "$AMAVIS_LOG" >&2
fi
[ "$diffs" -eq 0 ] || fail "$diffs of $total answers differ between amavisd-new and sluice (table above)"
ok "amavisd-new and sluice agree on all $total answers (${#TXS[@]} transactions)"
