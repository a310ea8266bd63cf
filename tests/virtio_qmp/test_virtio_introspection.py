"""Virtio introspection (x-query-virtio*, info virtio*) against QEMU 7.2.

Without a guest: the same devices in both VMMs, paused, must be reported
member by member alike. With a guest (in the lab where KVM cannot boot
Linux directly): Debian's kernel drives the devices in both VMMs and the
negotiated state must agree."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import vmm
import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
DEVICES = ["-device", "virtio-rng-pci",
           "-device", "virtio-blk-pci,drive=d0,id=disk0",
           "-device", "virtio-balloon-pci",
           "-device", "virtio-serial-pci,id=ser0"]
# Expected to differ: whether the VM runs, and vhost members (none here).
IGNORED = {"vm-running"}


def drive_args(image, readonly=True):
    return ["-drive", f"if=none,id=d0,file={image},format=raw{',readonly=on' if readonly else ''}"]


def start(binary, extra):
    d = tempfile.mkdtemp(prefix="vireo-vq-")
    sock = os.path.join(d, "q.sock")
    p = subprocess.Popen([binary, "-display", "none", "-nodefaults", "-S", "-m", "256M",
                          "-qmp", f"unix:{sock},server=on,wait=off"] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(p.stderr.read().decode())
        time.sleep(0.02)
    return p, vmm.QMP.unix(sock)


def snapshot(q):
    out = {"list": q.cmd("x-query-virtio")}
    for d in out["list"]:
        st = q.cmd("x-query-virtio-status", path=d["path"])
        for k in IGNORED:
            st.pop(k, None)
        out[d["name"]] = {
            "status": st,
            "queues": [q.execute("x-query-virtio-queue-status", path=d["path"], queue=i)
                       for i in range(min(st["num-vqs"], 4))],
            "bad-queue": q.execute("x-query-virtio-queue-status", path=d["path"], queue=999),
            "element": q.execute("x-query-virtio-queue-element", path=d["path"], queue=0),
            "vhost": q.execute("x-query-virtio-vhost-queue-status", path=d["path"], queue=0),
            "hmp-list": q.hmp("info virtio"),
            "hmp-queue": q.hmp(f"info virtio-queue-status {d['path']} 0"),
            "hmp-status": q.hmp(f"info virtio-status {d['path']}"),
            "hmp-element": q.hmp(f"info virtio-queue-element {d['path']} 0"),
            "hmp-vhost": q.hmp(f"info virtio-vhost-queue-status {d['path']} 0"),
        }
    out["bad-path"] = q.execute("x-query-virtio-status", path="/machine/peripheral/none")
    return out


def test_paused_devices_match_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    img = tempfile.NamedTemporaryFile(suffix=".img")
    img.truncate(16 << 20)
    extra = DEVICES + drive_args(img.name)
    p1, q1 = start(vtest.binary("vireo"), ["-accel", "qtest"] + extra)
    p2, q2 = start(QEMU, ["-M", "pc", "-accel", "tcg"] + extra)
    try:
        ours, theirs = snapshot(q1), snapshot(q2)
        assert ours["list"] == theirs["list"]
        diffs = []
        for d in theirs["list"]:
            a, b = ours[d["name"]], theirs[d["name"]]
            for key in b:
                if a[key] != b[key]:
                    diffs.append(f"{d['name']} {key}:\n  vireo: {a[key]}\n  qemu:  {b[key]}")
        assert ours["bad-path"] == theirs["bad-path"]
        assert not diffs, "\n".join(diffs)
    finally:
        for p in (p1, p2):
            p.kill()
            p.wait()


def test_driver_state_through_qtest():
    """A driver written in the test (tests/virtio/vdriver.py) sets a device
    up; every introspection command reports exactly what it did."""
    sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "virtio"))
    import vdriver
    with vmm.Vireo("-device", "virtio-rng-pci,id=rng0", qtest=True) as v:
        q = v.qmp()
        path = "/machine/peripheral/rng0/virtio-backend"
        r = q.execute("x-query-virtio-queue-element", path=path, queue=0)
        assert r["error"]["desc"] == "Region caches not initialized"
        alloc = vdriver.Alloc()
        slot = vdriver.Pci(v.qtest).find()[0][0]
        d = vdriver.VirtioPciDevice(v.qtest, slot, alloc)
        want = vdriver.VERSION_1 | vdriver.EVENT_IDX | vdriver.INDIRECT_DESC
        vq, = d.init(want=want)
        st = q.cmd("x-query-virtio-status", path=path)
        assert st["status"]["statuses"] == [
            "VIRTIO_CONFIG_S_ACKNOWLEDGE: Valid virtio device found",
            "VIRTIO_CONFIG_S_DRIVER: Guest OS compatible with device",
            "VIRTIO_CONFIG_S_FEATURES_OK: Feature negotiation complete",
            "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready"]
        assert st["guest-features"] == {"transports": [
            "VIRTIO_RING_F_EVENT_IDX: Used & avail. event fields enabled",
            "VIRTIO_RING_F_INDIRECT_DESC: Indirect descriptors supported",
            "VIRTIO_F_VERSION_1: Device compliant for v1 spec (legacy)"], "dev-features": []}
        qs = q.cmd("x-query-virtio-queue-status", path=path, queue=0)
        assert (qs["vring-desc"], qs["vring-avail"], qs["vring-used"]) == (vq.desc, vq.avail, vq.used)
        assert qs["vring-num"] == vq.size and qs["vring-align"] == 4096
        # A chain published but not yet kicked: the element shows it.
        buf = alloc.take(64)
        head = vq.add_chain([(buf, 16, True), (buf + 16, 48, True)])
        e = q.cmd("x-query-virtio-queue-element", path=path, queue=0)
        assert e["index"] == head and e["name"] == "virtio-rng"
        assert e["descs"] == [{"addr": buf, "len": 16, "flags": ["write", "next"]},
                              {"addr": buf + 16, "len": 48, "flags": ["write"]}]
        assert e["avail"] == {"flags": 0, "idx": 1, "ring": head}
        assert e["used"] == {"flags": 0, "idx": 0}
        vq.kick()
        vq.wait_used()
        qs = q.cmd("x-query-virtio-queue-status", path=path, queue=0)
        assert (qs["last-avail-idx"], qs["shadow-avail-idx"], qs["used-idx"], qs["inuse"]) == (1, 1, 1, 0)
        # An indirect chain: the element lists the table's descriptors.
        table = alloc.take(64, 16)
        head2 = vq.add_chain([(buf, 8, True), (buf + 8, 8, True)], indirect_at=table)
        e = q.cmd("x-query-virtio-queue-element", path=path, queue=0, index=1)
        assert e["index"] == head2
        assert [x["len"] for x in e["descs"]] == [8, 8]
        hmp = q.hmp(f"info virtio-queue-element {path} 0 1")
        assert hmp.startswith(path + ":\r\n  device_name: virtio-rng\r\n"), hmp
        assert f"addr 0x{buf:x} len 8 (write, next)" in hmp, hmp
        # Hostile: the avail ring names a head beyond the ring.
        v.qtest.writew(vq.avail + 4 + 2 * 5, 999)
        r = q.execute("x-query-virtio-queue-element", path=path, queue=0, index=5)
        assert r["error"]["desc"] == "Invalid descriptor index 999"


GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
sleep 1
# Use every device: the disk, the random source, the console port.
dd if=/dev/vda of=/dev/null bs=4096 count=16 2>/dev/null
dd if=/dev/hwrng of=/dev/null bs=16 count=1 2>/dev/null
echo VIRTIO-GUEST-READY > /dev/ttyS0
echo VIRTIO-GUEST-READY
while true; do sleep 1; done
"""


