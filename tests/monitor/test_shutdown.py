#!/usr/bin/env python3
"""Shutdown never waits on a peer, and vireo's files on disk are its own.

A QMP client or a serial console that stops reading must not keep vireo
alive after SIGTERM; a listening socket replaces only a stale socket at its
path; the pid file is private and is not written through a symlink.
"""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402

EXIT_LIMIT = 1.5    # seconds from SIGTERM to exit; QEMU 7.2 takes about 0.1


def sigterm_and_time(v):
    start = time.monotonic()
    v.proc.send_signal(signal.SIGTERM)
    rc = v.wait(timeout=30)
    return rc, time.monotonic() - start


def test_sigterm_with_stalled_qmp_client():
    with vmm.Vireo("-accel", "qtest") as v:
        stalled = v.qmp()
        req = json.dumps({"execute": "query-qmp-schema"}) + "\n"
        stalled.send_raw(req * 50)          # megabytes of replies, never read
        other = v.qmp()
        # Once the other client is answered, the 50 requests have been read.
        for _ in range(3):
            assert other.cmd("query-status")["status"] == "running"
            time.sleep(0.2)
        rc, took = sigterm_and_time(v)
        assert rc == 0, (rc, v.stderr)
        assert took < EXIT_LIMIT, f"exit took {took:.2f}s"


def qtest_pipeline(qt, lines, batch=2000):
    """Send qtest commands in batches without waiting for each reply."""
    for i in range(0, len(lines), batch):
        part = lines[i:i + batch]
        qt.sock.sendall("".join(l + "\n" for l in part).encode())
        for _ in part:
            r = qt.line()
            assert r.startswith("OK"), r


def test_sigterm_with_stalled_serial_console():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "serial.sock")
    with vmm.Vireo("-serial", f"unix:{path},server=on,wait=off", qtest=True) as v:
        v.wait_socket(path)
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.connect(path)               # connected, never reads
        # One byte per THR write, each its own socket write: far more than
        # the socket takes, so the UART's output queue fills.
        qtest_pipeline(v.qtest, ["outb 0x3f8 0x41"] * 20000)
        rc, took = sigterm_and_time(v)
        console.close()
        assert rc == 0, (rc, v.stderr)
        assert took < EXIT_LIMIT, f"exit took {took:.2f}s"
    os.rmdir(d)


# ---- socket paths ----

def start_with_qmp_at(path):
    return subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                           "-qmp", f"unix:{path},server=on,wait=off", "-S", "-no-shutdown"],
                          capture_output=True, text=True, timeout=5)


def test_server_socket_refuses_regular_file():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "precious")
    with open(path, "w") as f:
        f.write("keep me\n")
    r = start_with_qmp_at(path)
    assert r.returncode == 1, r
    assert path in r.stderr and "not a socket" in r.stderr, r.stderr
    with open(path) as f:
        assert f.read() == "keep me\n"


def test_server_socket_refuses_symlink_and_directory():
    d = tempfile.mkdtemp()
    target = os.path.join(d, "target")
    with open(target, "w") as f:
        f.write("x")
    link = os.path.join(d, "link")
    os.symlink(target, link)
    for path in (link, d):
        r = start_with_qmp_at(path)
        assert r.returncode == 1 and path in r.stderr and "not a socket" in r.stderr, r.stderr
    assert os.path.islink(link) and os.path.isfile(target)


def test_server_socket_replaces_stale_socket():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()                               # the file stays behind, unused
    v = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                          "-qmp", f"unix:{path},server=on,wait=off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        q = vmm.QMP.unix(path)
        assert q.cmd("query-status")["status"] == "running"
        q.close()
    finally:
        v.terminate()
        assert v.wait(10) == 0
    assert not os.path.exists(path)         # vireo removes its own socket


# ---- pid file ----

def test_pidfile_is_private():
    d = tempfile.mkdtemp()
    pidfile = os.path.join(d, "vireo.pid")
    with vmm.Vireo("-accel", "qtest", "-pidfile", pidfile) as v:
        v.qmp().cmd("query-status")
        st = os.stat(pidfile)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        with open(pidfile) as f:
            assert int(f.read()) == v.proc.pid


def test_pidfile_symlink_is_not_followed():
    d = tempfile.mkdtemp()
    victim = os.path.join(d, "victim")
    with open(victim, "w") as f:
        f.write("important\n")
    missing = os.path.join(d, "created-elsewhere")
    for target in (victim, missing):
        link = os.path.join(d, "vireo.pid")
        os.symlink(target, link)
        r = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                            "-pidfile", link], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and "symbolic link" in r.stderr, r
        assert os.path.islink(link)         # a failed start leaves the path alone
        os.unlink(link)
    with open(victim) as f:
        assert f.read() == "important\n"
    assert not os.path.exists(missing)


if __name__ == "__main__":
    vtest.main()
