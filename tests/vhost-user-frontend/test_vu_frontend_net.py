#!/usr/bin/env python3
"""-netdev vhost-user behind virtio-net-pci: the data rings go to the back-end,
the control queue stays in vireo.

Against a scripted back-end (message checks, queue pairs switched by the
driver's CTRL_MQ command, too few queues refused) and, where Debian's DPDK
is installed, dpdk-testpmd in io-forwarding mode: a frame the test driver
sends on the transmit ring comes back on the receive ring.
"""
import os
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vufe  # noqa: E402
from vufe import (SET_FEATURES, SET_VRING_KICK, SET_VRING_ENABLE, GET_QUEUE_NUM,  # noqa: E402
                  PF_MQ, PF_REPLY_ACK)
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402

PATH = "/machine/peripheral/net0/virtio-backend"
NET_F_CSUM, NET_F_MRG_RXBUF, NET_F_CTRL_VQ, NET_F_MQ = 0, 15, 17, 22
NET_FEATURES = ((1 << 32) | (1 << 30) | (1 << 29) | (1 << 28) | (1 << NET_F_CSUM)
                | (1 << NET_F_MRG_RXBUF))
VIRTIO_NET_CTRL_MQ, VQ_PAIRS_SET = 4, 0


def start_vireo(sock, queues=2, extra=()):
    return vmm.Vireo("-m", "64M", "-chardev", f"socket,id=c0,path={sock}",
                     "-netdev", f"vhost-user,id=n0,chardev=c0,queues={queues}",
                     "-device", f"virtio-net-pci,netdev=n0,mq=on,id=net0", *extra, qtest=True)


def device(v):
    v.alloc = getattr(v, "alloc", vdriver.Alloc())
    slot = vdriver.Pci(v.qtest).find()[0][0]
    return vdriver.VirtioPciDevice(v.qtest, slot, v.alloc)


def ctrl(d, cvq, cls, cmd, data):
    qt = d.qt
    a = d.alloc.take(64, 16)
    ack = d.alloc.take(1, 1)
    qt.memwrite(a, struct.pack("<BB", cls, cmd) + data)
    qt.writeb(ack, 0xee)
    cvq.add_chain([(a, 2, False), (a + 2, len(data), False), (ack, 1, True)])
    cvq.kick()
    cvq.wait_used()
    return qt.readb(ack)


def test_data_rings_to_backend_control_in_vireo():
    d0 = vufe.tmpdir()
    sock = os.path.join(d0, "vhu.sock")
    be = vufe.ScriptedBackend(sock, features=NET_FEATURES, queues=2,
                              protocol=1 << PF_MQ | 1 << PF_REPLY_ACK)
    try:
        with start_vireo(sock) as v:
            d = device(v)
            f = d.host_features()
            assert f & (1 << NET_F_CTRL_VQ) and f & (1 << NET_F_MQ)     # vireo's own
            assert not f & (1 << 6)                 # GSO: the back-end lacks it
            vqs = d.init((0, 1, 2, 3, 4))
            be.wait_for(SET_VRING_ENABLE, 6)
            assert be.messages(GET_QUEUE_NUM)
            acked = be.messages(SET_FEATURES)[0].u64()
            assert acked & (1 << NET_F_MRG_RXBUF) and not acked & (1 << NET_F_CTRL_VQ), hex(acked)
            assert [m.u64() for m in be.messages(SET_VRING_KICK)] == [0, 1, 2, 3]
            # all four rings enabled, then the second pair off until the driver asks
            en = [m.state() for m in be.messages(SET_VRING_ENABLE)]
            assert en == [(0, 1), (1, 1), (2, 1), (3, 1), (2, 0), (3, 0)], en
            assert ctrl(d, vqs[4], VIRTIO_NET_CTRL_MQ, VQ_PAIRS_SET, struct.pack("<H", 2)) == 0
            be.wait_for(SET_VRING_ENABLE, 8)
            en = [m.state() for m in be.messages(SET_VRING_ENABLE)][6:]
            assert en == [(2, 1), (3, 1)], en
            st = v.qmp().cmd("x-query-virtio-status", path=PATH)
            assert st["name"] == "virtio-net" and st["vhost-started"], st
            assert st["vhost-dev"]["max-queues"] == 2
    finally:
        be.close()
        subprocess.run(["rm", "-rf", d0])


def test_more_pairs_than_offered():
    d0 = vufe.tmpdir()
    sock = os.path.join(d0, "vhu.sock")
    be = vufe.ScriptedBackend(sock, features=NET_FEATURES, queues=1,
                              protocol=1 << PF_MQ | 1 << PF_REPLY_ACK)
    try:
        rc, _, err = vmm.run("-accel", "qtest", "-display", "none", "-m", "64M",
                             "-chardev", f"socket,id=c0,path={sock}",
                             "-netdev", "vhost-user,id=n0,chardev=c0,queues=2",
                             "-device", "virtio-net-pci,netdev=n0,mq=on")
        assert rc == 1 and "offers 1 queues, 2 requested" in err, err
    finally:
        be.close()
        subprocess.run(["rm", "-rf", d0])


def start_testpmd(sock, prefix):
    if not vufe.have("dpdk-testpmd"):
        vtest.skip("dpdk-testpmd is not installed (dpdk-dev, librte-net-vhost23)")
    # testpmd ends at EOF on stdin: give it a pipe that stays open.
    proc = subprocess.Popen([
        "dpdk-testpmd", "-l", "0-1", "--no-huge", "-m", "512", "--no-pci",
        f"--file-prefix={prefix}", "--vdev", f"net_vhost0,iface={sock},queues=1", "--",
        "--forward-mode=io", "--auto-start", "--nb-cores=1", "--total-num-mbufs=16384",
        "--rxq=1", "--txq=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    vufe.wait_path(sock, proc, timeout=60)
    return proc


def test_testpmd_forwards_a_frame_back():
    d0 = vufe.tmpdir()
    sock = os.path.join(d0, "vhu.sock")
    pmd = start_testpmd(sock, f"vuf{os.getpid()}")
    try:
        with start_vireo(sock, queues=1) as v:
            d = device(v)
            rx, tx, _ = d.init((0, 1, 2))
            qt = v.qtest
            bufs = []
            for _ in range(4):
                a = d.alloc.take(2048, 16)
                rx.add_chain([(a, 2048, True)])
                bufs.append(a)
            rx.kick()
            frame = bytes.fromhex("ffffffffffff525400123456") + b"\x88\xb5" + b"vireo" * 12
            pkt = bytes(12) + frame                       # virtio_net_hdr_v1, no offloads
            a = d.alloc.take(len(pkt), 16)
            qt.memwrite(a, pkt)
            deadline = time.monotonic() + 30
            got = None
            # testpmd may need a moment before its port is up: resend until it loops back.
            while got is None and time.monotonic() < deadline:
                tx.add_chain([(a, len(pkt), False)])
                tx.kick()
                try:
                    head, n = rx.wait_used(timeout=1)
                    got = qt.memread(bufs[head], n)
                except TimeoutError:
                    pass
            assert got is not None, "no frame came back"
            assert got[12:12 + len(frame)] == frame, got[:40].hex()
            st = v.qmp().cmd("x-query-virtio-status", path=PATH)
            assert st["vhost-started"] and st["vhost-dev"]["nvqs"] == 2
    finally:
        pmd.stdin.close()
        vufe.stop(pmd)
        subprocess.run(["rm", "-rf", d0])


if __name__ == "__main__":
    vtest.main()
