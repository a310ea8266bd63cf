#!/usr/bin/env python3
"""qtest replies of any allowed size arrive whole, and a client that stops
reading holds back further commands instead of growing vireo's memory."""
import base64
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402

BASE = 0x100000


def pattern(n):
    return bytes((i * 7 + (i >> 9)) & 0xff for i in range(n))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_read_and_b64read_are_whole():
    data = pattern(4 << 20)
    with vmm.Vireo("-m", "64M", qtest=True) as v:
        t = v.qtest
        t.memwrite(BASE, data)
        for n in (524288, 3 << 20):
            r = t.ok(f"read 0x{BASE:x} {n}")
            assert r == "0x" + data[:n].hex(), (n, len(r))
        for n in (786432, 4 << 20):
            assert t.memread(BASE, n) == data[:n], n
        # hex writes of more than 1 MiB of line, read back whole
        t.ok(f"write 0x{BASE:x} 1048576 0x{data[-(1 << 20):].hex()}")
        assert t.memread(BASE, 1 << 20) == data[-(1 << 20):]


def test_pipelined_large_reads_arrive_in_order():
    with vmm.Vireo("-m", "64M", qtest=True) as v:
        t = v.qtest
        blocks = [os.urandom(1 << 20) for _ in range(4)]
        for i, b in enumerate(blocks):
            t.memwrite(BASE + i * len(b), b)
        reqs = [f"b64read 0x{BASE + (i % 4) * (1 << 20):x} {1 << 20}" for i in range(24)]
        t.sock.sendall("".join(r + "\n" for r in reqs).encode())
        for i in range(24):
            line = t.line()
            assert line.startswith("OK "), line[:40]
            assert base64.b64decode(line[3:]) == blocks[i % 4], i


def test_stalled_client_bounds_memory():
    with vmm.Vireo("-m", "64M", qtest=True) as v:
        t = v.qtest
        t.ok(f"memset 0x{BASE:x} {1 << 19} 0xa5")
        before = rss_kib(v.proc.pid)
        count = 300                           # 300 MiB of replies if all were queued
        t.sock.sendall(f"read 0x{BASE:x} {1 << 19}\n".encode() * count)
        time.sleep(1.5)
        grown = rss_kib(v.proc.pid) - before
        assert grown < 128 * 1024, f"RSS grew by {grown} KiB"
        assert v.qmp().cmd("query-status")["status"] == "running"
        want = "0x" + "a5" * (1 << 19)
        for i in range(count):
            assert t.line() == "OK " + want, i


if __name__ == "__main__":
    vtest.main()
