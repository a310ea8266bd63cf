#!/usr/bin/env python3
"""The daemons confine themselves once start-up is done: each runs under
its own seccomp filter (Seccomp: 2, NoNewPrivs: 1 in /proc/PID/status)
and still does its job afterwards, including the work that comes only
after the filter: a frontend or client connecting, QMP adding an export
(a new listening socket), and a clean exit on SIGTERM or quit.

Which calls each list denies is checked in forked children by
tests/sandbox/test-sandbox.c.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import vtest
from vmm import QMP

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "vhost-user"))
sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "ivshmem"))
from ivpeer import Peer, Server  # noqa: E402
from vufront import GET_FEATURES, Frontend  # noqa: E402


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def wait_confined(pid, timeout=20):
    """The filter goes on just after the sockets appear: wait for it."""
    deadline = time.monotonic() + timeout
    while status(pid)["Seccomp"] != "2":
        assert time.monotonic() < deadline, status(pid)["Seccomp"]
        time.sleep(0.02)
    st = status(pid)
    assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]
    assert int(st["Seccomp_filters"]) >= 1, st["Seccomp_filters"]


def wait_path(path, proc, log, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, f"exited {proc.returncode}: {read(log)}"
        assert time.monotonic() < deadline, f"{path} never appeared: {read(log)}"
        time.sleep(0.02)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()[-3000:]


def check_log(log):
    text = read(log)
    assert "forbidden system call" not in text, text
    assert "Sanitizer" not in text and "runtime error" not in text, text


def features(sock_path):
    fe = Frontend(sock_path)
    try:
        value = fe.call_u64(GET_FEATURES)
    finally:
        fe.close()
    assert value & (1 << 32), hex(value)    # VIRTIO_F_VERSION_1: a real answer
    return value


def test_storage_daemon_confined_and_serving():
    d = tempfile.mkdtemp(prefix="sb-sd-")
    try:
        img, log = os.path.join(d, "disk.raw"), os.path.join(d, "log")
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        exp1, exp2, qmp_sock = (os.path.join(d, n) for n in ("e1.sock", "e2.sock", "qmp.sock"))
        proc = subprocess.Popen(
            [vtest.binary("vireo-storage-daemon"),
             "--blockdev", f"driver=file,node-name=file0,filename={img}",
             "--blockdev", "driver=raw,node-name=disk0,file=file0",
             "--export", f"type=vhost-user-blk,id=exp1,node-name=disk0,addr.type=unix,"
                         f"addr.path={exp1},writable=on",
             "--chardev", f"socket,id=m0,path={qmp_sock},server=on,wait=off",
             "--monitor", "m0"], stderr=open(log, "w"))
        try:
            wait_path(qmp_sock, proc, log)
            wait_confined(proc.pid)
            features(exp1)
            qmp = QMP.unix(qmp_sock)
            # After the filter: a new listening socket for a second export.
            qmp.send_raw(json.dumps({"execute": "block-export-add", "arguments": {
                "type": "vhost-user-blk", "id": "exp2", "node-name": "disk0",
                "addr": {"type": "unix", "path": exp2}}}) + "\n")
            assert qmp.reply().get("return") == {}
            assert sorted(e["id"] for e in qmp.cmd("query-block-exports")) == ["exp1", "exp2"]
            features(exp2)
            qmp.send_raw(json.dumps({"execute": "block-export-del", "arguments": {"id": "exp2"}}) +
                         "\n")
            assert qmp.reply().get("return") == {}
            qmp.cmd("quit")
            assert proc.wait(20) == 0, read(log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        check_log(log)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_vhost_user_net_confined_and_serving():
    if os.getuid() != 0 or not os.path.exists("/dev/net/tun"):
        vtest.skip("needs root and /dev/net/tun")
    d = tempfile.mkdtemp(prefix="sb-vun-")
    try:
        sock, log = os.path.join(d, "net.sock"), os.path.join(d, "log")
        proc = subprocess.Popen([vtest.binary("vireo-vhost-user-net"), f"--socket-path={sock}",
                                 f"--tap=sbx{os.getpid() % 100000}"], stderr=open(log, "w"))
        try:
            wait_path(sock, proc, log)
            wait_confined(proc.pid)
            features(sock)
            features(sock)          # the next frontend is accepted too
            proc.terminate()
            assert proc.wait(20) == 0, read(log)
            assert not os.path.exists(sock), "the socket is removed at exit"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        check_log(log)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_ivshmem_server_confined_and_serving():
    with Server(vtest.binary("vireo-ivshmem-server"), vectors=2) as srv:
        wait_confined(srv.proc.pid)
        a = Peer(srv.sock, vectors=2)
        b = Peer(srv.sock, vectors=2)
        # the server made b's two eventfds after the filter and passed them on
        a.read_until(lambda: len(a.peers.get(b.id, [])) == 2)
        b.close()
        a.read_until(lambda: b.id in a.left)
        a.close()
        assert srv.alive()
    # Server.__exit__: SIGTERM ended it with status 0, sanitizers silent.


if __name__ == "__main__":
    vtest.main()
