#!/usr/bin/env python3
"""vhost-user frontend protocol conformance, against a back-end the test plays.

vireo runs under -accel qtest; the test is both the guest driver (over
qtest) and the back-end (vufe.ScriptedBackend on a UNIX socket). It checks
the order, sizes, flags and descriptors of every message vireo sends, that
kicks and calls pass through the eventfds it hands over, and that a
back-end that misbehaves (short reply, wrong request id, missing ack, a
100 MB size field, no reply flag, a dropped connection, silence) leaves the
device broken with NEEDS_RESET while vireo keeps running. Bad set-ups fail
at start with one clear error each.
"""
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vufe  # noqa: E402
from vufe import (GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE,  # noqa: E402
                  SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE,
                  SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, GET_PROTOCOL_FEATURES,
                  SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE, GET_CONFIG,
                  F_NEED_REPLY, PF_MQ, PF_REPLY_ACK, PF_CONFIG, PF_BACKEND_REQ, NOFD,
                  SET_BACKEND_REQ_FD)
import vmm  # noqa: E402
import vtest  # noqa: E402
from vdriver import S_NEEDS_RESET  # noqa: E402

PATH = "/machine/peripheral/vub0/virtio-backend"


class Rig:
    """A scripted back-end and vireo connected to it."""

    def __init__(self, queues=2, extra=(), **backend):
        self.dir = vufe.tmpdir()
        self.sock = os.path.join(self.dir, "vu.sock")
        self.be = vufe.ScriptedBackend(self.sock, **backend)
        self.v = vmm.Vireo("-m", "64M", "-chardev", f"socket,id=c0,path={self.sock}",
                           "-device", f"vhost-user-blk-pci,chardev=c0,id=vub0,num-queues={queues}",
                           *extra, qtest=True)

    def close(self):
        self.v.close()
        self.be.close()
        subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start_fails(*args, **backend):
    d = vufe.tmpdir()
    sock = os.path.join(d, "vu.sock")
    be = vufe.ScriptedBackend(sock, **backend) if backend is not None else None
    try:
        return vmm.run("-accel", "qtest", "-display", "none", "-m", "64M",
                       "-chardev", f"socket,id=c0,path={sock}", *args, timeout=30)
    finally:
        be.close()
        subprocess.run(["rm", "-rf", d])


def test_connect_sequence():
    with Rig() as r:
        r.v.qmp()
        reqs = r.be.requests()
        assert reqs == [GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
                        GET_QUEUE_NUM, SET_OWNER, SET_BACKEND_REQ_FD, GET_CONFIG], reqs
        log = r.be.log
        for m in log:
            assert m.flags & 3 == 1, m                        # version 1, never a reply
        assert [len(m.payload) for m in log] == [0, 0, 8, 0, 8, 0, 12 + 60]
        acked = log[2].u64()
        # MQ, REPLY_ACK, CONFIG, BACKEND_REQ taken; LOG_SHMFD and RARP left alone
        assert acked == (1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_CONFIG
                         | 1 << PF_BACKEND_REQ), hex(acked)
        assert not log[2].flags & F_NEED_REPLY              # acks start after it
        assert log[4].flags & F_NEED_REPLY                  # SET_OWNER is acked
        assert log[5].flags & F_NEED_REPLY and len(log[5].fds) == 1   # the channel's end
        assert struct.unpack_from("<III", log[6].payload) == (0, 60, 0)
        assert all(not m.fds for m in log if m.req != SET_BACKEND_REQ_FD)


