#!/usr/bin/env python3
"""send-key and dump-guest-memory with Debian's kernel as the guest (in the
nested lab when this host's KVM cannot run Linux): the kernel's i8042 and
atkbd drivers find vireo's keyboard, keys sent over QMP and HMP arrive at
the keyboard's event node as the right key codes, and a dump of the running
guest carries both vCPUs' registers (NT_PRSTATUS and QEMU notes) and its
RAM. One lab job runs all of it (kbd_dump_scenarios.py).
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
KEY_A, KEY_B, KEY_KPENTER, KEY_LEFTSHIFT = 30, 48, 96, 42


def run():
    if RESULTS:
        return RESULTS
    try:
        lab.kernel_path()
    except Exception as e:
        vtest.skip(f"no guest kernel: {e}")
    work = lab.workdir()
    src = open(os.path.join(HERE, "guest_scenarios.py")).read()
    initrd = lab.build_initramfs(os.path.join(work, "kbd-agent.cpio.gz"),
                                 src.split('AGENT_INIT = r"""')[1].split('"""')[0],
                                 modules=["evdev"])
    start = time.monotonic()
    try:
        status, out = lab.run_vmm([sys.executable, os.path.join(HERE, "kbd_dump_scenarios.py"),
                                   lab.kernel_path(), initrd], timeout=600)
    except lab.LabError as e:
        vtest.skip(f"the lab is unusable: {e}")
    for line in out.splitlines():
        m = re.match(r"RESULT (\S+) (.*)$", line)
        if m:
            RESULTS[m.group(1)] = json.loads(m.group(2))
    RESULTS["_output"] = out
    print(f"# lab job: status {status}, {time.monotonic() - start:.1f} s", flush=True)
    if "error_main" in RESULTS:
        print(out[-4000:])
    return RESULTS


def get(name):
    r = run()
    if name not in r:
        raise AssertionError(f"no result {name}: {r.get('error_main')}\n{r['_output'][-3000:]}")
    return r[name]


def test_guest_drivers_find_the_keyboard():
    probe = get("probe")["dmesg"]
    print("# " + probe.strip().replace("\n", "\n# "))
    # Found through ACPI (the DSDT's PNP0303 device), not by poking ports.
    assert re.search(r"i8042: PNP: PS/2 Controller \[PNP0303:KBD\] at 0x60,0x64 irq 1", probe), probe
    assert re.search(r"serio: i8042 KBD port at 0x60,0x64 irq 1", probe), probe
    assert "serio: i8042 AUX port" not in probe, probe      # no mouse port
    kb = get("keyboard")
    assert kb["kbd_name"] == "AT Translated Set 2 keyboard" and kb["node"], kb


def test_keys_reach_the_guest():
    ev = [tuple(e) for e in get("key_events")["events"]]
    print(f"# key events: {ev}")
    want = [(KEY_A, 1), (KEY_A, 0), (KEY_KPENTER, 1), (KEY_KPENTER, 0),
            (KEY_LEFTSHIFT, 1), (KEY_B, 1), (KEY_B, 0), (KEY_LEFTSHIFT, 0)]
    assert ev == want, ev
    line = get("irq1")["line"]
    counts = [int(x) for x in line.split()[1:3] if x.isdigit()]
    assert sum(counts) > 0 and "i8042" in line, line


# QEMU 7.2's lines for a 64-bit Linux kernel under KVM, in its order.
REGISTER_LINES = [
    r"RAX=[0-9a-f]{16} RBX=[0-9a-f]{16} RCX=[0-9a-f]{16} RDX=[0-9a-f]{16}",
    r"RSI=[0-9a-f]{16} RDI=[0-9a-f]{16} RBP=[0-9a-f]{16} RSP=[0-9a-f]{16}",
    r"R8 =[0-9a-f]{16} R9 =[0-9a-f]{16} R10=[0-9a-f]{16} R11=[0-9a-f]{16}",
    r"R12=[0-9a-f]{16} R13=[0-9a-f]{16} R14=[0-9a-f]{16} R15=[0-9a-f]{16}",
    r"RIP=ffffffff[0-9a-f]{8} RFL=[0-9a-f]{8} \[[-D][-O][-S][-Z][-A][-P][-C]\] CPL=0 II=[01] "
    r"A20=1 SMM=0 HLT=[01]",
    r"ES =0000 0{16} [0-9a-f]{8} [0-9a-f]{8}( DPL=0 DS   \[-W[-A]\])?",
    r"CS =0010 0{16} ffffffff 00a09b00 DPL=0 CS64 \[-RA\]",
    r"SS =0018 0{16} [0-9a-f]{8} [0-9a-f]{8}( DPL=0 DS   \[-W[-A]\])?",
    r"DS =0000 0{16} [0-9a-f]{8} [0-9a-f]{8}( DPL=0 DS   \[-W[-A]\])?",
    r"FS =0000 [0-9a-f]{16} [0-9a-f]{8} [0-9a-f]{8}( DPL=0 DS   \[-W[-A]\])?",
    r"GS =0000 ffff[0-9a-f]{12} [0-9a-f]{8} [0-9a-f]{8}( DPL=0 DS   \[-W[-A]\])?",
    r"LDT=0000 [0-9a-f]{16} [0-9a-f]{8} [0-9a-f]{8}( DPL=0 LDT)?",
    r"TR =0040 fffffe[0-9a-f]{10} 00004087 00008b00 DPL=0 TSS64-busy",
    r"GDT=     fffffe[0-9a-f]{10} 0000007f",
    r"IDT=     fffffe[0-9a-f]{10} 00000fff",
    r"CR0=80050033 CR2=[0-9a-f]{16} CR3=[0-9a-f]{16} CR4=[0-9a-f]{8}",
    r"DR0=0{16} DR1=0{16} DR2=0{16} DR3=0{16} ",
    r"DR6=00000000ffff0ff0 DR7=0000000000000400",
    r"EFER=0000000000000d01",
    r"FCW=[0-9a-f]{4} FSW=[0-9a-f]{4} \[ST=[0-7]\] FTW=[0-9a-f]{2} MXCSR=[0-9a-f]{8}",
] + [rf"FPR{i}=[0-9a-f]{{16}} [0-9a-f]{{4}} FPR{i + 1}=[0-9a-f]{{16}} [0-9a-f]{{4}}"
     for i in range(0, 8, 2)] + \
    [rf"XMM{i:02d}=[0-9a-f]{{16}} [0-9a-f]{{16}} XMM{i + 1:02d}=[0-9a-f]{{16}} [0-9a-f]{{16}}"
     for i in range(0, 16, 2)]


def test_info_registers_like_qemu():
    # HMP's lines end in CR LF, as QEMU's do.
    r = {k: v.replace("\r\n", "\n") for k, v in get("registers").items()}
    print("# " + r["all"].strip().replace("\n", "\n# "))
    blocks = r["all"].split("\nCPU#")
    assert blocks[0] == "" and [b.split("\n")[0] for b in blocks[1:]] == ["0", "1"], r["all"]
    for block in blocks[1:]:
        lines = block.rstrip("\n").split("\n")[1:]
        assert len(lines) == len(REGISTER_LINES), lines
        for line, want in zip(lines, REGISTER_LINES):
            assert re.fullmatch(want, line), (line, want)
    # The VM is stopped: asking for one vCPU gives that vCPU's block of -a.
    assert "\nCPU#1\n" + r["one"] in r["all"], r["one"]
    assert "CPU#7 not available" in r["bad"], r["bad"]


def test_dump_of_the_running_guest():
    d = get("dump")
    print(f"# dump: loads {d['loads']}, prstatus {d['prstatus']}, qemu notes {d['qemu']}")
    assert d["event"]["result"]["status"] == "completed", d["event"]
    assert d["progress"]["total"] == 256 << 20, d["progress"]
    assert d["progress"]["status"] in ("active", "completed"), d["progress"]
    assert d["status"] == "running" and d["alive"] == "alive", d
    assert d["machine"] == 62, d["machine"]
    assert d["loads"] == [[0, 256 << 20]], d["loads"]
    assert [n[:2] for n in d["notes"]] == [["CORE", 1], ["CORE", 1], ["QEMU", 0], ["QEMU", 0]]
    assert [n[2] for n in d["notes"]] == [336, 336, 0x1b8, 0x1b8], d["notes"]
    for i, (pr, qn) in enumerate(zip(d["prstatus"], d["qemu"])):
        assert pr["pid"] == i + 1, pr
        # A running 64-bit kernel: rip in its text, paging and long mode on.
        assert pr["rip"] >= 0xffffffff80000000, hex(pr["rip"])
        assert pr["rip"] == qn["rip"], (pr, qn)
        assert qn["version"] == 1 and qn["size"] == 0x1b8, qn
        assert qn["cr0"] & 0x80000001 == 0x80000001 and qn["cr3"] and qn["cr4"] & 0x20, qn
        assert qn["cs_flags"] & (1 << 21), "cs is a 64-bit code segment"
    assert d["banner_at"] > 0, "no 'Linux version' in the dumped RAM"
    assert d["readelf"].count("NT_PRSTATUS") == 2, d["readelf"]
    assert get("poweroff")["sanitizer"] == "", get("poweroff")


if __name__ == "__main__":
    vtest.main()
