#!/usr/bin/env python3
"""The sandbox seen from outside: seccomp mode and per-thread filters in
/proc, -sandbox off, -runas, -chroot, inherited descriptors, and the
option as query-command-line-options reports it (compared with QEMU 7.2).

The filters' verdicts on single calls (a denied execve, log=on naming the
call) are checked in forked children by tests/sandbox/test-sandbox.c.
"""
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "machine"))
import vmm  # noqa: E402
import vtest  # noqa: E402


def status_field(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].split()
    raise KeyError(name)


def task_filters(pid):
    """{tid: number of seccomp filters} for every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        out[int(tid)] = int(status_field(f"/proc/{pid}/task/{tid}/status", "Seccomp_filters")[0])
    return out


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def qtest_vm(*args):
    if "-sandbox" not in args:
        args = ("-sandbox", "on") + args
    v = vmm.Vireo("-m", "64M", *args, qtest=True)
    v.qmp()
    return v


def test_on_by_default_and_off_on_request():
    with vmm.Vireo("-m", "64M", qtest=True) as v:
        v.qmp()
        assert status_field(f"/proc/{v.proc.pid}/status", "Seccomp") == ["2"]
        assert status_field(f"/proc/{v.proc.pid}/status", "NoNewPrivs") == ["1"]
        assert v.qtest.readl(0xfee00030) is not None    # the VM still answers
    with qtest_vm() as v:
        assert status_field(f"/proc/{v.proc.pid}/status", "Seccomp") == ["2"]
    with qtest_vm("-sandbox", "off") as v:
        assert status_field(f"/proc/{v.proc.pid}/status", "Seccomp") == ["0"]
        assert status_field(f"/proc/{v.proc.pid}/status", "NoNewPrivs") == ["0"]


def test_every_sub_option_denied_still_runs_a_vm():
    opts = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    with qtest_vm("-sandbox", opts, "-object", "iothread,id=io0") as v:
        assert status_field(f"/proc/{v.proc.pid}/status", "Seccomp") == ["2"]
        v.qtest.writeb(0x70, 0x0a)
        v.qtest.readb(0x71)
        v.qmp().cmd("query-status")


def test_iothread_stacks_its_own_filter():
    with qtest_vm("-object", "iothread,id=io0") as v:
        pid = v.proc.pid
        names = {int(t): open(f"/proc/{pid}/task/{t}/comm").read().strip()
                 for t in os.listdir(f"/proc/{pid}/task")}
        io = [t for t, n in names.items() if n == "IO io0"]
        assert len(io) == 1, names
        wait_for(lambda: task_filters(pid)[io[0]] == 2)
        assert task_filters(pid)[pid] == 1      # the main loop: the process filter only


def test_vcpus_stack_their_own_filter():
    if not os.path.exists("/dev/kvm"):
        vtest.skip("no /dev/kvm")
    from tinyguest import pvh_elf
    d = tempfile.mkdtemp(prefix="vireo-sandbox-")
    try:
        kernel = os.path.join(d, "spin.elf")
        with open(kernel, "wb") as f:
            f.write(pvh_elf(b"\xeb\xfe"))       # jmp . : keeps the vCPUs busy
        with vmm.Vireo("-kernel", kernel, "-m", "16M", "-smp", "2", "-nodefaults",
                       "-sandbox", "on") as v:
            v.qmp()
            pid = v.proc.pid
            wait_for(lambda: sorted(task_filters(pid).values()).count(2) >= 2)
            assert task_filters(pid)[pid] == 1
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_runas_drops_to_the_user():
    nobody = pwd.getpwnam("nobody")
    if os.getuid() != 0:
        vtest.skip("needs root to change user")
    for opt in (["-runas", "nobody"], ["-run-with", "user=nobody"],
                ["-runas", f"{nobody.pw_uid}:{nobody.pw_gid}"]):
        with qtest_vm(*opt) as v:
            st = f"/proc/{v.proc.pid}/status"
            assert status_field(st, "Uid") == [str(nobody.pw_uid)] * 4, opt
            assert status_field(st, "Gid") == [str(nobody.pw_gid)] * 4, opt
            assert status_field(st, "Groups") in ([], [str(nobody.pw_gid)]), opt
            v.qtest.writeb(0x70, 0x0a)          # the RTC still works as nobody
            v.qtest.readb(0x71)
    rc, _, err = vmm.run("-runas", "no-such-user-h11", "-M", "none")
    assert rc == 1 and 'User "no-such-user-h11" doesn\'t exist' in err, err


def test_chroot():
    if os.getuid() != 0:
        vtest.skip("needs root to chroot")
    d = tempfile.mkdtemp(prefix="vireo-root-")
    try:
        # LeakSanitizer reads /proc at exit, which an empty root does not have.
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        for opt in (["-chroot", d], ["-run-with", f"chroot={d}"]):
            with vmm.Vireo("-m", "64M", "-sandbox", "on", *opt, qtest=True, env=env) as v:
                v.qmp()
                assert os.readlink(f"/proc/{v.proc.pid}/root") == d
                assert os.readlink(f"/proc/{v.proc.pid}/cwd") == d
                v.qtest.readb(0x71)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def open_files(pid):
    """What pid's descriptors point at ("pipe:[inode]", paths...)."""
    d = f"/proc/{pid}/fd"
    return {os.readlink(os.path.join(d, fd)) for fd in os.listdir(d)}


