#!/usr/bin/env python3
"""A quit request sent the moment a daemon's socket appears ends the daemon
cleanly (status 0, socket and images closed), never by the signal's
default action. Scripts and service managers do exactly this: wait for
the socket, then stop the daemon. Each daemon blocks SIGTERM before it
makes anything a client can see, and reads it later from its signalfd.

The socket is polled without sleeping so the signal lands in the earliest
window the race could have; each daemon is tried many times.
"""
import os
import signal
import subprocess
import tempfile
import time

import vtest

ROUNDS = 25


def stop_as_soon_as(path, argv, log):
    """Start argv, SIGTERM it once path exists, return its exit status."""
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{path} never appeared (status {proc.returncode})")
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the daemon did not exit within 20 s of SIGTERM")


def check_rounds(make_argv, path_name):
    d = tempfile.mkdtemp(prefix="early-quit-")
    log_path = os.path.join(d, "log")
    with open(log_path, "w") as log:
        for i in range(ROUNDS):
            path = os.path.join(d, f"{path_name}{i}")
            rc = stop_as_soon_as(path, make_argv(d, path), log)
            assert rc == 0, f"round {i}: status {rc}: " + open(log_path).read()[-2000:]
            assert not os.path.exists(path), f"round {i}: socket left behind"
    text = open(log_path).read()
    assert "Sanitizer" not in text and "runtime error" not in text, text[-2000:]


def test_storage_daemon():
    def argv(d, sock):
        img = os.path.join(d, "disk.raw")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        return [vtest.binary("vireo-storage-daemon"),
                "--blockdev", f"driver=file,node-name=file0,filename={img}",
                "--export", "type=vhost-user-blk,id=e0,node-name=file0,addr.type=unix,"
                            f"addr.path={sock},writable=on"]
    check_rounds(argv, "blk.sock")


def test_ivshmem_server():
    def argv(d, sock):
        return [vtest.binary("vireo-ivshmem-server"), "-F", "-S", sock,
                "-M", f"vireo-early-quit-{os.getpid()}", "-l", "64K", "-n", "1"]
    check_rounds(argv, "ivsh.sock")


def test_vhost_user_net():
    if os.getuid() != 0 or not os.path.exists("/dev/net/tun"):
        vtest.skip("needs root and /dev/net/tun")

    def argv(d, sock):
        return [vtest.binary("vireo-vhost-user-net"), f"--socket-path={sock}",
                f"--tap=eq{os.getpid() % 100000}"]
    check_rounds(argv, "net.sock")


if __name__ == "__main__":
    vtest.main()
