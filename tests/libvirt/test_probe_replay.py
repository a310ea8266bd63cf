#!/usr/bin/env python3
"""libvirt 9.0's capability probe, replayed against vireo and QEMU 7.2 side
by side. The sequence is recorded live: a private libvirtd (lvd.py) probes
qemu-system-x86_64 with `virsh domcapabilities`, and its debug log gives
every QMP command it sent. Both VMMs then get the same commands, started as
libvirt starts them (-S -no-user-config -nodefaults -nographic -machine
none -daemonize); here neither has KVM, so QEMU runs TCG and vireo its
qtest accelerator. Where both answer, the members are compared: vireo may
not invent a member QEMU does not have, and the members QEMU always
returns must be there. Runs without the lab."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import vtest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lvd  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
STATE = {}


def record_sequence():
    """The QMP commands libvirt sends while probing QEMU, in order, once each."""
    if "seq" in STATE:
        return STATE["seq"]
    if not QEMU or not shutil.which("libvirtd") or os.geteuid() != 0:
        vtest.skip("needs root, qemu-system-x86_64 and libvirtd")
    scratch = tempfile.mkdtemp(prefix="lvprobe-")
    d = lvd.Libvirtd(os.path.join(scratch, "lvd"))
    try:
        d.start(timeout=240)
        st, out, err = d.virsh("domcapabilities", "--emulatorbin", QEMU, "--arch", "x86_64",
                               "--virttype", "qemu", timeout=300)
        assert st == 0, (st, err, d.tail())
        traffic = d.qmp_traffic()
    finally:
        d.close()
        lvd.cleanup(scratch)
    seq, seen = [], set()
    for line in traffic:
        m = re.search(r"QEMU_MONITOR_SEND_MSG: mon=\S+ msg=(.*)$", line)
        if not m:
            continue
        cmd = json.loads(m.group(1))
        cmd.pop("id", None)
        key = json.dumps(cmd, sort_keys=True)
        if key not in seen:
            seen.add(key)
            seq.append(cmd)
    assert seq and seq[0]["execute"] == "qmp_capabilities", seq[:3]
    STATE["seq"] = seq
    return seq


def replay(argv, sock, seq):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (argv, p.stderr)
    s = socket.socket(socket.AF_UNIX)
    for _ in range(200):
        try:
            s.connect(sock)
            break
        except OSError:
            time.sleep(0.05)
    f = s.makefile("rw")
    assert "QMP" in json.loads(f.readline())
    replies = []
    for cmd in seq:
        f.write(json.dumps(cmd) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "event" not in r:
                break
        replies.append(r)
    f.write('{"execute": "quit"}\n')
    f.flush()
    try:
        while f.readline():     # until the VMM has gone (a daemon: nobody reaps it)
            pass
    except ConnectionResetError:
        pass                    # it exited with unread input: gone all the same
    s.close()
    return replies


def replies():
    if "replies" in STATE:
        return STATE["replies"]
    seq = record_sequence()
    tmp = tempfile.mkdtemp(prefix="lvreplay-")
    common = ["-S", "-no-user-config", "-nodefaults", "-nographic"]
    v = replay([vtest.binary("vireo"), *common, "-machine", "none,accel=qtest",
                "-qmp", f"unix:{tmp}/v.sock,server=on,wait=off",
                "-pidfile", f"{tmp}/v.pid", "-daemonize"], f"{tmp}/v.sock", seq)
    q = replay([QEMU, *common, "-machine", "none,accel=tcg",
                "-qmp", f"unix:{tmp}/q.sock,server=on,wait=off",
                "-pidfile", f"{tmp}/q.pid", "-daemonize"], f"{tmp}/q.sock", seq)
    time.sleep(0.5)
    shutil.rmtree(tmp, ignore_errors=True)
    STATE["replies"] = list(zip(seq, v, q))
    return STATE["replies"]


def members(value):
    """The member names at each place in a reply: {path: set(names)}."""
    out = {}

    def walk(v, path):
        if isinstance(v, dict):
            out.setdefault(path, set()).update(v.keys())
            for k, c in v.items():
                walk(c, f"{path}.{k}")
        elif isinstance(v, list):
            for c in v:
                walk(c, f"{path}[]")
    walk(value, "")
    return out


def label(cmd):
    return cmd["execute"] + (" " + json.dumps(cmd["arguments"], sort_keys=True)[:60]
                             if "arguments" in cmd else "")


def test_libvirt_probe_sequence_recorded():
    seq = record_sequence()
    names = [c["execute"] for c in seq]
    for must in ("query-version", "query-target", "query-qmp-schema", "query-commands",
                 "query-kvm", "qom-list-types", "device-list-properties",
                 "qom-list-properties", "query-machines", "query-migrate-capabilities"):
        assert must in names, (must, names)
    print(f"# libvirt sent {len(seq)} distinct commands while probing QEMU")


def test_vireo_answers_what_it_lists():
    """Every command vireo lists in query-commands answers (no CommandNotFound),
    qom-list-properties never fails for a type vireo lists, and a device
    vireo does not have is DeviceNotFound, as in QEMU."""
    rs = replies()
    commands = next(v["return"] for c, v, q in rs if c["execute"] == "query-commands")
    listed = {c["name"] for c in commands}
    types = {t["name"] for t in next(v["return"] for c, v, q in rs
                                     if c["execute"] == "qom-list-types")}
    for cmd, v, q in rs:
        name = cmd["execute"]
        if name in listed:
            assert "return" in v or v["error"]["class"] != "CommandNotFound", (cmd, v)
        else:
            assert v["error"]["class"] == "CommandNotFound", (cmd, v)
        if name == "qom-list-properties" and cmd["arguments"]["typename"] in types:
            assert "return" in v, (cmd, v)
        if name == "device-list-properties" and "error" in v:
            assert cmd["arguments"]["typename"] not in types, (cmd, v)
            assert v["error"]["class"] == "DeviceNotFound", (cmd, v)
            assert v["error"]["desc"] == f"Device '{cmd['arguments']['typename']}' not found"


def test_members_compared_with_qemu():
    rs = replies()
    compared = 0
    missing_report = []
    # what QEMU returned for a return type, over every call that returns it
    # (device-list-properties and qom-list-properties both return ObjectPropertyInfo)
    rtype = {"qom-list-properties": "device-list-properties"}
    known = {}
    for cmd, v, q in rs:
        if "return" in q:
            k = rtype.get(cmd["execute"], cmd["execute"])
            for path, names in members(q["return"]).items():
                known.setdefault((k, path), set()).update(names)
    for cmd, v, q in rs:
        if "return" not in v or "return" not in q or cmd["execute"] == "query-qmp-schema":
            continue
        compared += 1
        vm, qm = members(v["return"]), members(q["return"])
        for path, names in vm.items():
            k = (rtype.get(cmd["execute"], cmd["execute"]), path)
            if k not in known:
                continue        # QEMU's list was empty there: nothing to compare with
            extra = names - known[k]
            assert not extra, f"{label(cmd)}: vireo invents {sorted(extra)} at '{path}'"
        for path, names in qm.items():
            lacking = names - vm.get(path, names)
            if lacking:
                missing_report.append(f"{label(cmd)} {path}: {sorted(lacking)}")
    print(f"# {compared} commands answered by both and compared member by member")
    for line in missing_report:
        print(f"# optional members QEMU gives and vireo leaves out: {line}")
    assert compared >= 8, compared


def test_values_that_must_agree():
    rs = {label(c): (v, q) for c, v, q in replies()}
    v, q = rs["query-target"]
    assert v["return"] == q["return"] == {"arch": "x86_64"}
    v, q = rs["query-version"]
    assert v["return"]["qemu"]["major"] == q["return"]["qemu"]["major"] == 7
    assert v["return"]["qemu"]["minor"] == q["return"]["qemu"]["minor"] == 2
    v, q = rs["query-kvm"]
    assert set(v["return"]) == set(q["return"]) == {"enabled", "present"}
    assert v["return"]["enabled"] is False      # neither runs KVM here
    v, q = rs["query-machines"]
    need = {"name", "cpu-max", "hotpluggable-cpus", "numa-mem-supported", "deprecated"}
    for m in v["return"]:
        assert need <= set(m), m
    names = {m["name"] for m in v["return"]} | {m.get("alias") for m in v["return"]}
    assert {"pc", "pc-i440fx-7.2", "none"} <= names, names
    # the same board layout as QEMU's: "pc-i440fx-7.2" is the default, "pc"
    # its alias (libvirt canonicalises "pc" to it and lays out pci.0 for it)
    for reply in (v, q):
        default = [m for m in reply["return"] if m.get("is-default")]
        assert len(default) == 1, reply
        assert default[0]["name"] == "pc-i440fx-7.2" and default[0]["alias"] == "pc", default
    assert "vireo-pc" in names      # vireo's own name is still accepted
    v, q = rs['device-list-properties {"typename": "virtio-blk-pci"}']
    vn = {p["name"] for p in v["return"]}
    qn = {p["name"] for p in q["return"]}
    common = vn & qn
    assert {"num-queues", "queue-size", "drive", "share-rw", "addr"} <= common, vn
    print(f"# virtio-blk-pci: {len(common)} properties in both, vireo-only: "
          f"{sorted(vn - qn)}")


vtest.main()
