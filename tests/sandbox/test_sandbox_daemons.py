#!/usr/bin/env python3
"""The daemons confine themselves once start-up is done: each runs under
its own seccomp filter (Seccomp: 2, NoNewPrivs: 1 in /proc/PID/status)
and still does its job afterwards, including the work that comes only
after the filter: a frontend or client connecting, QMP adding an export
(a new listening socket), NBD clients reading and writing through block
workers, and a clean exit on SIGTERM or quit. Every thread of every
daemon is checked, not only the main one; threads that name their kind
(the block workers) stack a second, narrower filter. The ivshmem client
confines itself once connected. --sandbox off leaves each unconfined.

Which calls each list denies is checked in forked children by
tests/sandbox/test-sandbox.c.
"""
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import vtest
from vmm import QMP

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "vhost-user"))
sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "ivshmem"))
from ivpeer import Peer, Server, readable, ring  # noqa: E402
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


def thread_filters(pid):
    """{tid: number of seccomp filters} for every thread; 0 when unconfined."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            st = status(f"{pid}/task/{tid}")
        except FileNotFoundError:
            continue            # the thread ended meanwhile
        out[int(tid)] = int(st["Seccomp_filters"]) if st["Seccomp"] == "2" else 0
    return out


def assert_all_threads_confined(pid):
    filters = thread_filters(pid)
    assert filters and all(n >= 1 for n in filters.values()), filters
    return filters


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


@contextlib.contextmanager
def scratch(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def running(argv, log):
    """A daemon with its stderr in LOG, killed if the test left it running."""
    proc = subprocess.Popen(argv, stderr=open(log, "w"))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_storage_daemon_confined_and_serving():
    with scratch("sb-sd-") as d:
        img, log = os.path.join(d, "disk.raw"), os.path.join(d, "log")
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        exp1, exp2, qmp_sock = (os.path.join(d, n) for n in ("e1.sock", "e2.sock", "qmp.sock"))
        with running(
            [vtest.binary("vireo-storage-daemon"),
             "--blockdev", f"driver=file,node-name=file0,filename={img}",
             "--blockdev", "driver=raw,node-name=disk0,file=file0",
             "--export", f"type=vhost-user-blk,id=exp1,node-name=disk0,addr.type=unix,"
                         f"addr.path={exp1},writable=on",
             "--chardev", f"socket,id=m0,path={qmp_sock},server=on,wait=off",
             "--monitor", "m0"], log) as proc:
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
            assert_all_threads_confined(proc.pid)
            qmp.send_raw(json.dumps({"execute": "block-export-del", "arguments": {"id": "exp2"}}) +
                         "\n")
            assert qmp.reply().get("return") == {}
            qmp.cmd("quit")
            assert proc.wait(20) == 0, read(log)
        check_log(log)


def test_vhost_user_net_confined_and_serving():
    if os.getuid() != 0 or not os.path.exists("/dev/net/tun"):
        vtest.skip("needs root and /dev/net/tun")
    with scratch("sb-vun-") as d:
        sock, log = os.path.join(d, "net.sock"), os.path.join(d, "log")
        with running([vtest.binary("vireo-vhost-user-net"), f"--socket-path={sock}",
                      f"--tap=sbx{os.getpid() % 100000}"], log) as proc:
            wait_path(sock, proc, log)
            wait_confined(proc.pid)
            features(sock)
            features(sock)          # the next frontend is accepted too
            assert_all_threads_confined(proc.pid)
            proc.terminate()
            assert proc.wait(20) == 0, read(log)
            assert not os.path.exists(sock), "the socket is removed at exit"
        check_log(log)


def test_ivshmem_server_confined_and_serving():
    with Server(vtest.binary("vireo-ivshmem-server"), vectors=2) as srv:
        wait_confined(srv.proc.pid)
        a = Peer(srv.sock, vectors=2)
        b = Peer(srv.sock, vectors=2)
        # the server made b's two eventfds after the filter and passed them on
        a.read_until(lambda: len(a.peers.get(b.id, [])) == 2)
        b.close()
        a.read_until(lambda: b.id in a.left)
        assert_all_threads_confined(srv.proc.pid)
        a.close()
        assert srv.alive()
    # Server.__exit__: SIGTERM ended it with status 0, sanitizers silent.


def run_qemu_io(url, *cmds):
    argv = ["qemu-io", "-f", "raw"]
    for c in cmds:
        argv += ["-c", c]
    p = subprocess.run(argv + [url], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "Pattern verification failed" not in p.stdout, \
        p.stdout + p.stderr
    return p.stdout


def test_storage_daemon_nbd_every_thread_confined():
    """NBD clients served by the NBD workers and the block workers they
    start (aio=threads), all after the filter; each thread confined, the
    NBD and block workers by their own lists on top of the daemon's."""
    if not shutil.which("qemu-io"):
        vtest.skip("qemu-io is not installed")
    with scratch("sb-nbd-") as d:
        img, log, sock = (os.path.join(d, n) for n in ("disk.raw", "log", "nbd.sock"))
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        with running(
            [vtest.binary("vireo-storage-daemon"),
             "--blockdev", f"driver=file,node-name=file0,filename={img},aio=threads",
             "--blockdev", "driver=raw,node-name=disk0,file=file0",
             "--nbd-server", f"addr.type=unix,addr.path={sock}",
             "--export", "type=nbd,id=e0,node-name=disk0,writable=on"], log) as proc:
            wait_path(sock, proc, log)
            wait_confined(proc.pid)
            url = f"nbd+unix:///disk0?socket={sock}"
            run_qemu_io(url, "write -P 0x5a 0 1M", "write -z 1M 64k", "discard 2M 64k",
                        "flush")
            # a second connection, reading back what the first wrote
            out = run_qemu_io(url, "read -P 0x5a 0 1M", "read -P 0 1M 64k", "map")
            assert "read 1048576/1048576" in out, out
            if shutil.which("nbdinfo"):
                p = subprocess.run(["nbdinfo", "--map", url], capture_output=True, text=True,
                                   timeout=60)
                assert p.returncode == 0 and "data" in p.stdout, p.stdout + p.stderr
            if shutil.which("nbdcopy"):
                copy = os.path.join(d, "copy.raw")
                p = subprocess.run(["nbdcopy", url, copy], capture_output=True, text=True,
                                   timeout=60)
                assert p.returncode == 0, p.stderr
                with open(copy, "rb") as f:
                    assert f.read(1 << 20) == b"\x5a" * (1 << 20)
            filters = assert_all_threads_confined(proc.pid)
            assert max(filters.values()) >= 2, \
                f"no block worker stacked its own filter: {filters}"
            workers = [t for t in filters
                       if read(f"/proc/{proc.pid}/task/{t}/comm").strip() == "NBD worker"]
            # Threads they start inherit the name and stack one more list of their own.
            assert sorted(filters[t] for t in workers)[:2] == [2, 2] and \
                all(filters[t] >= 2 for t in workers), \
                f"the NBD workers did not stack their own filter: {filters}"
            with open(img, "rb") as f:
                assert f.read(4096) == b"\x5a" * 4096
            proc.terminate()
            assert proc.wait(20) == 0, read(log)
        check_log(log)


