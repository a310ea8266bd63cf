#!/usr/bin/env python3
"""A qcow2 image left dirty by lazy refcounts (qemu-io killed after writing)
has clusters the L2 tables reference but whose refcount is 0.  Opening it
for write (amend, here) or `check -r all` must rebuild the refcount
structure as qemu-img 7.2 does: the same messages, the new table and block
in the same clusters, and an image Debian's `qemu-img check` finds clean
with the data intact.  `check -r leaks` must refuse, as qemu-img does."""
import os
import shutil

import vtest
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, run, vimg


def dirty_image(path, extra_writes=()):
    qimg("create", "-q", "-f", "qcow2", "-o", "compat=1.1,lazy_refcounts=on", path, "64M")
    args = ["qemu-io", "-f", "qcow2", "-c", "write -P 0x2a 0 128k"]
    for w in extra_writes:
        args += ["-c", w]
    args += ["-c", "flush", "-c", "sigraise 9", path]
    run(args, ok=(-9, 137))
    # The refcounts of the data clusters never reached the disk.
    p = qimg("check", path, ok=(2,))
    assert "refcount=0 reference=1" in p.stderr, p.stderr


def header_reftable(path):
    with open(path, "rb") as f:
        f.seek(48)
        return f.read(12)


def side_by_side(s, name, vargs, qargs, ok=(0,), extra_writes=()):
    mine, ref = s.path(f"{name}-vireo.qcow2"), s.path(f"{name}-qemu.qcow2")
    dirty_image(mine, extra_writes)
    shutil.copyfile(mine, ref)
    a = vimg(*vargs, mine, ok=ok)
    b = qimg(*qargs, ref, ok=ok)
    return mine, ref, a, b


def test_amend_opens_dirty_image_and_rebuilds():
    need_qemu()
    with Scratch() as s:
        mine, ref, a, b = side_by_side(s, "amend", ["amend", "-o", "compat=0.10"],
                                       ["amend", "-o", "compat=0.10"])
        assert "Rebuilding refcount structure" in a.stderr, a.stderr
        assert a.stderr == b.stderr, (a.stderr, b.stderr)
        assert header_reftable(mine) == header_reftable(ref)
        assert os.path.getsize(mine) == os.path.getsize(ref)
        qemu_check_clean(mine)
        run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x2a 0 128k", mine])


def test_lazy_refcounts_off_on_dirty_image():
    need_qemu()
    with Scratch() as s:
        mine, ref, a, b = side_by_side(s, "lazy", ["amend", "-o", "lazy_refcounts=off"],
                                       ["amend", "-o", "lazy_refcounts=off"],
                                       extra_writes=["write -P 0x17 40M 192k"])
        assert a.stderr == b.stderr, (a.stderr, b.stderr)
        assert header_reftable(mine) == header_reftable(ref)
        qemu_check_clean(mine)
        run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x17 40M 192k", mine])


def test_check_repair_all_and_leaks():
    need_qemu()
    with Scratch() as s:
        mine, ref, a, b = side_by_side(s, "all", ["check", "-r", "all"], ["check", "-r", "all"])
        assert a.stdout == b.stdout, (a.stdout, b.stdout)
        assert a.stderr == b.stderr, (a.stderr, b.stderr)
        qemu_check_clean(mine)
        mine, ref, a, b = side_by_side(s, "leaks", ["check", "-r", "leaks"],
                                       ["check", "-r", "leaks"], ok=(1,))
        assert "ERROR need to rebuild refcount structures" in a.stderr, a.stderr
        assert a.stderr.replace("vireo-img:", "qemu-img:") == b.stderr, (a.stderr, b.stderr)


vtest.main()
