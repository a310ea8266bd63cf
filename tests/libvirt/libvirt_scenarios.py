#!/usr/bin/env python3
"""libvirt 9.0 driving vireo, run where KVM works (the host or the lab's L1).

usage: libvirt_scenarios.py VIREO KERNEL INITRD [QEMU]

Starts a private libvirtd (lvd.py) and prints one line per scenario,
"RESULT name {json}", which test_libvirt_probe.py checks:
  probe            virsh domcapabilities --emulatorbin VIREO (and the QMP
                   libvirt exchanged with vireo while probing)
  probe_qemu       the same for QEMU 7.2, when given, for a side-by-side view
  lifecycle        define, dumpxml (the machine and PCI addresses libvirt
                   chose), start --paused, domstate, resume, suspend,
                   qemu-monitor-command (QMP and HMP), console, reboot (the
                   guest boots again), shutdown (ACPI power button: the guest
                   powers off, the domain ends shut off), undefine
  bad_*            domain XML asking for what vireo lacks: virsh start fails
                   with vireo's message, libvirtd stays up
"""
import json
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lvd  # noqa: E402


def result(name, value):
    print(f"RESULT {name} {json.dumps(value)}", flush=True)


USB_NONE = "<controller type='usb' model='none'/>"


def domain_xml(name, vireo, kernel, initrd, devices="", machine="pc", extra="",
               usb=USB_NONE):
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  {extra}
  <devices>
    <emulator>{vireo}</emulator>
    {usb}
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    {devices}
  </devices>
