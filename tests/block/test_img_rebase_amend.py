#!/usr/bin/env python3
"""vireo-img rebase and amend against qemu-img: same content, same header
changes, same refusals (texts compared with the program name swapped)."""
import json
import os

import vtest
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, qio, run, vimg, vireo_img


def info(path):
    return json.loads(qimg("info", "--output=json", path).stdout)


def both(s, name, make):
    """The same image made twice, for vireo-img and for qemu-img."""
    paths = []
    for who in ("v", "q"):
        path = s.path(f"{who}-{name}")
        make(path)
        paths.append(path)
    return paths


def test_safe_rebase_keeps_what_the_guest_sees():
    need_qemu()
    with Scratch() as s:
        old, new = s.path("old.qcow2"), s.path("new.qcow2")
        qimg("create", "-q", "-f", "qcow2", old, "1M")
        qio(old, "write -P 0x11 0 512k")
        qimg("create", "-q", "-f", "qcow2", new, "1M")
        qio(new, "write -P 0x11 0 64k", "write -P 0x22 256k 64k")

        def overlay(path):
            qimg("create", "-q", "-f", "qcow2", "-b", old, "-F", "qcow2", path)
            qio(path, "write -P 0x33 128k 64k")
        v, q = both(s, "top.qcow2", overlay)
        vimg("rebase", "-b", new, "-F", "qcow2", v)
        qimg("rebase", "-b", new, "-F", "qcow2", q)
        qemu_check_clean(v)
        qio(v, "read -P 0x11 0 128k", "read -P 0x33 128k 64k", "read -P 0x11 192k 320k",
            "read -P 0 512k 512k")
        qimg("compare", v, q)
        assert info(v)["backing-filename"] == new


def test_rebase_onto_nothing_copies_the_backing_data():
    need_qemu()
    with Scratch() as s:
        base, top = s.path("base.qcow2"), s.path("top.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "1M")
        qio(base, "write -P 0x44 64k 64k")
        qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
        vimg("rebase", "-b", "", top)
        os.unlink(base)
        assert "backing-filename" not in info(top)
        qio(top, "read -P 0x44 64k 64k", "read -P 0 0 64k")


def test_unsafe_rebase_only_renames():
    need_qemu()
    with Scratch() as s:
        top = s.path("top.qcow2")
        qimg("create", "-q", "-f", "qcow2", top, "1M")
        vimg("rebase", "-u", "-b", "elsewhere.qcow2", "-F", "qcow2", top)
        qimg("create", "-q", "-f", "qcow2", s.path("elsewhere.qcow2"), "1M")
        i = info(top)
        assert i["backing-filename"] == "elsewhere.qcow2" and i["backing-filename-format"] == "qcow2"
        qemu_check_clean(top)


def same_failure(args_v, args_q):
    pv = run([vireo_img()] + args_v, ok=(1,))
    pq = run(["qemu-img"] + args_q, ok=(1,))
    assert pv.stderr.replace("vireo-img", "qemu-img") == pq.stderr, (pv.stderr, pq.stderr)


def test_refusals_match_qemu_img():
    need_qemu()
    with Scratch() as s:
        img = s.path("a.qcow2")
        qimg("create", "-q", "-f", "qcow2", img, "1M")
        for args in (["rebase", img], ["rebase", "-b", "x.qcow2", img],
                     ["rebase", "-u", "-b", "x", "-F", "foo", img],
                     ["rebase", "-b", "missing.qcow2", "-F", "qcow2", img],
                     ["amend", img], ["amend", "-o", "cluster_size=4k", img],
                     ["amend", "-o", "compat=0.42", img], ["amend", "-o", "foo=bar", img],
                     ["amend", "-o", "backing_file=x", img],
                     ["amend", "-o", "compat=0.10,lazy_refcounts=on", img]):
            same_failure(args, args)


def test_amend_compat_and_lazy_refcounts():
    need_qemu()
    with Scratch() as s:
        def make(path):
            qimg("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", path, "1M")
            qio(path, "write -P 0x11 0 1M", "write -z 0 64k", "write -z -u 128k 64k")
        v, q = both(s, "z.qcow2", make)
        vimg("amend", "-o", "compat=0.10", v)
        qimg("amend", "-o", "compat=0.10", q)
        qemu_check_clean(v)
        fv, fq = info(v)["format-specific"]["data"], info(q)["format-specific"]["data"]
        assert fv == fq, (fv, fq)
        qimg("compare", v, q)
        vimg("amend", "-o", "compat=1.1,lazy_refcounts=on", v)
        qimg("amend", "-o", "compat=1.1,lazy_refcounts=on", q)
        assert info(v)["format-specific"]["data"] == info(q)["format-specific"]["data"]
        vimg("amend", "-o", "size=2M", v)
        assert info(v)["virtual-size"] == 2 << 20
        qemu_check_clean(v)


vtest.main()
