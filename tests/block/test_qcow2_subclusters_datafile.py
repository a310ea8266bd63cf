#!/usr/bin/env python3
"""qcow2 extended L2 entries (subclusters) and external data files, both
directions against qemu-img/qemu-io 7.2: what qemu writes vireo reads the
same (convert, compare, map, check, info); what vireo writes passes
qemu-img check and reads back through qemu.  Hostile images give a clear
error, never a crash.  Also: sizes rounded to whole sectors as qemu-img does."""
import json
import os
import struct

import vtest
from imgtest import Scratch, in_dir, need_qemu, qemu_check_clean, qimg, qio, vimg

# Subcluster-sized and smaller pieces inside 64k clusters (2k subclusters).
QEMU_WRITES = ["write -P 0x11 4k 4k", "write -P 0x22 70k 3k", "write -z 256k 8k",
               "discard 512k 64k", "write -P 0x33 1M 128k", "write -z 2M 64k",
               "write -P 0x44 3M 512", "write -P 0x55 3200k 100k"]


def raw_of(path, tool, s, name):
    out = s.path(name)
    if os.path.exists(out):
        os.unlink(out)
    tool("convert", "-O", "raw", path, out)
    with open(out, "rb") as f:
        return f.read()


def agree_with_qemu(s, path):
    """vireo reads @path exactly as qemu does: bytes, map, check and info."""
    assert raw_of(path, vimg, s, "v.raw") == raw_of(path, qimg, s, "q.raw"), path
    vimg("compare", path, s.path("q.raw"))
    vmap = json.loads(vimg("map", "--output=json", path).stdout)
    qmap = json.loads(qimg("map", "--output=json", path).stdout)
    assert vmap == qmap, (vmap, qmap)
    vchk = json.loads(vimg("check", "--output=json", path).stdout)
    qchk = json.loads(qimg("check", "--output=json", path).stdout)
    assert vchk == qchk, (vchk, qchk)
    vinfo = json.loads(vimg("info", "--output=json", path).stdout)
    qinfo = json.loads(qimg("info", "--output=json", path).stdout)
    assert vinfo["format-specific"] == qinfo["format-specific"], (vinfo, qinfo)
    assert vinfo["virtual-size"] == qinfo["virtual-size"]


def make_base(s, size="4M"):
    base = s.path("base.qcow2")
    qimg("create", "-q", "-f", "qcow2", base, size)
    qio(base, f"write -P 0xaa 0 {size}")
    return base


def l2_table_offset(path, index=0):
    with open(path, "rb") as f:
        data = f.read(1 << 20)
    l1_off = struct.unpack_from(">Q", data, 40)[0]
    with open(path, "rb") as f:
        f.seek(l1_off + 8 * index)
        return struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00


def poke(path, off, fmt, *vals):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, *vals))


def peek(path, off, fmt):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))


def refused(args, words, status=1):
    p = vimg(*args, ok=(status,))
    assert words in p.stderr, (args, p.stderr)
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return p


# ---- extended L2 entries ----

def test_qemu_subcluster_images_read_identically():
    need_qemu()
    with Scratch() as s:
        base = make_base(s)
        for opts, backed in (("extended_l2=on", True), ("extended_l2=on", False),
                             ("extended_l2=on,cluster_size=16k", True),
                             ("extended_l2=on,cluster_size=2M", True),
                             ("extended_l2=on,refcount_bits=1", False)):
            p = s.path("q.qcow2")
            args = ["-b", base, "-F", "qcow2"] if backed else []
            qimg("create", "-q", "-f", "qcow2", "-o", opts, *args, p, "4M")
            qio(p, *QEMU_WRITES)
            agree_with_qemu(s, p)
            info = json.loads(vimg("info", "--output=json", p).stdout)
            assert info["format-specific"]["data"]["extended-l2"] is True
            assert "extended l2: true" in vimg("info", p).stdout
            os.unlink(p)


