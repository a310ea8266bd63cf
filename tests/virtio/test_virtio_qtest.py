#!/usr/bin/env python3
"""virtio devices driven over qtest by a driver-side virtqueue (tests/virtio/vdriver.py).

No guest CPU: the test lays out rings and chains in guest RAM, kicks through
the notify BAR and reads the used ring back. Covers the transport (PCI ids,
capabilities, legacy BAR), feature negotiation, each device's basic I/O, and
hostile chains, which must leave the device broken with NEEDS_RESET set while
vireo and the other devices keep working.
"""
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402
from vdriver import F_NEXT, F_WRITE, F_INDIRECT, S_NEEDS_RESET, S_FEATURES_OK  # noqa: E402


def start(*args):
    return vmm.Vireo(*args, qtest=True)


def device(v, index=0):
    """The index-th virtio function; all devices of one vireo share one RAM allocator."""
    if not hasattr(v, "alloc"):
        v.alloc = vdriver.Alloc()
    found = vdriver.Pci(v.qtest).find()
    return vdriver.VirtioPciDevice(v.qtest, found[index][0], v.alloc)


def alive(v):
    """vireo still answers its monitor."""
    assert v.qmp().cmd("query-status")["status"] in ("running", "paused", "prelaunch")


# ---- transport ----

def test_pci_identity_transitional_and_modern():
    with start("-device", "virtio-rng-pci", "-device", "virtio-rng-pci,disable-legacy=on") as v:
        found = vdriver.Pci(v.qtest).find()
        assert [(f[1], f[2]) for f in found] == [(0x1005, 4), (0x1044, 0x1100)], found
        pci = vdriver.Pci(v.qtest)
        assert pci.read(found[0][0], 0x08) >> 8 == 0x00ff00      # class, revision 0
        assert pci.read(found[1][0], 0x08) & 0xff == 1          # modern-only: revision 1
        assert pci.read(found[0][0], 0x10) & 1                  # legacy I/O BAR
        assert pci.read(found[1][0], 0x10) == 0
        d = vdriver.VirtioPciDevice(v.qtest, found[0][0])
        assert set(d.caps) >= {1, 2, 3, 4, "msix"}, d.caps


def test_disable_modern_and_bad_properties():
    with start("-device", "virtio-rng-pci,disable-modern=on") as v:
        slot = vdriver.Pci(v.qtest).find()[0][0]
        d = vdriver.VirtioPciDevice(v.qtest, slot)
        assert 1 not in d.caps
    rc, _, err = vmm.run("-accel", "qtest", "-display", "none",
                         "-device", "virtio-rng-pci,disable-modern=on,disable-legacy=on")
    assert rc != 0 and "neither modern nor legacy" in err, err
    rc, _, err = vmm.run("-accel", "qtest", "-display", "none", "-device", "virtio-nope-pci")
    assert rc != 0 and "not a valid device model name" in err, err


def test_feature_negotiation():
    with start("-device", "virtio-rng-pci") as v:
        d = device(v)
        f = d.host_features()
        # QEMU 7.2's defaults for virtio-rng-pci
        expect = (1 << 24) | (1 << 27) | (1 << 28) | (1 << 29) | (1 << 30) | (1 << 32) | (1 << 40)
        assert f == expect, hex(f)
        st = d.negotiate(f | (1 << 50))     # a bit nobody offered
        assert not st & S_FEATURES_OK, hex(st)
        st = d.negotiate(vdriver.VERSION_1)
        assert st & S_FEATURES_OK
        d.w32(vdriver.GFSELECT, 1)
        assert d.r32(vdriver.GF) == 1
        d.set_status(0)
        assert d.status() == 0


def test_legacy_interface():
    with start("-device", "virtio-rng-pci") as v:
        d = device(v)
        qt, io = v.qtest, d.io
        qt.outb(io + 18, 0)
        assert qt.inl(io + 0) & (1 << 28)           # host features, low half
        qt.outb(io + 18, 3)
        qt.outl(io + 4, 0)
        qt.outw(io + 14, 0)
        assert qt.inw(io + 12) == 8                  # queue size
        ring = 0x200000
        qt.memwrite(ring, bytes(0x2000))
        qt.outl(io + 8, ring >> 12)
        qt.outb(io + 18, 7)
        # one buffer in the legacy layout: desc, avail right after, used on the next page
        buf = 0x300000
        qt.memwrite(ring, struct.pack("<QIHH", buf, 32, F_WRITE, 0))
        avail = ring + 16 * 8
        qt.writew(avail + 4, 0)
        qt.writew(avail + 2, 1)
        qt.outw(io + 16, 0)
        used = ring + 0x1000
        assert qt.readw(used + 2) == 1
        assert struct.unpack("<II", qt.memread(used + 4, 8)) == (0, 32)
        assert qt.inb(io + 19) & 1                  # ISR says: queue interrupt


