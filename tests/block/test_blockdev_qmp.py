#!/usr/bin/env python3
"""Block nodes in the VMM: -blockdev/-drive nodes, blockdev-add/-del,
query-block, query-named-block-nodes, query-blockstats and HMP info
block/blockstats, compared with QEMU 7.2 run paused with the same command
line; permission conflicts between devices; I/O statistics counted from
virtio-blk requests driven over qtest.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))
import vmm  # noqa: E402
import vtest  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
QEMU_IMG = shutil.which("qemu-img")
TMP = tempfile.mkdtemp(prefix="vireo-blockdev-")
QCOW2 = os.path.join(TMP, "d.qcow2")
BASE = os.path.join(TMP, "base.qcow2")
TOP = os.path.join(TMP, "top.qcow2")
RAW = os.path.join(TMP, "r.raw")


def setup():
    assert QEMU and QEMU_IMG, "scripts/install-deps installs qemu-system-x86 and qemu-utils"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", QCOW2, "64M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", BASE, "32M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
                    TOP], check=True, cwd=TMP)
    with open(RAW, "wb") as f:
        f.truncate(16 << 20)


def start(args, qemu=False):
    """A paused machine: QEMU's pc board, or vireo under the qtest accelerator."""
    if qemu:
        return vmm.Vireo("-M", "pc", "-nodefaults", "-S", *args, binary=QEMU)
    return vmm.Vireo("-nodefaults", "-S", *args, qtest=True)


def norm(value):
    """Automatic node names differ by their random digits only."""
    return json.loads(re.sub(r'"#block\d+"', '"#auto"', json.dumps(value)))


def norm_text(text):
    return re.sub(r"#block\d+", "#auto", text).replace("\r\n", "\n")


def both(args, fn):
    """Run fn(qmp) on QEMU, then on vireo (one at a time: the images are locked)."""
    out = []
    for qemu in (True, False):
        with start(args, qemu) as v:
            out.append(fn(v.qmp()))
    return out


ARGS = ["-blockdev", f"driver=file,node-name=f0,filename={QCOW2}",
        "-blockdev", "driver=qcow2,node-name=disk0,file=f0",
        "-device", "virtio-blk-pci,drive=disk0,id=vd0",
        "-drive", f"file={RAW},format=raw,if=none,id=drive1",
        "-device", "virtio-blk-pci,drive=drive1",
        "-drive", f"file={TOP},if=none,id=drive2,cache=writethrough,node-name=top2"]

QUERIES = [("query-block", {}), ("query-named-block-nodes", {}),
           ("query-named-block-nodes", {"flat": True}), ("query-blockstats", {}),
           ("query-blockstats", {"query-nodes": True})]


def assert_same(name, q, v):
    if q != v:
        for i, (a, b) in enumerate(zip(q, v)):
            if a != b:
                raise AssertionError(f"{name}[{i}] differs:\nQEMU  {json.dumps(a, sort_keys=True)}\n"
                                     f"vireo {json.dumps(b, sort_keys=True)}")
        raise AssertionError(f"{name}: {len(q)} entries from QEMU, {len(v)} from vireo")


def test_queries_match_qemu():
    def run(qmp):
        return [norm(qmp.cmd(c, **a)) for c, a in QUERIES]
    q, v = both(ARGS, run)
    for (c, a), qa, va in zip(QUERIES, q, v):
        assert_same(f"{c} {a}", qa, va)


def test_hmp_matches_qemu():
    def run(qmp):
        return [norm_text(qmp.hmp(line)) for line in
                ("info block", "info blockstats", "info block -n", "info block drive1",
                 "info block disk0")]
    q, v = both(ARGS, run)
    assert q == v, f"QEMU:\n{q}\nvireo:\n{v}"


def error_of(qmp, cmd, **args):
    r = qmp.execute(cmd, **args)
    assert "error" in r, (cmd, args, r)
    return r["error"]["class"], r["error"]["desc"]