def test_subcluster_writes_over_backing_read_back_in_both_tools():
    need_qemu()
    with Scratch() as s:
        base = make_base(s)
        p = s.path("top.qcow2")
        vimg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", base, "-F", "qcow2",
             p, "4M")
        # 4k writes spread over 64k clusters (one whole and one split subcluster pair each),
        # through the async queue with both back-ends
        vimg("bench", "-w", "-c", "16", "-d", "4", "-s", "4k", "-S", "68k", "-o", "8k",
             "--pattern", "0x5c", "-i", "threads", p)
        vimg("bench", "-w", "-c", "8", "-d", "2", "-s", "3k", "-S", "200k", "-o", "2049k",
             "--pattern", "0x6d", "-i", "io_uring", p)
        qemu_check_clean(p)
        for i in range(16):
            off = 8 * 1024 + i * 68 * 1024
            qio(p, f"read -P 0x5c {off} 4k", f"read -P 0xaa {off - 4096} 4k",
                f"read -P 0xaa {off + 4096} 4k")
        for i in range(8):
            off = 2049 * 1024 + i * 200 * 1024
            qio(p, f"read -P 0x6d {off} 3k", f"read -P 0xaa {off - 1024} 1k",
                f"read -P 0xaa {off + 3072} 1k")
        # only the written subclusters are allocated: the map says backing elsewhere
        qmap = json.loads(qimg("map", "--output=json", p).stdout)
        first = [e for e in qmap if e["start"] <= 8192 < e["start"] + e["length"]][0]
        assert first["depth"] == 0 and first["start"] == 8192 and first["length"] == 4096, qmap
        agree_with_qemu(s, p)
        # zero writes and discard on subclusters, then qemu and vireo agree again
        vimg("convert", "-O", "raw", p, s.path("before.raw"))
        qio(p, "write -z 10k 2k", "discard 80k 4k")
        agree_with_qemu(s, p)


def test_vireo_writes_then_qemu_writes_then_vireo_reads():
    need_qemu()
    with Scratch() as s:
        base = make_base(s)
        p = s.path("mix.qcow2")
        vimg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=32k",
             "-b", base, "-F", "qcow2", p, "4M")
        vimg("bench", "-w", "-c", "40", "-d", "8", "-s", "1536", "-S", "50000", "-o", "777",
             "--pattern", "0x21", p)
        qio(p, "write -P 0x31 5k 7k", "write -z 64k 3k", "write -P 0x41 100k 64k")
        qemu_check_clean(p)
        agree_with_qemu(s, p)
        vimg("bench", "-w", "-c", "30", "-d", "4", "-s", "4096", "-S", "9000", "-o", "3000",
             "--pattern", "0x71", p)
        qemu_check_clean(p)
        agree_with_qemu(s, p)


def test_convert_to_subclusters_every_way():
    need_qemu()
    with Scratch() as s:
        base = make_base(s)
        src = s.path("src.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", src, "4M")
        qio(src, *QEMU_WRITES)
        for opts in ("extended_l2=on", "extended_l2=on,cluster_size=16k",
                     "extended_l2=on,preallocation=metadata",
                     "extended_l2=on,preallocation=falloc", "extended_l2=on,lazy_refcounts=on",
                     "extended_l2=on,compression_type=zstd"):
            dst = s.path("dst.qcow2")
            if os.path.exists(dst):
                os.unlink(dst)
            vimg("convert", "-O", "qcow2", "-o", opts, src, dst)
            qemu_check_clean(dst)
            qimg("compare", src, dst)
            agree_with_qemu(s, dst)
        # compressed clusters in a subcluster image: bitmap 0, qemu reads them
        dst = s.path("c.qcow2")
        vimg("convert", "-c", "-O", "qcow2", "-o", "extended_l2=on", src, dst)
        qemu_check_clean(dst)
        qimg("compare", src, dst)
        # a partial write into a compressed cluster makes it a normal one
        qio(dst, "read -P 0x11 4k 4k")
        vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "4k", "-o", "16k", "--pattern", "0x77",
             dst)
        qemu_check_clean(dst)
        qio(dst, "read -P 0x11 4k 4k", "read -P 0x77 16k 4k")
        agree_with_qemu(s, dst)


