#!/usr/bin/env python3
"""Resizing qcow2 images that carry persistent dirty bitmaps: vireo-img grows
and shrinks them as qemu-img 7.2 does (bitmaps follow the disk, set bits kept,
new area clean), refuses as qemu-img does when a bitmap is inconsistent, and
each tool reads what the other resized."""
import json
import shutil
import struct

import vtest
from imgtest import (Scratch, need_qemu, qcow2_bitmap_bits, qemu_check_clean, qimg,
                     qio, vimg)

M = 1 << 20


def bitmap_info(path):
    info = json.loads(qimg("info", "--output=json", path).stdout)
    bms = info["format-specific"]["data"].get("bitmaps", [])
    return info["virtual-size"], {b["name"]: (b["granularity"], b["flags"]) for b in bms}


def all_bits(path, names):
    return {n: qcow2_bitmap_bits(path, n)[0] for n in names}


def vireo_reads(path, name, gran):
    """The bits as vireo's block layer reads them: merged into a fresh bitmap
    of the same granularity, which vireo then stores."""
    vimg("bitmap", "--add", "-g", str(gran), path, "probe")
    vimg("bitmap", "--merge", name, path, "probe")
    bits = qcow2_bitmap_bits(path, "probe")[0]
    vimg("bitmap", "--remove", path, "probe")
    return bits


def qemu_reads(s, path, names):
    """The bits as qemu reads them: copied with convert --bitmaps."""
    out = s.path("qcopy.qcow2")
    qimg("convert", "-O", "qcow2", "--bitmaps", path, out)
    return all_bits(out, names)


