#!/usr/bin/env python3
"""parallels images: vireo-img and Debian's qemu-img/qemu-io each read, check
and compare what the other wrote."""
import json
import struct

import vtest
from imgtest import (PAR_FEAT_BITMAP, PAR_INUSE_CLOSED, Scratch, need_qemu,
                     parallels_bitmap_set_bits, parallels_image, parallels_read_ext,
                     qemu_check_clean, qimg, qio, run, same_content, vimg)

PATTERN = ["write -P 0x11 0 1M", "write -P 0x22 3M 64k", "write -P 0x33 100k 4k",
           "write -P 0x44 7M 512", "write -P 0x55 15M 1M"]
CHECKS = ["read -P 0x11 0 100k", "read -P 0x33 100k 4k", "read -P 0x22 3M 64k",
          "read -P 0x44 7M 512", "read -P 0 8M 7M", "read -P 0x55 15M 1M"]


def qread(path, *cmds):
    """qemu-io read-only: opening read-write would let qemu rewrite the header."""
    args = ["qemu-io", "-r", "-f", "parallels"]
    for c in cmds:
        args += ["-c", c]
    out = run(args + [path]).stdout
    assert "fail" not in out.lower() and "mismatch" not in out.lower(), out


def test_create_matches_qemu_byte_for_byte():
    need_qemu()
    with Scratch() as s:
        for size, cs in (("64M", None), ("5000000", None), ("10M", "64k"), ("1G", "4k"),
                         ("3M", "1536k")):
            a, b = s.path("v.img"), s.path("q.img")
            opts = ["-o", f"cluster_size={cs}"] if cs else []
            out = vimg("create", "-f", "parallels", *opts, a, size).stdout
            qout = qimg("create", "-f", "parallels", *opts, b, size).stdout
            assert out.replace("v.img", "") == qout.replace("q.img", ""), (out, qout)
            assert open(a, "rb").read() == open(b, "rb").read(), (size, cs)


def test_info_members_match_qemu():
    need_qemu()
    with Scratch() as s:
        p = s.path("p.img")
        vimg("create", "-q", "-f", "parallels", p, "16M")
        qio(p, *PATTERN, fmt="parallels")
        v = json.loads(vimg("info", "--output=json", p).stdout)
        q = json.loads(qimg("info", "--output=json", p).stdout)
        assert sorted(v) == sorted(q), (v, q)
        assert v["virtual-size"] == q["virtual-size"] and v["format"] == "parallels"
        human = vimg("info", p).stdout
        assert "file format: parallels" in human and "cluster_size" not in human


def test_vireo_writes_qemu_reads_and_checks():
    need_qemu()
    with Scratch() as s:
        src = s.path("src.qcow2")
        qimg("create", "-q", "-f", "qcow2", src, "16M")
        qio(src, *PATTERN)
        for cs in ("4k", "64k", "1M"):
            dst = s.path(f"v-{cs}.img")
            vimg("create", "-q", "-f", "parallels", "-o", f"cluster_size={cs}", dst, "16M")
            vimg("convert", "-n", "-O", "parallels", src, dst)
            # in_use says "closed cleanly" once vireo is done with it
            assert struct.unpack_from("<I", open(dst, "rb").read(), 44)[0] == PAR_INUSE_CLOSED
            r = qemu_check_clean(dst, fmt="parallels")
            assert r["check-errors"] == 0
            same_content(src, dst, "qcow2", "parallels")
            qio(dst, *CHECKS, fmt="parallels")


def test_qemu_writes_vireo_reads_and_checks():
    need_qemu()
    with Scratch() as s:
        for cs in ("64k", "1M"):
            p = s.path(f"q-{cs}.img")
            qimg("create", "-q", "-f", "parallels", "-o", f"cluster_size={cs}", p, "16M")
            qio(p, *PATTERN, fmt="parallels")
            r = json.loads(vimg("check", "--output=json", p).stdout)
            q = json.loads(qimg("check", "--output=json", p).stdout)
            assert r == {**q, "filename": r["filename"]}, (r, q)
            raw = s.path("out.raw")
            vimg("convert", "-O", "raw", p, raw)
            same_content(p, raw, "parallels", "raw")
            assert "identical" in vimg("compare", p, raw).stdout
            vm = json.loads(vimg("map", "--output=json", p).stdout)
            qm = json.loads(qimg("map", "--output=json", p).stdout)
            assert vm == qm, (vm, qm)


