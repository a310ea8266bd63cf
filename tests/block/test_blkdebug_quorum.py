#!/usr/bin/env python3
"""blkdebug and quorum file nodes under a format, opened through json:
names: quorum votes on what its children hold, blkdebug injects errors on
the events it raises; each checked against Debian's qemu-img/qemu-io
running the same command where they can."""
import json
import os
import shutil
import sys

import vtest
from imgtest import Scratch, need_qemu, qimg, qio, run, vimg

PATTERN = 0x5a


def quorum(children, threshold, fmt="raw", **extra):
    node = {"driver": "quorum", "vote-threshold": threshold,
            "children": [{"driver": "file", "filename": c} for c in children]}
    node.update(extra)
    return "json:" + json.dumps({"driver": fmt, "file": node})


def blkdebug(image, fmt="raw", **extra):
    node = {"driver": "blkdebug", "image": {"driver": "file", "filename": image}}
    node.update(extra)
    return "json:" + json.dumps({"driver": fmt, "file": node})


def make_children(s, n, size="1M"):
    paths = []
    for i in range(n):
        p = s.path(f"c{i}.raw")
        qimg("create", "-q", "-f", "raw", p, size)
        qio(p, f"write -P {PATTERN:#x} 0 64k", fmt="raw")
        paths.append(p)
    return paths


def corrupt(path, offset=4096, data=b"\x11" * 512):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def qemu_io_read(name, cmd):
    """qemu-io on a json: name; returns its stdout (errors are printed there)."""
    return run(["qemu-io", "-c", cmd, name], ok=(0, 1)).stdout


def expect_pattern(path, length=65536):
    with open(path, "rb") as f:
        data = f.read(length)
    assert data == bytes([PATTERN]) * length, "converted data is not the good copy"


def test_quorum_two_children_disagreeing_fail_at_threshold_2():
    need_qemu()
    with Scratch() as s:
        a, b = make_children(s, 2)
        corrupt(b)
        out = s.path("out.raw")
        name = quorum([a, b], 2)
        p = vimg("convert", "-O", "raw", name, out, ok=(1,))
        assert "Input/output error" in p.stderr, p.stderr
        qimg("convert", "-O", "raw", name, out, ok=(1,))
        assert "Input/output error" in qemu_io_read(name, "read 4096 512")
        # Where both agree (outside the corrupted sector) the read is fine.
        assert "read failed" not in qemu_io_read(name, "read -P 0x5a 0 4096")


def test_quorum_two_good_of_three_give_the_good_data():
    need_qemu()
    with Scratch() as s:
        a, b, c = make_children(s, 3)
        corrupt(c)
        out = s.path("out.raw")
        for threshold in (1, 2):
            name = quorum([a, b, c], threshold)
            vimg("convert", "-O", "raw", name, out)
            expect_pattern(out)
            assert "read failed" not in qemu_io_read(name, "read -P 0x5a 0 64k")
        # Three votes are needed and only two agree: an I/O error, for both.
        name = quorum([a, b, c], 3)
        p = vimg("convert", "-O", "raw", name, out, ok=(1,))
        assert "Input/output error" in p.stderr, p.stderr
        assert "Input/output error" in qemu_io_read(name, "read 0 64k")


def test_quorum_three_different_contents():
    """Three different contents have one vote each: enough at threshold 1,
    an I/O error at threshold 2."""
    need_qemu()
    with Scratch() as s:
        a, b, c = make_children(s, 3)
        corrupt(b, data=b"\x22" * 512)
        corrupt(c, data=b"\x33" * 512)
        out = s.path("out.raw")
        vimg("convert", "-O", "raw", quorum([a, b, c], 1), out)
        p = vimg("convert", "-O", "raw", quorum([a, b, c], 2), out, ok=(1,))
        assert "Input/output error" in p.stderr, p.stderr
        assert "Input/output error" in qemu_io_read(quorum([a, b, c], 2), "read 4096 512")