def test_start_rings_and_stop():
    with Rig() as r:
        b = vufe.Blk(r.v, queues=(0, 1))
        r.be.wait_for(SET_VRING_ENABLE, 2)
        log = r.be.log[7:]
        reqs = [m.req for m in log]
        ring = [SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL,
                SET_VRING_ERR]
        assert reqs == [SET_FEATURES, SET_MEM_TABLE] + ring * 2 + [SET_VRING_ENABLE] * 2, reqs
        for m in log:
            assert m.flags & F_NEED_REPLY, m                  # every set-request acked
        feats = log[0].u64()
        assert feats & (1 << 32) and feats & (1 << 30) and feats & (1 << 12), hex(feats)
        mem = log[1]
        nregions = struct.unpack_from("<I", mem.payload)[0]
        assert nregions >= 1 and len(mem.payload) == 8 + 32 * nregions
        assert len(mem.fds) == nregions
        gpa, size, uva, off = struct.unpack_from("<QQQQ", mem.payload, 8)
        assert (gpa, size, off) == (0, 64 << 20, 0) and uva, (gpa, size, uva, off)
        for q in (0, 1):
            num, base, addr, kick, call, err = log[2 + 6 * q: 8 + 6 * q]
            assert num.state() == (q, 128) and base.state() == (q, 0)
            idx, flags, desc, used, avail, log_gpa = struct.unpack("<IIQQQQ", addr.payload)
            assert (idx, flags, log_gpa) == (q, 0, b.vqs[q].used) and len(addr.payload) == 40
            for m in (kick, call, err):
                assert len(m.payload) == 8 and m.u64() == q and len(m.fds) == 1, m
        assert [m.state() for m in log[14:]] == [(0, 1), (1, 1)]
        # A kick by the driver reaches the back-end's kick eventfd ...
        kick_fd = log[5].fds[0]
        b.vqs[0].kick()
        assert select.select([kick_fd], [], [], 5)[0], "kick not passed on"
        assert struct.unpack("<Q", os.read(kick_fd, 8))[0] >= 1
        # ... and the back-end's call interrupts the driver (INTx here: ISR bit 0).
        b.d.isr()
        os.write(log[6].fds[0], struct.pack("<Q", 1))
        deadline = time.monotonic() + 5
        while not b.d.isr() & 1:
            assert time.monotonic() < deadline, "call not relayed"
            time.sleep(0.01)
        st = r.v.qmp().cmd("x-query-virtio-status", path=PATH)
        assert st["vhost-started"] and st["vhost-dev"]["nvqs"] == 2
        # A driver reset takes the rings back first, with GET_VRING_BASE.
        r.be.bases = {0: 5, 1: 7}
        b.d.set_status(0)
        r.be.wait_for(GET_VRING_BASE, 2)
        stops = r.be.messages(GET_VRING_BASE)
        assert [m.state()[0] for m in stops] == [0, 1] and not stops[0].flags & F_NEED_REPLY
        assert RESET_OWNER not in r.be.requests()


def test_stop_and_cont_keep_ring_positions():
    with Rig() as r:
        vufe.Blk(r.v, queues=(0, 1))
        r.be.wait_for(SET_VRING_ENABLE, 2)
        r.be.bases = {0: 5, 1: 7}
        q = r.v.qmp()
        q.cmd("stop")
        r.be.wait_for(GET_VRING_BASE, 2)
        assert not q.cmd("x-query-virtio-status", path=PATH)["vhost-started"]
        qs = q.cmd("x-query-virtio-queue-status", path=PATH, queue=1)
        assert qs["last-avail-idx"] == 7, qs
        q.cmd("cont")
        r.be.wait_for(SET_VRING_ENABLE, 4)
        bases = [m.state() for m in r.be.messages(SET_VRING_BASE)]
        assert bases == [(0, 0), (1, 0), (0, 5), (1, 7)], bases
        q.cmd("quit")                       # quit takes the rings back first, too
        r.v.wait()
        assert len(r.be.messages(GET_VRING_BASE)) == 4, r.be.requests()


def test_polling_mode_flag_layout():
    """SET_VRING_KICK's u64: ring index in bits 0-7, bit 8 for "no fd" (never set here)."""
    with Rig(queues=1) as r:
        vufe.Blk(r.v)
        r.be.wait_for(SET_VRING_ENABLE)
        for m in r.be.messages(SET_VRING_KICK) + r.be.messages(SET_VRING_CALL):
            assert not m.u64() & NOFD and len(m.fds) == 1


# virtio/vhost-user.h: VHOST_USER_REPLY_TIMEOUT_MS
REPLY_TIMEOUT = 30


def broken_after_driver_ok(action, req=SET_VRING_ADDR):
    with Rig(misbehave={req: action}, extra=("-device", "virtio-rng-pci")) as r:
        t0 = time.monotonic()
        # DRIVER_OK waits for the back-end's answers, up to one reply timeout.
        r.v.qtest.sock.settimeout(REPLY_TIMEOUT + 20)
        b = vufe.Blk(r.v)
        deadline = time.monotonic() + REPLY_TIMEOUT + 15
        while not b.d.status() & S_NEEDS_RESET:
            assert time.monotonic() < deadline, f"{action}: device not broken"
            time.sleep(0.05)
        # Bounded: a silent back-end costs one reply timeout, not a hang.
        assert time.monotonic() - t0 < REPLY_TIMEOUT + 10, time.monotonic() - t0
        q = r.v.qmp()
        assert q.cmd("query-status")["status"] == "running"
        assert q.cmd("x-query-virtio-status", path=PATH)["broken"]
        names = [d["name"] for d in q.cmd("x-query-virtio")]
        assert sorted(names) == ["vhost-user-blk", "virtio-rng"], names
        err = read_stderr_until(r.v, "needs a reset")
        assert "vhost-user-blk" in err, err
        return err


def read_stderr_until(v, text, timeout=10):
    """What vireo wrote to stderr, read while it runs, up to a line with text."""
    fd = v.proc.stderr.fileno()
    out = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def test_short_reply():
    err = broken_after_driver_ok("short")
    assert "SET_VRING_ADDR" in err and "payload is 4 bytes" in err, err


def test_wrong_request_id():
    err = broken_after_driver_ok("wrong-id")
    assert "reply is for request 10" in err, err


