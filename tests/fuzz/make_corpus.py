#!/usr/bin/env python3
"""make_corpus.py - writes each fuzz target's starting corpus (docs/fuzzing.md).

    tests/fuzz/make_corpus.py          # rewrites tests/fuzz/corpus/<target>/seed-*

Each seed is a small, meaningful input named after what it exercises. The
files are checked in; run this again after changing a seed here. It only
replaces files called seed-*: regression inputs (regress-*, crashes found by
fuzzing, see docs/fuzzing.md) are kept. Input layouts are described at the
top of each fuzz_<target>.c.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- fuzz_smtp_parser: byte 0 = limits, then what the client sends ----------

# bits 0-2: max_command_line index into {2,3,7,16,64,512,1024,4096};
# bits 3-5: max_message_size index into {0,1,2,5,16,100,1000,0}
LIM_DEFAULT = bytes([7])               # 4096, unlimited
LIM_SHORT_LINES = bytes([3])           # 16-byte command lines
LIM_SMALL_MSG = bytes([7 | (4 << 3)])  # 16-byte messages
LIM_TINY = bytes([0 | (1 << 3)])       # 2-byte lines, 1-byte messages

MSG = (b"Received: from mx.example.org\r\n"
       b"From: Alice <alice@example.net>\r\n"
       b"To: <user@example.org>\r\n"
       b"Subject: hello\r\n"
       b"Message-ID: <1@example.net>\r\n"
       b"\r\n"
       b"Hello.\r\n"
       b"..a stuffed line\r\n"
       b"\r\n.\r\n")


def smtp_parser():
    s = {}
    s["lmtp-session"] = LIM_DEFAULT + (
        b"LHLO mx.example.org\r\n"
        b"MAIL FROM:<alice@example.net> SIZE=120 BODY=8BITMIME\r\n"
        b"RCPT TO:<user@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@example.org\r\n"
        b"RCPT TO:<bob@example.org>\r\n"
        b"DATA\r\n" + MSG + b"QUIT\r\n")
    s["smtp-xforward"] = LIM_DEFAULT + (
        b"EHLO mx.example.org\r\n"
        b"XFORWARD NAME=client.example.net ADDR=198.51.100.7 PORT=4711 PROTO=ESMTP\r\n"
        b"XFORWARD HELO=client.example.net IDENT=4Xyz1234 SOURCE=REMOTE DOMAIN=LOCAL\r\n"
        b"MAIL FROM:<> RET=HDRS ENVID=QQ314159\r\n"
        b"RCPT TO:<postmaster@example.org>\r\n"
        b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    s["smuggle-lf-dot-lf"] = LIM_DEFAULT + (
        b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: one\r\n\r\nx\n.\n"
        b"MAIL FROM:<evil@x>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: two\r\n\r\n.\r\n")
    s["smuggle-lf-dot-crlf"] = LIM_DEFAULT + (
        b"DATA\r\nSubject: one\r\n\r\nx\n.\r\nMAIL FROM:<evil@x>\r\n\r\n.\r\n")
    s["smuggle-cr-dot-cr"] = LIM_DEFAULT + (
        b"DATA\r\nSubject: one\r\n\r\nx\r.\rMAIL FROM:<evil@x>\r\r\n.\r\n")
    s["smuggle-crlf-dot-lf"] = LIM_DEFAULT + b"DATA\r\nx\r\n.\nRSET\r\n\r\n.\r\n"
    s["data-bare-cr-lf-nul-8bit"] = LIM_DEFAULT + (
        b"DATA\r\nSubject: \xc3\xa9t\xc3\xa9\r\n\r\na\rb\nc\x00d\r\r\n\n\r.\r\n")
    s["data-bare-cr-header"] = LIM_DEFAULT + (
        b"DATA\r\nX-Note: hi\rFrom: ceo@victim.example\r\n\rX-Folded: y\r\n\r\n"
        b".\rx\r\n.\r\r\n\r\r\n.\r\n")
    s["data-dots"] = LIM_DEFAULT + b"DATA\r\n.\r\n"
    s["data-dot-lines"] = LIM_DEFAULT + b"DATA\r\n..\r\n...\r\n.x\r\n.\n.\rx\r\n.\r\n"
    s["data-empty-lines"] = LIM_DEFAULT + b"data\r\n\r\n\r\n\r\n.\r\nnoop\r\n"
    s["command-errors"] = LIM_DEFAULT + (
        b"NOOP\n"
        b"NOOP\rx\r\n"
        b"NO\x00OP\r\n"
        b"\r\n"
        b"FOO bar\r\n"
        b"noop  two  spaces\r\n")
    s["all-verbs"] = LIM_DEFAULT + (
        b"HELO a\r\nEHLO b\r\nLHLO c\r\nRSET\r\nNOOP\r\nVRFY user\r\nEXPN list\r\n"
        b"HELP\r\nETRN x\r\nAUTH PLAIN\r\nSTARTTLS\r\nBDAT 10 LAST\r\nQUIT\r\n")
    s["pipelined-data-before-354"] = LIM_DEFAULT + (
        b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\n.\r\nQUIT\r\n")
    s["paths"] = LIM_DEFAULT + (
        b"MAIL FROM:<@relay.example,@other.example:alice@example.net>\r\n"
        b"MAIL FROM: <\"quoted local\\\"part\"@example.net> SMTPUTF8\r\n"
        b"MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8 BODY=8BITMIME\r\n"
        b"RCPT TO:<>\r\n"
        b"RCPT TO:<a b@c>\r\n"
        b"RCPT TO:<a@b> NOTIFY=NEVER ORCPT=rfc822;a+2Bb@c\r\n"
        b"RCPT TO:<a@b> BAD==x =y\r\n"
        b"MAIL FROM:<a@b\r\n"
        b"MAIL TO:<a@b>\r\n"
        b"RCPT TO:<" + b"x" * 70 + b"@example.org>\r\n")
    s["xforward-errors"] = LIM_DEFAULT + (
        b"XFORWARD\r\nXFORWARD =x\r\nXFORWARD NAME\r\nXFORWARD NAME=a\tb\r\n"
        b"XFORWARD name=[UNAVAILABLE] addr=\r\n")
    s["long-lines-16"] = LIM_SHORT_LINES + (
        b"NOOP\r\n"
        b"MAIL FROM:<alice@example.net>\r\n"
        b"0123456789abcd\r\n"
        b"0123456789abcde\r\n"
        b"RSET\r\n"
        b"x" * 40)
    s["size-limit-16"] = LIM_SMALL_MSG + (
        b"DATA\r\nSubject: a long subject\r\n\r\nbody\r\n.\r\n"
        b"DATA\r\n0123456789abcdef\r\n.\r\n"
        b"DATA\r\n0123456789abc\r\n.\r\nQUIT\r\n")
    s["tiny-limits"] = LIM_TINY + b"\r\nDATA\r\n\r\nx\r\n.\r\n"
    return s


# ---- fuzz_smtp_reply: what the :10025 server sends ---------------------------

def smtp_reply():
    return {
        "greeting": b"220 localhost ESMTP Postfix (Debian/GNU)\r\n",
        "ehlo": (b"250-localhost\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ETRN\r\n"
                 b"250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n"
                 b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n"),
        "transaction": (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                        b"250 2.0.0 Ok: queued as 4SbXyZ1234\r\n221 2.0.0 Bye\r\n"),
        "failures": (b"451 4.3.0 Error: queue file write error\r\n"
                     b"452 4.5.3 Error: too many recipients\r\n"
                     b"550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n"
                     b"554 5.7.1 Rejected\r\n421 4.4.2 localhost Error: timeout exceeded\r\n"),
        "code-only-and-empty-text": b"250\r\n250 \r\n250-\r\n250 x\r\n",
        "enhanced-edge": (b"250 2.0\r\n250 2.0.0\r\n250 5.0.0 class mismatch\r\n"
                          b"250 2.1000.0 long\r\n250 2.0.0x\r\n451 4.7.1\r\n"),
        "multi-line-enhanced": b"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n",
        "err-lf-only": b"250 ok\n",
        "err-bad-code": b"699 no\r\n",
        "err-inconsistent": b"250-a\r\n251 b\r\n",
        "err-separator": b"250_x\r\n",
        "err-bare-cr": b"250 a\rb\r\n",
        "err-nul": b"250 a\x00b\r\n",
        "err-long-line": b"250 " + b"x" * 2100 + b"\r\n",
        "too-many-lines": b"250-x\r\n" * 100 + b"250 y\r\n",
        "partial": b"250-first\r\n250 incomplete",
    }


# ---- fuzz_wire: one protobuf Frame (proto/sluice.proto) ----------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((field << 3) | 2) + varint(len(data)) + data


def frame(kind_field, body, version=1):
    out = b""
    if version:
        out += f_varint(1, version)
    return out + f_bytes(kind_field, body)


def recipient(addr, notify="", orcpt=""):
    m = f_bytes(1, addr)
    if notify:
        m += f_bytes(2, notify)
    if orcpt:
        m += f_bytes(3, orcpt)
    return m


def job(job_id="AbCd-_012345", rcpts=None, attempt=0, extra=b""):
    xf = (f_bytes(1, "client.example.net") + f_bytes(2, "198.51.100.7") + f_bytes(3, "4711") +
          f_bytes(4, "ESMTP") + f_bytes(5, "client.example.net") + f_bytes(6, "4Xyz1234") +
          f_bytes(7, "REMOTE") + f_bytes(8, "LOCAL"))
    if rcpts is None:
        rcpts = [recipient("alice@example.org", "SUCCESS,FAILURE", "rfc822;alice@example.org"),
                 recipient("bob@example.org")]
    m = (f_bytes(1, job_id) + f_bytes(2, "default") + f_bytes(3, "127.0.0.1") +
         f_varint(4, 1700000000000) + f_bytes(5, "sender@example.net") + f_bytes(6, "HDRS") +
         f_bytes(7, "QQ314159") + f_bytes(8, "8BITMIME") + f_varint(9, 1))
    for r in rcpts:
        m += f_bytes(10, r)
    m += f_bytes(11, xf) + f_varint(12, 1234)
    if attempt:
        m += f_varint(13, attempt)
    m += (f_bytes(14, "mx.example.org") + f_bytes(15, "LMTP") + f_varint(16, 1699999999000) +
          f_bytes(17, "filter.example.org") + f_varint(18, 10024))
    return m + extra


def edit(op, name, value):
    m = b""
    if op:
        m += f_varint(1, op)
    return m + f_bytes(2, name) + f_bytes(3, value)


def verdict(ok=True, edits=None):
    m = f_bytes(1, "AbCd-_012345")
    if ok:
        m += f_varint(2, 1) + f_bytes(4, "CLEAN")
    else:
        m += f_bytes(3, "worker timeout")
    for e in edits or []:
        m += f_bytes(5, e)
    return m + f_bytes(6, "1@example.net") + f_bytes(7, "vm:123:p1w0") + f_varint(8, 12) + \
        f_varint(9, 3)


def wire():
    edits = [edit(0, "Received", "from mx.example.org by filter.example.org with LMTP id x; "
                                 "Tue, 21 Nov 2023 10:04:13 +0100"),
             edit(1, "X-Virus-Scanned", "sluice at filter.example.org"),
             edit(2, "X-Spam-Status", "No"),
             edit(3, "X-Spam-Flag", "")]
    return {
        "job": frame(11, job()),
        "job-minimal": frame(11, f_bytes(1, "AAAAAAAAAAAA") + f_varint(4, 1) +
                             f_bytes(10, recipient("a@b"))),
        "job-attempt-3": frame(11, job(attempt=3)),
        "job-unknown-field": frame(11, job(extra=f_varint(99, 7))),
        "job-bad-id": frame(11, job(job_id="short")),
        "job-crlf-rcpt": frame(11, job(rcpts=[recipient("a@b\r\nRCPT TO:<evil@x>")])),
        "verdict-clean": frame(12, verdict(edits=edits)),
        "verdict-fail": frame(12, verdict(ok=False)),
        "verdict-bad-header-name": frame(12, verdict(edits=[edit(1, "Bad Name:", "x")])),
        "ready": frame(10, f_bytes(1, "vm:123:p1w0") + f_varint(2, 4)),
        "ready-zero-slots": frame(10, f_bytes(1, "w")),
        "heartbeat": frame(13, b""),
        "disconnect": frame(14, b""),
        "no-version": frame(13, b"", version=0),
        "version-2": frame(13, b"", version=2),
        "two-kinds": frame(13, b"") + f_bytes(14, b""),
        "empty": b"",
    }


# ---- fuzz_config: YAML, then NUL-separated -o overrides ---------------------

FULL_YAML = b"""# two Postfix instances on one box
frontend:
  listen: "[::1]:10024"
  acl:
    - 127.0.0.0/8
    - ::1
    - 10.0.0.0/8
  hostname: filter.example.com
  max_message_size: 20M
  recipient_limit: 500
  timeout: 5m