def test_async_writes_then_qemu_reads():
    need_qemu()
    with Scratch() as s:
        p = s.path("b.img")
        vimg("create", "-q", "-f", "parallels", "-o", "cluster_size=64k", p, "8M")
        vimg("bench", "-w", "-c", "2000", "-d", "16", "-s", "4096", "-S", "8192",
             "-i", "io_uring", "-t", "none", p)
        qemu_check_clean(p, fmt="parallels")
        a, b = s.path("v.raw"), s.path("q.raw")
        vimg("convert", "-O", "raw", p, a)
        qimg("convert", "-O", "raw", p, b)
        assert open(a, "rb").read() == open(b, "rb").read()
        m = json.loads(qimg("map", "--output=json", p).stdout)
        assert m[0]["data"] and m[0]["length"] == 8 << 20, m
        vimg("bench", "-c", "2000", "-d", "16", "-i", "threads", p)


def test_qemu_io_and_vireo_take_turns():
    need_qemu()
    with Scratch() as s:
        p = s.path("t.img")
        qimg("create", "-q", "-f", "parallels", p, "8M")
        qio(p, "write -P 0x01 0 64k", fmt="parallels")
        src = s.path("patch.raw")
        with open(src, "wb") as f:
            f.write(b"\x02" * 65536)
            f.truncate(8 << 20)
        vimg("convert", "-n", "-f", "raw", "-O", "parallels", src, p)
        qio(p, "read -P 0x02 0 64k", "read -P 0 64k 1M", "write -P 0x03 2M 4k",
            fmt="parallels")
        vimg("compare", "-f", "parallels", p, p)
        raw = s.path("back.raw")
        vimg("convert", "-O", "raw", p, raw)
        data = open(raw, "rb").read()
        assert data[:65536] == b"\2" * 65536 and data[2 << 20:(2 << 20) + 4096] == b"\3" * 4096
        vimg("check", p)


def test_old_magic_images_read_both_ways():
    need_qemu()
    with Scratch() as s:
        p = s.path("old.img")
        parallels_image(p, {0: 0xa1, 5: 0xa2}, magic=b"WithoutFreeSpace", data_off=0)
        qread(p, "read -P 0xa1 0 64k", "read -P 0 64k 64k", "read -P 0xa2 320k 64k")
        vimg("check", p)
        raw = s.path("old.raw")
        vimg("convert", "-O", "raw", p, raw)
        same_content(p, raw, "parallels", "raw")
        # vireo allocates in sector units for old images; qemu must agree
        vimg("convert", "-n", "-f", "raw", "-O", "parallels", raw, p)
        vimg("bench", "-w", "-c", "4", "-d", "1", "-o", "600k", p)
        qread(p, "read -P 0xa2 320k 64k", "read -P 0 400k 64k")
        qemu_check_clean(p, fmt="parallels")
        vimg("check", p)
        qimg("compare", "-f", "parallels", "-F", "parallels", p, p)


def test_dirty_bitmap_tracks_writes():
    need_qemu()
    with Scratch() as s:
        p = s.path("bm.img")
        uuid = "0123abcd-0000-4000-8000-00000000beef"
        vimg("create", "-q", "-f", "parallels", "-o", "cluster_size=64k", p, "32M")
        vimg("bitmap", "--add", "-g", "64k", p, uuid)
        vimg("bench", "-w", "-c", "3", "-d", "1", "-o", "1M", "-s", "65536", p)
        in_use, feats = parallels_read_ext(p)
        assert in_use == PAR_INUSE_CLOSED and len(feats) == 1 and feats[0][0] == PAR_FEAT_BITMAP
        bits, gran = parallels_bitmap_set_bits(p, feats[0][2])
        assert gran == 128 and bits == {16, 17, 18}, bits
        assert bytes.fromhex(uuid.replace("-", "")) == feats[0][2][8:24]
        vimg("check", p)
        # qemu 7.2 counts only BAT clusters, so it calls the extension's clusters leaks
        r = json.loads(qimg("check", "--output=json", p, ok=(0, 3)).stdout)
        assert r.get("corruptions", 0) == 0, r
        # qemu reads the data of an image carrying the extension
        qread(p, "read -P 0 0 1M")
        vimg("bitmap", "--clear", p, uuid)
        _, feats = parallels_read_ext(p)
        assert parallels_bitmap_set_bits(p, feats[0][2])[0] == set()
        vimg("bitmap", "--add", p, "not-a-uuid", ok=(1,))
        vimg("bitmap", "--remove", p, uuid)
        assert parallels_read_ext(p)[1] == []


vtest.main()
