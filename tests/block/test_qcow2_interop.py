#!/usr/bin/env python3
"""qcow2 and raw images: everything vireo-img writes passes qemu-img check and
reads back identically through qemu; everything qemu writes vireo reads."""
import json
import os

import vtest
from imgtest import (Scratch, need_qemu, qcow2_bitmap_bits, qemu_check_clean, qimg,
                     qio, same_content, vimg)

PATTERN = ["write -P 0x11 0 1M", "write -P 0x22 3M 64k", "write -P 0x33 100k 4k",
           "write -z 5M 128k", "write -P 0x44 7M 512"]


def make_source(s, name="src.qcow2", size="8M", opts=None):
    path = s.path(name)
    qimg("create", "-q", "-f", "qcow2", *(["-o", opts] if opts else []), path, size)
    qio(path, *PATTERN)
    return path


def test_create_matrix_passes_qemu_check():
    need_qemu()
    with Scratch() as s:
        for compat in ("0.10", "1.1"):
            for cs in ("512", "4096", "65536", "2M"):
                for rb in ("1", "2", "4", "8", "16", "32", "64"):
                    if compat == "0.10" and rb != "16":
                        continue
                    p = s.path(f"c-{compat}-{cs}-{rb}.qcow2")
                    vimg("create", "-q", "-f", "qcow2", "-o",
                         f"compat={compat},cluster_size={cs},refcount_bits={rb}", p, "16M")
                    qio(p, "write -P 0x5a 0 3M", "write -P 0x5b 9M 4k")
                    qemu_check_clean(p)
                    qio(p, "read -P 0x5a 0 3M", "read -P 0 3M 6M", "read -P 0x5b 9M 4k")


def test_convert_to_qcow2_every_option():
    need_qemu()
    with Scratch() as s:
        src = make_source(s)
        for opts in ("cluster_size=512,refcount_bits=1", "cluster_size=65536",
                     "compat=0.10", "refcount_bits=64,cluster_size=4096",
                     "lazy_refcounts=on", "compression_type=zstd",
                     "preallocation=metadata", "preallocation=falloc"):
            dst = s.path("dst.qcow2")
            if os.path.exists(dst):
                os.unlink(dst)
            vimg("convert", "-O", "qcow2", "-o", opts, src, dst)
            qemu_check_clean(dst)
            same_content(src, dst)


def test_convert_compressed_zlib_and_zstd():
    need_qemu()
    with Scratch() as s:
        src = make_source(s)
        for ct in ("zlib", "zstd"):
            dst = s.path(f"c-{ct}.qcow2")
            vimg("convert", "-c", "-O", "qcow2", "-o", f"compression_type={ct}", src, dst)
            r = qemu_check_clean(dst)
            assert r.get("compressed-clusters", 0) > 0, r
            same_content(src, dst)
            # overwrite part of a compressed cluster through qemu: COW from compressed
            qio(dst, "write -P 0x66 4k 4k", "read -P 0x11 0 4k", "read -P 0x66 4k 4k")
            qemu_check_clean(dst)


def test_read_qemu_compressed_and_convert_back():
    need_qemu()
    with Scratch() as s:
        src = make_source(s)
        for ct in ("zlib", "zstd"):
            qc = s.path(f"q-{ct}.qcow2")
            qimg("convert", "-c", "-O", "qcow2", "-o", f"compression_type={ct}", src, qc)
            raw = s.path(f"v-{ct}.raw")
            vimg("convert", "-O", "raw", qc, raw)
            same_content(src, raw, fb="raw")
            vimg("compare", src, qc)


def test_raw_roundtrip():
    need_qemu()
    with Scratch() as s:
        src = make_source(s)
        raw = s.path("a.raw")
        vimg("convert", "-O", "raw", src, raw)
        same_content(src, raw, fb="raw")
        back = s.path("b.qcow2")
        vimg("convert", "-f", "raw", "-O", "qcow2", raw, back)
        qemu_check_clean(back)
        same_content(raw, back, fa="raw")


