"""The command line: QEMU's option syntax, clear one-line errors with exit
status 1, and the process plumbing (-daemonize, -pidfile, -version, -h)."""
import os
import signal
import subprocess
import tempfile
import time

import vmm
import vtest


def fails(*args):
    rc, out, err = vmm.run(*args)
    assert rc == 1, (args, rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vireo: "), (args, err)
    return lines[0]


def test_bad_options_and_values():
    assert fails("-bogus") == "vireo: -bogus: invalid option"
    assert fails("--bogus") == "vireo: --bogus: invalid option"
    assert "requires an argument" in fails("-name")
    assert "RAM size must be greater than 0" in fails("-m", "0")
    assert "expects a size" in fails("-m", "12Q")
    assert "CPU count must be greater than 0" in fails("-smp", "0")
    assert "Invalid parameter 'foo'" in fails("-chardev", "socket,id=c,foo=bar")
    assert "expects 'on' or 'off'" in fails("-chardev", "socket,id=c,path=/tmp/x,server=maybe")
    assert "invalid accelerator" in fails("-accel", "tcg")
    assert "unknown monitor mode" in fails("-mon", "chardev=x,mode=weird")
    assert "chardev 'nope' not found" in fails("-accel", "qtest", "-mon", "chardev=nope")
    assert "not a valid char driver" in fails("-accel", "qtest", "-chardev", "weird,id=w")
    assert "invalid object type" in fails("-object", "nonsense,id=x")
    assert "only 'none'" in fails("-display", "gtk")
    assert "unsupported machine type" in fails("-machine", "q35-nope")
    assert "fd option is required" in fails("-add-fd", "set=1")
    assert "cannot be a standard I/O stream" in fails("-accel", "qtest", "-add-fd", "fd=1,set=1")
    assert "is not valid" in fails("-accel", "qtest", "-add-fd", "fd=999,set=1")
    assert "duplicate" in fails("-accel", "qtest", "-object", "iothread,id=a", "-object", "iothread,id=a")
    assert "Failed to connect" in fails("-accel", "qtest", "-chardev", "socket,id=c,path=/nonexistent/s")
    assert "stray.img" in fails("stray.img")


def test_version_and_help():
    rc, out, err = vmm.run("-version")
    assert rc == 0 and out.startswith("QEMU emulator version 7.2.0 (vireo ")
    rc, out, err = vmm.run("-h")
    assert rc == 0
    for opt in ("-qmp", "-chardev", "-mon", "-add-fd", "-qtest", "-preconfig", "-daemonize"):
        assert opt in out, opt
    rc, out, err = vmm.run("-machine", "help")
    assert rc == 0 and out.startswith("Supported machines are:")


def test_legacy_and_modern_socket_spellings():
    d = tempfile.mkdtemp()
    for spec in (f"unix:{d}/a.sock,server,nowait", f"unix:{d}/b.sock,server=on,wait=off"):
        path = spec.split(",")[0][5:]
        p = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                              "-qmp", spec], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(path):
                assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
                time.sleep(0.02)
            q = vmm.QMP.unix(path)
            assert q.cmd("query-status")["status"] == "running"
            q.cmd("quit")
            assert p.wait(20) == 0
        finally:
            if p.poll() is None:
                p.kill()


def test_wait_on_blocks_until_a_client_connects():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "w.sock")
    p = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-display", "none", "-S",
                          "-qmp", f"unix:{path},server=on"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        q = vmm.QMP.unix(path)
        assert q.cmd("query-status")["status"] == "prelaunch"
        q.cmd("quit")
        assert p.wait(20) == 0
        assert b"waiting for connection" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()


def test_daemonize_and_pidfile():
    d = tempfile.mkdtemp()
    pidfile = os.path.join(d, "vireo.pid")
    sock = os.path.join(d, "q.sock")
    rc = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-display", "none", "-daemonize",
                         "-pidfile", pidfile, "-qmp", f"unix:{sock},server=on,wait=off"],
                        timeout=30).returncode
    assert rc == 0
    with open(pidfile) as f:
        pid = int(f.read())
    try:
        os.kill(pid, 0)
        assert os.getsid(pid) == pid                 # a session of its own
        q = vmm.QMP.unix(sock)
        assert q.cmd("query-status")["status"] == "running"
        # A second instance with the same pid file refuses to start.
        rc2 = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                              "-pidfile", pidfile], capture_output=True, text=True, timeout=30)
        assert rc2.returncode == 1 and "locked" in rc2.stderr
        q.cmd("quit")
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{pid}"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not os.path.exists(pidfile)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_daemonize_reports_startup_failure():
    rc = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-display", "none", "-daemonize",
                         "-chardev", "socket,id=c,path=/nonexistent/x"],
                        capture_output=True, timeout=30).returncode
    assert rc == 1
    rc = subprocess.run([vtest.binary("vireo"), "-daemonize", "-monitor", "stdio"],
                        capture_output=True, timeout=30).returncode
    assert rc == 1


def test_name_forms():
    for arg, expect in (("plain", "plain"), ("guest=g1,debug-threads=on", "g1"),
                        ("with,,comma", "with,comma")):
        with vmm.Vireo("-accel", "qtest", "-name", arg) as v:
            assert v.qmp().cmd("query-name") == {"name": expect}


if __name__ == "__main__":
    vtest.main()
