#!/usr/bin/env python3
"""vireo-vhost-user-net against a scripted frontend (vufront.py).

The daemon creates a tap; the test brings it up and watches it with an
AF_PACKET socket: the guest's tx frames must appear there, frames sent
there must land in rx buffers behind a valid virtio net header, SEND_RARP
must put a RARP request on it. Hostile rings must cost a frame or the
frontend, never the daemon. Needs root and /dev/net/tun.
"""
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import vtest  # noqa: E402
from vufront import *  # noqa: E402,F401,F403

TMP = tempfile.mkdtemp(prefix="vu-net-")
SOCK = os.path.join(TMP, "vhu.sock")
LOG = os.path.join(TMP, "daemon.log")
IFNAME = f"vunet{os.getpid() % 100000}"
ETH_TEST = 0x88b5               # IEEE local experimental ethertype: only our frames
SEND_RARP = 19
PF_RARP = 2
F_MRG_RXBUF = 15
HDR = 12                        # virtio_net_hdr_v1 (VERSION_1 negotiated)
DATA = 0x100000
GUEST_MAC = bytes.fromhex("525400123456")
daemon = None
psock = None


def start_daemon():
    global daemon
    daemon = subprocess.Popen([vtest.binary("vireo-vhost-user-net"), f"--socket-path={SOCK}",
                               f"--tap={IFNAME}"], stderr=open(LOG, "a"))
    deadline = time.time() + 10
    while not os.path.exists(SOCK):
        assert time.time() < deadline and daemon.poll() is None, "daemon did not start"
        time.sleep(0.02)


def setup_tap():
    """No IPv6 chatter on the test tap, room for a 3000-byte frame, link up."""
    global psock
    with open(f"/proc/sys/net/ipv6/conf/{IFNAME}/disable_ipv6", "w") as f:
        f.write("1")
    subprocess.run(["ip", "link", "set", IFNAME, "mtu", "4000", "up"], check=True)
    psock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TEST))
    psock.bind((IFNAME, ETH_TEST))


def alive():
    assert daemon.poll() is None, "daemon died: " + open(LOG).read()[-2000:]


def frame(payload, src=GUEST_MAC, dst=b"\x02\x00\x00\x00\x00\x01"):
    return dst + src + struct.pack(">H", ETH_TEST) + payload


