# shellcheck shell=bash
# scan_lib.sh - the scanner daemons for the scanning end-to-end tests
# (t_scan_*.sh), on top of lib.sh. Source lib.sh first, then this file.
#
#   start_clamd            clamd in the foreground, its own EICAR signature
#                          (Debian ships none), a unix socket and a loopback
#                          TCP port, StreamMaxLength 1M; sets CLAMD_SOCK,
#                          CLAMD_TCP, CLAMD_PID
#   stop_clamd             TERM it (the "clamd stopped" cases)
#   start_spamd            spamd -L on a free loopback port; SPAMD_ADDR;
#                          SPAMD_CHILDREN=N: N children from the start
#                          (default: at most 2)
#   start_rspamd           rspamd with a minimal configuration in the
#                          private directory, offline; RSPAMD_ADDR (slow:
#                          about 20 s; rspamd_launch + rspamd_wait split it)
#   lmtp_send FILE TO...   one LMTP transaction with swaks; the replies to
#                          the final "." go to $LMTP_REPLIES (one per line)
#   eicar, gtube           the test strings
#
# Every daemon is started with e2e_spawn (its own process group, cwd in the
# private directory) and registered in E2E_SINK_PIDS, so lib.sh's EXIT trap
# kills it like the sinks, pass or fail.

