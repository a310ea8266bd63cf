#!/usr/bin/env python3
"""Drive a VM the way `make run` does, on a terminal: `-serial mon:stdio`
on a pty, the HMP monitor behind Ctrl-A c, the guest's shell on the same
terminal. Runs where KVM can boot Linux (inside the lab here), started by
test_sandbox_console.py; prints one `RESULT {json}` line.

usage: console_pty.py VIREO VIREO_IMG KERNEL INITRD [--strace] [-- VIREO_ARGS...]

With --strace, vireo runs under `strace -f` and the result lists every file
a thread other than the main one opened after the process filter went on
(only the main loop may open files; sanitizer builds allow it everywhere,
so the filter alone would not show such a call there).
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

FW_CFG_STRING = "fw-cfg-through-the-sandbox"


class Terminal:
    def __init__(self, argv):
        self.out = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)

    def read_until(self, want, timeout):
        """Read until want (bytes) appears after the current mark; True if it did."""
        deadline = time.monotonic() + timeout
        while want not in self.out[self.mark:]:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    return False
                if not data:
                    return False
                self.out += data
        return True

    def send(self, data):
        self.mark = len(self.out)
        os.write(self.fd, data)

    def since_mark(self):
        return self.out[self.mark:].decode(errors="replace")

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read_until(b"\0never\0", 0.2)      # keep draining the terminal
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return status
        os.kill(self.pid, signal.SIGKILL)
        return os.waitpid(self.pid, 0)[1]


def vireo_pid(term, under_strace):
    if not under_strace:
        return term.pid
    for _ in range(100):
        try:
            kids = open(f"/proc/{term.pid}/task/{term.pid}/children").read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return None


def status_fields(pid):
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            key, _, value = line.partition(":")
            if key in ("Seccomp", "NoNewPrivs", "Seccomp_filters"):
                out[key] = value.strip()
    except OSError:
        pass
    return out


def late_opens(log_path):
    """Files opened by a thread other than the first after its seccomp filter."""
    lines = open(log_path, errors="replace").read().splitlines()
    if not lines:
        return ["(empty strace log)"]
    main = lines[0].split()[0]
    filtered = False
    found = []
    for line in lines:
        tid = line.split(" ", 1)[0]
        if tid == main and "seccomp(SECCOMP_SET_MODE_FILTER" in line:
            filtered = True
        elif filtered and tid != main and re.search(r"\bopen(at|at2)?\(", line):
            found.append(line)
    if not filtered:
        return ["(the process filter never went on)"]
    return found


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    use_strace = "--strace" in args
    vireo, vireo_img, kernel, initrd = [a for a in args if a != "--strace"]
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR", "/tmp")
    disk = os.path.join(tmp, "console-disk.qcow2")
    subprocess.check_call([vireo_img, "create", "-q", "-f", "qcow2", disk, "64M"])
    argv = [vireo, "-m", "256M", "-smp", "1", "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet", "-serial", "mon:stdio", "-display", "none",
            "-qmp", f"unix:{tmp}/qmp.sock,server=on,wait=off",
            "-fw_cfg", f"name=opt/vireo/test,string={FW_CFG_STRING}",
            "-drive", f"file={disk},format=qcow2,if=none,id=disk0",
            "-device", "virtio-blk-pci,drive=disk0,serial=sbx"] + extra
    log = os.path.join(tmp, "strace.log")
    if use_strace:
        # LeakSanitizer cannot work under ptrace: it would fail the exit.
        os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        argv = ["strace", "-f", "-qq", "-o", log] + argv
    r = {}
    t = Terminal(argv)
    t.mark = 0
    r["booted"] = t.read_until(b"=== ready", 300)
    t.read_until(b"# ", 30)                             # the guest's shell prompt
    pid = vireo_pid(t, use_strace)
    r["status"] = status_fields(pid) if pid else {}
    if r["booted"]:
        # Each marker is printed by the guest but not typed: the terminal
        # echoes what is typed, and the echo must not count as the answer.
        t.send(b"cat /sys/firmware/qemu_fw_cfg/by_name/opt/vireo/test/raw; echo\r")
        r["fw_cfg"] = t.read_until(FW_CFG_STRING.encode(), 30)
        t.read_until(b"# ", 10)
        t.send(b"hwclock -r -u; echo \"r\"\"c=$?\"\r")   # RTC reads on the vCPU thread
        t.read_until(b"rc=", 30)
        t.read_until(b"# ", 10)
        r["hwclock"] = t.since_mark()
        t.send(b"\x01c")                             # to the monitor
        t.read_until(b"(vireo) ", 10)
        t.send(b"info status\r")
        t.read_until(b"VM status", 15)
        t.read_until(b"(vireo) ", 10)
        r["info_status"] = t.since_mark()
        t.send(b"info chardev\r")
        t.read_until(b"filename=stdio", 15)
        t.read_until(b"(vireo) ", 10)
        r["info_chardev"] = t.since_mark()
        t.send(b"\x01c")                             # back to the guest
        time.sleep(0.5)
        t.send(b"echo sum-$((40+2))\r")
        r["guest_echo"] = t.read_until(b"sum-42", 30)
        t.read_until(b"# ", 10)
        t.send(b"dd if=/dev/vda of=/dev/null bs=64k count=16 2>&1; echo \"d\"\"d=$?\"\r")
        r["disk_read"] = t.read_until(b"dd=0", 60)
        t.read_until(b"# ", 10)
        t.send(b"poweroff -f\r")
    status = t.wait(120)
    r["exit"] = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else \
        {"code": os.WEXITSTATUS(status)}
    if use_strace:
        r["exit_in_strace"] = [l for l in open(log, errors="replace").read().splitlines()
                               if "SIGSYS" in l or "killed by" in l][-5:]
        r["late_opens"] = late_opens(log)
    r["tail"] = t.out.decode(errors="replace")[-3000:]
    print("RESULT " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
