# shellcheck shell=bash
# quar_lib.sh - helpers of the quarantine tests (t_quarantine_*.sh), on top
# of lib.sh.
#
#   pf_private_ports          free ports for the filter and the reinjection
#                             listener, never the standard 10024/10025: a
#                             test elsewhere on the machine may take those
#                             between the check and the bind
#   pf_send FILE TO           submit FILE to the instance's smtpd; INJECT_QID
#   msg_id_of FILE            the Message-ID of a message file (without <>)
#   quarantine_id_of MSGID    the quarantine id sluice logged for it
#   mbox_copies ADDR MSGID    copies of the message with that Message-ID in
#                             ADDR's mailbox (in the header: notifications
#                             quote it in their text)
#   mbox_has_copy ADDR MSGID  at least one (for wait_for)
#   mbox_file_msgid ADDR MSGID   the mailbox file of that message
#   mbox_has_subject ADDR ERE  a message in ADDR's mailbox with that Subject
#   mbox_grep ADDR TEXT       TEXT in some message of ADDR's mailbox
#   amavisd_release SOCKET ARGS...
#                             Debian's amavisd-release, unmodified, talking
#                             to SOCKET: the script has its socket path
#                             written into it ($socketname), so SOCKET's
#                             directory is bind-mounted over that path's
#                             directory in a private mount namespace; where
#                             that is not allowed, a copy with the path
#                             replaced (and a note)

# shellcheck disable=SC2034 # lib.sh's variables
pf_private_ports() {
    PF_FILTER_PORT=$(free_port)
    PF_REINJECT_PORT=$(free_port)
}

pf_send() {
    local out=$E2E_TMP/swaks.$RANDOM.log
    timeout 60 swaks --server 127.0.0.1 --port "$PF_SMTP_PORT" --from "$E2E_FROM" --to "$2" \
        --data "@$1" >"$out" 2>&1 || { cat "$out" >&2; fail "swaks could not submit $1"; }
    INJECT_QID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\).*/\1/p' "$out" | head -n 1)
    [ -n "$INJECT_QID" ] || fail "no queue id in $out"
}

msg_id_of() { sed -n 's/^Message-ID: <\(.*\)>\r$/\1/p' "$1"; }

quarantine_id_of() {
    local id
    id=$(grep -F "Message-ID: <$1>" "$SLUICE_LOG" | sed -n 's/.*, quarantine: \([a-z]*-[A-Za-z0-9_-]\{12\}\),.*/\1/p' | head -n 1)
    [ -n "$id" ] || fail "sluice logged no quarantine id for <$1>"
    echo "$id"
}

mbox_dir() {
    if [ "$1" = "$E2E_RCPT" ]; then echo "$PF_VMAIL/e2e.test/user"; else echo "$PF_VMAIL/e2e.test/catchall"; fi
}
mbox_files() { find "$(mbox_dir "$1")" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null; }
mbox_msgid_files() {
    local f
    while IFS= read -r f; do
        if mail_headers "$f" | grep -iF "Message-Id: <$2>" >/dev/null; then echo "$f"; fi
    done < <(mbox_files "$1")
    return 0
}
mbox_copies() { mbox_msgid_files "$1" "$2" | grep -c . || true; }
mbox_has_copy() { [ "$(mbox_copies "$1" "$2")" -ge 1 ]; }
mbox_file_msgid() { mbox_msgid_files "$1" "$2" | sed -n 1p; }
mbox_has_subject() { mbox_files "$1" | xargs -r grep -lE "^Subject: $2" >/dev/null 2>&1; }
mbox_grep() { mbox_files "$1" | xargs -r grep -lF -- "$2" >/dev/null 2>&1; }

amavisd_release() {
    local sock=$1 script want dir
    shift
    need_cmd amavisd-release
    script=$(command -v amavisd-release)
    want=$(sed -n "s/^ *\$socketname *= *'\([^']*\)';.*/\1/p" "$script" | head -n 1)
    [ -n "$want" ] || fail "no \$socketname in $script"
    [ "$(basename "$sock")" = "$(basename "$want")" ] ||
        fail "amavisd_release: the socket must be called $(basename "$want"), as in $script"
    dir=$(dirname "$want")
    if unshare -m --propagation private true 2>/dev/null && [ -d "$dir" ]; then
        # shellcheck disable=SC2016 # the inner shell expands them
        unshare -m --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec amavisd-release "$@"' \
            sh "$(dirname "$sock")" "$dir" "$@"
        return
    fi
    say "NOTE: no private mount namespace here: amavisd-release runs as a copy with its socket path replaced"
    sed "s|$want|$sock|" "$script" >"$E2E_TMP/amavisd-release"
    perl "$E2E_TMP/amavisd-release" "$@"
}
