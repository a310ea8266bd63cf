#!/usr/bin/env python3
"""HMP info mtree: vireo's guest memory map from its memory layer (RAM
regions as windows into the RAM block, MMIO regions such as PCI BARs where
the guest placed them, port regions), in QEMU 7.2's line format; the lines
for what both VMMs map the same way (RAM below 4 GiB, the i8042, RTC and
ACPI hotplug ports) compared with QEMU's own output for a similar machine.
"""
import json
import re
import shutil
import subprocess

import vmm
import vtest

QEMU = shutil.which("qemu-system-x86_64")
LINE = re.compile(r"^( {2,})([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, (ram|rom|i/o)\): (.+)$")
HEADER = re.compile(r"^(address-space|memory-region): (.+)$")


def parse(text):
    """{header: [(indent, start, end, kind, name), ...]}, checking every line's shape."""
    spaces, cur = {}, None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        h = HEADER.match(line)
        if h:
            cur = spaces.setdefault(line, [])
            continue
        m = LINE.match(line)
        assert m and cur is not None, f"not in QEMU's shape: {line!r}"
        cur.append((len(m.group(1)), int(m.group(2), 16), int(m.group(3), 16),
                    m.group(4), m.group(5)))
    return spaces


def cfg_addr(slot, reg):
    return 0x80000000 | slot << 11 | reg


def find_device(q, vendor):
    for slot in range(32):
        q.outl(0xcf8, cfg_addr(slot, 0))
        if q.inl(0xcfc) & 0xffff == vendor:
            return slot
    raise AssertionError("device not found")


def test_layout_and_a_bar_the_guest_maps():
    with vmm.Vireo("-m", "3200M", "-device", "virtio-rng-pci,id=rng0", qtest=True) as v:
        q, qmp = v.qtest, v.qmp()
        before = parse(qmp.hmp("info mtree"))
        mem = before["address-space: memory"]
        assert mem[0] == (2, 0, 2**64 - 1, "i/o", "system"), mem
        assert (4, 0, 0xbfffffff, "ram",
                "alias ram-below-4g @pc.ram 0000000000000000-00000000bfffffff") in mem, mem
        assert (4, 1 << 32, (1 << 32) + (128 << 20) - 1, "ram",
                "alias ram-above-4g @pc.ram 00000000c0000000-00000000c7ffffff") in mem, mem
        io = before["address-space: I/O"]
        assert io[0] == (2, 0, 0xffff, "i/o", "io")
        names = {e[4]: (e[1], e[2]) for e in io}
        assert names["i8042-data"] == (0x60, 0x60) and names["i8042-cmd"] == (0x64, 0x64)
        assert names["pci-config-data"] == (0xcfc, 0xcff)
        starts = [e[1] for e in io[1:]]
        assert starts == sorted(starts), io
        assert before["memory-region: pc.ram"] == [(2, 0, 3200 * 2**20 - 1, "ram", "pc.ram")]
        # Place a memory BAR of the rng as a guest's firmware would.
        slot = find_device(q, 0x1af4)
        placed = None
        for bar in range(6):
            reg = 0x10 + 4 * bar
            q.outl(0xcf8, cfg_addr(slot, reg))
            q.outl(0xcfc, 0xffffffff)
            size_mask = q.inl(0xcfc)
            if size_mask and not size_mask & 1:
                size = (~(size_mask & ~0xf) + 1) & 0xffffffff
                q.outl(0xcfc, 0xfe000000)
                if size_mask & 0x4:     # 64-bit: clear the high half
                    q.outl(0xcf8, cfg_addr(slot, reg + 4))
                    q.outl(0xcfc, 0)
                placed = (bar, size)
                break
        assert placed, "no memory BAR"
        q.outl(0xcf8, cfg_addr(slot, 0x04))
        q.outw(0xcfc, 0x0002)           # memory decoding on
        after = parse(qmp.hmp("info mtree"))["address-space: memory"]
        bars = [e for e in after if e[4].endswith(f"-bar{placed[0]}")]
        assert bars == [(4, 0xfe000000, 0xfe000000 + placed[1] - 1, "i/o", bars[0][4])], after
        # Decoding off: the BAR leaves the map again.
        q.outw(0xcfc, 0x0000)
        assert not [e for e in parse(qmp.hmp("info mtree"))["address-space: memory"]
                    if e[4].endswith(f"-bar{placed[0]}")]


def test_none_machine_has_no_ram():
    with vmm.Vireo("-machine", "none", qtest=True) as v:
        spaces = parse(v.qmp().hmp("info mtree"))
        assert spaces["address-space: memory"] == [(2, 0, 2**64 - 1, "i/o", "system")]
        assert not [k for k in spaces if k.startswith("memory-region")]


def qemu_mtree():
    p = subprocess.Popen([QEMU, "-M", "pc", "-m", "128", "-nodefaults", "-accel", "tcg", "-S",
                          "-display", "none", "-qmp", "stdio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()

        def ask(req):
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
            while True:
                r = json.loads(p.stdout.readline())
                if "return" in r or "error" in r:
                    return r
        ask({"execute": "qmp_capabilities"})
        return ask({"execute": "human-monitor-command",
                    "arguments": {"command-line": "info mtree"}})["return"]
    finally:
        p.kill()
        p.wait()


def test_same_lines_as_qemu_where_both_map_the_same():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    theirs = qemu_mtree()
    with vmm.Vireo("-m", "128M", qtest=True) as v:
        ours = v.qmp().hmp("info mtree")
    # Every line of ours has QEMU's shape (parse checks it) ...
    o, t = parse(ours), parse(theirs)
    for space in ("address-space: memory", "address-space: I/O", "memory-region: pc.ram"):
        assert space in o and space in t, space
    # ... the top container lines are the same ...
    assert o["address-space: memory"][0] == t["address-space: memory"][0]
    assert o["address-space: I/O"][0] == t["address-space: I/O"][0]
    assert o["memory-region: pc.ram"] == t["memory-region: pc.ram"]
    # ... and so are the regions both map alike.
    same = lambda e: e[1:]     # indentation depends on QEMU's nesting
    for want in ("alias ram-below-4g @pc.ram", "i8042-data", "i8042-cmd",
                 "acpi-pci-hotplug", "acpi-gpe0"):
        ol = [same(e) for e in o["address-space: memory"] + o["address-space: I/O"]
              if e[4].startswith(want)]
        tl = [same(e) for e in t["address-space: memory"] + t["address-space: I/O"]
              if e[4].startswith(want)]
        assert ol and ol == tl, (want, ol, tl)


if __name__ == "__main__":
    vtest.main()
