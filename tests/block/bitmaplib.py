"""Helpers for the dirty bitmap tests: vireo and QEMU 7.2 side by side on
the same -blockdev, and a small legacy virtio-blk driver over the qtest
protocol, so that both VMMs receive the same guest writes without a guest.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
QEMU_IMG = shutil.which("qemu-img")


def blockdev_args(img, discard="unmap", cache_direct=False):
    f = f"driver=file,node-name=file0,filename={img}"
    if cache_direct:
        f += ",cache.direct=on"
    return ["-blockdev", f,
            "-blockdev", f"driver=qcow2,node-name=disk0,file=file0,discard={discard}",
            "-device", "virtio-blk-pci,drive=disk0,id=vd0"]


class Qemu:
    """QEMU 7.2 paused under TCG with a qtest socket (Debian has no qtest
    accelerator; -S keeps the vCPU stopped), with QMP."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="qemu-bm-")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        qpath = os.path.join(self.dir, "qtest.sock")
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(qpath)
        lst.listen(1)
        lst.settimeout(60)
        self.proc = subprocess.Popen(
            [QEMU, "-M", "pc", "-nodefaults", "-display", "none", "-m", "64M",
             "-accel", "tcg", "-S", "-qtest", f"unix:{qpath}",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            conn, _ = lst.accept()
        finally:
            lst.close()
        self.qtest = vmm.Qtest(conn)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("QEMU did not start: " + self.proc.stderr.read().decode())
            time.sleep(0.02)
        self.mon = vmm.QMP.unix(self.qmp_path)

    def quit(self):
        self.mon.execute("quit")
        self.proc.wait(60)
        self.close()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Vireo:
    """vireo under its qtest accelerator, with QMP."""

    def __init__(self, *args):
        self.v = vmm.Vireo("-m", "64M", *args, qtest=True)
        self.qtest = self.v.qtest
        self.mon = self.v.qmp()
        self.proc = self.v.proc

    def quit(self):
        self.mon.execute("quit")
        rc = self.v.wait(60)
        self.v.close()
        assert rc == 0, self.v.stderr

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.v.close()

    def close(self):
        self.v.close()


def run(mon, command, **args):
    """Send one command; the reply, as a plain dict."""
    mon.send_raw(json.dumps({"execute": command, "arguments": args}) + "\n")
    return mon.reply()


def bitmaps(mon, node="disk0"):
    """The dirty-bitmaps member of @node in query-named-block-nodes."""
    for n in run(mon, "query-named-block-nodes")["return"]:
        if n["node-name"] == node:
            return n.get("dirty-bitmaps", [])
    raise AssertionError(f"no node {node}")


def sha256(mon, name, node="disk0"):
    r = run(mon, "x-debug-block-dirty-bitmap-sha256", node=node, name=name)
    assert "return" in r, r
    return r["return"]["sha256"]


# ---- a legacy virtio-blk driver over qtest ----

VIRTIO_VENDOR = 0x1af4
BLK_LEGACY_ID = 0x1001
IO_BASE = 0xc000
RING = 0x100000         # guest-physical addresses inside -m 64M
HDR = 0x200000
DATA = 0x300000
STATUS = 0x3f0000
T_IN, T_OUT, T_DISCARD, T_WRITE_ZEROES = 0, 1, 11, 13
F_DISCARD, F_WRITE_ZEROES = 13, 14


class VirtioBlk:
    """Drives the first virtio-blk-pci function through its legacy I/O BAR."""

    def __init__(self, qt):
        self.q = qt
        self.dev = self._find()
        self._cfg_write(0x10, IO_BASE | 1)
        self._cfg_write(0x04, 0x5)                  # I/O space, bus master
        self.q.outb(IO_BASE + 18, 0)                # reset
        self.q.outb(IO_BASE + 18, 1 | 2)            # ACKNOWLEDGE | DRIVER
        host = self.q.inl(IO_BASE + 0)
        want = host & ((1 << F_DISCARD) | (1 << F_WRITE_ZEROES))
        self.q.outl(IO_BASE + 4, want)
        self.q.outw(IO_BASE + 14, 0)                # queue 0
        self.n = self.q.inw(IO_BASE + 12)
        assert self.n, "queue 0 has no size"
        self.q.ok(f"memset 0x{RING:x} 0x10000 0x00")
        self.q.outl(IO_BASE + 8, RING >> 12)
        self.q.outb(IO_BASE + 18, 1 | 2 | 4)        # DRIVER_OK
        self.avail = RING + 16 * self.n
        used = self.avail + 6 + 2 * self.n
        self.used = (used + 4095) & ~4095
        self.idx = 0

    def _addr(self, dev, reg):
        return 0x80000000 | dev << 11 | reg

    def _cfg_read(self, reg, dev=None):
        self.q.outl(0xcf8, self._addr(self.dev if dev is None else dev, reg))
        return self.q.inl(0xcfc)

    def _cfg_write(self, reg, v):
        self.q.outl(0xcf8, self._addr(self.dev, reg))
        self.q.outl(0xcfc, v)

    def _find(self):
        for dev in range(32):
            if self._cfg_read(0, dev) == BLK_LEGACY_ID << 16 | VIRTIO_VENDOR:
                return dev
        raise AssertionError("no transitional virtio-blk-pci device")

    def request(self, rtype, sector, data=b"", payload_out=True, timeout=30):
        """One request; returns the status byte (and the data read for T_IN)."""
        q = self.q
        q.memwrite(HDR, struct.pack("<IIQ", rtype, 0, sector))
        q.writeb(STATUS, 0xff)
        descs = [(HDR, 16, 1)]
        if data:
            if payload_out:
                q.memwrite(DATA, data)
            descs.append((DATA, len(data), 1 | (0 if payload_out else 2)))
        descs.append((STATUS, 1, 2))
        table = b""
        for i, (addr, ln, flags) in enumerate(descs):
            nxt = i + 1 if flags & 1 else 0
            table += struct.pack("<QIHH", addr, ln, flags, nxt)
        q.memwrite(RING, table)
        slot = self.idx % self.n
        q.writew(self.avail + 4 + 2 * slot, 0)
        self.idx += 1
        q.writew(self.avail + 2, self.idx & 0xffff)
        q.outw(IO_BASE + 16, 0)
        deadline = time.monotonic() + timeout
        while q.readw(self.used + 2) != self.idx & 0xffff:
            if time.monotonic() > deadline:
                raise TimeoutError("virtio-blk request not completed")
            time.sleep(0.002)
        status = q.readb(STATUS)
        if rtype == T_IN:
            return status, q.memread(DATA, len(data))
        return status

    def write(self, offset, data):
        assert offset % 512 == 0 and len(data) % 512 == 0
        return self.request(T_OUT, offset // 512, data)

    def range_op(self, rtype, offset, length, unmap=False):
        seg = struct.pack("<QII", offset // 512, length // 512, 1 if unmap else 0)
        return self.request(rtype, 0, seg)


def guest_writes(blk):
    """A fixed mix of writes, write-zeroes and discards; each must succeed."""
    pattern = bytes(range(256)) * 16
    ops = [
        lambda: blk.write(0, pattern),                       # first 4 KiB
        lambda: blk.write(1 << 20 | 512, pattern[:1024]),    # unaligned, inside a granule
        lambda: blk.write(3 * 65536 - 512, pattern[:1024]),  # crosses a 64 KiB boundary
        lambda: blk.write((8 << 20) - 4096, pattern * 4),    # crosses 8 MiB
        lambda: blk.write((64 << 20) - 512, pattern[:512]),  # last sector of the disk
        lambda: blk.range_op(T_WRITE_ZEROES, 20 << 20, 196608),
        lambda: blk.range_op(T_DISCARD, 40 << 20, 131072),
    ]
    for op in ops:
        assert op() == 0, "request failed"