def test_inherited_descriptors_are_closed():
    stray_r, stray_w = os.pipe()
    kept_r, kept_w = os.pipe()
    stray = os.readlink(f"/proc/self/fd/{stray_r}")
    kept = os.readlink(f"/proc/self/fd/{kept_r}")
    try:
        with vmm.Vireo("-m", "64M", "-M", "none", "-sandbox", "on", "-add-fd", f"fd={kept_r},set=3",
                       pass_fds=(stray_r, kept_r)) as v:
            v.qmp()
            files = open_files(v.proc.pid)
            assert stray not in files, files
            assert kept in files, files
        with vmm.Vireo("-m", "64M", "-M", "none", "-sandbox", "off", pass_fds=(stray_r,)) as v:
            v.qmp()
            assert stray in open_files(v.proc.pid), "-sandbox off keeps what it inherits, as QEMU"
    finally:
        for fd in (stray_r, stray_w, kept_r, kept_w):
            os.close(fd)


def command_line_option(binary, name):
    with vmm.Vireo("-M", "none", binary=binary) as v:
        return v.qmp().cmd("query-command-line-options", option=name)


def test_query_command_line_options_like_qemu():
    ours = command_line_option(None, "sandbox")
    assert [o["option"] for o in ours] == ["sandbox"]
    params = [(p["name"], p["type"]) for p in ours[0]["parameters"]]
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        vtest.skip("QEMU 7.2 is not installed")
    theirs = command_line_option(qemu, "sandbox")
    want = [(p["name"], p["type"]) for p in theirs[0]["parameters"]]
    # QEMU's parameters in QEMU's order; vireo adds log= after them.
    assert params[:len(want)] == want, (params, want)
    assert params[len(want):] == [("log", "boolean")]


def test_listening_sockets_are_private():
    old = os.umask(0)       # even when started with a permissive umask
    try:
        v = vmm.Vireo("-M", "none")
    finally:
        os.umask(old)
    with v:
        v.qmp()
        mode = os.lstat(v.qmp_path).st_mode
        assert mode & 0o077 == 0, oct(mode)


def test_bad_sub_option_values():
    rc, _, err = vmm.run("-sandbox", "on,spawn=maybe", "-M", "none")
    assert rc == 1 and "spawn" in err, err
    rc, _, err = vmm.run("-sandbox", "on,nope=1", "-M", "none")
    assert rc == 1, err


def thread_names(pid):
    return {int(t): open(f"/proc/{pid}/task/{t}/comm").read().strip()
            for t in os.listdir(f"/proc/{pid}/task")}


def run_tool(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (argv, p.stdout[-2000:], p.stderr[-2000:])
    return p.stdout


def test_nbd_export_served_by_confined_workers():
    """An NBD export of a qcow2 node with -sandbox on,log=on: qemu-io writes,
    nbdinfo --map and nbdcopy are served by the NBD workers, each under its
    own list stacked on the process's; no call is refused."""
    for tool in ("qemu-io", "qemu-img", "nbdinfo", "nbdcopy"):
        if not shutil.which(tool):
            vtest.skip(f"{tool} is not installed")
    d = tempfile.mkdtemp(prefix="vireo-sandbox-nbd-")
    try:
        img, sock, copy = (os.path.join(d, n) for n in ("d.qcow2", "nbd.sock", "copy.raw"))
        run_tool("qemu-img", "create", "-q", "-f", "qcow2", img, "32M")
        with qtest_vm("-sandbox", "on,log=on", "-S",
                      "-blockdev", f"driver=file,node-name=f0,filename={img}",
                      "-blockdev", "driver=qcow2,node-name=n0,file=f0") as v:
            q = v.qmp()
            q.cmd("nbd-server-start", addr={"type": "unix", "data": {"path": sock}})
            # (sent whole: cmd() would take "id" for the request's own)
            q.send_raw(json.dumps({"execute": "block-export-add", "arguments": {
                "type": "nbd", "id": "e0", "node-name": "n0", "name": "disk",
                "writable": True}}) + "\n")
            assert q.reply().get("return") == {}
            url = f"nbd+unix:///disk?socket={sock}"
            run_tool("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 3M", "-c",
                     "write -z 8M 64k", "-c", "discard 1M 64k", "-c", "flush", url)
            out = run_tool("qemu-io", "-f", "raw", "-c", "read -P 0x5a 2M 2M", url)
            assert "Pattern verification failed" not in out, out
            out = run_tool("nbdinfo", "--map", url)
            assert "data" in out and "hole,zero" in out, out
            run_tool("nbdcopy", url, copy)
            with open(copy, "rb") as f:
                f.seek(2 << 20)
                assert f.read(1 << 20) == b"\x5a" * (1 << 20)
            pid = v.proc.pid
            names, filters = thread_names(pid), task_filters(pid)
            workers = [t for t, n in names.items() if n == "NBD worker"]
            # the two workers, and block workers they started (named after them,
            # with a third list of their own)
            assert sorted(filters[t] for t in workers)[:2] == [2, 2], (names, filters)
            assert all(filters[t] >= 2 for t in workers), (names, filters)
            assert filters[pid] == 1
            q.cmd("quit")
            v.wait()
            assert "forbidden system call" not in v.stderr, v.stderr
        run_tool("qemu-img", "check", img)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    vtest.main()
