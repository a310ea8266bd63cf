"""-global DRIVER.PROP=VALUE (libvirt emits it): a default applied to every
-device of that type through the device's own option table; QEMU 7.2's
error for an unknown property and its warning for an unknown type."""
import shutil
import subprocess

import vtest

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


if __name__ == "__main__":
    vtest.main()