job:
  timeout: 10m
broker:
  listen: tcp://*:5555
  endpoints: tcp://10.0.0.1:5555, tcp://10.0.0.2:5555
workers:
  count: 12
reinject:
  timeout: 2m
log:
  target: syslog
  level: debug
redis:
  url: redis://127.0.0.1:6379/2
origins:
  default:
    concurrency: 10
  o2:
    match: 127.0.0.2
    reinject: 127.0.0.2:10025
    concurrency: 4
  backup:
    match: ["192.0.2.0/24", "2001:db8::/32"]
    reinject: "[2001:db8::25]:10025"
"""


def config():
    return {
        "full": FULL_YAML,
        "empty": b"",
        "comments-only": b"# nothing\n# here\n",
        "empty-sections": b"frontend:\norigins:\n",
        "flow-style": b"{frontend: {listen: '127.0.0.1:10024', acl: [127.0.0.1, '::1']},"
                      b" log: {level: INFO}}\n",
        "overrides": b"frontend:\n  timeout: 60\n\x00frontend.timeout=8m\x00"
                     b"origins.o2.match=127.0.0.2\x00origins.default.concurrency=3",
        "override-errors": b"\x00frontend\x00frontend.listne=x\x00=x\x00origins.a.b.c=1",
        "unknown-key": b"frontend:\n  listne: 127.0.0.1:10024\n",
        "duplicate-key": b"log:\n  level: info\n  level: debug\n",
        "dotted-in-file": b"frontend.listen: 127.0.0.1:1\n",
        "bad-values": b"frontend:\n  max_message_size: 12X\n  timeout: 99999999999999999999\n",
        "job-timeout-1200": b"job:\n  timeout: 20m\n",
        "origin-without-match": b"origins:\n  o3:\n    concurrency: 2\n",
        "default-with-match": b"origins:\n  default:\n    match: 127.0.0.1\n",
        "bad-origin-name": b"origins:\n  -bad:\n    match: 127.0.0.1\n",
        "cidr-host-bits": b"frontend:\n  acl: 127.0.0.1/8\n",
        "reinject-forms": b"origins:\n  a:\n    match: 10.0.0.1\n    reinject: client:10026\n"
                          b"  b:\n    match: 10.0.0.2\n    reinject: mx.example.org:25\n",
        "anchors": b"frontend: &f\n  timeout: 60\njob: *f\n",
        "two-documents": b"log:\n  level: info\n---\nlog:\n  level: debug\n",
        "not-a-map": b"- a\n- b\n",
        "list-as-value": b"log:\n  level: [info]\n",
        "quoted-escapes": b"frontend:\n  hostname: \"a\\x00b\\nc\"\nredis:\n  url: 'unix:///run/r.sock'\n",
        "syntax-error": b"frontend:\n  listen: [unclosed\n",
        "bad-utf8": b"log:\n  level: \xff\xfe\n",
        "null-values": b"frontend:\n  hostname: ~\n  acl: null\nredis:\n  url:\n",
        "endpoints-list": b"broker:\n  endpoints:\n    - ipc:///run/sluice/b\n"
                          b"    - tcp://[::1]:5555\n    - inproc://x\n",
    }


# ---- fuzz_message: byte 0 = edit count; op, name NUL, value NUL; message ----

def edits_prefix(edits):
    out = bytes([len(edits)])
    for op, name, value in edits:
        out += bytes([op]) + name + b"\x00" + value + b"\x00"
    return out


MESSAGE = (b"Return-Path: <alice@example.net>\r\n"
           b"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
           b"\tby example.org (Postfix) with ESMTP id 4SbXyZ1234\r\n"
           b"From: Alice <alice@example.net>\r\n"
           b"To: <user@example.org>\r\n"
           b"Subject: hello\r\n"
           b"X-Spam-Flag: YES\r\n"
           b"x-spam-flag: yes\r\n"
           b"\r\n"
           b"Hello.\r\n"
           b".\r\n"
           b"..\r\n"
           b".leading dot\r\n"
           b"\r\n")

RECEIVED = (b"from mx.example.org (localhost [127.0.0.1]) by filter.example.org "
            b"(sluice 0.1.0, port 10024) with LMTP id AbCd-_012345; "
            b"Tue, 21 Nov 2023 10:04:13 +0100")


def message():
    return {
        "no-edits": edits_prefix([]) + MESSAGE,
        "sluice-edits": edits_prefix([(0, b"Received", RECEIVED),
                                      (1, b"X-Virus-Scanned", b"sluice at filter.example.org")])
        + MESSAGE,
        "replace-delete": edits_prefix([(2, b"Subject", b"[SPAM] hello"),
                                        (3, b"X-Spam-Flag", b""),
                                        (2, b"X-New", b"appended because absent")]) + MESSAGE,
        "hostile-edits": edits_prefix([(0, b"Bad Name", b"x"),
                                       (1, b"X-Inject", b"a\r\nBcc: evil@example.com"),
                                       (1, b".dot", b"value"),
                                       (2, b"X-Ctl", b"\x01\x02\tx\x7f")]) + MESSAGE,
        "bare-line-ends": edits_prefix([]) + b"Subject: a\rX: b\nY: c\r\n\r\n.\r..\n.x\rend",
        "no-body": edits_prefix([(1, b"X-A", b"1")]) + b"Subject: only headers\r\nX: y",
        "no-headers": edits_prefix([(0, b"X-A", b"1")]) + b"\r\nbody only\r\n.\r\n",
        "empty": edits_prefix([(1, b"X-A", b"1")]),
        "folded": edits_prefix([(2, b"Subject", b"word " * 40)]) +
        b"Subject: a\r\n  folded\r\n\tmore\r\n\r\nb\r\n",
        "leading-space": edits_prefix([(0, b"X-A", b"1")]) + b" continuation first\r\nS: x\r\n\r\n",
        "nul-8bit": edits_prefix([(2, b"Subject", b"\xc3\xa9")]) +
        b"Subject: a\x00b\r\nX: \xff\r\n\r\n\x00\r\n",
        "dot-only": edits_prefix([]) + b".",
        "no-empty-line": edits_prefix([(0, b"Received", RECEIVED), (1, b"X-Virus-Scanned", b"s")])
        + b"Subject: x\r\nX-A: 1\r\nThis is the body, no empty line\r\nY: 2\r\n",
        "body-first-line": edits_prefix([(1, b"X-A", b"1"), (3, b"Y", b"")])
        + b"Bad Name: a\r\nY: b\r\n\xc3\xbc: c\r\n",
    }


# ---- fuzz_status_json: the body of a node's GET /status ---------------------

def status_json():
    node = (b'{"state":"ok","reasons":[],"registry":{"url":"http://127.0.0.1:9100/status",'
            b'"reachable":true},"nodes":[{"id":"broker:vm:7","role":"broker",'
            b'"address":"inproc://sluice-broker","alive":true,"last_seen_seconds_ago":0,'
            b'"version":"0.1.0","pid":8,"uptime_s":12,"queue_depth":0,"oldest_age_ms":0,'
            b'"inflight":0,"workers":2,"slots_free":2},{"id":"frontend:vm:7","role":"frontend",'
            b'"address":"127.0.0.1:10024","alive":true,"last_seen_seconds_ago":0,"sessions":1,'
            b'"brokers":1,"brokers_alive":1,"origin.default.sessions":1,'
            b'"origin.default.concurrency":2},{"id":"worker:vm:7","role":"worker",'
            b'"address":"vm pid 8","alive":true,"last_seen_seconds_ago":0,"slots":2,'
            b'"brokers":1}],"queue":{"depth":0,"oldest_age_seconds":0,"inflight":0},'
            b'"workers":{"slots":2,"busy":0,"free":2},"origins":[{"name":"default",'
            b'"sessions":1,"concurrency":2}],"provisioning":{"origin_concurrency":2,'
            b'"worker_slots":2,"shortfall":0}}\n')
    return {
        "node-all": node,
        "gone-node": b'{"nodes":[{"id":"worker:h:1","role":"worker","address":"","alive":false,'
                     b'"last_seen_seconds_ago":8}]}',
        "odd-values": b'{"nodes":[{"id":"x\\u0000y","role":"","alive":true,"last_seen_seconds_ago":-1,'
                      b'"jobs":"0123","name":"a\\"b\\\\c\\n","n":9223372036854775807}]}',
        "unreachable": b'{"state":"degraded","reasons":["node unreachable: status unknown"],'
                       b'"registry":{"url":"http://127.0.0.1:9/status","reachable":false,'
                       b'"error":"cannot connect"},"nodes":[],"queue":null,"origins":[]}',
        "not-status": b'{"nodes":{"id":1}}',
    }


# ---- fuzz_mime: the message as the worker gets it ---------------------------

MIME_HEAD = (b"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
             b"\tby example.org (Postfix) with ESMTP id 4SbXyZ1234\r\n"
             b"Received: from client.example.net by mx.example.org\r\n"
             b"From: Alice <alice@example.net>\r\n"
             b"To: <user@example.org>\r\n"
             b"Subject: files\r\n"
             b"Message-ID: <2@example.net>\r\n"
             b"MIME-Version: 1.0\r\n")


def mime():
    return {
        "multipart-attachment": MIME_HEAD + (
            b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            b"preamble\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
            b"--b\r\nContent-Type: application/octet-stream; name=\"a.exe\"\r\n"
            b"Content-Disposition: attachment; filename=\"a.exe\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAA==\r\n"
            b"--b--\r\nepilogue\r\n"),
        "nested-rfc822": MIME_HEAD + (
            b"Content-Type: message/rfc822\r\n\r\n"
            b"Subject: inner\r\nSubject: again\r\nMessage-ID: <inner@example.net>\r\n"
            b"Content-Type: multipart/alternative; boundary=i\r\n\r\n"
            b"--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
            b"--i\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--i--\r\n"),
        "mbox-from-line": b"From alice@example.net Sun Dec  6 12:00:00 2026\r\n" + MIME_HEAD
        + b"\r\nbody\r\n",
        "repeated-fields": (b"Received: a\r\nReceived: b\r\nSubject: one\r\nsubject: two\r\n"
                            b"X-Dup: 1\r\nX-Dup: 1\r\nMessage-ID: <1@x>\r\nMessage-Id: <2@x>\r\n"
                            b"Content-Type: multipart/mixed; boundary=b\r\n"
                            b"Content-Type: text/plain\r\n\r\n"
                            b"--b\r\nReceived: c\r\nReceived: d\r\nContent-Type: text/plain\r\n\r\nx\r\n"
                            b"--b--\r\n"),
        "encrypted": MIME_HEAD + (
            b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
            b"boundary=e\r\n\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
            b"Version: 1\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\nxx\r\n--e--\r\n"),
        "smime": MIME_HEAD + (
            b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n"),
        "no-boundary": b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\n--b\r\nnot a part",
        "uuencode": MIME_HEAD + (
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
            b"begin 644 a.exe\r\n#35H`\r\n`\r\nend\r\n"),
        "rfc2231-name": MIME_HEAD + (
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Disposition: attachment; filename*0*=utf-8''%E2%82%AC; filename*1=.exe\r\n"
            b"Content-Type: application/x-msdownload\r\n\r\nMZ\r\n--b--\r\n"),
        "digest": MIME_HEAD + (
            b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
            b"Subject: one\r\n\r\nfirst\r\n--d\r\n\r\nSubject: two\r\n\r\nsecond\r\n--d--\r\n"),
        "invalid-lines": (b"Subject: x\r\nno colon here\r\n folded\r\nBad Name: y\r\n"
                          b"X-Ctl: a\x01b\r\nSubject: =?utf-8?B?w6k=?=\r\n\r\nbody"),
        "bare-line-ends": b"Subject: a\rContent-Type: multipart/mixed; boundary=b\n\n--b\r\r\nx\n--b--",
        "no-empty-line": b"Subject: no empty line and no end",
    }


TARGETS = {
    "smtp_parser": smtp_parser,
    "smtp_reply": smtp_reply,
    "wire": wire,
    "config": config,
    "message": message,
    "status_json": status_json,
    "mime": mime,
}


def main():
    for target, make in TARGETS.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.unlink(os.path.join(d, f))
        seeds = make()
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as fp:
                fp.write(data)
        print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
