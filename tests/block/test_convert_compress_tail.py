#!/usr/bin/env python3
"""convert -c when the data does not line up with the target's clusters: an
image whose size is not a multiple of the cluster size, and holes that start
or end inside a cluster.  qemu-img compresses such clusters whole (the tail
padded with zeros) and succeeds; vireo-img must too, with identical content."""
import vtest
from imgtest import Scratch, need_qemu, qemu_check_clean, qimg, qio, same_content, vimg


def convert_compressed(s, src, name, *opts):
    dst = s.path(name)
    vimg("convert", "-c", "-O", "qcow2", *opts, src, dst)
    report = qemu_check_clean(dst)
    same_content(src, dst)
    return report


def test_size_not_multiple_of_cluster_size():
    need_qemu()
    with Scratch() as s:
        src = s.path("tail.raw")
        qimg("create", "-q", "-f", "raw", src, "100000")
        qio(src, "write -P 0x11 0 100000", fmt="raw")
        r = convert_compressed(s, src, "tail.qcow2")
        assert r.get("compressed-clusters") == 2, r


def test_hole_ends_inside_a_cluster():
    need_qemu()
    with Scratch() as s:
        src = s.path("holes.raw")
        qimg("create", "-q", "-f", "raw", src, "70000")
        # data, a hole from 4k to 66000, then data up to the unaligned end
        qio(src, "write -P 0x11 0 4k", "write -P 0x22 66000 4000", fmt="raw")
        r = convert_compressed(s, src, "holes.qcow2")
        assert r.get("compressed-clusters") == 2, r


def test_small_clusters_and_qcow2_source():
    need_qemu()
    with Scratch() as s:
        src = s.path("src.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", src, "1000001")
        qio(src, "write -P 0x33 700 300", "write -P 0x44 999000 1001")
        convert_compressed(s, src, "small.qcow2", "-o", "cluster_size=4096")


vtest.main()