# ---- rng ----

def test_rng_reads():
    path = tempfile.mktemp()
    with open(path, "wb") as f:
        f.write(b"\xab" * 4096)
    try:
        with start("-object", f"rng-random,id=r,filename={path}", "-device", "virtio-rng-pci,rng=r",
                   "-device", "virtio-rng-pci") as v:
            d = device(v, 0)
            vq, = d.init()
            buf = d.alloc.take(64)
            vq.add_chain([(buf, 16, True), (buf + 16, 48, True)])
            vq.kick()
            assert vq.wait_used() == (0, 64)
            assert v.qtest.memread(buf, 64) == b"\xab" * 64
            d2 = device(v, 1)                           # rng-builtin default
            vq2, = d2.init()
            buf2 = d2.alloc.take(4096)
            for _ in range(20):                         # wraps the 8-entry ring
                vq2.add_chain([(buf2, 4096, True)])
                vq2.kick()
                assert vq2.wait_used()[1] == 4096
            assert len(set(v.qtest.memread(buf2, 4096))) > 200
    finally:
        os.unlink(path)


def test_rng_rate_limit():
    """max-bytes per period: the quota runs out, requests wait in the ring
    until guest time reaches the next period, then get served."""
    with start("-device", "virtio-rng-pci,max-bytes=100,period=1000") as v:
        d = device(v, 0)
        vq, = d.init()
        buf = d.alloc.take(4096)
        for i in range(4):
            vq.add_chain([(buf + 64 * i, 64, True)])
        vq.kick()
        assert [vq.wait_used()[1] for _ in range(2)] == [64, 36]
        v.qtest.ok("clock_step 500000000")              # half a period: nothing more
        time.sleep(0.2)
        assert vq.used_idx() == 2
        v.qtest.ok("clock_step 600000000")              # the next period
        assert [vq.wait_used()[1] for _ in range(2)] == [64, 36]
    for bad, msg in (("period=0", "'period' parameter expects a positive integer"),
                     ("max-bytes=9223372036854775808",
                      "'max-bytes' parameter must be non-negative, and less than 2^63")):
        r = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                            "-device", f"virtio-rng-pci,{bad}"], capture_output=True, text=True)
        assert r.returncode == 1 and msg in r.stderr, r.stderr


# ---- blk ----

SECTOR = 512


def disk(size=4 << 20, fill=None):
    fd, path = tempfile.mkstemp(suffix=".img")
    with os.fdopen(fd, "wb") as f:
        if fill:
            f.write(fill)
        f.truncate(size)
    return path


class Blk:
    """virtio-blk requests over one queue."""

    def __init__(self, v, index=0, queues=(0,)):
        self.v = v
        self.d = device(v, index)
        self.vqs = self.d.init(queues)
        self.vq = self.vqs[0]
        self.hdr = self.d.alloc.take(16 * 64, 16)
        self.st = self.d.alloc.take(64, 16)
        self.data = self.d.alloc.take(1 << 20)
        self.n = 0

    def request(self, rtype, sector, out=b"", in_len=0, vq=None, indirect=False):
        vq = vq or self.vq
        qt = self.v.qtest
        h = self.hdr + 16 * (self.n % 64)
        st = self.st + self.n % 64
        self.n += 1
        qt.memwrite(h, struct.pack("<IIQ", rtype, 0, sector))
        qt.writeb(st, 0xee)
        bufs = [(h, 16, False)]
        if out:
            qt.memwrite(self.data, out)
            bufs.append((self.data, len(out), False))
        if in_len:
            bufs.append((self.data, in_len, True))
        bufs.append((st, 1, True))
        table = self.d.alloc.take(16 * len(bufs), 16) if indirect else None
        vq.add_chain(bufs, indirect_at=table)
        vq.kick()
        _, written = vq.wait_used()
        data = qt.memread(self.data, in_len) if in_len else b""
        return qt.readb(st), written, data