def test_blockdev_add_del_matches_qemu():
    def run(qmp):
        out = []
        raw2 = os.path.join(TMP, "r2.raw")
        with open(raw2, "wb") as f:
            f.truncate(1 << 20)
        out.append(qmp.execute("blockdev-add", driver="file", **{"node-name": "n1"},
                               filename=raw2))
        out.append(qmp.execute("blockdev-add", driver="raw", **{"node-name": "n2"}, file="n1"))
        out.append(qmp.execute("blockdev-add", driver="qcow2", **{"node-name": "n3"},
                               file={"driver": "file", "filename": BASE}, backing=None,
                               **{"read-only": True}))
        names = [n["node-name"] for n in qmp.cmd("query-named-block-nodes")]
        out.append([norm(n) for n in names])
        for cmd, a in [
                ("blockdev-add", {"driver": "file", "node-name": "n1", "filename": raw2}),
                ("blockdev-add", {"driver": "file", "filename": raw2}),
                ("blockdev-add", {"driver": "file", "node-name": "x",
                                  "filename": os.path.join(TMP, "missing")}),
                ("blockdev-add", {"driver": "raw", "node-name": "x", "file": "nope"}),
                ("blockdev-add", {"driver": "file", "node-name": "x", "filename": raw2,
                                  "aio": "native"}),
                ("blockdev-del", {"node-name": "nope"}),
                ("blockdev-del", {"node-name": "n1"}),       # the file of n2
                ("blockdev-del", {"node-name": "disk0"}),    # a device uses it
                ("blockdev-del", {"node-name": "f0"}),
                ]:
            out.append((cmd, error_of(qmp, cmd, **a)))
        out.append(qmp.execute("blockdev-del", **{"node-name": "n3"}))
        out.append(qmp.execute("blockdev-del", **{"node-name": "n2"}))
        out.append(qmp.execute("blockdev-del", **{"node-name": "n1"}))
        out.append(norm([n["node-name"] for n in qmp.cmd("query-named-block-nodes")]))
        return out
    q, v = both(ARGS[:6], run)
    for a, b in zip(q, v):
        assert a == b, f"QEMU {a}\nvireo {b}"


def conflict(args, qemu):
    cmd = ([QEMU, "-M", "pc"] if qemu else [vtest.binary("vireo"), "-accel", "qtest"]) + \
        ["-nodefaults", "-S", "-display", "none"] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, ""
    return p.returncode, err


def test_two_writers_conflict_as_in_qemu():
    base = ["-blockdev", f"driver=file,node-name=f0,filename={QCOW2}",
            "-blockdev", "driver=qcow2,node-name=disk0,file=f0"]
    cases = [
        base + ["-device", "virtio-blk-pci,drive=disk0,id=vd0",
                "-device", "virtio-blk-pci,drive=disk0,id=vd1"],
        base + ["-device", "virtio-blk-pci,drive=disk0,id=vd0,share-rw=on",
                "-device", "virtio-blk-pci,drive=disk0,id=vd1"],
        ["-drive", f"file={RAW},format=raw,if=none,id=d0",
         "-device", "virtio-blk-pci,drive=d0", "-device", "virtio-blk-pci,drive=d0"],
        ["-blockdev", f"driver=file,node-name=f0,filename={QCOW2}",
         "-blockdev", "driver=qcow2,node-name=disk0,file=f0",
         "-blockdev", "driver=qcow2,node-name=disk1,file=f0"],
    ]
    for args in cases:
        rq, eq = conflict(args, True)
        rv, ev = conflict(args, False)
        assert rq == 1 and rv == 1, (args, rq, eq, rv, ev)
        # QEMU: "qemu-system-x86_64: -device ...: MESSAGE"; vireo: "vireo: -device ...: MESSAGE"
        mq = eq.strip().split(": ", 2)[-1]
        mv = ev.strip().split(": ", 2)[-1]
        assert mq == mv, f"QEMU: {eq}\nvireo: {ev}"
    # Both sharing writes: allowed.
    args = base + ["-device", "virtio-blk-pci,drive=disk0,id=vd0,share-rw=on",
                   "-device", "virtio-blk-pci,drive=disk0,id=vd1,share-rw=on"]
    with start(args) as v:
        devs = [b["qdev"] for b in v.qmp().cmd("query-block")]
        assert devs == ["/machine/peripheral/vd0/virtio-backend",
                        "/machine/peripheral/vd1/virtio-backend"], devs


def test_explicit_backing_node():
    """backing=NODE, as libvirt writes every chain: same queries as QEMU, reads reach the base."""
    bb, bt = os.path.join(TMP, "bb.qcow2"), os.path.join(TMP, "bt.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", bb, "32M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5b 0 64k", bb], check=True, capture_output=True)
    for recorded in (bb, "bb.qcow2"):   # as the image records it: absolute, relative
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", recorded, "-F", "qcow2",
                        bt], check=True, cwd=TMP)
        explicit_backing(bb, bt)


