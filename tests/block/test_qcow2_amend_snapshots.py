#!/usr/bin/env python3
"""amend and resize of qcow2 images with internal snapshots, side by side
with qemu-img 7.2: a version 3 image resizes (a version 2 one refuses),
compat=0.10 expands the zero clusters of the snapshots' tables too (shared
L2 tables, backing files) and refuses when a snapshot's size differs, and
the messages and exit statuses are qemu-img's."""
import shutil

import vtest
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, qio, run, vimg


def version_and_size(path):
    with open(path, "rb") as f:
        hdr = f.read(32)
    return int.from_bytes(hdr[4:8], "big"), int.from_bytes(hdr[24:32], "big")


def both(s, name, setup):
    """Build one image with qemu's tools, copy it: (vireo's copy, qemu's copy)."""
    mine, ref = s.path(f"{name}-v.qcow2"), s.path(f"{name}-q.qcow2")
    setup(mine)
    shutil.copyfile(mine, ref)
    return mine, ref


def same(mine, ref, *args, ok=(0, 1)):
    """Run one command on each copy; IMG in @args stands for the image (else it goes last)."""
    def argv(path):
        return [path if a == "IMG" else a for a in args] + ([] if "IMG" in args else [path])
    a = vimg(*argv(mine), ok=ok)
    b = qimg(*argv(ref), ok=ok)
    assert a.returncode == b.returncode, (args, a.returncode, b.returncode, a.stderr, b.stderr)
    assert a.stderr.replace("vireo-img:", "qemu-img:") == b.stderr, (args, a.stderr, b.stderr)
    assert version_and_size(mine) == version_and_size(ref), args
    return a.returncode


def test_resize_and_downgrade_with_snapshots():
    need_qemu()
    with Scratch() as s:
        def setup(p):
            qimg("create", "-q", "-f", "qcow2", "-o", "compat=0.10", p, "32M")
            qio(p, "write -P 0x2a 24M 64k")
            qimg("snapshot", "-c", "foo", p)
        mine, ref = both(s, "rs", setup)
        assert same(mine, ref, "resize", "-f", "qcow2", "IMG", "64M") == 1  # v2: refused
        assert same(mine, ref, "amend", "-f", "qcow2", "-o", "compat=1.1,size=128M") == 0
        vimg("snapshot", "-c", "bar", mine)
        qimg("snapshot", "-c", "bar", ref)
        assert same(mine, ref, "resize", "--shrink", "-f", "qcow2", "IMG", "64M") == 0
        assert same(mine, ref, "amend", "-f", "qcow2", "-o", "compat=0.10,size=32M") == 1
        vimg("snapshot", "-a", "bar", mine)
        qimg("snapshot", "-a", "bar", ref)
        assert version_and_size(mine) == version_and_size(ref) == (3, 128 << 20)
        vimg("snapshot", "-d", "bar", mine)
        qimg("snapshot", "-d", "bar", ref)
        assert same(mine, ref, "amend", "-f", "qcow2", "-o", "compat=0.10,size=32M") == 0
        assert version_and_size(mine) == (2, 32 << 20)
        qemu_check_clean(mine)
        qio(mine, "read -P 0x2a 24M 64k")


def test_zero_expansion_in_snapshot_tables():
    need_qemu()
    with Scratch() as s:
        base = s.path("base.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "64M")
        qio(base, "write -P 0x2a 0 128k")

        def backed(p):
            qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", p, "64M")
            qio(p, "write -z 0 64k")
            qimg("snapshot", "-c", "foo", p)
            qio(p, "write -P 0x42 0 128k")

        def shared(p):
            qimg("create", "-q", "-f", "qcow2", p, "64M")
            qio(p, "write -z 0 128k")
            qimg("snapshot", "-c", "foo", p)

        for name, setup, after in (("backed", backed, ["read -P 0 0 64k", "read -P 0x2a 64k 64k"]),
                                   ("shared", shared, ["read -P 0 0 128k"])):
            mine, ref = both(s, name, setup)
            assert same(mine, ref, "amend", "-f", "qcow2", "-o", "compat=0.10") == 0
            assert version_and_size(mine)[0] == 2
            qemu_check_clean(mine)
            vimg("snapshot", "-a", "foo", mine)
            qemu_check_clean(mine)
            qio(mine, *after)
            # No zero flag is left in any table: qemu reads it as version 2.
            run(["qemu-img", "check", "-f", "qcow2", mine])


def test_downgrade_refusals():
    need_qemu()
    with Scratch() as s:
        def ext(p):
            qimg("create", "-q", "-f", "qcow2", "-o", "compat=1.1,extended_l2=on", p, "64M")
        mine, ref = both(s, "ext", ext)
        assert same(mine, ref, "amend", "-f", "qcow2", "-o", "compat=0.10") == 1


vtest.main()
