#!/usr/bin/env python3
"""Real-guest scenarios for the vireo-pc machine, run where KVM can boot
Linux (inside the lab, as one job, or directly on a capable host).

Each VM boots Debian's kernel with a busybox initramfs whose /init runs a
tiny agent on ttyS0: it executes each line it receives and answers
"DONE <status>". The scenarios drive the guest through the agent and QMP and
print one "RESULT name {json}" line each; test_guest_boot.py checks them.

Usage: guest_scenarios.py KERNEL VMLINUX INITRD FWCFG_BIN
"""
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time

import tinyguest
import vmm

AGENT_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec 0</dev/ttyS0 1>/dev/ttyS0 2>&1
stty -echo
echo "AGENT READY cpus=$(grep -c ^processor /proc/cpuinfo)"
while read -r line; do
    sh -c "$line"
    echo "DONE $?"
done
"""
CMDLINE = "console=ttyS0 quiet panic=-1"


def result(name, **data):
    print("RESULT " + name + " " + json.dumps(data), flush=True)


class Console:
    """The guest's ttyS0 through a UNIX socket chardev."""

    def __init__(self, path):
        deadline = time.monotonic() + 20
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = ""
        self.pos = 0                # start of what has not been consumed
        self.lock = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            with self.lock:
                if not data:
                    self.closed = True
                    self.lock.notify_all()
                    return
                self.buf += data.decode(errors="replace")
                self.lock.notify_all()

    def expect(self, pattern, timeout=60):
        """Wait for a regex after the current position; return the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.lock:
            while True:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self, "closed", False):
                    raise TimeoutError(f"no {pattern!r} on the console; tail: {self.buf[-800:]!r}")
                self.lock.wait(left)

    def run(self, command, timeout=60):
        """Run a shell line in the guest; returns (status, output)."""
        start = self.pos
        self.sock.sendall(command.encode() + b"\n")
        m = self.expect(r"DONE (\d+)\r?\n", timeout)
        return int(m.group(1)), self.buf[start:m.start()].replace("\r", "")

    def size(self):
        with self.lock:
            return len(self.buf)


def sanitizer_report(v):
    """ASan/UBSan findings in a VM's stderr (read by vmm.Vireo.wait)."""
    err = getattr(v, "stderr", "") or ""
    bad = [l for l in err.splitlines()
           if "AddressSanitizer" in l or "LeakSanitizer" in l or "runtime error:" in l]
    return "\n".join(bad)


def start_vm(tmp, kernel, initrd, *extra):
    serial = os.path.join(tmp, f"serial-{time.monotonic_ns()}.sock")
    v = vmm.Vireo("-kernel", kernel, "-initrd", initrd, "-append", CMDLINE, "-m", "256M",
                  "-serial", f"unix:{serial},server=on,wait=off", *extra)
    qmp = v.qmp()
    return v, qmp, Console(serial)


