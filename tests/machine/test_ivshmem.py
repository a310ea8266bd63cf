#!/usr/bin/env python3
"""ivshmem-plain and ivshmem-doorbell over qtest (no guest CPU).

Peers meet on vireo-ivshmem-server (or, for hostile and broken servers, a
small server written here from the protocol in the ivshmem specification):
two vireo processes ring each other's MSI-X vectors and share memory through
BAR2, Debian's QEMU 7.2 joins as a peer, host memory backends reach their
memfd or file, and bad configurations and hostile servers get clear errors.
"""
import array
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
SHM_SIZE = 1 << 20
BAR0, BAR1, BAR2 = 0xfe000000, 0xfe001000, 0xe0000000
MSI_ADDR = 0x10000          # guest RAM: a delivered MSI is a visible write here
CMD_MEMORY, CMD_MASTER = 0x2, 0x4
MSIX_CAP = 0x40
MSIX_ENABLE = 0x8000
PBA = 0x800
REG_MASK, REG_STATUS, REG_IVPOSITION, REG_DOORBELL = 0, 4, 8, 12


# ---- a protocol-level server, for what the real one never sends ----

class PyServer:
    """Speaks the server side of the client protocol; `extra` messages
    (value, [fds]) follow each client's set-up."""

    def __init__(self, path, vectors=2, version=0, first_id=0, size=SHM_SIZE, extra=()):
        self.vectors, self.version, self.next_id, self.extra = vectors, version, first_id, extra
        self.shm = os.memfd_create("ivshmem-test")
        os.ftruncate(self.shm, size)
        self.peers = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    @staticmethod
    def send(c, value, fds=()):
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        c.sendmsg([struct.pack("<q", value)], anc)

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.admit(c)

    def admit(self, c):
        me, self.next_id = self.next_id, self.next_id + 1
        fds = [os.eventfd(0, os.EFD_CLOEXEC) for _ in range(self.vectors)]
        self.send(c, self.version)
        self.send(c, me)
        self.send(c, -1, [self.shm])
        for other, (oc, ofds) in self.peers.items():
            for f in fds:
                self.send(oc, me, [f])
            for f in ofds:
                self.send(c, other, [f])
        for f in fds:
            self.send(c, me, [f])
        for value, xfds in self.extra:
            self.send(c, value, xfds)
        self.peers[me] = (c, fds)
        threading.Thread(target=self.watch, args=(me, c), daemon=True).start()

    def watch(self, me, c):
        try:
            while c.recv(1):
                pass
        except OSError:
            pass
        with self.lock:
            self.peers.pop(me, None)
            for oc, _ in self.peers.values():
                try:
                    self.send(oc, me)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class RealServer:
    """vireo-ivshmem-server in the foreground."""

    def __init__(self, path, vectors=2, size=SHM_SIZE):
        self.name = f"vireo-test-{os.getpid()}-{id(self)}"
        self.proc = subprocess.Popen([vtest.binary("vireo-ivshmem-server"), "-F", "-S", path,
                                      "-M", self.name, "-l", str(size), "-n", str(vectors)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            assert time.monotonic() < deadline, "server socket did not appear"
            time.sleep(0.02)

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def server(path, **kw):
    """The real server when it is built, else the one above."""
    try:
        return RealServer(path, **kw)
    except FileNotFoundError:
        return PyServer(path, **kw)


# ---- a guest driver over qtest ----

class Ivshmem:
    """The ivshmem function of one VMM, its BARs programmed like a guest would."""

    def __init__(self, q, slot=None):
        self.q = q
        self.slot = slot if slot is not None else self.find()
        self.bar0, self.bar1, self.bar2 = BAR0, BAR1, BAR2

    def cfg_addr(self, off):
        return 0x80000000 | self.slot << 11 | (off & 0xfc)

    def cfg_read(self, off):
        self.q.outl(0xcf8, self.cfg_addr(off))
        return self.q.inl(0xcfc)

    def cfg_write(self, off, val):
        self.q.outl(0xcf8, self.cfg_addr(off))
        self.q.outl(0xcfc, val)

    def find(self):
        for slot in range(32):
            self.slot = slot
            if self.cfg_read(0) == 0x11101af4:
                return slot
        raise AssertionError("no ivshmem function")

    def config_bytes(self, n=0x50):
        return b"".join(struct.pack("<I", self.cfg_read(off)) for off in range(0, n, 4))

    def bar_size(self, bar):
        off = 0x10 + 4 * bar
        old = self.cfg_read(off)
        self.cfg_write(off, 0xffffffff)
        v = self.cfg_read(off)
        self.cfg_write(off, old)
        return v

    def enable(self, msix=True):
        self.cfg_write(0x10, self.bar0)
        if msix:
            self.cfg_write(0x14, self.bar1)
        self.cfg_write(0x18, self.bar2)
        self.cfg_write(0x1c, 0)
        self.cfg_write(0x04, CMD_MEMORY | CMD_MASTER)

    def reg(self, off):
        return self.q.readl(self.bar0 + off)

    def ring(self, peer, vector):
        self.q.writel(self.bar0 + REG_DOORBELL, peer << 16 | vector)

    def msix_enable(self, on=True):
        flags = self.cfg_read(MSIX_CAP) >> 16
        flags = flags | MSIX_ENABLE if on else flags & ~MSIX_ENABLE
        self.cfg_write(MSIX_CAP, (flags << 16) | (self.cfg_read(MSIX_CAP) & 0xffff))

    def msix_vector(self, v, addr, data, masked):
        e = self.bar1 + 16 * v
        self.q.writel(e, addr & 0xffffffff)
        self.q.writel(e + 4, addr >> 32)
        self.q.writel(e + 8, data)
        self.q.writel(e + 12, 1 if masked else 0)

    def pending(self):
        return self.q.readl(self.bar1 + PBA)


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def ring_until(ring, pred, what, timeout=10):
    """Ring repeatedly (the ringer may not know the peer yet); pending bits are sticky."""
    deadline = time.monotonic() + timeout
    while True:
        ring()
        if pred():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def eventfds(pid):
    d = f"/proc/{pid}/fd"
    n = 0
    for f in os.listdir(d):
        try:
            n += os.readlink(os.path.join(d, f)) == "anon_inode:[eventfd]"
        except OSError:
            pass
    return n


def vireo_peer(sock, vectors=2, *extra):
    return vmm.Vireo("-m", "64M", "-chardev", f"socket,id=iv,path={sock}", "-device",
                     f"ivshmem-doorbell,chardev=iv,vectors={vectors},id=shm0", *extra, qtest=True)


class QemuPeer:
    """Debian's QEMU 7.2 with ivshmem-doorbell, its vCPU stopped, driven over qtest."""

    def __init__(self, sock, tmp, vectors=2):
        path = os.path.join(tmp, "qemu-qtest.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(20)
        self.proc = subprocess.Popen(
            [QEMU, "-accel", "tcg", "-S", "-display", "none", "-nodefaults", "-M", "pc",
             "-m", "64M", "-monitor", "none", "-chardev", f"socket,id=iv,path={sock}",
             "-device", f"ivshmem-doorbell,chardev=iv,vectors={vectors}",
             "-qtest", f"unix:{path}", "-qtest-log", "/dev/null"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        conn, _ = self.listener.accept()
        self.qtest = vmm.Qtest(conn)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.listener.close()


class Tmp:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="vireo-ivshmem-")
        self.sock = os.path.join(self.dir, "ivshmem.sock")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- identity ----

def test_config_space_matches_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    with Tmp() as t:
        srv = server(t.sock)
        qemu = QemuPeer(t.sock, t.dir)
        try:
            with vireo_peer(t.sock) as v:
                mine, ref = Ivshmem(v.qtest), Ivshmem(qemu.qtest)
                assert mine.config_bytes() == ref.config_bytes(), \
                    (mine.config_bytes().hex(), ref.config_bytes().hex())
                for bar in range(6):
                    assert mine.bar_size(bar) == ref.bar_size(bar), bar
                # 1af4:1110 rev 1, class 0500, BAR2 64-bit prefetchable, MSI-X at 0x40
                b = mine.config_bytes()
                assert b[8] == 1 and b[0xa:0xc] == b"\x00\x05" and b[0x18] == 0xc
                assert b[0x34] == MSIX_CAP and b[MSIX_CAP] == 0x11
        finally:
            qemu.close()
            srv.close()


# ---- two vireo peers ----

def test_two_vireos_ring_and_share():
    with Tmp() as t:
        srv = server(t.sock)
        try:
            with vireo_peer(t.sock) as a, vireo_peer(t.sock) as b:
                da, db = Ivshmem(a.qtest), Ivshmem(b.qtest)
                da.enable()
                db.enable()
                ida, idb = da.reg(REG_IVPOSITION), db.reg(REG_IVPOSITION)
                assert ida != idb and ida <= 0xffff and idb <= 0xffff
                db.msix_enable()
                assert db.pending() == 0
                # A learns of B from a connect notification: ring until it has.
                # The vector is masked (its reset state): the pending bit is set.
                ring_until(lambda: da.ring(idb, 1), lambda: db.pending() == 0x2,
                           "B's pending bit 1")
                # Unmasking delivers it: an MSI write into B's RAM.
                db.msix_vector(1, MSI_ADDR, 0xfee1dead, masked=False)
                wait_for(lambda: b.qtest.readl(MSI_ADDR) == 0xfee1dead, "delivered MSI")
                assert db.pending() == 0
                b.qtest.writel(MSI_ADDR, 0)
                da.ring(idb, 1)
                wait_for(lambda: b.qtest.readl(MSI_ADDR) == 0xfee1dead, "second MSI")
                # MSI-X off: the interrupt is dropped, neither delivered nor pending.
                b.qtest.writel(MSI_ADDR, 0)
                db.msix_enable(False)
                da.ring(idb, 1)
                time.sleep(0.5)
                db.msix_enable()
                time.sleep(0.2)
                assert db.pending() == 0 and b.qtest.readl(MSI_ADDR) == 0
                # Unknown vector and unknown peer: ignored.
                da.ring(idb, 7)
                da.ring(0xfffe, 0)
                # Shared memory both ways through BAR2.
                data = os.urandom(256)
                a.qtest.memwrite(BAR2 + 0x1000, data)
                assert b.qtest.memread(BAR2 + 0x1000, 256) == data
                b.qtest.writeq(BAR2 + SHM_SIZE - 8, 0x1122334455667788)
                assert a.qtest.readq(BAR2 + SHM_SIZE - 8) == 0x1122334455667788
        finally:
            srv.close()


def test_peer_disconnect_forgets_the_peer():
    with Tmp() as t:
        srv = server(t.sock)
        try:
            with vireo_peer(t.sock) as a:
                da = Ivshmem(a.qtest)
                da.enable()
                alone = eventfds(a.proc.pid)
                b = vireo_peer(t.sock)
                idb = Ivshmem(b.qtest).reg(REG_IVPOSITION)
                wait_for(lambda: eventfds(a.proc.pid) == alone + 2, "B's eventfds at A")
                b.close()
                wait_for(lambda: eventfds(a.proc.pid) == alone, "A closing B's eventfds")
                da.ring(idb, 0)         # a departed peer: ignored
                da.ring(idb, 1)
                assert a.qmp().cmd("query-status")["status"] in ("running", "prelaunch")
        finally:
            srv.close()


def test_registers_reset_and_bar_moves():
    with Tmp() as t:
        srv = server(t.sock)
        try:
            with vireo_peer(t.sock) as v:
                d = Ivshmem(v.qtest)
                d.enable()
                pos = d.reg(REG_IVPOSITION)
                v.qtest.writel(BAR0 + REG_MASK, 0xffffffff)
                v.qtest.writel(BAR0 + REG_IVPOSITION, 0x1234)     # read-only
                v.qtest.writel(BAR0 + 0x80, 0x5555)               # reserved
                assert d.reg(REG_MASK) == 0xffffffff
                assert d.reg(REG_IVPOSITION) == pos
                assert d.reg(0x80) == 0 and d.reg(REG_DOORBELL) == 0
                v.qtest.writel(BAR2, 0xabcd1234)
                # BAR2 moves; the memory follows. Decoding off: nothing there.
                d.bar2 = 0xd0000000
                d.cfg_write(0x18, d.bar2)
                assert v.qtest.readl(0xd0000000) == 0xabcd1234
                assert v.qtest.readl(BAR2) == 0xffffffff
                d.cfg_write(0x04, 0)
                assert v.qtest.readl(0xd0000000) == 0xffffffff
                v.qmp().cmd("system_reset")
                d.bar2 = BAR2
                d.enable()
                assert d.reg(REG_MASK) == 0 and d.reg(REG_STATUS) == 0
                assert d.reg(REG_IVPOSITION) == pos
                assert v.qtest.readl(BAR2) == 0xabcd1234
                tree = v.qmp().hmp("info qtree")
                assert 'dev: ivshmem-doorbell, id "shm0"' in tree and "vectors = 2" in tree
        finally:
            srv.close()


# ---- QEMU 7.2 as the other peer ----

def test_qemu_peer_interrupts_and_memory():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    with Tmp() as t:
        srv = server(t.sock)
        qemu = QemuPeer(t.sock, t.dir)
        try:
            with vireo_peer(t.sock) as v:
                dq, dv = Ivshmem(qemu.qtest), Ivshmem(v.qtest)
                dq.enable()
                dv.enable()
                idq, idv = dq.reg(REG_IVPOSITION), dv.reg(REG_IVPOSITION)
                assert idq != idv
                dq.msix_enable()
                dv.msix_enable()
                # vireo rings QEMU's vector 1, QEMU rings vireo's vector 0 (both masked).
                ring_until(lambda: dv.ring(idq, 1), lambda: dq.pending() == 0x2,
                           "QEMU's pending bit 1")
                ring_until(lambda: dq.ring(idv, 0), lambda: dv.pending() == 0x1,
                           "vireo's pending bit 0")
                data = os.urandom(64)
                qemu.qtest.memwrite(BAR2 + 0x40, data)
                assert v.qtest.memread(BAR2 + 0x40, 64) == data
                v.qtest.writel(BAR2 + 0x200, 0xcafef00d)
                assert qemu.qtest.readl(BAR2 + 0x200) == 0xcafef00d
        finally:
            qemu.close()
            srv.close()


# ---- ivshmem-plain and host memory backends ----

def test_plain_with_file_backend():
    with Tmp() as t:
        path = os.path.join(t.dir, "shm")
        with open(path, "wb") as f:
            f.write(b"\0" * 16 + b"from-the-file")
        with vmm.Vireo("-m", "64M", "-object",
                       f"memory-backend-file,id=hb,size=64K,mem-path={path},share=on",
                       "-device", "ivshmem-plain,memdev=hb,id=plain0", qtest=True) as v:
            d = Ivshmem(v.qtest)
            assert d.bar_size(1) == 0 and d.bar_size(2) == (~(0x10000 - 1) & 0xffffffff) | 0xc
            assert d.cfg_read(0x34) & 0xff == 0     # no capabilities
            d.enable(msix=False)
            assert d.reg(REG_IVPOSITION) == 0
            assert v.qtest.memread(BAR2 + 16, 13) == b"from-the-file"
            v.qtest.memwrite(BAR2 + 0x8000, b"from-the-guest")
            d.ring(0, 0)            # no interrupts on a plain device: ignored
            with open(path, "rb") as f:
                f.seek(0x8000)
                assert f.read(14) == b"from-the-guest"
            assert os.path.getsize(path) == 0x10000


def test_plain_with_memfd_backend():
    with vmm.Vireo("-m", "64M", "-object", "memory-backend-memfd,id=mfd,size=128K,share=on",
                   "-device", "ivshmem-plain,memdev=mfd", qtest=True) as v:
        d = Ivshmem(v.qtest)
        d.enable(msix=False)
        v.qtest.memwrite(BAR2 + 0x1f000, b"through-bar2")
        fd_dir = f"/proc/{v.proc.pid}/fd"
        memfds = [f for f in os.listdir(fd_dir) if os.readlink(os.path.join(fd_dir, f)).startswith("/memfd:mfd")]
        assert len(memfds) == 1, os.listdir(fd_dir)
        with open(os.path.join(fd_dir, memfds[0]), "rb") as f:
            f.seek(0x1f000)
            assert f.read(12) == b"through-bar2"


def test_plain_not_shared_warns():
    with vmm.Vireo("-m", "64M", "-object", "memory-backend-ram,id=r,size=64K",
                   "-device", "ivshmem-plain,memdev=r", qtest=True) as v:
        d = Ivshmem(v.qtest)
        d.enable(msix=False)
        v.qtest.writel(BAR2, 42)
        assert v.qtest.readl(BAR2) == 42
        v.qmp().cmd("quit")
        v.wait()
        assert "is not shared (share=on)" in v.stderr, v.stderr


# ---- bad configurations ----

def start_error(args, needle):
    rc, out, err = vmm.run("-accel", "qtest", "-display", "none", "-m", "64M", *args, timeout=30)
    assert rc != 0, f"{args} was accepted"
    assert needle in err, f"{args}: {err!r} lacks {needle!r}"
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    return err


def qemu_error(args):
    p = subprocess.run([QEMU, "-accel", "tcg", "-S", "-display", "none", "-nodefaults", "-M", "pc",
                        "-monitor", "none", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    return p.stderr.strip().split(": ", 2)[-1]


def test_bad_device_and_backend_options():
    cases = [
        (["-device", "ivshmem-plain"], "You must specify a 'memdev'"),
        (["-device", "ivshmem-doorbell"], "You must specify a 'chardev'"),
        (["-device", "ivshmem-doorbell,chardev=nope"],
         "Property 'ivshmem-doorbell.chardev' can't find value 'nope'"),
        (["-object", "memory-backend-ram,id=m,size=1M", "-device", "ivshmem-plain,memdev=m",
          "-device", "ivshmem-plain,memdev=m"], "can't use already busy memdev: m"),
        (["-object", "memory-backend-ram,id=m"], "Parameter 'size' is missing"),
        (["-object", "memory-backend-memfd,size=1M"], "Parameter 'id' is missing"),
        (["-object", "memory-backend-file,id=m,size=1M"], "Parameter 'mem-path' is missing"),
    ]
    for args, needle in cases:
        err = start_error(args, needle)
        if QEMU:
            assert qemu_error(args) in err, (qemu_error(args), err)
    # QEMU 7.2 aborts on this one; vireo says why.
    start_error(["-object", "memory-backend-memfd,id=m,size=3M,share=on",
                 "-device", "ivshmem-plain,memdev=m"], "is not a power of two")


def test_bad_servers():
    with Tmp() as t:
        start_error(["-chardev", f"socket,id=iv,path={t.sock}",
                     "-device", "ivshmem-doorbell,chardev=iv"],
                    f"Failed to connect to '{t.sock}': No such file or directory")
        srv = server(t.sock)
        try:
            start_error(["-chardev", f"socket,id=iv,path={t.sock}",
                         "-device", "ivshmem-doorbell,chardev=iv,vectors=0"],
                        "Failed to initialize interrupts: The number of MSI-X vectors is invalid")
        finally:
            srv.close()
    for kw, needle in [({"version": 1}, "server sent version 1, expecting 0"),
                       ({"first_id": 65536}, "server sent invalid ID message"),
                       ({"size": 3 << 20}, "is not a power of two")]:
        with Tmp() as t:
            srv = PyServer(t.sock, **kw)
            try:
                start_error(["-chardev", f"socket,id=iv,path={t.sock}",
                             "-device", "ivshmem-doorbell,chardev=iv,vectors=2"], needle)
            finally:
                srv.close()


def test_sigterm_while_a_server_stays_silent():
    """A server that accepts and never sends holds start-up for its 10-s
    set-up limit; a quit signal ends that wait at once."""
    with Tmp() as t:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(t.sock)
        listener.listen(1)
        listener.settimeout(20)
        p = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                              "-m", "64M", "-chardev", f"socket,id=iv,path={t.sock}",
                              "-device", "ivshmem-doorbell,chardev=iv,vectors=2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            conn, _ = listener.accept()
            time.sleep(0.5)                 # vireo is now waiting for the version
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=30)
            took = time.monotonic() - t0
            conn.close()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            listener.close()
        assert took < 5, f"exit took {took:.1f} s"
        assert p.returncode != 0, err
        assert "vireo is stopping" in err, err
        assert "AddressSanitizer" not in err and "runtime error" not in err, err


def test_server_trickling_its_set_up_is_timed_out():
    """The set-up limit (10 s) is for a whole message, however slowly its
    bytes come: one byte every 2 s would make the version take 16 s."""
    with Tmp() as t:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(t.sock)
        listener.listen(1)
        stop = threading.Event()

        def trickle():
            conn, _ = listener.accept()
            with conn:
                for b in struct.pack("<q", 0):
                    if stop.wait(2):
                        return
                    try:
                        conn.send(bytes([b]))
                    except OSError:
                        return
                stop.wait(30)

        threading.Thread(target=trickle, daemon=True).start()
        t0 = time.monotonic()
        try:
            err = start_error(["-chardev", f"socket,id=iv,path={t.sock}",
                               "-device", "ivshmem-doorbell,chardev=iv,vectors=2"],
                              "server sent invalid version message")
        finally:
            stop.set()
            listener.close()
        took = time.monotonic() - t0
        assert "timed out" in err, err
        assert took < 14, f"start-up failed only after {took:.1f} s"


def test_hostile_server_after_setup():
    r, w = os.pipe()
    e1, e2 = os.eventfd(0), os.eventfd(0)
    cases = [
        ([(70000, [])], "server sent invalid message 70000"),
        ([(-1, [e1])], "server sent unexpected shared memory message"),
        ([(5, [r])], "not an eventfd"),
        ([(5, [e1, e2])], "several descriptors with one message"),
    ]
    try:
        for extra, needle in cases:
            with Tmp() as t:
                srv = PyServer(t.sock, extra=extra)
                try:
                    with vireo_peer(t.sock) as v:
                        d = Ivshmem(v.qtest)
                        d.enable()
                        # The device still works with what it had.
                        d.msix_enable()
                        d.ring(0, 1)
                        wait_for(lambda: d.pending() == 0x2, "own vector 1")
                        v.qmp().cmd("quit")
                        v.wait()
                        assert needle in v.stderr, (needle, v.stderr)
                        assert "closing the connection" in v.stderr
                finally:
                    srv.close()
    finally:
        for fd in (r, w, e1, e2):
            os.close(fd)


if __name__ == "__main__":
    vtest.main()
