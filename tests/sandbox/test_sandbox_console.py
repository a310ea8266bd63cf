#!/usr/bin/env python3
"""The sandbox with a real guest on a terminal, as `make run` uses vireo:
`-serial mon:stdio` on a pty, HMP commands behind Ctrl-A c, guest output
and input, the guest reading the RTC and the disk, `poweroff -f`. With
the default settings (the sandbox on) the VM must live to the end.

This once died of SIGSYS in `make run`: the first time conversion on a
vCPU thread (the RTC, when the guest reads the clock) made the C library
open /etc/localtime, and only the main loop may open files. Sanitizer
builds let every thread open files (their run-times need it), so the run
is also traced: no thread but the main one may open a file once the
filter is on.

Runs in the nested lab where this host's KVM cannot boot Linux.
"""
import json
import os
import re
import shutil
import sys

import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULT = {}

INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
load-modules 2>/dev/null
echo "=== ready"
exec setsid cttyhack sh
"""


def result():
    if RESULT:
        return RESULT
    if not shutil.which("strace"):
        vtest.skip("strace is not installed (scripts/install-deps installs it)")
    work = lab.workdir()
    initrd = lab.build_initramfs(os.path.join(work, "console.cpio.gz"), INIT,
                                 modules=["qemu_fw_cfg", "virtio_pci", "virtio_blk"])
    status, out = lab.run_vmm([sys.executable, os.path.join(HERE, "console_pty.py"),
                               vtest.binary("vireo"), vtest.binary("vireo-img"),
                               lab.kernel_path(), initrd, "--strace"], timeout=900)
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        raise AssertionError(f"the lab job gave no result (status {status}):\n{out[-3000:]}")
    RESULT.update(json.loads(m.group(1)))
    return RESULT


def show(r):
    return "\n" + r.get("tail", "")


def test_filter_is_on_by_default():
    r = result()
    assert r["booted"], show(r)
    assert r["status"].get("Seccomp") == "2", r["status"]
    assert r["status"].get("NoNewPrivs") == "1", r["status"]


def test_guest_console_and_devices_work():
    r = result()
    assert r.get("fw_cfg"), show(r)
    m = re.search(r"\b(20\d\d)\b", r.get("hwclock", "").split("\n", 1)[-1])
    assert m and int(m.group(1)) >= 2023 and "rc=0" in r["hwclock"], r.get("hwclock")
    assert r.get("guest_echo"), show(r)
    assert r.get("disk_read"), show(r)


def test_monitor_on_the_same_terminal():
    r = result()
    assert "VM status: running" in r.get("info_status", ""), r.get("info_status")
    assert re.search(r"filename=stdio", r.get("info_chardev", "")), r.get("info_chardev")


def test_vm_ends_cleanly():
    r = result()
    assert r["exit"] == {"code": 0}, (r["exit"], r.get("exit_in_strace"), show(r))


def test_no_thread_but_main_opens_files():
    r = result()
    assert r["late_opens"] == [], r["late_opens"]


if __name__ == "__main__":
    vtest.main()
