#!/usr/bin/env python3
"""Real guests on vhost-user back-ends, vireo and QEMU 7.2 side by side.

In the lab (or on the host where KVM boots Linux), Debian's kernel boots in
vireo with guest RAM from a shared memfd backend (-numa node,memdev=), a
vhost-user-blk disk served by qemu-storage-daemon and a vhost-user-fs share
served by virtiofsd. The guest writes a pattern to /dev/vda and reads it
back, measures direct-I/O throughput, mounts the share, reads a file the
host put there and writes one back. qemu-img compare then checks the image
against the expected contents. QEMU 7.2 runs the same guest on its own
daemons for the throughput comparison.
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

QEMU = shutil.which("qemu-system-x86_64")
MiB = 1 << 20

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
echo GUEST-UP
dd if=/pattern.bin of=/dev/vda bs=65536 seek=16 conv=fsync 2>/dev/null && echo WRITE-OK
echo 3 > /proc/sys/vm/drop_caches
echo "READ-MD5 $(dd if=/dev/vda bs=65536 skip=16 count=16 2>/dev/null | md5sum)"
# busybox dd prints no timing: time 32 MiB of direct I/O with /proc/uptime
timed() {
    t0=$(cut -d' ' -f1 /proc/uptime)
    "$@" 2>/dev/null
    t1=$(cut -d' ' -f1 /proc/uptime)
    awk -v a="$t0" -v b="$t1" 'BEGIN { d = b - a; if (d < 0.01) d = 0.01; printf "%.1f", 32 / d }'
}
echo "WRITE-RATE $(timed dd if=/dev/zero of=/dev/vda bs=1M count=32 seek=8 oflag=direct) MB/s"
echo "READ-RATE $(timed dd if=/dev/vda of=/dev/null bs=1M count=32 skip=8 iflag=direct) MB/s"
mkdir -p /mnt
if mount -t virtiofs myfs /mnt; then
    echo "FS-READ $(cat /mnt/hello.txt)"
    echo from-the-guest > /mnt/guest.txt
    sync
    umount /mnt
fi
echo GUEST-DONE
poweroff -f
"""

RESULTS = {}


def job(name, vmm_argv, work, initrd):
    d = os.path.join(work, name)
    tmp = f"@TMP@/{name}"
    # $LAB_TMP is only known inside the script; shlex leaves words with @ unquoted.
    q = lambda argv: " ".join(shlex.quote(a) for a in argv)
    vmm = vmm_argv + [
        "-m", "256M", "-smp", "1", "-display", "none", "-nodefaults", "-serial", "stdio",
        "-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
        "-numa", "node,memdev=mem0",
        "-chardev", f"socket,id=c0,path={tmp}/vub.sock",
        "-device", "vhost-user-blk-pci,chardev=c0,num-queues=1",
        "-chardev", f"socket,id=c1,path={tmp}/vfs.sock",
        "-device", "vhost-user-fs-pci,chardev=c1,tag=myfs",
        "-kernel", lab.kernel_path(), "-initrd", initrd,
        "-append", "console=ttyS0 quiet panic=-1"]
    qsd = ["qemu-storage-daemon",
           "--blockdev", f"driver=file,node-name=file0,filename={d}/disk.img",
           "--blockdev", "driver=raw,node-name=disk0,file=file0",
           "--export", f"type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                       f"addr.path={tmp}/vub.sock,writable=on,num-queues=1"]
    script = f"""
echo "=== {name}"
mkdir -p {d} {tmp}/share
qemu-img create -q -f raw {d}/disk.img 64M
echo hello-from-the-host > {tmp}/share/hello.txt
{q(qsd)} > {d}/qsd.log 2>&1 &
QSD=$!
/usr/lib/qemu/virtiofsd --socket-path={tmp}/vfs.sock -o source={tmp}/share -o cache=auto \
    > {d}/virtiofsd.log 2>&1 &
for i in $(seq 1 200); do [ -S {tmp}/vub.sock ] && [ -S {tmp}/vfs.sock ] && break; sleep 0.1; done
timeout 240 {q(vmm)} 2>&1
echo "VMM-EXIT $?"
echo "SHARE-GOT $(cat {tmp}/share/guest.txt 2>/dev/null)"
kill $QSD; wait $QSD
qemu-img compare -f raw -F raw {work}/expected.img {d}/disk.img && echo IMAGE-COMPARE-OK
"""
    return script.replace("@TMP@", '"$LAB_TMP"')


def run_both():
    if RESULTS:
        return RESULTS
    if not QEMU or not shutil.which("qemu-storage-daemon"):
        vtest.skip("QEMU 7.2 (qemu-system-x86, qemu-system-common) is not installed")
    if not lab.module_available("virtiofs"):
        vtest.skip("the guest kernel has no virtiofs module")
    work = lab.workdir("vu-frontend-")
    pattern = bytes((i * 7 + i // 251) & 0xff for i in range(MiB))
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_blk", "virtiofs"],
                                 files={"pattern.bin": pattern})
    with open(os.path.join(work, "expected.img"), "wb") as f:
        f.truncate(64 * MiB)
        f.seek(MiB)
        f.write(pattern)
    script = job("vireo", [vtest.binary("vireo"), "-accel", "kvm"], work, initrd)
    script += job("qemu", [QEMU, "-M", "pc", "-enable-kvm", "-cpu", "host"], work, initrd)
    status, output = lab.run_vmm(script, timeout=900)
    assert status == 0, output[-4000:]
    for part in output.split("=== ")[1:]:
        name, _, text = part.partition("\n")
        RESULTS[name.strip()] = text
    RESULTS["md5"] = __import__("hashlib").md5(pattern).hexdigest()
    return RESULTS


def test_guest_writes_and_reads_disk():
    r = run_both()
    for name in ("vireo", "qemu"):
        out = r[name]
        assert "WRITE-OK" in out and f"READ-MD5 {r['md5']}" in out, (name, out[-3000:])
        assert "IMAGE-COMPARE-OK" in out, (name, out[-3000:])
        assert "VMM-EXIT 0" in out, (name, out[-3000:])


def test_guest_mounts_virtiofs():
    r = run_both()
    for name in ("vireo", "qemu"):
        out = r[name]
        assert "FS-READ hello-from-the-host" in out, (name, out[-3000:])
        assert "SHARE-GOT from-the-guest" in out, (name, out[-3000:])


def rate(text, key):
    m = re.search(key + r" ([0-9.]+) MB/s", text)
    return float(m.group(1)) if m else None


def test_throughput_against_qemu():
    r = run_both()
    for key in ("WRITE-RATE", "READ-RATE"):
        ours, theirs = rate(r["vireo"], key), rate(r["qemu"], key)
        print(f"    {key}: vireo {ours} MB/s, QEMU 7.2 {theirs} MB/s")
        assert ours and theirs, (key, r["vireo"][-2000:], r["qemu"][-2000:])


if __name__ == "__main__":
    vtest.main()
