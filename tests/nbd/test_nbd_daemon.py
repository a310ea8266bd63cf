#!/usr/bin/env python3
"""vireo-storage-daemon's NBD server: --nbd-server and --export type=nbd on
the command line and through QMP, with nbdinfo, nbdcopy, qemu-io and
qemu-img as clients, side by side with qemu-storage-daemon where both run
the same command line."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbdtest import Daemon, Dir, del_export, err, make_qcow2, need, ok, run, uri, wait_path  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402


def nodes(img):
    return ["--blockdev", f"driver=file,node-name=f0,filename={img}",
            "--blockdev", "driver=qcow2,node-name=d0,file=f0"]


def test_command_line_export():
    need("nbdinfo", "nbdcopy", "qemu-img")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img, writes=(("0xab", "1M", "2M"), ("0xcd", "40M", "1M")))
        ref = d("ref.qcow2")
        shutil.copy(img, ref)
        sock = d("nbd.sock")
        args = nodes(img) + ["--nbd-server", f"addr.type=unix,addr.path={sock}",
                             "--export", "type=nbd,id=e0,node-name=d0,name=disk,"
                             "description=backup source,allocation-depth=on"]
        with Daemon(d, *args) as sd:
            wait_path(sock)
            out = run("nbdinfo", "--list", f"nbd+unix:///?socket={sock}").stdout
            assert 'export="disk"' in out and "backup source" in out, out
            mine = run("nbdinfo", "--map", uri(sock, "disk")).stdout
            depth = run("nbdinfo", "--map=qemu:allocation-depth", uri(sock, "disk")).stdout
            run("nbdcopy", uri(sock, "disk"), d("copy.raw"))
            run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", d("copy.raw"), ref)
            info = ok(sd.q, "query-block-exports")
            assert info == [{"id": "e0", "type": "nbd", "node-name": "d0",
                             "shutting-down": False}], info
        if not shutil.which("qemu-storage-daemon"):
            return
        # the same command line on qemu-storage-daemon, the same answers
        qsock = d("q.sock")
        p = subprocess.Popen(["qemu-storage-daemon"] + nodes(ref) + [
            "--nbd-server", f"addr.type=unix,addr.path={qsock}",
            "--export", "type=nbd,id=e0,node-name=d0,name=disk,"
            "description=backup source,allocation-depth=on"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_path(qsock)
            time.sleep(0.2)
            theirs = run("nbdinfo", "--map", uri(qsock, "disk")).stdout
            tdepth = run("nbdinfo", "--map=qemu:allocation-depth", uri(qsock, "disk")).stdout
        finally:
            p.terminate()
            p.wait(10)
        assert mine == theirs, f"vireo:\n{mine}\nqemu-storage-daemon:\n{theirs}"
        assert depth == tdepth, f"vireo:\n{depth}\nqemu-storage-daemon:\n{tdepth}"


def test_qmp_export_lifecycle():
    need("qemu-io")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        with Daemon(d, *nodes(img)) as sd:
            q = sd.q
            assert err(q, "block-export-add", **{"type": "nbd", "id": "e0",
                                                  "node-name": "d0"}) == \
                "NBD server not running"
            sock = d("nbd.sock")
            ok(q, "nbd-server-start", addr={"type": "unix", "data": {"path": sock}},
               **{"max-connections": 4})
            assert err(q, "nbd-server-start",
                       addr={"type": "unix", "data": {"path": d("x.sock")}}) == \
                "NBD server already running"
            assert "addr" in err(q, "block-export-add", **{
                "type": "nbd", "id": "e0", "node-name": "d0",
                "addr": {"type": "unix", "path": d("y.sock")}})
            ok(q, "block-export-add", **{"type": "nbd", "id": "e0", "node-name": "d0",
                                          "name": "disk", "writable": True})
            run("qemu-io", "-f", "raw", "-c", "write -P 0x42 7M 512k", uri(sock, "disk"))
            r = run("qemu-io", "-f", "raw", "-c", "read -P 0x42 7M 512k", uri(sock, "disk"))
            assert "verification failed" not in r.stdout, r.stdout
            del_export(q, "e0")
            q.wait_event("BLOCK_EXPORT_DELETED")
            assert ok(q, "query-block-exports") == []
            # the node is free again for another export
            ok(q, "nbd-server-add", device="d0", name="again")
            ok(q, "nbd-server-stop")
            assert ok(q, "query-block-exports") == []
            assert not os.path.exists(sock)
        r = run("qemu-io", "-f", "qcow2", "-c", "read -P 0x42 7M 512k", img)
        assert "verification failed" not in r.stdout, r.stdout


def test_bad_options_refused():
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        cases = [
            (["--export", "type=nbd,id=e0,node-name=d0"], "NBD server not running"),
            (["--nbd-server", "addr.type=unix"], "addr.type=unix with addr.path"),
            (["--nbd-server", f"addr.type=unix,addr.path={d('s')}", "--export",
              "type=nbd,id=e0,node-name=zz"], "zz"),
            (["--nbd-server", f"addr.type=unix,addr.path={d('s')}", "--export",
              "type=nbd,id=e0,node-name=d0,bitmaps.0=nope"], "Bitmap 'nope' is not found"),
            (["--nbd-server", f"addr.type=unix,addr.path={d('s')}", "--export",
              "type=nbd,id=e0,node-name=d0,bogus=1"], "bogus"),
        ]
        for extra, want in cases:
            p = subprocess.run([vtest.binary("vireo-storage-daemon")] + nodes(img) + extra,
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 1 and want in p.stderr, (extra, p.returncode, p.stderr)


def named_nodes(binary, img, qmp_sock):
    """query-named-block-nodes of a daemon (vireo's or QEMU's) given the
    same --blockdev options, with a persistent bitmap in the image."""
    p = subprocess.Popen([binary] + nodes(img) + [
        "--chardev", f"socket,id=m0,path={qmp_sock},server=on,wait=off", "--monitor", "m0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_path(qmp_sock)
        q = vmm.QMP.unix(qmp_sock)
        out = ok(q, "query-named-block-nodes")
        q.close()
    finally:
        p.terminate()
        p.wait(20)
    return out


def same_members(mine, theirs, path="", skip=("actual-size", "file", "filename"),
                 absent=()):
    """Every member QEMU gives, vireo gives with the same value (and no
    more), but those named in @absent, which vireo does not give yet."""
    if isinstance(theirs, dict):
        assert isinstance(mine, dict), (path, mine)
        assert set(mine) == set(theirs) - set(absent), \
            f"{path}: vireo {sorted(mine)} qemu-storage-daemon {sorted(theirs)}"
        for k in theirs:
            if k not in skip and k not in absent:
                same_members(mine[k], theirs[k], f"{path}.{k}", skip, absent)
    elif isinstance(theirs, list):
        assert isinstance(mine, list) and len(mine) == len(theirs), (path, mine, theirs)
        for i, (m, t) in enumerate(zip(mine, theirs)):
            same_members(m, t, f"{path}[{i}]", skip, absent)
    else:
        assert mine == theirs, f"{path}: vireo {mine!r} qemu-storage-daemon {theirs!r}"


def crash_with_bitmaps_loaded(d, img):
    """qemu-storage-daemon opens the image (its bitmaps go in use on disk)
    and is killed: they are left in_use, as after a crash."""
    sock = d("crash.sock")
    p = subprocess.Popen(["qemu-storage-daemon"] + nodes(img) + [
        "--chardev", f"socket,id=m0,path={sock},server=on,wait=off", "--monitor", "m0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_path(sock)
        vmm.QMP.unix(sock).close()      # answering: the image is open
    finally:
        p.kill()
        p.wait(20)
    os.unlink(sock)


def test_named_block_nodes_like_qemu_storage_daemon():
    """The same image given to both daemons: no bitmaps; a recording and a
    disabled persistent bitmap; bits set by qemu-io's writes; bitmaps left
    in use by a killed daemon (inconsistent)."""
    need("qemu-img", "qemu-io", "qemu-storage-daemon")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        for case in ("none", "bitmaps", "written", "crashed"):
            if case == "bitmaps":
                run("qemu-img", "bitmap", "--add", "-g", "128K", img, "b0")
                run("qemu-img", "bitmap", "--add", "--disable", img, "b1")
            elif case == "written":
                # QEMU's block layer marks the enabled b0 and stores it at close
                run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 5M 100k",
                    "-c", "write -P 0x12 20M 300k", img)
            elif case == "crashed":
                crash_with_bitmaps_loaded(d, img)
            ref = d("ref.qcow2")
            shutil.copy(img, ref)
            mine = named_nodes(vtest.binary("vireo-storage-daemon"), img, d(f"v{case}.sock"))
            theirs = named_nodes("qemu-storage-daemon", ref, d(f"q{case}.sock"))
            # The image's bitmap flags too: both list their own in-use marker.
            same_members(mine, theirs)
            top = [n for n in mine if n["node-name"] == "d0"][0]
            bms = {b["name"]: b for b in top.get("dirty-bitmaps", [])}
            if case == "none":
                assert "dirty-bitmaps" not in top, top
            elif case == "crashed":
                # never trusted, never recording, until removed
                assert all(b.get("inconsistent") is True and not b["recording"]
                           for b in bms.values()) and set(bms) == {"b0", "b1"}, bms
            else:
                assert set(bms) == {"b0", "b1"}, top
                assert bms["b0"]["recording"] and not bms["b1"]["recording"], bms
                assert not any("inconsistent" in b for b in bms.values()), bms
            if case == "written":
                # 5M..5M+100k is one 128 KiB granule, 20M..20M+300k three
                assert bms["b0"]["count"] == 4 * 131072 and bms["b1"]["count"] == 0, bms
            spec = top["image"]["format-specific"]
            assert spec["type"] == "qcow2" and len(spec["data"].get("bitmaps", [])) == \
                (0 if case == "none" else 2), spec
            # both daemons leave the image as they found it
            run("qemu-img", "check", img)


def blockstats(binary, d, img, raw, tag):
    """query-blockstats of a daemon exporting a qcow2 and a raw node, after
    the same writes, write-zeroes and discards through NBD."""
    sock, qsock = d(f"{tag}-nbd.sock"), d(f"{tag}-qmp.sock")
    p = subprocess.Popen([binary] + nodes(img) + [
        "--blockdev", f"driver=file,node-name=f1,filename={raw},discard=unmap",
        "--blockdev", "driver=raw,node-name=r0,file=f1,discard=unmap",
        "--nbd-server", f"addr.type=unix,addr.path={sock}",
        "--export", "type=nbd,id=e0,node-name=d0,name=disk,writable=on",
        "--export", "type=nbd,id=e1,node-name=r0,name=raw,writable=on",
        "--chardev", f"socket,id=m0,path={qsock},server=on,wait=off", "--monitor", "m0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_path(sock)
        wait_path(qsock)
        # whole new clusters in the qcow2 image: see the note below
        run("qemu-io", "-f", "raw", "-c", "write -P 0x11 5M 64k", "-c", "write -P 0x22 320k 64k",
            "-c", "write -z 40M 1M", uri(sock, "disk"))
        run("qemu-io", "-f", "raw", "-c", "write -P 0x11 5M 64k", "-c", "write -P 0x22 300k 4k",
            "-c", "write -z 40M 1M", "-c", "discard 8M 1M", uri(sock, "raw"))
        q = vmm.QMP.unix(qsock)
        out = ok(q, "query-blockstats", **{"query-nodes": True}), ok(q, "query-blockstats")
        q.close()
    finally:
        p.terminate()
        p.wait(20)
    return out


def test_blockstats_like_qemu_storage_daemon():
    """query-blockstats per node: every member as qemu-storage-daemon gives
    it, wr_highest_offset of the formats and of their files included.
    (A write filling part of a new qcow2 cluster still differs at the file
    node: QEMU writes zeroes over the rest of the cluster, vireo leaves
    that to the fallocated space, so its highest write ends sooner.)"""
    need("qemu-io", "qemu-storage-daemon")
    with Dir() as d:
        img, ref = d("d.qcow2"), d("ref.qcow2")
        make_qcow2(img)
        shutil.copy(img, ref)
        run("qemu-img", "create", "-q", "-f", "raw", d("d.raw"), "64M")
        run("qemu-img", "create", "-q", "-f", "raw", d("ref.raw"), "64M")
        mine = blockstats(vtest.binary("vireo-storage-daemon"), d, img, d("d.raw"), "v")
        theirs = blockstats("qemu-storage-daemon", d, ref, d("ref.raw"), "q")
        same_members(mine, theirs, skip=())
        by_node = {s["node-name"]: s["stats"]["wr_highest_offset"] for s in mine[0]}
        assert by_node["r0"] == by_node["f1"] == (41 << 20), by_node
        assert by_node["d0"] == (41 << 20) and by_node["f0"] == os.path.getsize(img), by_node
        assert mine[1] == [], mine[1]


def allocated_after_trim(binary, d, raw, discard, tag):
    """Bytes the raw image holds after an NBD trim of 2 of its 4 MiB of data."""
    sock = d(f"{tag}.sock")
    opt = ",discard=unmap" if discard else ""
    p = subprocess.Popen([binary,
                          "--blockdev", f"driver=file,node-name=f1,filename={raw}{opt}",
                          "--blockdev", f"driver=raw,node-name=r0,file=f1{opt}",
                          "--nbd-server", f"addr.type=unix,addr.path={sock}",
                          "--export", "type=nbd,id=e1,node-name=r0,name=raw,writable=on"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_path(sock)
        r = run("qemu-io", "-f", "raw", "-c", "discard 0 2M", uri(sock, "raw"))
        assert "discard 2097152/2097152" in r.stdout, r.stdout
    finally:
        p.terminate()
        p.wait(20)
    return os.stat(raw).st_blocks * 512


def test_trim_follows_the_nodes_discard_option():
    """A trim reaches the image only through nodes with discard=unmap, as
    with qemu-storage-daemon (the default, ignore, drops it)."""
    need("qemu-io", "qemu-storage-daemon")
    with Dir() as d:
        got = {}
        for binary in (vtest.binary("vireo-storage-daemon"), "qemu-storage-daemon"):
            for discard in (False, True):
                raw = d("t.raw")
                run("qemu-img", "create", "-q", "-f", "raw", raw, "16M")
                run("qemu-io", "-f", "raw", "-c", "write -P 0x33 0 4M", raw)
                got[binary, discard] = allocated_after_trim(binary, d, raw, discard,
                                                            f"{len(got)}")
        mine = [got[b, x] for b, x in got if b != "qemu-storage-daemon"]
        theirs = [got[b, x] for b, x in got if b == "qemu-storage-daemon"]
        assert mine == theirs, (mine, theirs)
        assert mine[0] >= 4 << 20 and mine[1] <= 2 << 20, mine


vtest.main()
