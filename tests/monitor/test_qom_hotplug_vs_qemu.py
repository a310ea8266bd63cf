#!/usr/bin/env python3
"""qom-list / qom-get / qom-set, object-add / object-del and device_add /
device_del replies, vireo and QEMU 7.2 side by side: the same requests to
both (QEMU paused under TCG, vireo paused too), and the replies compared
where both implement the request. Also QEMU's own object-add failure-mode
sequence, which vireo must answer the same way.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402


class Client:
    def __init__(self, path):
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert time.monotonic() < deadline, f"{path} did not appear"
            time.sleep(0.05)
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        self.events = []
        self.read()
        self.cmd("qmp_capabilities")

    def read(self):
        return json.loads(self.f.readline())

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = self.read()
            if "event" in r:
                self.events.append((r["event"], r.get("data")))
                continue
            return r

    def close(self):
        self.s.close()


REQUESTS = [
    ("qom-set", {"path": "/machine", "property": "rtc-time"}),
    ("qom-get", {"path": "/nope", "property": "type"}),
    ("qom-list", {"path": "/nope"}),
    ("qom-list", {"path": "/machine/peripheral"}),
    ("device_add", {"driver": "virtio-rng-pci", "id": "rng1", "addr": "6"}),
    ("device_add", {"driver": "virtio-rng-pci", "id": "rng1"}),
    ("device_add", {"driver": "virtio-rng-pci", "id": "rng2", "addr": "6"}),
    ("device_add", {"id": "x"}),
    ("qom-list", {"path": "/machine/peripheral"}),
    ("qom-get", {"path": "/machine/peripheral/rng1", "property": "type"}),
    ("qom-get", {"path": "rng1", "property": "type"}),
    ("qom-get", {"path": "/machine/peripheral/rng1", "property": "nope"}),
    ("qom-get", {"path": "/machine/peripheral/rng1", "property": "realized"}),
    ("qom-get", {"path": "/machine/peripheral/rng1", "property": "hotpluggable"}),
    ("device_del", {"id": "rng1"}),
    ("device_del", {"id": "rng1"}),
    ("device_del", {"id": "nope"}),
    # QEMU's qmp-cmd-test object-add failure modes, in its order
    ("object-add", {"qom-type": "memory-backend-ram", "id": "ram1"}),
    ("object-add", {"id": "ram1"}),
    ("object-del", {"id": "ram1"}),
    ("object-add", {"qom-type": "memory-backend-ram", "id": "ram1", "size": 1048576}),
    ("object-add", {"qom-type": "memory-backend-ram", "id": "ram1", "size": 1048576}),
    ("qom-get", {"path": "/objects/ram1", "property": "type"}),
    ("object-del", {"id": "ram1"}),
    ("object-add", {"qom-type": "memory-backend-ram", "id": "ram1", "size": "1048576"}),
    ("object-add", {"qom-type": "memory-backend-ram", "id": "ram1", "size": 1048576}),
    ("object-del", {"id": "ram1"}),
    ("object-add", {"qom-type": "memory-backend-ram", "size": 1048576}),
    ("object-add", {"qom-type": "memory-backend-ram", "id": "ram1", "size": 1048576}),
    ("object-add", {"qom-type": "rng-random", "id": "rng0", "filename": "/dev/urandom"}),
    ("qom-get", {"path": "/objects/rng0", "property": "type"}),
    ("object-del", {"id": "rng0"}),
    ("object-del", {"id": "rng0"}),
    # the balloon's properties libvirt reads and sets (virsh dommemstat)
    ("qom-get", {"path": "/machine/peripheral/b0", "property": "guest-stats"}),
    ("qom-get", {"path": "/machine/peripheral/b0/virtio-backend",
                 "property": "guest-stats-polling-interval"}),
    ("qom-set", {"path": "/machine/peripheral/b0", "property": "guest-stats-polling-interval",
                 "value": -1}),
    ("qom-set", {"path": "/machine/peripheral/b0", "property": "guest-stats-polling-interval",
                 "value": 2**33}),
    ("qom-set", {"path": "/machine/peripheral/b0", "property": "guest-stats-polling-interval",
                 "value": "x"}),
    ("qom-set", {"path": "/machine/peripheral/b0", "property": "guest-stats-polling-interval",
                 "value": 5}),
    ("qom-get", {"path": "/machine/peripheral/b0", "property": "guest-stats-polling-interval"}),
]


def run_all(c):
    return [c.cmd(name, **args) for name, args in REQUESTS]


def test_replies_match_qemu():
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        vtest.skip("qemu-system-x86_64 is not installed")
    d = tempfile.mkdtemp(prefix="vireo-qomcmp-")
    q = subprocess.Popen([qemu, "-M", "pc", "-nodefaults", "-display", "none", "-S", "-m", "64M",
                          "-qmp", f"unix:{d}/q.sock,server=on,wait=off",
                          "-device", "virtio-balloon-pci,id=b0,addr=9"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        qc = Client(f"{d}/q.sock")
        want = run_all(qc)
        qc.close()
    finally:
        q.kill()
        q.wait()
        shutil.rmtree(d, ignore_errors=True)
    with vmm.Vireo("-M", "pc", "-m", "64M", "-device", "virtio-balloon-pci,id=b0,addr=9",
                   qtest=True) as v:
        v.wait_socket()
        vc = Client(v.qmp_path)
        got = run_all(vc)
        vc.close()
    diffs = []
    for (name, args), w, g in zip(REQUESTS, want, got):
        if name == "qom-list":
            # QEMU lists properties in hash-table order: compare the sets
            w = sorted(map(json.dumps, w.get("return", []))) if "return" in w else w
            g = sorted(map(json.dumps, g.get("return", []))) if "return" in g else g
        if w != g:
            diffs.append(f"{name} {args}:\n  qemu:  {w}\n  vireo: {g}")
    assert not diffs, "\n".join(diffs)


def test_missing_any_arg():
    # QEMU's qmp-test: qom-set without its 'any' value is a GenericError
    with vmm.Vireo("-M", "pc", "-m", "64M", qtest=True) as v:
        v.wait_socket()
        c = Client(v.qmp_path)
        r = c.cmd("qom-set", path="/machine", property="rtc-time")
        assert r["error"] == {"class": "GenericError", "desc": "Parameter 'value' is missing"}, r
        r = c.cmd("qom-set", path="/machine", property="type", value="x")
        assert r["error"]["class"] == "GenericError", r
        c.close()


vtest.main()