def test_preallocated_subclusters_keep_backing_visible():
    need_qemu()
    with Scratch() as s:
        base = make_base(s, "1M")
        for who in (vimg, qimg):
            p = s.path("pre.qcow2")
            who("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,preallocation=metadata",
                "-b", base, "-F", "qcow2", p, "1M")
            qemu_check_clean(p)
            qio(p, "read -P 0xaa 0 1M")
            vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "2k", "-o", "64k", "--pattern",
                 "0x12", p)
            qio(p, "read -P 0xaa 0 64k", "read -P 0x12 64k 2k", "read -P 0xaa 66k 958k")
            qemu_check_clean(p)
            agree_with_qemu(s, p)
            os.unlink(p)


def test_subcluster_snapshots():
    need_qemu()
    with Scratch() as s:
        p = s.path("snap.qcow2")
        vimg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", p, "2M")
        qio(p, "write -P 0x01 0 64k", "write -P 0x02 66k 2k")
        vimg("snapshot", "-c", "one", p)
        vimg("bench", "-w", "-c", "2", "-d", "1", "-s", "2k", "-S", "64k", "-o", "2k",
             "--pattern", "0x03", p)
        qemu_check_clean(p)
        qio(p, "read -P 0x01 0 2k", "read -P 0x03 2k 2k", "read -P 0x01 4k 60k",
            "read -P 0x03 66k 2k")
        vimg("snapshot", "-a", "one", p)
        qemu_check_clean(p)
        qio(p, "read -P 0x01 0 64k", "read -P 0x02 66k 2k", "read -P 0 64k 2k")


def test_subcluster_create_errors_match_qemu():
    need_qemu()
    with Scratch() as s:
        p = s.path("e.qcow2")
        for opts, words in (("extended_l2=on,cluster_size=8k",
                             "Extended L2 entries are only supported with cluster sizes of at "
                             "least 16384 bytes"),
                            ("extended_l2=on,compat=0.10",
                             "Extended L2 entries are only supported with compatibility level "
                             "1.1 and above"),
                            ("data_file_raw=on", "data-file-raw requires data-file"),
                            ("data_file=d.raw,compat=0.10",
                             "External data files are only supported with compatibility level "
                             "1.1 and above")):
            q = qimg("create", "-q", "-f", "qcow2", "-o", opts, p, "1M", ok=(1,))
            assert words in q.stderr, q.stderr
            refused(("create", "-q", "-f", "qcow2", "-o", opts, p, "1M"), words)
        vimg("create", "-f", "qcow2", "-o", "extended_l2=on", p, "1M")
        out = vimg("create", "-f", "qcow2", "-o", "extended_l2=on,preallocation=metadata", p,
                   "1M").stdout
        qout = qimg("create", "-f", "qcow2", "-o", "extended_l2=on,preallocation=metadata", p,
                    "1M").stdout
        assert out == qout, (out, qout)


