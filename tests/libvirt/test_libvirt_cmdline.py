#!/usr/bin/env python3
"""The options libvirt 9.0 puts on a domain's command line, each checked for
what it does (under the qtest accelerator, so no KVM is needed): a pty
console carries the UART's bytes, a monitor served on an inherited
listening socket, an inherited tap, JSON -device/-object/-netdev, secrets,
-msg timestamp=on, and the refusals that name what vireo lacks."""
import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import time

import vmm
import vtest

COM1 = 0x3f8


def test_pty_console_carries_uart_bytes():
    with vmm.Vireo("-nodefaults", "-chardev", "pty,id=charserial0", "-device",
                   '{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}',
                   qtest=True) as v:
        q = v.qmp()
        info = [c for c in q.cmd("query-chardev") if c["label"] == "charserial0"]
        assert info and info[0]["frontend-open"] is True, info
        m = re.fullmatch(r"pty:(/dev/pts/\d+)", info[0]["filename"])
        assert m, info
        fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            for b in b"hello\n":
                v.qtest.outb(COM1, b)
            got = b""
            deadline = time.monotonic() + 10
            while b"hello\n" not in got and time.monotonic() < deadline:
                try:
                    got += os.read(fd, 100)
                except BlockingIOError:
                    time.sleep(0.02)
            assert b"hello\n" in got, got      # raw: no "\r\n" translation
            os.write(fd, b"K")                  # and the other way: the UART's receiver
            deadline = time.monotonic() + 10
            while not (v.qtest.inb(COM1 + 5) & 1) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert v.qtest.inb(COM1) == ord("K")
        finally:
            os.close(fd)
        v.proc.terminate()
        v.wait()
        # QEMU's announcement on stderr, which older tools parse
        assert re.search(r"char device redirected to /dev/pts/\d+ \(label charserial0\)",
                         v.stderr), v.stderr


def test_monitor_on_inherited_listening_socket():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "monitor.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)
    fd = lsock.fileno()
    with vmm.Vireo("-machine", "none,accel=qtest", "-chardev",
                   f"socket,id=charmonitor,fd={fd},server=on,wait=off",
                   "-mon", "chardev=charmonitor,id=monitor,mode=control",
                   qmp=False, pass_fds=(fd,)) as v:
        lsock.close()                           # vireo holds its own copy
        q = vmm.QMP.unix(path)
        assert q.cmd("query-status")["status"] == "running"
        chardevs = q.cmd("query-chardev")
        assert {"label": "charmonitor", "filename": f"unix:{path},server=on",
                "frontend-open": True} in chardevs, chardevs
        q.close()
    os.unlink(path)
    os.rmdir(d)
    # a descriptor that is not a listening socket is refused by name
    r, w = os.pipe()
    p = vmm.run("-machine", "none,accel=qtest", "-chardev",
                f"socket,id=c,fd={r},server=on,wait=off")
    os.close(r)
    os.close(w)
    assert p[0] == 1 and f"fd={r} is not a stream socket" in p[2], p


def open_tap(vnet_hdr=True):
    IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
    TUNSETIFF = 0x400454ca
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as e:
        vtest.skip(f"/dev/net/tun: {e}")
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"vireolv%d", flags))
    except OSError as e:
        os.close(fd)
        vtest.skip(f"cannot create a tap: {e}")
    return fd


def tap_sndbuf(fd):
    TUNGETSNDBUF = 0x800454d3
    return struct.unpack("i", fcntl.ioctl(fd, TUNGETSNDBUF, b"\0" * 4))[0]


