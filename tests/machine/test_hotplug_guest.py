#!/usr/bin/env python3
"""PCI hotplug with a real Linux guest (in the nested lab when this host's
KVM cannot run Linux): the guest's ACPI PCI hotplug driver (acpiphp) lists
the slots from vireo's DSDT, a virtio-blk disk added with device_add shows
up and reads back the image's bytes, device_del makes the guest eject it
(DEVICE_DELETED for the backend and the device, as QEMU 7.2 sends them) and
the slot then takes a virtio-net NIC, which comes and goes the same way.
The balloon's guest-stats fill in once guest-stats-polling-interval is set.
"""
import json
import os
import re
import sys
import time

import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = {}


def run():
    if RESULTS:
        return RESULTS
    work = lab.workdir()
    agent = open(os.path.join(HERE, "guest_scenarios.py")).read()
    initrd = lab.build_initramfs(os.path.join(work, "hp.cpio.gz"),
                                 agent.split('AGENT_INIT = r"""')[1].split('"""')[0],
                                 modules=["virtio_pci", "virtio_blk", "virtio_net",
                                          "virtio_balloon"])
    disk = os.path.join(work, "hp-disk.raw")
    with open(disk, "wb") as f:
        f.write(bytes(range(256)) * 4096 * 2)       # 2 MiB with a pattern
    start = time.monotonic()
    status, out = lab.run_vmm([sys.executable, os.path.join(HERE, "hotplug_scenarios.py"),
                               lab.kernel_path(), initrd, disk], timeout=900)
    for line in out.splitlines():
        m = re.match(r"RESULT (\S+) (.*)$", line)
        if m:
            RESULTS[m.group(1)] = json.loads(m.group(2))
    print(f"# lab job: status {status}, {time.monotonic() - start:.1f} s", flush=True)
    if any(k.startswith("error_") for k in RESULTS) or status != 0:
        print(out[-4000:])
    return RESULTS


def get(name):
    r = run()
    assert name in r, f"no result {name}: {r}"
    return r[name]


def test_guest_lists_hotplug_slots():
    r = get("slots")
    assert r["status"] == 0 and "6" in r["slots"] and "31" in r["slots"], r


def test_disk_arrives_and_reads_back():
    r = get("disk_added")
    assert r["reply"] == {"return": {}}, r
    assert r["arrived"], r
    assert r["ids"][0] == "0x1af4", r
    assert r["md5"] == r["want"], r


def test_disk_ejected_by_the_guest():
    r = get("disk_removed")
    assert r["reply"] == {"return": {}}, r
    assert r["events"] == [{"path": "/machine/peripheral/hd/virtio-backend"},
                           {"device": "hd", "path": "/machine/peripheral/hd"}], r
    assert r["gone"] and r["no_vda"], r


def test_nic_comes_and_goes():
    r = get("nic_added")
    assert r["reply"] == {"return": {}} and r["arrived"], r
    r = get("nic_removed")
    assert r["events"][1] == {"device": "nic", "path": "/machine/peripheral/nic"}, r
    assert r["gone"], r


def test_balloon_guest_stats():
    r = get("balloon_stats")
    before = r["before"]["return"]     # what the driver sent when it started
    assert r["set"] == {"return": {}}, r
    assert r["interval"] == {"return": 1}, r
    st = r["stats"]["return"]
    assert st["last-update"] > before["last-update"], "polling brought no new report"
    total_kb = int(r["meminfo"].split()[1])
    # the driver reports MemTotal in bytes
    assert abs(st["stats"]["stat-total-memory"] - total_kb * 1024) < 8 << 20, r
    assert 0 < st["stats"]["stat-free-memory"] <= st["stats"]["stat-total-memory"], r


def test_clean_exit():
    r = get("exit")
    assert r["exit"] == 0 and not r["sanitizer"], r


def test_no_errors():
    errors = {k: v for k, v in run().items() if k.startswith("error_")}
    assert not errors, errors


vtest.main()
