#!/usr/bin/env python3
"""virtio-net over qtest with a real tap device on the host side.

The test is the driver (tests/virtio/vdriver.py): it posts receive buffers,
sends control-queue commands, and injects Ethernet frames into the tap from
the host with a packet socket. Each case checks which frames the device
hands to the guest: the receive filter must follow what the control queue
set (promiscuous mode, MAC tables with their overflow, broadcast, all-multi,
VLAN table), and a frame the driver transmits must come out of the tap.
Needs root (tap and packet sockets); skipped otherwise.
"""
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402

F_MAC, F_CTRL_VQ, F_CTRL_RX, F_CTRL_VLAN, F_MQ, F_VERSION_1 = 5, 17, 18, 19, 22, 32
CTRL_RX, CTRL_MAC, CTRL_VLAN, CTRL_MQ = 0, 1, 2, 4
RX_PROMISC, RX_ALLMULTI, RX_NOBCAST = 0, 1, 5
HDR = 12                    # virtio_net_hdr_v1
ETH_TEST = 0x88b5           # local experimental ethertype: our frames only

MAC = bytes.fromhex("525400aabbcc")
OTHER = bytes.fromhex("020000000001")
BCAST = b"\xff" * 6
MCAST = bytes.fromhex("01005e000001")
MCAST2 = bytes.fromhex("01005e000002")


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


class Net:
    def __init__(self, v, ifname, pairs=1):
        self.v = v
        self.qt = v.qtest
        v.alloc = vdriver.Alloc()
        slot = vdriver.Pci(self.qt).find()[0][0]
        self.d = vdriver.VirtioPciDevice(self.qt, slot, v.alloc)
        want = 1 << F_MAC | 1 << F_CTRL_VQ | 1 << F_CTRL_RX | 1 << F_CTRL_VLAN | 1 << F_VERSION_1
        want |= 1 << F_MQ if pairs > 1 else 0
        vqs = self.d.init(tuple(range(2 * pairs + 1)), want=want)
        self.rxs, self.ctrl = vqs[0:-1:2], vqs[-1]
        self.rx, self.tx = vqs[0], vqs[1]
        self.bufs = {}
        for rx in self.rxs:
            for _ in range(32):
                self.post_rx(rx)
            rx.kick()
        self.cmd_buf = self.d.alloc.take(4096)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TEST))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(5)
        # Frames go out through a protocol-0 socket: the kernel then reads
        # each frame's own ethertype, which the tap's flow hash needs.
        self.out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.out.bind((ifname, 0))
        self.seq = 0

    def post_rx(self, rx):
        buf = self.d.alloc.take(2048)
        head = rx.add_chain([(buf, 2048, True)])
        self.bufs[(rx.index, head)] = buf

    def command(self, cls, cmd, data):
        qt, b = self.qt, self.cmd_buf
        qt.memwrite(b, bytes([cls, cmd]) + data)
        qt.writeb(b + 1024, 0xee)
        self.ctrl.add_chain([(b, 2, False), (b + 2, len(data), False), (b + 1024, 1, True)])
        self.ctrl.kick()
        self.ctrl.wait_used()
        return qt.readb(b + 1024)

    def inject(self, dst, vlan=None, flow=None):
        """Send one test frame to the guest; returns its sequence tag. With
        flow, an IPv4/UDP frame from that source port (the tap steers flows
        to queues by hash); otherwise a frame of the test ethertype."""
        self.seq += 1
        payload = b"vireo-net" + struct.pack("<I", self.seq) + bytes(40)
        frame = dst + OTHER
        if vlan is not None:
            frame += struct.pack(">HH", 0x8100, vlan)
        if flow is None:
            frame += struct.pack(">H", ETH_TEST) + payload
        else:
            udp = struct.pack(">HHHH", flow, 9, 8 + len(payload), 0) + payload
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), self.seq & 0xffff, 0, 64,
                             17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
            frame += struct.pack(">H", 0x0800) + ip + udp
        self.out.send(frame)
        return self.seq

    def collect(self, until):
        """(rx queue, tag) of every test frame received until tag `until` shows up."""
        got = []
        deadline = time.monotonic() + 10
        while until not in [t for _, t in got]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"frame {until} not received (got {got})")
            ready = [rx for rx in self.rxs if rx.used_idx() != rx.last_used]
            if not ready:
                time.sleep(0.005)
            for rx in ready:
                head, n = rx.wait_used()
                data = self.qt.memread(self.bufs.pop((rx.index, head)) + HDR, n - HDR)
                self.post_rx(rx)
                rx.kick()
                marker = data.find(b"vireo-net")
                if marker >= 0:
                    got.append((rx.index, struct.unpack("<I", data[marker + 9:marker + 13])[0]))
        return got

    def received(self):
        """Tags of test frames the guest got, in order (up to a sentinel)."""
        sentinel = self.inject(MAC)       # unicast to our own MAC always passes here
        return [t for _, t in self.collect(sentinel) if t != sentinel]

    def passes(self, dst, vlan=None):
        seq = self.inject(dst, vlan)
        return seq in self.received()


