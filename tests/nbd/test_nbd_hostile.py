#!/usr/bin/env python3
"""Hostile NBD clients, raw sockets against vireo-storage-daemon and vireo:
bad magic, unknown client flags, options and commands, over-long options,
lengths and offsets past the end, writes on a read-only export, oversized
payloads, a client gone mid-request, a flood of requests whose replies are
never read, and 100 clients at once. Each gets an error reply or a closed
connection; the server keeps serving everyone else and its monitor answers."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbdtest import (CMD_BS, CMD_CACHE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE,  # noqa: E402
                     CMD_ZEROES, EINVAL, ENOSPC, ENOTSUP, EPERM, ERR_INVALID, ERR_POLICY,
                     ERR_TOO_BIG, ERR_UNKNOWN, ERR_UNSUP, FLAG_FAST_ZERO, OPT_ABORT, OPT_GO,
                     OPT_LIST, OPT_LIST_META, OPT_SET_META, OPT_STARTTLS, OPT_STRUCTURED,
                     OPTS_MAGIC, REP_ACK, REP_META, REP_SERVER, REQ_MAGIC, Daemon, Dir, Raw,
                     make_qcow2, meta_data, ok, vireo_paused)
import vtest  # noqa: E402

SIZE = 64 << 20


class Server:
    """A daemon exporting one qcow2 image read-only ('ro') and writable ('rw')."""

    def __init__(self, d):
        self.d = d
        make_qcow2(d("ro.qcow2"))
        make_qcow2(d("rw.qcow2"))
        self.sock = d("nbd.sock")
        self.daemon = Daemon(
            d, "--blockdev", f"driver=file,node-name=f0,filename={d('ro.qcow2')}",
            "--blockdev", "driver=qcow2,node-name=ro,file=f0",
            "--blockdev", f"driver=file,node-name=f1,filename={d('rw.qcow2')}",
            "--blockdev", "driver=qcow2,node-name=rw,file=f1",
            "--nbd-server", f"addr.type=unix,addr.path={self.sock}",
            "--export", "type=nbd,id=e0,node-name=ro,name=ro",
            "--export", "type=nbd,id=e1,node-name=rw,name=rw,writable=on")

    def alive(self):
        """The server still serves a fresh client a correct read."""
        c = Raw(self.sock)
        c.go("ro")
        c.request(CMD_READ, 1 << 20, 4096, cookie=7)
        ch = c.chunks()
        assert ch[-1][1] == 1 and ch[-1][2][8:] == b"\xab" * 4096, ch
        c.close()
        assert ok(self.daemon.q, "query-block-exports")

    def close(self):
        self.daemon.close()


def with_server(fn):
    def run():
        with Dir() as d:
            s = Server(d)
            try:
                fn(s)
                s.alive()
            finally:
                s.close()
    run.__name__ = fn.__name__
    return run


@with_server
def test_handshake_garbage(s):
    c = Raw(s.sock)
    c.hello(flags=0x80)                 # unknown client flag: closed
    assert c.closed()
    c = Raw(s.sock)
    c.hello()
    c.s.sendall(b"X" * 16)              # bad option magic: closed
    assert c.closed()
    c = Raw(s.sock)
    c.recvn(18)
    c.s.sendall(b"\x00\x00")            # half the client flags, then gone
    c.close()


@with_server
def test_options_errors(s):
    c = Raw(s.sock)
    c.hello()
    c.opt(99)
    assert c.reply()[1] == ERR_UNSUP
    c.opt(OPT_STARTTLS)
    assert c.reply()[1] == ERR_POLICY
    c.opt(OPT_LIST, b"x")
    assert c.reply()[1] == ERR_INVALID
    c.opt(OPT_LIST)
    rs = c.replies()
    assert [r[1] for r in rs] == [REP_SERVER, REP_SERVER, REP_ACK], rs
    c.opt(OPT_GO, struct.pack(">I", 1000) + b"ro")           # name longer than the data
    assert c.reply()[1] == ERR_INVALID
    c.opt(OPT_GO, struct.pack(">I", 4) + b"nope" + struct.pack(">H", 0))
    assert c.reply()[1] == ERR_UNKNOWN
    c.opt(OPT_GO, struct.pack(">I", 2) + b"ro" + struct.pack(">H", 5) + b"\x00\x01")
    assert c.reply()[1] == ERR_INVALID                       # 5 info requests, 1 sent
    c.opt(OPT_SET_META, meta_data("ro", ["base:allocation"]))
    assert c.reply()[1] == ERR_INVALID                       # before structured replies
    c.opt(OPT_STRUCTURED, b"x")
    assert c.reply()[1] == ERR_INVALID
    c.opt(OPT_STRUCTURED)
    assert c.reply()[1] == REP_ACK
    c.opt(OPT_STRUCTURED)
    assert c.reply()[1] == ERR_INVALID
    c.opt(OPT_LIST_META, meta_data("ro", []))
    rs = c.replies()
    assert [r[1] for r in rs] == [REP_META, REP_ACK], rs
    c.opt(OPT_SET_META, struct.pack(">I", 2) + b"ro" + struct.pack(">I", 0xffffffff))
    assert c.reply()[1] == ERR_INVALID                       # more queries than bytes
    # an option longer than the server keeps is skipped and refused
    big = 200 * 1024
    c.s.sendall(struct.pack(">QII", OPTS_MAGIC, 99, big) + b"\0" * big)
    assert c.reply()[1] == ERR_TOO_BIG
    c.opt(OPT_ABORT)
    assert c.reply()[1] == REP_ACK
    assert c.closed()


@with_server
def test_export_name_too_long_closes(s):
    c = Raw(s.sock)
    c.hello()
    c.s.sendall(struct.pack(">QII", OPTS_MAGIC, 1, 1 << 30))   # EXPORT_NAME of 1 GiB
    assert c.closed()


@with_server
def test_requests_errors(s):
    c = Raw(s.sock)
    c.go("ro", structured=False)
    c.request(CMD_READ, SIZE - 100, 4096)
    assert c.simple()[0] == EINVAL
    c.request(CMD_READ, 2**64 - 512, 1024)
    assert c.simple()[0] == EINVAL
    c.request(CMD_READ, 0, 64 << 20)                             # above the maximum
    assert c.simple()[0] == EINVAL
    c.request(CMD_WRITE, 0, 4096, payload=b"x" * 4096)
    assert c.simple()[0] == EPERM
    c.request(CMD_TRIM, 0, 4096)
    assert c.simple()[0] == EPERM
    c.request(CMD_BS, 0, 4096)                                   # no context negotiated
    assert c.simple()[0] == EINVAL
    c.request(42, 0, 0)
    assert c.simple()[0] == EINVAL
    c.request(CMD_READ, 0, 512, flags=0x8000)
    assert c.simple()[0] == EINVAL
    c.request(CMD_FLUSH, 5, 0)
    assert c.simple()[0] == EINVAL
    c.request(CMD_CACHE, 0, 1 << 20)
    assert c.simple()[0] == 0
    c.request(CMD_READ, 0, 0)
    assert c.simple()[0] == 0
    c.request(CMD_READ, 1 << 20, 8, cookie=99)
    e, cookie = c.simple()
    assert e == 0 and cookie == 99 and c.recvn(8) == b"\xab" * 8
    c.s.sendall(b"\xde\xad\xbe\xef" + b"\0" * 24)                # bad request magic
    assert c.closed()


@with_server
def test_write_errors(s):
    c = Raw(s.sock)
    c.go("rw")
    c.request(CMD_WRITE, SIZE - 512, 1024, payload=b"y" * 1024)
    assert c.simple()[0] == ENOSPC
    c.request(CMD_ZEROES, SIZE, 1)
    assert c.simple()[0] == ENOSPC
    c.request(CMD_ZEROES, 4096, 512, flags=FLAG_FAST_ZERO)       # inside a cluster
    assert c.simple()[0] == ENOTSUP
    c.request(CMD_ZEROES, 0, 1 << 20, flags=FLAG_FAST_ZERO)
    assert c.simple()[0] == 0
    c.request(CMD_BS, 0, 0)
    ch = c.chunks()
    assert ch[0][1] == 32769, ch                                 # an error chunk
    c.request(CMD_WRITE, 0, 64 << 20)                            # payload over the limit
    assert c.closed()
    c = Raw(s.sock)
    c.go("rw")
    c.request(CMD_WRITE, 0, 1 << 20, payload=b"z" * 1000)        # gone mid-payload
    c.close()


@with_server
def test_block_status_req_one_and_contexts(s):
    c = Raw(s.sock)
    c.go("ro", meta=["base:allocation", "qemu:allocation-depth", "qemu:nothing"])
    c.request(CMD_BS, 0, SIZE, flags=8)
    ch = c.chunks()
    assert len(ch) == 1 and len(ch[0][2]) == 12, ch              # one context, one extent
    ctx, ln, fl = struct.unpack(">III", ch[0][2])
    assert (ln, fl) == (1 << 20, 3), (ln, fl)
    c.request(CMD_BS, 0, 0xffffffff)                              # length past the end
    assert c.chunks()[0][1] == 32769


@with_server
def test_flood_without_reading(s):
    """A client queues reads and never reads the replies: the server stops
    reading from it (bounded buffers) and serves others meanwhile."""
    c = Raw(s.sock)
    c.go("ro")
    c.s.setblocking(False)
    req = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 1, 0, 1 << 20)
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            sent += c.s.send(req * 64)
        except BlockingIOError:
            break
    assert time.monotonic() < deadline, "the server never pushed back"
    s.alive()
    t0 = time.monotonic()
    ok(s.daemon.q, "query-block-exports")
    assert time.monotonic() - t0 < 2
    c.close()


@with_server
def test_hundred_clients(s):
    errors = []

    def one(i):
        try:
            c = Raw(s.sock, timeout=60)
            c.go("rw" if i % 2 else "ro")
            off = (i % 32) << 20
            if i % 2:
                c.request(CMD_WRITE, off, 4096, payload=bytes([i]) * 4096, cookie=i)
                assert c.simple()[0] == 0
            c.request(CMD_READ, off, 4096, cookie=i)
            ch = c.chunks()
            assert ch[-1][0] & 1
            if i % 3 == 0:
                c.close()                                        # gone without DISC
            else:
                c.request(2)
                c.closed()
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append(f"{i}: {e!r}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]


def test_vmm_main_loop_not_blocked():
    """vireo's monitor answers while a client floods its NBD server."""
    with Dir() as d:
        make_qcow2(d("d.qcow2"))
        with vireo_paused(d("d.qcow2")) as v:
            q = v.qmp()
            sock = d("v.sock")
            ok(q, "nbd-server-start", addr={"type": "unix", "data": {"path": sock}})
            ok(q, "block-export-add", **{"type": "nbd", "id": "e0", "node-name": "n0",
                                          "name": "disk"})
            c = Raw(sock)
            c.go("disk")
            c.s.setblocking(False)
            req = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 1, 0, 4 << 20)
            try:
                for _ in range(2000):
                    c.s.send(req * 16)
            except BlockingIOError:
                pass
            stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stalled.connect(sock)                               # never says anything
            t0 = time.monotonic()
            for _ in range(5):
                ok(q, "query-status")
            assert time.monotonic() - t0 < 5
            ok(q, "block-export-del", id="e0", mode="hard")
            ok(q, "nbd-server-stop")
            stalled.close()
            c.close()


vtest.main()
