#!/usr/bin/env python3
"""dump-guest-memory over qtest: the ELF core's header and one PT_LOAD per
guest RAM region (p_paddr the guest-physical address, on both sides of the
32-bit PCI hole), guest RAM written with qtest found at the PT_LOAD's file
offset, begin/length, fd: via getfd, detach with query-dump progress and
DUMP_COMPLETED, HMP dump-guest-memory and info dump, readelf's view of the
file, and the refusals side by side with QEMU 7.2.
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile

import vmm
import vtest

QEMU = shutil.which("qemu-system-x86_64")
READELF = shutil.which("readelf")
PT_LOAD, PT_NOTE = 1, 4
LOWMEM = 0xc0000000
FOUR_G = 1 << 32


def start(mem="64M", *args):
    return vmm.Vireo("-m", mem, *args, qtest=True)


def parse_elf(path):
    with open(path, "rb") as f:
        eh = f.read(64)
        assert eh[:4] == b"\x7fELF" and eh[4] == 2 and eh[5] == 1, eh[:8]
        e_type, e_machine = struct.unpack_from("<HH", eh, 16)
        e_phoff, = struct.unpack_from("<Q", eh, 32)
        e_phentsize, e_phnum = struct.unpack_from("<HH", eh, 54)
        assert (e_type, e_machine, e_phentsize) == (4, 62, 56)     # ET_CORE, x86-64
        f.seek(e_phoff)
        phdrs = []
        for _ in range(e_phnum):
            p = struct.unpack("<IIQQQQQQ", f.read(56))
            phdrs.append(dict(type=p[0], offset=p[2], vaddr=p[3], paddr=p[4],
                              filesz=p[5], memsz=p[6]))
        return phdrs


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def guest_bytes(path, phdrs, gpa, n):
    for p in phdrs:
        if p["type"] == PT_LOAD and p["paddr"] <= gpa and gpa + n <= p["paddr"] + p["filesz"]:
            return read_at(path, p["offset"] + gpa - p["paddr"], n)
    raise AssertionError(f"{gpa:#x} is in no PT_LOAD")


def tmp():
    return tempfile.mkdtemp(prefix="vireo-dump-")


def test_whole_ram_and_pattern_at_its_offset():
    d = tmp()
    core = os.path.join(d, "a.core")
    with start("64M") as v:
        q, qmp = v.qtest, v.qmp()
        q.writeq(0x123450, 0x1122334455667788)
        q.writeq(64 * 1024 * 1024 - 8, 0x0badc0ffee0ddf00)
        assert qmp.cmd("query-dump") == {"status": "none", "completed": 0, "total": 0}
        assert qmp.cmd("query-dump-guest-memory-capability") == {"formats": ["elf"]}
        assert qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + core) == {}
        ev = qmp.wait_event("DUMP_COMPLETED")
        total = 64 << 20
        assert ev["data"] == {"result": {"status": "completed", "completed": total,
                                         "total": total}}
        assert qmp.cmd("query-dump") == {"status": "completed", "completed": total,
                                         "total": total}
        # The VM ran (qtest): paused for the dump, resumed after.
        stop, resume = qmp.wait_event("STOP"), qmp.wait_event("RESUME")

        def when(e):
            return (e["timestamp"]["seconds"], e["timestamp"]["microseconds"])
        assert when(stop) <= when(ev) <= when(resume), (stop, ev, resume)
        assert qmp.cmd("query-status")["status"] == "running"
    assert os.stat(core).st_mode & 0o777 == 0o400
    phdrs = parse_elf(core)
    loads = [p for p in phdrs if p["type"] == PT_LOAD]
    assert [(p["paddr"], p["vaddr"], p["filesz"], p["memsz"]) for p in loads] == \
        [(0, 0, total, total)], loads
    assert os.path.getsize(core) == loads[0]["offset"] + total
    assert guest_bytes(core, phdrs, 0x123450, 8) == struct.pack("<Q", 0x1122334455667788)
    assert guest_bytes(core, phdrs, total - 8, 8) == struct.pack("<Q", 0x0badc0ffee0ddf00)
    # No vCPU under qtest: no registers to note.
    assert not [p for p in phdrs if p["type"] == PT_NOTE]
    if READELF:
        out = subprocess.run([READELF, "-h", "-l", core], capture_output=True, text=True,
                             check=True).stdout
        assert "CORE (Core file)" in out and "X86-64" in out, out
        assert out.count("LOAD") == 1, out
    shutil.rmtree(d)


def test_regions_on_both_sides_of_the_pci_hole():
    """-m 3200M: RAM to 0xc0000000 and 128 MiB at 4 GiB. begin/length keep
    the dump small: the last page below the hole and the first above."""
    d = tmp()
    core = os.path.join(d, "b.core")
    with start("3200M") as v:
        q, qmp = v.qtest, v.qmp()
        q.writeq(LOWMEM - 8, 0x1111111122222222)
        q.writeq(FOUR_G + 0x10, 0x3333333344444444)
        qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + core,
                begin=LOWMEM - 4096, length=FOUR_G + 8192 - (LOWMEM - 4096))
        assert qmp.cmd("query-dump")["total"] == 4096 + 8192
    phdrs = parse_elf(core)
    loads = [(p["paddr"], p["filesz"]) for p in phdrs if p["type"] == PT_LOAD]
    assert loads == [(LOWMEM - 4096, 4096), (FOUR_G, 8192)], loads
    assert guest_bytes(core, phdrs, LOWMEM - 8, 8) == struct.pack("<Q", 0x1111111122222222)
    assert guest_bytes(core, phdrs, FOUR_G + 0x10, 8) == struct.pack("<Q", 0x3333333344444444)
    shutil.rmtree(d)


def test_fd_protocol_detach_and_hmp():
    d = tmp()
    a, b, c = (os.path.join(d, n) for n in ("fd.core", "detach.core", "hmp.core"))
    with start("48M") as v:
        q, qmp = v.qtest, v.qmp()
        q.writeq(0x200000, 0xfeedfacecafebeef)
        fd = os.open(a, os.O_WRONLY | os.O_CREAT, 0o600)
        assert qmp.execute("getfd", fds=[fd], fdname="dumpfd") == {"return": {}}
        os.close(fd)
        qmp.cmd("dump-guest-memory", paging=False, protocol="fd:dumpfd")
        # The descriptor was taken: a second use finds nothing.
        r = qmp.execute("dump-guest-memory", paging=False, protocol="fd:dumpfd")
        assert r["error"]["desc"] == "File descriptor named 'dumpfd' has not been found", r
        qmp.events.clear()
        qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + b, detach=True)
        st = qmp.cmd("query-dump")
        assert st["total"] == 48 << 20 and st["status"] in ("active", "completed"), st
        if st["status"] == "active":
            r = qmp.execute("dump-guest-memory", paging=False, protocol="file:" + c)
            assert r["error"]["desc"] == "There is a dump in process, please wait.", r
        ev = qmp.wait_event("DUMP_COMPLETED")
        assert ev["data"]["result"]["status"] == "completed", ev
        assert qmp.hmp("info dump") == "Status: completed\r\n"
        assert qmp.hmp(f"dump-guest-memory {c}") == ""
        assert qmp.hmp(f"dump-guest-memory {c} 0x200000 4096") == ""
        assert qmp.hmp(f"dump-guest-memory -z {c}") == "Error: kdump-zlib is not available now\r\n"
        assert qmp.hmp(f"dump-guest-memory -x {c}") == (
            "dump-guest-memory: unsupported option -x\r\n"
            'Try "help dump-guest-memory" for more information\r\n')
        assert "dump-guest-memory [-p] [-d] [-z|-l|-s|-w] filename [begin length]" in \
            qmp.hmp("help dump-guest-memory")
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read(), "fd: and detached dumps differ"
    phdrs = parse_elf(c)
    assert [(p["paddr"], p["filesz"]) for p in phdrs] == [(0x200000, 4096)]
    assert guest_bytes(c, phdrs, 0x200000, 8) == struct.pack("<Q", 0xfeedfacecafebeef)
    shutil.rmtree(d)


def refusals(path):
    """Requests both refuse, in an order that exercises the status after each."""
    return [
        {"paging": False, "protocol": "fd:nosuch"},
        {"paging": False, "protocol": "foo:bar"},
        {"paging": False, "protocol": "file:/nonexistent-dir/x"},
        {"paging": False, "protocol": "file:" + path, "begin": 0},
        {"paging": False, "protocol": "file:" + path, "length": 10},
        {"paging": False, "protocol": "file:" + path, "format": "kdump-lzo"},
        {"paging": False, "protocol": "file:" + path, "format": "kdump-zlib",
         "begin": 0, "length": 4096},
        {"paging": False, "protocol": "file:" + path, "format": "bogus"},
        {"protocol": "file:" + path},
        {"paging": False, "protocol": "file:" + path, "bogus": 1},
        {"paging": False, "protocol": "file:" + path, "begin": 0, "length": 0},
        "query-dump",
        {"paging": False, "protocol": "file:" + path, "begin": -1, "length": 10},
        {"paging": False, "protocol": "file:" + path, "begin": 1 << 40, "length": 4096},
        "query-dump",
    ]


def qemu_run(reqs):
    p = subprocess.Popen([QEMU, "-M", "pc", "-m", "64", "-nodefaults", "-accel", "tcg", "-S",
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
        return [ask(r) for r in reqs]
    finally:
        p.kill()
        p.wait()


def as_request(r):
    if isinstance(r, str):
        return {"execute": r}
    return {"execute": "dump-guest-memory", "arguments": r}


def test_refusals_as_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    d = tmp()
    theirs = qemu_run([as_request(r) for r in refusals(os.path.join(d, "q.core"))])
    with start("64M", "-S") as v:
        qmp = v.qmp()
        for r, want in zip(refusals(os.path.join(d, "v.core")), theirs):
            req = as_request(r)
            got = qmp.execute(req["execute"], **req.get("arguments", {}))
            got.pop("id", None)
            assert got == want, (req, got, want)
    shutil.rmtree(d)


def raw_phdrs(path):
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phnum, = struct.unpack_from("<H", eh, 56)
        f.seek(phoff)
        return phoff, [struct.unpack("<IIQQQQQQ", f.read(56)) for _ in range(phnum)]


def layout_facts(path):
    """What both VMMs' files must share: the notes first, then PT_LOADs laid
    end to end in the file, p_vaddr = p_paddr, no flags, no alignment."""
    phoff, ph = raw_phdrs(path)
    types = [p[0] for p in ph]
    assert types == sorted(types, key=lambda x: x != PT_NOTE), types
    loads = [p for p in ph if p[0] == PT_LOAD]
    for a, b in zip(loads, loads[1:]):
        assert b[2] == a[2] + a[5], (a, b)
    for p in loads:
        assert p[1] == 0 and p[7] == 0 and p[3] == p[4] and p[5] == p[6], p
    assert os.path.getsize(path) >= loads[-1][2] + loads[-1][5]
    return [(p[4], p[5]) for p in loads]


def test_phdr_layout_beside_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    d = tmp()
    theirs_path, ours_path = os.path.join(d, "qemu.core"), os.path.join(d, "vireo.core")
    qemu_run([as_request({"paging": False, "protocol": "file:" + theirs_path})])
    with start("64M", "-S") as v:
        v.qmp().cmd("dump-guest-memory", paging=False, protocol="file:" + ours_path)
    theirs, ours = layout_facts(theirs_path), layout_facts(ours_path)
    # QEMU's RAM below 64 MiB (its option ROM and BIOS windows at
    # 0xc0000-0xfffff aside, which vireo's firmware-less board lacks)
    # lies inside vireo's PT_LOADs at the same physical addresses.
    for base, size in theirs:
        if base >= 64 << 20 or 0xc0000 <= base < 0x100000:
            continue
        assert any(b <= base and base + size <= b + s for b, s in ours), (base, size, ours)
    shutil.rmtree(d)


def schema_of(binary_args):
    p = subprocess.Popen(binary_args + ["-display", "none", "-qmp", "stdio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()
        for req in ({"execute": "qmp_capabilities"}, {"execute": "query-qmp-schema"}):
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
            while True:
                r = json.loads(p.stdout.readline())
                if "return" in r:
                    break
        return r["return"]
    finally:
        p.kill()
        p.wait()


def shape(schema, name, key):
    """A command's or event's argument or return type, generated names replaced by structure."""
    by = {e["name"]: e for e in schema}

    def walk(t):
        e = by[t]
        mt = e["meta-type"]
        if mt == "builtin":
            return e["json-type"]
        if mt == "enum":
            return ("enum", tuple(e["values"]))
        if mt == "array":
            return ("array", walk(e["element-type"]))
        if mt == "object":
            return ("object", tuple((m["name"], "default" in m, walk(m["type"]))
                                    for m in e["members"]))
        return mt
    return walk(by[name][key])


def test_schema_as_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    theirs = schema_of([QEMU, "-M", "none", "-nodefaults"])
    with start("16M") as v:
        ours = v.qmp().cmd("query-qmp-schema")
    for name, key in (("dump-guest-memory", "arg-type"), ("query-dump", "ret-type"),
                      ("query-dump-guest-memory-capability", "ret-type"),
                      ("DUMP_COMPLETED", "arg-type")):
        assert shape(ours, name, key) == shape(theirs, name, key), name


def test_machine_without_ram_leaves_no_file():
    d = tmp()
    path = os.path.join(d, "none.core")
    with vmm.Vireo("-machine", "none", qtest=True) as v:
        qmp = v.qmp()
        r = qmp.execute("dump-guest-memory", paging=False, protocol="file:" + path)
        assert r["error"]["desc"] == "dump: no guest memory to dump", r
        assert qmp.cmd("query-dump") == {"status": "failed", "completed": 0, "total": 0}
        r = qmp.execute("dump-guest-memory", paging=False, protocol="foo:" + path)
        assert r["error"]["desc"] == "Invalid parameter 'protocol'", r
    assert not os.path.exists(path)
    shutil.rmtree(d)


def test_paging_refused_clearly():
    with start("16M") as v:
        r = v.qmp().execute("dump-guest-memory", paging=True, protocol="file:/dev/null")
        assert "paging is not supported" in r["error"]["desc"], r


if __name__ == "__main__":
    vtest.main()
