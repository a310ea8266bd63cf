#!/usr/bin/env python3
"""vhost-net (-netdev tap,vhost=on) with Debian's kernel as the guest, in
vireo and in QEMU 7.2 side by side (in the lab where KVM cannot boot Linux
directly, since both need KVM's ioeventfd and irqfd).

The guest pings the host through the kernel's vhost-net worker; then the
introspection commands must show vhost running, with the same vhost device
shape (queues, index, ring sizes) and the same errors as QEMU reports."""
import json
import os
import shlex
import shutil
import sys

import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
# One tap and subnet per VMM: a tap lingers for a moment after its VMM exits.
TAPS = {"vireo": ("vhosttap0", 7), "qemu": ("vhosttap1", 8)}

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
net=$(sed -n 's/.*subnet=\([0-9]*\).*/\1/p' /proc/cmdline)
ip link set eth0 up
ip addr add 10.0.$net.15/24 dev eth0
ok=no
for i in $(seq 1 40); do
    ping -c 1 -W 1 10.0.$net.2 >/dev/null 2>&1 && { ok=yes; break; }
    sleep 1
done
echo "PING-$ok" > /dev/ttyS0
echo VIRTIO-GUEST-READY > /dev/ttyS0
while true; do sleep 1; done
"""

RESULTS = {}


def run_both():
    if RESULTS:
        return RESULTS
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    if not lab.module_available("vhost_net"):
        vtest.skip("no vhost_net module for the host kernel")
    work = lab.workdir("vhost-net-")
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_net"])
    helper = os.path.join(vtest.ROOT, "tests", "virtio_qmp", "guest_query.py")
    outs = {name: os.path.join(work, f"{name}.json") for name in ("vireo", "qemu")}
    q = lambda argv: " ".join(shlex.quote(a) for a in argv)

    def job(name, vmm_argv):
        tap, subnet = TAPS[name]
        args = ["-m", "256M", "-smp", "1", "-display", "none", "-nodefaults", "-kernel",
                lab.kernel_path(), "-initrd", initrd, "-append",
                f"console=ttyS0 quiet panic=-1 subnet={subnet}",
                "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost=on",
                "-device", "virtio-net-pci,netdev=n0,id=net0"]
        # The tap appears when the VMM starts; give it the host's address then.
        host_side = (f"( for i in $(seq 1 100); do ip link show {tap} >/dev/null 2>&1 && break; "
                     f"sleep 0.1; done; ip addr add 10.0.{subnet}.2/24 dev {tap}; "
                     f"ip link set {tap} up ) & ")
        return host_side + "GUEST_QUERY_RESET=1 " + q([sys.executable, helper, outs[name]] +
                                                      vmm_argv + args)

    script = " && ".join([
        job("vireo", [vtest.binary("vireo"), "-accel", "kvm"]),
        job("qemu", [QEMU, "-M", "pc", "-enable-kvm", "-cpu", "host"]),
    ])
    status, output = lab.run_vmm(script, timeout=600)
    assert status == 0, output[-4000:]
    for name, path in outs.items():
        RESULTS[name] = json.load(open(path))
    return RESULTS


def test_guest_pings_through_vhost():
    r = run_both()
    assert "PING-yes" in r["qemu"]["console"], r["qemu"]["console"][-1000:]
    assert "PING-yes" in r["vireo"]["console"], r["vireo"]["console"][-1000:]


def test_vhost_comes_back_after_reset():
    """system_reset takes the rings back from the kernel; the rebooted
    guest's driver starts vhost again and reaches the host again."""
    r = run_both()
    for name in ("qemu", "vireo"):
        after = r[name]["after_reset"]
        assert "error" not in after, (name, after)
        assert after["virtio-net"]["vhost-started"], (name, after)
        assert r[name]["console"].count("PING-yes") == 2, r[name]["console"][-1000:]


def test_status_shows_vhost_like_qemu():
    r = run_both()
    ours, theirs = r["vireo"]["status"]["virtio-net"], r["qemu"]["status"]["virtio-net"]
    assert theirs["vhost-started"] and ours["vhost-started"]
    for key in ("nvqs", "vq-index", "max-queues", "log-enabled", "log-size", "n-tmp-sections"):
        assert ours["vhost-dev"][key] == theirs["vhost-dev"][key], (key, ours["vhost-dev"],
                                                                  theirs["vhost-dev"])
    for key in ("guest-features", "host-features", "num-vqs", "status"):
        assert ours[key] == theirs[key], (key, ours[key], theirs[key])
    # While vhost runs, the kernel is asked where it is in the avail ring;
    # the queue statuses carry the same members as QEMU's.
    for a, b in zip(r["vireo"]["queues"]["virtio-net"], r["qemu"]["queues"]["virtio-net"]):
        assert sorted(a["return"]) == sorted(b["return"]), (a, b)
    assert r["vireo"]["queues"]["virtio-net"][0]["return"]["last-avail-idx"] > 0


def test_vhost_queue_status_like_qemu():
    r = run_both()
    ours, theirs = r["vireo"]["vhost"]["virtio-net"], r["qemu"]["vhost"]["virtio-net"]
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert ("error" in a) == ("error" in b), (a, b)
        if "error" in b:
            assert a["error"] == b["error"]
            continue
        for key in ("name", "num", "desc-size", "avail-size", "used-size"):
            assert a["return"][key] == b["return"][key], (key, a, b)
        assert a["return"]["desc-phys"] and a["return"]["desc"]


if __name__ == "__main__":
    vtest.main()
