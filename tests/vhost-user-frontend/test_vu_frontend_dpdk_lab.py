#!/usr/bin/env python3
"""A real guest's NIC on `-netdev vhost-user` served by DPDK's dpdk-testpmd.

In the lab (or on the host where KVM boots Linux), Debian's kernel boots in
vireo with shared guest RAM and a virtio-net-pci NIC whose data rings run in
dpdk-testpmd's vhost port. testpmd forwards in io mode between that port and
a tap port of its own (net_tap), which the lab host addresses. So a ping from
the guest to the host crosses testpmd twice: the guest's frames reach
testpmd (its port statistics count them) and the frames testpmd sends reach
the guest (the replies arrive, and the guest's receive counter grows by at
least as many frames as testpmd transmitted on the vhost port).
"""
import os
import re
import shlex
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import vtest  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

PINGS = 10

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
ip link set lo up
ip addr add 10.9.1.2/24 dev eth0
ip link set eth0 up
st() { cat /sys/class/net/eth0/statistics/$1; }
echo "GUEST-UP"
# testpmd's port may come up after the guest: wait for the first answer.
for i in $(seq 1 90); do ping -c 1 -W 1 10.9.1.1 >/dev/null 2>&1 && break; done
rx0=$(st rx_packets); tx0=$(st tx_packets)
ok=$(ping -c @PINGS@ -i 0.2 -W 2 10.9.1.1 2>/dev/null | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
echo "PING-RECEIVED ${ok:-0}"
echo "GUEST-RX $(( $(st rx_packets) - rx0 )) GUEST-TX $(( $(st tx_packets) - tx0 ))"
echo "GUEST-RX-TOTAL $(st rx_packets) GUEST-TX-TOTAL $(st tx_packets)"
poweroff -f
""".replace("@PINGS@", str(PINGS))

# testpmd leaves at EOF on stdin: it reads a FIFO the script holds open.
# L1 has one CPU: testpmd's two lcores and the guest's vCPU share it.
SCRIPT = r"""
set -u
SOCK=$LAB_TMP/vhu.sock
rm -f $LAB_TMP/pmd.in; mkfifo $LAB_TMP/pmd.in
dpdk-testpmd --lcores=0@0,1@0 --no-huge -m 512 --no-pci \
    --file-prefix=vufedpdk --vdev net_vhost0,iface=$SOCK,queues=1 \
    --vdev net_tap0,iface=dtap0 -- --forward-mode=io --auto-start --nb-cores=1 \
    --total-num-mbufs=16384 --rxq=1 --txq=1 \
    < $LAB_TMP/pmd.in > @WORK@/testpmd.log 2>&1 &
PMD=$!; exec 7> $LAB_TMP/pmd.in
for i in $(seq 1 1800); do [ -S $SOCK ] && [ -e /sys/class/net/dtap0 ] && break; sleep 0.1; done
[ -S $SOCK ] || { echo "NO-SOCKET"; tail -20 @WORK@/testpmd.log; }
# No IPv6 chatter on either side: the frame counts compared below stay exact.
echo 1 > /proc/sys/net/ipv6/conf/dtap0/disable_ipv6 2>/dev/null
ip addr add 10.9.1.1/24 dev dtap0
ip link set dtap0 up
timeout 400 @VMM@ 2>&1
echo "VMM-EXIT $?"
kill -INT $PMD; wait $PMD 2>/dev/null; exec 7>&-
echo "=== testpmd"
sed -n '/Forward statistics for port/,$p' @WORK@/testpmd.log | head -40
"""


def vmm_argv(work, initrd):
    return [vtest.binary("vireo"), "-accel", "kvm",
            "-m", "256M", "-smp", "1", "-display", "none", "-nodefaults",
            "-serial", "stdio", "-no-reboot",
            "-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
            "-numa", "node,memdev=mem0",
            "-chardev", "socket,id=c0,path=@SOCK@",
            "-netdev", "vhost-user,id=n0,chardev=c0,queues=1",
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:57",
            "-kernel", lab.kernel_path(), "-initrd", initrd,
            "-append", "console=ttyS0 quiet panic=-1 ipv6.disable=1"]


RESULT = {}


def run_guest():
    if RESULT:
        return RESULT
    if not shutil.which("dpdk-testpmd"):
        vtest.skip("dpdk-testpmd is not installed (dpdk-dev, librte-net-vhost23)")
    if not lab.module_available("virtio_net"):
        vtest.skip("the guest kernel has no virtio_net module")
    work = lab.workdir("vu-fe-dpdk-")
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_net"])
    vmm = " ".join(shlex.quote(a) for a in vmm_argv(work, initrd)).replace("@SOCK@", "$SOCK")
    script = SCRIPT.replace("@WORK@", work).replace("@VMM@", vmm)
    status, out = lab.run_vmm(script, timeout=900)
    RESULT["status"], RESULT["out"] = status, out
    guest, _, pmd = out.partition("=== testpmd")
    RESULT["guest"], RESULT["pmd"] = guest, pmd
    return RESULT


def number(text, pattern):
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def port_stats(pmd, port):
    """(RX-packets, TX-packets) of testpmd's exit statistics for PORT."""
    m = re.search(r"Forward statistics for port %d(.*?)(?:Forward statistics|\Z)" % port, pmd, re.S)
    if not m:
        return None, None
    return number(m.group(1), r"RX-packets:\s*(\d+)"), number(m.group(1), r"TX-packets:\s*(\d+)")


def test_guest_pings_host_through_testpmd():
    r = run_guest()
    assert "GUEST-UP" in r["guest"], r["out"][-4000:]
    assert "VMM-EXIT 0" in r["guest"], r["out"][-4000:]
    assert number(r["guest"], r"PING-RECEIVED (\d+)") == PINGS, r["out"][-4000:]


def test_testpmd_counts_the_guests_frames_both_ways():
    r = run_guest()
    rx, tx = port_stats(r["pmd"], 0)           # port 0: the vhost port (the guest's NIC)
    guest_tx = number(r["guest"], r"GUEST-TX-TOTAL (\d+)")
    guest_rx = number(r["guest"], r"GUEST-RX-TOTAL (\d+)")
    print(f"    testpmd vhost port: RX {rx} TX {tx}; guest: TX {guest_tx} RX {guest_rx}")
    assert rx is not None and tx is not None, r["pmd"][-3000:] or r["out"][-3000:]
    assert rx >= PINGS and tx >= PINGS, r["pmd"][-3000:]
    # Every frame testpmd received on its vhost port came from the guest, and
    # every frame it sent there was delivered into the guest's receive ring.
    assert guest_tx is not None and rx <= guest_tx, (rx, guest_tx)
    assert guest_rx is not None and guest_rx >= tx, (guest_rx, tx)


if __name__ == "__main__":
    vtest.main()