def start_with_tap(pairs=1):
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        vtest.skip("needs root and /dev/net/tun")
    ifname = f"vqt{os.getpid() % 100000}"
    mq = f",queues={pairs}" if pairs > 1 else ""
    dev = f",mq=on,vectors={2 * pairs + 2}" if pairs > 1 else ""
    v = vmm.Vireo("-netdev", f"tap,id=n0,ifname={ifname},script=no,downscript=no{mq}",
                  "-device", f"virtio-net-pci,netdev=n0,mac={mac_str(MAC)}{dev}", qtest=True)
    # The qtest connection comes up before the board and its netdevs are
    # built; one qtest round trip returns only once start-up is done.
    v.qtest.inb(0x80)
    # No IPv6 chatter from the host on this link; only our frames matter.
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass                # no IPv6 on this host: nothing to silence
    subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
    return v, ifname


def test_rx_filter_follows_control_queue():
    v, ifname = start_with_tap()
    with v:
        n = Net(v, ifname)
        # A fresh device is promiscuous until its driver says otherwise.
        assert n.passes(OTHER)
        assert n.command(CTRL_RX, RX_PROMISC, b"\0") == 0
        assert not n.passes(OTHER)
        assert n.passes(BCAST)
        assert not n.passes(MCAST)
        # MAC table: one unicast and one multicast address.
        table = struct.pack("<I", 1) + OTHER + struct.pack("<I", 1) + MCAST
        assert n.command(CTRL_MAC, 0, table) == 0
        assert n.passes(OTHER) and n.passes(MCAST)
        assert not n.passes(MCAST2)
        # all-multi takes every multicast address
        assert n.command(CTRL_RX, RX_ALLMULTI, b"\1") == 0
        assert n.passes(MCAST2)
        assert n.command(CTRL_RX, RX_NOBCAST, b"\1") == 0
        assert not n.passes(BCAST)
        # More unicast entries than the table holds: every unicast passes.
        many = struct.pack("<I", 100) + b"".join(bytes([2, 0, 0, 0, 1, i]) for i in range(100))
        assert n.command(CTRL_MAC, 0, many + struct.pack("<I", 0)) == 0
        assert n.passes(bytes.fromhex("02000000ffee"))
        # a malformed table is refused
        assert n.command(CTRL_MAC, 0, struct.pack("<I", 5) + OTHER) == 1
        # VLAN-tagged frames pass only for VLANs in the table.
        assert not n.passes(MAC, vlan=5)
        assert n.command(CTRL_VLAN, 0, struct.pack("<H", 5)) == 0
        assert n.passes(MAC, vlan=5)
        assert n.command(CTRL_VLAN, 1, struct.pack("<H", 5)) == 0
        assert not n.passes(MAC, vlan=5)
        # promiscuous again: everything
        assert n.command(CTRL_RX, RX_PROMISC, b"\1") == 0
        assert n.passes(OTHER) and n.passes(BCAST) and n.passes(MAC, vlan=7)


def test_tx_reaches_tap():
    v, ifname = start_with_tap()
    with v:
        n = Net(v, ifname)
        frame = OTHER + MAC + struct.pack(">H", ETH_TEST) + b"from-the-guest" + bytes(40)
        buf = n.d.alloc.take(4096)
        v.qtest.memwrite(buf, bytes(HDR) + frame)
        n.tx.add_chain([(buf, HDR, False), (buf + HDR, len(frame), False)])
        n.tx.kick()
        n.tx.wait_used()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = n.sock.recv(2048)
            if b"from-the-guest" in data:
                assert data[:len(frame)] == frame
                return
        raise AssertionError("transmitted frame not seen on the tap")


def test_multiqueue_pairs_follow_the_driver():
    v, ifname = start_with_tap(pairs=2)
    with v:
        n = Net(v, ifname, pairs=2)

        def spray():
            tags = [n.inject(MAC, flow=40000 + i) for i in range(24)]
            got = n.collect(tags[-1])
            while len(got) < len(tags):
                got += n.collect(n.inject(MAC))
            return {q for q, t in got if t in tags}

        # One pair until the driver asks for more: every flow on rx queue 0.
        assert spray() == {0}
        assert n.command(CTRL_MQ, 0, struct.pack("<H", 3)) == 1     # more than offered
        assert n.command(CTRL_MQ, 0, struct.pack("<H", 2)) == 0
        assert spray() == {0, 2}
        assert n.command(CTRL_MQ, 0, struct.pack("<H", 1)) == 0
        assert spray() == {0}


if __name__ == "__main__":
    vtest.main()