</domain>
"""


def probe(d, binary):
    st, out, err = d.virsh("domcapabilities", "--emulatorbin", binary, "--arch", "x86_64",
                           "--virttype", "kvm", timeout=300)
    return {"status": st, "xml": out, "stderr": err}


def qmp_log(d, since):
    lines = d.qmp_traffic()
    return lines[since:]


def run_cmd(d, log, *args, timeout=120):
    st, out, err = d.virsh(*args, timeout=timeout)
    log.append({"args": list(args), "status": st, "out": out, "err": err})
    return st, out, err


def read_console(d, dom, marker, timeout):
    """What `virsh console` shows until marker appears (or timeout). virsh
    wants a terminal, so it gets a pseudo-terminal as its controlling tty."""
    import fcntl
    import pty
    import select
    import subprocess
    import termios
    master, slave = pty.openpty()

    def make_ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = subprocess.Popen(["virsh", "-c", d.uri, "console", "--force", dom],
                         stdin=slave, stdout=slave, stderr=slave, preexec_fn=make_ctty,
                         env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": d.dir,
                              "TERM": "dumb"})
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline and p.poll() is None:
        r, _, _ = select.select([master], [], [], 1)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    os.write(master, b"\x1d")          # Ctrl-]: leave the console
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    os.close(master)
    return out.decode(errors="replace")[-4000:]


def wait_domstate(d, log, dom, want, timeout):
    """Poll virsh domstate until it says want (or timeout); the last answer is logged."""
    deadline = time.monotonic() + timeout
    while True:
        st, out, err = d.virsh("domstate", "--reason", dom)
        if out.strip().startswith(want) or time.monotonic() > deadline:
            log.append({"args": ["domstate", "--reason", dom], "status": st, "out": out,
                        "err": err, "waited_for": want})
            return out.strip()
        time.sleep(0.5)


def lifecycle(d, vireo, kernel, initrd, scratch):
    log = []
    xml = os.path.join(scratch, "dom.xml")
    with open(xml, "w") as f:
        f.write(domain_xml("vireo-lv1", vireo, kernel, initrd))
    run_cmd(d, log, "define", xml)
    run_cmd(d, log, "dumpxml", "vireo-lv1")
    run_cmd(d, log, "start", "--paused", "vireo-lv1", timeout=300)
    run_cmd(d, log, "domstate", "vireo-lv1")
    run_cmd(d, log, "qemu-monitor-command", "vireo-lv1", '{"execute":"x-query-virtio"}')
    run_cmd(d, log, "qemu-monitor-command", "--hmp", "vireo-lv1", "info virtio")
    run_cmd(d, log, "qemu-monitor-command", "vireo-lv1", '{"execute":"query-chardev"}')
    run_cmd(d, log, "resume", "vireo-lv1")
    run_cmd(d, log, "domstate", "vireo-lv1")
    run_cmd(d, log, "suspend", "vireo-lv1")
    run_cmd(d, log, "domstate", "vireo-lv1")
    run_cmd(d, log, "resume", "vireo-lv1")
    console = read_console(d, "vireo-lv1", b"VIREO-GUEST-READY", timeout=240)
    run_cmd(d, log, "qemu-monitor-command", "vireo-lv1", '{"execute":"query-cpus-fast"}')
    # reboot: libvirt presses the power button and, once the guest has
    # powered off, resets and continues it; the guest boots again
    run_cmd(d, log, "reboot", "vireo-lv1")
    console2 = read_console(d, "vireo-lv1", b"VIREO-GUEST-READY", timeout=240)
    # shutdown: the ACPI power button; the guest powers off, libvirt sees
    # SHUTDOWN and the domain ends shut off
    run_cmd(d, log, "shutdown", "--mode", "acpi", "vireo-lv1")
    wait_domstate(d, log, "vireo-lv1", "shut off", timeout=180)
    if d.virsh("domstate", "vireo-lv1")[1].strip() != "shut off":
        run_cmd(d, log, "destroy", "vireo-lv1")
    run_cmd(d, log, "undefine", "vireo-lv1")
    qemu_log = os.path.join(d.dir, "log", "qemu", "vireo-lv1.log")
    try:
        with open(qemu_log, errors="replace") as f:
            cmdline = f.read()[-6000:]
    except OSError:
        cmdline = ""
    return {"steps": log, "qemu_log": cmdline, "console": console, "console2": console2}


def disks(d, vireo, kernel, initrd, scratch):
    """A domain with a raw virtio disk (-blockdev under libvirt), its block
    and memory statistics, a balloon target, and a second disk attached and
    detached while it runs paused."""
    log = []
    for name in ("disk0.img", "disk1.img"):
        with open(os.path.join(scratch, name), "wb") as f:
            f.truncate(16 << 20)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{scratch}/disk0.img'/><target dev='vda' bus='virtio'/></disk>")
    xml = os.path.join(scratch, "disk.xml")
    with open(xml, "w") as f:
        f.write(domain_xml("vireo-lv2", vireo, kernel, initrd, devices=disk))
    extra = os.path.join(scratch, "disk1.xml")
    with open(extra, "w") as f:
        f.write("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                f"<source file='{scratch}/disk1.img'/><target dev='vdb' bus='virtio'/></disk>")
    run_cmd(d, log, "define", xml)
    run_cmd(d, log, "start", "--paused", "vireo-lv2", timeout=300)
    run_cmd(d, log, "domblklist", "vireo-lv2")
    run_cmd(d, log, "domblkstat", "vireo-lv2", "vda")
    run_cmd(d, log, "dommemstat", "vireo-lv2")
    run_cmd(d, log, "setmem", "vireo-lv2", "200M", "--live")
    run_cmd(d, log, "qemu-monitor-command", "vireo-lv2", '{"execute":"query-balloon"}')
    run_cmd(d, log, "attach-device", "vireo-lv2", extra, "--live")
    run_cmd(d, log, "domblklist", "vireo-lv2")
    run_cmd(d, log, "detach-device", "vireo-lv2", extra, "--live")
    run_cmd(d, log, "destroy", "vireo-lv2")
    run_cmd(d, log, "domstate", "vireo-lv2")
    run_cmd(d, log, "undefine", "vireo-lv2")
    qemu_log = os.path.join(d.dir, "log", "qemu", "vireo-lv2.log")
    try:
        with open(qemu_log, errors="replace") as f:
            cmdline = f.read()[-6000:]
    except OSError:
        cmdline = ""
    return {"steps": log, "qemu_log": cmdline}


BAD = {
    # an ISA floppy controller and drive: PC hardware vireo's board does not have
    "bad_floppy": "<disk type='file' device='floppy'><driver name='qemu' type='raw'/>"
                  "<source file='{scratch}/floppy.img'/><target dev='fda' bus='fdc'/></disk>",
    # an audio back-end other than none
    "bad_audio": "<audio id='1' type='oss'/>",
    # a device type vireo does not list (libvirt refuses it from the probe)
    "bad_q35_device": "<iommu model='intel'/>",
    # libvirt's default USB controller for a pc-i440fx machine (PIIX3 UHCI,
    # which vireo does not have; libvirt then asks for -usb)
    "bad_usb": "",
}


def bad_inputs(d, vireo, kernel, initrd, scratch):
    out = {}
    with open(os.path.join(scratch, "floppy.img"), "wb") as f:
        f.truncate(1474560)
    for name, devices in BAD.items():
        log = []
        xml = os.path.join(scratch, f"{name}.xml")
        dom = "vireo-" + name.replace("_", "-")
        with open(xml, "w") as f:
            f.write(domain_xml(dom, vireo, kernel, initrd,
                               devices=devices.replace("{scratch}", scratch),
                               usb="" if name == "bad_usb" else USB_NONE))
        run_cmd(d, log, "define", xml)
        run_cmd(d, log, "start", dom, timeout=300)
        run_cmd(d, log, "destroy", dom)
        run_cmd(d, log, "undefine", dom)
        out[name] = {"steps": log, "healthy": d.healthy()}
    return out


def main():
    vireo, kernel, initrd = sys.argv[1:4]
    qemu = sys.argv[4] if len(sys.argv) > 4 else None
    scratch = tempfile.mkdtemp(prefix="lv-", dir=os.environ.get("LAB_TMP") or None)
    d = lvd.Libvirtd(os.path.join(scratch, "lvd"))
    t0 = time.monotonic()
    try:
        d.start(timeout=240)
        result("started", {"seconds": time.monotonic() - t0})
        n = len(d.qmp_traffic())
        r = probe(d, vireo)
        r["qmp"] = qmp_log(d, n)
        result("probe", r)
        if qemu:
            n = len(d.qmp_traffic())
            r = probe(d, qemu)
            r["qmp"] = qmp_log(d, n)
            result("probe_qemu", r)
        result("lifecycle", lifecycle(d, vireo, kernel, initrd, scratch))
        result("disks", disks(d, vireo, kernel, initrd, scratch))
        for name, r in bad_inputs(d, vireo, kernel, initrd, scratch).items():
            result(name, r)
        result("healthy", d.healthy())
    except Exception:
        result("error_scenarios", traceback.format_exc() + d.tail(6000))
    finally:
        d.close()
        result("log_tail", d.tail(4000))
        lvd.cleanup(scratch)


if __name__ == "__main__":
    main()
