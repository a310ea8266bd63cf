#!/usr/bin/env python3
"""vireo-img commit and dd against qemu-img: the same bytes land in the same
places, the same messages and exit statuses for what both refuse."""
import os

import vtest
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, qio, run, vimg, vireo_img


def chain(s, prefix):
    base, mid, top = (s.path(f"{prefix}-{n}.qcow2") for n in ("base", "mid", "top"))
    qimg("create", "-q", "-f", "qcow2", base, "1M")
    qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", mid)
    qimg("create", "-q", "-f", "qcow2", "-b", mid, "-F", "qcow2", top)
    qio(mid, "write -P 0x22 0 64k")
    qio(top, "write -P 0x33 64k 64k")
    return base, mid, top


def test_commit_into_backing_file_empties_the_top():
    need_qemu()
    with Scratch() as s:
        base, mid, top = chain(s, "v")
        p = vimg("commit", top)
        assert p.stdout == "Image committed.\n", p.stdout
        for img in (mid, top):
            qemu_check_clean(img)
        qio(mid, "read -P 0x22 0 64k", "read -P 0x33 64k 64k", "read -P 0 128k 896k")
        assert qimg("map", "--output=json", top).stdout.count('"depth": 0') == 0


def test_commit_to_a_named_base_keeps_the_top():
    need_qemu()
    with Scratch() as s:
        base, mid, top = chain(s, "v")
        vimg("commit", "-q", "-b", base, top)
        qemu_check_clean(base)
        qio(base, "read -P 0x22 0 64k", "read -P 0x33 64k 64k")
        qio(top, "read -P 0x33 64k 64k")
        assert '"depth": 0' in qimg("map", "--output=json", top).stdout


def test_dd_sizes_and_content_match_qemu_img():
    need_qemu()
    with Scratch() as s:
        src = s.path("in.raw")
        qimg("create", "-q", "-f", "raw", src, "1M")
        qio(src, "write -P 0x11 0 512k", "write -P 0x22 512k 512k", fmt="raw")
        for ops in (["bs=4k", "count=3", "skip=2"], ["skip=1000"], ["bs=64k", "skip=1"],
                    ["bs=1M", "count=5"], ["bs=1.5k", "count=3"]):
            outs = []
            for who, tool in (("v", vimg), ("q", qimg)):
                out = s.path(f"{who}.qcow2")
                tool("dd", "-f", "raw", "-O", "qcow2", f"if={src}", f"of={out}", *ops)
                outs.append(out)
            assert os.path.getsize(outs[0]) > 0
            qimg("compare", *outs)
            qemu_check_clean(outs[0])


def test_refusals_match_qemu_img():
    need_qemu()
    with Scratch() as s:
        base, mid, top = chain(s, "v")
        src = s.path("in.raw")
        qimg("create", "-q", "-f", "raw", src, "64k")
        out = s.path("out.raw")
        for args in (["commit", base], ["commit", "-b", "nope", top],
                     ["dd", f"if={src}"], ["dd", f"if={src}", f"of={out}", "bs=0"],
                     ["dd", f"if={src}", f"of={out}", "foo=1"],
                     ["dd", f"if={src}", f"of={out}", "count=abc"],
                     ["dd", f"if={src}", f"of={out}", "bs=1k,count=1"]):
            pv = run([vireo_img()] + args, ok=(1,))
            pq = run(["qemu-img"] + args, ok=(1,))
            assert pv.stderr.replace("vireo-img", "qemu-img") == pq.stderr, (args, pv.stderr,
                                                                            pq.stderr)


vtest.main()