def test_hostile_subcluster_entries():
    need_qemu()
    with Scratch() as s:
        p = s.path("h.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", p, "1M")
        qio(p, "write -P 0x11 0 2k")
        l2 = l2_table_offset(p)
        (bm,) = peek(p, l2 + 8, ">Q")
        assert bm == 1, hex(bm)
        # subcluster 0 both allocated and zero
        poke(p, l2 + 8, ">Q", bm | (1 << 32))
        refused(("convert", "-O", "raw", p, s.path("x.raw")), "both allocated and zero")
        refused(("compare", p, p), "both allocated and zero", status=2)
        v = json.loads(vimg("check", "--output=json", p, ok=(2,)).stdout)
        q = json.loads(qimg("check", "--output=json", p, ok=(2,)).stdout)
        assert v["corruptions"] >= 1 and q["corruptions"] >= 1, (v, q)
        # allocated subclusters in an entry without a host cluster
        poke(p, l2, ">QQ", 0, 0x10)
        refused(("convert", "-O", "raw", p, s.path("x.raw")), "no host cluster")
        vimg("check", p, ok=(2,))
        # a compressed cluster with a non-zero bitmap
        c = s.path("c.qcow2")
        src = s.path("src.raw")
        with open(src, "wb") as f:
            f.write(b"\x42" * 65536 + bytes((1 << 20) - 65536))
        qimg("convert", "-c", "-O", "qcow2", "-o", "extended_l2=on", src, c)
        l2 = l2_table_offset(c)
        (e,) = peek(c, l2, ">Q")
        assert e & (1 << 62), hex(e)
        poke(c, l2 + 8, ">Q", 1)
        refused(("convert", "-O", "raw", c, s.path("x.raw")), "non-zero subcluster bitmap")
        v = json.loads(vimg("check", "--output=json", c, ok=(2,)).stdout)
        assert v["corruptions"] >= 1, v
        # writing to it fails too, without a crash
        p = vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "4k", c, ok=(1,))
        assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
        # extended L2 with clusters too small for 32 subclusters
        t = s.path("t.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=16k", t, "1M")
        poke(t, 20, ">I", 13)
        refused(("info", t), "at least 16384")


# ---- external data files ----

def test_qemu_data_file_images_read_identically():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
            for opts in ("data_file=d.raw", "data_file=d.raw,data_file_raw=on",
                         "data_file=d.raw,extended_l2=on",
                         "data_file=d.raw,data_file_raw=on,extended_l2=on,cluster_size=16k"):
                p = s.path("q.qcow2")
                qimg("create", "-q", "-f", "qcow2", "-o", opts, p, "4M", cwd=s.dir)
                qio(p, *QEMU_WRITES)
                agree_with_qemu(s, p)
                info = json.loads(vimg("info", "--output=json", p).stdout)
                data = info["format-specific"]["data"]
                assert data["data-file"] == "d.raw", data
                assert data["data-file-raw"] == ("data_file_raw=on" in opts), data
                human = vimg("info", p).stdout
                assert "    data file: d.raw\n" in human, human
                if "data_file_raw=on" in opts:
                    # the data file is the raw image
                    with open(s.path("d.raw"), "rb") as f:
                        assert f.read() == raw_of(p, vimg, s, "v.raw")
                os.unlink(p)
                os.unlink(s.path("d.raw"))


def test_vireo_data_file_images_pass_qemu():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
            base = make_base(s)
            src = s.path("src.qcow2")
            qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", src, "4M")
            qio(src, *QEMU_WRITES)
            for opts in ("data_file=vd.raw", "data_file=vd.raw,data_file_raw=on",
                         "data_file=vd.raw,extended_l2=on",
                         "data_file=vd.raw,data_file_raw=on,extended_l2=on",
                         "data_file=vd.raw,preallocation=full"):
                dst = s.path("dst.qcow2")
                for f in (dst, s.path("vd.raw")):
                    if os.path.exists(f):
                        os.unlink(f)
                vimg("convert", "-O", "qcow2", "-o", opts, src, dst)
                qemu_check_clean(dst)
                qimg("compare", src, dst)
                agree_with_qemu(s, dst)
                # and writes through the queue, partial clusters included
                vimg("bench", "-w", "-c", "20", "-d", "4", "-s", "5000", "-S", "150000", "-o", "1234",
                     "--pattern", "0x3c", dst)
                qemu_check_clean(dst)
                for i in range(20):
                    qio(dst, f"read -P 0x3c {1234 + i * 150000} 5000")
                agree_with_qemu(s, dst)
                if "data_file_raw=on" in opts:
                    with open(s.path("vd.raw"), "rb") as f:
                        assert f.read() == raw_of(dst, qimg, s, "q.raw")
            # created empty, written by vireo then by qemu
            p = s.path("new.qcow2")
            vimg("create", "-q", "-f", "qcow2", "-o", "data_file=new.raw,data_file_raw=on", p, "2M")
            info = json.loads(qimg("info", "--output=json", p).stdout)["format-specific"]["data"]
            assert info["data-file"] == "new.raw" and info["data-file-raw"] is True, info
            vimg("bench", "-w", "-c", "4", "-d", "2", "-s", "4k", "-S", "300k", "--pattern", "0x19", p)
            vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "64k", "-o", "0", "--pattern", "0x18", p)
            qio(p, "write -z 600k 64k", "discard 1200k 64k")
            qemu_check_clean(p)
            agree_with_qemu(s, p)
            with open(s.path("new.raw"), "rb") as f:
                assert f.read() == raw_of(p, vimg, s, "v.raw")


