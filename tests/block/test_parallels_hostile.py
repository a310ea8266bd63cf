#!/usr/bin/env python3
"""Damaged and malicious parallels images: a clear error naming the problem,
never a crash; check finds it and -r all repairs what can be repaired."""
import json
import struct

import vtest
from imgtest import (PAR_FEAT_BITMAP, PAR_INUSE_CLOSED, PAR_INUSE_OPEN, PAR_MAGIC_OLD,
                     Scratch, parallels_bitmap_feature, parallels_ext_cluster,
                     parallels_header, parallels_image, parallels_read_ext, vimg)

CS = 65536


def refused(path, words, *extra):
    p = vimg("info", *extra, path, ok=(1,))
    assert words in p.stderr, p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr
    return p


def test_header_fields():
    with Scratch() as s:
        p = s.path("h.img")
        cases = [({"version": 3}, "unsupported parallels version 3"),
                 ({"tracks": 0, "data_off": 128}, "invalid parallels cluster size"),
                 ({"tracks": 0x7fffffff, "data_off": 128}, "invalid parallels cluster size"),
                 ({"in_use": 0x12345678}, "invalid parallels in_use marker 0x12345678"),
                 ({"data_off": 0}, "data_off is zero"),
                 ({"data_off": 1}, "not cluster aligned"),
                 ({"nb_sectors": 1 << 62}, "exceeds the 16 BAT entries"),
                 ({"bat_entries": 0x40000000}, "too large"),
                 ({"bat_entries": 0x01000000}, "extends past the end of the file"),
                 ({"data_off": 1 << 20}, "past the end of the file")]
        for fields, words in cases:
            with open(p, "wb") as f:
                f.write(parallels_header(**fields).ljust(CS, b"\0"))
            refused(p, words, "-f", "parallels")


def test_bat_entries_past_end_and_misaligned():
    with Scratch() as s:
        p = s.path("b.img")
        parallels_image(p, {0: 1}, bat=[1, 999] + [0] * 14)
        refused(p, "BAT entry 1 points to offset 65470464, past the end of the file")
        r = vimg("check", "--output=json", p, ok=(2,))
        assert json.loads(r.stdout)["corruptions"] == 1
        vimg("check", "-r", "all", p)
        vimg("check", p)
        parallels_image(p, {0: 1}, magic=PAR_MAGIC_OLD, data_off=8, bat=[2] + [0] * 15)
        refused(p, "below the data area")
        parallels_image(p, {0: 1}, magic=PAR_MAGIC_OLD, data_off=0, bat=[129 + 5] + [0] * 15)
        refused(p, "not aligned to a cluster")


def test_duplicate_bat_entries_are_split_on_repair():
    with Scratch() as s:
        p = s.path("d.img")
        parallels_image(p, {0: 0x41, 1: 0x42}, bat=[1, 1, 2] + [0] * 13)
        refused(p, "BAT entries 0 and 1 both point to offset 65536")
        vimg("check", p, ok=(2,))
        vimg("check", "-r", "all", p)
        raw = s.path("d.raw")
        vimg("convert", "-O", "raw", p, raw)
        data = open(raw, "rb").read()
        assert data[:2 * CS] == b"\x41" * 2 * CS and data[2 * CS:3 * CS] == b"\x42" * CS


def test_unclean_close_and_empty_flag():
    with Scratch() as s:
        p = s.path("u.img")
        parallels_image(p, {0: 0x5a}, in_use=PAR_INUSE_OPEN)
        vimg("info", p)                                   # reading is fine
        p2 = vimg("bitmap", "--clear", p, "x", ok=(1,))
        assert "not closed cleanly" in p2.stderr, p2.stderr
        vimg("check", p, ok=(2,))
        vimg("check", "-r", "all", p)
        assert struct.unpack_from("<I", open(p, "rb").read(), 44)[0] == PAR_INUSE_CLOSED
        parallels_image(p, {0: 0x5a}, flags=1)
        raw = s.path("e.raw")
        vimg("convert", "-O", "raw", p, raw)
        assert open(raw, "rb").read(CS) == bytes(CS)


def test_leaked_tail_is_reported_and_trimmed():
    with Scratch() as s:
        p = s.path("l.img")
        parallels_image(p, {0: 1}, tail=b"\xee" * (2 * CS))
        r = json.loads(vimg("check", "--output=json", p, ok=(3,)).stdout)
        assert r["leaks"] == 2 and r["image-end-offset"] == 2 * CS
        vimg("check", "-r", "leaks", p)
        vimg("check", p)


