#!/usr/bin/env python3
"""Images on tmpfs, where the block layer takes paths of its own: io_uring
requests go straight to io-wq (tmpfs has no non-blocking read path) and raw
images remember data extents instead of asking SEEK_HOLE per chunk.  The
results must be the same as anywhere else."""
import json
import mmap
import os
import random
import shutil
import tempfile

import vtest
from imgtest import need_qemu, qemu_check_clean, qimg, qio, same_content, vimg

SHM = "/dev/shm"


def o_direct_works(d):
    fd, path = tempfile.mkstemp(dir=d)
    os.close(fd)
    try:
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
        try:
            return os.pwritev(fd, [mmap.mmap(-1, 4096)], 0) == 4096
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        os.unlink(path)


class ShmScratch:
    def __enter__(self):
        if not os.path.isdir(SHM) or not os.access(SHM, os.W_OK):
            vtest.skip(f"{SHM} not available")
        self.dir = tempfile.mkdtemp(prefix="vireo-blk-", dir=SHM)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


def test_uring_bench_on_tmpfs_writes_real_data():
    need_qemu()
    with ShmScratch() as s:
        if not o_direct_works(s.dir):
            vtest.skip("tmpfs without O_DIRECT (kernel before 6.6)")
        img = s.path("b.qcow2")
        vimg("create", "-q", "-f", "qcow2", img, "64M")
        step = 69632          # 68 KiB: crosses clusters, several writes per cluster
        count = 900
        vimg("bench", "-w", "-t", "none", "-i", "io_uring", "-d", "32", "-s", "4k",
             "-S", str(step), "-c", str(count), "--pattern", "0x5a", img)
        qemu_check_clean(img)
        offs = sorted({(i * step) % (64 * 1024 * 1024 - 4096) for i in range(count)})
        rnd = random.Random(7)
        qio(img, *[f"read -P 0x5a {o} 4k" for o in rnd.sample(offs, 64)])
        # reads of allocated and unallocated clusters, sequential and scattered
        for extra in (["-s", "64k"], ["-s", "4k", "-S", str(step)]):
            out = vimg("bench", "-t", "none", "-i", "io_uring", "-d", "32", "-c", "3000",
                       *extra, img).stdout
            assert out.splitlines()[-1].startswith("Run completed in "), out


def test_raw_extents_on_tmpfs():
    need_qemu()
    with ShmScratch() as s:
        raw = s.path("holes.raw")
        mib = 1 << 20
        with open(raw, "wb") as f:
            f.truncate(24 * mib)
            for start, n in ((0, 3), (5, 1), (9, 6), (20, 4)):
                f.seek(start * mib)
                f.write(bytes([start + 1]) * (n * mib - 4096) + b"\0" * 4096)
        vm = json.loads(vimg("map", "--output=json", "-f", "raw", raw).stdout)
        qm = json.loads(qimg("map", "--output=json", "-f", "raw", raw).stdout)
        strip = lambda m: [(e["start"], e["length"], e["data"], e["zero"]) for e in m]
        assert strip(vm) == strip(qm), (vm, qm)
        q = s.path("out.qcow2")
        vimg("convert", "-f", "raw", "-O", "qcow2", raw, q)
        qemu_check_clean(q)
        same_content(raw, q, fa="raw")
        back = s.path("back.raw")
        vimg("convert", "-O", "raw", q, back)
        same_content(raw, back, fa="raw", fb="raw")
        c = s.path("out-c.qcow2")
        vimg("convert", "-c", "-f", "raw", "-O", "qcow2", raw, c)
        qemu_check_clean(c)
        same_content(raw, c, fa="raw")


vtest.main()
