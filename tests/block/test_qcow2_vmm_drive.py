#!/usr/bin/env python3
"""The VMM's -drive uses the same block layer as vireo-img: a virtio-blk
device (driven over qtest, no guest CPU) reads and writes qcow2 images with
extended L2 entries over a backing file and images with an external (raw)
data file; qemu-img check and qemu-io then agree with what went through."""
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))

import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402
from imgtest import Scratch, in_dir, need_qemu, qemu_check_clean, qimg, qio, vimg  # noqa: E402

T_IN, T_OUT, T_FLUSH, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 11, 13
SECTOR = 512


class Blk:
    """Just enough of a virtio-blk driver: one queue, one request at a time."""

    def __init__(self, v):
        self.v = v
        alloc = vdriver.Alloc()
        found = vdriver.Pci(v.qtest).find()
        self.d = vdriver.VirtioPciDevice(v.qtest, found[0][0], alloc)
        self.vq = self.d.init((0,))[0]
        self.hdr = alloc.take(16, 16)
        self.st = alloc.take(16, 16)
        self.data = alloc.take(1 << 20)
        # one indirect table: each request then holds a single ring descriptor,
        # which wait_used() hands back
        self.table = alloc.take(16 * 8, 16)

    def request(self, rtype, sector, out=b"", in_len=0):
        qt = self.v.qtest
        qt.memwrite(self.hdr, struct.pack("<IIQ", rtype, 0, sector))
        qt.writeb(self.st, 0xee)
        bufs = [(self.hdr, 16, False)]
        if out:
            qt.memwrite(self.data, out)
            bufs.append((self.data, len(out), False))
        if in_len:
            bufs.append((self.data, in_len, True))
        bufs.append((self.st, 1, True))
        self.vq.add_chain(bufs, indirect_at=self.table)
        self.vq.kick()
        self.vq.wait_used()
        data = qt.memread(self.data, in_len) if in_len else b""
        return qt.readb(self.st), data


def drive(path):
    return vmm.Vireo("-drive", f"file={path},format=qcow2,if=none,id=d0",
                     "-device", "virtio-blk-pci,drive=d0", qtest=True)


def test_vmm_subclusters_over_backing():
    need_qemu()
    with Scratch() as s:
        base, top = s.path("base.qcow2"), s.path("top.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "4M")
        qio(base, "write -P 0xaa 0 4M")
        qimg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", base, "-F", "qcow2",
             top, "4M")
        qio(top, "write -P 0x11 64k 2k")
        with drive(top) as v:
            b = Blk(v)
            # 4k at sector 100 (51200): two subclusters, the first written in part
            assert b.request(T_OUT, 100, out=b"\x5c" * 4096)[0] == 0
            # and the same again, now on allocated subclusters
            assert b.request(T_OUT, 300, out=b"\x5d" * 512)[0] == 0
            assert b.request(T_OUT, 301, out=b"\x5e" * 512)[0] == 0
            st, back = b.request(T_IN, 96, in_len=12288)
            assert st == 0
            assert back == b"\xaa" * 2048 + b"\x5c" * 4096 + b"\xaa" * 6144
            st, back = b.request(T_IN, 128, in_len=4096)
            assert st == 0 and back == b"\x11" * 2048 + b"\xaa" * 2048
            assert b.request(T_FLUSH, 0)[0] == 0
        qemu_check_clean(top)
        qio(top, "read -P 0xaa 0 51200", "read -P 0x5c 51200 4k", "read -P 0xaa 55296 9984",
            "read -P 0x11 64k 2k", "read -P 0x5d 153600 512", "read -P 0x5e 154112 512")


def test_vmm_external_raw_data_file():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
        img = s.path("d.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", "data_file=d.raw,data_file_raw=on", img,
             "2M")
        qio(img, "write -P 0x21 0 64k")
        with drive(img) as v:
            b = Blk(v)
            st, back = b.request(T_IN, 0, in_len=4096)
            assert st == 0 and back == b"\x21" * 4096
            assert b.request(T_OUT, 1000, out=b"\x42" * 8192)[0] == 0
            st, back = b.request(T_IN, 1000, in_len=8192)
            assert st == 0 and back == b"\x42" * 8192
            assert b.request(T_FLUSH, 0)[0] == 0
        # the data file is the raw image
        with open(s.path("d.raw"), "rb") as f:
            raw = f.read()
        assert raw[:65536] == b"\x21" * 65536
        assert raw[512000:512000 + 8192] == b"\x42" * 8192
        qemu_check_clean(img)
        qio(img, "read -P 0x42 512000 8k", "read -P 0x21 0 64k")


def random_ops(b, model, rng, count):
    """Random writes, write-zeroes and discards; @model follows what the guest must see."""
    sectors = len(model) // SECTOR
    for _ in range(count):
        op = rng.choice((T_OUT, T_OUT, T_WRITE_ZEROES, T_DISCARD))
        n = rng.choice((1, 2, 3, 4, 8, 16, 40, 130, 300))
        sector = rng.randrange(0, sectors - n)
        lo, hi = sector * SECTOR, (sector + n) * SECTOR
        if op == T_OUT:
            data = bytes([rng.randrange(1, 256)]) * (hi - lo)
            assert b.request(T_OUT, sector, out=data)[0] == 0
            model[lo:hi] = data
            continue
        seg = struct.pack("<QII", sector, n, 0)
        assert b.request(op, 0, out=seg)[0] == 0
        if op == T_WRITE_ZEROES:
            model[lo:hi] = bytes(hi - lo)
            continue
        # a discard is advisory: each sector keeps its data or reads as zeros
        st, back = b.request(T_IN, sector, in_len=hi - lo)
        assert st == 0
        for i in range(0, hi - lo, SECTOR):
            got = back[i:i + SECTOR]
            assert got == model[lo + i:lo + i + SECTOR] or got == bytes(SECTOR), (sector, i)
        model[lo:hi] = back
    for off in range(0, len(model), 256 << 10):
        st, back = b.request(T_IN, off // SECTOR, in_len=16 << 10)
        assert st == 0 and back == model[off:off + (16 << 10)], off
    assert b.request(T_FLUSH, 0)[0] == 0


def test_vmm_random_ops_match_a_model():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
        base = s.path("base.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "2M")
        qio(base, "write -P 0xaa 0 1M", "write -P 0xbb 1M 1M")
        backing = bytearray(b"\xaa" * (1 << 20) + b"\xbb" * (1 << 20))
        for n, (opts, backed) in enumerate((
                ("extended_l2=on", True), ("extended_l2=on,cluster_size=16k", False),
                ("extended_l2=on,cluster_size=32k", True),
                ("data_file=r.raw,data_file_raw=on", False),
                ("data_file=e.raw,extended_l2=on", False))):
            img = s.path(f"img{n}.qcow2")
            args = ["-b", base, "-F", "qcow2"] if backed else []
            qimg("create", "-q", "-f", "qcow2", "-o", opts, *args, img, "2M")
            model = bytearray(backing) if backed else bytearray(2 << 20)
            with drive(img) as v:
                random_ops(Blk(v), model, random.Random(n), 150)
            qemu_check_clean(img)
            for tool in (qimg, vimg):
                out = s.path("out.raw")
                if os.path.exists(out):
                    os.unlink(out)
                tool("convert", "-O", "raw", img, out)
                with open(out, "rb") as f:
                    assert f.read() == model, (opts, tool)
            if "data_file_raw=on" in opts:
                with open(s.path("r.raw"), "rb") as f:
                    assert f.read() == model


vtest.main()
