#!/usr/bin/env python3
"""vhost-user-fs-pci in front of Debian's virtiofsd, driven over qtest.

The test plays the guest's virtio-fs driver: it negotiates, sets up the
high-priority and one request queue, and sends FUSE_INIT and a FUSE_LOOKUP
of a file in the shared directory through the request queue; virtiofsd
answers in guest RAM. Also the PCI identity (modern only, device id 26),
the configuration space vireo builds (tag, queue count) and the properties'
errors. virtiofsd needs root and exits when its frontend leaves.
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vufe  # noqa: E402
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
FUSE_LOOKUP, FUSE_INIT = 1, 26
PATH = "/machine/peripheral/fs0/virtio-backend"


def start_virtiofsd(sock, source):
    proc = subprocess.Popen([VIRTIOFSD, f"--socket-path={sock}", "-o", f"source={source}",
                             "-o", "cache=auto"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    vufe.wait_path(sock, proc)
    return proc


class Fs:
    def __init__(self, tag="myfs"):
        if os.geteuid() != 0 or not os.path.exists(VIRTIOFSD):
            vtest.skip("virtiofsd needs root and qemu-system-common")
        self.dir = vufe.tmpdir()
        self.src = os.path.join(self.dir, "share")
        os.mkdir(self.src)
        with open(os.path.join(self.src, "hello.txt"), "wb") as f:
            f.write(b"x" * 1234)
        self.sock = os.path.join(self.dir, "vfs.sock")
        self.fsd = start_virtiofsd(self.sock, self.src)
        self.v = vmm.Vireo("-m", "64M", "-chardev", f"socket,id=c0,path={self.sock}",
                           "-device", f"vhost-user-fs-pci,chardev=c0,tag={tag},id=fs0",
                           qtest=True)

    def close(self):
        self.v.close()
        vufe.stop(self.fsd)
        subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fuse(d, vq, opcode, nodeid, body, out_len=4096, unique=[1]):
    qt = d.qt
    unique[0] += 1
    req = struct.pack("<IIQQIIII", 40 + len(body), opcode, unique[0], nodeid, 0, 0, 0, 0) + body
    a_out = d.alloc.take(len(req), 16)
    a_in = d.alloc.take(out_len, 16)
    qt.memwrite(a_out, req)
    vq.add_chain([(a_out, len(req), False), (a_in, out_len, True)])
    vq.kick()
    _, n = vq.wait_used()
    reply = qt.memread(a_in, n)
    length, error, uniq = struct.unpack_from("<IiQ", reply)
    assert uniq == unique[0] and length == n, (length, n, uniq)
    return error, reply[16:]


def test_identity_and_config():
    with Fs() as s:
        found = vdriver.Pci(s.v.qtest).find()
        assert [(f[1], f[2]) for f in found] == [(0x105a, 0x1100)], found
        d = vdriver.VirtioPciDevice(s.v.qtest, found[0][0])
        tag = bytes(d.config(i) for i in range(36))
        assert tag == b"myfs".ljust(36, b"\0") and d.config(36, 4) == 1
        q = s.v.qmp()
        assert [x["name"] for x in q.cmd("x-query-virtio")] == ["vhost-user-fs"]
        assert q.cmd("x-query-virtio-status", path=PATH)["device-id"] == 26


def test_fuse_init_and_lookup():
    with Fs() as s:
        slot = vdriver.Pci(s.v.qtest).find()[0][0]
        d = vdriver.VirtioPciDevice(s.v.qtest, slot)
        hiprio, req = d.init((0, 1))
        err, out = fuse(d, req, FUSE_INIT, 0, struct.pack("<IIII", 7, 31, 0, 0) + bytes(48))
        assert err == 0, err
        major, minor = struct.unpack_from("<II", out)
        assert major == 7 and minor >= 27, (major, minor)
        err, out = fuse(d, req, FUSE_LOOKUP, 1, b"hello.txt\0")
        assert err == 0, err
        nodeid = struct.unpack_from("<Q", out)[0]
        size = struct.unpack_from("<Q", out, 48)[0]
        assert nodeid > 1 and size == 1234, (nodeid, size)
        err, _ = fuse(d, req, FUSE_LOOKUP, 1, b"missing\0")
        assert err == -2                                    # ENOENT from the host
        st = s.v.qmp().cmd("x-query-virtio-status", path=PATH)
        assert st["vhost-started"] and st["vhost-dev"]["nvqs"] == 2, st


def test_property_errors():
    for props, msg in (("", "missing tag property"), (",tag=", "tag property cannot be empty"),
                       (",tag=" + "t" * 37, "tag property must be 36 bytes or less"),
                       (",tag=a,queue-size=100", "queue-size property must be a power of 2"),
                       (",tag=a,num-request-queues=0", "must be larger than 0")):
        rc, _, err = vmm.run("-accel", "qtest", "-display", "none", "-chardev",
                             "null,id=c0", "-device", f"vhost-user-fs-pci,chardev=c0{props}")
        assert rc == 1 and msg in err, (props, err)


if __name__ == "__main__":
    vtest.main()
