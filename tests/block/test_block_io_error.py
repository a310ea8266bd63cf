#!/usr/bin/env python3
"""werror=/rerror= on virtio-blk with BLOCK_IO_ERROR: the image sits on
a small tmpfs made for the test, so guest writes that need new pages fail
with ENOSPC for real. The default (werror=enospc) and werror=stop stop the
VM with the event until `cont` retries, once room was made; report fails
the guest's request, ignore completes it; bad values get QEMU's message.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))
import vmm  # noqa: E402
import vtest  # noqa: E402
from test_virtio_qtest import Blk  # noqa: E402

TMP = tempfile.mkdtemp(prefix="vireo-ioerr-")
MNT = os.path.join(TMP, "small")
RAW = os.path.join(MNT, "r.raw")
FILLER = os.path.join(MNT, "filler")
MOUNTED = False


def setup():
    global MOUNTED
    if os.geteuid() != 0:
        vtest.skip("mounting the small tmpfs needs root")
    os.mkdir(MNT)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", MNT], check=True)
    MOUNTED = True


def fresh_image():
    """A sparse 4 MiB image on a full file system: the first new page fails."""
    for p in (RAW, FILLER):
        if os.path.exists(p):
            os.unlink(p)
    with open(RAW, "wb") as f:
        f.write(b"\x11" * 4096)
        f.truncate(4 << 20)
    fd = os.open(FILLER, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\1" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def start(policy):
    fresh_image()
    return vmm.Vireo("-drive", f"file={RAW},format=raw,if=none,id=d0{policy}",
                     "-device", "virtio-blk-pci,drive=d0", qtest=True)


SECTOR = 2048       # 1 MiB into the image: a hole


def write_hole(b, wait=True):
    if wait:
        return b.request(1, SECTOR, out=b"\x44" * 4096)[0]
    qt = b.v.qtest
    qt.memwrite(b.hdr, struct.pack("<IIQ", 1, 0, SECTOR))
    qt.writeb(b.st, 0xee)
    qt.memwrite(b.data, b"\x44" * 4096)
    b.vq.add_chain([(b.hdr, 16, False), (b.data, 4096, False), (b.st, 1, True)])
    b.vq.kick()
    return None


def test_report_and_ignore():
    for policy, status, action in ((",werror=report", 1, "report"),
                                   (",werror=ignore", 0, "ignore")):
        with start(policy) as v:
            qmp = v.qmp()
            b = Blk(v)
            assert b.request(1, 0, out=b"\x22" * 4096)[0] == 0     # an allocated page
            assert write_hole(b) == status, policy
            ev = qmp.wait_event("BLOCK_IO_ERROR")["data"]
            node = qmp.cmd("query-block")[0]["inserted"]["node-name"]
            assert ev == {"device": "d0", "node-name": node, "operation": "write",
                          "action": action, "nospace": True,
                          "reason": "No space left on device"}, ev
            assert qmp.cmd("query-status")["status"] == "running"
            assert qmp.cmd("query-block")[0]["io-status"] == "ok"
            st = qmp.cmd("query-blockstats")[0]["stats"]
            assert st["failed_wr_operations"] == (1 if action == "report" else 0), st


def test_enospc_stops_and_cont_retries():
    for policy in ("", ",werror=stop"):     # the default is enospc
        with start(policy) as v:
            qmp = v.qmp()
            b = Blk(v)
            write_hole(b, wait=False)
            ev = qmp.wait_event("BLOCK_IO_ERROR")["data"]
            assert ev["action"] == "stop" and ev["nospace"] is True, ev
            qmp.wait_event("STOP")
            assert qmp.cmd("query-status")["status"] == "io-error"
            assert qmp.cmd("query-block")[0]["io-status"] == "nospace"
            time.sleep(0.2)
            assert b.vq.used_idx() == 0, "a stopped request must not complete"
            os.unlink(FILLER)               # the administrator makes room
            qmp.cmd("cont")
            b.vq.wait_used()
            assert v.qtest.readb(b.st) == 0, "the retried write must succeed"
            assert qmp.cmd("query-status")["status"] == "running"
            assert qmp.cmd("query-block")[0]["io-status"] == "ok"
        with open(RAW, "rb") as f:
            f.seek(SECTOR * 512)
            assert f.read(4096) == b"\x44" * 4096


def test_bad_policy_values_match_qemu():
    qemu = shutil.which("qemu-system-x86_64")
    for opt in ("werror=bogus", "rerror=bogus"):
        out = []
        fresh_image()
        for cmd in ([qemu, "-M", "pc"], [vtest.binary("vireo"), "-accel", "qtest"]):
            r = subprocess.run(cmd + ["-nodefaults", "-S", "-display", "none", "-drive",
                                      f"file={RAW},format=raw,if=none,id=d0,{opt}",
                                      "-device", "virtio-blk-pci,drive=d0"],
                               capture_output=True, text=True, timeout=30)
            out.append((r.returncode, r.stderr.strip().split(": ")[-1]))
        assert out[0] == out[1], out


if __name__ == "__main__":
    try:
        setup()
        vtest.main()
    except vtest.Skip as e:
        print(f"skip: {e}")
        print("0 passed, 0 failed")
    finally:
        if MOUNTED:
            subprocess.run(["umount", MNT])
        shutil.rmtree(TMP, ignore_errors=True)
