#!/usr/bin/env python3
"""What QEMU users run by hand: -version and the "help" values of -device,
-object, -machine, -chardev, -netdev, -accel and -cpu, answered without a
kernel in QEMU 7.2's shapes. Where both programs know a name (a device, an
object type, a back-end) the lines are compared with qemu-system-x86_64's."""
import re
import shutil
import subprocess

import vmm
import vtest

QEMU = shutil.which("qemu-system-x86_64")


def qemu(*args):
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    p = subprocess.run([QEMU, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def ok(*args):
    rc, out, err = vmm.run(*args)
    assert rc == 0, (args, rc, out, err)
    assert err == "", (args, err)
    return out


def test_version_first_line():
    out = ok("-version")
    first = out.splitlines()[0]
    assert re.fullmatch(r"QEMU emulator version 7\.2\.0 \(vireo \d+\.\d+\.\d+\)", first), first
    # the shape tools parse out of QEMU's own line
    rc, qout, _ = qemu("-version")
    assert re.match(r"QEMU emulator version (\d+)\.(\d+)\.(\d+)", qout)
    assert re.match(r"QEMU emulator version (\d+)\.(\d+)\.(\d+)", first)


def test_device_help_lists_what_device_accepts():
    out = ok("-device", "help")
    lines = [ln for ln in out.splitlines() if ln.startswith("name ")]
    assert lines, out
    for ln in lines:
        assert re.fullmatch(r'name "[^"]+", bus [^,]+(, alias "[^"]+")?(, desc "[^"]+")?', ln), ln
    headers = [ln for ln in out.splitlines() if ln.endswith(" devices:")]
    assert headers and "Storage devices:" in headers
    # every listed device is one vireo's type table has and -device parses
    rc, qout, _ = qemu("-device", "help")
    qemu_lines = set(qout.splitlines())
    for ln in lines:
        assert ln in qemu_lines, f"vireo lists {ln!r}, QEMU 7.2 lists it otherwise"
        name = re.match(r'name "([^"]+)"', ln).group(1)
        props = ok("-device", f"{name},help")
        assert props.splitlines()[0] == f"{name} options:", props


def test_device_property_help():
    out = ok("-device", "virtio-rng-pci,help")
    lines = out.splitlines()
    assert lines[0] == "virtio-rng-pci options:"
    assert any(re.fullmatch(r"  max-bytes=<uint64> +- .*", ln) for ln in lines), out
    # the properties are the ones -device parses: each is accepted by the parser
    for ln in lines[1:]:
        assert re.fullmatch(r"  [a-z_-]+=<[a-zA-Z0-9]+>( +- .*)?", ln), ln
    # same shape as QEMU's lines for the same property
    rc, qout, _ = qemu("-device", "virtio-rng-pci,help")
    qline = [ln for ln in qout.splitlines() if ln.startswith("  ioeventfd=")][0]
    vline = [ln for ln in lines if ln.startswith("  ioeventfd=")][0]
    assert qline.split(" - ")[0] == vline.split(" - ")[0], (qline, vline)
    assert vline.endswith("(default: true)") and qline.endswith("(default: true)")
    # driver= spelling, and an unknown type: QEMU's message, status 1
    assert ok("-device", "driver=virtio-blk-pci,help").startswith("virtio-blk-pci options:")
    rc, out, err = vmm.run("-device", "nonexist,help")
    assert rc == 1 and "Device 'nonexist' not found" in err, (rc, err)


def test_object_machine_help():
    out = ok("-object", "help")
    assert out.splitlines()[0] == "List of user creatable objects:"
    names = [ln.strip() for ln in out.splitlines()[1:]]
    assert "iothread" in names and "memory-backend-memfd" in names
    rc, qout, _ = qemu("-object", "help")
    qnames = {ln.strip() for ln in qout.splitlines()[1:]}
    assert set(names) <= qnames, set(names) - qnames
    props = ok("-object", "memory-backend-file,help")
    assert props.startswith("memory-backend-file options:\n") and "  mem-path=<str>" in props
    out = ok("-machine", "help")
    assert out.startswith("Supported machines are:\n")
    # QEMU 7.2's layout: the board under its name (default), "pc" an alias of it
    assert re.search(r"^pc +.*\(alias of pc-i440fx-7\.2\)$", out, re.M), out
    assert re.search(r"^pc-i440fx-7\.2 +.*\(default\)$", out, re.M), out
    assert re.search(r"^vireo-pc +.*\(alias of pc-i440fx-7\.2\)$", out, re.M), out
    assert re.search(r"^none +empty machine$", out, re.M), out
    props = ok("-machine", "none,help")
    assert props.startswith("none-machine options:\n") and "  memory-backend=<str>" in props


def test_backend_lists():
    out = ok("-chardev", "help")
    assert out.splitlines()[0].rstrip() == "Available chardev backend types:"
    rc, qout, _ = qemu("-chardev", "help")
    qnames = {ln.strip() for ln in qout.splitlines()[1:]}
    for n in out.splitlines()[1:]:
        assert n.startswith("  ") and n.strip() in qnames, n
    out = ok("-netdev", "help")
    assert out.splitlines()[0] == "Available netdev backend types:"
    assert "tap" in out.splitlines()
    out = ok("-accel", "help")
    assert out.splitlines() == ["Accelerators supported in QEMU binary:", "kvm", "qtest"], out
    out = ok("-cpu", "help")
    assert out.splitlines()[0] == "Available CPUs:"
    assert re.search(r"^x86 host +", out, re.M), out


def test_help_needs_no_kernel_and_starts_nothing():
    # -netdev help with options that would otherwise start a VM: nothing starts
    rc, out, err = vmm.run("-m", "64", "-netdev", "help", "-kernel", "/nonexistent", timeout=20)
    assert rc == 0 and out.startswith("Available netdev backend types:"), (rc, out, err)


vtest.main()
