#!/usr/bin/env python3
"""Debian's libvirt 9.0 drives vireo: `virsh domcapabilities --emulatorbin`,
then a domain with direct kernel boot, a pty serial console, virtio-rng and
a balloon is defined, started paused, resumed, suspended, asked
qemu-monitor-command (QMP x-query-virtio, HMP info virtio), its console
read, destroyed and undefined; domain XML asking for what vireo lacks fails
`virsh start` and libvirtd stays up. A private libvirtd (lvd.py) runs where
KVM works: on the host, or inside the lab's L1 (libvirt_scenarios.py)."""
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET

import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = {}

# The guest powers off when the ACPI power button is pressed: the button
# driver enables the fixed event, and a watcher polls its count (no acpid in
# the image). Each boot prints its boot id, so a reboot shows a new one.
GUEST_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
load-modules
echo VIREO-GUEST-UP boot=$(cat /proc/sys/kernel/random/boot_id)
(while :; do
    set -- $(cat /sys/firmware/acpi/interrupts/ff_pwr_btn 2>/dev/null)
    if [ "${1:-0}" -gt 0 ]; then echo VIREO-POWER-BUTTON; poweroff -f; fi
    sleep 0.2
done) &
echo VIREO-GUEST-READY
while :; do sleep 1000; done
"""


def run_scenarios():
    if RESULTS:
        return RESULTS
    if os.geteuid() != 0:
        vtest.skip("libvirtd in a private mount namespace needs root")
    work = lab.workdir()
    initrd = lab.build_initramfs(os.path.join(work, "lvguest.cpio.gz"), GUEST_INIT,
                                 modules=["button"])
    start = time.monotonic()
    status, out = lab.run_vmm([sys.executable, os.path.join(HERE, "libvirt_scenarios.py"),
                               vtest.binary("vireo"), lab.kernel_path(), initrd],
                              timeout=1500)
    for line in out.splitlines():
        m = re.match(r"RESULT (\S+) (.*)$", line)
        if m:
            RESULTS[m.group(1)] = json.loads(m.group(2))
    RESULTS["_output"] = out
    print(f"# lab job: status {status}, {time.monotonic() - start:.1f} s", flush=True)
    if "error_scenarios" in RESULTS:
        print(RESULTS["error_scenarios"][-4000:])
    return RESULTS


def get(name):
    r = run_scenarios()
    if name not in r:
        raise AssertionError(f"scenario {name} produced no result: "
                             f"{r.get('error_scenarios', r['_output'][-3000:])}")
    return r[name]


def step(result, *args):
    """The first step of a scenario whose virsh arguments start with args."""
    for s in result["steps"]:
        if tuple(s["args"][:len(args)]) == args:
            return s
    raise AssertionError(f"no step {args}")


def steps(result, *args):
    return [s for s in result["steps"] if tuple(s["args"][:len(args)]) == args]


def test_domcapabilities():
    r = get("probe")
    assert r["status"] == 0, r["stderr"] + r["xml"]
    caps = ET.fromstring(r["xml"])
    assert caps.findtext("domain") == "kvm"
    assert caps.findtext("arch") == "x86_64"
    # the board's name, as libvirt canonicalises "pc" (QEMU's layout)
    assert caps.findtext("machine") == "pc-i440fx-7.2"
    assert caps.find("vcpu").get("max") == "254"
    rng = caps.find("devices/rng")
    assert rng.get("supported") == "yes"
    assert [v.text for v in rng.findall("enum[@name='model']/value")] == ["virtio"]
    assert sorted(v.text for v in rng.findall("enum[@name='backendModel']/value")) == \
        ["builtin", "random"]
    # vireo has no display and no TPM: libvirt learned it from the probe
    assert [v.text for v in caps.findall("devices/video/enum/value")] == ["none"]
    assert caps.find("devices/tpm").get("supported") == "no"
    assert "virtio" in [v.text for v in caps.findall("devices/disk/enum[@name='bus']/value")]
    # what libvirt asked and vireo answered, for the record
    sent = [json.loads(re.search(r"msg=(.*)$", ln).group(1))["execute"]
            for ln in r["qmp"] if "QEMU_MONITOR_SEND_MSG" in ln]
    print(f"# probe: {len(sent)} QMP commands: {', '.join(dict.fromkeys(sent))}")
    assert "query-machines" in sent and "qom-list-types" in sent


def test_paused_domain_lifecycle():
    r = get("lifecycle")
    assert step(r, "define")["status"] == 0, step(r, "define")
    # libvirt laid out pci.0 for the board: the machine is the board's name,
    # the virtio devices got slots from 2 on (slot 1 is the PIIX3's on an
    # i440FX, which libvirt leaves alone), the USB controller is none
    dom = ET.fromstring(step(r, "dumpxml")["out"])
    assert dom.find("os/type").get("machine") == "pc-i440fx-7.2"
    slots = sorted(int(a.get("slot"), 16) for a in dom.findall("devices/*/address[@type='pci']"))
    assert slots == [2, 3], slots
    assert dom.find("devices/controller[@type='pci']").get("model") == "pci-root"
    start = step(r, "start")
    assert start["status"] == 0, start["err"] + r["qemu_log"][-3000:]
    assert steps(r, "domstate")[0]["out"].strip() == "paused"
    assert step(r, "resume")["status"] == 0, step(r, "resume")
    assert steps(r, "domstate")[1]["out"].strip() == "running"
    assert step(r, "suspend")["status"] == 0, step(r, "suspend")
    assert steps(r, "domstate")[2]["out"].strip() == "paused"
    assert step(r, "undefine")["status"] == 0
    # the command line libvirt built for vireo
    log = r["qemu_log"]
    for opt in ("-machine pc-i440fx-7.2,usb=off", '"bus":"pci.0","addr":"0x2"',
                "-no-user-config", "-chardev pty,id=charserial0", "isa-serial",
                "virtio-rng-pci", "virtio-balloon-pci", "-object secret,id=masterKey0"):
        assert opt in log, (opt, log[-3000:])


def test_monitor_pass_through():
    r = get("lifecycle")
    qmp = step(r, "qemu-monitor-command", "vireo-lv1", '{"execute":"x-query-virtio"}')
    assert qmp["status"] == 0, qmp
    reply = json.loads(qmp["out"])
    names = sorted(d["name"] for d in reply["return"])
    assert names == ["virtio-balloon", "virtio-rng"], reply
    hmp = step(r, "qemu-monitor-command", "--hmp")
    assert hmp["status"] == 0, hmp
    assert "virtio-rng" in hmp["out"] and "virtio-balloon" in hmp["out"], hmp["out"]
    chardev = json.loads(step(r, "qemu-monitor-command", "vireo-lv1",
                              '{"execute":"query-chardev"}')["out"])
    pty = [c for c in chardev["return"] if c["label"] == "charserial0"]
    assert pty and re.fullmatch(r"pty:/dev/pts/\d+", pty[0]["filename"]), chardev


def test_reboot_and_acpi_shutdown():
    r = get("lifecycle")
    boots = [re.findall(r"VIREO-GUEST-UP boot=(\S+)", r[k]) for k in ("console", "console2")]
    assert step(r, "reboot")["status"] == 0, step(r, "reboot")
    assert boots[0] and boots[1] and boots[0][-1] != boots[1][-1], \
        (boots, r["console2"][-2000:])
    assert step(r, "shutdown")["status"] == 0, step(r, "shutdown")
    state = step(r, "domstate", "--reason")
    assert state["out"].strip() == "shut off (shutdown)", (state, r["qemu_log"][-2000:])
    assert not steps(r, "destroy"), "the domain did not power off by itself"


def test_console_and_vcpus():
    r = get("lifecycle")
    assert "VIREO-GUEST-UP" in r["console"], r["console"][-2000:]
    cpus = json.loads(step(r, "qemu-monitor-command", "vireo-lv1",
                           '{"execute":"query-cpus-fast"}')["out"])["return"]
    assert len(cpus) == 1 and cpus[0]["thread-id"] > 0 and cpus[0]["cpu-index"] == 0, cpus


def test_disk_statistics_balloon_and_hotplug():
    r = get("disks")
    start = step(r, "start")
    assert start["status"] == 0, start["err"] + r["qemu_log"][-3000:]
    assert "-blockdev" in r["qemu_log"], r["qemu_log"][-3000:]
    blk = steps(r, "domblklist")
    assert blk[0]["status"] == 0 and re.search(r"vda\s+\S+/disk0\.img", blk[0]["out"]), blk[0]
    stat = step(r, "domblkstat")
    assert stat["status"] == 0 and re.search(r"vda rd_req \d+", stat["out"]), stat
    mem = step(r, "dommemstat")
    assert mem["status"] == 0 and re.search(r"^actual \d+", mem["out"], re.M), mem
    assert step(r, "setmem")["status"] == 0, step(r, "setmem")
    attach = step(r, "attach-device")
    assert attach["status"] == 0, attach
    assert "vdb" in blk[1]["out"], blk[1]
    assert step(r, "detach-device")["status"] == 0, step(r, "detach-device")
    assert step(r, "destroy")["status"] == 0
    assert steps(r, "domstate")[-1]["out"].strip() == "shut off"


def test_bad_input_fails_start_clearly():
    floppy = get("bad_floppy")
    start = step(floppy, "start")
    assert start["status"] != 0
    assert "vireo:" in start["err"], start["err"]
    audio = get("bad_audio")
    start = step(audio, "start")
    assert start["status"] != 0
    assert "audio driver 'oss' is not supported" in start["err"], start["err"]
    usb = step(get("bad_usb"), "start")
    assert usb["status"] != 0
    assert "vireo has no USB controller" in usb["err"], usb["err"]
    iommu = get("bad_q35_device")
    refused = [s for s in iommu["steps"][:2] if s["status"] != 0]
    assert refused, iommu["steps"]
    for name in ("bad_floppy", "bad_audio", "bad_q35_device", "bad_usb"):
        assert get(name)["healthy"], name
    assert get("healthy") is True


vtest.main()
