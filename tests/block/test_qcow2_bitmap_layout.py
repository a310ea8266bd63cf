#!/usr/bin/env python3
"""Where persistent bitmaps land in a qcow2 file.  qemu-img 7.2 rewrites
every bitmap in use when it closes an image (new tables in directory order,
then the directory, then the old clusters are freed) and writes a table or
directory only as long as it is, so its file may end inside the last
cluster.  `qemu-img measure -f raw` of such a file (qemu-iotests 190)
depends on that length: vireo-img must make the same file, step by step."""
import os
import struct

import vtest
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, vimg


def layout(path):
    """File length, bitmap directory place and size, each bitmap's table
    offset, and the clusters the refcounts name, read per the qcow2 spec."""
    with open(path, "rb") as f:
        data = f.read()
    hdr = struct.unpack(">IIQIIQIIQQIIQQQQII", data[:104])
    cs = 1 << hdr[4]
    rt_off, rt_clusters, header_len = hdr[9], hdr[10], hdr[17]
    bitmaps, directory = [], None
    pos = header_len
    while pos + 8 <= len(data):
        typ, ln = struct.unpack(">II", data[pos:pos + 8])
        if typ == 0:
            break
        if typ == 0x23852875:
            nb, _, dsize, doff = struct.unpack(">IIQQ", data[pos + 8:pos + 32])
            directory = (doff, dsize)
            p = doff
            for _ in range(nb):
                toff, tsize, _flags, _t, _g, nlen, extra = struct.unpack(">QIIBBHI",
                                                                      data[p:p + 24])
                name = data[p + 24 + extra:p + 24 + extra + nlen].decode()
                bitmaps.append((name, toff, tsize))
                p += (24 + extra + nlen + 7) // 8 * 8
        pos += 8 + (ln + 7) // 8 * 8
    used = []
    for i in range(rt_clusters * cs // 8):
        (blk,) = struct.unpack(">Q", data[rt_off + 8 * i:rt_off + 8 * i + 8])
        if blk:
            for j in range(cs // 2):
                if struct.unpack(">H", data[blk + 2 * j:blk + 2 * j + 2])[0]:
                    used.append(i * (cs // 2) + j)
    return {"length": len(data), "directory": directory, "bitmaps": bitmaps, "used": used}


def steps(tool, path, size, cluster):
    tool("create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster}", path, size)
    yield "create"
    tool("bitmap", "--add", "--granularity", "512", "-f", "qcow2", path, "b1")
    yield "add b1"
    tool("bitmap", "--add", "-g", "2M", "-f", "qcow2", path, "b2")
    yield "add b2"
    tool("bitmap", "--disable", "-f", "qcow2", path, "b1")
    yield "disable b1"
    tool("bitmap", "--remove", "-f", "qcow2", path, "b2")
    yield "remove b2"


def compare_steps(size, cluster):
    need_qemu()
    with Scratch() as s:
        mine, ref = s.path("vireo.qcow2"), s.path("qemu.qcow2")
        for a, b in zip(steps(vimg, mine, size, cluster), steps(qimg, ref, size, cluster)):
            assert a == b
            got, want = layout(mine), layout(ref)
            assert got == want, f"after {a}: vireo-img {got}\nqemu-img {want}"
            qemu_check_clean(mine)
        m1 = vimg("measure", "-O", "qcow2", "-f", "raw", mine).stdout
        m2 = qimg("measure", "-O", "qcow2", "-f", "raw", ref).stdout
        assert m1 == m2, (m1, m2)
        assert os.path.getsize(mine) % cluster, "the directory should end inside a cluster"


def test_huge_image_2m_clusters():
    # qemu-iotests 190's image: the file ends 64 bytes into its ninth cluster.
    compare_steps("2T", 2 << 20)


def test_64k_clusters():
    compare_steps("1G", 64 << 10)


vtest.main()