def test_ivshmem_client_confined_and_working():
    """Once connected the client runs under its own filter; it still takes
    its peers' eventfds, rings them, is rung and reads commands."""
    with Server(vtest.binary("vireo-ivshmem-server"), vectors=2) as srv:
        peer = Peer(srv.sock, vectors=2)
        client = subprocess.Popen([vtest.binary("vireo-ivshmem-client"), "-S", srv.sock],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            wait_confined(client.pid)
            assert_all_threads_confined(client.pid)
            peer.read_until(lambda: any(len(v) == 2 for v in peer.peers.values()))
            cid = next(i for i, v in peer.peers.items() if len(v) == 2)
            ring(peer.peers[cid][1])
            time.sleep(0.3)     # the client's set-up burst ends after a quiet 100 ms
            out, err = client.communicate(f"int {peer.id} 0\ndump\nquit\n", timeout=20)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == 0, (client.returncode, out, err)
        assert "forbidden system call" not in err and "Sanitizer" not in err, err
        assert "interrupt on vector 1 (count 1)" in out, out
        assert f"rang peer {peer.id} vector 0" in out and "2 vectors" in out, out
        assert readable(peer.own[0], 5), "the client's ring never arrived"
        assert os.read(peer.own[0], 8) == struct.pack("=Q", 1)
        peer.close()


def test_sandbox_off_and_bad_values():
    """--sandbox off: the same daemon, no filter on any thread; a value
    other than on or off is refused before anything starts."""
    with scratch("sb-off-") as d:
        img, log, sock = (os.path.join(d, n) for n in ("disk.raw", "log", "e.sock"))
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        with running(
            [vtest.binary("vireo-storage-daemon"), "--sandbox", "off",
             "--blockdev", f"driver=file,node-name=file0,filename={img}",
             "--blockdev", "driver=raw,node-name=disk0,file=file0",
             "--export", f"type=vhost-user-blk,id=e,node-name=disk0,addr.type=unix,"
                         f"addr.path={sock}"], log) as proc:
            wait_path(sock, proc, log)
            features(sock)
            assert set(thread_filters(proc.pid).values()) == {0}
            assert status(proc.pid)["NoNewPrivs"] == "0"
            proc.terminate()
            assert proc.wait(20) == 0, read(log)
        with Server(vtest.binary("vireo-ivshmem-server"), "--sandbox", "off") as srv:
            assert set(thread_filters(srv.proc.pid).values()) == {0}
            client = subprocess.run([vtest.binary("vireo-ivshmem-client"), "--sandbox", "off",
                                     "-S", srv.sock, "-c", "dump"], capture_output=True,
                                    text=True, timeout=20)
            assert client.returncode == 0 and "own id" in client.stdout, client
        for prog, extra in (("vireo-storage-daemon", []),
                            ("vireo-vhost-user-net", ["--socket-path=/nonexistent/s",
                                                      "--tap-fd=0"]),
                            ("vireo-ivshmem-server", ["-F", "-S", os.path.join(d, "iv")]),
                            ("vireo-ivshmem-client", ["-S", os.path.join(d, "iv")])):
            p = subprocess.run([vtest.binary(prog), "--sandbox", "maybe"] + extra,
                               capture_output=True, text=True, timeout=20)
            assert p.returncode == 1, (prog, p.returncode, p.stderr)
            assert "--sandbox takes on or off, not 'maybe'" in p.stderr, (prog, p.stderr)


if __name__ == "__main__":
    vtest.main()