def explicit_backing(bb, bt):
    args = ["-blockdev", f"driver=file,node-name=bf,filename={bb},read-only=on",
            "-blockdev", "driver=qcow2,node-name=base,file=bf,read-only=on",
            "-blockdev", json.dumps({"driver": "qcow2", "node-name": "top", "backing": "base",
                                     "file": {"driver": "file", "filename": bt}}),
            "-device", "virtio-blk-pci,drive=top"]

    def run(qmp):
        out = [norm(qmp.cmd(c, **a)) for c, a in QUERIES]
        out.append(error_of(qmp, "blockdev-del", **{"node-name": "base"}))
        out.append(norm_text(qmp.hmp("info block")))
        out.append(subprocess.run(["qemu-io", "-c", "write 0 4k", bb], capture_output=True,
                                  text=True).stderr.splitlines()[0])
        return out
    q, v = both(args, run)
    for (name, a, b) in zip([c for c, _ in QUERIES] + ["blockdev-del", "info block", "qemu-io"],
                            q, v):
        assert_same(name, a, b) if isinstance(a, list) else None
        assert a == b, f"{name}:\nQEMU  {a}\nvireo {b}"
    from test_virtio_qtest import Blk
    with start(args) as vm:
        vm.qmp()
        st, _, data = Blk(vm).request(0, 0, in_len=4096)
        assert st == 0 and data == b"\x5b" * 4096


def test_blockdev_option_errors_match_qemu():
    for arg in ["driver=foo,node-name=x", "driver=file,node-name=x",
                f"driver=file,node-name=x,filename={QCOW2},bogus=1",
                f"driver=file,node-name=1x,filename={QCOW2}", "driver=qcow2,node-name=x",
                f"driver=file,node-name=x,filename={QCOW2},aio=foo",
                f"driver=file,node-name=x,filename={QCOW2},aio=native",
                f"driver=file,node-name=x,filename={QCOW2},read-only=maybe",
                f"driver=raw,node-name=x,file.driver=file,file.filename={RAW},detect-zeroes=unmap",
                f"driver=file,filename={QCOW2}",
                f"driver=file,node-name=x,filename={os.path.join(TMP, 'missing')}",
                '{"driver": "raw", "node-name": "x", "file": {"driver": "file", "filename": "%s"},'
                ' "discard": "unmap", "detect-zeroes": "unmap", "read-only": true}' % RAW]:
        rq, eq = conflict(["-blockdev", arg], True)
        rv, ev = conflict(["-blockdev", arg], False)
        mq = eq.strip().split(": ", 2)[-1] if rq else ""
        mv = ev.strip().split(": ", 2)[-1] if rv else ""
        assert (rq, mq) == (rv, mv), f"-blockdev {arg}\nQEMU:  {rq} {eq}\nvireo: {rv} {ev}"


def test_blockdev_json_and_nested_file():
    spec = {"driver": "qcow2", "node-name": "disk0",
            "file": {"driver": "file", "filename": QCOW2, "aio": "threads",
                     "cache": {"direct": False, "no-flush": True}},
            "discard": "unmap", "detect-zeroes": "unmap"}
    with start(["-blockdev", json.dumps(spec),
                "-device", "virtio-blk-pci,drive=disk0"]) as v:
        qmp = v.qmp()
        nodes = qmp.cmd("query-named-block-nodes")
        assert [n["drv"] for n in nodes] == ["qcow2", "file"], nodes
        assert nodes[0]["node-name"] == "disk0" and nodes[1]["node-name"].startswith("#block")
        assert nodes[0]["detect_zeroes"] == "unmap"
        assert nodes[0]["cache"] == {"writeback": True, "direct": False, "no-flush": True}
        blk = qmp.cmd("query-block")
        assert blk[0]["device"] == "" and blk[0]["inserted"]["node-name"] == "disk0"
    r = vmm.run("-accel", "qtest", "-nodefaults", "-display", "none", "-blockdev", "{bad json")
    assert r[0] == 1 and "JSON" in r[2], r


