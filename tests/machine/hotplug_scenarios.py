#!/usr/bin/env python3
"""Lab job of test_hotplug_guest.py: a Debian guest on vireo (KVM) sees PCI
devices arrive and leave through ACPI PCI hotplug. Prints RESULT lines.

  hotplug_scenarios.py KERNEL INITRD DISK_IMAGE
"""
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import guest_scenarios as gs  # noqa: E402
import vmm  # noqa: E402

result = gs.result


def qmp_args(qmp, name, **args):
    """Send with every argument in 'arguments' (vmm's execute() takes id= for itself)."""
    qmp.send_raw(json.dumps({"execute": name, "arguments": args}) + "\n")
    return qmp.reply()


def wait_guest(con, test, timeout=60):
    """Poll a shell test in the guest until it holds; True if it did."""
    st, _ = con.run(f"i=0; while ! {test}; do i=$((i+1)); [ $i -gt {timeout * 10} ] && exit 1; "
                    f"sleep 0.1; done", timeout=timeout + 30)
    return st == 0


def scenario(tmp, kernel, initrd, disk):
    with open(disk, "rb") as f:
        want = hashlib.md5(f.read(1 << 20)).hexdigest()
    v, qmp, con = gs.start_vm(tmp, kernel, initrd,
                              "-drive", f"if=none,id=d1,file={disk},format=raw",
                              "-netdev", "hubport,hubid=0,id=h0",
                              "-device", "virtio-balloon-pci,id=balloon0")
    try:
        con.expect(r"AGENT READY", timeout=180)
        con.run("modprobe virtio_pci; modprobe virtio_blk; modprobe virtio_net; "
                "modprobe virtio_balloon; true")
        st, out = con.run("ls /sys/bus/pci/slots")
        result("slots", status=st, slots=out.split())

        r = qmp_args(qmp, "device_add", driver="virtio-blk-pci", id="hd", drive="d1", addr="6")
        arrived = wait_guest(con, "[ -b /dev/vda ]")
        st, out = con.run("cat /sys/bus/pci/devices/0000:00:06.0/vendor "
                          "/sys/bus/pci/devices/0000:00:06.0/device; "
                          "dd if=/dev/vda bs=1M count=1 2>/dev/null | md5sum")
        words = out.split()
        result("disk_added", reply=r, arrived=arrived, ids=words[:2],
               md5=words[2] if len(words) > 2 else "", want=want)

        r = qmp_args(qmp, "device_del", id="hd")
        events = []
        try:
            events.append(qmp.wait_event("DEVICE_DELETED", timeout=60)["data"])
            events.append(qmp.wait_event("DEVICE_DELETED", timeout=10)["data"])
        except Exception as e:  # reported below
            events.append(f"{type(e).__name__}: {e}")
        gone = wait_guest(con, "[ ! -e /sys/bus/pci/devices/0000:00:06.0 ]", timeout=30)
        st, _ = con.run("[ ! -b /dev/vda ]")
        result("disk_removed", reply=r, events=events, gone=gone, no_vda=st == 0)

        # the same slot again, now a NIC
        r = qmp_args(qmp, "device_add", driver="virtio-net-pci", id="nic", netdev="h0",
                     addr="6", mac="52:54:00:00:00:42")
        arrived = wait_guest(con, "grep -qs 52:54:00:00:00:42 /sys/class/net/*/address")
        result("nic_added", reply=r, arrived=arrived)
        qmp_args(qmp, "device_del", id="nic")
        ev = qmp.wait_event("DEVICE_DELETED", timeout=60)["data"]
        ev2 = qmp.wait_event("DEVICE_DELETED", timeout=10)["data"]
        gone = wait_guest(con, '[ -z "$(grep -ls 52:54:00:00:00:42 /sys/class/net/*/address)" ]', 30)
        result("nic_removed", events=[ev, ev2], gone=gone)

        # guest-stats, as virsh dommemstat reads them
        path = "/machine/peripheral/balloon0"
        before = qmp_args(qmp, "qom-get", path=path, property="guest-stats")
        r = qmp_args(qmp, "qom-set", path=path, property="guest-stats-polling-interval", value=1)
        deadline = time.monotonic() + 30
        stats = None
        while time.monotonic() < deadline:
            stats = qmp_args(qmp, "qom-get", path=path, property="guest-stats")
            first = before.get("return", {}).get("last-update", 0)
            if stats.get("return", {}).get("last-update", 0) > first:
                break           # a report the polling asked for
            time.sleep(0.5)
        st, out = con.run("grep MemTotal /proc/meminfo")
        result("balloon_stats", before=before, set=r, stats=stats,
               interval=qmp_args(qmp, "qom-get", path=path,
                                 property="guest-stats-polling-interval"),
               meminfo=out.strip())

        con.sock.sendall(b"poweroff -f\n")
        qmp.wait_event("SHUTDOWN", timeout=60)
        result("exit", exit=v.wait(30), sanitizer=gs.sanitizer_report(v))
    finally:
        v.close()


def main():
    kernel, initrd, disk = sys.argv[1:4]
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR") or "/tmp"
    try:
        scenario(tmp, kernel, initrd, disk)
    except Exception as e:
        result("error_main", error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