def test_quorum_rewrite_corrupted_repairs_the_minority():
    """commit reads the top image's data through the quorum (opened for
    writing), which repairs the child that disagreed, then empties the top
    image on all three children alike."""
    need_qemu()
    with Scratch() as s:
        base = s.path("base.qcow2")
        qimg("create", "-q", "-f", "qcow2", base, "1M")
        tops = [s.path(f"t{i}.qcow2") for i in range(3)]
        qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", tops[0])
        qio(tops[0], f"write -P {PATTERN:#x} 0 64k")
        data_at = json.loads(qimg("map", "--output=json", tops[0]).stdout)[0]["offset"]
        for t in tops[1:]:
            with open(tops[0], "rb") as src, open(t, "wb") as dst:
                dst.write(src.read())
        corrupt(tops[2], offset=data_at + 4096)
        vimg("commit", quorum(tops, 2, fmt="qcow2", **{"rewrite-corrupted": True}))
        for t in tops[1:]:
            with open(tops[0], "rb") as fa, open(t, "rb") as fb:
                assert fa.read() == fb.read(), f"{t} differs from {tops[0]}"
        qio(base, f"read -P {PATTERN:#x} 0 64k")


def test_quorum_writes_reach_every_child():
    need_qemu()
    with Scratch() as s:
        children = make_children(s, 3)
        src = s.path("src.raw")
        qimg("create", "-q", "-f", "raw", src, "1M")
        qio(src, "write -P 0x77 128k 64k", fmt="raw")
        vimg("convert", "-n", "-O", "raw", src, quorum(children, 2))
        for c in children:
            qimg("compare", "-f", "raw", "-F", "raw", src, c)


def test_quorum_option_errors_match_qemu():
    need_qemu()
    with Scratch() as s:
        (a,) = make_children(s, 1)
        cases = [
            (quorum([a], 0), "Parameter 'vote-threshold' expects a value >= 1"),
            (quorum([a], 2), "threshold may not exceed children count"),
            (quorum([], 1), "Number of provided children must be 1 or more"),
            (quorum([a], 1, **{"read-pattern": "x"}), "Please set read-pattern as fifo or quorum"),
        ]
        for name, text in cases:
            p = vimg("info", name, ok=(1,))
            assert text in p.stderr, (name, p.stderr)
            q = qimg("info", name, ok=(1,))
            assert text in q.stderr, (name, q.stderr)
        # Children numbered with a gap: the stray one is refused, not dropped.
        spec = {"driver": "raw", "file": {"driver": "quorum", "vote-threshold": 1,
                                          "children.0.filename": a, "children.2.filename": a}}
        p = vimg("info", "json:" + json.dumps(spec), ok=(1,))
        assert "doesn't support the option 'children.2.filename'" in p.stderr, p.stderr


def test_blkdebug_inject_error_fails_the_read():
    need_qemu()
    with Scratch() as s:
        (a,) = make_children(s, 1)
        out = s.path("out.raw")
        name = blkdebug(a, **{"inject-error": [{"event": "read_aio", "errno": "5"}]})
        p = vimg("convert", "-O", "raw", name, out, ok=(1,))
        assert "Input/output error" in p.stderr, p.stderr
        qimg("convert", "-O", "raw", name, out, ok=(1,))
        assert "read failed: Input/output error" in qemu_io_read(name, "read 0 512")
        # Errno and sector are honoured: ENOSPC only on reads covering sector 8.
        name = blkdebug(a, **{"inject-error": [{"event": "read_aio", "errno": "28",
                                                "sector": "8"}]})
        p = vimg("convert", "-O", "raw", name, out, ok=(1,))
        assert "No space left on device" in p.stderr, p.stderr
        assert "No space left on device" in qemu_io_read(name, "read 4096 512")
        assert "read failed" not in qemu_io_read(name, "read 0 4096")
        # Block status passes through: the hole at sector 2000 is never read,
        # so a rule there does not fire in convert (as with qemu-img).
        name = blkdebug(a, **{"inject-error": [{"event": "read_aio", "sector": "2000"}]})
        assert vimg("map", "--output=json", name).stdout == \
            qimg("map", "--output=json", name).stdout
        vimg("convert", "-O", "raw", name, out)
        qimg("convert", "-O", "raw", name, out)
        # Without a rule, blkdebug passes the data through unchanged.
        vimg("convert", "-O", "raw", blkdebug(a, align="4096"), out)
        expect_pattern(out)


