#!/usr/bin/env python3
"""vireo-vhost-user-net against DPDK's virtio-user frontend.

dpdk-testpmd in txonly mode negotiates over the daemon's socket, hands over
its memory and sends UDP frames; an AF_PACKET socket on the daemon's tap
counts them. Needs root, /dev/net/tun and dpdk-testpmd with the virtio-user
driver (Debian: dpdk-dev librte-net-virtio23 librte-mempool-ring23).
"""
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vtest  # noqa: E402

TMP = tempfile.mkdtemp(prefix="vu-net-dpdk-")
SOCK = os.path.join(TMP, "vhu.sock")
LOG = os.path.join(TMP, "daemon.log")
TP_LOG = os.path.join(TMP, "testpmd.log")
IFNAME = f"vudpdk{os.getpid() % 10000}"
ETH_P_IP = 0x0800


def count_udp(sock, seconds):
    """IPv4/UDP frames seen on the tap within `seconds`."""
    n, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        r, _, _ = select.select([sock], [], [], 0.2)
        while r:
            try:
                f = sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] == 17:
                n += 1
    return n


def test_testpmd_txonly_reaches_tap():
    if os.geteuid() != 0 or not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        vtest.skip("needs root and /dev/net/tun")
    if not shutil.which("dpdk-testpmd"):
        vtest.skip("dpdk-testpmd is not installed")
    daemon = subprocess.Popen([vtest.binary("vireo-vhost-user-net"), f"--socket-path={SOCK}",
                               f"--tap={IFNAME}"], stderr=open(LOG, "w"))
    testpmd = None
    try:
        deadline = time.time() + 10
        while not os.path.exists(SOCK):
            assert time.time() < deadline and daemon.poll() is None, "daemon did not start"
            time.sleep(0.02)
        with open(f"/proc/sys/net/ipv6/conf/{IFNAME}/disable_ipv6", "w") as f:
            f.write("1")
        subprocess.run(["ip", "link", "set", IFNAME, "up"], check=True)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        sock.bind((IFNAME, ETH_P_IP))
        # stdin stays open: testpmd without -i quits when it reads EOF.
        testpmd = subprocess.Popen(
            ["dpdk-testpmd", "-l", "0-1", "--no-huge", "-m", "512", "--no-pci",
             f"--file-prefix=vunet{os.getpid()}",
             "--vdev", f"net_virtio_user0,path={SOCK},queues=1", "--",
             "--forward-mode=txonly", "--auto-start", "--total-num-mbufs=16384"],
            stdin=subprocess.PIPE, stdout=open(TP_LOG, "w"), stderr=subprocess.STDOUT)
        n, deadline = 0, time.time() + 60        # EAL start-up is slow on a loaded host
        while n < 1000 and time.time() < deadline:
            assert testpmd.poll() is None, "testpmd exited: " + open(TP_LOG).read()[-2000:]
            n += count_udp(sock, 1)
        assert n >= 1000, f"{n} frames on the tap\n" + open(TP_LOG).read()[-2000:]
        assert daemon.poll() is None, "daemon died: " + open(LOG).read()
    finally:
        if testpmd:
            testpmd.terminate()
            try:
                testpmd.wait(20)
            except subprocess.TimeoutExpired:
                testpmd.kill()
                testpmd.wait()
        daemon.terminate()
        assert daemon.wait(10) == 0, "daemon did not exit cleanly: " + open(LOG).read()


if __name__ == "__main__":
    vtest.main()
