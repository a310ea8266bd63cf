#!/usr/bin/env python3
"""The nested KVM lab, end to end.

Boots one L1 (when the host's KVM cannot boot Linux; directly on the host
otherwise), checks its /dev/kvm and the job protocol, then boots Debian's
kernel as an L2 guest with QEMU microvm and a build_initramfs() image.
"""
import gzip
import os
import shutil
import signal
import stat
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
import vtest  # noqa: E402
import lab  # noqa: E402

MARKER = "vireo-lab-L2-says-hello"


def need_tools():
    missing = [t for t in ("qemu-system-x86_64", "modinfo") if not shutil.which(t)]
    try:
        lab.kernel_path()
    except lab.LabError:
        missing.append("linux-image-amd64")
    if missing:
        vtest.skip("missing " + ", ".join(missing) + " (scripts/install-deps installs them)")


def test_detection():
    verdict = lab.kvm_can_boot_linux()
    assert isinstance(verdict, bool)
    if os.path.isdir("/sys/module/kvm_pvm") and not os.environ.get("VIREO_LAB"):
        assert verdict is False, "kvm_pvm cannot boot Linux"
    saved = os.environ.get("VIREO_LAB")
    try:
        os.environ["VIREO_LAB"] = "force"
        assert lab.kvm_can_boot_linux() is False and lab.uses_lab()
        os.environ["VIREO_LAB"] = "never"
        assert lab.kvm_can_boot_linux() is True and not lab.uses_lab()
    finally:
        if saved is None:
            os.environ.pop("VIREO_LAB", None)
        else:
            os.environ["VIREO_LAB"] = saved


def test_kernel():
    need_tools()
    path, version = lab.kernel_path(), lab.kernel_version()
    assert os.path.basename(path) == "vmlinuz-" + version, path
    assert os.path.isdir(lab.modules_dir()), lab.modules_dir()
    elf = lab.vmlinux_path()
    if elf:
        with open(elf, "rb") as f:
            assert f.read(4) == b"\x7fELF"


def build_and_time(out, init, files):
    t0 = time.monotonic()
    lab.build_initramfs(out, init, modules=["virtio_blk"], files=files)
    return time.monotonic() - t0


def test_initramfs_contents_and_cache():
    need_tools()
    out = os.path.join(lab.workdir(), "guest.cpio.gz")
    init = "#!/bin/sh\necho hi\npoweroff -f\n"
    files = {"etc/greeting": "hello\n", "bin/tool": ("#!/bin/sh\n", 0o700), "data.bin": b"\0\1\2"}
    # An empty cache, so that the first build really builds.
    os.environ["VIREO_LAB_CACHE"] = lab.workdir("cache-")
    try:
        built = build_and_time(out, init, files)
        out2 = os.path.join(lab.workdir(), "again.cpio.gz")
        cached = build_and_time(out2, init, files)
    finally:
        del os.environ["VIREO_LAB_CACHE"]
    assert cached < 0.5 and cached < built, (built, cached)
    with open(out, "rb") as f:
        data = f.read()
    assert data[:2] == b"\x1f\x8b"
    entries = lab.read_cpio(data)
    mode, body = entries["init"]
    assert body.decode() == init and mode & 0o111
    assert stat.S_ISREG(entries["bin/busybox"][0])
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"/bin/busybox"
    assert stat.S_ISLNK(entries["sbin/insmod"][0])
    assert stat.S_ISCHR(entries["dev/console"][0])
    order = entries["lib/modules/load-order"][1].decode().split("\n")
    names = [os.path.basename(line) for line in order if line]
    # virtio_blk needs virtio and virtio_ring, which must be loaded first.
    assert names[-1] == "virtio_blk.ko", names
    assert names.index("virtio_ring.ko") < names.index("virtio.ko"), names
    for line in order:
        if line:
            assert entries[line.lstrip("/")][1][:4] == b"\x7fELF", line
    assert entries["etc/greeting"][1] == b"hello\n"
    assert stat.S_IMODE(entries["bin/tool"][0]) == 0o700
    assert entries["data.bin"][1] == b"\0\1\2"
    # Same inputs: served from the cache, byte for byte.
    with open(out2, "rb") as f:
        assert f.read() == data
    # Different inputs: a different image.
    other = lab.build_initramfs(None, init + "# changed\n", modules=["virtio_blk"], files=files)
    with open(other, "rb") as f:
        assert gzip.decompress(f.read()) != gzip.decompress(data)


