#!/usr/bin/env python3
"""The vhost-user back-end channel (BACKEND_REQ): requests from the back-end.

vireo hands the back-end one end of a socket pair with SET_BACKEND_REQ_FD
when BACKEND_REQ is offered. On it, CONFIG_CHANGE_MSG makes vireo read the
configuration again (GET_CONFIG) and, for vhost-user-blk, announce a new
capacity to the driver with a configuration interrupt; IOTLB and
host-notifier messages are refused (u64 1 in the REPLY_ACK-style answer when
NEED_REPLY is set), their descriptors closed, and the device goes on. A
malformed message breaks the device (NEEDS_RESET) and only it.

The back-end is the scripted one (vufe.ScriptedBackend): Debian's
qemu-storage-daemon 7.2 takes the channel (test_vu_frontend_qsd checks that
SLAVE_REQ is negotiated with it) but sends nothing on it; its export gained
a resize notification only in later QEMU releases.
"""
import os
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vufe  # noqa: E402
from vufe import (F_VERSION, F_REPLY, F_NEED_REPLY, GET_CONFIG, SET_VRING_ENABLE,  # noqa: E402
                  PF_MQ, PF_REPLY_ACK, PF_CONFIG, B_IOTLB_MSG, B_CONFIG_CHANGE_MSG,
                  B_VRING_HOST_NOTIFIER_MSG, B_VRING_CALL, SET_BACKEND_REQ_FD)
import vmm  # noqa: E402
import vtest  # noqa: E402
from vdriver import S_NEEDS_RESET  # noqa: E402

PATH = "/machine/peripheral/vub0/virtio-backend"
ISR_CONFIG = 2


