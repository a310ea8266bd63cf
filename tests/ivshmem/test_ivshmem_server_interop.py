#!/usr/bin/env python3
"""vireo-ivshmem-server with other clients: QEMU 7.2's ivshmem-doorbell
device (driven over qtest with the vCPU stopped), vireo-ivshmem-client, and
clients that outlive a server restart."""
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest
from ivpeer import Peer, Server, readable, ring
from vmm import Qtest

SERVER = vtest.binary("vireo-ivshmem-server")
CLIENT = vtest.binary("vireo-ivshmem-client")
QEMU = shutil.which("qemu-system-x86_64")

BAR0 = 0xfe000000       # registers: IVPosition at +8, Doorbell at +12
BAR1 = 0xfe001000       # MSI-X table, pending bits at +0x800


class QemuIvshmem:
    """QEMU with one ivshmem-doorbell on q35, its qtest socket connected."""

    def __init__(self, server_sock, workdir, vectors=2):
        qt_path = os.path.join(workdir, "qtest")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(qt_path)
        listener.listen(1)
        listener.settimeout(60)
        self.log = open(os.path.join(workdir, "qemu.log"), "w+")
        self.proc = subprocess.Popen(
            [QEMU, "-accel", "tcg", "-S", "-display", "none", "-nodefaults",
             "-machine", "q35", "-chardev", f"socket,id=iv,path={server_sock}",
             "-device", f"ivshmem-doorbell,chardev=iv,vectors={vectors}",
             "-qtest", f"unix:{qt_path}"], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            conn, _ = listener.accept()
        finally:
            listener.close()
        self.qt = Qtest(conn)
        self.cfg = self.find_device()

    def cfg_addr(self, reg):
        return 0x80000000 | self.cfg | reg

    def cfg_read(self, reg):
        self.qt.outl(0xcf8, self.cfg_addr(reg & ~3))
        return self.qt.inl(0xcfc) >> (8 * (reg & 3))

    def cfg_write(self, reg, value):
        self.qt.outl(0xcf8, self.cfg_addr(reg))
        self.qt.outl(0xcfc, value)

    def find_device(self):
        for dev in range(32):
            self.qt.outl(0xcf8, 0x80000000 | dev << 11)
            if self.qt.inl(0xcfc) == 0x11101af4:
                return dev << 11
        raise AssertionError("no ivshmem device on bus 0")

    def enable(self):
        """Place BAR0 and BAR1, turn on memory decoding, and enable MSI-X with
        every vector masked, so a peer's interrupt leaves a pending bit."""
        self.cfg_write(0x10, BAR0)
        self.cfg_write(0x14, BAR1)
        self.cfg_write(0x04, 0x0006)
        cap = self.cfg_read(0x34) & 0xff
        while cap and self.cfg_read(cap) & 0xff != 0x11:
            cap = (self.cfg_read(cap) >> 8) & 0xff
        assert cap, "no MSI-X capability"
        self.cfg_write(cap, (self.cfg_read(cap) & 0xffff) | (0xc000 << 16))

    def ivposition(self):
        return self.qt.readl(BAR0 + 8)

    def doorbell(self, peer, vector):
        self.qt.writel(BAR0 + 12, peer << 16 | vector)

    def pending(self):
        return self.qt.readl(BAR1 + 0x800)

    def close(self):
        self.qt.sock.close()
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def test_qemu_ivshmem_doorbell_interoperates():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    with Server(SERVER, vectors=2) as srv:
        py = Peer(srv.sock, vectors=2)
        qemu = QemuIvshmem(srv.sock, srv.dir)
        try:
            qemu.enable()
            py.read_until(lambda: len(py.peers) == 1 and len(next(iter(py.peers.values()))) == 2)
            qemu_id = next(iter(py.peers))
            assert qemu.ivposition() == qemu_id == 1, (qemu.ivposition(), qemu_id)
            assert f"peer 1 joined: pid {qemu.proc.pid} " in srv.output(), srv.output()
            # QEMU rings us through the eventfds we were announced with
            qemu.doorbell(py.id, 1)
            assert readable(py.own[1], 10), "QEMU's doorbell did not reach vector 1"
            assert not readable(py.own[0], 0)
            # we ring QEMU's vector 0: its MSI-X pending bit 0 comes on
            assert qemu.pending() == 0
            ring(py.peers[qemu_id][0])
            end = time.monotonic() + 10
            while qemu.pending() != 1 and time.monotonic() < end:
                time.sleep(0.05)
            assert qemu.pending() == 1, hex(qemu.pending())
        finally:
            qemu.close()
        py.read_until(lambda: 1 in py.left)
        py.close()


class ClientProc:
    """vireo-ivshmem-client in interactive mode, its output read line by line."""

    def __init__(self, srv, *args):
        self.proc = subprocess.Popen([CLIENT, "-S", srv.sock, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.buf = b""

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def expect(self, want, timeout=10):
        """Read output until a line equal to @want; return the lines seen."""
        seen = []
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                seen.append(line.decode())
                if seen[-1] == want:
                    return seen
            left = end - time.monotonic()
            if left <= 0 or not readable(self.proc.stdout.fileno(), left):
                raise AssertionError(f"no {want!r} in {seen}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"no {want!r} in {seen} (client exited)")
            self.buf += chunk


def test_debug_client_rings_a_python_client():
    with Server(SERVER, vectors=2) as srv:
        py = Peer(srv.sock, vectors=2)
        r = subprocess.run([CLIENT, "-S", srv.sock, "-c", f"int {py.id} 1", "-c", "dump"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r
        lines = r.stdout.splitlines()
        assert "connected: id 1" in lines and "ready" in lines, lines
        assert f"rang peer {py.id} vector 1" in lines, lines
        assert f"peer {py.id}: 2 vectors" in lines, lines
        assert readable(py.own[1], 5) and not readable(py.own[0], 0)
        py.close()


def test_debug_client_prints_joins_leaves_and_interrupts():
    with Server(SERVER, vectors=2) as srv:
        cl = ClientProc(srv)
        cl.expect("ready")
        py = Peer(srv.sock, vectors=2)
        cl.expect(f"peer {py.id}: vector 1")
        ring(py.peers[0][1])
        cl.expect("interrupt on vector 1 (count 1)")
        cl.send("int all\n")
        cl.expect(f"rang peer {py.id} vector 1")
        assert readable(py.own[0], 5) and readable(py.own[1], 5)
        py.close()
        cl.expect(f"peer {py.id} left")
        cl.send("bogus\n")
        cl.expect("commands: int PEER VECTOR | int all | dump | quit")
        cl.send("quit\n")
        assert cl.proc.wait(10) == 0


def test_debug_client_command_line_errors():
    for args in (["-t", "x"], ["-S", "/nonexistent/sock"], ["-q"]):
        r = subprocess.run([CLIENT, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and r.stderr, (args, r)
        assert "Sanitizer" not in r.stderr, r.stderr


def test_clients_survive_a_server_restart():
    srv = Server(SERVER, vectors=1)
    try:
        a = Peer(srv.sock, vectors=1)
        b = Peer(srv.sock, vectors=1)
        a.read_until(lambda: b.id in a.peers)
        assert srv.stop(remove_shm=False) == 0
        # the old clients keep talking through the eventfds they hold
        ring(b.peers[a.id][0])
        assert readable(a.own[0], 5)
        assert a.recv(5) is None, "the server's exit must close, not announce"
        # a new server on the same socket and shm name: new clients share
        # the memory the old ones have mapped
        srv2 = Server(SERVER, vectors=1, shm_name=srv.shm_name, sock=srv.sock)
        try:
            import mmap
            c = Peer(srv2.sock, vectors=1)
            old = mmap.mmap(a.shm, 1 << 20)
            new = mmap.mmap(c.shm, 1 << 20)
            old[0:7] = b"restart"
            assert new[0:7] == b"restart"
            old.close()
            new.close()
            ring(a.own[0])      # old peers still ring each other
            assert readable(a.own[0], 5)
            c.close()
        finally:
            srv2.__exit__(None)
        a.close()
        b.close()
    finally:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)


if __name__ == "__main__":
    vtest.main()