def test_guest_driven_devices_match_qemu():
    """Debian's kernel negotiates with both VMMs; the reports must agree."""
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    work = lab.workdir("virtio-qmp-")
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_blk", "virtio-rng",
                                          "virtio_balloon", "virtio_console"])
    img = os.path.join(work, "disk.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    common = ["-m", "256M", "-smp", "1", "-display", "none", "-nodefaults", "-kernel",
              lab.kernel_path(), "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1",
              "-no-reboot"] + DEVICES + drive_args(img)
    helper = os.path.join(vtest.ROOT, "tests", "virtio_qmp", "guest_query.py")
    outs = {name: os.path.join(work, f"{name}.json") for name in ("vireo", "qemu")}
    q = lambda argv: " ".join(shlex.quote(a) for a in argv)
    script = " && ".join([
        q([sys.executable, helper, outs["vireo"], vtest.binary("vireo"), "-accel", "kvm"] + common),
        q([sys.executable, helper, outs["qemu"], QEMU, "-M", "pc", "-enable-kvm",
           "-cpu", "host"] + common),
    ])
    status, output = lab.run_vmm(script, timeout=600)
    assert status == 0, output[-4000:]
    ours, theirs = (json.load(open(outs[n])) for n in ("vireo", "qemu"))
    by_name = lambda r: {d["name"] for d in r["devices"]}
    assert by_name(ours) == by_name(theirs)
    diffs = []
    compare = ("name", "device-id", "guest-features", "host-features", "backend-features",
               "num-vqs", "status", "broken", "started", "device-endian", "vhost-started")
    for name, st in theirs["status"].items():
        for key in compare:
            if ours["status"][name][key] != st[key]:
                diffs.append(f"{name} {key}:\n  vireo: {ours['status'][name][key]}\n  qemu:  {st[key]}")
        assert "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready" in st["status"]["statuses"]
        for qa, qb in zip(ours["queues"][name], theirs["queues"][name]):
            for key in ("queue-index", "vring-num", "vring-num-default", "vring-align", "name"):
                if qa.get("return", {}).get(key) != qb.get("return", {}).get(key):
                    diffs.append(f"{name} queue {key}: {qa} / {qb}")
    assert ours["errors"] == theirs["errors"], (ours["errors"], theirs["errors"])
    # The guest's balloon driver inflated to the target in both VMMs.
    assert ours["balloon"] == theirs["balloon"], (ours["balloon"], theirs["balloon"])
    assert ours["balloon"]["after"] == 192 << 20 and ours["balloon"]["event"]
    assert not diffs, "\n".join(diffs)


if __name__ == "__main__":
    vtest.main()