class Rig:
    def __init__(self, **backend):
        self.dir = vufe.tmpdir()
        self.sock = os.path.join(self.dir, "vu.sock")
        self.be = vufe.ScriptedBackend(self.sock, **backend)
        self.v = vmm.Vireo("-m", "64M", "-chardev", f"socket,id=c0,path={self.sock}",
                           "-device", "vhost-user-blk-pci,chardev=c0,id=vub0,num-queues=1",
                           "-device", "virtio-rng-pci", qtest=True)

    def close(self):
        self.v.close()
        self.be.close()
        subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_until(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_channel_not_offered_not_sent():
    with Rig(protocol=1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_CONFIG) as r:
        r.v.qmp()
        assert SET_BACKEND_REQ_FD not in r.be.requests(), r.be.requests()


def test_config_change_announces_new_capacity():
    with Rig() as r:
        b = vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        assert b.d.config(0, 8) == 8192
        b.d.isr()                                       # clear
        gen = b.d.r8(0x15)                              # config_generation
        reads = len(r.be.messages(GET_CONFIG))
        r.be.config = vufe.blk_config(16384)
        rreq, rflags, value = r.be.backend_request(B_CONFIG_CHANGE_MSG,
                                                   flags=F_VERSION | F_NEED_REPLY)
        assert (rreq, rflags & ~F_NEED_REPLY, value) == (B_CONFIG_CHANGE_MSG,
                                                         F_VERSION | F_REPLY, 0)
        assert not rflags & F_NEED_REPLY
        wait_until(lambda: len(r.be.messages(GET_CONFIG)) > reads, "no GET_CONFIG")
        wait_until(lambda: b.d.config(0, 8) == 16384, "capacity not updated")
        assert b.d.isr() & ISR_CONFIG, "no configuration interrupt"
        assert b.d.r8(0x15) != gen
        # Without NEED_REPLY nothing comes back, and the change still lands.
        r.be.config = vufe.blk_config(32768)
        assert r.be.backend_request(B_CONFIG_CHANGE_MSG) is None
        wait_until(lambda: b.d.config(0, 8) == 32768, "second change not seen")
        # Only the capacity is the back-end's to change (as QEMU): the queue
        # count stays the frontend's.
        assert b.d.config(34, 2) == 1
        # The device still serves requests.
        st = r.v.qmp().cmd("x-query-virtio-status", path=PATH)
        assert st["vhost-started"] and not st["broken"], st
        r.be.channel().setblocking(False)
        try:
            assert r.be.channel().recv(64) == b"", "unexpected bytes on the channel"
        except BlockingIOError:
            pass


def test_unsupported_requests_refused_with_ack():
    with Rig() as r:
        b = vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        iotlb = struct.pack("<QQQBB", 0x1000, 0x1000, 0x7f0000000000, 3, 2)
        rreq, rflags, value = r.be.backend_request(B_IOTLB_MSG, iotlb,
                                                   flags=F_VERSION | F_NEED_REPLY)
        assert (rreq, value) == (B_IOTLB_MSG, 1) and rflags & F_REPLY
        # A host notifier with its fd: refused, and vireo keeps no copy of the fd.
        fd = os.memfd_create("notifier")
        os.ftruncate(fd, 4096)
        area = struct.pack("<QQQ", 0, 4096, 0)
        rreq, rflags, value = r.be.backend_request(B_VRING_HOST_NOTIFIER_MSG, area,
                                                   flags=F_VERSION | F_NEED_REPLY, fds=[fd])
        assert (rreq, value) == (B_VRING_HOST_NOTIFIER_MSG, 1)
        target = os.readlink(f"/proc/self/fd/{fd}")
        os.close(fd)
        held = [os.readlink(f"/proc/{r.v.proc.pid}/fd/{f}")
                for f in os.listdir(f"/proc/{r.v.proc.pid}/fd")]
        assert not any(h == target for h in held), "vireo kept the notifier fd"
        rreq, _, value = r.be.backend_request(B_VRING_CALL, struct.pack("<II", 0, 0),
                                              flags=F_VERSION | F_NEED_REPLY)
        assert (rreq, value) == (B_VRING_CALL, 1)
        rreq, _, value = r.be.backend_request(99, flags=F_VERSION | F_NEED_REPLY)
        assert (rreq, value) == (99, 1)
        # None of it harmed the device, and the channel still serves.
        st = r.v.qmp().cmd("x-query-virtio-status", path=PATH)
        assert not st["broken"] and st["vhost-started"], st
        assert not b.d.status() & S_NEEDS_RESET
        r.be.config = vufe.blk_config(12345)
        assert r.be.backend_request(B_CONFIG_CHANGE_MSG, flags=F_VERSION | F_NEED_REPLY)[2] == 0
        wait_until(lambda: b.d.config(0, 8) == 12345, "channel dead after refusals")


def test_config_change_then_backend_breaks():
    """GET_CONFIG after a config change fails: the device breaks, vireo lives on
    (the channel that delivered the change is freed under its own handler)."""
    with Rig() as r:
        b = vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        r.be.misbehave[GET_CONFIG] = "wrong-id"
        # Two changes in one write, so the second is already queued when the
        # first one's GET_CONFIG fails and vireo drops the channel.
        change = struct.pack("<III", B_CONFIG_CHANGE_MSG, F_VERSION, 0)
        r.be.channel().sendall(change + change)
        wait_until(lambda: b.d.status() & S_NEEDS_RESET, "device not broken")
        q = r.v.qmp()
        assert q.cmd("query-status")["status"] == "running"
        q.cmd("quit")
        r.v.wait()
        assert "GET_CONFIG" in r.v.stderr and "reply is for request 25" in r.v.stderr, r.v.stderr


def broken_by(raw):
    with Rig() as r:
        b = vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        t0 = time.monotonic()
        r.be.channel().sendall(raw)
        wait_until(lambda: b.d.status() & S_NEEDS_RESET, "device not broken")
        assert time.monotonic() - t0 < 8
        q = r.v.qmp()
        assert q.cmd("query-status")["status"] == "running"
        names = sorted(d["name"] for d in q.cmd("x-query-virtio"))
        assert names == ["vhost-user-blk", "virtio-rng"], names
        paths = [d["path"] for d in q.cmd("x-query-virtio") if d["name"] == "virtio-rng"]
        assert not q.cmd("x-query-virtio-status", path=paths[0])["broken"]
        q.cmd("quit")
        r.v.wait()
        return r.v.stderr


def test_oversized_payload_breaks_device():
    err = broken_by(struct.pack("<III", B_CONFIG_CHANGE_MSG, F_VERSION, 100 << 20))
    assert "104857600" in err, err


def test_bad_version_breaks_device():
    err = broken_by(struct.pack("<III", B_CONFIG_CHANGE_MSG, 2, 0))
    assert "version 2" in err, err


def test_unasked_reply_breaks_device():
    err = broken_by(struct.pack("<IIIQ", B_CONFIG_CHANGE_MSG, F_VERSION | F_REPLY, 8, 0))
    assert "reply" in err, err


def test_half_message_does_not_stall_vireo():
    """A header cut in two: vireo's main loop goes on (QMP answers at once)."""
    with Rig() as r:
        vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        r.be.channel().sendall(struct.pack("<III", B_CONFIG_CHANGE_MSG, F_VERSION, 0)[:7])
        q = r.v.qmp()
        t0 = time.monotonic()
        for _ in range(5):
            q.cmd("query-status")
        assert time.monotonic() - t0 < 2
        reads = len(r.be.messages(GET_CONFIG))
        r.be.config = vufe.blk_config(4096)
        r.be.channel().sendall(struct.pack("<III", B_CONFIG_CHANGE_MSG, F_VERSION, 0)[7:])
        wait_until(lambda: len(r.be.messages(GET_CONFIG)) > reads, "rest of message ignored")


def test_channel_closed_is_not_an_error():
    with Rig() as r:
        b = vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        r.be.channel().close()
        r.be.chan = None
        with r.be.lock:
            for m in r.be.log:
                if m.req == SET_BACKEND_REQ_FD:
                    for fd in m.fds:
                        os.close(fd)
                    m.fds = []
        time.sleep(0.5)
        st = r.v.qmp().cmd("x-query-virtio-status", path=PATH)
        assert not st["broken"] and st["vhost-started"], st
        assert not b.d.status() & S_NEEDS_RESET
        # The main socket still works: a stop takes the rings back.
        r.v.qmp().cmd("stop")
        r.be.wait_for(vufe.GET_VRING_BASE)


if __name__ == "__main__":
    vtest.main()
