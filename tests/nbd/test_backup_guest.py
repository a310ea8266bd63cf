#!/usr/bin/env python3
"""Incremental backup of a running guest's disk with real clients.

A Debian guest writes random data at random offsets of its virtio-blk
qcow2 disk the whole time (busybox dd, O_DIRECT, fsync). Over QMP the host
(tests/nbd/backup_guest_host.py, in the lab) stops the guest, adds the
persistent bitmap b0 and lets it run; copies the whole disk with nbdcopy
from an NBD export while the guest writes; later stops the guest, exports
the node with bitmaps [b0], reads the changed extents with
`nbdinfo --map=qemu:dirty-bitmap:b0` and with `qemu-img map` (x-dirty-bitmap),
which must agree, and copies exactly those extents with qemu-img onto the
full copy; then a second increment the same way from b1, the bitmap added
at the first increment. Each time the result must equal the stopped
guest's disk through the export, and at the end the image file after quit,
where Debian's qemu-img finds b1 stored cleanly.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vtest  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# The guest: random 4-64 KiB writes of random data at random 4 KiB-aligned
# offsets, each flushed, a short pause between them; one line per write.
INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
for i in $(seq 100); do [ -e /dev/vda ] && break; sleep 0.1; done
blocks=$(( $(cat /sys/block/vda/size) / 8 ))
echo "WRITER blocks=$blocks"
n=0
while true; do
    cnt=$(( 1 + RANDOM % 16 ))
    off=$(( (RANDOM * 32768 + RANDOM) % (blocks - cnt) ))
    dd if=/dev/urandom of=/dev/vda bs=4k seek=$off count=$cnt oflag=direct conv=fsync,notrunc 2>/dev/null || echo "WRITE-FAILED $off $cnt"
    n=$((n + 1))
    echo "WROTE $n $off $cnt"
    usleep 100000
done
"""

RESULT = {}


def run():
    if RESULT:
        return RESULT
    for tool in ("nbdinfo", "nbdcopy", "qemu-img", "qemu-io"):
        if not shutil.which(tool):
            vtest.skip(f"{tool} is not installed (scripts/install-deps)")
    if not lab.module_available("virtio_pci"):
        vtest.skip("no virtio modules for the guest kernel")
    work = lab.workdir("backup-guest")
    initrd = lab.build_initramfs(os.path.join(work, "guest.cpio.gz"), INIT,
                                 modules=["virtio_pci", "virtio_blk"])
    out = os.path.join(work, "result.json")
    if os.path.exists(out):
        os.unlink(out)
    status, output = lab.run_vmm([sys.executable, os.path.join(HERE, "backup_guest_host.py"), out,
                                  vtest.binary("vireo"), lab.kernel_path(), initrd], timeout=900)
    assert os.path.exists(out), f"no result (status {status}):\n{output[-4000:]}"
    with open(out) as f:
        RESULT.update(json.load(f))
    r = RESULT
    dirty = sum(ln for _, ln in r.get("nbdinfo_dirty", []))
    inc2 = r.get("inc2", {}).get("nbdinfo_dirty", [])
    print(f"backup: {r.get('writes_total')} guest writes after b0 "
          f"({r.get('writes_during_full_copy')} during the full copy); increment 1 "
          f"{dirty >> 10} KiB in {len(r.get('nbdinfo_dirty', []))} extents, increment 2 "
          f"{sum(ln for _, ln in inc2) >> 10} KiB in {len(inc2)} extents after "
          f"{r.get('writes_inc2')} writes, of a {r.get('disk_size', 0) >> 20} MiB disk; "
          f"timeline {r.get('timeline')}", flush=True)
    return RESULT


def context():
    r = RESULT
    return (f"error {r.get('error')}; exit {r.get('exit_status')}\nstderr:\n"
            f"{r.get('stderr', '')[-3000:]}\nconsole:\n{r.get('console', '')[-2000:]}")


def test_backup_ran():
    r = run()
    assert "error" not in r, context()
    assert r["status_stopped_1"] == "paused" and r["status_stopped_2"] == "paused", context()
    assert "WRITE-FAILED" not in r["console"], context()
    # the guest really ran between the two stops, also during the full copy
    assert r["writes_during_full_copy"] >= 1 and r["writes_total"] >= 30, context()


def test_bitmap_state():
    r = run()
    assert "error" not in r, context()
    b0 = r["b0_at_add"]
    assert (b0["count"], b0["granularity"], b0["recording"], b0["persistent"]) == \
        (0, 65536, True, True), b0
    b0 = r["b0"]
    assert b0["recording"] is False and b0["busy"] is False and b0["count"] > 0, b0
    # the guest was stopped from b1's creation to the end of the first increment
    assert r["b1_at_add"]["recording"] is True and r["b1_at_add"]["count"] == 0, r["b1_at_add"]
    assert r["b1_after"]["count"] == 0, r["b1_after"]
    assert r["b1"]["recording"] is False and r["b1"]["count"] > 0, r["b1"]


def check_increment(inc, bitmap, writes, size):
    # both maps cover the whole disk, and see the same dirty extents
    assert inc["nbdinfo_covered"] == size and inc["qemu_img_covered"] == size, inc
    assert inc["nbdinfo_dirty"] == inc["qemu_img_dirty"], \
        (inc["nbdinfo_dirty"], inc["qemu_img_dirty"])
    dirty = sum(ln for _, ln in inc["nbdinfo_dirty"])
    # and the bitmap's own count says the same
    assert dirty == bitmap["count"], (dirty, bitmap)
    for off, ln in inc["nbdinfo_dirty"]:
        assert off % 65536 == 0 and ln % 65536 == 0, (off, ln)
    # every guest write (at most 64 KiB) touched one or two 64 KiB clusters
    assert 0 < dirty <= size // 4, (dirty, size)
    assert dirty <= 2 * 65536 * (writes + 1), (dirty, writes)
    assert inc["copied_bytes"] == dirty
    # the copy differed from the disk before the increment, not after
    assert inc["before_compare_status"] == 1, inc["before_compare_status"]
    assert inc["compare_export_status"] == 0, inc["compare_export_output"]


def test_first_increment():
    r = run()
    assert "error" not in r, context()
    check_increment(r, r["b0"], r["writes_total"], r["disk_size"])


def test_second_increment():
    r = run()
    assert "error" not in r, context()
    assert r["writes_inc2"] >= 20, r["writes_inc2"]
    check_increment(r["inc2"], r["b1"], r["writes_inc2"], r["disk_size"])


def test_backup_equals_image_file():
    r = run()
    assert "error" not in r, context()
    assert r["status_before_quit"] == "paused"
    assert r["exit_status"] == 0, context()
    assert r["compare_file_status"] == 0, r["compare_file_output"]


def test_bitmap_stored_in_image():
    r = run()
    assert "error" not in r, context()
    assert r["image_check"] == 0
    bms = r["image_info"]["format-specific"]["data"].get("bitmaps", [])
    # b0 removed; b1 stored, disabled (no auto flag), not in use
    got = sorted((b["name"], b["granularity"], sorted(b["flags"])) for b in bms)
    assert got == [("b1", 65536, [])], bms


def test_sanitizers_silent():
    r = run()
    err = r.get("stderr", "")
    assert "AddressSanitizer" not in err and "runtime error:" not in err, err[-6000:]


if __name__ == "__main__":
    vtest.main()
