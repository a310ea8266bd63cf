#!/usr/bin/env python3
"""The VMM's -drive uses the same block layer as vireo-img: a virtio-blk
device (driven over qtest, no guest CPU) reads and writes qcow2 images with
extended L2 entries over a backing file and images with an external (raw)
data file; qemu-img check and qemu-io then agree with what went through."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))

import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, qio  # noqa: E402

T_IN, T_OUT, T_FLUSH = 0, 1, 4


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
        self.vq.add_chain(bufs)
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
    old = os.getcwd()
    with Scratch() as s:
        # qemu 7.2 looks for a relative data file from its working directory
        os.chdir(s.dir)
        try:
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
        finally:
            os.chdir(old)


vtest.main()