def test_missing_ack():
    err = broken_after_driver_ok("no-ack", SET_MEM_TABLE)
    assert "SET_MEM_TABLE" in err and "no answer within" in err, err


def test_huge_size_field():
    err = broken_after_driver_ok("huge", SET_FEATURES)
    assert "104857600" in err, err


def test_no_reply_flag():
    err = broken_after_driver_ok("no-reply-flag", SET_VRING_NUM)
    assert "reply flag" in err, err


def test_dropped_connection():
    err = broken_after_driver_ok("close", SET_VRING_KICK)
    assert "connection closed" in err, err


def test_silence():
    err = broken_after_driver_ok("silence", SET_VRING_CALL)
    assert "no answer within" in err, err


def test_sigterm_while_waiting_for_a_silent_back_end():
    """A quit signal ends the wait for a back-end that never answers: vireo
    exits as it would without the device, not a reply timeout later."""
    with Rig(misbehave={SET_VRING_CALL: "silence"}) as r:
        r.v.qmp()
        driver = threading.Thread(target=setup_ignoring_exit, args=(r.v,), daemon=True)
        driver.start()                      # DRIVER_OK blocks in the main loop
        r.be.wait_for(SET_VRING_CALL)
        time.sleep(0.5)
        t0 = time.monotonic()
        r.v.proc.send_signal(signal.SIGTERM)
        rc = r.v.wait(timeout=REPLY_TIMEOUT + 10)
        took = time.monotonic() - t0
        assert took < 5, f"exit took {took:.1f} s"
        assert rc == 0, rc
        assert "vireo is stopping" in r.v.stderr, r.v.stderr


def setup_ignoring_exit(v):
    """Drive the device to DRIVER_OK; vireo exiting meanwhile is expected."""
    try:
        vufe.Blk(v)
    except Exception:
        pass


def test_refused_request():
    err = broken_after_driver_ok("refuse", SET_VRING_ENABLE)
    assert "refused" in err, err


def test_back_end_speaks_unasked():
    with Rig() as r:
        b = vufe.Blk(r.v)                   # queue 1 is not set up: it stays idle
        r.be.wait_for(SET_VRING_ENABLE, 1)
        assert [m.u64() for m in r.be.messages(SET_VRING_KICK)] == [0]
        r.be._send(GET_FEATURES, struct.pack("<Q", 0))
        deadline = time.monotonic() + 10
        while not b.d.status() & S_NEEDS_RESET:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_startup_garbage_is_a_startup_error():
    rc, _, err = start_fails("-device", "vhost-user-blk-pci,chardev=c0",
                             misbehave={GET_FEATURES: "wrong-id"})
    assert rc == 1 and "GET_FEATURES" in err and "reply is for request 2" in err, err
    rc, _, err = start_fails("-device", "vhost-user-blk-pci,chardev=c0",
                             misbehave={GET_CONFIG: "short"})
    assert rc == 1 and "GET_CONFIG" in err, err


# ---- bad configuration ----

def test_missing_socket():
    rc, _, err = vmm.run("-accel", "qtest", "-display", "none",
                         "-chardev", "socket,id=c0,path=/nonexistent/vu.sock",
                         "-device", "vhost-user-blk-pci,chardev=c0")
    assert rc == 1 and "Failed to connect to '/nonexistent/vu.sock'" in err, err
    rc, _, err = vmm.run("-accel", "qtest", "-display", "none",
                         "-device", "vhost-user-blk-pci,chardev=nope")
    assert rc == 1 and "can't find value 'nope'" in err, err


def test_backend_lacks_needed_features():
    rc, _, err = start_fails("-device", "vhost-user-blk-pci,chardev=c0",
                             protocol=1 << PF_MQ | 1 << PF_REPLY_ACK)
    assert rc == 1 and "does not offer the CONFIG protocol feature" in err, err
    rc, _, err = start_fails("-device", "vhost-user-blk-pci,chardev=c0",
                             features=vufe.BLK_FEATURES & ~(1 << 32))
    assert rc == 1 and "does not offer VIRTIO_F_VERSION_1" in err, err


def test_private_ram_refused():
    rc, _, err = start_fails("-object", "memory-backend-ram,id=m0,size=64M",
                             "-machine", "memory-backend=m0",
                             "-device", "vhost-user-blk-pci,chardev=c0")
    assert rc == 1 and "guest RAM is private" in err and "share=on" in err, err


def test_more_queues_than_offered():
    rc, _, err = start_fails("-device", "vhost-user-blk-pci,chardev=c0,num-queues=4", queues=2)
    assert rc == 1 and "offers 2 queues, 4 requested" in err, err


def test_memory_backend_size_must_match():
    rc, _, err = vmm.run("-accel", "qtest", "-display", "none", "-m", "64M",
                         "-object", "memory-backend-memfd,id=m0,size=32M",
                         "-numa", "node,memdev=m0")
    assert rc == 1 and "does not match the size of the memory backend" in err, err


if __name__ == "__main__":
    vtest.main()
