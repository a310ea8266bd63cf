#!/usr/bin/env python3
"""The vCPU objects libvirt reads at domain start: qom-list and qom-get of
feature-words / filtered-features (and the identity properties) on the
qom-path query-cpus-fast gives. The words' shape and order are compared
with Debian's QEMU 7.2 (its values differ by host and accelerator); the
values are checked against KVM_GET_SUPPORTED_CPUID, asked of /dev/kvm by
the test itself."""
import array
import fcntl
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import vmm
import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "machine"))
from tinyguest import HALT, pvh_elf  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
KVM_GET_SUPPORTED_CPUID = 0xC008AE05        # _IOWR(KVMIO, 0x05, struct kvm_cpuid2)
KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1
REGS = ("EAX", "EBX", "ECX", "EDX")


def supported_cpuid():
    """{(function, index or None): (eax, ebx, ecx, edx)} from KVM."""
    if not os.path.exists("/dev/kvm"):
        vtest.skip("no /dev/kvm")
    n = 256
    buf = array.array("B", struct.pack("II", n, 0) + bytes(40 * n))
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        fcntl.ioctl(fd, KVM_GET_SUPPORTED_CPUID, buf, True)
    finally:
        os.close(fd)
    raw = buf.tobytes()
    nent = struct.unpack_from("I", raw)[0]
    out = {}
    for i in range(nent):
        fn, idx, flags, a, b, c, d = struct.unpack_from("7I", raw, 8 + 40 * i)
        out[(fn, idx if flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX else None)] = (a, b, c, d)
    return out


def leaf(table, fn, idx=0):
    return table.get((fn, idx)) or table.get((fn, None)) or (0, 0, 0, 0)


def word_key(w):
    return (w["cpuid-input-eax"], w.get("cpuid-input-ecx"), w["cpuid-register"])


def qemu_cpu():
    """QEMU 7.2's qom-list and feature-words of its first vCPU (TCG, qemu64)."""
    d = tempfile.mkdtemp(prefix="vireo-qomcpu-")
    path = os.path.join(d, "q.sock")
    proc = subprocess.Popen([QEMU, "-M", "pc,accel=tcg", "-nodefaults", "-display", "none",
                             "-S", "-qmp", f"unix:{path},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(path):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
        q = vmm.QMP.unix(path)
        cpu = q.cmd("query-cpus-fast")[0]["qom-path"]
        return ({p["name"]: p["type"] for p in q.cmd("qom-list", path=cpu)},
                q.cmd("qom-get", path=cpu, property="feature-words"),
                q.cmd("qom-get", path=cpu, property="filtered-features"))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def vireo_with_vcpus(smp=2):
    if not os.path.exists("/dev/kvm"):
        vtest.skip("no /dev/kvm")
    d = tempfile.mkdtemp(prefix="vireo-qomcpu-")
    kernel = os.path.join(d, "tiny.elf")
    with open(kernel, "wb") as f:
        f.write(pvh_elf(HALT))
    return vmm.Vireo("-kernel", kernel, "-m", "16M", "-smp", str(smp), "-S")


def test_feature_words_from_kvm_cpuid():
    kvm = supported_cpuid()
    with vireo_with_vcpus() as v:
        q = v.qmp()
        cpus = q.cmd("query-cpus-fast")
        assert [c["qom-path"] for c in cpus] == ["/machine/vcpu[0]", "/machine/vcpu[1]"]
        for c in cpus:
            path = c["qom-path"]
            words = q.cmd("qom-get", path=path, property="feature-words")
            filtered = q.cmd("qom-get", path=path, property="filtered-features")
            assert [word_key(w) for w in words] == [word_key(w) for w in filtered]
            assert len(words) == 24, words
            for w, f in zip(words, filtered):
                fn, idx, reg = word_key(w)
                r = REGS.index(reg)
                offered = leaf(kvm, fn, idx or 0)[r]
                # what the host model asks for (KVM's set) and the vCPU lacks
                assert f["features"] == offered & ~w["features"], (w, f, hex(offered))
                if (fn, reg) == (1, "ECX"):
                    # vireo adds "running on a hypervisor" (and the TSC
                    # deadline timer when the in-kernel LAPIC has it)
                    assert w["features"] & (1 << 31)
                    assert w["features"] & ~(1 << 24 | 1 << 31) == \
                        offered & ~(1 << 24 | 1 << 31), (hex(w["features"]), hex(offered))
                elif (fn, reg) != (1, "EDX"):       # HTT follows -smp
                    assert w["features"] == offered, (w, hex(offered))
            # identity from leaves 0 and 1
            a, b, cx, d = leaf(kvm, 0)
            assert q.cmd("qom-get", path=path, property="vendor") == \
                struct.pack("<III", b, d, cx).decode(errors="replace")
            version = leaf(kvm, 1)[0]
            assert q.cmd("qom-get", path=path, property="stepping") == version & 0xf
            assert q.cmd("qom-get", path=path, property="apic-id") == c["cpu-index"]
            assert q.cmd("qom-get", path=path, property="socket-id") == \
                c["props"]["socket-id"]
            assert q.cmd("qom-get", path=path, property="type") == "host-x86_64-cpu"
        print(f"# 1.ECX given {hex(words[22]['features'])}, "
              f"7.0.EBX {hex(words[21]['features'])}")


def test_qom_list_and_errors():
    with vireo_with_vcpus() as v:
        q = v.qmp()
        ours = {p["name"]: p["type"] for p in q.cmd("qom-list", path="/machine/vcpu[1]")}
        children = {p["name"]: p["type"] for p in q.cmd("qom-list", path="/machine")}
        assert children.get("vcpu[0]") == children.get("vcpu[1]") == "child<host-x86_64-cpu>"
        e = q.execute("qom-get", path="/machine/vcpu[0]", property="nope")["error"]
        assert e == {"class": "GenericError",
                     "desc": "Property 'host-x86_64-cpu.nope' not found"}, e
        for bad in ("/machine/vcpu[2]", "/machine/vcpu[01]", "/machine/vcpu[0]x",
                    "/machine/vcpu[]"):
            e = q.execute("qom-get", path=bad, property="type")["error"]
            assert e["class"] == "DeviceNotFound", (bad, e)
        assert "error" in q.execute("qom-set", path="/machine/vcpu[0]", property="family",
                                    value=6)
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    theirs, words, filtered = qemu_cpu()
    # every property vireo lists is QEMU's, with QEMU's type
    for name, t in ours.items():
        assert theirs.get(name) == t, (name, t, theirs.get(name))
    # the feature words: same members, same words in the same order
    with vireo_with_vcpus(1) as v:
        mine = v.qmp().cmd("qom-get", path="/machine/vcpu[0]", property="feature-words")
    assert [word_key(w) for w in mine] == [word_key(w) for w in words]
    assert [set(w) for w in mine] == [set(w) for w in words]
    assert [word_key(w) for w in filtered] == [word_key(w) for w in words]


def test_no_vcpu_objects_without_vcpus():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        e = q.execute("qom-list", path="/machine/vcpu[0]")["error"]
        assert e["class"] == "DeviceNotFound", e
        names = [p["name"] for p in q.cmd("qom-list", path="/machine")]
        assert not [n for n in names if n.startswith("vcpu")], names


if __name__ == "__main__":
    vtest.main()
