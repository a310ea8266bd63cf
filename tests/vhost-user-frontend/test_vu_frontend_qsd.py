#!/usr/bin/env python3
"""vireo as the vhost-user frontend of Debian's qemu-storage-daemon.

Under the qtest accelerator the test is the guest driver: it writes
virtio-blk requests into guest RAM (a shared memfd backend attached with
-numa node,memdev=, as with QEMU), kicks through the notify BAR, and the
daemon, which maps the same RAM, serves them. qemu-io then reads the image
to prove the data reached it. Also: introspection of the running back-end,
ring positions kept across a driver reset and a system reset, a back-end
that dies (broken device, VM alive), and one that comes back (reconnect=1,
no reset needed).
"""
import os
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vufe  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402
from vdriver import S_NEEDS_RESET  # noqa: E402

PATH = "/machine/peripheral/vub0/virtio-backend"
MEM = ["-m", "128M", "-object", "memory-backend-memfd,id=mem0,size=128M,share=on",
       "-numa", "node,memdev=mem0"]


class Setup:
    def __init__(self, queues=2, reconnect=False, dev_queues=1):
        if not vufe.have("qemu-storage-daemon"):
            vtest.skip("qemu-storage-daemon is not installed")
        self.dir = vufe.tmpdir()
        self.image = os.path.join(self.dir, "disk.img")
        self.sock = os.path.join(self.dir, "vub.sock")
        subprocess.run(["qemu-img", "create", "-f", "raw", self.image, "16M"], check=True,
                       capture_output=True)
        self.queues = queues
        self.qsd = vufe.start_qsd(self.image, self.sock, queues)
        rc = ",reconnect=1" if reconnect else ""
        self.v = vmm.Vireo(*MEM, "-chardev", f"socket,id=c0,path={self.sock}{rc}",
                           "-device", f"vhost-user-blk-pci,chardev=c0,id=vub0,"
                                      f"num-queues={dev_queues}", qtest=True)

    def restart_qsd(self):
        vufe.stop(self.qsd)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.qsd = vufe.start_qsd(self.image, self.sock, self.queues)

    def close(self):
        self.v.close()
        vufe.stop(self.qsd)
        subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def qemu_io_read(image, pattern, offset, length):
    p = subprocess.run(["qemu-io", "-f", "raw", "-r", "-c",
                        f"read -P 0x{pattern:x} {offset} {length}", image],
                       capture_output=True, text=True)
    return p.returncode == 0 and "Pattern verification failed" not in p.stdout, p.stdout


def test_request_reaches_image():
    with Setup() as s:
        b = vufe.Blk(s.v)
        assert b.d.config(0, 8) == (16 << 20) // 512           # capacity from the daemon
        st, n, _ = b.request(1, 8, out=b"\x5a" * 8192)          # write sectors 8..23
        assert (st, n) == (0, 1), (st, n)
        st, n, data = b.request(0, 8, in_len=8192)
        assert st == 0 and data == b"\x5a" * 8192
        assert b.request(4, 0)[0] == 0                           # flush
        s.v.qmp().cmd("quit")
        s.v.wait()
        vufe.stop(s.qsd)
        ok, out = qemu_io_read(s.image, 0x5a, 4096, 8192)
        assert ok, out


def test_introspection_of_running_backend():
    with Setup(dev_queues=2) as s:
        b = vufe.Blk(s.v, queues=(0, 1))
        b.request(1, 0, out=b"\x11" * 512)
        q = s.v.qmp()
        st = q.cmd("x-query-virtio-status", path=PATH)
        assert st["name"] == "vhost-user-blk" and st["vhost-started"], st
        vd = st["vhost-dev"]
        assert vd["nvqs"] == 2 and vd["vq-index"] == 0, vd
        assert vd["max-queues"] == 2 and vd["n-mem-sections"] >= 1, vd
        protos = " ".join(vd["protocol-features"]["protocols"])
        for name in ("MQ", "REPLY_ACK", "CONFIG", "CONFIGURE_MEM_SLOTS", "SLAVE_REQ"):
            assert f"VHOST_USER_PROTOCOL_F_{name}:" in protos, protos
        for name in ("LOG_SHMFD", "HOST_NOTIFIER"):
            assert f"VHOST_USER_PROTOCOL_F_{name}:" not in protos, protos
        assert any("VIRTIO_BLK_F_MQ" in f for f in vd["acked-features"]["dev-features"]), vd
        vq = q.cmd("x-query-virtio-vhost-queue-status", path=PATH, queue=1)
        assert vq["name"] == "vhost-user-blk" and vq["num"] == 128
        assert vq["desc-phys"] == b.vqs[1].desc and vq["used-phys"] == b.vqs[1].used, vq
        names = [d["name"] for d in q.cmd("x-query-virtio")]
        assert names == ["vhost-user-blk"], names


def test_driver_reset_and_system_reset_keep_working():
    with Setup() as s:
        b = vufe.Blk(s.v)
        for i in range(3):
            assert b.request(1, i, out=bytes([i + 1]) * 512)[0] == 0
        q = s.v.qmp()
        b.d.set_status(0)                   # rings come back with GET_VRING_BASE
        assert not q.cmd("x-query-virtio-status", path=PATH)["vhost-started"]
        b = vufe.Blk(s.v)
        st, _, data = b.request(0, 1, in_len=512)
        assert st == 0 and data == b"\x02" * 512
        q.cmd("system_reset")
        time.sleep(0.2)
        b = vufe.Blk(s.v)
        st, _, data = b.request(0, 2, in_len=512)
        assert st == 0 and data == b"\x03" * 512


def test_backend_dies_device_broken_vm_alive():
    with Setup() as s:
        b = vufe.Blk(s.v)
        assert b.request(1, 0, out=b"\x22" * 512)[0] == 0
        vufe.stop(s.qsd)
        deadline = time.monotonic() + 10
        while not b.d.status() & S_NEEDS_RESET:
            assert time.monotonic() < deadline, "device not marked broken"
            time.sleep(0.05)
        q = s.v.qmp()
        assert q.cmd("x-query-virtio-status", path=PATH)["broken"]
        assert q.cmd("query-status")["status"] == "running"
        s.v.qmp().cmd("quit")
        s.v.wait()
        assert "vhost-user" in s.v.stderr and "needs a reset" in s.v.stderr, s.v.stderr


def test_backend_restart_with_reconnect():
    with Setup(reconnect=True) as s:
        s.v.keep_stderr = True
        b = vufe.Blk(s.v)
        assert b.request(1, 0, out=b"\x33" * 512)[0] == 0
        s.restart_qsd()
        # The guest does nothing special: it goes on submitting requests.
        st, _, data = b.request(0, 0, in_len=512, timeout=20)
        assert st == 0 and data == b"\x33" * 512
        assert b.request(1, 1, out=b"\x44" * 512, timeout=20)[0] == 0
        st = s.v.qmp().cmd("x-query-virtio-status", path=PATH)
        assert st["vhost-started"] and not st["broken"], st


if __name__ == "__main__":
    vtest.main()
