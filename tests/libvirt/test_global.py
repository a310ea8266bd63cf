"""-global DRIVER.PROP=VALUE (libvirt emits it): a default applied to every
-device of that type through the device's own option table; QEMU 7.2's
error for an unknown property and its warning for an unknown type. The
board's own devices take globals too: kvm-pit.lost_tick_policy (the
in-kernel PIT) and PIIX4_PM.disable_s3/disable_s4 (vireo's ACPI has no
S3/S4, so only "disabled" is accepted), as libvirt emits them for
<timer name='pit' tickpolicy='delay'/> and <pm>."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "machine"))
from tinyguest import HALT, pvh_elf  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")


def run(binary, *args):
    p = subprocess.run([binary, "-nodefaults", "-display", "none", "-S", *args,
                        "-qmp", "stdio"], input='{"execute":"qmp_capabilities"}\n'
                       '{"execute":"quit"}\n', capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


def vireo(*args):
    return run(vtest.binary("vireo"), "-accel", "qtest", *args)


def message(stderr):
    """The text after the program name ("vireo: ", "qemu-system-x86_64: ")."""
    return [ln.split(": ", 1)[1] for ln in stderr.splitlines() if ": " in ln]


def test_global_applies_to_every_device_of_the_type():
    two = ("-device", "virtio-rng-pci,id=r0", "-device", "virtio-rng-pci,id=r1")
    # Both get addr=0x6: the second cannot have the slot.
    rc, err = vireo(*two, "-global", "virtio-rng-pci.addr=0x6")
    assert rc != 0 and "slot 6 function 0 not available" in err, err
    # A value the user wrote on the -device wins over the global.
    rc, err = vireo("-device", "virtio-rng-pci,id=r0",
                    "-device", "virtio-rng-pci,id=r1,addr=0x7",
                    "-global", "driver=virtio-rng-pci,property=addr,value=0x6")
    assert rc == 0, err
    # -global before the -device it applies to works the same.
    rc, err = vireo("-global", "virtio-rng-pci.addr=0x6", *two)
    assert rc != 0 and "slot 6 function 0 not available" in err, err
    rc, err = vireo("-global", "driver=virtio-rng-pci,property=addr", *two)
    assert rc != 0 and "Parameter 'value' is missing" in err, err


def test_unknown_property_and_type_as_qemu():
    cases = [
        ("-device", "virtio-rng-pci,id=r0", "-global", "virtio-rng-pci.foo=1"),
        ("-global", "nope.x=1"),
    ]
    ours = [vireo(*c) for c in cases]
    assert ours[0][0] != 0
    assert message(ours[0][1]) == ["-device virtio-rng-pci,id=r0: can't apply global "
                                   "virtio-rng-pci.foo=1: Property 'virtio-rng-pci.foo' not found"]
    assert ours[1][0] == 0 and message(ours[1][1]) == [
        "warning: global nope.x has invalid class name"], ours[1]
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    for c, (rc, err) in zip(cases, ours):
        qrc, qerr = run(QEMU, "-M", "pc", "-accel", "tcg", *c)
        assert (rc == 0) == (qrc == 0), (c, qerr)
        assert message(err) == [m for m in message(qerr) if "terminating" not in m], (c, err, qerr)


def test_board_built_devices_as_qemu():
    """PIIX4_PM globals: the same answers as QEMU 7.2's pc machine where
    both have the state asked for (vireo has no S3, so disable_s3=0 is refused)."""
    cases = [("PIIX4_PM.foo=1",), ("PIIX4_PM.disable_s3=1",), ("PIIX4_PM.disable_s4=0x1",),
             ("PIIX4_PM.disable_s3=x",), ("PIIX4_PM.disable_s3=256",)]
    ours = [vireo("-global", c[0]) for c in cases]
    assert message(ours[0][1]) == [
        "can't apply global PIIX4_PM.foo=1: Property 'PIIX4_PM.foo' not found"], ours[0]
    assert ours[1] == (0, "") and ours[2] == (0, ""), ours[1:3]
    rc, err = vireo("-global", "PIIX4_PM.disable_s3=0")
    assert rc != 0 and message(err) == ["can't apply global PIIX4_PM.disable_s3=0: vireo's "
                                        "ACPI has no S3 (suspend to RAM) sleep state"], err
    rc, err = vireo("-global", "driver=PIIX4_PM,property=disable_s4,value=0")
    assert rc != 0 and "no S4 (suspend to disk)" in err, err
    # what libvirt reads to allow <pm> and a PIT tick policy
    p = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-nodefaults", "-S",
                        "-qmp", "stdio"], capture_output=True, text=True, timeout=60,
                       input='{"execute":"qmp_capabilities"}\n'
                       '{"execute":"device-list-properties","arguments":{"typename":"PIIX4_PM"}}\n'
                       '{"execute":"device-list-properties","arguments":{"typename":"kvm-pit"}}\n'
                       '{"execute":"quit"}\n')
    replies = [r for r in map(json.loads, p.stdout.splitlines()) if "return" in r]
    assert {x["name"] for x in replies[1]["return"]} == {"disable_s3", "disable_s4"}, replies
    assert [x["name"] for x in replies[2]["return"]] == ["lost_tick_policy"], replies
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    for c, (rc, err) in zip(cases, ours):
        qrc, qerr = run(QEMU, "-M", "pc", "-accel", "tcg", "-global", c[0])
        assert (rc == 0) == (qrc == 0), (c, qerr)
        assert message(err) == [m for m in message(qerr) if "terminating" not in m], (c, err, qerr)


def test_isa_serial_globals_are_checked():
    """The board's UARTs come from -serial / -device isa-serial as the command
    line is read: an unknown property fails as in QEMU (which names the
    -device too), a known one is refused, never silently dropped."""
    dev = ("-chardev", "null,id=c0", "-device", "isa-serial,chardev=c0")
    rc, err = vireo(*dev, "-global", "isa-serial.foo=1")
    assert rc != 0 and message(err) == [
        "can't apply global isa-serial.foo=1: Property 'isa-serial.foo' not found"], err
    rc, err = vireo(*dev, "-global", "isa-serial.index=1")
    assert rc != 0 and "vireo's UARTs take their settings from -serial" in err, err
    # no UART, nothing to apply it to (as QEMU)
    assert vireo("-global", "isa-serial.foo=1") == (0, "")


def test_kvm_pit_tick_policy():
    if not os.path.exists("/dev/kvm"):
        vtest.skip("no /dev/kvm")
    d = tempfile.mkdtemp(prefix="vireo-global-")
    kernel = os.path.join(d, "tiny.elf")
    with open(kernel, "wb") as f:
        f.write(pvh_elf(HALT))

    def kvm(*args):
        return run(vtest.binary("vireo"), "-kernel", kernel, "-m", "16M", *args)
    for policy in ("delay", "discard"):
        rc, err = kvm("-global", f"kvm-pit.lost_tick_policy={policy}")
        assert rc == 0 and not err, (policy, err)
    rc, err = kvm("-global", "kvm-pit.lost_tick_policy=slew")
    assert rc != 0 and "Unsupported lost tick policy." in err, err
    rc, err = kvm("-global", "kvm-pit.lost_tick_policy=bogus")
    assert rc != 0 and message(err) == [
        "can't apply global kvm-pit.lost_tick_policy=bogus: Parameter 'lost_tick_policy' "
        "does not accept value 'bogus'"], err
    rc, err = kvm("-global", "kvm-pit.iobase=0x40")
    assert rc != 0 and "Property 'kvm-pit.iobase' not found" in err, err
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    vtest.main()
