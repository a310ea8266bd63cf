#!/usr/bin/env python3
"""QEMU 7.2 as the frontend of vireo-storage-daemon.

Debian's kernel boots in QEMU with its RAM in a shared memfd and a
vhost-user-blk-pci disk (two queues) served by vireo-storage-daemon from a
qcow2 image. The guest writes a fixed pattern and random data with dd,
drops its caches, reads both back and compares; afterwards the image must
pass `qemu-img check` and hold what the guest wrote, and a persistent bitmap
added before the run must mark exactly the clusters the guest wrote, as
qemu-nbd and nbdinfo read it. Once under QEMU's TCG
on the host, once with KVM (directly, or in the nested lab).
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vtest  # noqa: E402
from nbd_peek import dirty_extents  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
MiB = 1 << 20

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
echo "DISK-SIZE $(cat /sys/block/vda/size)"
echo "DISK-QUEUES $(ls /sys/block/vda/mq | wc -l)"
# 1 MiB of 0xa5 at 1 MiB, 4 MiB of random data at 8 MiB
dd if=/dev/zero bs=1M count=1 2>/dev/null | tr '\000' '\245' > /tmp/pat
dd if=/dev/urandom of=/tmp/rnd bs=1M count=4 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=64k seek=16 conv=fsync 2>/dev/null
dd if=/tmp/rnd of=/dev/vda bs=1M seek=8 conv=fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/pat2 bs=64k skip=16 count=16 2>/dev/null
dd if=/dev/vda of=/tmp/rnd2 bs=1M skip=8 count=4 2>/dev/null
cmp /tmp/pat /tmp/pat2 && echo "PATTERN-OK"
cmp /tmp/rnd /tmp/rnd2 && echo "RANDOM-OK"
echo "RANDOM-MD5 $(md5sum /tmp/rnd | cut -d' ' -f1)"
# both queues: two readers at once on the two vCPUs
(dd if=/dev/vda of=/dev/null bs=4k count=2000 iflag=direct 2>/dev/null; echo R1) &
(dd if=/dev/vda of=/dev/null bs=4k skip=4000 count=2000 iflag=direct 2>/dev/null; echo R2) &
wait
echo GUEST-DONE
poweroff -f
"""


def qemu_cmd(sock, initrd, accel):
    return [QEMU, "-M", "pc", *accel, "-m", "256M", "-smp", "2",
            "-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
            "-numa", "node,memdev=mem0",
            "-chardev", f"socket,id=c0,path={sock}",
            "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
            "-kernel", lab.kernel_path(), "-initrd", initrd,
            "-append", "console=ttyS0 quiet panic=-1",
            "-display", "none", "-nodefaults", "-serial", "stdio", "-no-reboot"]


def daemon_cmd(img, sock, pidfile):
    return [vtest.binary("vireo-storage-daemon"),
            "--blockdev", f"driver=file,node-name=file0,filename={img}",
            "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
            "--object", "iothread,id=io0",
            "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                        f"addr.path={sock},writable=on,num-queues=2,iothread=io0",
            "--daemonize", "--pidfile", pidfile]


def shell(argv):
    return " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)


def make_image(img):
    """A fresh 64 MiB qcow2 with one empty persistent bitmap, b0."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
    subprocess.run(["qemu-img", "bitmap", "--add", "--granularity", "65536", img, "b0"],
                   check=True)


def run_guest(work, img, initrd, kvm):
    """Daemon + QEMU: with KVM where it works (host or lab), or TCG on the host."""
    accel = ["-enable-kvm", "-cpu", "host"] if kvm else ["-accel", "tcg"]
    # The socket lives in $LAB_TMP (9p cannot hold sockets): splice the variable
    # into the single-quoted words.
    script = ('S="$LAB_TMP/vub.sock"; P="$LAB_TMP/sd.pid"\n'
              f"{shell(daemon_cmd(img, 'SOCK', 'PID'))} 2>{work}/daemon.log || exit 1\n"
              f"{shell(qemu_cmd('SOCK', initrd, accel))}\n"
              "st=$?\n"
              'kill $(cat "$P"); for i in $(seq 1 100); do kill -0 $(cat "$P") 2>/dev/null '
              "|| break; sleep 0.1; done\n"
              "exit $st\n")
    script = script.replace("SOCK", "'\"$S\"'").replace("'PID'", '"$P"')
    if kvm:
        return lab.run_vmm(script, timeout=900, prepare=lambda: make_image(img))
    make_image(img)
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, LAB_TMP=work))
    return r.returncode, r.stdout + r.stderr


def guest_writes_and_reads_back(kvm):
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    work = lab.workdir("vu-blk-qemu-")
    img = os.path.join(work, "disk.qcow2")
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_blk"])
    status, out = run_guest(work, img, initrd, kvm)
    log = open(os.path.join(work, "daemon.log")).read()
    assert "GUEST-DONE" in out, out[-4000:] + "\n--- daemon ---\n" + log[-3000:]
    assert "DISK-SIZE 131072" in out, out[-2000:]
    assert "PATTERN-OK" in out and "RANDOM-OK" in out, out[-2000:]
    assert "R1" in out and "R2" in out
    assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log, log
    r = subprocess.run(["qemu-img", "check", img], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c", f"read -P 0xa5 {MiB} {MiB}",
                        img], capture_output=True, text=True)
    assert r.returncode == 0 and "verification failed" not in r.stdout, r.stdout
    raw = os.path.join(work, "disk.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", img, raw], check=True)
    with open(raw, "rb") as f:
        f.seek(8 * MiB)
        md5 = hashlib.md5(f.read(4 * MiB)).hexdigest()
    guest_md5 = re.search(r"RANDOM-MD5 ([0-9a-f]{32})", out).group(1)
    assert md5 == guest_md5, (md5, guest_md5)
    # The guest wrote 1 MiB at 1 MiB and 4 MiB at 8 MiB, and only read elsewhere.
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", img],
                                     capture_output=True, text=True, check=True).stdout)
    bm = info["format-specific"]["data"]["bitmaps"]
    assert [(b["name"], b["flags"]) for b in bm] == [("b0", ["auto"])], bm
    dirty = dirty_extents(img, "b0")
    assert dirty == [(MiB, MiB), (8 * MiB, 4 * MiB)], dirty




def test_qemu_tcg_guest_writes_and_reads_back():
    guest_writes_and_reads_back(kvm=False)


def test_qemu_kvm_guest_writes_and_reads_back():
    """In the nested lab where the host's KVM cannot boot Linux."""
    guest_writes_and_reads_back(kvm=True)


if __name__ == "__main__":
    vtest.main()
