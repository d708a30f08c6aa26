#!/usr/bin/env python3
"""bigmsg_send.py - one big message over LMTP (or SMTP) while sampling the
resident memory of a process tree from /proc (tests/bench/bigmsg_bench.sh).

usage: bigmsg_send.py HOST PORT SIZE KIND [NAME=]PID[,...] [LHLO|EHLO]

KIND: base64 (a short text part and an application/octet-stream attachment
of random bytes, base64) or text (one 7bit text/plain body). The message
is exactly SIZE bytes as sent (CRLF lines, before dot-stuffing; no line
starts with a dot, the last ends with CRLF). Every process of each PID's tree (children found
through /proc/PID/task/*/children) is sampled every 2 ms; prints one
key=value line per process: its role (NAME of a NAME=PID argument, or
"process"; child-of-PID for a child), VmHWM and the largest
VmRSS seen, and the RSS before the message (kB), then reply=... and
seconds=... With TRACE=FILE in the environment, every sample also goes to
FILE ("ms pid rss_kb", ms from the connection; "ms sent" when the last
byte of DATA is written).
"""
import os, random, socket, sys, threading, time

host, port, size, kind, roots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
hello = sys.argv[6] if len(sys.argv) > 6 else "LHLO"


def build():
    head = (b"From: big@bench.test\r\nTo: rcpt@bench.test\r\nSubject: big message\r\n"
            b"Message-ID: <big.%d@bench.test>\r\nMIME-Version: 1.0\r\n" % os.getpid())
    if kind == "text":
        parts = [head, b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"]
        line = b"the quick brown fox jumps over the lazy dog, again and again and again.\r\n"
        n = (size - sum(map(len, parts))) // len(line) - 1
        parts.append(line * n)
    else:
        import base64
        parts = [head, b"Content-Type: multipart/mixed; boundary=\"BIG\"\r\n\r\n",
                 b"--BIG\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n",
                 b"--BIG\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
                 b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n"]
        raw_len = (size - 4096) // 78 * 57
        raw = random.Random(1).randbytes(raw_len)
        b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")  # 76 columns
        parts += [b64, b"--BIG--\r\n"]
    used = sum(map(len, parts))
    rest = size - used
    pad = []
    assert rest >= 3
    while rest > 0:     # filler lines (the epilogue, or more text) to the exact size
        k = rest if rest <= 78 else 75 if rest - 78 < 3 else 78
        pad.append(b"y" * (k - 2) + b"\r\n")
        rest -= k
    msg = b"".join(parts + pad)
    assert len(msg) == size, (len(msg), size)
    assert b"\r\n." not in msg
    return msg


kind_of = {}


def tree(pid, what="process"):
    out = [pid]
    kind_of[pid] = what
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                for c in f.read().split():
                    out += tree(int(c), "child-of-%d" % pid)
    except OSError:
        pass
    return out


def status(pid):
    v = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for l in f:
                k, _, val = l.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    v[k] = int(val.split()[0])
        v["role"] = kind_of.get(pid, "?")
    except OSError:
        return None
    return v


msg = build()
pids = []
for r in roots.split(","):
    name, _, pid = r.rpartition("=")
    pids += tree(int(pid), name or "process")
before = {p: status(p) for p in pids}
peak = {p: 0 for p in pids}
stop = False
trace = open(os.environ["TRACE"], "w") if os.environ.get("TRACE") else None
t0 = time.time()


def sampler():
    while not stop:
        for p in pids:
            s = status(p)
            if s and s.get("VmRSS", 0) > peak[p]:
                peak[p] = s["VmRSS"]
            if s and trace:
                trace.write("%.0f %d %d\n" % ((time.time() - t0) * 1000, p, s.get("VmRSS", 0)))
        time.sleep(0.002)


th = threading.Thread(target=sampler)
th.start()
s = socket.create_connection((host, port))
f = s.makefile("rb")


def reply():
    lines = []
    while True:
        l = f.readline()
        if not l:
            raise SystemExit("connection closed")
        lines.append(l.decode(errors="replace").rstrip())
        if l[3:4] != b"-":
            return lines[-1]


reply()
for cmd in (hello + " bench.test", "MAIL FROM:<big@bench.test> SIZE=%d" % size, "RCPT TO:<rcpt@bench.test>", "DATA"):
    s.sendall(cmd.encode() + b"\r\n")
    r = reply()
    if not r[:1] in "23":
        raise SystemExit("%s: %s" % (cmd, r))
s.sendall(msg)
del msg
s.sendall(b".\r\n")
if trace:
    trace.write("%.0f sent\n" % ((time.time() - t0) * 1000))
final = reply()
secs = time.time() - t0
time.sleep(0.3)     # the reinjection is finished before the reply; let sampling settle
stop = True
th.join()
if trace:
    trace.close()
s.sendall(b"QUIT\r\n")
s.close()
for p in pids:
    st = status(p)
    if st is None:
        continue
    print("pid=%d role=%s before_rss_kb=%d hwm_kb=%d peak_rss_kb=%d" %
          (p, st["role"], (before[p] or {}).get("VmRSS", 0), st["VmHWM"], peak[p]))
print("reply=%s" % final.replace(" ", "_"))
print("seconds=%.2f" % secs)
