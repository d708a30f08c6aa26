#!/usr/bin/env python3
"""run.py - run sluice dialogue scripts against a real `sluice all`.

SYNOPSIS
    SLUICE_BIN=build/sluice tests/dialogue/run.py [--keep] [--mode both|whole|bytes] SCRIPT...

DESCRIPTION
    For each script: start smtp-sink (the reinjection target, with the
    script's fault options) behind a recording TCP relay (the "wire tap",
    which keeps every byte sluice sends towards the sink), start
    `$SLUICE_BIN all` on a free loopback port reinjecting through the tap,
    then play the script twice: once with each group of lines written in
    one write ("whole"), once with every byte in a write of its own
    ("bytes"). Both runs must meet every expectation. Finally sluice must
    still be running and must stop cleanly on SIGTERM.

    Script lines (the first character is the operator; see README.md):
        # comment                 !OPTION ...        (before the first step)
        >TEXT    send TEXT CRLF   >>TEXT   send TEXT (no CRLF)
        >!TEXT / >>!TEXT          the same, but one write even in "bytes" mode
        <REGEX   the next reply line must match REGEX (Python re.match)
        =DIRECTIVE ...            everything else (=close, =deliveries, =dump, ...)
    TEXT understands \\r \\n \\t \\0 \\xNN \\\\ and {{python expression}}.

ENVIRONMENT
    SLUICE_BIN   the binary under test (default: build/sluice)
    DIALOGUE_KEEP=1   keep the private directory (also --keep)
    DIALOGUE_TRACE=1  print every reply line as it is matched

EXIT STATUS
    0 when every script passed in every mode, 1 otherwise, 2 on usage errors.
"""

import argparse
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

STEP_TIMEOUT = 10.0  # default wait for one reply, one EOF, one delivery
TRACE = os.environ.get("DIALOGUE_TRACE") == "1"  # print every reply line read


class Fail(Exception):
    pass


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# text of a script line


