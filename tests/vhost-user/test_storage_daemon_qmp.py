#!/usr/bin/env python3
"""vireo-storage-daemon's QMP monitor (--chardev socket,... --monitor ID).

The export and node commands are compared with what Debian's
qemu-storage-daemon answers for the same command line; the virtio
introspection commands are checked against rings a scripted frontend
(vufront.py) set up and used.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import vtest  # noqa: E402
from vmm import QMP, QMPError  # noqa: E402
from vufront import *  # noqa: E402,F401,F403

TMP = tempfile.mkdtemp(prefix="sd-qmp-")
IMG = os.path.join(TMP, "disk.qcow2")
RAW = os.path.join(TMP, "second.raw")
SOCK = os.path.join(TMP, "vub.sock")
SOCK2 = os.path.join(TMP, "vub2.sock")
SOCK3 = os.path.join(TMP, "vub3.sock")
QMP_SOCK = os.path.join(TMP, "qmp.sock")
LOG = os.path.join(TMP, "daemon.log")
DATA = 0x100000
PF = (1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_CONFIG | 1 << PF_STATUS)

COMMANDS = {"qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
            "quit", "query-block-exports", "block-export-add", "block-export-del",
            "query-named-block-nodes", "query-blockstats", "x-query-virtio",
            "x-query-virtio-status", "x-query-virtio-queue-status",
            "x-query-virtio-vhost-queue-status", "x-query-virtio-queue-element",
            # the NBD server (qapi/block-export.json)
            "nbd-server-start", "nbd-server-stop", "nbd-server-add", "nbd-server-remove"}

BLOCKDEVS = ["--blockdev", f"driver=file,node-name=file0,filename={IMG}",
             "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
             "--blockdev", f"driver=file,node-name=raw0,filename={RAW}"]


def start(binary, qmp_sock, export_sock, monitor="qmp0"):
    """Start a daemon serving disk0 as exp0 with a monitor; returns (process, QMP)."""
    proc = subprocess.Popen(
        [binary, *BLOCKDEVS,
         "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                     f"addr.path={export_sock},writable=on",
         "--chardev", f"socket,id=qmp0,path={qmp_sock},server=on,wait=off",
         "--monitor", monitor], stderr=open(LOG, "a"))
    deadline = time.time() + 10
    while not os.path.exists(qmp_sock):
        assert time.time() < deadline and proc.poll() is None, open(LOG).read()[-2000:]
        time.sleep(0.02)
    return proc, QMP.unix(qmp_sock)


def make_images():
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", IMG, "64M"], check=True)
    with open(RAW, "wb") as f:
        f.truncate(8 << 20)


def run(name, **args):
    """Execute with arguments as given (vmm.QMP.execute keeps id= for itself)."""
    req = {"execute": name, "arguments": {k.replace("_", "-"): v for k, v in args.items()}}
    qmp.send_raw(json.dumps(req) + "\n")
    return qmp.reply()


def ok(name, **args):
    r = run(name, **args)
    assert "return" in r, r
    return r["return"]


def error_of(r):
    assert "error" in r, r
    return r["error"]["class"], r["error"]["desc"]


class Guest:
    """A frontend with memory and ring 0 set up; submits virtio-blk requests."""

    def __init__(self, path):
        self.fe = Frontend(path)
        self.ram = GuestRam()
        fe = self.fe
        self.features = fe.call_u64(GET_FEATURES)
        fe.send(SET_FEATURES, u64(self.features & ~(1 << VHOST_F_LOG_ALL)))
        fe.send(SET_PROTOCOL_FEATURES, u64(PF))
        fe.reply_ack = True
        fe.do(SET_OWNER)
        fe.do(SET_MEM_TABLE, mem_table([(0, self.ram.size, UVA_BASE, 0)]), [self.ram.fd])
        self.ring = Ring(self.ram, 0, 0x10000)
        fe.do(SET_VRING_NUM, state(0, self.ring.num))
        fe.do(SET_VRING_BASE, state(0, 0))
        fe.do(SET_VRING_ADDR, vring_addr(self.ring))
        self.call = os.eventfd(0, os.EFD_NONBLOCK)
        fe.do(SET_VRING_CALL, u64(0), [self.call])
        self.kick = os.eventfd(0)
        fe.do(SET_VRING_KICK, u64(0), [self.kick])
        fe.do(SET_VRING_ENABLE, state(0, 1))
        fe.ack(SET_STATUS, u64(0x0f))

    def request(self, rtype, sector, data=None, read_len=0):
        """Run one request; returns (status byte, data read)."""
        hdr_gpa, data_gpa, status_gpa = DATA, DATA + 4096, DATA + 4096 + (1 << 16)
        self.ram.write(hdr_gpa, struct.pack("<IIQ", rtype, 0, sector))
        bufs = [(hdr_gpa, 16, False)]
        if data:
            self.ram.write(data_gpa, data)
            bufs.append((data_gpa, len(data), False))
        if read_len:
            bufs.append((data_gpa, read_len, True))
        self.ram.write(status_gpa, b"\xee")
        bufs.append((status_gpa, 1, True))
        self.ring.add_chain(bufs)
        os.eventfd_write(self.kick, 1)
        self.ring.used_seen += 1
        wait_used(self.ring, self.ring.used_seen)
        return self.ram.read(status_gpa, 1)[0], self.ram.read(data_gpa, read_len)

    def close(self):
        self.fe.close()
        os.close(self.call)
        os.close(self.kick)
        os.close(self.ram.fd)


# ---- tests against one daemon ----

daemon = qmp = None


def test_negotiation():
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(QMP_SOCK)
    early = QMP(sock, negotiate=False)
    version = early.greeting["QMP"]["version"]
    assert version["package"].startswith("vireo-storage-daemon"), version
    assert set(version["qemu"]) == {"major", "minor", "micro"}
    assert early.greeting["QMP"]["capabilities"] == ["oob"]
    cls, desc = error_of(early.execute("query-block-exports"))
    assert cls == "CommandNotFound" and "qmp_capabilities" in desc, desc
    assert early.execute("qmp_capabilities") == {"return": {}}
    assert early.cmd("query-version") == version
    assert {c["name"] for c in early.cmd("query-commands")} == COMMANDS
    schema = early.cmd("query-qmp-schema")
    names = {e["name"] for e in schema if e["meta-type"] == "command"}
    events = {e["name"] for e in schema if e["meta-type"] == "event"}
    assert names == COMMANDS and events == {"BLOCK_EXPORT_DELETED"}, (names, events)
    early.close()


def test_query_block_exports_after_start():
    assert qmp.cmd("query-block-exports") == [
        {"id": "exp0", "type": "vhost-user-blk", "node-name": "disk0", "shutting-down": False}]


def test_block_export_add_and_a_frontend_using_it():
    assert ok("block-export-add", type="vhost-user-blk", id="exp1", node_name="raw0",
                   writable=True, addr={"type": "unix", "path": SOCK2},
                   logical_block_size=4096) == {}
    exports = qmp.cmd("query-block-exports")
    assert [e["id"] for e in exports] == ["exp1", "exp0"], exports
    assert exports[0]["node-name"] == "raw0"
    # A node may be exported twice (qemu-storage-daemon 7.2 accepts it too:
    # the source and the destination of a migration each need a socket).
    assert ok("block-export-add", type="vhost-user-blk", id="exp2", node_name="raw0",
              writable=True, addr={"type": "unix", "path": SOCK3}) == {}
    assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["exp2", "exp1", "exp0"]
    assert ok("block-export-del", id="exp2") == {}
    assert qmp.wait_event("BLOCK_EXPORT_DELETED")["data"] == {"id": "exp2"}
    # The same checks as --export: the id is taken.
    cls, desc = error_of(run("block-export-add", type="vhost-user-blk", id="exp1",
                                     node_name="disk0", addr={"type": "unix", "path": SOCK2}))
    assert "Duplicate export id" in desc, desc
    cls, desc = error_of(run("block-export-add", type="nbd", id="x", node_name="raw0",
                                     addr={"type": "unix", "path": SOCK2}))
    assert cls == "GenericError", desc
    g = Guest(SOCK2)
    cfg, _ = g.fe.call(GET_CONFIG, struct.pack("<III", 0, 24, 0) + bytes(24))
    capacity, = struct.unpack_from("<Q", cfg, 12)
    blk_size, = struct.unpack_from("<I", cfg, 12 + 20)
    assert (capacity, blk_size) == ((8 << 20) // 512, 4096)
    pattern = bytes([0x5a]) * 4096
    assert g.request(T_OUT, 8, data=pattern)[0] == 0
    g.close()
    with open(RAW, "rb") as f:
        f.seek(8 * 512)
        assert f.read(4096) == pattern
    g = Guest(SOCK)                     # exp0: the qcow2 node disk0
    assert g.request(T_OUT, 2048, data=pattern)[0] == 0
    g.close()
    # Each node's highest write, as qemu-storage-daemon reports it per node.
    nodes = {n["node-name"]: n for n in qmp.cmd("query-blockstats", query_nodes=True)}
    assert nodes["raw0"]["stats"]["wr_highest_offset"] == 8 * 512 + 4096, nodes["raw0"]
    assert nodes["disk0"]["stats"]["wr_highest_offset"] == (1 << 20) + 4096, nodes["disk0"]
    assert nodes["disk0"]["parent"]["stats"]["wr_highest_offset"] > 0, nodes["disk0"]


def test_block_export_del_and_its_event():
    g = Guest(SOCK2)
    cls, desc = error_of(run("block-export-del", id="exp1"))
    assert desc == "export 'exp1' still in use", desc
    assert ok("block-export-del", id="exp1", mode="hard") == {}
    ev = qmp.wait_event("BLOCK_EXPORT_DELETED")
    assert ev["data"] == {"id": "exp1"}
    assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["exp0"]
    g.fe.sock.settimeout(5)
    assert g.fe.sock.recv(1) == b"", "the frontend was not disconnected"
    g.close()
    assert not os.path.exists(SOCK2)
    cls, desc = error_of(run("block-export-del", id="exp1"))
    assert desc == "Export 'exp1' is not found", desc
    # The node is free again: a new export may take it, and a safe delete
    # of an export without a frontend succeeds at once.
    ok("block-export-add", type="vhost-user-blk", id="exp3", node_name="raw0",
            addr={"type": "unix", "path": SOCK2})
    assert ok("block-export-del", id="exp3", mode="safe") == {}
    assert qmp.wait_event("BLOCK_EXPORT_DELETED")["data"] == {"id": "exp3"}


def test_virtio_introspection_after_a_request():
    g = Guest(SOCK)
    assert g.request(T_OUT, 0, data=b"\x11" * 512)[0] == 0
    # A second request laid out but not kicked: the element the back-end takes next.
    g.ring.add_chain([(DATA, 16, False), (DATA + 4096, 512, True), (DATA + 8192, 1, True)])
    assert qmp.cmd("x-query-virtio") == [{"path": "/exports/exp0", "name": "vhost-user-blk"}]
    st = qmp.cmd("x-query-virtio-status", path="/exports/exp0")
    assert st["device-id"] == 2 and st["vhost-started"] and st["num-vqs"] == 1
    assert any(f.startswith("VIRTIO_F_VERSION_1") for f in st["guest-features"]["transports"])
    assert any(f.startswith("VIRTIO_BLK_F_FLUSH") for f in st["host-features"]["dev-features"])
    # SET_STATUS 0x0f: acknowledge, driver, driver_ok, features_ok
    assert sorted(s.split(":")[0] for s in st["status"]["statuses"]) == [
        "VIRTIO_CONFIG_S_ACKNOWLEDGE", "VIRTIO_CONFIG_S_DRIVER", "VIRTIO_CONFIG_S_DRIVER_OK",
        "VIRTIO_CONFIG_S_FEATURES_OK"], st["status"]
    protocols = st["vhost-dev"]["protocol-features"]["protocols"]
    assert sorted(p.split(":")[0] for p in protocols) == [
        "VHOST_USER_PROTOCOL_F_CONFIG", "VHOST_USER_PROTOCOL_F_MQ",
        "VHOST_USER_PROTOCOL_F_REPLY_ACK"], protocols
    # QEMU 7.2's names stop before STATUS (bit 16): reported as unknown.
    assert st["vhost-dev"]["protocol-features"]["unknown-protocols"] == 1 << PF_STATUS
    q = qmp.cmd("x-query-virtio-queue-status", path="/exports/exp0", queue=0)
    assert (q["last-avail-idx"], q["used-idx"], q["inuse"]) == (1, 1, 0), q
    assert (q["vring-num"], q["vring-desc"], q["vring-avail"], q["vring-used"]) == \
        (g.ring.num, g.ring.desc, g.ring.avail, g.ring.used), q
    e = qmp.cmd("x-query-virtio-queue-element", path="/exports/exp0", queue=0)
    assert e["avail"]["idx"] == 2 and e["used"]["idx"] == 1, e
    assert [(d["addr"], d["len"], d["flags"]) for d in e["descs"]] == [
        (DATA, 16, ["next"]), (DATA + 4096, 512, ["write", "next"]), (DATA + 8192, 1, ["write"])]
    first = qmp.cmd("x-query-virtio-queue-element", path="/exports/exp0", queue=0, index=0)
    assert [d["len"] for d in first["descs"]] == [16, 512, 1] and first["index"] == 0
    v = qmp.cmd("x-query-virtio-vhost-queue-status", path="/exports/exp0", queue=0)
    assert (v["desc-phys"], v["avail-phys"], v["used-phys"], v["num"]) == \
        (g.ring.desc, g.ring.avail, g.ring.used, g.ring.num), v
    assert v["kick"] >= 0 and v["call"] >= 0 and v["desc"] and v["used"], v
    cls, desc = error_of(qmp.execute("x-query-virtio-queue-status", path="/exports/exp0",
                                     queue=5))
    assert desc == "Invalid virtqueue number 5", desc
    cls, desc = error_of(qmp.execute("x-query-virtio-status", path="/exports/nope"))
    assert desc == "Path /exports/nope is not a VirtIODevice", desc
    g.close()


def test_quit():
    assert qmp.execute("quit") == {"return": {}}
    assert daemon.wait(10) == 0
    assert not os.path.exists(QMP_SOCK) and not os.path.exists(SOCK)


# ---- against qemu-storage-daemon ----

def named_nodes(binary, tag):
    qsock, esock = os.path.join(TMP, f"{tag}-qmp.sock"), os.path.join(TMP, f"{tag}-vub.sock")
    proc, q = start(binary, qsock, esock, monitor="chardev=qmp0")
    try:
        return {n["node-name"]: n for n in q.cmd("query-named-block-nodes")}
    finally:
        q.cmd("quit")
        assert proc.wait(10) == 0, (binary, open(LOG).read()[-2000:])


def test_named_block_nodes_as_qemu_storage_daemon_names_them():
    qsd = shutil.which("qemu-storage-daemon")
    if not qsd:
        vtest.skip("qemu-storage-daemon is not installed")
    theirs = named_nodes(qsd, "qsd")
    ours = named_nodes(vtest.binary("vireo-storage-daemon"), "vireo")
    assert list(ours) == list(theirs) == ["raw0", "disk0", "file0"], (list(ours), list(theirs))
    for name in theirs:
        t, o = theirs[name], ours[name]
        assert set(o) == set(t), (name, set(o) ^ set(t))
        assert set(o["image"]) == set(t["image"]), (name, o["image"], t["image"])
        for key in ("dirty-flag", "format-specific"):
            assert o["image"].get(key) == t["image"].get(key), (name, key, o["image"], t["image"])
        assert o["cache"] == t["cache"]
        for key in ("drv", "ro", "file", "encrypted", "detect_zeroes", "backing_file_depth"):
            assert o[key] == t[key], (name, key, o[key], t[key])
        for key in ("virtual-size", "format", "cluster-size", "filename"):
            assert o["image"].get(key) == t["image"].get(key), (name, key, o["image"], t["image"])


def test_no_sanitizer_reports():
    text = open(LOG).read()
    assert "runtime error" not in text and "AddressSanitizer" not in text, text[-3000:]


if __name__ == "__main__":
    make_images()
    daemon, qmp = start(vtest.binary("vireo-storage-daemon"), QMP_SOCK, SOCK)
    try:
        vtest.main()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(TMP, ignore_errors=True)