def test_run_on_host_semantics():
    status, out = lab.run_on_host("echo out; echo err >&2; exit 5", timeout=10)
    assert status == 5 and "out\n" in out and "err\n" in out, (status, out)
    status, out = lab.run_on_host(["printf", "%s|", "a b", "c"], timeout=10)
    assert (status, out) == (0, "a b|c|"), (status, out)
    t0 = time.monotonic()
    status, out = lab.run_on_host("echo started; sleep 60 & sleep 60", timeout=1)
    assert status == lab.TIMEOUT and "started" in out and "timed out" in out, (status, out)
    assert time.monotonic() - t0 < 10


def lab_or_skip():
    need_tools()
    if os.environ.get("VIREO_LAB") == "never":
        vtest.skip("VIREO_LAB=never")
    l1 = lab.shared_lab()
    if not l1.alive:
        l1.start()
        print(f"L1 boot: {l1.boot_seconds:.1f} s wall", flush=True)
    return l1


def test_l1_has_usable_kvm():
    l1 = lab_or_skip()
    check = ("import fcntl, os\n"
             "fd = os.open('/dev/kvm', os.O_RDWR)\n"
             "assert fcntl.ioctl(fd, 0xAE00) == 12\n"  # KVM_GET_API_VERSION
             "vm = fcntl.ioctl(fd, 0xAE01, 0)\n"      # KVM_CREATE_VM
             "assert vm >= 0\n"
             "print('kvm ok')\n")
    status, out = l1.run(f"test -c /dev/kvm && python3 -c \"{check}\" && "
                         "cat /sys/module/kvm_amd/parameters/nested", timeout=60)
    assert status == 0 and "kvm ok" in out, (status, out)


def test_l1_jobs():
    l1 = lab_or_skip()
    status, out = l1.run("echo out; echo err >&2; exit 3", timeout=30)
    assert status == 3 and "out\n" in out and "err\n" in out, (status, out)
    status, out = l1.run(["printf", "%s|", "a b", "c"], timeout=30)
    assert (status, out) == (0, "a b|c|"), (status, out)
    # The caller's working directory and environment come along.
    status, out = l1.run('pwd; echo "$LAB_MODE $VIREO_MARK"', timeout=30,
                         cwd=ROOT, env={"VIREO_MARK": "x y"})
    assert out == f"{ROOT}\nlab x y\n", out
    # A writable shared directory (same path) and a tmpfs for UNIX sockets.
    work = l1.workdir()
    status, out = l1.run(f'echo result > {work}/r && cd "$LAB_TMP" && '
                         "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('s.sock')\" "
                         "&& echo bound", timeout=60)
    assert status == 0 and "bound" in out, (status, out)
    with open(os.path.join(work, "r")) as f:
        assert f.read() == "result\n"
    # A job over its time limit is killed with what it started; L1 stays.
    t0 = time.monotonic()
    status, out = l1.run("echo started; sleep 101 & sleep 102", timeout=2)
    assert status == lab.TIMEOUT and "started" in out and "timed out" in out, (status, out)
    assert time.monotonic() - t0 < 15
    # A process may exit between the glob and the read: its line is dropped.
    status, out = l1.run("for f in /proc/[0-9]*/cmdline; do { tr '\\0' ' ' <$f; } 2>/dev/null; "
                         "echo; done | grep '^sleep 10[12]' || echo none left", timeout=30)
    assert status == 0 and out == "none left\n", (status, out)


def l2_command(kernel, initrd, append="console=ttyS0 panic=-1 quiet"):
    return (f"qemu-system-x86_64 -M microvm -enable-kvm -cpu host -m 256 -smp 1 "
            f"-nodefaults -no-user-config -display none -no-reboot -serial stdio "
            f"-kernel {kernel} -initrd {initrd} -append '{append}'")


