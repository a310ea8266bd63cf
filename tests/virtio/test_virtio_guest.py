#!/usr/bin/env python3
"""Debian's kernel and its virtio modules drive vireo's devices in one boot:
a disk pattern written and read back (O_DIRECT), files written through the
guest's ext4 driver (then checked clean by the host's e2fsck), hwrng,
console and a named serial port, the balloon device present, and ping over
tap both ways. (Balloon inflation by the guest driver is checked in
tests/virtio_qmp/test_virtio_introspection.py, which has a QMP client.)
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vtest  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
r() { echo "RESULT $*"; }
r devices $(ls /sys/bus/virtio/devices | wc -l)
for d in /sys/bus/virtio/devices/*; do r dev $(cat $d/device) $(cat $d/status); done
r rng $(cat /sys/class/misc/hw_random/rng_current)
dd if=/dev/hwrng of=/tmp/rnd bs=256 count=4 2>/dev/null
r rngbytes $(wc -c < /tmp/rnd)
dd if=/dev/urandom of=/tmp/pat bs=1M count=8 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=1M oflag=direct 2>/dev/null
dd if=/dev/vda of=/tmp/back bs=1M count=8 iflag=direct 2>/dev/null
cmp -s /tmp/pat /tmp/back && r disk ok
r serial $(cat /sys/block/vda/serial)
r vdb_ro $(cat /sys/block/vdb/ro)
mkdir -p /mnt
if mount -t ext4 /dev/vdc /mnt; then
    cp /tmp/pat /mnt/pat && mkdir /mnt/dir && echo vireo-ext4 > /mnt/dir/note
    umount /mnt && r ext4 written $(md5sum /tmp/pat | cut -d' ' -f1)
fi
echo "console-hello" > /dev/hvc0
r portname $(cat /sys/class/virtio-ports/vport*p1/name)
echo "port-hello" > $(ls /dev/vport*p1)
ip link set eth0 up
ip addr add 10.0.9.15/24 dev eth0
for i in 1 2 3 4 5; do ping -c 1 -W 3 10.0.9.2 >/dev/null && break; sleep 1; done
ping -c 3 -W 3 10.0.9.2 >/dev/null && r ping ok
poweroff -f
"""

RESULTS = {}


def make_ext4(path):
    """An empty ext4 file system made on the host, or None without mkfs.ext4."""
    mkfs = shutil.which("mkfs.ext4") or shutil.which("mkfs.ext4", path="/sbin:/usr/sbin")
    if not mkfs:
        return None
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run([mkfs, "-q", "-F", path], check=True)
    return path


def run_guest():
    if RESULTS:
        return RESULTS
    if not lab.module_available("virtio_pci"):
        vtest.skip("no virtio modules for the guest kernel")
    work = lab.workdir("virtio-guest")
    initrd = lab.build_initramfs(os.path.join(work, "guest.cpio.gz"), INIT,
                                 modules=["virtio_pci", "virtio_blk", "virtio_rng", "virtio_console",
                                          "virtio_balloon", "virtio_net", "ext4", "crc32c_generic"])
    disk, ro, ext = (os.path.join(work, n) for n in ("disk.img", "ro.img", "ext4.img"))

    def make_disks():
        for path, size in ((disk, 32 << 20), (ro, 1 << 20)):
            with open(path, "wb") as f:
                f.truncate(0)
                f.truncate(size)
        RESULTS["_ext4"] = make_ext4(ext)
    vireo = vtest.binary("vireo")
    script = (
        f"{vireo} -m 512M -kernel {lab.kernel_path()} -initrd {initrd} -append 'console=ttyS0 quiet' "
        "-serial stdio -display none -device virtio-rng-pci "
        f"-drive file={disk},format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0,serial=VIREO42 "
        f"-drive file={ro},format=raw,if=none,id=d1,readonly=on -device virtio-blk-pci,drive=d1 "
        f"-drive file={ext},format=raw,if=none,id=d2 -device virtio-blk-pci,drive=d2 "
        "-device virtio-serial-pci -chardev file,id=c0,path=$LAB_TMP/con "
        "-chardev file,id=c1,path=$LAB_TMP/port -device virtconsole,chardev=c0 "
        "-device virtserialport,chardev=c1,name=org.vireo.port -device virtio-balloon-pci "
        "-netdev tap,id=n0,ifname=vireotap0,script=no,downscript=no -device virtio-net-pci,netdev=n0 & "
        # vireo creates the tap while it starts; on a loaded host that can
        # take more than a second, so wait for the link rather than a fixed time.
        "for i in $(seq 300); do ip link show vireotap0 >/dev/null 2>&1 && break; sleep 0.1; done; "
        "ip addr add 10.0.9.2/24 dev vireotap0; ip link set vireotap0 up; wait; "
        "echo RESULT con $(cat $LAB_TMP/con); echo RESULT port $(cat $LAB_TMP/port)")
    status, out = lab.run_vmm(script, timeout=180, prepare=make_disks)
    RESULTS["_out"] = out
    RESULTS["_status"] = status
    RESULTS["dev"] = []
    for m in re.finditer(r"^RESULT (\S+) ?(.*?)\r?$", out, re.M):
        if m.group(1) == "dev":
            RESULTS["dev"].append(m.group(2))
        else:
            RESULTS[m.group(1)] = m.group(2)
    return RESULTS


def get(key):
    r = run_guest()
    assert key in r, f"no {key} result; output:\n{r['_out'][-3000:]}"
    return r[key]


def test_all_devices_driver_ok():
    assert get("devices") == "7"
    # virtio device ids in command-line order, status 0xf (ACK|DRIVER|FEATURES_OK|DRIVER_OK)
    ids = [d.split()[0] for d in RESULTS["dev"]]
    assert ids == ["0x0004", "0x0002", "0x0002", "0x0002", "0x0003", "0x0005", "0x0001"], ids
    assert all(d.split()[1] == "0x0000000f" for d in RESULTS["dev"]), RESULTS["dev"]


def test_hwrng():
    assert get("rng").startswith("virtio_rng")
    assert get("rngbytes") == "1024"


def test_disk_pattern_and_serial():
    assert get("disk") == "ok"
    assert get("serial") == "VIREO42"
    assert get("vdb_ro") == "1"


def test_ext4_written_by_guest_is_fsck_clean():
    """The guest's ext4 driver wrote files over virtio-blk; the host's
    e2fsck finds the file system clean and the file has the guest's bytes."""
    run_guest()
    img = RESULTS["_ext4"]
    e2fsck = shutil.which("e2fsck") or shutil.which("e2fsck", path="/sbin:/usr/sbin")
    debugfs = shutil.which("debugfs") or shutil.which("debugfs", path="/sbin:/usr/sbin")
    if not img or not e2fsck or not debugfs:
        vtest.skip("e2fsprogs not installed")
    md5 = get("ext4").split()[1]
    check = subprocess.run([e2fsck, "-fn", img], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    out = img + ".pat"
    subprocess.run([debugfs, "-R", f"dump /pat {out}", img], check=True, capture_output=True)
    with open(out, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == md5
    note = subprocess.run([debugfs, "-R", "cat /dir/note", img], capture_output=True, text=True)
    assert note.stdout.strip() == "vireo-ext4"


def test_console_and_port():
    assert get("con") == "console-hello"
    assert get("portname") == "org.vireo.port"
    assert get("port") == "port-hello"


def test_ping_over_tap():
    assert get("ping") == "ok"


if __name__ == "__main__":
    vtest.main()