def test_data_file_relative_to_image_directory():
    need_qemu()
    with Scratch() as s:
        os.mkdir(s.path("sub"))
        p = s.path("sub/img.qcow2")
        vimg("create", "-q", "-f", "qcow2", "-o", "data_file=img.data", p, "1M")
        assert os.path.exists(s.path("sub/img.data"))
        vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "4k", "--pattern", "0x61", p)
        # opened from elsewhere, by a relative path: the data file is found next to it
        vimg("compare", "sub/img.qcow2", p, cwd=s.dir)
        with in_dir(s.path("sub")):
            qio(p, "read -P 0x61 0 4k")
            qemu_check_clean(p)


def test_data_file_refusals():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
            p = s.path("d.qcow2")
            qimg("create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", p, "1M", cwd=s.dir)
            qio(p, "write -P 0x11 0 64k")
            refused(("snapshot", "-c", "s1", p), "not supported with an external data file")
            assert "s1" not in vimg("snapshot", "-l", p).stdout
            refused(("convert", "-c", "-O", "qcow2", "-o", "data_file=c.raw", p, s.path("c.qcow2")),
                    "not supported with an external data file")
            # missing data file
            os.rename(s.path("d.raw"), s.path("gone.raw"))
            refused(("info", p), "Could not open data file")
            refused(("check", p), "Could not open data file")
            os.rename(s.path("gone.raw"), s.path("d.raw"))
            vimg("check", p)
            # the data file name extension: too long, empty, missing
            with open(p, "rb") as f:
                hdr = bytearray(f.read(65536))
            hlen = struct.unpack_from(">I", hdr, 100)[0]
            pos = hlen
            while True:
                typ, ln = struct.unpack_from(">II", hdr, pos)
                assert typ != 0, "no data file extension"
                if typ == 0x44415441:
                    break
                pos += 8 + (ln + 7) // 8 * 8
            for length, words in ((2000, "is invalid"), (0, "is invalid")):
                bad = bytearray(hdr)
                struct.pack_into(">I", bad, pos + 4, length)
                if length:
                    bad[pos + 8:pos + 8 + length] = b"a" * length
                with open(p, "r+b") as f:
                    f.write(bad)
                refused(("info", p), words)
            bad = bytearray(hdr)                           # the image as its own data file
            struct.pack_into(">I", bad, pos + 4, len("d.qcow2"))
            bad[pos + 8:pos + 16] = b"d.qcow2\0"
            with open(p, "r+b") as f:
                f.write(bad)
            refused(("info", p), "names itself as its data file")
            bad = bytearray(hdr)
            struct.pack_into(">I", bad, pos, 0x12345678)   # turned into an unknown extension
            with open(p, "r+b") as f:
                f.write(bad)
            refused(("info", p), "'data-file' is required for this image")
            with open(p, "r+b") as f:
                f.write(hdr)
            vimg("check", p)
            # a compressed cluster where the spec forbids them
            l2 = l2_table_offset(p)
            poke(p, l2, ">Q", (1 << 62) | 0x50000)
            refused(("convert", "-O", "raw", p, s.path("x.raw")), "external data file")
            vimg("check", p, ok=(2,))


