#!/usr/bin/env python3
"""vireo as the frontend of vireo's own back-ends, with a real guest.

In the lab (or on the host where KVM boots Linux), Debian's kernel boots in
vireo with guest RAM in a shared memfd, a vhost-user-blk-pci disk (two
queues) served by vireo-storage-daemon from a qcow2 image, and a
virtio-net-pci NIC on -netdev vhost-user served by vireo-vhost-user-net on a
tap. The guest writes a pattern and random data, drops its caches, reads
both back on two queues at once, and pings the host through the tap.
Afterwards Debian's qemu-img checks the image and finds the guest's data in
it.
"""
import hashlib
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vtest  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

MiB = 1 << 20

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
for i in $(seq 1 100); do [ -b /dev/vda ] && [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
echo "DISK-SIZE $(cat /sys/block/vda/size)"
echo "DISK-QUEUES $(ls /sys/block/vda/mq | wc -l)"
echo "MAC $(cat /sys/class/net/eth0/address)"
dd if=/dev/zero bs=1M count=1 2>/dev/null | tr '\000' '\132' > /tmp/pat
dd if=/dev/urandom of=/tmp/rnd bs=1M count=4 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=64k seek=16 conv=fsync 2>/dev/null
dd if=/tmp/rnd of=/dev/vda bs=1M seek=8 conv=fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
(dd if=/dev/vda of=/tmp/pat2 bs=64k skip=16 count=16 iflag=direct 2>/dev/null) &
(dd if=/dev/vda of=/tmp/rnd2 bs=1M skip=8 count=4 iflag=direct 2>/dev/null) &
wait
cmp /tmp/pat /tmp/pat2 && echo "PATTERN-OK"
cmp /tmp/rnd /tmp/rnd2 && echo "RANDOM-OK"
echo "RANDOM-MD5 $(md5sum /tmp/rnd | cut -d' ' -f1)"
ip link set eth0 up
ip addr add 10.78.0.2/24 dev eth0
ping -c 3 -W 3 10.78.0.1 > /tmp/ping 2>&1 && echo "PING-OK"
tail -2 /tmp/ping
echo GUEST-DONE
poweroff -f
"""

_run = {}


def q(argv):
    return " ".join(shlex.quote(a) for a in argv)


def run_guest():
    if _run:
        return _run["work"], _run["out"]
    work = lab.workdir("vu-vireo-fe-")
    img = os.path.join(work, "disk.qcow2")
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_blk", "virtio_net"])
    sd = [vtest.binary("vireo-storage-daemon"),
          "--blockdev", f"driver=file,node-name=file0,filename={img}",
          "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
          "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                      "addr.path=@TMP@/vub.sock,writable=on,num-queues=2"]
    net = [vtest.binary("vireo-vhost-user-net"), "--socket-path=@TMP@/vun.sock",
           "--tap=vufe0", "--mac=52:54:00:aa:bb:01"]
    vmm = [vtest.binary("vireo"), "-accel", "kvm", "-m", "256M", "-smp", "2",
           "-display", "none", "-nodefaults", "-serial", "stdio",
           "-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
           "-numa", "node,memdev=mem0",
           "-chardev", "socket,id=c0,path=@TMP@/vub.sock",
           "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
           "-chardev", "socket,id=c1,path=@TMP@/vun.sock",
           "-netdev", "vhost-user,id=n0,chardev=c1",
           "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:01",
           "-kernel", lab.kernel_path(), "-initrd", initrd,
           "-append", "console=ttyS0 quiet panic=-1"]
    script = f"""
{q(sd)} > {work}/storage-daemon.log 2>&1 &
SD=$!
{q(net)} > {work}/net.log 2>&1 &
NET=$!
for i in $(seq 1 300); do [ -S @TMP@/vub.sock ] && [ -S @TMP@/vun.sock ] && break; sleep 0.1; done
ip link set vufe0 up && ip addr add 10.78.0.1/24 dev vufe0
timeout 400 {q(vmm)} 2>&1
echo "VMM-EXIT $?"
kill $SD $NET; wait $SD $NET
"""
    script = script.replace("@TMP@", '"$LAB_TMP"')
    status, out = lab.run_vmm(script, timeout=900, prepare=lambda: subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True))
    assert status == 0, out[-4000:]
    _run.update(work=work, out=out)
    return work, out


def logs(work):
    return "\n".join(f"--- {n} ---\n" + open(os.path.join(work, n)).read()[-2000:]
                     for n in ("storage-daemon.log", "net.log"))


def test_disk_on_vireo_storage_daemon():
    work, out = run_guest()
    assert "GUEST-DONE" in out and "VMM-EXIT 0" in out, out[-4000:] + logs(work)
    assert "DISK-SIZE 131072" in out and "DISK-QUEUES 2" in out, out[-3000:]
    assert "PATTERN-OK" in out and "RANDOM-OK" in out, out[-3000:] + logs(work)
    img = os.path.join(work, "disk.qcow2")
    r = subprocess.run(["qemu-img", "check", img], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c", f"read -P 0x5a {MiB} {MiB}", img],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "verification failed" not in r.stdout, r.stdout
    raw = os.path.join(work, "disk.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", img, raw], check=True)
    with open(raw, "rb") as f:
        f.seek(8 * MiB)
        md5 = hashlib.md5(f.read(4 * MiB)).hexdigest()
    assert md5 == re.search(r"RANDOM-MD5 ([0-9a-f]{32})", out).group(1)


def test_network_on_vireo_vhost_user_net():
    work, out = run_guest()
    assert "MAC 52:54:00:aa:bb:01" in out, out[-3000:]
    assert "PING-OK" in out, out[-3000:] + logs(work)


def test_daemons_clean():
    work, out = run_guest()
    text = logs(work)
    assert "ERROR: AddressSanitizer" not in text and "runtime error" not in text, text


if __name__ == "__main__":
    vtest.main()
