#!/usr/bin/env python3
"""Several NBD reads in flight at once, on one connection and on several,
against vireo-storage-daemon and vireo. A client sends a whole batch of
reads (aligned and unaligned, over data and holes, with and without DF,
structured and simple replies) before reading any reply; the replies may
come back in any order, each is matched to its request by cookie and its
data compared with the image; some replies overtake earlier reads (a
server that handled one read at a time would never do that). A write
sent after reads does not pass them, and a disconnect closes only once
they are answered. A client that sends reads and never reads a reply
stalls neither the monitor nor other clients, and costs the daemon
bounded memory. nbdcopy with several connections copies the image
exactly."""
import contextlib
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbdtest import (CHUNK_MAGIC, CMD_DISC, CMD_FLUSH, CMD_READ, CMD_WRITE, REQ_MAGIC,  # noqa: E402
                     SIMPLE_MAGIC, Daemon, Dir, Raw, del_export, need, ok, run, uri, vireo_paused,
                     wait_path)
import vtest  # noqa: E402

SIZE = 32 << 20
HOLES = ((4 << 20, 2 << 20), (20 << 20, 64 << 10), (28 << 20, 4 << 20))
TYPE_NONE, TYPE_DATA, TYPE_HOLE = 0, 1, 2
FLAG_DF = 4


def make_image(d):
    """A raw image of random bytes with zeroed holes, and its qcow2 copy
    (where the holes are unallocated clusters)."""
    rnd = random.Random(15)
    data = bytearray(rnd.randbytes(SIZE))
    for off, ln in HOLES:
        data[off:off + ln] = bytes(ln)
    raw = d("src.raw")
    with open(raw, "wb") as f:
        f.write(data)
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, d("src.qcow2"))
    return bytes(data)