def set_bitmap_flags(path, name, flags):
    """OR @flags into a bitmap's directory entry, straight in the file."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        pos = struct.unpack(">I", data[100:104])[0]
        while True:
            typ, ln = struct.unpack(">II", data[pos:pos + 8])
            assert typ != 0, "no bitmaps extension"
            if typ == 0x23852875:
                nb, _, _, doff = struct.unpack(">IIQQ", data[pos + 8:pos + 32])
                break
            pos += 8 + (ln + 7) // 8 * 8
        p = doff
        for _ in range(nb):
            _, _, fl, _, _, nlen, extra = struct.unpack(">QIIBBHI", data[p:p + 24])
            if data[p + 24 + extra:p + 24 + extra + nlen].decode() == name:
                struct.pack_into(">I", data, p + 12, fl | flags)
            p += (24 + extra + nlen + 7) // 8 * 8
        f.seek(0)
        f.write(data)


def make_bitmap_image(path, cluster_size):
    qimg("create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster_size}", path, "64M")
    qimg("bitmap", "--add", path, "a")
    qimg("bitmap", "--add", "-g", "512", path, "b")
    qimg("bitmap", "--add", "--disable", "-g", "64k", path, "c")
    qio(path, "write -P 0x5 0 4k", "write -P 0x6 10M 512", "write 63M 1M")
    qimg("bitmap", "--merge", "a", path, "c")


def check_same(s, p, q, names):
    """p (vireo resized) and q (qemu resized the same way) agree everywhere."""
    qemu_check_clean(p)
    assert bitmap_info(p) == bitmap_info(q), (bitmap_info(p), bitmap_info(q))
    bits = all_bits(p, names)
    assert bits == all_bits(q, names)
    assert qemu_reads(s, p, names) == bits
    _, info = bitmap_info(p)
    for n in names:
        assert vireo_reads(p, n, info[n][0]) == bits[n], n
    return bits


def test_grow_and_shrink_with_bitmaps_like_qemu():
    need_qemu()
    names = ["a", "b", "c"]
    # 512-byte clusters make the 512-byte-granularity bitmap's table span
    # several clusters once the disk grows; 64k is the default.
    for cs in (512, 65536):
        with Scratch() as s:
            p, q = s.path("v.qcow2"), s.path("q.qcow2")
            make_bitmap_image(p, cs)
            before = all_bits(p, names)
            assert all(before[n] for n in names), before
            _, info_before = bitmap_info(p)
            shutil.copy(p, q)

            # grow: every bitmap keeps its bits, the new area is clean
            assert vimg("resize", p, "256M").stdout == "Image resized.\n"
            qimg("resize", "-q", q, "256M")
            size, info = bitmap_info(p)
            assert size == 256 * M and info == info_before, info
            assert check_same(s, p, q, names) == before

            # the grown bitmaps go on tracking writes, through either tool
            for img in (p, q):
                qio(img, "write 200M 64k", f"write {256 * M - 512} 512")
                vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "4096", "-o", str(130 * M), img)
            grown = check_same(s, p, q, names)
            assert (200 * M) // 512 in grown["b"] and (256 * M - 1) // 512 in grown["b"]
            assert (130 * M) // 512 in grown["b"] and grown["c"] == before["c"]

            # shrink to a size that cuts a granularity block of every bitmap;
            # dropping the tail is not a write, so a cleared bitmap stays clear
            for img in (p, q):
                qimg("bitmap", "--clear", img, "a")
            new = 63 * M + 512
            r = vimg("resize", "--shrink", p, str(new))
            assert r.stdout == "Image resized.\n", r.stdout
            qimg("resize", "-q", "--shrink", q, str(new))
            assert bitmap_info(p)[0] == new
            shrunk = check_same(s, p, q, names)
            assert shrunk["b"] == {b for b in grown["b"] if b * 512 < new}
            assert (63 * M) // 512 in shrunk["b"] and shrunk["a"] == set()

            # and grow again: what was cut off does not come back
            vimg("resize", p, "+1M")
            qimg("resize", "-q", q, "+1M")
            assert check_same(s, p, q, names) == shrunk


def test_vireo_reads_bitmaps_qemu_resized():
    need_qemu()
    with Scratch() as s:
        p = s.path("q.qcow2")
        make_bitmap_image(p, 65536)
        before = all_bits(p, ["a", "b", "c"])
        qimg("resize", "-q", p, "1G")
        qio(p, "write 900M 4k")
        vimg("check", p)
        info = json.loads(vimg("info", "--output=json", p).stdout)
        assert info["virtual-size"] == 1 << 30
        assert [b for b in info["format-specific"]["data"]["bitmaps"]] == \
            json.loads(qimg("info", "--output=json", p).stdout)["format-specific"]["data"]["bitmaps"]
        _, binfo = bitmap_info(p)
        for n in ("a", "b", "c"):
            bits = qcow2_bitmap_bits(p, n)[0]
            assert vireo_reads(p, n, binfo[n][0]) == bits
            g = binfo[n][0]
            new = set(range(900 * M // g, (900 * M + 4095) // g + 1))
            assert bits == before[n] | (new if "auto" in binfo[n][1] else set()), n
        qimg("resize", "-q", "--shrink", p, "32M")
        vimg("resize", p, "48M")
        qemu_check_clean(p)
        assert all_bits(p, ["a"])["a"] == {b for b in before["a"] if b * binfo["a"][0] < 32 * M}


def test_resize_refusals_match_qemu():
    need_qemu()
    with Scratch() as s:
        # an inconsistent (in-use) bitmap: both tools refuse, nothing changes
        p = s.path("i.qcow2")
        qimg("create", "-q", "-f", "qcow2", p, "64M")
        qimg("bitmap", "--add", p, "good")
        qimg("bitmap", "--add", p, "stale")
        qio(p, "write 0 64k")
        set_bitmap_flags(p, "stale", 1)
        q = s.path("q.qcow2")
        shutil.copy(p, q)
        for args in (["128M"], ["--shrink", "32M"]):
            rv = vimg("resize", p, *args, ok=(1,))
            rq = qimg("resize", q, *args, ok=(1,))
            assert rv.stderr.replace("vireo-img:", "qemu-img:") == rq.stderr, (rv.stderr, rq.stderr)
            assert rv.stderr == ("vireo-img: Bitmap 'stale' is inconsistent and cannot be used\n"
                                 "Try block-dirty-bitmap-remove to delete this bitmap from disk\n")
        qemu_check_clean(p)
        size, info = bitmap_info(p)
        assert size == 64 * M and info["stale"][1] == ["in-use", "auto"], info
        assert info["good"][1] == ["auto"] and all_bits(p, ["good"])["good"] == {0}
        # once it is removed the resize goes through
        vimg("bitmap", "--remove", p, "stale")
        vimg("resize", p, "128M")
        qemu_check_clean(p)
        assert bitmap_info(p) == (128 * M, {"good": (65536, ["auto"])})

        # a resize cut short before the bitmaps were stored leaves in-use
        # bitmaps whose tables fit the old size: still an image both open
        c = s.path("cut.qcow2")
        qimg("create", "-q", "-f", "qcow2", c, "64M")
        qimg("bitmap", "--add", "-g", "512", c, "x")
        set_bitmap_flags(c, "x", 1)
        with open(c, "r+b") as f:
            f.seek(24)
            f.write(struct.pack(">Q", 32 * M))
        qemu_check_clean(c)
        vimg("check", c)
        flags = json.loads(vimg("info", "--output=json", c).stdout)[
            "format-specific"]["data"]["bitmaps"][0]["flags"]
        assert flags == ["in-use", "auto"], flags
        vimg("bitmap", "--remove", c, "x")
        qemu_check_clean(c)

        # a size of zero is refused as qemu-img refuses it
        for arg in ("0", "-128M"):
            rv = vimg("resize", "--shrink", p, "--", arg, ok=(1,))
            assert rv.stderr == "vireo-img: New image size must be positive\n", rv.stderr

        # parallels images cannot be resized, in qemu-img's words
        par = s.path("p.img")
        qimg("create", "-q", "-f", "parallels", par, "64M")
        for args in (["128M"], ["-f", "parallels", "64M"], ["--shrink", "32M"]):
            rv = vimg("resize", par, *args, ok=(1,))
            rq = qimg("resize", par, *args, ok=(1,))
            assert rv.stderr == "vireo-img: Image format driver does not support resize\n", \
                rv.stderr
            assert rq.stderr.endswith("qemu-img: Image format driver does not support resize\n")


vtest.main()
