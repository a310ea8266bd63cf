#!/usr/bin/env python3
"""vireo-storage-daemon killed (SIGKILL) under a QEMU 7.2 guest's writes.

QEMU reconnects (reconnect=1) to a new daemon on the same socket and hands
it the inflight area; requests the dead daemon had taken are resubmitted.
The guest must read back exactly what it wrote: nothing lost, nothing
applied twice out of order. The image is raw, so a killed daemon loses no
format metadata (the guest does not flush until the end). QEMU runs under
TCG on the host.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vtest  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
MiB = 1 << 20
COUNT = 24          # MiB the guest writes
KILLS = 4           # daemon restarts while it writes

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
dd if=/dev/urandom of=/tmp/rnd bs=1M count=%d 2>/dev/null
echo WRITING
ok=0
for pass in 1 2 3 4 5 6 7 8; do
    dd if=/tmp/rnd of=/dev/vda bs=64k oflag=direct conv=fsync 2>/dev/null || ok=1
done
echo "WRITTEN $ok"
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/rnd2 bs=1M count=%d 2>/dev/null
cmp /tmp/rnd /tmp/rnd2 && echo READBACK-OK
echo "RANDOM-MD5 $(md5sum /tmp/rnd | cut -d' ' -f1)"
poweroff -f
""" % (COUNT, COUNT)


def start_daemon(img, sock, log):
    return subprocess.Popen(
        [vtest.binary("vireo-storage-daemon"),
         "--blockdev", f"driver=file,node-name=file0,filename={img}",
         "--blockdev", "driver=raw,node-name=disk0,file=file0",
         "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                     f"addr.path={sock},writable=on,num-queues=2"],
        stderr=log)


def wait_socket(path, proc):
    deadline = time.time() + 10
    while not os.path.exists(path):
        assert proc.poll() is None and time.time() < deadline, "daemon did not start"
        time.sleep(0.02)


def test_daemon_killed_during_writes():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    work = tempfile.mkdtemp(prefix="vu-restart-")
    img, sock = os.path.join(work, "disk.raw"), os.path.join(work, "vub.sock")
    logpath = os.path.join(work, "daemon.log")
    log = open(logpath, "w")
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", img, "64M"], check=True)
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 modules=["virtio_pci", "virtio_blk"])
    d = start_daemon(img, sock, log)
    wait_socket(sock, d)
    q = subprocess.Popen(
        [QEMU, "-M", "pc", "-accel", "tcg", "-m", "256M", "-smp", "2",
         "-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
         "-numa", "node,memdev=mem0",
         "-chardev", f"socket,id=c0,path={sock},reconnect=1",
         "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
         "-kernel", lab.kernel_path(), "-initrd", initrd,
         "-append", "console=ttyS0 quiet panic=-1",
         "-display", "none", "-nodefaults", "-serial", "stdio", "-no-reboot"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(600, q.kill)
    timer.start()
    out, state = [], {"daemon": d, "kills": 0, "written": False}

    def kill_repeatedly():
        """SIGKILL and restart the daemon a few times while the guest writes."""
        for _ in range(KILLS):
            # Short pauses: a fast guest writes the whole image in about a
            # second, and the test needs a restart of a restarted daemon.
            if state["written"]:
                return
            state["daemon"].kill()
            state["daemon"].wait()
            state["kills"] += 1
            time.sleep(0.2)
            state["daemon"] = start_daemon(img, sock, log)
            time.sleep(0.15)

    killer = threading.Thread(target=kill_repeatedly)
    try:
        for line in q.stdout:
            out.append(line)
            if line.startswith("WRITING"):
                killer.start()
            if line.startswith("WRITTEN"):
                state["written"] = True
        q.wait()
    finally:
        timer.cancel()
        if killer.is_alive() or killer.ident:
            killer.join()
        state["daemon"].terminate()
        state["daemon"].wait(10)
    killed = state["kills"]
    text, dlog = "".join(out), open(logpath).read()
    assert killed >= 2, (killed, text[-3000:])
    assert "WRITTEN 0" in text and "READBACK-OK" in text, text[-3000:] + dlog[-2000:]
    guest_md5 = re.search(r"RANDOM-MD5 ([0-9a-f]{32})", text).group(1)
    with open(img, "rb") as f:
        assert hashlib.md5(f.read(COUNT * MiB)).hexdigest() == guest_md5
    n = sum(int(x) for x in re.findall(r"resubmitting (\d+) requests", dlog))
    print(f"{killed} restarts; requests resubmitted after them: {n}")
    assert "ERROR: AddressSanitizer" not in dlog and "runtime error" not in dlog, dlog


if __name__ == "__main__":
    vtest.main()