def test_backing_chain_read_and_write():
    need_qemu()
    with Scratch() as s:
        base = make_source(s, "base.qcow2")
        mid = s.path("mid.qcow2")
        top = s.path("top.qcow2")
        vimg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid)
        qio(mid, "write -P 0x77 64k 64k")
        vimg("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top)
        # vireo writes partial clusters over the backing data (copy-on-write)
        vimg("bench", "-w", "-c", "4", "-d", "2", "-s", "4096", "-o", "8192",
             "--pattern", "0x5e", top)
        qemu_check_clean(top)
        qio(top, "read -P 0x11 0 8k", "read -P 0x5e 8k 16k", "read -P 0x11 24k 40k",
            "read -P 0x77 64k 64k", "read -P 0x22 3M 64k")
        flat = s.path("flat.raw")
        vimg("convert", "-O", "raw", top, flat)
        same_content(top, flat, fb="raw")
        info = json.loads(vimg("info", "--output=json", "--backing-chain", top).stdout)
        qinfo = json.loads(qimg("info", "--output=json", "--backing-chain", top).stdout)
        assert [i["filename"] for i in info] == [i["filename"] for i in qinfo]
        for a, b in zip(info, qinfo):
            assert set(a) == set(b), (set(a) ^ set(b))
            for k in ("virtual-size", "backing-filename", "format", "cluster-size"):
                assert a.get(k) == b.get(k), k
        vm = json.loads(vimg("map", "--output=json", top).stdout)
        qm = json.loads(qimg("map", "--output=json", top).stdout)
        strip = lambda m: [{k: e[k] for k in ("start", "length", "depth", "present", "zero", "data")} for e in m]
        assert strip(vm) == strip(qm), (vm, qm)


def test_backing_loop_is_an_error():
    with Scratch() as s:
        a, b = s.path("a.qcow2"), s.path("b.qcow2")
        vimg("create", "-q", "-f", "qcow2", a, "1M")
        vimg("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
        vimg("create", "-q", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a, "1M")
        p = vimg("info", "--backing-chain", a, ok=(1,))
        assert "loop" in p.stderr, p.stderr


def test_info_json_members_match_qemu():
    need_qemu()
    with Scratch() as s:
        for opts in ("compat=1.1", "compat=0.10", "compression_type=zstd,lazy_refcounts=on"):
            p = s.path("i.qcow2")
            if os.path.exists(p):
                os.unlink(p)
            qimg("create", "-q", "-f", "qcow2", "-o", opts, p, "5M")
            if "0.10" not in opts:
                qimg("bitmap", "--add", "-g", "128k", p, "bm0")
            qimg("snapshot", "-c", "snap-a", p)
            v = json.loads(vimg("info", "--output=json", p).stdout)
            q = json.loads(qimg("info", "--output=json", p).stdout)
            assert set(v) == set(q), set(v) ^ set(q)
            assert v["format-specific"] == q["format-specific"], (v["format-specific"], q["format-specific"])
            for sv, sq in zip(v["snapshots"], q["snapshots"]):
                assert set(sv) == set(sq)
                for k in ("name", "id", "date-sec", "vm-state-size"):
                    assert sv[k] == sq[k], k


def test_check_agrees_with_qemu_on_leaks_and_repairs():
    need_qemu()
    with Scratch() as s:
        p = make_source(s, "leak.qcow2")
        # leak clusters: bump a refcount block entry of an unused cluster by hand
        with open(p, "r+b") as f:
            f.seek(48)
            rt = int.from_bytes(f.read(8), "big")
            f.seek(rt)
            rb = int.from_bytes(f.read(8), "big")
            end = os.path.getsize(p) // 65536
            f.seek(rb + 2 * (end + 3))
            f.write((1).to_bytes(2, "big"))
            f.truncate((end + 4) * 65536)
        vj = json.loads(vimg("check", "--output=json", p, ok=(3,)).stdout)
        qj = json.loads(qimg("check", "--output=json", p, ok=(3,)).stdout)
        assert vj["leaks"] == qj["leaks"] == 1, (vj, qj)
        assert vj["image-end-offset"] == qj["image-end-offset"]
        vimg("check", "-r", "leaks", p)
        qemu_check_clean(p)
        same_content(p, make_source(s, "ref.qcow2"))


def test_check_reports_corruption_like_qemu():
    need_qemu()
    with Scratch() as s:
        p = make_source(s, "bad.qcow2")
        with open(p, "r+b") as f:
            f.seek(48)
            rt = int.from_bytes(f.read(8), "big")
            f.seek(rt)
            rb = int.from_bytes(f.read(8), "big")
            f.seek(rb + 2 * 5)          # a data cluster's refcount -> 0
            f.write((0).to_bytes(2, "big"))
        v = vimg("check", p, ok=(2,))
        q = qimg("check", p, ok=(2,))
        assert "errors were found" in v.stdout and "errors were found" in q.stdout


def test_snapshots_interop():
    need_qemu()
    with Scratch() as s:
        p = make_source(s, "snap.qcow2")
        vimg("snapshot", "-c", "one", p)
        qemu_check_clean(p)
        qio(p, "write -P 0x99 0 1M")
        qemu_check_clean(p)
        ql = qimg("snapshot", "-l", p).stdout
        assert "one" in ql
        qimg("snapshot", "-c", "two", p)
        vl = vimg("snapshot", "-l", p).stdout
        assert "one" in vl and "two" in vl
        vimg("snapshot", "-a", "one", p)
        qemu_check_clean(p)
        qio(p, "read -P 0x11 0 64k", "read -P 0x33 100k 4k", "read -P 0x22 3M 64k")
        vimg("snapshot", "-d", "two", p)
        vimg("snapshot", "-d", "one", p)
        qemu_check_clean(p)
        assert "one" not in qimg("snapshot", "-l", p).stdout


def test_bitmaps_both_directions():
    need_qemu()
    with Scratch() as s:
        p = s.path("bm.qcow2")
        qimg("create", "-q", "-f", "qcow2", p, "16M")
        qimg("bitmap", "--add", "-g", "64k", p, "q")
        qio(p, "write 1M 64k", "write 5M 4k")
        bits, gran, _ = qcow2_bitmap_bits(p, "q")
        assert gran == 65536 and bits == {16, 80}, bits
        # vireo reads qemu's bitmap: merge it into a fresh one of its own
        vimg("bitmap", "--add", "-g", "32k", p, "v")
        vimg("bitmap", "--merge", "q", p, "v")
        vbits, _, _ = qcow2_bitmap_bits(p, "v")
        assert vbits == {32, 33, 160, 161}, vbits
        qemu_check_clean(p)
        # writes through vireo are tracked by every enabled bitmap
        vimg("bench", "-w", "-c", "2", "-d", "1", "-s", "4096", "-o", "8M", p)
        qbits, _, _ = qcow2_bitmap_bits(p, "q")
        assert qbits == {16, 80, 128}, qbits
        vimg("bitmap", "--disable", p, "v")
        vimg("bench", "-w", "-c", "1", "-d", "1", "-s", "4096", "-o", "12M", p)
        assert 192 in qcow2_bitmap_bits(p, "q")[0]
        assert 384 not in qcow2_bitmap_bits(p, "v")[0]
        info = json.loads(qimg("info", "--output=json", p).stdout)
        bms = {b["name"]: b for b in info["format-specific"]["data"]["bitmaps"]}
        assert bms["v"]["flags"] == [] and bms["q"]["flags"] == ["auto"], bms
        vimg("bitmap", "--clear", p, "q")
        assert qcow2_bitmap_bits(p, "q")[0] == set()
        vimg("bitmap", "--remove", p, "v")
        qemu_check_clean(p)
        # and qemu can keep using what vireo stored
        qio(p, "write 2M 4k")
        assert qcow2_bitmap_bits(p, "q")[0] == {32}


def test_bitmap_default_granularity_like_qemu():
    """Without -g both tools pick the same granularity for every cluster size."""
    need_qemu()
    with Scratch() as s:
        for cs in (512, 4096, 32768, 65536, 2 << 20):
            grans = []
            for tool in (qimg, vimg):
                p = s.path(f"g{cs}-{tool.__name__}.qcow2")
                qimg("create", "-q", "-f", "qcow2", "-o", f"cluster_size={cs}", p, "16M")
                tool("bitmap", "--add", p, "b")
                grans.append(qcow2_bitmap_bits(p, "b")[1])
            assert grans[0] == grans[1], (cs, grans)


def test_resize_and_discard():
    need_qemu()
    with Scratch() as s:
        p = make_source(s, "r.qcow2")
        vimg("resize", p, "+8M")
        qemu_check_clean(p)
        assert json.loads(qimg("info", "--output=json", p).stdout)["virtual-size"] == 16 << 20
        vimg("resize", "--shrink", p, "2M")
        qemu_check_clean(p)
        qio(p, "read -P 0x11 0 64k", "read -P 0x33 100k 4k")
        raw = s.path("r.raw")
        vimg("create", "-q", "-f", "raw", raw, "1M")
        vimg("resize", "-f", "raw", raw, "3M")
        assert os.path.getsize(raw) == 3 << 20


def test_measure_matches_qemu():
    need_qemu()
    with Scratch() as s:
        src = make_source(s)
        for args in (["-O", "qcow2", "--size", "1G"], ["-O", "qcow2", src],
                     ["-O", "raw", src], ["-O", "qcow2", "-o", "cluster_size=4096", src]):
            v = json.loads(vimg("measure", "--output=json", *args).stdout)
            q = json.loads(qimg("measure", "--output=json", *args).stdout)
            assert v == q, (args, v, q)


def test_compare_exit_statuses():
    with Scratch() as s:
        a, b = s.path("a.qcow2"), s.path("b.qcow2")
        vimg("create", "-q", "-f", "qcow2", a, "1M")
        vimg("create", "-q", "-f", "qcow2", b, "2M")
        assert "identical" in vimg("compare", a, b).stdout
        vimg("compare", "-s", a, b, ok=(1,))
        vimg("bench", "-w", "-c", "1", "-d", "1", "-o", "1536k", b)
        assert "mismatch at offset 1572864" in vimg("compare", a, b, ok=(1,)).stdout
        vimg("compare", a, s.path("missing"), ok=(2,))


def test_bench_summary_line():
    with Scratch() as s:
        p = s.path("b.qcow2")
        vimg("create", "-q", "-f", "qcow2", p, "16M")
        out = vimg("bench", "-w", "-c", "500", "-d", "8", "-t", "none", "-i", "io_uring", p).stdout
        assert out.splitlines()[0] == ("Sending 500 write requests, 4096 bytes each, 8 in parallel "
                                       "(starting at offset 0, step size 4096)")
        assert out.splitlines()[-1].startswith("Run completed in ") and out.endswith(" seconds.\n")
        vimg("bench", "-c", "500", "-d", "8", "-i", "threads", p)
        vimg("check", p)


vtest.main()