def test_blkdebug_set_state_gates_an_error():
    """The error rule only arms in state 2, which the first read moves to."""
    need_qemu()
    with Scratch() as s:
        (a,) = make_children(s, 1)
        src = s.path("src.raw")
        qimg("create", "-q", "-f", "raw", src, "1M")
        rules = {"set-state": [{"event": "write_aio", "state": "1", "new_state": "2"}],
                 "inject-error": [{"event": "read_aio", "state": "2"}]}
        name = blkdebug(a, **rules)
        # Reads alone never leave state 1: they succeed.
        vimg("convert", "-O", "raw", name, s.path("out.raw"))
        # qemu-io: a write moves to state 2, after which reads fail.
        out = run(["qemu-io", "-c", "read 0 512", "-c", "write 0 512", "-c", "read 0 512",
                   name], ok=(0, 1)).stdout
        assert out.count("read failed") == 1, out


def test_blkdebug_rejects_unknown_events_and_bad_align():
    need_qemu()
    with Scratch() as s:
        (a,) = make_children(s, 1)
        name = blkdebug(a, **{"inject-error": [{"event": "bogus"}]})
        p = vimg("info", name, ok=(1,))
        assert "invalid parameter value: bogus" in p.stderr, p.stderr
        assert "invalid parameter value: bogus" in qimg("info", name, ok=(1,)).stderr
        name = blkdebug(a, align="3")
        p = vimg("info", name, ok=(1,))
        assert "Cannot meet constraints with align 3" in p.stderr, p.stderr
        p = vimg("info", "json:" + json.dumps({"driver": "raw", "file": {"driver": "blkdebug"}}),
                 ok=(1,))
        assert 'A block device must be specified for "image"' in p.stderr, p.stderr


def test_blkdebug_names_and_config_file():
    """blkdebug:CONFIG:IMAGE names, shown for a blkdebug node with nothing but
    a config file and an image; rules from the config file apply."""
    need_qemu()
    with Scratch() as s:
        (a,) = make_children(s, 1)
        cfg, out = s.path("rules.ini"), s.path("out.raw")
        with open(cfg, "w") as f:
            f.write('# fail every read\n[inject-error]\nevent = "read_aio"\nerrno = "5"\n')
        for name in (f"blkdebug::{a}", blkdebug(a, config=cfg)):
            mine, theirs = vimg("info", name).stdout, qimg("info", name).stdout
            assert mine.splitlines()[0] == theirs.splitlines()[0], (mine, theirs)
        assert vimg("info", blkdebug(a, config=cfg)).stdout.startswith(
            f"image: blkdebug:{cfg}:{a}\n")
        for name in (f"blkdebug:{cfg}:{a}", blkdebug(a, config=cfg)):
            p = vimg("convert", "-O", "raw", name, out, ok=(1,))
            assert "Input/output error" in p.stderr, p.stderr
            qimg("convert", "-O", "raw", name, out, ok=(1,))
        vimg("convert", "-O", "raw", f"blkdebug::{a}", out)
        expect_pattern(out)
        for name, text in ((f"blkdebug:{cfg}", "blkdebug requires both config file and image path"),
                           (f"blkdebug:{s.path('none')}:{a}",
                            "Could not read blkdebug config file: No such file or directory"),
                           ("json:" + json.dumps({"driver": "raw", "file": {
                               "driver": "blkdebug", "image": "node0"}}),
                            "Cannot find device='node0' nor node-name='node0'")):
            p = vimg("info", name, ok=(1,))
            assert text in p.stderr, p.stderr
            assert text in qimg("info", name, ok=(1,)).stderr


def test_info_backing_path_through_filters():
    """qemu-iotests 110: through blkdebug the backing file resolves next to
    the image; through quorum no directory can be determined."""
    need_qemu()
    with Scratch() as s:
        base, top = s.path("t.qcow2.base"), s.path("t.qcow2")
        vimg("create", "-q", "-f", "qcow2", base, "64M")
        vimg("create", "-q", "-f", "qcow2", "-b", "t.qcow2.base", "-F", "qcow2", top)
        rules = {"set-state": [{"event": "read_aio", "new_state": 42}]}
        name = blkdebug(top, fmt="qcow2", **rules)
        mine, theirs = vimg("info", name).stdout, qimg("info", name).stdout
        want = f"backing file: t.qcow2.base (actual path: {base})"
        assert want in mine and want in theirs, (mine, theirs)
        assert mine.startswith("image: json:{") and theirs.startswith("image: json:{"), mine
        name = quorum([top], 1, fmt="qcow2")
        mine, theirs = vimg("info", name).stdout, qimg("info", name).stdout
        want = "backing file: t.qcow2.base (cannot determine actual path)"
        assert want in mine and want in theirs, (mine, theirs)