def test_storage_daemon_json_blockdev():
    """The daemon's --blockdev takes JSON too and makes the same nodes qemu-storage-daemon does."""
    spec = json.dumps({"driver": "qcow2", "node-name": "disk0",
                       "file": {"driver": "file", "filename": QCOW2}})
    out = []
    for prog in (shutil.which("qemu-storage-daemon"), vtest.binary("vireo-storage-daemon")):
        sock = os.path.join(TMP, "sd.sock")
        d = subprocess.Popen([prog, "--blockdev", spec, "--chardev",
                              f"socket,id=m0,path={sock},server=on,wait=off", "--monitor", "m0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(sock):
                assert d.poll() is None, d.stderr.read()
                assert time.monotonic() < deadline, f"{prog}: no monitor socket"
                time.sleep(0.02)
            qmp = vmm.QMP.unix(sock)
            out.append(norm([(n["node-name"], n["drv"], n["ro"], n["file"])
                             for n in qmp.cmd("query-named-block-nodes")]))
            qmp.close()
        finally:
            d.terminate()
            d.wait(20)
            if os.path.exists(sock):
                os.unlink(sock)
    assert out[0] == out[1], out


def test_blockstats_count_virtio_blk_io():
    from test_virtio_qtest import Blk
    with open(RAW, "r+b") as f:
        f.write(b"\x11" * 8192)
    with start(["-drive", f"file={RAW},format=raw,if=none,id=d0",
                "-device", "virtio-blk-pci,drive=d0"]) as v:
        qmp = v.qmp()
        b = Blk(v)
        assert b.request(0, 0, in_len=4096)[0] == 0              # read 4 KiB
        assert b.request(0, 8, in_len=512)[0] == 0               # read 512
        assert b.request(1, 64, out=b"\x22" * 8192)[0] == 0      # write 8 KiB at 32 KiB
        assert b.request(4, 0)[0] == 0                           # flush
        assert b.request(0, (16 << 20) // 512, in_len=512)[0] == 1   # past the end
        seg = b"".join([(100).to_bytes(8, "little"), (8).to_bytes(4, "little"), bytes(4)])
        assert b.request(11, 0, out=seg)[0] == 0                 # discard 4 KiB
        s = qmp.cmd("query-blockstats")[0]
        st = s["stats"]
        assert s["device"] == "d0" and s["qdev"].endswith("/virtio-backend"), s
        assert (st["rd_operations"], st["rd_bytes"]) == (2, 4608), st
        assert (st["wr_operations"], st["wr_bytes"]) == (1, 8192), st
        assert st["flush_operations"] == 1 and st["invalid_rd_operations"] == 1, st
        assert (st["unmap_operations"], st["unmap_bytes"]) == (1, 4096), st
        assert st["wr_highest_offset"] == 64 * 512 + 8192, st
        assert st["rd_total_time_ns"] > 0 and st["wr_total_time_ns"] > 0, st
        assert st["idle_time_ns"] >= 0 and st["account_invalid"] is True, st
        assert s["parent"]["stats"]["wr_highest_offset"] == 64 * 512 + 8192, s
        assert s["parent"]["driver-specific"] == {
            "driver": "file", "discard-nb-ok": 1, "discard-nb-failed": 0,
            "discard-bytes-ok": 4096}, s
        nodes = qmp.cmd("query-blockstats", **{"query-nodes": True})
        assert [n["stats"]["rd_operations"] for n in nodes] == [0, 0], nodes
        line = qmp.hmp("info blockstats")
        assert line.startswith("d0: rd_bytes=4608 wr_bytes=8192 rd_operations=2 "
                               "wr_operations=1 flush_operations=1 "), line


def test_write_threshold():
    from test_virtio_qtest import Blk
    args = ["-blockdev", f"driver=file,node-name=f0,filename={RAW}",
            "-blockdev", "driver=raw,node-name=d0,file=f0", "-device", "virtio-blk-pci,drive=d0"]
    q, v = both(args, lambda qmp: [error_of(qmp, "block-set-write-threshold",
                                            **{"node-name": "nope", "write-threshold": 1}),
                                   qmp.execute("block-set-write-threshold",
                                               **{"node-name": "f0", "write-threshold": 40960}),
                                   [n["write_threshold"]
                                    for n in qmp.cmd("query-named-block-nodes")]])
    assert q == v, (q, v)
    with start(args) as vm:
        qmp = vm.qmp()
        qmp.cmd("block-set-write-threshold", **{"node-name": "f0", "write-threshold": 40960})
        qmp.cmd("block-set-write-threshold", **{"node-name": "d0", "write-threshold": 1 << 20})
        b = Blk(vm)
        assert b.request(1, 64, out=b"\x33" * 8192)[0] == 0      # ends at the threshold
        assert b.request(1, 72, out=b"\x33" * 8192)[0] == 0      # 4 KiB past it
        ev = qmp.wait_event("BLOCK_WRITE_THRESHOLD")
        assert ev["data"] == {"node-name": "f0", "amount-exceeded": 4096,
                              "write-threshold": 40960}, ev
        nodes = {n["node-name"]: n["write_threshold"] for n in qmp.cmd("query-named-block-nodes")}
        assert nodes == {"d0": 1 << 20, "f0": 0}, nodes     # one shot


if __name__ == "__main__":
    try:
        setup()
        vtest.main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