def expand(text, env):
    """Escapes and {{expressions}} -> bytes."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("{{", i):
            j = text.index("}}", i + 2)
            val = eval(text[i + 2:j], {"__builtins__": __builtins__}, env)  # test material
            out += val if isinstance(val, (bytes, bytearray)) else str(val).encode("utf-8")
            i = j + 2
            continue
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
            if n in simple:
                out += simple[n]
                i += 2
                continue
            if n == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


# --------------------------------------------------------------------------
# helpers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                local, state = parts[1], parts[3]
                if state == "0A" and int(local.split(":")[1], 16) == port:
                    return True
    except OSError:
        pass
    return False


def wait_until(pred, secs, step=0.05):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def proc_children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


# --------------------------------------------------------------------------
# the wire tap: a relay that records what sluice sends to smtp-sink


class Tap:
    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.captured = []  # one bytearray per connection, client -> sink
        self.connections = 0
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        # in place: a pooled connection of the last run keeps its buffer
        with self.lock:
            for buf in self.captured:
                del buf[:]
            self.connections = 0

    def wire(self):
        with self.lock:
            return b"".join(bytes(c) for c in self.captured)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            buf = bytearray()
            with self.lock:
                self.captured.append(buf)
                self.connections += 1
            done = threading.Event()
            threading.Thread(target=self._pump, args=(c, s, buf, done), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, None, done), daemon=True).start()

    def _pump(self, src, dst, record, done):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    with self.lock:
                        record += data
                dst.sendall(data)
        except OSError:
            pass
        # Either side gone: the other one sees a plain close, as it would
        # without the tap (smtp-sink -q "disconnect without reply").
        done.set()
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def stop(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# one client connection: a reader thread splits replies into lines


class Conn:
    def __init__(self, name, port, bind=None):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if bind:
            self.sock.bind((bind, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(("127.0.0.1", port))
        self.cv = threading.Condition()
        self.lines = []
        self.eof = False
        self.error = None
        self.bad = []  # reply lines with a stray CR or LF
        self.discarded = False  # =disconnect: what was not read is no longer expected
        self.reading = threading.Event()  # cleared: we do not read (=pause-reading)
        self.reading.set()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        try:
            while True:
                self.reading.wait()
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if b"\r" in line or b"\n" in line:
                        self.bad.append(line)
                    with self.cv:
                        self.lines.append(line)
                        self.cv.notify_all()
        except OSError as e:
            self.error = e
        with self.cv:
            if buf:
                self.lines.append(buf)  # a reply without CRLF: reported by expect()
            self.eof = True
            self.cv.notify_all()

    def send(self, data, bytewise):
        try:
            if bytewise:
                for i in range(len(data)):
                    self.sock.send(data[i:i + 1])
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise Fail("[%s] send failed: %s" % (self.name, e))

    def flood(self, data, count):
        """Send data count times from a thread of its own (the script goes
        on while the peer does not read); stops quietly when the peer is
        gone."""
        def run():
            chunk = data * max(1, 65536 // max(1, len(data)))
            left = len(data) * count
            try:
                while left > 0:
                    part = chunk[:left]
                    self.sock.sendall(part)
                    left -= len(part)
            except OSError:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def next_line(self, timeout):
        with self.cv:
            if not self.cv.wait_for(lambda: self.lines or self.eof, timeout):
                return None, "timeout"
            if self.lines:
                return self.lines.pop(0), None
            return None, "eof"

    def pending(self):
        with self.cv:
            return [] if self.discarded else list(self.lines)

    def wait_eof(self, timeout):
        with self.cv:
            self.cv.wait_for(lambda: self.lines or self.eof, timeout)
            return self.eof and not self.lines

    def close(self):
        # shutdown() first: close() alone does not end a connection whose
        # descriptor the reader thread is blocked on
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# a script


class Script:
    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.sluice_args = []
        self.sink_args = []
        self.sink = True
        self.modes = ["whole", "bytes"]
        self.bytes_reason = None
        self.nofile = None
        self.step_timeout = STEP_TIMEOUT
        self.env = {}
        self.steps = []  # (lineno, op, arg)
        with open(path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                line = raw.rstrip("\n")
                if line.endswith("\r"):
                    line = line[:-1]
                if not line or line.startswith("#"):
                    continue
                if line.startswith("!"):
                    if self.steps:
                        raise SystemExit("%s:%d: options must come before the first step" % (path, n))
                    self._option(line[1:], n)
                    continue
                for op in (">>!", ">>", ">!", ">", "<", "="):
                    if line.startswith(op):
                        self.steps.append((n, op, line[len(op):]))
                        break
                else:
                    raise SystemExit("%s:%d: unknown line: %s" % (path, n, line))

    def _option(self, text, n):
        key, _, rest = text.partition(" ")
        if key == "sluice":
            self.sluice_args += shlex.split(rest)
        elif key == "sink":
            if rest.strip() == "none":
                self.sink = False
            else:  # escapes too, for multi-line reply texts (-b/-B)
                self.sink_args += [os.fsdecode(expand(a, {})) for a in shlex.split(rest)]
        elif key == "whole-only":
            self.modes = ["whole"]
            self.bytes_reason = rest.strip()
            if not self.bytes_reason:
                raise SystemExit("%s:%d: !whole-only needs a reason" % (self.path, n))
        elif key == "nofile":
            self.nofile = int(rest)
        elif key == "timeout":
            self.step_timeout = float(rest)
        elif key == "env":
            k, _, v = rest.strip().partition("=")
            self.env[k] = v
        else:
            raise SystemExit("%s:%d: unknown option !%s" % (self.path, n, key))


class Runner:
    def __init__(self, script, sluice_bin, keep):
        self.s = script
        self.bin = sluice_bin
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="sluice-dialogue.%s." % script.name)
        os.chmod(self.dir, 0o755)
        self.sink_proc = None
        self.sluice = None
        self.tap = None
        self.sink_port = None
        self.log_path = os.path.join(self.dir, "sluice.log")
        self.dump_dir = os.path.join(self.dir, "dumps")

    # ---- daemons

    def start(self):
        env_vars = {"port": 0}
        if self.s.sink:
            self.sink_port = free_port()
            os.makedirs(self.dump_dir)
            cmd = ["smtp-sink"]
            if os.geteuid() == 0:
                shutil.chown(self.dump_dir, "nobody")
                cmd += ["-u", "nobody"]
            cmd += ["-d", self.dump_dir + "/m."] + self.s.sink_args
            cmd += ["127.0.0.1:%d" % self.sink_port, "256"]
            self.sink_proc = subprocess.Popen(
                cmd, stdout=open(os.path.join(self.dir, "sink.log"), "w"),
                stderr=subprocess.STDOUT, start_new_session=True)
            if not wait_until(lambda: listening(self.sink_port), 10):
                raise Fail("smtp-sink does not listen (%s)" % " ".join(cmd))
            self.tap = Tap(self.sink_port)
            reinject_port = self.tap.port
        else:
            reinject_port = free_port()  # nobody listens there
        self.port = free_port()
        # as root, sluice runs only with security.user set (docs/operations.md)
        as_root = ["-o", "security.user=root"] if os.geteuid() == 0 else []
        args = [self.bin, "all"] + as_root + ["-o", "log.target=stderr",
                "-o", "frontend.listen=127.0.0.1:%d" % self.port,
                "-o", "origins.default.reinject=127.0.0.1:%d" % reinject_port,
                "-o", "frontend.hostname=sluice.test"] + self.s.sluice_args
        nofile = self.s.nofile

        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        env = dict(os.environ)
        env.pop("SLUICE_CONFIG", None)
        env.update(self.s.env)
        self.sluice = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                       stderr=open(self.log_path, "wb"),
                                       preexec_fn=limits, env=env, start_new_session=True)
        if not wait_until(lambda: listening(self.port) or self.sluice.poll() is not None, 15):
            raise Fail("sluice does not listen on 127.0.0.1:%d" % self.port)
        if self.sluice.poll() is not None:
            raise Fail("sluice exited at start-up (status %s)" % self.sluice.returncode)
        # The pid we started is the master, which only holds the listening
        # socket (docs/operations.md); CPU, memory and descriptors are the
        # child's, and a child that died and was restarted is a failure,
        # however well the master hides it from the client.
        if not wait_until(lambda: len(proc_children(self.sluice.pid)) == 1, 15):
            raise Fail("sluice's master (pid %d) has no child" % self.sluice.pid)
        self.worker_pid = proc_children(self.sluice.pid)[0]
        self.cmdline = " ".join(shlex.quote(a) for a in args)

    def stop(self):
        rc = None
        if self.sluice and self.sluice.poll() is None:
            self.sluice.send_signal(signal.SIGTERM)
            try:
                rc = self.sluice.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.sluice.pid, signal.SIGKILL)
                self.sluice.wait()
                rc = "killed after 15 s"
        if self.sink_proc and self.sink_proc.poll() is None:
            os.killpg(self.sink_proc.pid, signal.SIGTERM)
            try:
                self.sink_proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.sink_proc.pid, signal.SIGKILL)
                self.sink_proc.wait()
        if self.tap:
            self.tap.stop()
        return rc

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def dumps(self):
        out = []
        if not os.path.isdir(self.dump_dir):
            return out
        for name in sorted(os.listdir(self.dump_dir)):
            try:
                with open(os.path.join(self.dump_dir, name), "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
        return out

    def clear_dumps(self):
        if os.path.isdir(self.dump_dir):
            for name in os.listdir(self.dump_dir):
                os.unlink(os.path.join(self.dump_dir, name))
        if self.tap:
            self.tap.reset()

    # ---- one run of the script

    def run(self, mode):
        bytewise = mode == "bytes"
        conns = {}
        idle = []
        cur = None
        log_start = len(self.log_text())
        self.clear_dumps()
        last = {"rc": None, "out": b""}
        env = {"port": self.port, "sinkport": self.sink_port}
        pending_atomic = bytearray()
        pending_group = bytearray()
        timeout = self.s.step_timeout

        def conn():
            if cur is None:
                raise Fail("no connection (use =connect)")
            return conns[cur]

        def flush():
            # Whole mode: a run of send lines is one write (a pipelined
            # group). Bytes mode: every byte its own write, except lines
            # marked atomic, which are one write in both modes.
            if pending_group:
                conn().send(bytes(pending_group), bytewise)
                pending_group.clear()
            if pending_atomic:
                conn().send(bytes(pending_atomic), False)
                pending_atomic.clear()

        def where(n):
            return "%s:%d (%s)" % (self.s.path, n, mode)

        conns["main"] = Conn("main", self.port)
        cur = "main"
        for n, op, arg in self.s.steps:
            try:
                if op in (">", ">>", ">!", ">>!"):
                    data = expand(arg, env) + (b"\r\n" if op in (">", ">!") else b"")
                    if op.endswith("!"):
                        if pending_group:
                            flush()
                        pending_atomic.extend(data)
                    else:
                        if pending_atomic:
                            flush()
                        pending_group.extend(data)
                    continue
                flush()
                if op == "<":
                    self.expect_line(conn(), arg, timeout)
                    continue
                word, _, rest = arg.partition(" ")
                rest = rest.strip()
                if word == "expect":  # =expect COUNT REGEX
                    count, _, rx = rest.partition(" ")
                    for _ in range(int(count)):
                        self.expect_line(conn(), rx, timeout)
                elif word == "close":
                    c = conn()
                    if not c.wait_eof(timeout):
                        extra = c.pending()
                        raise Fail("[%s] expected the server to close the connection; %s" % (
                            c.name, "got %r" % extra[:3] if extra else "it did not"))
                elif word == "noreply":
                    line, why = conn().next_line(float(rest or 1))
                    if line is not None:
                        raise Fail("[%s] expected no reply, got %r" % (cur, line))
                    if why == "eof":
                        raise Fail("[%s] expected no reply, the server closed" % cur)
                elif word == "open":  # still connected, nothing unread
                    c = conn()
                    line, why = c.next_line(float(rest or 0.5))
                    if line is not None or why == "eof":
                        raise Fail("[%s] expected an open, quiet connection, got %s" % (
                            cur, line if line is not None else "EOF"))
                elif word == "sleep":
                    time.sleep(float(rest))
                elif word == "connect":
                    parts = rest.split()
                    name = parts[0]
                    bind = None
                    for p in parts[1:]:
                        if p.startswith("from="):
                            bind = p[5:]
                    conns[name] = Conn(name, self.port, bind)
                    cur = name
                elif word == "use":
                    if rest not in conns:
                        raise Fail("no connection %s" % rest)
                    cur = rest
                elif word == "disconnect":
                    conn().close()
                    conn().discarded = True
                elif word == "slow":  # =slow SECONDS TEXT: one byte every SECONDS
                    secs, _, text = rest.partition(" ")
                    data = expand(text, env)
                    c = conn()
                    for i in range(len(data)):
                        if c.eof:
                            break
                        try:
                            c.sock.send(data[i:i + 1])
                        except OSError:
                            break
                        time.sleep(float(secs))
                elif word == "deliveries":  # =deliveries COUNT [SECONDS]
                    parts = rest.split()
                    want = int(parts[0])
                    secs = float(parts[1]) if len(parts) > 1 else timeout
                    # (== rather than >=: smtp-sink keeps a file for a
                    # transaction in progress and removes it if it fails)
                    wait_until(lambda: len(self.dumps()) == want, secs)
                    time.sleep(1.0)  # an extra copy would show up now
                    got = len(self.dumps())
                    if got != want:
                        raise Fail("expected %d delivery(ies) at the sink, found %d" % (want, got))
                elif word in ("dump", "dump!", "wire", "wire!", "log", "log!", "output",
                              "output!"):
                    if word.startswith("dump"):
                        hay = b"\n=====\n".join(self.dumps())
                    elif word.startswith("wire"):
                        hay = self.tap.wire() if self.tap else b""
                    elif word.startswith("log"):
                        hay = self.log_text()[log_start:]
                    else:
                        hay = last["out"]
                    rx = re.compile(expand(rest, env), re.M | re.S)
                    found = rx.search(hay)
                    if word.endswith("!") and found:
                        raise Fail("%s must not match %r, but does: %r" % (
                            word[:-1], rest, hay[max(0, found.start() - 40):found.end() + 40]))
                    if not word.endswith("!") and not found:
                        raise Fail("%s does not match %r; it is:\n%s" % (
                            word, rest, hay[-3000:].decode("utf-8", "replace")))
                elif word == "dumpcount":  # =dumpcount COUNT REGEX
                    count, _, rx = rest.partition(" ")
                    hay = b"\n=====\n".join(self.dumps())
                    got = len(re.findall(expand(rx, env), hay, re.M))
                    if got != int(count):
                        raise Fail("dumps hold %d matches of %r, expected %s" % (got, rx, count))
                elif word == "logcount":  # =logcount COUNT REGEX
                    count, _, rx = rest.partition(" ")
                    got = len(re.findall(expand(rx, env), self.log_text()[log_start:], re.M))
                    if got != int(count):
                        raise Fail("log holds %d matches of %r, expected %s" % (got, rx, count))
                elif word == "idle":  # =idle COUNT: open COUNT connections, leave them idle
                    for _ in range(int(rest)):
                        sck = socket.socket()
                        sck.setblocking(False)
                        try:
                            sck.connect(("127.0.0.1", self.port))
                        except BlockingIOError:
                            pass
                        idle.append(sck)
                    time.sleep(0.5)
                elif word == "idle-close":
                    for sck in idle:
                        sck.close()
                    idle.clear()
                elif word == "cpu":  # =cpu MAX_SECONDS OVER_SECONDS
                    mx, _, over = rest.partition(" ")
                    t0 = proc_cpu_seconds(self.worker_pid)
                    time.sleep(float(over))
                    used = proc_cpu_seconds(self.worker_pid) - t0
                    if used > float(mx):
                        raise Fail("sluice used %.2f s of CPU in %s s (limit %s)" % (used, over, mx))
                elif word == "pause-reading":  # we stop reading replies
                    conn().reading.clear()
                elif word == "resume-reading":
                    conn().reading.set()
                elif word == "flood":  # =flood COUNT TEXT (CRLF appended), in the background
                    count, _, text = rest.partition(" ")
                    conn().flood(expand(text, env) + b"\r\n", int(count))
                elif word in ("rss-base", "rss-growth"):
                    # =rss-base, then =rss-growth MAX_MIB: sluice's resident
                    # memory grew by at most MAX_MIB since (relative, so that
                    # sanitizer builds compare alike)
                    with open("/proc/%d/status" % self.worker_pid) as f:
                        kb = int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
                    if TRACE:
                        log("  sluice VmRSS %.1f MiB" % (kb / 1024))
                    if word == "rss-base":
                        last["rss"] = kb
                    elif kb - last.get("rss", kb) > float(rest) * 1024:
                        raise Fail("sluice's memory grew by %.1f MiB (limit %s MiB)" % (
                            (kb - last["rss"]) / 1024, rest))
                elif word == "fds":  # =fds MAX
                    got = len(os.listdir("/proc/%d/fd" % self.worker_pid))
                    if got > int(rest):
                        raise Fail("sluice has %d descriptors open (limit %s)" % (got, rest))
                elif word == "alive":
                    if self.sluice.poll() is not None:
                        raise Fail("sluice exited (status %s)" % self.sluice.returncode)
                    self.check_child()
                elif word == "exec":  # =exec SHELL COMMAND ({port} {sinkport} substituted)
                    cmd = rest.replace("{port}", str(self.port)).replace(
                        "{sinkport}", str(self.sink_port))
                    p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, timeout=90, cwd=self.dir)
                    last["rc"], last["out"] = p.returncode, p.stdout
                elif word == "rc":
                    if last["rc"] != int(rest):
                        raise Fail("exit status %s, expected %s; output:\n%s" % (
                            last["rc"], rest, last["out"][-3000:].decode("utf-8", "replace")))
                else:
                    raise Fail("unknown directive =%s" % word)
            except Fail as e:
                raise Fail("%s: %s" % (where(n), e))
        flush()
        # Anything the server said that the script did not expect is an error.
        time.sleep(0.3)
        for c in conns.values():
            extra = c.pending()
            if extra:
                raise Fail("%s (%s): [%s] unexpected reply lines: %r" % (
                    self.s.path, mode, c.name, extra[:5]))
            if c.bad:
                raise Fail("%s (%s): [%s] reply lines with a bare CR or LF: %r" % (
                    self.s.path, mode, c.name, c.bad[:3]))
        for c in conns.values():
            c.close()
        for sck in idle:
            sck.close()
        time.sleep(0.2)  # let sluice see the closes before the next run
        if self.sluice.poll() is not None:
            raise Fail("%s (%s): sluice died (status %s)" % (self.s.path, mode,
                                                            self.sluice.returncode))
        self.check_child()

    def check_child(self):
        if proc_children(self.sluice.pid) != [self.worker_pid]:
            raise Fail("sluice's child pid %d died (the master restarted it: %s); see the log" % (
                self.worker_pid, proc_children(self.sluice.pid)))

    def expect_line(self, c, rx, timeout):
        line, why = c.next_line(timeout)
        if line is None:
            raise Fail("[%s] expected a reply matching %r, got %s" % (
                c.name, rx, "end of connection" if why == "eof" else "nothing in %g s" % timeout))
        text = line.decode("utf-8", "replace")
        if TRACE:
            log("  [%s] %s" % (c.name, text[:300]))
        if not re.match(rx, text):
            raise Fail("[%s] reply %r does not match %r" % (c.name, text, rx))


def run_script(path, sluice_bin, keep, modes):
    script = Script(path)
    r = Runner(script, sluice_bin, keep)
    t0 = time.monotonic()
    ok = True
    try:
        r.start()
        for mode in script.modes:
            if mode not in modes:
                continue
            tm = time.monotonic()
            r.run(mode)
            log("ok: %s (%s, %.1f s)" % (script.name, mode, time.monotonic() - tm))
        if "bytes" in modes and "bytes" not in script.modes:
            log("ok: %s (bytes mode skipped: %s)" % (script.name, script.bytes_reason))
    except Fail as e:
        ok = False
        log("FAIL: %s" % e)
    finally:
        rc = r.stop()
    if ok and rc not in (0, None):
        ok = False
        log("FAIL: %s: sluice did not stop cleanly on SIGTERM (status %s)" % (script.name, rc))
    text = r.log_text()
    for bad in (b"AddressSanitizer", b"runtime error:", b"BUG at", b"internal error"):
        if bad in text:
            ok = False
            log("FAIL: %s: sluice log has %r" % (script.name, bad.decode()))
    if not ok or keep:
        log("----- %s: %s" % (script.name, getattr(r, "cmdline", "")))
        log("----- last lines of the sluice log:")
        log(b"\n".join(text.splitlines()[-40:]).decode("utf-8", "replace"))
    if keep:
        log("kept %s" % r.dir)
    else:
        shutil.rmtree(r.dir, ignore_errors=True)
    log("%s: %s (%.1f s)" % (script.name, "PASS" if ok else "FAIL", time.monotonic() - t0))
    return ok


def main():
    ap = argparse.ArgumentParser(description="Run sluice dialogue scripts.")
    ap.add_argument("--keep", action="store_true", default=os.environ.get("DIALOGUE_KEEP") == "1")
    ap.add_argument("--mode", choices=["both", "whole", "bytes"], default="both")
    ap.add_argument("scripts", nargs="+")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    sluice_bin = os.environ.get("SLUICE_BIN") or os.path.join(here, "..", "..", "build", "sluice")
    if not os.access(sluice_bin, os.X_OK):
        print("run.py: SLUICE_BIN=%s is not an executable" % sluice_bin, file=sys.stderr)
        return 2
    if shutil.which("smtp-sink") is None and not os.path.exists("/usr/sbin/smtp-sink"):
        print("run.py: smtp-sink not found (Debian package postfix)", file=sys.stderr)
        return 2
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    modes = ["whole", "bytes"] if a.mode == "both" else [a.mode]
    ok = True
    for path in a.scripts:
        ok = run_script(path, sluice_bin, a.keep, modes) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