def ext_image(s, features, good_md5=True, in_use=PAR_INUSE_CLOSED, magic=None):
    p = s.path("x.img")
    c = parallels_ext_cluster(CS, features, good_md5=good_md5, **({"magic": magic} if magic else {}))
    parallels_image(p, {0: 0x10}, in_use=in_use, ext_off=2 * CS // 512, tail=c)
    return p


def test_format_extension_checksum_and_magic():
    with Scratch() as s:
        p = ext_image(s, [], good_md5=False)
        refused(p, "format extension MD5 checksum mismatch")
        vimg("check", p, ok=(2,))
        vimg("check", "-r", "all", p)
        vimg("info", p)
        p = ext_image(s, [], magic=0x1234)
        refused(p, "format extension has bad magic")


def test_feature_flag_rules():
    with Scratch() as s:
        unknown = 0x1122334455667788
        # NECESSARY and unknown: readable, never writable
        p = ext_image(s, [(unknown, 1, b"abcdefgh")])
        vimg("info", p)
        r = vimg("bitmap", "--clear", p, "x", ok=(1,))
        assert "necessary" in r.stderr, r.stderr
        # TRANSIT: carried over unchanged when the extension is rewritten
        uuid = bytes(range(16))
        bm = parallels_bitmap_feature(16 * 128, uuid, 128, [0])
        p = ext_image(s, [(unknown, 2, b"keep me!"), (PAR_FEAT_BITMAP, 0, bm)])
        vimg("bitmap", "--clear", p, "00010203-0405-0607-0809-0a0b0c0d0e0f")
        _, feats = parallels_read_ext(p)
        assert (unknown, 2, b"keep me!") in feats and any(f[0] == PAR_FEAT_BITMAP for f in feats)
        # neither flag: dropped on rewrite
        p = ext_image(s, [(unknown, 0, b"drop me!"), (PAR_FEAT_BITMAP, 0, bm)])
        vimg("bitmap", "--clear", p, "00010203-0405-0607-0809-0a0b0c0d0e0f")
        assert [f[0] for f in parallels_read_ext(p)[1]] == [PAR_FEAT_BITMAP]


def test_hostile_bitmaps():
    with Scratch() as s:
        uuid = bytes(16)
        name = "00000000-0000-0000-0000-000000000000"
        bad = [parallels_bitmap_feature(16 * 128, uuid, 3, [0]),          # granularity
               parallels_bitmap_feature(7, uuid, 128, [0]),                # size
               parallels_bitmap_feature(16 * 128, uuid, 128, [0, 0]),      # l1 size
               parallels_bitmap_feature(16 * 128, uuid, 128, [1 << 40]),   # l1 past end
               parallels_bitmap_feature(16 * 128, uuid, 128, [128]),       # l1 on a BAT cluster
               parallels_bitmap_feature(16 * 128, uuid, 128, [0])[:20]]    # truncated
        for data in bad:
            p = ext_image(s, [(PAR_FEAT_BITMAP, 1, data)])           # NECESSARY
            vimg("info", p)
            r = vimg("bitmap", "--clear", p, name, ok=(1,))
            assert "necessary" in r.stderr, r.stderr
            p = ext_image(s, [(PAR_FEAT_BITMAP, 0, data)])           # droppable
            vimg("bitmap", "--clear", p, name, ok=(1,))
        # a bitmap of an image not closed cleanly is stale and is dropped
        good = parallels_bitmap_feature(16 * 128, uuid, 128, [1])
        p = ext_image(s, [(PAR_FEAT_BITMAP, 0, good)])
        vimg("bitmap", "--clear", p, name)
        p = ext_image(s, [(PAR_FEAT_BITMAP, 0, good)], in_use=0)
        vimg("bitmap", "--clear", p, name, ok=(1,))


def test_truncated_and_garbage_files_never_crash():
    with Scratch() as s:
        p = s.path("g.img")
        parallels_image(p, {0: 1, 3: 2})
        whole = open(p, "rb").read()
        for cut in (0, 10, 63, 64, 100, CS + 5):
            with open(p, "wb") as f:
                f.write(whole[:cut])
            r = vimg("info", "-f", "parallels", p, ok=(0, 1))
            assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr


vtest.main()
