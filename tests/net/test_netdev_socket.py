#!/usr/bin/env python3
"""-netdev socket and -netdev hubport behind virtio-net, driven over qtest
(tests/virtio/vdriver.py is the guest driver): frames from a socketpair peer
with QEMU's stream framing (4-byte big-endian length), listen=/connect=
between two vireo processes and between vireo and QEMU 7.2, udp=, a hub
joining two NICs, device_add of a NIC on a socket netdev, and a hostile
peer (a huge length, garbage, hanging up).
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402

F_MAC, F_VERSION_1 = 5, 32
HDR = 12


class Nic:
    """One virtio-net function, rx buffers posted, as a driver would."""
    def __init__(self, v, slot=None):
        self.qt = v.qtest
        if not hasattr(v, "alloc"):
            v.alloc = vdriver.Alloc()
        found = [f[0] for f in vdriver.Pci(self.qt).find()]
        self.d = vdriver.VirtioPciDevice(self.qt, slot if slot is not None else found[0], v.alloc)
        self.rx, self.tx = self.d.init((0, 1), want=1 << F_MAC | 1 << F_VERSION_1)
        self.bufs = {}
        for _ in range(16):
            self.post()
        self.rx.kick()

    def post(self):
        buf = self.d.alloc.take(2048)
        self.bufs[self.rx.add_chain([(buf, 2048, True)])] = buf

    def receive(self, timeout=10):
        head, n = self.rx.wait_used(timeout)
        data = self.qt.memread(self.bufs.pop(head), n)
        self.post()
        self.rx.kick()
        assert data[:HDR - 2] == bytes(HDR - 2), data[:HDR]     # no offloads described
        return data[HDR:]

    def send(self, frame):
        buf = self.d.alloc.take(4096)
        self.qt.memwrite(buf, bytes(HDR) + frame)
        self.tx.add_chain([(buf, HDR + len(frame), False)])
        self.tx.kick()
        self.tx.wait_used()


def frame(tag):
    return b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x88\xb5" + tag + bytes(40)


def start(*args, **kw):
    return vmm.Vireo("-M", "pc", "-m", "64M", *args, qtest=True, **kw)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "peer closed"
        out += chunk
    return out


def read_frame(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    return recv_exact(s, n)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fd_stream_both_ways():
    a, b = socket.socketpair()
    with start("-netdev", f"socket,fd={b.fileno()},id=n0",
               "-device", "virtio-net-pci,netdev=n0", pass_fds=(b.fileno(),)) as v:
        b.close()
        nic = Nic(v)
        a.sendall(struct.pack(">I", len(frame(b"to-guest"))) + frame(b"to-guest"))
        assert nic.receive() == frame(b"to-guest")
        # a frame split over many writes still arrives whole
        f = frame(b"slowly")
        msg = struct.pack(">I", len(f)) + f
        for i in range(len(msg)):
            a.send(msg[i:i + 1])
        assert nic.receive() == f
        nic.send(frame(b"from-guest"))
        a.settimeout(10)
        assert read_frame(a) == frame(b"from-guest")
    a.close()


def test_fd_datagram():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with start("-netdev", f"socket,fd={b.fileno()},id=n0",
               "-device", "virtio-net-pci,netdev=n0", pass_fds=(b.fileno(),)) as v:
        b.close()
        nic = Nic(v)
        a.send(frame(b"dgram-in"))
        assert nic.receive() == frame(b"dgram-in")
        nic.send(frame(b"dgram-out"))
        a.settimeout(10)
        assert a.recv(4096) == frame(b"dgram-out")
    a.close()


def test_listen_connect_between_two_vireos():
    port = free_port()
    with start("-netdev", f"socket,listen=127.0.0.1:{port},id=n0",
               "-device", "virtio-net-pci,netdev=n0") as srv:
        srv.qmp()
        with start("-netdev", f"socket,connect=127.0.0.1:{port},id=n0",
                   "-device", "virtio-net-pci,netdev=n0") as cli:
            a, b = Nic(srv), Nic(cli)
            time.sleep(0.2)
            b.send(frame(b"cli-to-srv"))
            assert a.receive() == frame(b"cli-to-srv")
            a.send(frame(b"srv-to-cli"))
            assert b.receive() == frame(b"srv-to-cli")
        # the client is gone: the listener takes the next peer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            time.sleep(0.2)
            c.sendall(struct.pack(">I", len(frame(b"next"))) + frame(b"next"))
            assert a.receive() == frame(b"next")


def test_udp():
    p1, p2 = free_port(), free_port()
    with start("-netdev", f"socket,udp=127.0.0.1:{p2},localaddr=127.0.0.1:{p1},id=n0",
               "-device", "virtio-net-pci,netdev=n0") as v1, \
         start("-netdev", f"socket,udp=127.0.0.1:{p1},localaddr=127.0.0.1:{p2},id=n0",
               "-device", "virtio-net-pci,netdev=n0") as v2:
        a, b = Nic(v1), Nic(v2)
        a.send(frame(b"udp-1"))
        assert b.receive() == frame(b"udp-1")
        b.send(frame(b"udp-2"))
        assert a.receive() == frame(b"udp-2")


def test_hub_joins_two_nics():
    with start("-netdev", "hubport,hubid=0,id=h0", "-netdev", "hubport,hubid=0,id=h1",
               "-netdev", "hubport,hubid=1,id=lonely",
               "-device", "virtio-net-pci,netdev=h0,addr=4",
               "-device", "virtio-net-pci,netdev=h1,addr=5",
               "-device", "virtio-net-pci,netdev=lonely,addr=6") as v:
        a, b, c = Nic(v, 4), Nic(v, 5), Nic(v, 6)
        a.send(frame(b"hub-a"))
        assert b.receive() == frame(b"hub-a")
        b.send(frame(b"hub-b"))
        assert a.receive() == frame(b"hub-b")
        c.send(frame(b"nobody"))     # alone on its hub: dropped
        try:
            a.receive(timeout=0.5)
            raise AssertionError("a frame crossed hubs")
        except TimeoutError:
            pass


def test_hostile_peer():
    a, b = socket.socketpair()
    with start("-netdev", f"socket,fd={b.fileno()},id=n0",
               "-device", "virtio-net-pci,netdev=n0", pass_fds=(b.fileno(),)) as v:
        b.close()
        nic = Nic(v)
        a.sendall(struct.pack(">I", 0xfffffff0) + os.urandom(4096))
        a.settimeout(10)
        try:
            assert a.recv(16) == b"", "vireo hangs up on an impossible length"
        except ConnectionResetError:
            pass                                # hung up with our bytes unread
        nic.send(frame(b"into-the-void"))       # no peer now: dropped, no crash
        assert v.qmp().cmd("query-status")["status"] == "running"
    a.close()


def test_announce_self():
    a, b = socket.socketpair()
    with start("-netdev", f"socket,fd={b.fileno()},id=n0",
               "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:99",
               pass_fds=(b.fileno(),)) as v:
        b.close()
        m = v.qmp()
        args = {"initial": 20, "max": 100, "rounds": 300, "step": 10, "id": "bob"}
        m.send_raw(json.dumps({"execute": "announce-self", "arguments": args}) + "\n")
        assert "return" in m.reply()
        a.settimeout(10)
        f = read_frame(a)
        mac = bytes.fromhex("525400123499")
        assert len(f) == 60 and f[:6] == b"\xff" * 6 and f[6:12] == mac, f
        assert f[12:14] == b"\x80\x35" and f[20:22] == b"\x00\x03", f     # RARP request
        assert f[22:28] == mac and f[32:38] == mac, f
        read_frame(a)                       # the next round, 20 ms later
        args["rounds"] = 0                  # stop "bob"
        m.send_raw(json.dumps({"execute": "announce-self", "arguments": args}) + "\n")
        assert "return" in m.reply()
        time.sleep(0.3)
        a.setblocking(False)
        try:
            while a.recv(65536):
                pass
        except BlockingIOError:
            pass
        time.sleep(0.5)
        try:
            got = a.recv(65536)
        except BlockingIOError:
            got = b""
        assert got == b"", "announcements went on after rounds=0"
        # a few rounds without an id end by themselves
        m.cmd("announce-self", initial=1, max=1, rounds=3, step=0)
        a.settimeout(10)
        a.setblocking(True)
        for _ in range(3):
            read_frame(a)
    a.close()


def test_errors():
    for opts, text in [
        ("socket,id=n0", "exactly one of listen=, connect=, mcast= or udp= is required"),
        ("socket,id=n0,listen=:1,connect=127.0.0.1:2",
         "exactly one of listen=, connect=, mcast= or udp= is required"),
        ("socket,id=n0,fd=999", "Invalid file descriptor number '999'"),
        ("socket,id=n0,connect=noport", "doesn't contain ':'"),
        ("socket,id=n0,udp=127.0.0.1:5", "localaddr= is mandatory"),
        ("hubport,id=n0", "Parameter 'hubid' is missing"),
    ]:
        rc, out, err = vmm.run("-M", "pc", "-accel", "qtest", "-display", "none",
                               "-netdev", opts, "-device", "virtio-net-pci,netdev=n0")
        assert rc == 1 and text in err, (opts, rc, err)


def test_device_add_on_a_socket_netdev():
    a, b = socket.socketpair()
    with start("-netdev", f"socket,fd={b.fileno()},id=n0", pass_fds=(b.fileno(),)) as v:
        b.close()
        m = v.qmp()
        m.send_raw('{"execute": "device_add", "arguments": {"driver": "virtio-net-pci", '
                   '"netdev": "n0", "id": "nic", "addr": "9"}}\n')
        assert "return" in m.reply()
        nic = Nic(v, 9)
        nic.send(frame(b"hotplugged"))
        a.settimeout(10)
        assert read_frame(a) == frame(b"hotplugged")
        m.send_raw('{"execute": "device_del", "arguments": {"id": "nic"}}\n')
        assert "return" in m.reply()
        v.qtest.outl(0xae08, 1 << 9)
        m.wait_event("DEVICE_DELETED")
        assert m.wait_event("DEVICE_DELETED")["data"]["device"] == "nic"
    a.close()


def test_interoperates_with_qemu():
    """QEMU 7.2 joins two of its own socket back-ends with a hub; a vireo NIC
    connects to each. Frames cross QEMU's framing code in both directions."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        vtest.skip("qemu-system-x86_64 is not installed")
    p1, p2 = free_port(), free_port()
    q = subprocess.Popen([qemu, "-M", "pc", "-nodefaults", "-display", "none", "-m", "64M",
                          "-netdev", f"socket,listen=127.0.0.1:{p1},id=s0",
                          "-netdev", f"socket,listen=127.0.0.1:{p2},id=s1",
                          "-netdev", "hubport,hubid=0,id=h0,netdev=s0",
                          "-netdev", "hubport,hubid=0,id=h1,netdev=s1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", p2), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "QEMU did not listen"
                time.sleep(0.1)
        # QEMU took that probe as its peer on p2 and went back to listening when it left
        time.sleep(0.5)
        with start("-netdev", f"socket,connect=127.0.0.1:{p1},id=n0",
                   "-device", "virtio-net-pci,netdev=n0") as v1, \
             start("-netdev", f"socket,connect=127.0.0.1:{p2},id=n0",
                   "-device", "virtio-net-pci,netdev=n0") as v2:
            a, b = Nic(v1), Nic(v2)
            time.sleep(0.5)
            a.send(frame(b"through-qemu-1"))
            assert b.receive() == frame(b"through-qemu-1")
            b.send(frame(b"through-qemu-2"))
            assert a.receive() == frame(b"through-qemu-2")
    finally:
        q.kill()
        q.wait()


vtest.main()
