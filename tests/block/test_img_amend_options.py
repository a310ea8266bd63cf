#!/usr/bin/env python3
"""amend -o backing_file/backing_fmt, data_file and data_file_raw side by
side with qemu-img 7.2: naming the backing file the image already has is no
change (another one is refused), an image with an external data file can
be told a new data file name, and its raw flag can be cleared but set only
where it already is; the same messages, exit statuses and resulting info."""
import json
import shutil

import vtest
from imgtest import Scratch, in_dir, need_qemu, qimg, vimg


def info(path):
    return json.loads(qimg("info", "--output=json", "-U", path).stdout)


def both(s, name, *create):
    mine, ref = s.path(f"{name}-v.qcow2"), s.path(f"{name}-q.qcow2")
    qimg("create", "-q", "-f", "qcow2", *create, mine, "64M")
    shutil.copyfile(mine, ref)
    return mine, ref


def same(mine, ref, *opts, ok=(0, 1)):
    a = vimg("amend", "-f", "qcow2", *opts, mine, ok=ok)
    b = qimg("amend", "-f", "qcow2", *opts, ref, ok=ok)
    assert a.returncode == b.returncode, (opts, a.stderr, b.stderr)
    assert a.stderr.replace("vireo-img", "qemu-img") == b.stderr, (opts, a.stderr, b.stderr)
    return a.returncode


def test_backing_file():
    need_qemu()
    with Scratch() as s:
        base = s.path("base.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "64M")
        mine, ref = both(s, "b", "-b", base, "-F", "qcow2")
        assert same(mine, ref, "-o", f"backing_file={base},backing_fmt=qcow2") == 0
        assert same(mine, ref, "-o", f"backing_file={base}") == 1      # format differs
        assert same(mine, ref, "-o", f"backing_file={s.path('other')},backing_fmt=qcow2") == 1
        plain, plain_ref = both(s, "p")
        assert same(plain, plain_ref, "-o", f"backing_file={base},backing_fmt=qcow2") == 1


def test_data_file_name_and_raw_flag():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
        mine, ref = both(s, "nodata")
        assert same(mine, ref, "-o", "data_file=foo") == 1
        mine, ref = s.path("d-v.qcow2"), s.path("d-q.qcow2")
        for p in (mine, ref):
            qimg("create", "-q", "-f", "qcow2", "-o", f"data_file={p}.data,data_file_raw=on",
                 p, "64M")
        for opts in ("data_file_raw=on", "data_file_raw=off", "data_file_raw=on"):
            same(mine, ref, "-o", opts)
            a, b = info(mine), info(ref)
            assert (a["format-specific"]["data"]["data-file-raw"] ==
                    b["format-specific"]["data"]["data-file-raw"]), opts
        assert same(mine, ref, "-o", "data_file=foo") == 0
        assert info(mine)["format-specific"]["data"]["data-file"] == "foo"
        assert info(ref)["format-specific"]["data"]["data-file"] == "foo"


vtest.main()