def wait_frame(marker, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([psock], [], [], max(0, deadline - time.time()))
        if r:
            data = psock.recv(65536)
            if marker in data:
                return data
    raise AssertionError(f"no frame with {marker!r} on {IFNAME}")


def no_frame(marker, wait=0.5):
    try:
        wait_frame(marker, wait)
    except AssertionError:
        return
    raise AssertionError(f"frame {marker!r} should have been dropped")


class NetSession:
    """A frontend with rings 0 (rx) and 1 (tx) running."""

    def __init__(self, mergeable=True, pf=1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_RARP,
                 sock=SOCK, pairs=1, logfd=None):
        self.fe = fe = Frontend(sock)
        self.ram = GuestRam()
        self.features = fe.call_u64(GET_FEATURES)
        acked = self.features & ~(0 if logfd else 1 << VHOST_F_LOG_ALL)
        if not mergeable:
            acked &= ~(1 << F_MRG_RXBUF)
        fe.send(SET_FEATURES, u64(acked))
        self.pf = fe.call_u64(GET_PROTOCOL_FEATURES)
        fe.send(SET_PROTOCOL_FEATURES, u64(pf & self.pf))
        fe.reply_ack = bool(pf & self.pf >> PF_REPLY_ACK & 1)
        self.nq = fe.call_u64(GET_QUEUE_NUM)
        fe.do(SET_OWNER)
        fe.do(SET_MEM_TABLE, mem_table([(0, self.ram.size, UVA_BASE, 0)]), [self.ram.fd])
        if logfd is not None:
            log_size = self.ram.size // 4096 // 8
            reply, _ = fe.call(SET_LOG_BASE, struct.pack("<QQ", log_size, 0), [logfd])
            assert struct.unpack("<Q", reply)[0] == 0
        self.rings, self.kicks, self.calls = {}, {}, {}
        for q in range(2 * pairs):
            ring = Ring(self.ram, q, 0x10000 * (q + 1))
            self.rings[q] = ring
            fe.do(SET_VRING_NUM, state(q, ring.num))
            fe.do(SET_VRING_BASE, state(q, 0))
            fe.do(SET_VRING_ADDR, vring_addr(ring, VRING_F_LOG if logfd else 0))
            self.calls[q] = os.eventfd(0, os.EFD_NONBLOCK)
            fe.do(SET_VRING_CALL, u64(q), [self.calls[q]])
            self.kicks[q] = os.eventfd(0)
            fe.do(SET_VRING_KICK, u64(q), [self.kicks[q]])
            fe.do(SET_VRING_ENABLE, state(q, 1))

    def kick(self, q):
        os.eventfd_write(self.kicks[q], 1)

    def transmit(self, data, at=DATA, q=1):
        self.ram.write(at, bytes(HDR) + data)
        self.rings[q].add_chain([(at, HDR + len(data), False)])
        self.kick(q)

    def post_rx(self, sizes, at=DATA + 0x100000):
        """One writable chain per size; returns their guest addresses."""
        addrs = []
        for n in sizes:
            self.ram.write(at, b"\xee" * n)
            self.rings[0].add_chain([(at, n, True)])
            addrs.append(at)
            at += (n + 4095) & ~4095
        self.kick(0)
        return addrs

    def close(self):
        self.fe.close()


def test_negotiation():
    s = NetSession()
    assert s.nq == 2, s.nq                          # one pair: GET_QUEUE_NUM counts rings
    assert s.pf == 1 << PF_MQ | 1 << PF_LOG_SHMFD | 1 << PF_REPLY_ACK | 1 << PF_RARP, hex(s.pf)
    for bit in (F_MRG_RXBUF, VIRTIO_F_VERSION_1, VHOST_F_LOG_ALL, F_PROTOCOL_FEATURES):
        assert s.features >> bit & 1, (bit, hex(s.features))
    s.close()


def test_tx_reaches_tap():
    s = NetSession()
    s.transmit(frame(b"vireo-tx-1" + bytes(50)))
    wait_used(s.rings[1], 1)
    wait_fd(s.calls[1])
    got = wait_frame(b"vireo-tx-1")
    assert got[6:12] == GUEST_MAC and got[12:14] == struct.pack(">H", ETH_TEST)
    s.close()


def test_rx_fills_buffer():
    s = NetSession()
    addrs = s.post_rx([2048] * 4)
    sent = frame(b"vireo-rx-1" + bytes(100), src=b"\x02\x00\x00\x00\x00\x02", dst=GUEST_MAC)
    psock.send(sent)
    wait_used(s.rings[0], 1)
    wait_fd(s.calls[0])
    head, ln = s.rings[0].used_elem(0)
    assert head == 0 and ln == HDR + len(sent), (head, ln)
    got = s.ram.read(addrs[0], ln)
    flags, gso, hdr_len, gso_size, csum_start, csum_off, nbuf = struct.unpack("<BBHHHHH", got[:HDR])
    assert gso == 0 and nbuf == 1, got[:HDR].hex()
    assert got[HDR:] == sent
    s.close()


def test_rx_mergeable_spans_buffers():
    s = NetSession()
    addrs = s.post_rx([1024] * 8)
    sent = frame(b"vireo-rx-big" + bytes(range(256)) * 11, src=b"\x02\x00\x00\x00\x00\x02")
    psock.send(sent)
    total = HDR + len(sent)
    nb = (total + 1023) // 1024
    wait_used(s.rings[0], nb)
    data = b""
    for i in range(nb):
        head, ln = s.rings[0].used_elem(i)
        data += s.ram.read(addrs[head], ln)
    assert struct.unpack_from("<H", data, 10)[0] == nb, data[:HDR].hex()
    assert data[HDR:] == sent
    s.close()


def test_dirty_log_covers_rx_buffer_and_used_ring():
    logfd = os.memfd_create("vu-net-log")
    log_size = (16 << 20) // 4096 // 8
    os.ftruncate(logfd, log_size)
    s = NetSession(logfd=logfd)
    addrs = s.post_rx([2048, 2048])
    psock.send(frame(b"vireo-rx-log" + bytes(60)))
    wait_used(s.rings[0], 1)
    log = os.pread(logfd, log_size, 0)
    dirty = {i * 8 + b for i, byte in enumerate(log) for b in range(8) if byte >> b & 1}
    ring = s.rings[0]
    want = {addrs[0] // 4096} | set(range(ring.used // 4096, (ring.end - 1) // 4096 + 1))
    assert dirty == want, (sorted(dirty), sorted(want))     # not the unused second buffer
    os.close(logfd)
    s.close()


def test_rx_on_a_migration_destination():
    """A destination's rings start on buffers the guest posted on the source:
    QEMU sends SET_VRING_ENABLE before the ring starts, the base and used
    index of the source, the call fd after the kick fd, and nobody kicks rx
    again. A frame from the tap must still land in those buffers."""
    fe = Frontend(SOCK)
    ram = GuestRam()
    features = fe.call_u64(GET_FEATURES) & ~(1 << VHOST_F_LOG_ALL)
    pf = fe.call_u64(GET_PROTOCOL_FEATURES)
    fe.send(SET_PROTOCOL_FEATURES, u64(pf & (1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_RARP)))
    fe.reply_ack = True
    fe.do(SET_OWNER)
    rings = {q: Ring(ram, q, 0x10000 * (q + 1)) for q in (0, 1)}
    for q in (0, 1):
        fe.do(SET_VRING_ENABLE, state(q, 1))
    fe.send(SET_FEATURES, u64(features))
    fe.do(SET_MEM_TABLE, mem_table([(0, ram.size, UVA_BASE, 0)]), [ram.fd])
    # the source used 3 of 8 rx buffers: used idx 3, base 3
    rx = rings[0]
    at = DATA + 0x100000
    for i in range(8):
        rx.add_chain([(at + i * 4096, 2048, True)])
    ram.put16(rx.used + 2, 3)
    rx.used_seen = 3
    # A frame waits in the tap before the rings start (the host's own
    # chatter does): it is delivered at once, before the call fd comes, so
    # the interrupt owed for it must follow when the call fd does.
    early = frame(b"vireo-rx-early" + bytes(60), src=b"\x02\x00\x00\x00\x00\x02", dst=GUEST_MAC)
    psock.send(early)
    calls = {}
    for q, base in ((0, 3), (1, 0)):
        ring = rings[q]
        fe.do(SET_VRING_NUM, state(q, ring.num))
        fe.do(SET_VRING_BASE, state(q, base))
        fe.do(SET_VRING_ADDR, vring_addr(ring, 0))
        fe.do(SET_VRING_KICK, u64(q), [os.eventfd(0)])
        calls[q] = os.eventfd(0, os.EFD_NONBLOCK)
        fe.do(SET_VRING_CALL, u64(q), [calls[q]])
    for q in (0, 1):
        fe.do(SET_VRING_ENABLE, state(q, 1))
    wait_used(rx, 4)
    wait_fd(calls[0])
    head, ln = rx.used_elem(3)
    assert head == 3 and ln == HDR + len(early), (head, ln)
    assert ram.read(at + 3 * 4096 + HDR, len(early)) == early
    # The driver has seen entry 4 and asks for an interrupt at the next one.
    ram.put16(rx.avail + 4 + 2 * rx.num, 4)
    sent = frame(b"vireo-rx-dest" + bytes(60), src=b"\x02\x00\x00\x00\x00\x02", dst=GUEST_MAC)
    psock.send(sent)
    wait_used(rx, 5)
    wait_fd(calls[0])
    head, ln = rx.used_elem(4)
    assert head == 4 and ln == HDR + len(sent), (head, ln)
    assert ram.read(at + 4 * 4096 + HDR, len(sent)) == sent
    fe.close()


def test_set_owner_with_a_u64():
    """The spec gives SET_OWNER no payload; vireo's frontend sends a u64 of 0,
    and qemu-storage-daemon takes it: so does this back-end."""
    fe = Frontend(SOCK)
    fe.call_u64(GET_FEATURES)
    fe.send(SET_PROTOCOL_FEATURES, u64(1 << PF_REPLY_ACK))
    fe.reply_ack = True
    assert fe.ack(SET_OWNER, u64(0)) == 0
    assert fe.call_u64(GET_FEATURES)
    fe.close()
    alive()


def test_send_rarp():
    s = NetSession()
    rsock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
    rsock.bind((IFNAME, 0x8035))
    mac = bytes.fromhex("5254000abcde")
    assert s.fe.ack(SEND_RARP, mac + b"\0\0") == 0
    r, _, _ = select.select([rsock], [], [], 5)
    assert r, "no RARP frame on the tap"
    f = rsock.recv(2048)
    rsock.close()
    assert f[0:6] == b"\xff" * 6 and f[6:12] == mac and f[12:14] == b"\x80\x35", f[:14].hex()
    htype, ptype, hlen, plen, op = struct.unpack(">HHBBH", f[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 3)
    assert f[22:28] == mac and f[28:32] == bytes(4) and f[32:38] == mac and f[38:42] == bytes(4)
    s.close()


def test_rarp_needs_the_feature():
    s = NetSession(pf=1 << PF_REPLY_ACK)
    assert s.fe.ack(SEND_RARP, bytes(8)) != 0
    alive()
    s.close()


def test_rx_buffer_too_small_drops_frame():
    s = NetSession(mergeable=False)
    s.post_rx([64])
    psock.send(frame(b"vireo-rx-small" + bytes(200)))
    time.sleep(0.3)
    assert s.rings[0].used_idx() == 0
    alive()
    s.close()
    # Mergeable, but even 64 chains of 16 bytes cannot hold a 1500-byte frame.
    s = NetSession()
    s.post_rx([16] * 100)
    psock.send(frame(b"vireo-rx-tiny" + bytes(1400)))
    time.sleep(0.3)
    assert s.rings[0].used_idx() == 0
    alive()
    s.close()


def test_chain_outside_memory_drops_frontend():
    s = NetSession()
    s.rings[1].add_chain([(s.ram.size - 8, 64, False)])    # runs past the end of RAM
    s.kick(1)
    s.fe.expect_drop()
    alive()
    s = NetSession()
    s.rings[0].add_chain([(1 << 40, 2048, True)])
    s.kick(0)
    psock.send(frame(b"vireo-rx-wild"))
    s.fe.expect_drop()
    alive()


def test_runt_tx_frame_dropped():
    s = NetSession()
    s.ram.write(DATA, bytes(HDR + 4))
    s.rings[1].add_chain([(DATA, HDR + 4, False)])         # no room for an Ethernet header
    s.kick(1)
    wait_used(s.rings[1], 1)
    s.transmit(frame(b"vireo-tx-after"), at=DATA + 0x1000)
    wait_used(s.rings[1], 2)
    wait_frame(b"vireo-tx-after")
    s.close()


def test_serves_after_hostile():
    test_tx_reaches_tap()
    test_rx_fills_buffer()


def test_two_pairs_and_mac():
    sock2, if2 = os.path.join(TMP, "vhu2.sock"), IFNAME + "m"
    d2 = subprocess.Popen([vtest.binary("vireo-vhost-user-net"), f"--socket-path={sock2}",
                           f"--tap={if2}", "--queues=2", "--mac=52:54:00:ab:cd:ef"],
                          stderr=open(LOG, "a"))
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock2):
            assert time.time() < deadline and d2.poll() is None, "daemon did not start"
            time.sleep(0.02)
        with open(f"/proc/sys/net/ipv6/conf/{if2}/disable_ipv6", "w") as f:
            f.write("1")
        subprocess.run(["ip", "link", "set", if2, "up"], check=True)
        ps = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TEST))
        ps.bind((if2, ETH_TEST))
        s = NetSession(sock=sock2, pairs=2, pf=1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_CONFIG)
        assert s.nq == 4, s.nq
        assert s.features >> 22 & 1 and s.features >> 5 & 1, hex(s.features)   # MQ, MAC
        cfg, _ = s.fe.call(GET_CONFIG, struct.pack("<III", 0, 10, 0) + bytes(10))
        assert cfg[12:] == bytes.fromhex("525400abcdef") + struct.pack("<HH", 1, 2), cfg.hex()
        s.transmit(frame(b"vireo-tx-pair1"), q=3)                # pair 1's tx ring
        wait_used(s.rings[3], 1)
        r, _, _ = select.select([ps], [], [], 5)
        assert r and b"vireo-tx-pair1" in ps.recv(2048)
        s.close()
        ps.close()
    finally:
        d2.terminate()
        assert d2.wait(10) == 0