def test_data_file_rewrites_resize_and_measure():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
        for raw in ("off", "on"):
            p = s.path(f"r{raw}.qcow2")
            d = f"r{raw}.data"
            vimg("create", "-q", "-f", "qcow2", "-o", f"data_file={d},data_file_raw={raw}",
                 p, "1M")
            # the second pass finds the clusters mapped: straight to the data file
            for pattern, iface in (("0x10", "threads"), ("0x20", "io_uring")):
                vimg("bench", "-w", "-c", "32", "-d", "8", "-s", "4k", "-S", "8k",
                     "--pattern", pattern, "-i", iface, p)
                vimg("bench", "-c", "32", "-d", "8", "-s", "4k", "-S", "8k", "-i", iface, p)
            qio(p, "read -P 0x20 0 4k", "read -P 0 4k 4k", "read -P 0x20 248k 4k")
            vimg("resize", "-q", p, "3M")
            assert os.path.getsize(s.path(d)) == 3 << 20
            qio(p, "write -P 0x30 2M 64k")
            vimg("resize", "-q", "--shrink", p, "512k")
            assert os.path.getsize(s.path(d)) == 512 << 10
            qemu_check_clean(p)
            agree_with_qemu(s, p)
        # measure: extended L2 tables take twice the room
        for args in (["--size", "1G"], ["--size", "100M", "-o", "cluster_size=16k"]):
            args = ["-O", "qcow2", "-o", "extended_l2=on"] + args
            v = json.loads(vimg("measure", "--output=json", *args).stdout)
            q = json.loads(qimg("measure", "--output=json", *args).stdout)
            assert v == q, (args, v, q)


# ---- sizes in whole sectors ----

def test_sizes_rounded_to_sectors_like_qemu():
    need_qemu()
    with Scratch() as s:
        src = s.path("odd.raw")
        with open(src, "wb") as f:
            f.write(os.urandom(1860000))
        for fmt in ("qcow2", "raw", "parallels"):
            v, q = s.path(f"v.{fmt}"), s.path(f"q.{fmt}")
            vimg("convert", "-O", fmt, src, v)
            qimg("convert", "-O", fmt, src, q)
            vs = json.loads(vimg("info", "--output=json", v).stdout)["virtual-size"]
            qs = json.loads(qimg("info", "--output=json", q).stdout)["virtual-size"]
            assert vs == qs == 1860096, (fmt, vs, qs)
            qimg("compare", src, v)
            for f in (v, q):
                os.unlink(f)
            vimg("create", "-q", "-f", fmt, v, "1000001")
            qimg("create", "-q", "-f", fmt, q, "1000001")
            vs = json.loads(vimg("info", "--output=json", v).stdout)["virtual-size"]
            qs = json.loads(qimg("info", "--output=json", q).stdout)["virtual-size"]
            assert vs == qs == 1000448, (fmt, vs, qs)
            if fmt == "raw":
                assert os.path.getsize(v) == os.path.getsize(q) == 1000448
        vs = json.loads(vimg("info", "--output=json", src).stdout)["virtual-size"]
        assert vs == 1860096, vs
        # resize: raw files get the exact length; qcow2 refuses odd sizes, as qemu-img does
        for tool, name in ((vimg, "rv.raw"), (qimg, "rq.raw")):
            r = s.path(name)
            with open(r, "wb") as f:
                f.write(bytes(1860000))
            tool("resize", "-q", "-f", "raw", r, "2000001")
            assert os.path.getsize(r) == 2000001
            tool("resize", "-q", "-f", "raw", r, "+1001")
            assert os.path.getsize(r) == 2001385, os.path.getsize(r)
        c = s.path("r.qcow2")
        vimg("create", "-q", "-f", "qcow2", c, "1M")
        q = qimg("resize", c, "2000001", ok=(1,))
        v = vimg("resize", c, "2000001", ok=(1,))
        assert "multiple of 512" in q.stderr and "multiple of 512" in v.stderr, (q, v)


vtest.main()