def vmm_nodes(spec, qemu=False):
    """query-named-block-nodes of a paused machine started with -blockdev @spec."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import vmm
    if qemu:
        v = vmm.Vireo("-M", "pc", "-nodefaults", "-S", "-blockdev", json.dumps(spec),
                      binary=shutil.which("qemu-system-x86_64"))
    else:
        v = vmm.Vireo("-nodefaults", "-S", "-blockdev", json.dumps(spec), qtest=True)
    with v:
        m = v.qmp()
        nodes = m.cmd("query-named-block-nodes")
        m.close()
    return {n["node-name"]: n for n in nodes}


def test_vmm_blockdev_over_filters():
    """-blockdev takes blkdebug and quorum file nodes under a format, as QEMU
    does (QEMU also lists the filters' own children as nodes; vireo does not)."""
    need_qemu()
    if not shutil.which("qemu-system-x86_64"):
        vtest.skip("qemu-system-x86_64 is not installed")
    with Scratch() as s:
        img = s.path("d.qcow2")
        qimg("create", "-q", "-f", "qcow2", img, "1M")
        spec = {"driver": "qcow2", "node-name": "q0",
                "file": {"driver": "blkdebug", "node-name": "f0",
                         "image": {"driver": "file", "filename": img}}}
        mine, theirs = vmm_nodes(spec), vmm_nodes(spec, qemu=True)
        for name in ("q0", "f0"):
            for key in ("drv", "file", "ro"):
                assert mine[name][key] == theirs[name][key], (name, key, mine[name], theirs[name])
        assert mine["q0"]["image"]["virtual-size"] == 1048576
        spec = {"driver": "qcow2", "node-name": "q0",
                "file": {"driver": "quorum", "node-name": "f0", "vote-threshold": 1,
                         "children": [{"driver": "file", "filename": img}]}}
        mine = vmm_nodes(spec)
        assert mine["f0"]["drv"] == "quorum" and mine["q0"]["drv"] == "qcow2", mine
        spec["file"]["vote-threshold"] = 2
        import vmm
        rc, _, err = vmm.run("-nodefaults", "-S", "-qtest", "null", "-blockdev", json.dumps(spec),
                             timeout=60)
        assert rc != 0 and "threshold may not exceed children count" in err, (rc, err)


def test_vmm_guest_io_through_filters():
    """virtio-blk requests (over qtest) through quorum and blkdebug nodes:
    the vote, the injected error and writes to every child reach the guest."""
    need_qemu()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "virtio"))
    import vmm
    from test_virtio_qtest import Blk

    def start(file_node):
        spec = {"driver": "raw", "node-name": "d0", "file": file_node}
        return vmm.Vireo("-nodefaults", "-S", "-blockdev", json.dumps(spec),
                         "-device", "virtio-blk-pci,drive=d0", qtest=True)

    def files(paths):
        return [{"driver": "file", "filename": p} for p in paths]

    with Scratch() as s:
        a, b, c = make_children(s, 3)
        corrupt(c)                      # sector 8 differs on one child of three
        node = {"driver": "quorum", "vote-threshold": 2, "children": files([a, b, c])}
        with start(node) as v:
            blk = Blk(v)
            st, _, data = blk.request(0, 8, in_len=512)
            assert st == 0 and data == bytes([PATTERN]) * 512, (st, data[:16])
            assert blk.request(1, 100, out=b"\x77" * 4096)[0] == 0
            assert blk.request(4, 0)[0] == 0
        for p in (a, b, c):
            with open(p, "rb") as f:
                f.seek(100 * 512)
                assert f.read(4096) == b"\x77" * 4096, p
        node = {"driver": "quorum", "vote-threshold": 2, "children": files([a, c])}
        with start(node) as v:
            blk = Blk(v)
            assert blk.request(0, 8, in_len=512)[0] == 1       # VIRTIO_BLK_S_IOERR
            assert blk.request(0, 0, in_len=512)[0] == 0       # both agree there
        node = {"driver": "blkdebug", "image": files([a])[0],
                "inject-error": [{"event": "read_aio", "sector": "8"}]}
        with start(node) as v:
            blk = Blk(v)
            assert blk.request(0, 0, in_len=512)[0] == 0
            assert blk.request(0, 8, in_len=512)[0] == 1


vtest.main()