# shellcheck disable=SC2016 # the $ are the test string's own
eicar() { printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'; }
gtube() { printf '%s' 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'; }

CLAMD_SOCK=
CLAMD_TCP=
CLAMD_PID=
SPAMD_ADDR=
RSPAMD_ADDR=

clamd_up() { [ -S "$CLAMD_SOCK" ] && port_listening 127.0.0.1 "${CLAMD_TCP##*:}"; }

start_clamd() {
    local dir=$E2E_TMP/clamd port
    need_cmd clamd
    mkdir -p "$dir/db"
    port=$(free_port)
    printf 'Eicar-Test-Signature:0:*:%s\n' "$(eicar | od -An -tx1 | tr -d ' \n')" >"$dir/db/eicar.ndb"
    cat >"$dir/clamd.conf" <<EOF
Foreground yes
LocalSocket $dir/clamd.sock
TCPSocket $port
TCPAddr 127.0.0.1
DatabaseDirectory $dir/db
LogFile $dir/clamd.log
StreamMaxLength 1M
User root
LocalSocketMode 666
EOF
    # LocalSocketMode 666: the benchmark's amavisd-new (user amavis) uses it too
    CLAMD_SOCK=$dir/clamd.sock
    CLAMD_TCP=127.0.0.1:$port
    e2e_spawn "$dir/clamd.out" clamd -c "$dir/clamd.conf"
    CLAMD_PID=$E2E_SPAWNED_PID
    E2E_SINK_PIDS+=("$CLAMD_PID")
    wait_for 60 clamd_up || fail "clamd does not listen on $CLAMD_SOCK and $CLAMD_TCP (see $dir/clamd.out)"
    say "clamd started (pid $CLAMD_PID): unix:$CLAMD_SOCK, $CLAMD_TCP, EICAR signature only"
}

stop_clamd() {
    e2e_kill_group "$CLAMD_PID" 5
    rm -f "$CLAMD_SOCK"
    say "clamd stopped"
}

start_spamd() {
    local dir=$E2E_TMP/spamd port
    need_cmd spamd
    mkdir -p "$dir"
    port=$(free_port)
    local children=(--max-children=2)
    [ -z "${SPAMD_CHILDREN:-}" ] ||
        children=(--min-children="$SPAMD_CHILDREN" --max-children="$SPAMD_CHILDREN")
    e2e_spawn "$dir/spamd.out" spamd -L -i 127.0.0.1 -p "$port" -A 127.0.0.1 "${children[@]}" \
        -r "$dir/spamd.pid" -s "$dir/spamd.log"
    E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
    SPAMD_ADDR=127.0.0.1:$port
    wait_port 127.0.0.1 "$port" 90 || fail "spamd does not listen on $SPAMD_ADDR (see $dir/spamd.out)"
    say "spamd started (pid $E2E_SPAWNED_PID): $SPAMD_ADDR, -L (offline)"
}

# rspamd takes ~20 s to start: rspamd_launch, other work, then rspamd_wait.
start_rspamd() {
    rspamd_launch
    rspamd_wait
}

rspamd_wait() {
    wait_port 127.0.0.1 "${RSPAMD_ADDR##*:}" 120 ||
        fail "rspamd does not listen on $RSPAMD_ADDR (see $E2E_TMP/rspamd/rspamd.log)"
    say "rspamd up: $RSPAMD_ADDR"
}

rspamd_launch() {
    local dir=$E2E_TMP/rspamd port
    need_cmd rspamd
    mkdir -p "$dir/db" "$dir/local/local.d"
    port=$(free_port)
    # Offline: the modules that query DNS would each wait for resolver
    # timeouts (~1 s a message now and then); GTUBE and the content rules
    # do not need them.
    local m
    for m in rbl spf dkim dmarc arc asn mx_check hfilter fuzzy_check emails; do
        echo 'enabled = false;' >"$dir/local/local.d/$m.conf"
    done
    cat >"$dir/rspamd.conf" <<EOF
.include "\$CONFDIR/common.conf"
options {
    pidfile = "\$RUNDIR/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    dns { nameserver = ["127.0.0.1:53"]; timeout = 0.5s; retransmits = 1; }
}
logging { type = "file"; filename = "\$LOGDIR/rspamd.log"; level = "info"; }
worker "normal" {
    bind_socket = "127.0.0.1:$port";
    count = 1;
    .include "\$CONFDIR/worker-normal.inc"
}
EOF
    e2e_spawn "$dir/rspamd.out" rspamd -f -i -u root -g root -c "$dir/rspamd.conf" \
        --var "DBDIR=$dir/db" --var "RUNDIR=$dir" --var "LOGDIR=$dir" --var "LOCAL_CONFDIR=$dir/local"
    E2E_SINK_PIDS+=("$E2E_SPAWNED_PID")
    RSPAMD_ADDR=127.0.0.1:$port
    say "rspamd starting (pid $E2E_SPAWNED_PID): $RSPAMD_ADDR, minimal configuration"
}

# lmtp_send FILE TO...: the message in FILE to sluice ($SLUICE_PORT) over
# LMTP from $E2E_FROM; LMTP_REPLIES holds the replies to the final dot.
LMTP_REPLIES=
lmtp_send() {
    local file=$1 out
    shift
    local to
    to=$(IFS=,; echo "$*")
    out=$E2E_TMP/swaks.$RANDOM.log
    timeout 120 swaks --protocol LMTP --server 127.0.0.1 --port "$SLUICE_PORT" \
        --helo origin.test --from "$E2E_FROM" --to "$to" --data "$file" --timeout 100 \
        >"$out" 2>&1 || true
    LMTP_REPLIES=$(awk '/^ -> \.$/ { d = 1; next } d && /^<[-*]/ { sub(/^<[-*]+ */, ""); print } /^ -> QUIT/ { d = 0 }' "$out" |
        grep -v '^221' || true)
    [ -n "$LMTP_REPLIES" ] || { cat "$out" >&2; fail "no reply to the final dot from sluice"; }
}

# newest_dump DIR: the sink's latest transaction file
newest_dump() { find "$1" -maxdepth 1 -type f -name 'm.*' -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-; }

# reply_n N: the N-th reply (1-based) of the last lmtp_send
reply_n() { printf '%s\n' "$LMTP_REPLIES" | sed -n "${1}p"; }

# A message file: mk_msg NAME SUBJECT BODY-FILE-OR-TEXT [EXTRA HEADER LINE...]
mk_msg() {
    local name=$1 f=$E2E_TMP/$1.eml subject=$2 body=$3
    shift 3
    {
        printf 'From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-ID: <%s.%s@e2e.test>\r\nSubject: %s\r\n' \
            "$E2E_FROM" "$E2E_RCPT" "$(date -R)" "$name" "$RANDOM" "$subject"
        local h
        for h in "$@"; do printf '%s\r\n' "$h"; done
        printf '\r\n%s\r\n' "$body"
    } >"$f"
    echo "$f"
}

# mk_attach NAME SUBJECT FILENAME TYPE < content : a multipart message with
# the content as a base64 attachment
mk_attach() {
    local f=$E2E_TMP/$1.eml subject=$2 fname=$3 type=$4
    {
        printf 'From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-ID: <%s.%s@e2e.test>\r\nSubject: %s\r\n' \
            "$E2E_FROM" "$E2E_RCPT" "$(date -R)" "$1" "$RANDOM" "$subject"
        printf 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="=b="\r\n\r\n'
        printf -- '--=b=\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n'
        printf -- '--=b=\r\nContent-Type: %s; name="%s"\r\nContent-Disposition: attachment; filename="%s"\r\n' \
            "$type" "$fname" "$fname"
        printf 'Content-Transfer-Encoding: base64\r\n\r\n'
        base64 -w 76 | sed 's/$/\r/'
        printf -- '--=b=--\r\n'
    } >"$f"
    echo "$f"
}
