#!/usr/bin/env python3
"""Real-guest checks of send-key and dump-guest-memory, run where KVM can
boot Linux (in the lab as one job, or on a capable host).

Debian's kernel drives vireo's i8042 with its own i8042 and atkbd drivers;
keys sent with QMP send-key and HMP sendkey are read back by the guest from
the keyboard's /dev/input/event node. Then the running guest's memory is
dumped: the notes must hold both vCPUs' registers as a running kernel has
them, and the kernel's banner must be in the RAM of the PT_LOAD.
Prints one "RESULT name {json}" line per check (test_keyboard_dump_guest.py).

Usage: kbd_dump_scenarios.py KERNEL INITRD
"""
import json
import os
import re
import struct
import subprocess
import sys
import time

from guest_scenarios import result, sanitizer_report, start_vm

EV_KEY = 1


def find_keyboard_event(devices):
    """The event node of the AT keyboard in /proc/bus/input/devices."""
    for block in devices.split("\n\n"):
        if "AT Translated Set 2 keyboard" in block or "AT Raw Set 2 keyboard" in block:
            m = re.search(r"H: Handlers=.*\b(event\d+)\b", block)
            if m:
                return m.group(1), re.search(r'N: Name="([^"]*)"', block).group(1)
    return None, None


def key_events(od_text):
    """(code, value) of the EV_KEY records in od -tx1 output of input_event records."""
    data = bytes(int(x, 16) for x in od_text.split())
    out = []
    for off in range(0, len(data) - 23, 24):
        typ, code, value = struct.unpack_from("<HHi", data, off + 16)
        if typ == EV_KEY:
            out.append((code, value))
    return out


def parse_core(path):
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phnum, = struct.unpack_from("<H", eh, 56)
        machine, = struct.unpack_from("<H", eh, 18)
        f.seek(phoff)
        phdrs = [struct.unpack("<IIQQQQQQ", f.read(56)) for _ in range(phnum)]
        notes = []
        for p in phdrs:
            if p[0] != 4:
                continue
            f.seek(p[2])
            raw = f.read(p[5])
            off = 0
            while off + 12 <= len(raw):
                namesz, descsz, typ = struct.unpack_from("<III", raw, off)
                off += 12
                name = raw[off:off + namesz].rstrip(b"\0").decode()
                off += (namesz + 3) & ~3
                desc = raw[off:off + descsz]
                off += (descsz + 3) & ~3
                notes.append((name, typ, desc))
        return machine, phdrs, notes


def prstatus_regs(desc):
    regs = struct.unpack_from("<27Q", desc, 112)
    pid, = struct.unpack_from("<I", desc, 32)
    return {"pid": pid, "rip": regs[16], "rsp": regs[19], "cs": regs[17]}


def qemu_note(desc):
    version, size = struct.unpack_from("<II", desc, 0)
    rip, = struct.unpack_from("<Q", desc, 8 + 16 * 8)
    cr = struct.unpack_from("<5Q", desc, 8 + 18 * 8 + 10 * 24)
    cs_sel, cs_limit, cs_flags = struct.unpack_from("<III", desc, 8 + 18 * 8)
    return {"version": version, "size": size, "rip": rip, "cr0": cr[0], "cr3": cr[3],
            "cr4": cr[4], "cs_flags": cs_flags}


def find_in_ram(path, phdrs, needle):
    for p in phdrs:
        if p[0] != 1:
            continue
        with open(path, "rb") as f:
            f.seek(p[2])
            left, carry, pos = p[5], b"", 0
            while left:
                chunk = f.read(min(left, 8 << 20))
                left -= len(chunk)
                hit = (carry + chunk).find(needle)
                if hit >= 0:
                    return p[4] + pos - len(carry) + hit
                pos += len(chunk)
                carry = chunk[-len(needle):]
    return -1


def scenario(tmp, kernel, initrd):
    v, qmp, con = start_vm(tmp, kernel, initrd, "-smp", "2")
    try:
        con.expect(r"AGENT READY", timeout=120)
        st, out = con.run("dmesg | grep -E 'i8042|serio|input:'")
        result("probe", dmesg=out)
        con.run("modprobe evdev")
        st, devices = con.run("cat /proc/bus/input/devices")
        node, name = find_keyboard_event(devices)
        result("keyboard", node=node, kbd_name=name)
        if node:
            con.run(f"cat /dev/input/{node} > /tmp/ev & echo $! > /tmp/reader")
            time.sleep(0.5)
            qmp.cmd("send-key", keys=[{"type": "qcode", "data": "a"}])
            qmp.cmd("send-key", **{"keys": [{"type": "qcode", "data": "kp_enter"}],
                                   "hold-time": 50})
            qmp.hmp("sendkey shift-b")
            deadline = time.monotonic() + 20
            events = []
            while time.monotonic() < deadline:
                st, out = con.run("od -An -v -tx1 /tmp/ev")
                events = key_events(out)
                if len(events) >= 8:
                    break
                time.sleep(0.3)
            con.run("kill $(cat /tmp/reader)")
            result("key_events", events=events)
            st, out = con.run("grep -E '^ *1:' /proc/interrupts")
            result("irq1", line=out.strip())

        qmp.cmd("stop")
        result("registers", all=qmp.hmp("info registers -a"), one=qmp.hmp("info registers 1"),
               bad=qmp.hmp("info registers 7"))
        qmp.cmd("cont")

        core = os.path.join(tmp, "guest.core")
        # Detached: writing 256 MiB can take long in the lab (L1 is emulated).
        qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + core, detach=True)
        progress = qmp.cmd("query-dump")
        ev = qmp.wait_event("DUMP_COMPLETED", timeout=400)
        qmp.wait_event("RESUME", timeout=30)
        status = qmp.cmd("query-status")
        st, out = con.run("echo alive")
        machine, phdrs, notes = parse_core(core)
        prs = [prstatus_regs(d) for n, t, d in notes if n == "CORE" and t == 1]
        qns = [qemu_note(d) for n, t, d in notes if n == "QEMU"]
        banner = find_in_ram(core, phdrs, b"Linux version ")
        readelf = subprocess.run(["readelf", "-n", core], capture_output=True, text=True).stdout
        result("dump", event=ev["data"], progress=progress, status=status["status"],
               alive=out.strip(),
               machine=machine,
               loads=[(p[4], p[5]) for p in phdrs if p[0] == 1],
               notes=[(n, t, len(d)) for n, t, d in notes],
               prstatus=prs, qemu=qns, banner_at=banner, readelf=readelf)
        os.unlink(core)

        con.sock.sendall(b"poweroff -f\n")
        ev = qmp.wait_event("SHUTDOWN", timeout=60)
        result("poweroff", exit=v.wait(30), sanitizer=sanitizer_report(v))
    finally:
        v.close()


def main():
    kernel, initrd = sys.argv[1:3]
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR") or "/tmp"
    try:
        scenario(tmp, kernel, initrd)
    except Exception as e:
        result("error_main", error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