def open_tap(name, vnet_hdr):
    import fcntl
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = 0x0002 | 0x1000 | (0x4000 if vnet_hdr else 0)   # IFF_TAP, IFF_NO_PI, IFF_VNET_HDR
    fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", name.encode(), flags))   # TUNSETIFF
    return fd


def test_tap_fd():
    sock3 = os.path.join(TMP, "vhu3.sock")
    nd = vtest.binary("vireo-vhost-user-net")
    plain = open_tap(IFNAME + "p", False)
    r = subprocess.run([nd, f"--socket-path={sock3}", f"--tap-fd={plain}"], pass_fds=[plain],
                       capture_output=True, text=True, timeout=20)
    os.close(plain)
    assert r.returncode == 1 and "IFF_VNET_HDR" in r.stderr, r.stderr
    fd = open_tap(IFNAME + "f", True)
    d3 = subprocess.Popen([nd, f"--socket-path={sock3}", f"--tap-fd={fd}"], pass_fds=[fd],
                          stderr=open(LOG, "a"))
    os.close(fd)
    try:
        s = NetSession(sock=sock3)
        assert s.nq == 2
        s.close()
    finally:
        d3.terminate()
        assert d3.wait(10) == 0


def test_bad_options():
    nd = vtest.binary("vireo-vhost-user-net")
    cases = [([], "--socket-path"), ([f"--socket-path={TMP}/x"], "--tap"),
             ([f"--socket-path={TMP}/x", "--tap=a", "--tap-fd=3"], "--tap"),
             ([f"--socket-path={TMP}/x", "--tap-fd=0"], "not a tap"),
             ([f"--socket-path={TMP}/x", "--tap=x", "--queues=0"], "--queues"),
             ([f"--socket-path={TMP}/x", "--tap=x", "--mac=52:54:00:12:34"], "--mac"),
             ([f"--socket-path={TMP}/x", "--tap-fd=3:4"], "one fd number per queue pair")]
    for args, text in cases:
        r = subprocess.run([nd] + args, capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and text in r.stderr, (args, r.returncode, r.stderr)


def test_clean_exit():
    daemon.terminate()
    assert daemon.wait(10) == 0, "daemon did not exit cleanly"
    assert not os.path.exists(SOCK)


if __name__ == "__main__":
    if os.geteuid() != 0 or not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        print("skip all: needs root and /dev/net/tun\n0 passed, 0 failed")
        sys.exit(0)
    start_daemon()
    try:
        setup_tap()
        vtest.main()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if os.environ.get("VU_KEEP_LOG"):
            print(open(LOG).read())