def scenario_main(tmp, kernel, initrd, fw_bin):
    """SMP boot, interrupts, fw_cfg, RTC_CHANGE, power button, stop/cont, resets, poweroff."""
    with open(fw_bin, "rb") as f:
        bin_md5 = hashlib.md5(f.read()).hexdigest()
    v, qmp, con = start_vm(tmp, kernel, initrd, "-smp", "2",
                           "-fw_cfg", "name=opt/vireo/str,string=hello fw_cfg",
                           "-fw_cfg", f"name=opt/vireo/bin,file={fw_bin}")
    try:
        m = con.expect(r"AGENT READY cpus=(\d+)", timeout=120)
        result("smp", cpus=int(m.group(1)))
        st, out = con.run("grep ttyS0 /proc/interrupts")
        nums = [int(x) for x in out.split()[1:3] if x.isdigit()]
        result("serial_irq", count=sum(nums), line=out.strip())

        st, out = con.run("modprobe qemu_fw_cfg && cat /sys/firmware/qemu_fw_cfg/by_name/opt/vireo/str/raw")
        result("fw_cfg_string", status=st, text=out.strip())
        st, out = con.run("md5sum /sys/firmware/qemu_fw_cfg/by_name/opt/vireo/bin/raw")
        result("fw_cfg_binary", status=st, guest=out.split()[0] if out.split() else "", host=bin_md5)

        before = time.time()
        st, out = con.run("date -u -s '2031-02-03 04:05:06' >/dev/null && hwclock -u -w")
        ev = qmp.wait_event("RTC_CHANGE", timeout=20)
        expected = 1927857906 - before      # 2031-02-03T04:05:06Z minus now
        result("rtc_change", status=st, offset=ev["data"]["offset"], expected=expected,
               qom_path=ev["data"]["qom-path"])

        # The ACPI button driver enables the fixed power-button event.
        con.run("modprobe button")
        qmp.cmd("system_powerdown")
        qmp.wait_event("POWERDOWN")
        time.sleep(1)
        st, out = con.run("cat /sys/firmware/acpi/interrupts/ff_pwr_btn")
        result("power_button", status=st, count=int(out.split()[0]) if out.split() else -1)

        # stop/cont while the guest is busy: a spinning loop and a ticker.
        con.run("(while :; do :; done) & (i=0; while :; do i=$((i+1)); echo TICK $i; sleep 0.1; done) &")
        con.expect(r"TICK 5\b", timeout=30)
        qmp.cmd("stop")
        qmp.wait_event("STOP")
        status_stopped = qmp.cmd("query-status")
        time.sleep(0.5)                     # let output already queued drain
        n1 = con.size()
        time.sleep(2)
        n2 = con.size()
        qmp.cmd("cont")
        qmp.wait_event("RESUME")
        status_running = qmp.cmd("query-status")
        n_before = con.size()
        time.sleep(2)
        result("stop_cont", paused=status_stopped, running=status_running,
               grew_while_stopped=n2 - n1, grew_after_cont=con.size() - n_before)

        # reboot -f: a guest reset, then the agent comes back.
        con.sock.sendall(b"reboot -f\n")
        ev = qmp.wait_event("RESET", timeout=60)
        con.expect(r"AGENT READY", timeout=120)
        result("guest_reboot", reset=ev["data"])

        qmp.cmd("system_reset")
        ev = qmp.wait_event("RESET", timeout=30)
        con.expect(r"AGENT READY", timeout=120)
        result("system_reset", reset=ev["data"])

        con.sock.sendall(b"poweroff -f\n")
        ev = qmp.wait_event("SHUTDOWN", timeout=60)
        result("poweroff", shutdown=ev["data"], exit=v.wait(30), sanitizer=sanitizer_report(v))
    finally:
        v.close()


def scenario_no_reboot_paused(tmp, kernel, initrd):
    """-S starts paused; -no-reboot turns the guest's reboot into an exit."""
    v, qmp, con = start_vm(tmp, kernel, initrd, "-S", "-no-reboot")
    try:
        st = qmp.cmd("query-status")
        time.sleep(1)
        quiet = con.size()
        qmp.cmd("cont")
        con.expect(r"AGENT READY", timeout=120)
        con.sock.sendall(b"reboot -f\n")
        ev = qmp.wait_event("SHUTDOWN", timeout=60)
        result("no_reboot", prelaunch=st, output_while_paused=quiet, shutdown=ev["data"],
               exit=v.wait(30), sanitizer=sanitizer_report(v))
    finally:
        v.close()


def scenario_pvh(tmp, vmlinux, initrd):
    """An uncompressed ELF kernel through its PVH entry."""
    v, qmp, con = start_vm(tmp, vmlinux, initrd)
    try:
        con.expect(r"AGENT READY", timeout=120)
        con.sock.sendall(b"poweroff -f\n")
        ev = qmp.wait_event("SHUTDOWN", timeout=60)
        result("pvh", shutdown=ev["data"], exit=v.wait(30), sanitizer=sanitizer_report(v))
    finally:
        v.close()


def scenario_triple_fault(tmp):
    """A guest that triple-faults is reset, as a PC is (-no-reboot: it exits)."""
    kernel = os.path.join(tmp, "triple-fault.elf")
    with open(kernel, "wb") as f:
        f.write(tinyguest.pvh_elf(tinyguest.triple_fault()))
    v = vmm.Vireo("-kernel", kernel, "-m", "16M", "-serial", "null", "-no-reboot", "-S")
    try:
        qmp = v.qmp()
        qmp.cmd("cont")             # started paused: QMP is up before it can end
        ev = qmp.wait_event("SHUTDOWN", timeout=30)
        result("triple_fault", shutdown=ev["data"], exit=v.wait(30),
               sanitizer=sanitizer_report(v))
    finally:
        v.close()


def main():
    kernel, vmlinux, initrd, fw_bin = sys.argv[1:5]
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR") or "/tmp"
    for name, fn in [("main", lambda: scenario_main(tmp, kernel, initrd, fw_bin)),
                     ("no_reboot", lambda: scenario_no_reboot_paused(tmp, kernel, initrd)),
                     ("pvh", lambda: scenario_pvh(tmp, vmlinux, initrd) if vmlinux != "-" else None),
                     ("triple_fault", lambda: scenario_triple_fault(tmp))]:
        try:
            fn()
        except Exception as e:  # report and go on with the next VM
            result("error_" + name, error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