def test_blk_read_write_flush_id():
    pattern = bytes(range(256)) * 16
    path = disk(fill=pattern)
    try:
        with start("-drive", f"file={path},format=raw,if=none,id=d0",
                   "-device", "virtio-blk-pci,drive=d0,serial=VIREO-SN-1,id=disk0") as v:
            b = Blk(v)
            cfg_capacity = b.d.config(0, 8)
            assert cfg_capacity == (4 << 20) // SECTOR
            assert b.d.config(12, 4) == 254                  # seg_max
            assert b.d.config(20, 4) == 512                  # blk_size
            st, n, data = b.request(0, 0, in_len=4096)
            assert (st, n, data) == (0, 4097, pattern)
            st, n, _ = b.request(1, 8, out=b"\x5a" * 8192, indirect=True)
            assert (st, n) == (0, 1)
            st, n, _ = b.request(4, 0)                       # flush
            assert st == 0
            st, n, data = b.request(8, 0, in_len=20)         # get-id
            assert st == 0 and data == b"VIREO-SN-1".ljust(20, b"\0"), data
            st, _, _ = b.request(0, (4 << 20) // SECTOR, in_len=512)   # past the end
            assert st == 1
            st, _, _ = b.request(99, 0)                       # unknown type
            assert st == 2
            seg = struct.pack("<QII", 8, 8, 0)
            assert b.request(13, 0, out=seg)[0] == 0        # write-zeroes
            assert b.request(11, 0, out=seg)[0] == 0        # discard
            st, _, data = b.request(0, 8, in_len=8192)
            assert st == 0 and data == bytes(4096) + b"\x5a" * 4096
        with open(path, "rb") as f:
            f.seek(8 * SECTOR)
            assert f.read(8192) == bytes(4096) + b"\x5a" * 4096
    finally:
        os.unlink(path)


def test_blk_writethrough_cache_mode():
    """cache=writethrough starts with the write cache off (config byte 0); the
    driver may turn it on (config-wce), and a reset restores the drive's mode.
    Writes in writethrough mode complete (after their flush) with the data."""
    path = disk()
    try:
        with start("-drive", f"file={path},format=raw,if=none,id=d0,cache=writethrough",
                   "-device", "virtio-blk-pci,drive=d0") as v:
            b = Blk(v)
            assert b.d.config(32, 1) == 0
            st, n, _ = b.request(1, 0, out=b"\x33" * 4096)
            assert (st, n) == (0, 1)
            assert b.request(0, 0, in_len=4096)[2] == b"\x33" * 4096
            b.d.write_config(32, 1)
            assert b.d.config(32, 1) == 1
            assert b.request(1, 8, out=b"\x44" * 4096)[0] == 0
            b.d.set_status(0)
            assert b.d.config(32, 1) == 0
        with open(path, "rb") as f:
            assert f.read(8192) == b"\x33" * 4096 + b"\x44" * 4096
        with start("-drive", f"file={path},format=raw,if=none,id=d0",
                   "-device", "virtio-blk-pci,drive=d0") as v:
            assert Blk(v).d.config(32, 1) == 1                # writeback by default
    finally:
        os.unlink(path)


def scattered(b, rtype, sector, segs, writable):
    """One request whose data is many small buffers out of order."""
    qt = b.v.qtest
    h, st = b.hdr, b.st
    qt.memwrite(h, struct.pack("<IIQ", rtype, 0, sector))
    qt.writeb(st, 0xee)
    bufs = [(h, 16, False)] + [(a, n, writable) for a, n in segs] + [(st, 1, True)]
    b.vq.add_chain(bufs, indirect_at=b.d.alloc.take(16 * len(bufs), 16))
    b.vq.kick()
    _, written = b.vq.wait_used()
    return qt.readb(st), written


def test_blk_many_segments_end_to_end():
    """Requests of many small segments (gathered into one host buffer) keep
    every byte in its place, both ways."""
    path = disk()
    try:
        with start("-drive", f"file={path},format=raw,if=none,id=d0",
                   "-device", "virtio-blk-pci,drive=d0") as v:
            b = Blk(v)
            qt = v.qtest
            n = 24
            # Segment k of the request lives at slot n-1-k of the data area.
            segs = [(b.data + 1024 * (n - 1 - k), 512) for k in range(n)]
            payload = bytes((k * 7 + i) & 0xff for k in range(n) for i in range(512))
            for k, (a, ln) in enumerate(segs):
                qt.memwrite(a, payload[512 * k:512 * (k + 1)])
            assert scattered(b, 1, 16, segs, False) == (0, 1)
            qt.memwrite(b.data, bytes(1024 * n))
            rsegs = [(b.data + 1024 * k + 256, 512) for k in range(n)]
            assert scattered(b, 0, 16, rsegs, True) == (0, 1 + 512 * n)
            got = b"".join(qt.memread(a, ln) for a, ln in rsegs)
            assert got == payload
            assert qt.memread(b.data, 256) == bytes(256)     # nothing outside the buffers
        with open(path, "rb") as f:
            f.seek(16 * SECTOR)
            assert f.read(512 * n) == payload
    finally:
        os.unlink(path)


def test_blk_readonly_multiqueue_features():
    path = disk()
    try:
        with start("-drive", f"file={path},format=raw,if=none,id=d0,readonly=on",
                   "-device", "virtio-blk-pci,drive=d0,num-queues=2") as v:
            b = Blk(v, queues=(0, 1))
            f = b.d.host_features()
            for bit in (2, 4, 5, 6, 9, 10, 11, 12, 13, 14):
                assert f >> bit & 1, (bit, hex(f))
            assert b.d.config(34, 2) == 2
            assert b.d.r16(vdriver.NUMQ) == 2
            assert b.request(1, 0, out=bytes(512))[0] == 1    # read-only: I/O error
            assert b.request(0, 0, in_len=512, vq=b.vqs[1])[0] == 0
    finally:
        os.unlink(path)


def test_blk_qcow2_through_block_layer():
    img = tempfile.mktemp(suffix=".qcow2")
    rc = os.system(f"qemu-img create -q -f qcow2 {img} 8M")
    if rc:
        vtest.skip("qemu-img not available")
    try:
        with start("-drive", f"file={img},format=qcow2,if=none,id=q",
                   "-device", "virtio-blk-pci,drive=q") as v:
            b = Blk(v)
            data = os.urandom(65536)
            assert b.request(1, 100, out=data)[0] == 0
            st, _, back = b.request(0, 100, in_len=65536)
            assert st == 0 and back == data
    finally:
        os.unlink(img)


# ---- hostile chains ----

def hostile(build_chain, expect_broken=True):
    """Send a bad chain to virtio-blk; the device must break, an rng next to it must not."""
    path = disk()
    try:
        with start("-drive", f"file={path},format=raw,if=none,id=d0",
                   "-device", "virtio-blk-pci,drive=d0", "-device", "virtio-rng-pci") as v:
            b = Blk(v, 0)
            assert b.request(0, 0, in_len=512)[0] == 0
            build_chain(b, v.qtest)
            b.vq.kick()
            st = b.d.status()
            assert bool(st & S_NEEDS_RESET) == expect_broken, hex(st)
            if expect_broken:
                assert b.d.isr() & 2                         # configuration interrupt
            alive(v)
            r = device(v, 1)                                 # the neighbour still works
            rq, = r.init()
            buf = r.alloc.take(32)
            rq.add_chain([(buf, 32, True)])
            rq.kick()
            assert rq.wait_used() == (0, 32)
            # a reset brings the broken device back
            b2 = Blk(v, 0)
            assert b2.request(0, 0, in_len=512)[0] == 0
    finally:
        os.unlink(path)


def raw_chain(b, descs, table=None):
    """descs: [(addr, len, flags, next)] written at indexes 0.. of the ring (or a table)."""
    base = table if table is not None else b.vq.desc
    for i, (a, n, fl, nx) in enumerate(descs):
        b.v.qtest.memwrite(base + 16 * i, struct.pack("<QIHH", a, n, fl, nx))
    b.vq.publish(0)


def balloon_inflate_keeps(*args):
    """Inflate the balloon with one page holding a pattern: is it still there?"""
    with start("-m", "128M", "-device", "virtio-balloon-pci", *args) as v:
        d = device(v, 0)
        inflate, deflate, stats = d.init(queues=(0, 1, 2))
        page = d.alloc.take(4096)
        v.qtest.memwrite(page, b"\x5a" * 4096)
        pfns = d.alloc.take(4096)
        v.qtest.memwrite(pfns, struct.pack("<I", page >> 12))
        inflate.add_chain([(pfns, 4, False)])
        inflate.kick()
        assert inflate.wait_used() == (0, 0)
        with open(f"/proc/{v.proc.pid}/status") as f:
            locked_kib = int(re.search(r"^VmLck:\s+(\d+)", f.read(), re.M).group(1))
        return v.qtest.memread(page, 4096) == b"\x5a" * 4096, locked_kib


def test_balloon_discards_unless_memory_is_locked():
    kept, locked = balloon_inflate_keeps()
    assert not kept and locked == 0, (kept, locked)
    # -overcommit mem-lock=on: RAM stays resident and the balloon frees nothing.
    kept, locked = balloon_inflate_keeps("-overcommit", "mem-lock=on")
    assert kept and locked >= 128 << 10, (kept, locked)
    with start("-M", "none", "-m", "64M", "-overcommit", "mem-lock=on") as v:
        alive(v)        # start-up is over
        with open(f"/proc/{v.proc.pid}/status") as f:
            assert int(re.search(r"^VmLck:\s+(\d+)", f.read(), re.M).group(1)) >= 64 << 10


def test_hostile_loop():
    hostile(lambda b, qt: raw_chain(b, [(b.hdr, 16, F_NEXT, 1), (b.st, 1, F_NEXT | F_WRITE, 0)]))


def test_hostile_out_of_ram():
    hostile(lambda b, qt: raw_chain(b, [(b.hdr, 16, F_NEXT, 1), (0xfff00000, 4096, F_NEXT | F_WRITE, 2),
                                         (b.st, 1, F_WRITE, 0)]))


def test_hostile_address_wraps():
    hostile(lambda b, qt: raw_chain(b, [(b.hdr, 16, F_NEXT, 1), (2**64 - 16, 4096, F_WRITE, 0)]))


def test_hostile_zero_length():
    hostile(lambda b, qt: raw_chain(b, [(b.hdr, 16, F_NEXT, 1), (b.data, 0, F_NEXT | F_WRITE, 2),
                                         (b.st, 1, F_WRITE, 0)]))


def test_hostile_4gib_total():
    # two writable buffers over the same RAM adding up to exactly 2^32 bytes
    def chain(b, qt):
        big = 0x80000000
        raw_chain(b, [(b.hdr, 16, F_NEXT, 1), (0, big, F_NEXT | F_WRITE, 2), (0, big, F_WRITE, 0)])
    path = disk()
    try:
        with start("-m", "2050M", "-drive", f"file={path},format=raw,if=none,id=d0",
                   "-device", "virtio-blk-pci,drive=d0") as v:
            b = Blk(v)
            chain(b, v.qtest)
            b.vq.kick()
            assert b.d.status() & S_NEEDS_RESET
            alive(v)
    finally:
        os.unlink(path)


def test_hostile_wrong_direction():
    hostile(lambda b, qt: raw_chain(b, [(b.st, 1, F_NEXT | F_WRITE, 1), (b.hdr, 16, 0, 0)]))


def test_hostile_head_out_of_range():
    def chain(b, qt):
        qt.writew(b.vq.avail + 4 + 2 * (b.vq.avail_idx % b.vq.size), 0xffff)
        b.vq.avail_idx += 1
        qt.writew(b.vq.avail + 2, b.vq.avail_idx)
    hostile(chain)


def test_hostile_avail_index_jump():
    def chain(b, qt):
        qt.writew(b.vq.avail + 2, (b.vq.avail_idx + 1000) & 0xffff)
    hostile(chain)


def test_hostile_nested_indirect():
    def chain(b, qt):
        t1, t2 = b.d.alloc.take(64, 16), b.d.alloc.take(64, 16)
        qt.memwrite(t2, struct.pack("<QIHH", b.hdr, 16, 0, 0))
        qt.memwrite(t1, struct.pack("<QIHH", t2, 16, F_INDIRECT, 0))
        raw_chain(b, [(t1, 16, F_INDIRECT, 0)])
    hostile(chain)


def test_hostile_indirect_bad_length():
    def chain(b, qt):
        t = b.d.alloc.take(64, 16)
        raw_chain(b, [(t, 24, F_INDIRECT, 0)])
    hostile(chain)


def test_hostile_indirect_loop():
    def chain(b, qt):
        t = b.d.alloc.take(64, 16)
        qt.memwrite(t, struct.pack("<QIHHQIHH", b.hdr, 16, F_NEXT, 1, b.st, 1, F_NEXT | F_WRITE, 0))
        raw_chain(b, [(t, 32, F_INDIRECT, 0)])
    hostile(chain)


def test_hostile_missing_header():
    hostile(lambda b, qt: raw_chain(b, [(b.st, 1, F_WRITE, 0)]))


def test_hostile_ring_outside_ram():
    path = disk()
    try:
        with start("-drive", f"file={path},format=raw,if=none,id=d0",
                   "-device", "virtio-blk-pci,drive=d0") as v:
            d = device(v)
            d.negotiate()
            d.w16(vdriver.Q_SELECT, 0)
            d.w32(vdriver.Q_DESC, 0xfffff000)
            d.w32(vdriver.Q_DESC + 4, 0x10)
            d.w16(vdriver.Q_ENABLE, 1)
            assert d.status() & S_NEEDS_RESET
            assert d.r16(vdriver.Q_ENABLE) == 0
            alive(v)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    vtest.main()