def test_inherited_tap():
    fd = open_tap()
    try:
        # -sandbox on closes inherited descriptors the command line does not
        # name: the JSON form names this one
        with vmm.Vireo("-nodefaults", "-sandbox", "on", "-netdev",
                       f'{{"type":"tap","fd":"{fd}","id":"hostnet0"}}',
                       "-device", '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0",'
                                  '"mac":"52:54:00:12:34:56","bus":"pci.0","addr":"0x3"}',
                       qtest=True, pass_fds=(fd,)) as v:
            q = v.qmp()
            devs = q.cmd("x-query-virtio")
            assert [d["name"] for d in devs] == ["virtio-net"], devs
            # As with QEMU, no sndbuf= means no limit on the tap's send buffer.
            assert tap_sndbuf(fd) == 2**31 - 1, tap_sndbuf(fd)
        with vmm.Vireo("-nodefaults", "-netdev", f"tap,fd={fd},id=n0,sndbuf=1M",
                       "-device", "virtio-net-pci,netdev=n0", qtest=True, pass_fds=(fd,)) as v:
            v.qmp().cmd("query-status")     # start-up is over
            assert tap_sndbuf(fd) == 1 << 20, tap_sndbuf(fd)
    finally:
        os.close(fd)
    bad = open_tap(vnet_hdr=False)
    try:
        p = subprocess.run([vtest.binary("vireo"), "-accel", "qtest", "-qtest", "null",
                            "-nodefaults", "-display", "none", "-netdev", f"tap,fd={bad},id=n0",
                            "-device", "virtio-net-pci,netdev=n0"],
                           pass_fds=(bad,), capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "IFF_VNET_HDR" in p.stderr, (p.returncode, p.stderr)
    finally:
        os.close(bad)


def test_secret_objects_json_and_keyval():
    d = tempfile.mkdtemp()
    key = os.path.join(d, "master-key.aes")
    with open(key, "wb") as f:
        f.write(bytes(range(32)))
    os.chmod(key, 0o600)
    ok_args = ["-machine", "none,accel=qtest",
               "-object", f"secret,id=masterKey0,format=raw,file={key}",
               "-object", '{"qom-type":"secret","id":"sec1","format":"base64",'
                          '"data":"ME3kQCscVZDsrBJk1+CvXw==","keyid":"masterKey0",'
                          '"iv":"oKGio6SlpqeoqaqrrK2urw=="}']
    with vmm.Vireo(*ok_args) as v:
        q = v.qmp()
        types = {t["name"] for t in q.cmd("qom-list-types")}
        assert "secret" in types
        props = {p["name"] for p in q.cmd("qom-list-properties", typename="secret")}
        assert {"data", "file", "format", "keyid", "iv"} <= props, props
    # the wrong key: the padding check catches it, and the option is named
    rc, out, err = vmm.run("-machine", "none,accel=qtest",
                           "-object", "secret,id=k2,data=" + "x" * 32,
                           "-object", "secret,id=s,format=base64,data=ME3kQCscVZDsrBJk1+CvXw==,"
                                      "keyid=k2,iv=oKGio6SlpqeoqaqrrK2urw==")
    assert rc == 1 and "-object" in err and "padding" in err, (rc, err)
    os.unlink(key)
    os.rmdir(d)


def test_libvirt_housekeeping_options():
    # everything libvirt 9.0 adds around a domain, accepted together
    with vmm.Vireo("-name", "guest=lv,debug-threads=on", "-S", "-no-user-config",
                   "-nodefaults", "-machine", "none,accel=qtest,usb=off,dump-guest-core=off",
                   "-overcommit", "mem-lock=off", "-uuid",
                   "6b5c3b1a-5a4e-4c2e-9d44-0123456789ab", "-rtc", "base=utc",
                   "-no-shutdown", "-boot", "strict=on", "-msg", "timestamp=on",
                   "-audiodev", '{"id":"audio1","driver":"none"}') as v:
        q = v.qmp()
        assert q.cmd("query-uuid")["UUID"] == "6b5c3b1a-5a4e-4c2e-9d44-0123456789ab"
        assert q.cmd("query-status")["status"] == "prelaunch"
        assert q.cmd("query-kvm")["enabled"] is False
        caps = q.cmd("query-migrate-capabilities")
        assert caps == [{"capability": "events", "state": False}], caps
        q.cmd("migrate-set-capabilities",
              capabilities=[{"capability": "events", "state": True}])
        assert q.cmd("query-migrate-capabilities")[0]["state"] is True
        assert q.cmd("query-migrate") == {}
    # -msg timestamp=on: errors carry QEMU's UTC time prefix
    rc, out, err = vmm.run("-msg", "timestamp=on", "-bogus")
    assert rc == 1 and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z vireo: ", err), err


def test_refusals_name_the_option():
    cases = [
        (["-audiodev", "oss,id=a"], "audio driver 'oss' is not supported"),
        (["-overcommit", "cpu-pm=on"], "cpu-pm=on is not supported"),
        (["-usb"], "vireo has no USB controller"),
        (["-machine", "pc,usb=on"], "usb=on is not supported"),
        (["-machine", "pc,dump-guest-core=on"], "dump-guest-core=on is not supported"),
        (["-machine", "none,accel=tcg:xen"], "no accelerator found"),
        (["-device", '{"driver":"isa-serial"}'], "Property 'chardev' is required"),
        (["-device", '{"driver": '], "invalid JSON object"),
    ]
    for args, text in cases:
        rc, out, err = vmm.run(*args)
        assert rc == 1 and text in err, (args, rc, err)
        assert err.count("\n") == 1 and args[0] in err, (args, err)
    # -no-acpi on the PC board: ACPI is how its guests find everything
    rc, out, err = vmm.run("-no-acpi", "-accel", "qtest", "-qtest", "null", "-m", "64")
    assert rc == 1 and "ACPI cannot be turned off" in err, err


vtest.main()