def batch(seed, n=64, structured=True):
    """Reads of many shapes: (cookie, offset, length, flags); DF (only
    valid with structured replies) on some."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.randrange(6)
        if kind == 0:           # unaligned, small
            off, ln = rnd.randrange(SIZE - 8192), rnd.randrange(1, 8192)
        elif kind == 1:         # across the edge of a hole
            hoff, hlen = HOLES[rnd.randrange(len(HOLES))]
            edge = hoff + (hlen if rnd.randrange(2) else 0)
            off = max(0, edge - rnd.choice((4096, 65536)))
            ln = min(SIZE - off, rnd.choice((8192, 131072, 1 << 20)))
        elif kind == 2:         # inside a hole
            hoff, hlen = HOLES[rnd.randrange(len(HOLES))]
            off, ln = hoff, min(hlen, 65536)
        else:                   # aligned data, 4 KiB to 2 MiB
            ln = 4096 << rnd.randrange(10)
            off = rnd.randrange((SIZE - ln) // 4096) * 4096
        flags = FLAG_DF if structured and rnd.randrange(4) == 0 else 0
        out.append((0x1000 + i, off, ln, flags))
    return out


def send_all(sock, reqs, extra=b""):
    """Send every request at once, from a thread: the server may stop
    reading until its replies are taken."""
    msg = b"".join(struct.pack(">IHHQQI", REQ_MAGIC, fl, CMD_READ, ck, off, ln)
                   for ck, off, ln, fl in reqs) + extra
    t = threading.Thread(target=sock.sendall, args=(msg,), daemon=True)
    t.start()
    return t


def structured_replies(c, reqs):
    """Collect the chunks of every request; returns {cookie: data} and the
    order in which the requests finished. Chunks of different requests may
    interleave; a chunk after its request's DONE or for an unknown cookie
    fails."""
    want = {ck: (off, ln) for ck, off, ln, _ in reqs}
    pieces = {ck: [] for ck in want}
    finished = []
    while len(finished) < len(reqs):
        magic, flags, ctype, cookie, ln = struct.unpack(">IHHQI", c.recvn(20))
        assert magic == CHUNK_MAGIC, hex(magic)
        assert cookie in want and cookie not in finished, f"stray chunk for {cookie:#x}"
        payload = c.recvn(ln)
        assert not ctype & 0x8000, f"error chunk for {cookie:#x}: {payload!r}"
        pieces[cookie].append((ctype, payload))
        if flags & 1:
            finished.append(cookie)
    got = {}
    for ck, (off, ln) in want.items():
        got[ck] = assemble(off, ln, pieces[ck])
    return got, finished


def assemble(off, ln, pieces):
    """The bytes of [off, off + ln) from data and hole chunks, which must
    cover it exactly once."""
    buf = bytearray(ln)
    seen = []
    for ctype, p in pieces:
        if ctype == TYPE_NONE:
            assert not p
            continue
        (at,) = struct.unpack(">Q", p[:8])
        if ctype == TYPE_DATA:
            n = len(p) - 8
            buf[at - off:at - off + n] = p[8:]
        else:
            assert ctype == TYPE_HOLE, ctype
            (n,) = struct.unpack(">I", p[8:12])
        assert off <= at and at + n <= off + ln and n > 0, (off, ln, at, n)
        seen.append((at, n))
    seen.sort()
    pos = off
    for at, n in seen:
        assert at == pos, f"chunks of [{off}, +{ln}) leave a gap or overlap at {pos}: {seen}"
        pos += n
    assert pos == off + ln, (off, ln, seen)
    return bytes(buf)


def simple_replies(c, reqs):
    want = {ck: (off, ln) for ck, off, ln, _ in reqs}
    got, finished = {}, []
    while len(finished) < len(reqs):
        magic, errno_, cookie = struct.unpack(">IIQ", c.recvn(16))
        assert magic == SIMPLE_MAGIC, hex(magic)
        assert cookie in want and cookie not in got, f"stray reply for {cookie:#x}"
        assert errno_ == 0, (cookie, errno_)
        got[cookie] = c.recvn(want[cookie][1])
        finished.append(cookie)
    return got, finished


def check_batch(sock, image, export, seed, structured=True):
    """One connection, every read of a batch in flight; returns how many
    replies came back out of request order."""
    c = Raw(sock, timeout=60)
    c.go(export, structured=structured)
    reqs = batch(seed, structured=structured)
    sender = send_all(c.s, reqs)
    got, finished = (structured_replies if structured else simple_replies)(c, reqs)
    sender.join(60)
    for ck, off, ln, _ in reqs:
        assert got[ck] == image[off:off + ln], f"read {ck:#x} of [{off}, +{ln}) differs"
    c.request(CMD_DISC)
    assert c.closed()
    return overtakes(reqs, finished)


def overtakes(reqs, finished):
    """Replies that arrived while a request sent before theirs was still
    unanswered: a server that handles one read at a time has none."""
    index = {ck: i for i, (ck, *_) in enumerate(reqs)}
    answered = [False] * len(reqs)
    first_open = n = 0
    for ck in finished:
        answered[index[ck]] = True
        n += index[ck] > first_open
        while first_open < len(reqs) and answered[first_open]:
            first_open += 1
    return n


def check_connections(sock, image, export, n=4):
    errors = []

    def one(i):
        try:
            check_batch(sock, image, export, seed=100 + i, structured=i % 2 == 0)
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append(f"connection {i}: {e!r}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


@contextlib.contextmanager
def vireo_exporting(d):
    """A paused vireo serving d("src.qcow2") as NBD export "disk": (QMP, socket)."""
    with vireo_paused(d("src.qcow2")) as v:
        q = v.qmp()
        sock = d("v.sock")
        ok(q, "nbd-server-start", addr={"type": "unix", "data": {"path": sock}})
        ok(q, "block-export-add", **{"type": "nbd", "id": "e0", "node-name": "n0",
                                      "name": "disk"})
        yield q, sock


def daemon(d):
    sock = d("nbd.sock")
    sd = Daemon(d, "--blockdev", f"driver=file,node-name=f0,filename={d('src.qcow2')}",
                "--blockdev", "driver=qcow2,node-name=q0,file=f0",
                "--blockdev", f"driver=file,node-name=f1,filename={d('src.raw')},"
                "cache.direct=on",
                "--blockdev", "driver=raw,node-name=r0,file=f1",
                "--nbd-server", f"addr.type=unix,addr.path={sock}",
                "--export", "type=nbd,id=e0,node-name=q0,name=qcow2",
                "--export", "type=nbd,id=e1,node-name=r0,name=raw")
    wait_path(sock)
    return sd, sock


def test_daemon_one_connection():
    need("qemu-img")
    with Dir() as d:
        image = make_image(d)
        sd, sock = daemon(d)
        with sd:
            late = 0
            for export in ("qcow2", "raw"):
                late += check_batch(sock, image, export, seed=1)
                late += check_batch(sock, image, export, seed=2, structured=False)
            print(f"  daemon: {late} of 256 replies overtook an earlier read")
            assert late > 0, "every reply came in request order: reads ran one at a time"
            assert ok(sd.q, "query-block-exports")


def test_daemon_several_connections():
    need("qemu-img")
    with Dir() as d:
        image = make_image(d)
        sd, sock = daemon(d)
        with sd:
            check_connections(sock, image, "qcow2")
            check_connections(sock, image, "raw")


def test_vmm_connections():
    need("qemu-img")
    with Dir() as d:
        image = make_image(d)
        with vireo_exporting(d) as (q, sock):
            late = check_batch(sock, image, "disk", seed=3)
            late += check_batch(sock, image, "disk", seed=4, structured=False)
            print(f"  vireo: {late} of 128 replies overtook an earlier read")
            assert late > 0, "every reply came in request order: reads ran one at a time"
            check_connections(sock, image, "disk")
            del_export(q, "e0")
            ok(q, "nbd-server-stop")


def test_write_and_disconnect_wait_for_reads():
    """A write sent after reads of the same range does not pass them (they
    see the old data, reads after it the new); a disconnect sent after
    reads closes the connection only once they are all answered."""
    need("qemu-img")
    with Dir() as d:
        image = make_image(d)
        sock = d("nbd.sock")
        with Daemon(d, "--blockdev", f"driver=file,node-name=f0,filename={d('src.qcow2')}",
                    "--blockdev", "driver=qcow2,node-name=q0,file=f0",
                    "--nbd-server", f"addr.type=unix,addr.path={sock}",
                    "--export", "type=nbd,id=e0,node-name=q0,name=rw,writable=on"):
            wait_path(sock)
            c = Raw(sock, timeout=60)
            c.go("rw")
            reads = [(0x10 + i, (i % 4) << 20, 1 << 20, 0) for i in range(8)]
            new = bytes([0x5a]) * (4 << 20)
            write = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_WRITE, 0x99, 0, len(new)) + new
            after = [(0x20 + i, (i % 4) << 20, 1 << 20, 0) for i in range(4)]
            flush = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_FLUSH, 0x77, 0, 0)
            tail = b"".join(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, ck, off, ln)
                            for ck, off, ln, _ in after)
            sender = send_all(c.s, reads, write + tail + flush)
            order, data = [], {}
            want = {ck: (off, ln) for ck, off, ln, _ in reads + after}
            while len(order) < len(reads) + len(after) + 2:
                magic = struct.unpack(">I", c.recvn(4))[0]
                if magic == SIMPLE_MAGIC:
                    errno_, cookie = struct.unpack(">IQ", c.recvn(12))
                    assert errno_ == 0, (cookie, errno_)
                    order.append(cookie)
                    continue
                assert magic == CHUNK_MAGIC, hex(magic)
                flags, ctype, cookie, ln = struct.unpack(">HHQI", c.recvn(16))
                p = c.recvn(ln)
                assert ctype == TYPE_DATA, (cookie, ctype, p[:64])
                data.setdefault(cookie, []).append((ctype, p))
                if flags & 1:
                    order.append(cookie)
            sender.join(30)
            # Replies may come in any order (a finished read's may even follow
            # the write's); what the reads saw shows whether the write passed one.
            assert sorted(order) == sorted(list(want) + [0x99, 0x77]), order
            for ck, (off, ln) in want.items():
                got = assemble(off, ln, data[ck])
                exp = image[off:off + ln] if ck < 0x20 else new[off:off + ln]
                assert got == exp, f"read {ck:#x} saw the {'new' if ck < 0x20 else 'old'} data"
            # reads, then a disconnect: every reply arrives before the close
            reqs = batch(7, n=24)
            send_all(c.s, reqs, struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_DISC, 1, 0, 0))
            got, _ = structured_replies(c, reqs)
            image = new + image[len(new):]
            for ck, off, ln, _ in reqs:
                assert got[ck] == image[off:off + ln], f"read {ck:#x} differs"
            assert c.closed()


def flood(sock, export, size=1 << 20):
    """A client that sends reads until the server stops taking them and
    never reads a reply."""
    c = Raw(sock)
    c.go(export)
    c.s.setblocking(False)
    req = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 1, 0, size)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            c.s.send(req * 64)
        except BlockingIOError:
            time.sleep(0.2)
            try:
                c.s.send(req * 64)
            except BlockingIOError:
                return c
    raise AssertionError("the server never stopped reading a client that takes no replies")


def test_stalled_reader_daemon():
    need("qemu-img")
    with Dir() as d:
        image = make_image(d)
        sd, sock = daemon(d)
        with sd:
            stalled = [flood(sock, "qcow2"), flood(sock, "raw")]
            t0 = time.monotonic()
            ok(sd.q, "query-block-exports")
            ok(sd.q, "query-named-block-nodes")
            assert time.monotonic() - t0 < 5
            check_connections(sock, image, "qcow2")
            check_connections(sock, image, "raw")
            for c in stalled:
                c.close()
            check_batch(sock, image, "qcow2", seed=9)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_stalled_reader_memory_bounded():
    """2,400 reads of 1 MiB arrive in one piece and the client takes no
    reply: the daemon holds a few MiB of finished replies, not all of them
    (it took 2.7 GB when reads that finished during the batch were not
    counted), and serves a new client at once."""
    need("qemu-img")
    with Dir() as d:
        make_image(d)
        # freed memory is returned at once, so the peak shows what was held
        asan = os.environ.get("ASAN_OPTIONS", "")
        os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=0"
        try:
            sd, sock = daemon(d)
        finally:
            if asan:
                os.environ["ASAN_OPTIONS"] = asan
            else:
                del os.environ["ASAN_OPTIONS"]
        with sd:
            time.sleep(0.3)
            base = peak_rss_kib(sd.proc.pid)
            c = Raw(sock)
            c.go("qcow2")
            req = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 1, 0, 1 << 20)
            c.s.settimeout(5)
            try:
                c.s.sendall(req * 2400)
            except socket.timeout:
                pass                    # the server stopped reading: what we want
            time.sleep(1)
            t0 = time.monotonic()
            other = Raw(sock, timeout=30)
            other.go("raw")
            other.close()
            ok(sd.q, "query-block-exports")
            took = time.monotonic() - t0
            grew = (peak_rss_kib(sd.proc.pid) - base) >> 10
            print(f"  peak memory grew {grew} MiB; a new client was served in {took:.2f} s")
            assert grew < 256, f"the daemon held {grew} MiB of replies for one client"
            assert took < 5, f"a new client waited {took:.2f} s"
            c.close()


def test_stalled_reader_vmm():
    need("qemu-img")
    with Dir() as d:
        image = make_image(d)
        with vireo_exporting(d) as (q, sock):
            stalled = [flood(sock, "disk"), flood(sock, "disk", 4 << 20)]
            t0 = time.monotonic()
            for _ in range(5):
                ok(q, "query-status")
            assert time.monotonic() - t0 < 5
            check_connections(sock, image, "disk")
            for c in stalled:
                c.close()
            check_batch(sock, image, "disk", seed=10)
            ok(q, "block-export-del", id="e0", mode="hard")
            ok(q, "nbd-server-stop")


def test_nbdcopy_multi_conn():
    need("nbdcopy", "nbdinfo", "qemu-img")
    with Dir() as d:
        image = make_image(d)
        sd, sock = daemon(d)
        with sd:
            info = run("nbdinfo", uri(sock, "qcow2")).stdout
            assert "can_multi_conn: true" in info, info
            for export in ("qcow2", "raw"):
                out = d(f"copy-{export}.raw")
                run("nbdcopy", "--connections=4", "--requests=32", "--request-size=262144",
                    uri(sock, export), out)
                with open(out, "rb") as f:
                    assert f.read() == image, f"nbdcopy of {export} differs"


vtest.main()
