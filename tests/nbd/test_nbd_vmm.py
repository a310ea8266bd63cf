#!/usr/bin/env python3
"""vireo's NBD server with real clients: nbdinfo --list/--map (compared
with qemu-nbd on a copy of the same image), nbdcopy + qemu-img compare,
qemu-io writes through a writable export, qemu-img map of
qemu:dirty-bitmap:NAME after writes tracked by a live bitmap, and the QMP
commands' errors (compared with QEMU 7.2 where both answer)."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbdtest import Dir, del_export, err, make_qcow2, need, ok, qx, run, uri, vireo_paused, wait_path  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402


def start(q, sock, **extra):
    ok(q, "nbd-server-start", addr={"type": "unix", "data": {"path": sock}}, **extra)


def export(q, id="e0", node="n0", name="disk", **extra):
    ok(q, "block-export-add", **{"type": "nbd", "id": id, "node-name": node, "name": name},
       **extra)


def qemu_nbd_map(d, img, ctx=None, extra=()):
    """nbdinfo --map of the same image served by qemu-nbd (read-only)."""
    sock = d("q.sock")
    p = subprocess.Popen(["qemu-nbd", "-t", "-r", "-f", "qcow2", "-k", sock, "-x", "disk",
                          *extra, img], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_path(sock)
        time.sleep(0.2)
        args = ["nbdinfo", f"--map={ctx}" if ctx else "--map", uri(sock, "disk")]
        return run(*args).stdout
    finally:
        p.terminate()
        p.wait(10)


def test_list_and_map_match_qemu_nbd():
    need("nbdinfo", "qemu-nbd")
    with Dir() as d:
        img, ref = d("d.qcow2"), d("ref.qcow2")
        make_qcow2(img, writes=(("0xab", "1M", "2M"), ("0x11", "20M", "64k")))
        shutil.copy(img, ref)
        want = qemu_nbd_map(d, ref)
        want_depth = qemu_nbd_map(d, ref, "qemu:allocation-depth", ("-A",))
        with vireo_paused(img) as v:
            q = v.qmp()
            sock = d("v.sock")
            start(q, sock)
            export(q, description="the test disk", **{"allocation-depth": True})
            out = run("nbdinfo", "--list", f"nbd+unix:///?socket={sock}").stdout
            assert 'export="disk"' in out and "the test disk" in out, out
            assert "export-size: 67108864" in out, out
            assert "base:allocation" in out and "qemu:allocation-depth" in out, out
            got = run("nbdinfo", "--map", uri(sock, "disk")).stdout
            assert got == want, f"vireo:\n{got}\nqemu-nbd:\n{want}"
            got = run("nbdinfo", "--map=qemu:allocation-depth", uri(sock, "disk")).stdout
            assert got == want_depth, f"vireo:\n{got}\nqemu-nbd:\n{want_depth}"
            info = run("nbdinfo", uri(sock, "disk")).stdout
            assert "is_read_only: true" in info and "can_df: true" in info, info
            assert ok(q, "query-block-exports")[0]["id"] == "e0"


def test_nbdcopy_equals_source():
    need("nbdcopy", "qemu-img")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img, size="48M", writes=(("0x5c", "0", "3M"), ("0xee", "17M", "100k"),
                                            ("0x01", "47M", "1M")))
        ref = d("ref.qcow2")
        shutil.copy(img, ref)
        with vireo_paused(img) as v:
            q = v.qmp()
            sock = d("v.sock")
            start(q, sock)
            export(q)
            out = d("copy.raw")
            run("nbdcopy", uri(sock, "disk"), out)
            run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", out, ref)
            # qemu-img reads the export as a client too
            run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", uri(sock, "disk"), ref)


def test_qemu_io_writes_through_export():
    need("qemu-io", "qemu-img")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        # share-rw lets the device and a writable export write the node together
        with vireo_paused(img, share_rw=True) as v:
            q = v.qmp()
            sock = d("v.sock")
            start(q, sock)
            export(q, writable=True)
            u = uri(sock, "disk")
            run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 4M 256k", "-c",
                "write -z 1M 64k", "-c", "discard 2M 64k", "-c", "flush", u)
            r = run("qemu-io", "-f", "raw", "-c", "read -P 0x5a 4M 256k", "-c",
                    "read -P 0 1M 64k", "-c", "read -P 0xab 1088k 960k", u)
            assert "Pattern verification failed" not in r.stdout, r.stdout
            del_export(q, "e0")
            assert any(e["event"] == "BLOCK_EXPORT_DELETED" for e in q.events) or \
                q.wait_event("BLOCK_EXPORT_DELETED")
            ok(q, "quit")
            v.wait()
        r = run("qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 4M 256k", "-c",
                "read -P 0 1M 64k", img)
        assert "Pattern verification failed" not in r.stdout, r.stdout
        run("qemu-img", "check", img)


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_incremental_backup_with_dirty_bitmap():
    """Full copy, writes recorded by a live bitmap, the dirty extents read
    with nbdinfo/qemu-img through qemu:dirty-bitmap:b0 and copied with
    qemu-img: full backup plus increment equals the disk."""
    need("nbdinfo", "nbdcopy", "qemu-io", "qemu-img")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        full = d("full.raw")
        with vireo_paused(img, share_rw=True) as v:
            q = v.qmp()
            ok(q, "block-dirty-bitmap-add", node="n0", name="b0", persistent=True,
               granularity=65536)
            sock = d("v.sock")
            start(q, sock)
            export(q, id="f", name="full")
            run("nbdcopy", uri(sock, "full"), full)
            del_export(q, "f")
            # the guest's writes, made here through a writable export
            export(q, id="w", name="rw", writable=True)
            run("qemu-io", "-f", "raw", "-c", "write -P 0x77 5M 100k", "-c",
                "write -P 0x78 30M 64k", "-c", "write -z 1M 64k", uri(sock, "rw"))
            del_export(q, "w")
            # QEMU's rule: a read-only export takes only a disabled bitmap
            e = err(q, "block-export-add", **{"type": "nbd", "id": "b", "node-name": "n0",
                                               "name": "backup", "bitmaps": ["b0"]})
            assert e == "Enabled bitmap 'b0' incompatible with readonly export", e
            ok(q, "block-dirty-bitmap-disable", node="n0", name="b0")
            export(q, id="b", name="backup", bitmaps=["b0"])
            e = err(q, "block-dirty-bitmap-remove", node="n0", name="b0")
            assert "in use" in e, e
            m = run("nbdinfo", "--map=qemu:dirty-bitmap:b0", uri(sock, "backup")).stdout
            rows = [line.split() for line in m.splitlines()]
            dirty = [(int(r[0]), int(r[1])) for r in rows if r[3] == "dirty"]
            assert dirty == [(1 << 20, 64 << 10), (5 << 20, 128 << 10),
                             (30 << 20, 64 << 10)], m
            # qemu-img's view of the same context: dirty extents read as data=false
            j = run("qemu-img", "map", "--output=json", "--image-opts",
                    f"driver=nbd,server.type=unix,server.path={sock},export=backup,"
                    "x-dirty-bitmap=qemu:dirty-bitmap:b0").stdout
            assert '"start": 5242880, "length": 131072, "depth": 0, "present": false' in j or \
                '"start": 5242880, "length": 131072' in j, j
            # copy exactly the dirty extents, reading them with qemu-img
            for off, ln in dirty:
                piece = d(f"piece-{off}.raw")
                run("qemu-img", "convert", "-O", "raw", "--image-opts",
                    f"driver=raw,offset={off},size={ln},file.driver=nbd,"
                    f"file.server.type=unix,file.server.path={sock},file.export=backup",
                    piece)
                with open(piece, "rb") as f:
                    patch(full, off, f.read())
            del_export(q, "b")
            ok(q, "quit")
            v.wait()
        run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", full, img)


def error_sequence(q, d):
    """The same requests for vireo and QEMU 7.2; their replies, in order."""
    sock = d("s.sock")
    got = []

    def r(cmd, **args):
        x = qx(q, cmd, **args)
        got.append((cmd, x.get("error", {}).get("desc") if "error" in x else "ok"))
        return x
    r("block-export-add", **{"type": "nbd", "id": "e0", "node-name": "n0"})
    r("nbd-server-stop")
    r("nbd-server-start", addr={"type": "unix", "data": {"path": sock}})
    r("nbd-server-start", addr={"type": "unix", "data": {"path": d("x.sock")}})
    r("block-export-add", **{"type": "nbd", "id": "e0", "node-name": "nope"})
    r("block-export-add", **{"type": "nbd", "id": "e0", "node-name": "n0", "name": "disk"})
    r("block-export-add", **{"type": "nbd", "id": "e0", "node-name": "n0", "name": "other"})
    r("block-export-add", **{"type": "nbd", "id": "e1", "node-name": "n0", "name": "disk"})
    r("block-export-add", **{"type": "nbd", "id": "e2", "node-name": "n0", "name": "x",
                             "bitmaps": ["zz"]})
    r("block-export-del", id="zz")
    from nbdtest import Raw
    c = Raw(sock)
    c.go("disk")
    r("block-export-del", id="e0")
    r("block-export-del", id="e0", mode="hard")
    assert c.closed()
    r("nbd-server-add", device="n0", name="legacy")
    got.append(("query", [x["id"] for x in ok(q, "query-block-exports")]))
    r("nbd-server-remove", name="legacy")
    r("nbd-server-remove", name="legacy")
    got.append(("query", ok(q, "query-block-exports")))
    r("nbd-server-stop")
    return got


def test_qmp_errors_like_qemu():
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        with vireo_paused(img) as v:
            q = v.qmp()
            mine = error_sequence(q, d)
            assert any(e["event"] == "BLOCK_EXPORT_DELETED" for e in q.events) or \
                q.wait_event("BLOCK_EXPORT_DELETED")
            # a writable export of a disk whose device does not share writes
            ok(q, "nbd-server-start", addr={"type": "unix", "data": {"path": d("w.sock")}})
            e = err(q, "block-export-add", **{"type": "nbd", "id": "w", "node-name": "n0",
                                               "name": "w", "writable": True})
            assert e.startswith("Permission conflict on node 'n0'"), e
        assert ("block-export-add", "NBD server not running") == mine[0], mine
        assert ("block-export-del", "export 'e0' still in use") in mine, mine
        if not shutil.which("qemu-system-x86_64"):
            vtest.skip("QEMU 7.2 is not installed: compared with vireo alone")
        qsock = d("qemu-qmp.sock")
        p = subprocess.Popen(["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display",
                              "none", "-S", "-qmp", f"unix:{qsock},server=on,wait=off",
                              "-blockdev", f"driver=file,node-name=f0,filename={img}",
                              "-blockdev", "driver=qcow2,node-name=n0,file=f0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_path(qsock)
            q = vmm.QMP.unix(qsock)
            theirs = error_sequence(q, d)
            qx(q, "quit")
        finally:
            p.kill()
            p.wait()
        assert mine == theirs, "\n".join(f"{a}\n{b}" for a, b in zip(mine, theirs) if a != b)


def file_node_highest(q, sock):
    """Whole new clusters written through a writable export of n0, then
    wr_highest_offset of its file node f0 (per node and below the device)."""
    start(q, sock)
    export(q, writable=True)
    run("qemu-io", "-f", "raw", "-c", "write -P 0x11 5M 64k", "-c", "write -P 0x22 320k 64k",
        uri(sock, "disk"))
    nodes = {s["node-name"]: s for s in ok(q, "query-blockstats", **{"query-nodes": True})}
    return nodes["f0"]["stats"]["wr_highest_offset"]


def test_file_node_wr_highest_offset_like_qemu():
    """The file below a qcow2 node reports the end of the highest write it
    took (data and metadata the format wrote), as QEMU does."""
    need("qemu-io")
    with Dir() as d:
        img, ref = d("d.qcow2"), d("ref.qcow2")
        make_qcow2(img)
        shutil.copy(img, ref)
        with vireo_paused(img, share_rw=True) as v:
            mine = file_node_highest(v.qmp(), d("v.sock"))
        assert mine == os.path.getsize(img), (mine, os.path.getsize(img))
        if not shutil.which("qemu-system-x86_64"):
            vtest.skip("QEMU 7.2 is not installed: compared with the file's size alone")
        qsock = d("qemu-qmp.sock")
        p = subprocess.Popen(["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display",
                              "none", "-S", "-qmp", f"unix:{qsock},server=on,wait=off",
                              "-blockdev", f"driver=file,node-name=f0,filename={ref}",
                              "-blockdev", "driver=qcow2,node-name=n0,file=f0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_path(qsock)
            q = vmm.QMP.unix(qsock)
            theirs = file_node_highest(q, d("q.sock"))
            qx(q, "quit")
        finally:
            p.kill()
            p.wait()
        assert mine == theirs, (mine, theirs)


def trimmed(d, disk_args, node):
    """Bytes a raw image of 4 MiB of data holds after an NBD trim of 2 MiB
    through a writable export of @node."""
    raw = d("t.raw")
    run("qemu-img", "create", "-q", "-f", "raw", raw, "16M")
    run("qemu-io", "-f", "raw", "-c", "write -P 0x33 0 4M", raw)
    with vmm.Vireo("-S", *[a.replace("RAW", raw) for a in disk_args], qtest=True) as v:
        q = v.qmp()
        sock = d("t.sock")
        start(q, sock)
        ok(q, "nbd-server-add", device=node, name="disk", writable=True)   # a -drive too
        run("qemu-io", "-f", "raw", "-c", "discard 0 2M", uri(sock, "disk"))
        ok(q, "nbd-server-stop")
    return os.stat(raw).st_blocks * 512


def test_trim_follows_the_nodes_discard_option():
    """An NBD trim reaches the image only through nodes with discard=unmap
    (QEMU's rule); the default, ignore, drops it."""
    need("qemu-io")
    dev = ["-device", "virtio-blk-pci,drive=n0,share-rw=on"]
    with Dir() as d:
        blockdev = ["-blockdev", "driver=file,node-name=f0,filename=RAW{}",
                    "-blockdev", "driver=raw,node-name=n0,file=f0{}"]
        kept = trimmed(d, [a.format("") for a in blockdev] + dev, "n0")
        assert kept >= 4 << 20, kept
        gone = trimmed(d, [a.format(",discard=unmap") for a in blockdev] + dev, "n0")
        assert gone <= 2 << 20, gone
        half = trimmed(d, [blockdev[0], blockdev[1].format(""), blockdev[2],
                           blockdev[3].format(",discard=unmap")] + dev, "n0")
        assert half >= 4 << 20, f"the file node without discard=unmap passed it on: {half}"
        drive = trimmed(d, ["-drive", "file=RAW,format=raw,if=none,id=n0,discard=unmap"] +
                        dev, "n0")
        assert drive <= 2 << 20, drive


def test_tcp_and_max_connections():
    need("nbdinfo")
    with Dir() as d:
        img = d("d.qcow2")
        make_qcow2(img)
        with vireo_paused(img) as v:
            q = v.qmp()
            ok(q, "nbd-server-start", addr={"type": "inet", "data": {"host": "127.0.0.1",
                                                                     "port": "0"}},
               **{"max-connections": 1})
            ok(q, "nbd-server-stop")
            sock = d("v.sock")
            start(q, sock, **{"max-connections": 1})
            export(q)
            from nbdtest import Raw
            a = Raw(sock)
            a.go("disk")
            b = Raw(sock, timeout=1)
            # the second client waits in the backlog: no greeting while a holds the slot
            try:
                b.s.recv(1)
                raise AssertionError("a second client was served beyond max-connections")
            except OSError:
                pass
            a.close()
            b.s.settimeout(10)
            b.hello()
            b.close()


vtest.main()
