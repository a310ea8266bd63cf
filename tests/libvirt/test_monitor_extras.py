"""Monitor commands libvirt sends during a domain's life that report what
vireo cannot do (CPU hotplug, wake-up from suspend) and the HMP info
commands people run by hand (help info, info cpus, info kvm), side by side
with Debian's QEMU 7.2 where both implement them."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import vmm
import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "machine"))
from tinyguest import HALT, pvh_elf  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")

REQUESTS = [
    ("query-hotpluggable-cpus", {}),
    ("system_wakeup", {}),
    ("human-monitor-command", {"command-line": "info kvm"}),
    ("human-monitor-command", {"command-line": "info cpus"}),
    ("human-monitor-command", {"command-line": "help info kvm"}),
    ("human-monitor-command", {"command-line": "help info cpus"}),
]


def qemu_answers():
    d = tempfile.mkdtemp(prefix="vireo-extras-")
    path = os.path.join(d, "q.sock")
    proc = subprocess.Popen([QEMU, "-M", "none", "-nodefaults", "-display", "none", "-S",
                             "-qmp", f"unix:{path},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
        q = vmm.QMP.unix(path)
        return [q.execute(name, **args(a)) for name, a in REQUESTS]
    finally:
        proc.kill()
        proc.wait()


def args(d):
    return {k.replace("-", "_"): v for k, v in d.items()}


def test_same_answers_as_qemu_on_a_machine_without_vcpus():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        ours = [q.execute(name, **args(a)) for name, a in REQUESTS] + [q.execute("query-kvm")]
    r = ours[0]["error"]
    assert r == {"class": "GenericError",
                 "desc": "The feature 'query-hotpluggable-cpus' is not enabled"}, r
    assert ours[1]["error"]["desc"] == "wake-up from suspend is not supported by this guest"
    # present: whether this host offers KVM (a fact of the host, so QEMU's
    # answer is not compared); the qtest accelerator never uses it.
    kvm = ours[-1]["return"]
    assert not kvm["enabled"]
    want = "disabled" if kvm["present"] else "not compiled"
    assert ours[2]["return"].replace("\r", "") == f"kvm support: {want}\n", ours[2]
    assert ours[3] == {"return": ""}
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    theirs = qemu_answers()
    diffs = [f"{req}\n  vireo: {a}\n  qemu:  {b}"
             for req, a, b in zip(REQUESTS, ours, theirs) if a != b and req != REQUESTS[2]]
    assert not diffs, "differences from QEMU 7.2:\n" + "\n".join(diffs)


def info_lines(text):
    return [ln for ln in text.replace("\r", "").split("\n") if ln]


def test_help_info_lists_every_info_command_sorted():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        lines = info_lines(q.cmd("human-monitor-command", command_line="help info"))
        assert lines == info_lines(q.cmd("human-monitor-command", command_line="info"))
        names = [ln.split()[1] for ln in lines]
        assert all(ln.startswith("info ") and " -- " in ln for ln in lines), lines
        assert names == sorted(names), names
        for must in ("cpus", "kvm", "block", "chardev", "virtio", "status", "name"):
            assert must in names, names
        # Every listed command runs (none is "unknown command").
        for n in names:
            out = q.cmd("human-monitor-command", command_line=f"info {n}")
            assert "unknown command" not in out, (n, out)
        assert q.cmd("human-monitor-command", command_line="help info nope") == ""
        top = info_lines(q.cmd("human-monitor-command", command_line="help"))
        assert [ln.split()[0] for ln in top] == sorted(ln.split()[0] for ln in top)


def test_info_cpus_and_kvm_with_running_vcpus():
    if not os.path.exists("/dev/kvm"):
        vtest.skip("no /dev/kvm")
    d = tempfile.mkdtemp(prefix="vireo-extras-")
    kernel = os.path.join(d, "tiny.elf")
    with open(kernel, "wb") as f:
        f.write(pvh_elf(HALT))
    with vmm.Vireo("-kernel", kernel, "-m", "16M", "-smp", "3", "-S") as v:
        q = v.qmp()
        assert q.cmd("human-monitor-command", command_line="info kvm") \
            .replace("\r", "") == "kvm support: enabled\n"
        cpus = q.cmd("query-cpus-fast")
        lines = info_lines(q.cmd("human-monitor-command", command_line="info cpus"))
        assert len(lines) == 3 == len(cpus), lines
        for i, (ln, c) in enumerate(zip(lines, cpus)):
            m = re.fullmatch(r"([* ]) CPU #(\d+): thread_id=(\d+)", ln)
            assert m, ln
            assert m.group(1) == ("*" if i == 0 else " ")
            assert int(m.group(2)) == c["cpu-index"] == i
            assert int(m.group(3)) == c["thread-id"] > 0
        e = q.execute("query-hotpluggable-cpus")["error"]
        assert e["desc"] == "The feature 'query-hotpluggable-cpus' is not enabled"
        assert "error" in q.execute("system_wakeup")


if __name__ == "__main__":
    vtest.main()
