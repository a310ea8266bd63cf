#!/usr/bin/env python3
"""Boot Debian's own kernel on KVM (in the nested lab when this host's KVM
cannot run Linux) and check what the guest sees and what QMP reports:
SMP, serial interrupts, fw_cfg files, RTC_CHANGE, the ACPI power button,
stop/cont while busy, guest reboot, system_reset, poweroff, -S,
-no-reboot and a PVH boot. One lab job runs all of it (guest_scenarios.py).
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


def run_scenarios():
    if RESULTS:
        return RESULTS
    work = lab.workdir()
    initrd = lab.build_initramfs(os.path.join(work, "agent.cpio.gz"),
                                 open(os.path.join(HERE, "guest_scenarios.py")).read()
                                 .split('AGENT_INIT = r"""')[1].split('"""')[0],
                                 modules=["qemu_fw_cfg", "button"])
    fw_bin = os.path.join(work, "fw_cfg.bin")
    with open(fw_bin, "wb") as f:
        f.write(bytes(range(256)) * 37 + b"\0\xff tail")
    try:
        vmlinux = lab.vmlinux_path()
    except Exception:
        vmlinux = "-"
    start = time.monotonic()
    status, out = lab.run_vmm([sys.executable, os.path.join(HERE, "guest_scenarios.py"),
                               lab.kernel_path(), vmlinux, initrd, fw_bin], timeout=600)
    for line in out.splitlines():
        m = re.match(r"RESULT (\S+) (.*)$", line)
        if m:
            RESULTS[m.group(1)] = json.loads(m.group(2))
    RESULTS["_output"] = out
    print(f"# lab job: status {status}, {time.monotonic() - start:.1f} s", flush=True)
    errors = {k: v for k, v in RESULTS.items() if k.startswith("error_")}
    if errors:
        print(out[-4000:])
    return RESULTS


def get(name):
    r = run_scenarios()
    if name not in r:
        raise AssertionError(f"scenario {name} produced no result; errors: "
                             f"{ {k: v for k, v in r.items() if k.startswith('error_')} }")
    return r[name]


def test_smp_boot_to_init():
    assert get("smp")["cpus"] == 2


def test_serial_uses_interrupts():
    r = get("serial_irq")
    assert r["count"] > 0, r


def test_fw_cfg_files_in_guest():
    assert get("fw_cfg_string") == {"status": 0, "text": "hello fw_cfg"}
    r = get("fw_cfg_binary")
    assert r["status"] == 0 and r["guest"] == r["host"], r


def test_rtc_change_from_hwclock():
    r = get("rtc_change")
    assert r["status"] == 0, r
    assert abs(r["offset"] - r["expected"]) < 120, r
    assert r["qom_path"].startswith("/machine/"), r


def test_acpi_power_button():
    r = get("power_button")
    assert r["status"] == 0 and r["count"] >= 1, r


def test_stop_cont_while_busy():
    r = get("stop_cont")
    assert r["paused"]["status"] == "paused" and not r["paused"]["running"], r
    assert r["running"]["status"] == "running" and r["running"]["running"], r
    assert r["grew_while_stopped"] == 0, r
    assert r["grew_after_cont"] > 0, r


def test_guest_reboot_resets():
    assert get("guest_reboot")["reset"] == {"guest": True, "reason": "guest-reset"}


def test_system_reset():
    assert get("system_reset")["reset"] == {"guest": False, "reason": "host-qmp-system-reset"}


def test_guest_poweroff_ends_vm():
    r = get("poweroff")
    assert r["shutdown"] == {"guest": True, "reason": "guest-shutdown"}, r
    assert r["exit"] == 0, r
    assert not r["sanitizer"], r["sanitizer"]


def test_paused_start_and_no_reboot():
    r = get("no_reboot")
    assert r["prelaunch"]["status"] == "prelaunch", r
    assert r["output_while_paused"] == 0, r
    assert r["shutdown"] == {"guest": True, "reason": "guest-reset"}, r
    assert r["exit"] == 0, r
    assert not r["sanitizer"], r["sanitizer"]


def test_pvh_boot():
    if "pvh" not in run_scenarios() and not any(k == "error_pvh" for k in RESULTS):
        vtest.skip("no uncompressed kernel for PVH")
    r = get("pvh")
    assert r["shutdown"] == {"guest": True, "reason": "guest-shutdown"}, r
    assert not r["sanitizer"], r["sanitizer"]


def test_triple_fault_resets():
    r = get("triple_fault")
    assert r["shutdown"] == {"guest": True, "reason": "guest-reset"}, r
    assert r["exit"] == 0 and not r["sanitizer"], r


def test_no_scenario_errors():
    errors = {k: v for k, v in run_scenarios().items() if k.startswith("error_")}
    assert not errors, errors


vtest.main()
