#!/usr/bin/env python3
"""qcow2 images whose metadata points where it must not: a write never lands
on other metadata or far past the end of the file.  The request fails with
an I/O error, the image is marked corrupt (qemu-img then agrees and refuses
to open it for writing) and the file keeps its size and its tables; check
needs memory for what the file stores, not for what its length claims."""
import json
import os
import resource
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))

import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402
from imgtest import Scratch, need_qemu, qimg, qio, vimg, vireo_img  # noqa: E402

INCOMPAT_CORRUPT = 1 << 1
T_IN, T_OUT = 0, 1
VIRTIO_BLK_S_IOERR = 1


class Blk:
    """A virtio-blk driver over qtest: one queue, one request at a time."""

    def __init__(self, v):
        self.qt = v.qtest
        alloc = vdriver.Alloc()
        dev = vdriver.VirtioPciDevice(self.qt, vdriver.Pci(self.qt).find()[0][0], alloc)
        self.vq = dev.init((0,))[0]
        self.hdr, self.st = alloc.take(16, 16), alloc.take(16, 16)
        self.data = alloc.take(1 << 16)
        self.table = alloc.take(16 * 8, 16)

    def request(self, rtype, sector, out=b"", in_len=0):
        self.qt.memwrite(self.hdr, struct.pack("<IIQ", rtype, 0, sector))
        self.qt.writeb(self.st, 0xee)
        bufs = [(self.hdr, 16, False)]
        if out:
            self.qt.memwrite(self.data, out)
            bufs.append((self.data, len(out), False))
        if in_len:
            bufs.append((self.data, in_len, True))
        bufs.append((self.st, 1, True))
        self.vq.add_chain(bufs, indirect_at=self.table)
        self.vq.kick()
        self.vq.wait_used()
        return self.qt.readb(self.st), self.qt.memread(self.data, in_len) if in_len else b""


def drive(path):
    return vmm.Vireo("-drive", f"file={path},format=qcow2,if=none,id=d0",
                     "-device", "virtio-blk-pci,drive=d0", qtest=True)


def header_field(path, off, fmt=">Q"):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def poke(path, off, value):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(">Q", value))


def small_image(path, size="64K"):
    qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", path, size)


def with_refblock_entry(path, entry):
    """The reproduction: the first refcount table entry set to @entry."""
    small_image(path)
    poke(path, header_field(path, 48), entry)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def assert_refused_and_marked(path, before, cluster=512):
    """Same size, nothing but the header changed, corrupt in both tools' eyes."""
    after = read_all(path)
    assert len(after) == len(before), (len(before), len(after))
    assert after[cluster:] == before[cluster:], "metadata outside the header changed"
    assert header_field(path, 72) & INCOMPAT_CORRUPT, "corrupt bit not set"
    info = json.loads(qimg("info", "--output=json", path).stdout)
    assert info["format-specific"]["data"]["corrupt"] is True, info
    p = qimg("check", path, ok=(2,))
    assert "errors were found" in p.stdout, p.stdout
    p = subprocess.run(["qemu-io", "-c", "write 0 512", path], capture_output=True, text=True)
    assert "Image is corrupt; cannot be opened read/write" in p.stderr, p.stderr
    # vireo says the same, and still serves reads
    p = vimg("resize", path, "1M", ok=(1,))
    assert "Image is corrupt; cannot be opened read/write" in p.stderr, p.stderr
    vimg("convert", "-O", "raw", path, path + ".raw")


def bench_write_fails(path):
    p = vimg("bench", "-w", "-c", "1", "-s", "512", "-q", path, ok=(1,))
    assert "Input/output error" in p.stderr, p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return p


def test_refblock_past_end_of_file():
    need_qemu()
    with Scratch() as s:
        img = s.path("eof.qcow2")
        with_refblock_entry(img, 0x100000000)
        before = read_all(img)
        p = bench_write_fails(img)
        assert "beyond the end of the image file" in p.stderr, p.stderr
        assert_refused_and_marked(img, before)


def test_refblock_on_top_of_l1_table():
    need_qemu()
    with Scratch() as s:
        img = s.path("l1.qcow2")
        small_image(img)
        with_refblock_entry(img, header_field(img, 40))
        before = read_all(img)
        p = bench_write_fails(img)
        assert "Marking image as corrupt" in p.stderr and "overlaps with" in p.stderr, p.stderr
        assert_refused_and_marked(img, before)


def test_refblock_entry_with_reserved_bits():
    need_qemu()
    with Scratch() as s:
        img = s.path("rsv.qcow2")
        with_refblock_entry(img, 0xfeffffff00)
        before = read_all(img)
        p = bench_write_fails(img)
        assert "reserved bits" in p.stderr, p.stderr
        assert_refused_and_marked(img, before)
        p = vimg("check", img, ok=(2,))
        assert "refcount table entry 0 has reserved bits set" in p.stderr, p.stderr


