#!/usr/bin/env python3
"""hold_sessions.py - many LMTP sessions at once, each left waiting for its
verdict (tests/bench/hold_bench.sh, docs/capacity.md).

usage: hold_sessions.py [--size B] [--sources A,B,...] [--pid PID]
                        [--timeout S] HOST PORT N

Opens N sessions to HOST:PORT, spread round-robin over the source
addresses (loopback ones: a frontend tells origins apart by them), and
takes each through LHLO, MAIL, RCPT and DATA up to the final dot, a
B-byte message. Once every session has sent its dot (none has its reply:
the scan is slow on purpose), it reads the resident memory of PID and its
children (the frontend) and prints key=value lines; then it closes every
session.
Exits 1 when a connection was refused or a reply before the dot was not
the expected one (a correctness check, not a speed one).
"""
import argparse
import asyncio
import os
import resource
import sys
import time


def tree(pid):
    """pid and its descendants (the frontend's work runs in a child)."""
    out = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                out += tree(int(child))
    return out


def rss_kb(pid):
    total = 0
    for p in tree(pid) if pid else []:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def expect(reader, code, deadline):
    """Reads one (multi-line) reply; True when it starts with code."""
    while True:
        line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
        if not line:
            return False
        if line[3:4] != b"-":
            return line.startswith(code)


async def session(i, args, body, state, release):
    src = args.sources[i % len(args.sources)]
    deadline = time.monotonic() + args.timeout
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(args.host, args.port, local_addr=(src, 0)), args.timeout)
    except (OSError, asyncio.TimeoutError):
        state["refused"] += 1
        state["done"] += 1
        return
    try:
        steps = [(None, b"220"), (b"LHLO hold.test\r\n", b"250"),
                 (b"MAIL FROM:<hold@bench.test>\r\n", b"250"),
                 (b"RCPT TO:<rcpt@bench.test>\r\n", b"250"), (b"DATA\r\n", b"354")]
        for cmd, code in steps:
            if cmd:
                writer.write(cmd)
            if not await expect(reader, code, deadline):
                state["bad"] += 1
                return
        writer.write(body + b".\r\n")
        await writer.drain()
        state["held"] += 1
    except (OSError, asyncio.TimeoutError):
        state["bad"] += 1
        return
    finally:
        state["done"] += 1
    await release.wait()
    writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--sources", default="127.0.0.1")
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--linger", type=float, default=0)
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    args = p.parse_args()
    args.sources = args.sources.split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    line = b"X" * 76 + b"\r\n"
    body = (b"Subject: held\r\n\r\n" + line * (args.size // len(line) + 1))[:args.size]
    body = body.rsplit(b"\r\n", 1)[0] + b"\r\n"
    state = {"held": 0, "refused": 0, "bad": 0, "done": 0}
    release = asyncio.Event()
    rss0 = rss_kb(args.pid)
    t0 = time.monotonic()
    tasks = []
    for i in range(args.n):
        tasks.append(asyncio.create_task(session(i, args, body, state, release)))
        if i % 100 == 99:
            await asyncio.sleep(0.01)     # no listen backlog overflow
    while state["done"] < args.n and time.monotonic() - t0 < args.timeout:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)              # the frontend takes in the last dots
    rss1 = rss_kb(args.pid)
    held = state["held"]
    print(f"sessions={args.n} held={held} refused={state['refused']} bad={state['bad']} "
          f"size={args.size} open_s={time.monotonic() - t0:.1f}")
    if args.pid:
        per = (rss1 - rss0) * 1024 / held if held else 0
        print(f"frontend_rss_kb_before={rss0} frontend_rss_kb_held={rss1} "
              f"rss_per_held_session_bytes={per:.0f} "
              f"without_body_bytes={per - args.size:.0f}")
    await asyncio.sleep(args.linger)
    release.set()
    await asyncio.wait(tasks, timeout=30)
    return 0 if held == args.n else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