def test_l2_boots_with_qemu_microvm():
    need_tools()
    init = ("#!/bin/sh\n"
            "mount -t proc proc /proc\n"
            "mount -t sysfs sysfs /sys\n"
            "modprobe virtio_blk && test -d /sys/module/virtio_blk && echo modprobe-ok\n"
            f"echo {MARKER} at $(cut -d' ' -f1 /proc/uptime)\n"
            "poweroff -f\n")
    initrd = lab.build_initramfs(os.path.join(lab.workdir(), "l2.cpio.gz"), init,
                                 modules=["virtio_blk"])
    if lab.uses_lab():
        lab_or_skip()
    script = ("start=$(date +%s.%N)\n"
              f"timeout 150 {l2_command(lab.kernel_path(), initrd)}\n"
              "st=$?\n"
              'awk "BEGIN { printf \\"vmm took %.1f s\\n\\", $(date +%s.%N) - $start }"\n'
              "exit $st\n")
    t0 = time.monotonic()
    status, out = lab.run_vmm(script, timeout=180)
    wall = time.monotonic() - t0
    print(f"L2 boot to poweroff via QEMU microvm ({'lab' if lab.uses_lab() else 'host'}): "
          f"{wall:.1f} s wall\n{out}", flush=True)
    assert status == 0, (status, out)
    assert MARKER in out and "modprobe-ok" in out, out


def test_run_vmm_mode():
    need_tools()
    if lab.uses_lab():
        lab_or_skip()
    status, out = lab.run_vmm('echo "$LAB_MODE"; test -c /dev/kvm && echo kvm', timeout=60)
    assert status == 0, (status, out)
    assert out == ("lab" if lab.uses_lab() else "host") + "\nkvm\n", out



def test_l1_death_is_reported_and_recovered():
    l1 = lab_or_skip()
    try:
        l1.run("echo b > /proc/sysrq-trigger; sleep 30", timeout=60)
        raise AssertionError("a powered-off L1 went unnoticed")
    except lab.LabError as e:
        assert "L1 died" in str(e), e
    assert not l1.alive
    status, out = l1.run("echo back", timeout=30)
    assert (status, out) == (0, "back\n"), (status, out)



def test_hung_l1_is_killed_and_replaced():
    l1 = lab_or_skip()
    l1.grace = 2
    try:
        l1.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        status, out = l1.run("echo never", timeout=1)
        assert status == lab.TIMEOUT and "stopped answering" in out, (status, out)
        assert time.monotonic() - t0 < 10
        assert not l1.alive
        status, out = l1.run("echo back", timeout=30)
        assert (status, out) == (0, "back\n"), (status, out)
    finally:
        l1.grace = 60


def test_silent_l1_found_before_a_long_limit():
    """A frozen L1 is found by its missing heartbeat, not after the job's
    whole limit, and the monitor tells where its CPU was."""
    l1 = lab_or_skip()
    l1.silence_limit = 12
    try:
        l1.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        status, out = l1.run("echo never", timeout=600)
        took = time.monotonic() - t0
        assert status == lab.TIMEOUT and lab.L1_HUNG in out, (status, out)
        assert "no word from L1 for 12 s" in out, out
        assert took < 40, took
    finally:
        l1.silence_limit = 120
    assert not l1.alive


def test_run_vmm_runs_a_job_again_after_l1_froze():
    """run_vmm() runs a job a second time in a new L1 when the first L1
    froze during it (here: L0 stops L1's QEMU once the job has started)."""
    if not lab.uses_lab():
        vtest.skip("jobs run on this host, not in the lab")
    l1 = lab_or_skip()
    work = lab.workdir("froze-")
    mark = os.path.join(work, "first")
    script = (f"if [ -e {mark} ]; then echo second try; exit 0; fi\n"
              f": > {mark}; sleep 300\n")
    l1.silence_limit = 12

    def freeze():
        end = time.monotonic() + 120
        while not os.path.exists(mark) and time.monotonic() < end:
            time.sleep(0.2)
        l1.proc.send_signal(signal.SIGSTOP)

    stopper = threading.Thread(target=freeze, daemon=True)
    stopper.start()
    try:
        status, out = lab.run_vmm(script, timeout=600)
    finally:
        l1.silence_limit = 120
        stopper.join()
    assert status == 0 and out.endswith("second try\n"), (status, out)
    assert "L1 froze during the job; running it again in a new L1" in out, out


vtest.main()
