#!/usr/bin/env python3
"""json:{...} file names (the options of --image-opts written as a JSON
object where a file name goes) and convert -S 0 (a fully allocated target),
checked against what qemu-img does with the same command lines."""
import json
import os

import vtest
from imgtest import Scratch, need_qemu, qimg, qio, same_content, vimg


def json_name(fmt, path):
    return "json:" + json.dumps({"driver": fmt, "file": {"driver": "file", "filename": path}})


def test_info_through_json_name_shows_the_plain_file_and_backing():
    need_qemu()
    with Scratch() as s:
        base, top = s.path("b.qcow2"), s.path("t.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "64M")
        qimg("create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", top)
        # Single quotes, as shell scripts write them, are accepted as well.
        name = json_name("qcow2", top).replace('"', "'")
        mine = vimg("info", name).stdout
        theirs = qimg("info", name).stdout
        assert mine.splitlines()[0] == f"image: {top}", mine
        want = f"backing file: b.qcow2 (actual path: {base})"
        assert want in mine and want in theirs, (mine, theirs)
        j = json.loads(vimg("info", "--output=json", name).stdout)
        assert j["filename"] == top and j["format"] == "qcow2", j


def test_json_name_reads_the_same_data():
    need_qemu()
    with Scratch() as s:
        img, out = s.path("d.qcow2"), s.path("out.raw")
        qimg("create", "-q", "-f", "qcow2", img, "1M")
        qio(img, "write -P 0x5a 64k 8k")
        vimg("convert", "-O", "raw", json_name("qcow2", img), out)
        same_content(img, out, "qcow2", "raw")
        # A bare file name for "file", and no driver at all (probed).
        vimg("convert", "-O", "raw", "json:" + json.dumps({"file": img}), out)
        same_content(img, out, "qcow2", "raw")


def test_unknown_options_and_bad_json_are_refused():
    with Scratch() as s:
        img = s.path("x.qcow2")
        vimg("create", "-q", "-f", "qcow2", img, "1M")
        bad = json.loads(json_name("qcow2", img)[5:])
        bad["no-such-option"] = 1
        p = vimg("info", "json:" + json.dumps(bad), ok=(1,))
        assert "does not support the option 'no-such-option'" in p.stderr, p.stderr
        for text in ("json:[1]", "json:{'driver':", "json:", "json:{\"driver\": \"qcow2\"}"):
            p = vimg("info", text, ok=(1,))
            assert p.stderr.startswith(os.path.basename(p.args[0]) + ": Could not open"), p.stderr
        # Lists are flattened with numbered keys; drivers vireo lacks are named
        # (blkdebug and quorum exist: tests/block/test_blkdebug_quorum.py).
        for drv, extra in (("no-such-filter", {"image": {"driver": "file", "filename": img},
                                               "rules": [{"event": "read_aio"}]}),
                           ("no-such-vote", {"children": [{"driver": "file",
                                                           "filename": img}]})):
            spec = {"driver": "qcow2", "file": dict({"driver": drv}, **extra)}
            p = vimg("info", "json:" + json.dumps(spec), ok=(1,))
            assert p.stderr.rstrip().endswith(f"Unknown driver '{drv}'"), p.stderr
        nested = {"driver": "qcow2", "file": "json:" + json.dumps({"file": img})}
        vimg("info", "json:" + json.dumps(nested), ok=(1,))


def test_null_co_source_and_sparse_levels():
    """qemu-iotests 150: a null-co source that reads zeros makes an empty
    target, unless -S 0 asks for every byte to be written."""
    need_qemu()
    with Scratch() as s:
        src = "json:" + json.dumps({"driver": "null-co", "size": 1048576, "read-zeroes": True})
        for fmt in ("qcow2", "raw"):
            dst = s.path("t." + fmt)
            vimg("convert", "-O", fmt, "-S", "512", src, dst)
            m = json.loads(qimg("map", "--output=json", "-f", fmt, dst).stdout)
            assert not any(e["data"] for e in m), m
            vimg("convert", "-O", fmt, "-S", "0", src, dst)
            m = json.loads(qimg("map", "--output=json", "-f", fmt, dst).stdout)
            assert all(e["data"] and not e["zero"] for e in m), m
            assert sum(e["length"] for e in m) == 1048576, m


def test_sparse_size_is_checked_like_qemu_img():
    with Scratch() as s:
        src, dst = s.path("s.raw"), s.path("d.raw")
        vimg("create", "-q", "-f", "raw", src, "64k")
        for bad in ("100", "32M", "1x", "-1"):
            p = vimg("convert", "-S", bad, "-O", "raw", src, dst, ok=(1,))
            assert "Invalid buffer size for sparse output specified." in p.stderr, p.stderr
        for good in ("0", "512", "4k", "16M"):
            vimg("convert", "-S", good, "-O", "raw", src, dst)


vtest.main()