def test_data_cluster_on_top_of_refcount_table():
    """An L2 entry naming the refcount table: an overwrite must not reach it."""
    need_qemu()
    with Scratch() as s:
        img = s.path("l2.qcow2")
        small_image(img)
        qio(img, "write -P 0x33 0 512")
        l2 = header_field(img, header_field(img, 40)) & 0x00fffffffffffe00
        poke(img, l2, (1 << 63) | header_field(img, 48))
        before = read_all(img)
        p = bench_write_fails(img)
        assert "overlaps with refcount table" in p.stderr, p.stderr
        assert_refused_and_marked(img, before)


def test_tables_pointing_past_end_of_file():
    """An L1 entry or an L2 entry 1 TiB out: the write must not grow the file there."""
    need_qemu()
    with Scratch() as s:
        for which in ("l1", "l2"):
            img = s.path(f"far-{which}.qcow2")
            small_image(img)
            qio(img, "write -P 0x33 0 512")
            l1 = header_field(img, 40)
            where = l1 if which == "l1" else header_field(img, l1) & 0x00fffffffffffe00
            poke(img, where, (1 << 63) | (1 << 40))
            before = read_all(img)
            p = bench_write_fails(img)
            assert "beyond the end of the image file" in p.stderr, p.stderr
            assert_refused_and_marked(img, before)


def test_repair_clears_the_corrupt_bit():
    """A marked image whose metadata is consistent: check -r all makes it writable."""
    need_qemu()
    with Scratch() as s:
        img = s.path("ok.qcow2")
        small_image(img)
        poke(img, 72, header_field(img, 72) | INCOMPAT_CORRUPT)
        vimg("info", img)
        vimg("check", "-r", "all", img)
        assert not header_field(img, 72) & INCOMPAT_CORRUPT
        qio(img, "write -P 0x5a 0 512")
        vimg("bench", "-w", "-c", "1", "-s", "512", "-q", img)


MEM_LIMIT_MIB = 256


def uses_asan(binary):
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    return "libasan" in p.stdout


def run_bounded(args, timeout=120):
    """Run @args with allocations capped at MEM_LIMIT_MIB (ASan's own cap in a
    sanitizer build, whose shadow memory rules out an address-space limit);
    return the process and its peak resident memory in MiB."""
    env = dict(os.environ)
    limit = None
    if uses_asan(args[0]):
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               f":max_allocation_size_mb={MEM_LIMIT_MIB}"
                               ":allocator_may_return_null=1").lstrip(":")
    else:
        limit = (MEM_LIMIT_MIB + 256) << 20
    probe = ("import resource,subprocess,sys\n"
             "lim = int(sys.argv[1])\n"
             "def cap():\n"
             "    if lim: resource.setrlimit(resource.RLIMIT_AS, (lim, lim))\n"
             "p = subprocess.run(sys.argv[2:], capture_output=True, text=True, preexec_fn=cap)\n"
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.stderr.write(p.stdout + p.stderr)\n")
    p = subprocess.run([sys.executable, "-c", probe, str(limit or 0), *args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    rc, rss = p.stdout.split()
    return int(rc), int(rss) / 1024, p.stderr


def test_check_memory_follows_stored_data_not_file_length():
    """A 1 TiB sparse file with 512-byte clusters: 2^31 clusters its length
    claims (8 GiB of counters at 4 bytes each), a handful it holds.  check
    and check -r all must work in a few MiB."""
    need_qemu()
    with Scratch() as s:
        img = s.path("sparse.qcow2")
        small_image(img)
        qio(img, "write -P 0x44 0 4k")
        os.truncate(img, 1 << 40)
        small = s.path("small.qcow2")
        small_image(small)
        _, baseline, _ = run_bounded([vireo_img(), "check", small])
        for args in (["check"], ["check", "-r", "all"]):
            rc, peak, out = run_bounded([vireo_img(), *args, img])
            assert rc == 0, (args, rc, out)
            assert peak < baseline + 64, (args, baseline, peak)
        qio(img, "read -P 0x44 0 4k")


def test_vmm_guest_write_gets_an_io_error():
    need_qemu()
    with Scratch() as s:
        img = s.path("vm.qcow2")
        with_refblock_entry(img, 0x100000000)
        before = read_all(img)
        with drive(img) as v:
            b = Blk(v)
            st, back = b.request(T_IN, 0, in_len=512)
            assert st == 0 and back == bytes(512)
            assert b.request(T_OUT, 0, out=b"\x77" * 512)[0] == VIRTIO_BLK_S_IOERR
            assert b.request(T_OUT, 64, out=b"\x77" * 512)[0] == VIRTIO_BLK_S_IOERR
            st, back = b.request(T_IN, 0, in_len=512)
            assert st == 0 and back == bytes(512)
        assert_refused_and_marked(img, before)


resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
vtest.main()
