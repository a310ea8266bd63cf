#!/usr/bin/env python3
"""vireo-storage-daemon's vhost-user-blk export against a scripted frontend.

The frontend (vufront.py) negotiates, hands over a memfd as guest memory,
lays out rings in it and submits virtio-blk requests; the image is then
checked with Debian's qemu-io / qemu-img. Hostile frontends must get an
error reply or be dropped, and the daemon must serve the next frontend.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import vtest  # noqa: E402
from nbd_peek import dirty_extents  # noqa: E402
from vufront import *  # noqa: E402,F401,F403

TMP = tempfile.mkdtemp(prefix="vu-blk-")
IMG = os.path.join(TMP, "disk.qcow2")
SOCK = os.path.join(TMP, "vub.sock")
LOG = os.path.join(TMP, "daemon.log")
daemon = None

DATA = 0x100000         # buffers start at 1 MiB in guest memory
WANT_PF = (1 << PF_MQ | 1 << PF_LOG_SHMFD | 1 << PF_REPLY_ACK | 1 << PF_CONFIG |
           1 << PF_INFLIGHT | 1 << PF_MEM_SLOTS | 1 << PF_STATUS)


def start_daemon(*extra, fresh=True):
    global daemon
    if fresh:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", IMG, "64M"], check=True)
    daemon = subprocess.Popen(
        [vtest.binary("vireo-storage-daemon"),
         "--blockdev", f"driver=file,node-name=file0,filename={IMG}",
         "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
         "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                     f"addr.path={SOCK},writable=on,num-queues=2", *extra],
        stderr=open(LOG, "a"))
    deadline = time.time() + 10
    while not os.path.exists(SOCK):
        assert time.time() < deadline and daemon.poll() is None, "daemon did not start"
        time.sleep(0.02)


def stop_daemon():
    daemon.terminate()
    rc = daemon.wait(10)
    assert rc == 0, f"daemon did not exit cleanly (status {rc}): {log_text()[-2000:]}"


def alive():
    assert daemon.poll() is None, "daemon died: " + open(LOG).read()[-2000:]


def log_text():
    return open(LOG).read()


class Session:
    """One connected frontend with guest memory and rings set up."""

    def __init__(self, features_extra=0, pf=WANT_PF, rings=(0,), kick_nofd=False,
                 setup_mem=True, base=0, inflight=None):
        self.fe = Frontend(SOCK)
        self.ram = GuestRam()
        fe = self.fe
        self.features = fe.call_u64(GET_FEATURES)
        self.pf = fe.call_u64(GET_PROTOCOL_FEATURES)
        fe.send(SET_FEATURES, u64(self.features & ~(1 << VHOST_F_LOG_ALL) | features_extra))
        fe.send(SET_PROTOCOL_FEATURES, u64(pf))
        fe.reply_ack = bool(pf >> PF_REPLY_ACK & 1)
        self.nq = fe.call_u64(GET_QUEUE_NUM)
        fe.do(SET_OWNER)
        self.rings, self.kicks, self.calls = {}, {}, {}
        if not setup_mem:
            return
        fe.do(SET_MEM_TABLE, mem_table([(0, self.ram.size, UVA_BASE, 0)]), [self.ram.fd])
        if inflight:
            fe.do(SET_INFLIGHT_FD, inflight[0], [inflight[1]])
        for q in rings:
            self.ring_setup(q, kick_nofd, base)

    def ring_setup(self, q, kick_nofd=False, base=0, flags=0, log=0):
        fe = self.fe
        ring = self.rings.get(q) or Ring(self.ram, q, 0x10000 * (q + 1))
        self.rings[q] = ring
        fe.do(SET_VRING_NUM, state(q, ring.num))
        fe.do(SET_VRING_BASE, state(q, base))
        fe.do(SET_VRING_ADDR, vring_addr(ring, flags, log))
        self.calls[q] = os.eventfd(0, os.EFD_NONBLOCK)
        fe.do(SET_VRING_CALL, u64(q), [self.calls[q]])
        if kick_nofd:
            fe.do(SET_VRING_KICK, u64(q | NOFD))
        else:
            self.kicks[q] = os.eventfd(0)
            fe.do(SET_VRING_KICK, u64(q), [self.kicks[q]])
        fe.do(SET_VRING_ENABLE, state(q, 1))
        return ring

    def kick(self, q=0):
        if q in self.kicks:
            os.eventfd_write(self.kicks[q], 1)

    def request(self, q, rtype, sector, data=None, read_len=0, at=DATA, submit=True):
        """Lay out a request at guest address `at`; returns (head, data gpa, status gpa)."""
        ring = self.rings[q]
        hdr = struct.pack("<IIQ", rtype, 0, sector)
        self.ram.write(at, hdr)
        bufs = [(at, 16, False)]
        dgpa = at + 4096
        if data:
            self.ram.write(dgpa, data)
            bufs.append((dgpa, len(data), False))
        if read_len:
            self.ram.write(dgpa, bytes(read_len))
            bufs.append((dgpa, read_len, True))
        sgpa = dgpa + max(len(data or b""), read_len) + 4096
        self.ram.write(sgpa, b"\xee")
        bufs.append((sgpa, 1, True))
        head = ring.add_chain(bufs)
        if submit:
            self.kick(q)
        return head, dgpa, sgpa

    def run(self, q, rtype, sector, data=None, read_len=0, at=DATA):
        ring = self.rings[q]
        head, dgpa, sgpa = self.request(q, rtype, sector, data, read_len, at)
        want = (ring.used_seen + 1) & 0xffff
        wait_used(ring, want)
        ring.used_seen = want
        uid, ulen = ring.used_elem(want - 1)
        assert uid == head, (uid, head)
        status = self.ram.read(sgpa, 1)[0]
        return status, ulen, self.ram.read(dgpa, read_len) if read_len else None

    def close(self):
        self.fe.close()
        for fd in list(self.kicks.values()) + list(self.calls.values()):
            os.close(fd)
        os.close(self.ram.fd)


def qemu_io_read(offset, length, pattern):
    r = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", "-c",
                        f"read -P 0x{pattern:02x} {offset} {length}", IMG],
                       capture_output=True, text=True)
    return r.returncode == 0 and "Pattern verification failed" not in r.stdout, r.stdout


def served():
    """A new frontend gets answers: the daemon survived and accepts again."""
    alive()
    fe = Frontend(SOCK)
    f = fe.call_u64(GET_FEATURES)
    fe.close()
    assert f >> VIRTIO_F_VERSION_1 & 1


# ---- negotiation and configuration ----

def test_negotiation():
    s = Session(setup_mem=False)
    assert s.features >> F_PROTOCOL_FEATURES & 1
    assert s.features >> VHOST_F_LOG_ALL & 1
    assert s.features >> VIRTIO_F_VERSION_1 & 1
    assert s.pf == WANT_PF, hex(s.pf)
    assert s.nq == 2
    assert s.fe.call_u64(GET_MAX_MEM_SLOTS) >= 8
    assert s.fe.ack(SET_STATUS, u64(0x0f)) == 0
    assert s.fe.call_u64(GET_STATUS) == 0x0f
    cfg, _ = s.fe.call(GET_CONFIG, struct.pack("<III", 0, 60, 0) + bytes(60))
    assert len(cfg) == 72
    capacity, = struct.unpack_from("<Q", cfg, 12)
    assert capacity == (64 << 20) // 512
    seg_max, = struct.unpack_from("<I", cfg, 12 + 12)
    blk_size, = struct.unpack_from("<I", cfg, 12 + 20)
    nq, = struct.unpack_from("<H", cfg, 12 + 34)
    max_discard, = struct.unpack_from("<I", cfg, 12 + 36)
    max_wz, = struct.unpack_from("<I", cfg, 12 + 48)
    assert (blk_size, nq) == (512, 2) and seg_max > 0 and max_discard > 0 and max_wz > 0
    # GET_CONFIG past the config space: an empty reply is the error
    cfg, _ = s.fe.call(GET_CONFIG, struct.pack("<III", 40, 60, 0) + bytes(60))
    assert len(cfg) == 0
    # SET_CONFIG writes only the writeback byte
    assert s.fe.ack(SET_CONFIG, struct.pack("<III", 32, 1, 0) + b"\x00") == 0
    cfg, _ = s.fe.call(GET_CONFIG, struct.pack("<III", 32, 1, 0) + b"\x00")
    assert cfg[12] == 0
    s.close()
    served()


# ---- requests end to end ----

def test_write_flush_read():
    s = Session(rings=(0, 1))
    pattern = bytes([0xab]) * 8192
    st, ulen, _ = s.run(0, T_OUT, 16, data=pattern)
    assert st == 0 and ulen == 1
    st, _, _ = s.run(0, T_FLUSH, 0)
    assert st == 0
    ok, out = qemu_io_read(16 * 512, 8192, 0xab)
    assert ok, out
    # read it back on the second queue (MQ)
    st, ulen, data = s.run(1, T_IN, 16, read_len=8192)
    assert st == 0 and ulen == 8193 and data == pattern
    wait_fd(s.calls[1])
    st, ulen, data = s.run(0, T_GET_ID, 0, read_len=20)
    assert st == 0
    # past the end of the disk: an I/O error, not a crash
    st, _, _ = s.run(0, T_IN, (64 << 20) // 512, read_len=512)
    assert st == 1
    # unknown request type: unsupported
    st, _, _ = s.run(0, 77, 0)
    assert st == 2
    s.close()
    served()


def test_get_vring_base_and_resume():
    s = Session()
    for i in range(3):
        assert s.run(0, T_OUT, i * 8, data=bytes([0x11 + i]) * 4096)[0] == 0
    reply, _ = s.fe.call(GET_VRING_BASE, state(0, 0))
    idx, base = struct.unpack("<II", reply)
    assert (idx, base) == (0, 3)
    # a new frontend resumes the same ring at that base
    ring, ram = s.rings[0], s.ram
    s.fe.close()
    time.sleep(0.1)
    s2 = Session(setup_mem=False)
    s2.ram, s2.rings = ram, {0: ring}
    s2.fe.do(SET_MEM_TABLE, mem_table([(0, ram.size, UVA_BASE, 0)]), [ram.fd])
    s2.ring_setup(0, base=base)
    assert s2.run(0, T_OUT, 64, data=b"\x44" * 4096)[0] == 0
    assert ring.used_idx() == 4
    s2.run(0, T_FLUSH, 0)
    for i in range(3):
        ok, out = qemu_io_read(i * 4096, 4096, 0x11 + i)
        assert ok, out
    assert qemu_io_read(64 * 512, 4096, 0x44)[0]
    s2.close()


def test_polling_without_kick_fd():
    s = Session(kick_nofd=True)
    st, _, data = s.run(0, T_IN, 0, read_len=4096)     # nobody kicks: the daemon polls
    assert st == 0
    s.close()
    served()


# ---- dirty log ----

def test_dirty_log_marks_written_pages():
    s = Session(features_extra=1 << VHOST_F_LOG_ALL)
    logfd = os.memfd_create("vu-log")
    log_size = s.ram.size // 4096 // 8
    os.ftruncate(logfd, log_size)
    reply, rfds = s.fe.call(SET_LOG_BASE, struct.pack("<QQ", log_size, 0), [logfd])
    assert struct.unpack("<Q", reply)[0] == 0
    ring = s.rings[0]
    s.ring_setup(0, flags=VRING_F_LOG, log=ring.used)    # logging on a running ring
    at = 0x300000
    head, dgpa, sgpa = s.request(0, T_IN, 0, read_len=3 * 4096, at=at)
    wait_used(ring, 1)
    log = os.pread(logfd, log_size, 0)
    dirty = {i * 8 + b for i, byte in enumerate(log) for b in range(8) if byte >> b & 1}
    want = {p for p in range(dgpa // 4096, (dgpa + 3 * 4096 - 1) // 4096 + 1)}
    want |= {sgpa // 4096}
    want |= set(range(ring.used // 4096, (ring.end - 1) // 4096 + 1))
    assert dirty == want, (sorted(dirty), sorted(want))
    # the header (device-readable) page is not dirty
    assert at // 4096 not in dirty
    os.close(logfd)
    s.close()


def test_logging_switched_on_with_requests_in_flight():
    """Re-sent ring addresses (how QEMU turns logging on for a migration) keep
    the ring running: requests in flight then are completed once each, not
    taken for a dead daemon's leftovers and done again."""
    log_start = len(log_text())
    s = Session(setup_mem=False)
    size, fd = inflight_area(s)
    s.fe.do(SET_MEM_TABLE, mem_table([(0, s.ram.size, UVA_BASE, 0)]), [s.ram.fd])
    s.fe.do(SET_INFLIGHT_FD, struct.pack("<QQHH", size, 0, 2, 128), [fd])
    ring = s.ring_setup(0)
    logfd = os.memfd_create("vu-log")
    log_size = s.ram.size // 4096 // 8
    os.ftruncate(logfd, log_size)
    s.fe.send(SET_FEATURES, u64(s.features | 1 << VHOST_F_LOG_ALL))
    s.fe.call(SET_LOG_BASE, struct.pack("<QQ", log_size, 0), [logfd])
    heads = []
    for rnd in range(4):
        n = 40
        base = ring.used_idx()
        for i in range(n):
            heads.append(s.request(0, T_OUT, 128 * i, data=bytes([i + 1]) * 65536,
                                   at=0x100000 + i * 0x20000, submit=False)[0])
        s.kick(0)
        # logging off and on again, as QEMU does around a migration
        s.fe.do(SET_VRING_ADDR, vring_addr(ring, VRING_F_LOG if rnd % 2 == 0 else 0, ring.used))
        wait_used(ring, base + n)
        time.sleep(0.2)
        assert ring.used_idx() == base + n, ("requests done twice", ring.used_idx(), base + n)
        done = [ring.used_elem(base + i)[0] for i in range(n)]
        assert sorted(done) == sorted(heads[-n:]), done
    assert "resubmitting" not in log_text()[log_start:]
    alive()
    os.close(logfd)
    os.close(fd)
    s.close()


# ---- inflight ----

def inflight_area(s, queues=2, qsize=128):
    # QEMU sends (and expects) the naturally aligned 24 bytes
    reply, fds = s.fe.call(GET_INFLIGHT_FD, struct.pack("<QQHHI", 0, 0, queues, qsize, 0))
    size, offset, nq, qs, _ = struct.unpack("<QQHHI", reply)
    assert len(fds) == 1 and size > 0 and offset == 0
    return size, fds[0]


def queue_hdr(area, q, size_per_q):
    return struct.unpack_from("<QHHHH", area, q * size_per_q)


def test_inflight_area_contents():
    s = Session(setup_mem=False)
    size, fd = inflight_area(s)
    per_q = size // 2
    assert per_q >= 16 + 16 * 128 and per_q % 64 == 0
    area = os.pread(fd, size, 0)
    for q in range(2):
        features, version, desc_num, last_batch, used_idx = queue_hdr(area, q, per_q)
        assert (version, desc_num, used_idx) == (1, 128, 0)
    s.fe.do(SET_MEM_TABLE, mem_table([(0, s.ram.size, UVA_BASE, 0)]), [s.ram.fd])
    s.fe.do(SET_INFLIGHT_FD, struct.pack("<QQHH", size, 0, 2, 128), [fd])
    s.ring_setup(0)
    for i in range(4):
        assert s.run(0, T_OUT, i, data=b"\x5a" * 512)[0] == 0
    area = os.pread(fd, size, 0)
    _, _, _, _, used_idx = queue_hdr(area, 0, per_q)
    assert used_idx == 4
    flags = [area[16 + 16 * h] for h in range(128)]
    assert not any(flags), "completed requests still flagged in flight"
    # each request is a chain of three descriptors: heads 0, 3, 6, 9
    counters = [struct.unpack_from("<Q", area, 16 + 16 * h + 8)[0] for h in (0, 3, 6, 9)]
    assert counters == sorted(set(counters)), counters
    os.close(fd)
    s.close()


def test_inflight_resubmitted_after_restart():
    """A request the old daemon had taken but not finished is done once by the new one."""
    s = Session(setup_mem=False)
    size, fd = inflight_area(s)
    s.close()
    stop_daemon()
    start_daemon()
    ram = GuestRam()
    ring = Ring(ram, 0, 0x10000)
    # what a crashed daemon leaves behind: head 0 (a write) taken and flagged in
    # flight; head 2 (a write) completed into the used ring but its flag not yet
    # cleared; the frontend rewound last_avail to the used index (1).
    s = Session(setup_mem=False)
    s.ram, s.rings = ram, {0: ring}
    s.request(0, T_OUT, 100, data=b"\x77" * 512, at=DATA, submit=False)
    s.request(0, T_OUT, 200, data=b"\x66" * 512, at=DATA + 0x10000, submit=False)
    ram.write(ring.used + 4, struct.pack("<II", 2, 1))
    ram.put16(ring.used + 2, 1)
    ring.used_seen = 1
    struct_at = 16 + 16 * 0
    os.pwrite(fd, b"\x01", struct_at)
    os.pwrite(fd, struct.pack("<Q", 5), struct_at + 8)
    os.pwrite(fd, b"\x01", 16 + 16 * 2)
    os.pwrite(fd, struct.pack("<Q", 6), 16 + 16 * 2 + 8)
    s.fe.do(SET_MEM_TABLE, mem_table([(0, ram.size, UVA_BASE, 0)]), [ram.fd])
    s.fe.do(SET_INFLIGHT_FD, struct.pack("<QQHH", size, 0, 2, 128), [fd])
    s.ring_setup(0, base=1)
    wait_used(ring, 2)
    assert ring.used_elem(1)[0] == 0, ring.used_elem(1)
    time.sleep(0.2)
    assert ring.used_idx() == 2, "a request was done twice"
    ring.used_seen = 2
    # the next new request is taken from avail entry 2
    assert s.run(0, T_FLUSH, 0, at=DATA + 0x20000)[0] == 0
    assert ring.used_idx() == 3
    ok, out = qemu_io_read(100 * 512, 512, 0x77)
    assert ok, out
    area = os.pread(fd, size, 0)
    assert not any(area[16 + 16 * h] for h in range(128))
    os.close(fd)
    s.close()


# ---- memory slots ----

def test_add_and_remove_memory_regions():
    s = Session(setup_mem=False)
    ram = s.ram
    half = ram.size // 2
    mr = lambda gpa, size, off: u64(0) + region(gpa, size, UVA_BASE + gpa, off)  # noqa: E731
    assert s.fe.ack(ADD_MEM_REG, mr(0, half, 0), [ram.fd]) == 0
    assert s.fe.ack(ADD_MEM_REG, mr(half, half, half), [ram.fd]) == 0
    # overlapping the first region: refused
    assert s.fe.ack(ADD_MEM_REG, mr(0x1000, 0x1000, 0), [ram.fd]) != 0
    s.ring_setup(0)
    # a buffer in the second region
    assert s.run(0, T_IN, 0, read_len=4096, at=half + 0x1000)[0] == 0
    reply, _ = s.fe.call(GET_VRING_BASE, state(0, 0))
    assert s.fe.ack(REM_MEM_REG, mr(half, half, half), [ram.fd]) == 0
    assert s.fe.ack(REM_MEM_REG, mr(half, half, half), [ram.fd]) != 0
    s.close()
    served()


# ---- hostile frontends ----

def hostile(fn, dropped):
    before = log_text()
    s = Session(setup_mem=False)
    fn(s)
    if dropped:
        s.fe.expect_drop()
        assert "frontend dropped" in log_text()[len(before):], log_text()[len(before):]
    s.close()
    served()


def test_hostile_wrong_size():
    hostile(lambda s: s.fe.send(SET_FEATURES, b"\0" * 4), True)


def test_hostile_wrong_size_with_ack():
    hostile(lambda s: s.fe.ack(SET_VRING_NUM, b"\0" * 4) == 1 or 1 / 0, False)


def test_hostile_unknown_request():
    hostile(lambda s: s.fe.send(99, u64(0)), True)
    hostile(lambda s: s.fe.ack(99, u64(0)) == 1 or 1 / 0, False)


def test_hostile_too_many_fds():
    def fn(s):
        fds = [os.eventfd(0) for _ in range(12)]
        s.fe.send(SET_VRING_CALL, u64(0), fds)
        for fd in fds:
            os.close(fd)
    hostile(fn, True)


def test_hostile_overlapping_regions():
    def fn(s):
        t = mem_table([(0, 1 << 20, UVA_BASE, 0), (0x80000, 1 << 20, UVA_BASE + (4 << 20), 0)])
        assert s.fe.ack(SET_MEM_TABLE, t, [s.ram.fd, s.ram.fd]) != 0
        # wrapping and past the end of the file
        t = mem_table([(0xfffffffffffff000, 0x2000, UVA_BASE, 0)])
        assert s.fe.ack(SET_MEM_TABLE, t, [s.ram.fd]) != 0
        t = mem_table([(0, s.ram.size * 2, UVA_BASE, 0)])
        assert s.fe.ack(SET_MEM_TABLE, t, [s.ram.fd]) != 0
        # fewer fds than regions
        t = mem_table([(0, 1 << 20, UVA_BASE, 0)])
        assert s.fe.ack(SET_MEM_TABLE, t, []) != 0
    hostile(fn, False)


def test_hostile_ring_outside_memory():
    def fn(s):
        s.fe.do(SET_MEM_TABLE, mem_table([(0, 1 << 20, UVA_BASE, 0)]), [s.ram.fd])
        assert s.fe.ack(SET_VRING_NUM, state(0, 128)) == 0
        # used ring straddles the end of the only region
        a = struct.pack("<IIQQQQ", 0, 0, UVA_BASE, UVA_BASE + (1 << 20) - 16,
                        UVA_BASE + 0x1000, 0)
        assert s.fe.ack(SET_VRING_ADDR, a) == 0     # each start is inside...
        kick = os.eventfd(0)
        assert s.fe.ack(SET_VRING_KICK, u64(0), [kick]) != 0   # ...the ring is not
        os.close(kick)
        a = struct.pack("<IIQQQQ", 0, 0, 0x1000, 0x2000, 0x3000, 0)
        assert s.fe.ack(SET_VRING_ADDR, a) != 0     # not frontend addresses at all
    hostile(fn, False)


def test_hostile_changes_under_a_running_ring():
    s = Session()
    ring = s.rings[0]
    # a bigger ring size than the mapped one: refused while the ring runs
    assert s.fe.ack(SET_VRING_NUM, state(0, 1024)) != 0
    assert s.run(0, T_IN, 0, read_len=512)[0] == 0
    # a failing new memory table leaves the ring stopped, not pointing at freed memory
    t = mem_table([(0, s.ram.size * 2, UVA_BASE, 0)])
    assert s.fe.ack(SET_MEM_TABLE, t, [s.ram.fd]) != 0
    s.request(0, T_IN, 0, read_len=512)
    time.sleep(0.3)
    assert ring.used_idx() == 1
    alive()
    # a good table again: the frontend restarts the ring and it resumes
    s.fe.do(SET_MEM_TABLE, mem_table([(0, s.ram.size, UVA_BASE, 0)]), [s.ram.fd])
    kick = os.eventfd(0)
    s.fe.do(SET_VRING_KICK, u64(0), [kick])
    os.eventfd_write(kick, 1)
    wait_used(ring, 2)
    os.close(kick)
    s.close()
    served()


def test_hostile_bad_descriptor_drops():
    def fn(s):
        s.fe.do(SET_MEM_TABLE, mem_table([(0, s.ram.size, UVA_BASE, 0)]), [s.ram.fd])
        s.ring_setup(0)
        ring = s.rings[0]
        ring.add_chain([(s.ram.size - 8, 64, False)])   # buffer past guest memory
        s.kick(0)
    hostile(fn, True)


def test_hostile_queue_index_out_of_range():
    hostile(lambda s: s.fe.ack(SET_VRING_NUM, state(7, 128)) != 0 or 1 / 0, False)
    hostile(lambda s: s.fe.send(GET_VRING_BASE, state(200, 0)), True)
    hostile(lambda s: s.fe.ack(SET_VRING_CALL, u64(200 | NOFD)) != 0 or 1 / 0, False)


def test_hostile_huge_size_field():
    hostile(lambda s: s.fe.send(SET_MEM_TABLE, b"", size=100 << 20), True)


def test_hostile_dropped_connection():
    def fn(s):
        s.fe.send(SET_MEM_TABLE, b"\x01\x00")   # half a message, then gone
    s = Session(setup_mem=False)
    fn(s)
    s.close()
    served()
    s = Session()
    s.request(0, T_IN, 0, read_len=1 << 20)
    s.close()                                   # gone with a request in flight
    served()


def test_queue_of_frontends():
    """One frontend at a time: the second is served after the first leaves."""
    a = Frontend(SOCK)
    assert a.call_u64(GET_QUEUE_NUM) == 2
    b = Frontend(SOCK)
    b.send(GET_QUEUE_NUM)
    b.sock.settimeout(0.5)
    try:
        b.recv()
        raise AssertionError("a second frontend was served at the same time")
    except TimeoutError:
        pass
    a.close()
    b.sock.settimeout(10)
    req, payload, _ = b.recv()
    assert struct.unpack("<Q", payload)[0] == 2
    b.close()


def test_fd_socket_raw_read_only():
    """addr.type=fd with a raw node exported read-only: reads work, writes fail."""
    raw = os.path.join(TMP, "ro.raw")
    with open(raw, "wb") as f:
        f.write(b"\x3c" * (1 << 20))
    path = os.path.join(TMP, "fd.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)
    fd = lsock.fileno()
    d = subprocess.Popen(
        [vtest.binary("vireo-storage-daemon"),
         "--blockdev", f"file,node-name=f1,filename={raw},read-only=on",
         "--blockdev", "raw,node-name=r1,file=f1",
         "--export", f"vhost-user-blk,id=e1,node-name=r1,addr.type=fd,addr.str={fd},"
                     "logical-block-size=4096"],
        pass_fds=[fd], stderr=open(LOG, "a"))
    lsock.close()
    global SOCK
    saved, SOCK = SOCK, path
    try:
        s = Session()
        assert s.features >> 5 & 1, "read-only export without VIRTIO_BLK_F_RO"
        cfg, _ = s.fe.call(GET_CONFIG, struct.pack("<III", 20, 4, 0) + bytes(4))
        assert struct.unpack_from("<I", cfg, 12)[0] == 4096
        st, _, data = s.run(0, T_IN, 8, read_len=4096)
        assert st == 0 and data == b"\x3c" * 4096
        st, _, _ = s.run(0, T_OUT, 8, data=b"\x00" * 4096)
        assert st == 1
        s.close()
    finally:
        SOCK = saved
        d.terminate()
        assert d.wait(10) == 0
    assert open(raw, "rb").read() == b"\x3c" * (1 << 20)


def test_command_line_errors():
    sd = vtest.binary("vireo-storage-daemon")
    cases = [
        (["--blockdev", "driver=file,node-name=f,filename=/nonexistent/x"], "Could not open"),
        (["--blockdev", "driver=qcow2,node-name=d,file=nope"],
         "Cannot find device='nope' nor node-name='nope'"),   # qemu-storage-daemon's words
        (["--export", "type=vhost-user-blk,id=e,node-name=nope,addr.type=unix,addr.path=/tmp/x"],
         "Cannot find"),
        (["--export", "type=fuse,id=e,node-name=n"], "type"),
        (["--blockdev", f"driver=file,node-name=f,filename={IMG}", "--export",
          "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=/tmp/x,num-queues=0"],
         "num-queues"),
        (["--object", "memory-backend-ram,id=m,size=1M"], "not supported"),
        (["--monitor", "chardev=c0"], "not found"),
        (["--chardev", "socket,id=c0,path=/tmp/x,server=on,wait=on"], "wait=off"),
        (["--bogus"], "unrecognized"),
    ]
    for args, text in cases:
        r = subprocess.run([sd] + args, capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and text in r.stderr, (args, r.returncode, r.stderr)
    r = subprocess.run([sd, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "vireo-storage-daemon" in r.stdout


def test_requests_over_several_clusters():
    """Reads and overwrites spanning 64 KiB clusters, on clusters that lie back
    to back in the file (one host request) and on clusters in reverse order
    (the general path): the data is right either way."""
    stop_daemon()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", IMG, "64M"], check=True)
    cmds = ["write -P 0x31 0 1M"]                                        # contiguous
    cmds += [f"write -P {0x40 + i} {(2 << 20) + i * 65536} 64k" for i in reversed(range(16))]
    r = subprocess.run(["qemu-io", "-f", "qcow2"] + sum((["-c", c] for c in cmds), []) + [IMG],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    start_daemon(fresh=False)
    s = Session()
    st, _, data = s.run(0, T_IN, 32768 // 512, read_len=256 * 1024, at=0x100000)
    assert st == 0 and data == b"\x31" * (256 * 1024)
    st, _, data = s.run(0, T_IN, ((2 << 20) + 32768) // 512, read_len=256 * 1024, at=0x100000)
    want = b"".join(bytes([0x40 + ((32768 + o) >> 16)]) for o in range(256 * 1024))
    assert st == 0 and data == want
    # overwrites across cluster boundaries, both layouts
    assert s.run(0, T_OUT, 65536 // 512 - 1, data=b"\x77" * (128 * 1024))[0] == 0
    assert s.run(0, T_OUT, ((2 << 20) + 65536) // 512 - 1, data=b"\x78" * (128 * 1024))[0] == 0
    s.close()
    stop_daemon()
    for off, pat in ((65536 - 512, 0x77), ((2 << 20) + 65536 - 512, 0x78)):
        ok, out = qemu_io_read(off, 128 * 1024, pat)
        assert ok, out
    ok, out = qemu_io_read((2 << 20) + 65536 - 512 + 128 * 1024, 512, 0x42)
    assert ok, out
    r = subprocess.run(["qemu-img", "check", IMG], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    start_daemon()


def test_export_writes_mark_a_persistent_bitmap():
    """An enabled persistent bitmap of the image is live while exported
    (in_use on disk), marks exactly what the frontend wrote, and is stored
    back, in_use cleared, when the daemon exits cleanly."""
    stop_daemon()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", IMG, "64M"], check=True)
    subprocess.run(["qemu-img", "bitmap", "--add", "--granularity", "65536", IMG, "b0"],
                   check=True)
    start_daemon(fresh=False)
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", IMG],
                                     capture_output=True, text=True).stdout)
    bm = info["format-specific"]["data"]["bitmaps"][0]
    assert "in-use" in bm["flags"], bm
    s = Session()
    assert s.run(0, T_OUT, 3 * 128, data=b"\x11" * 4096)[0] == 0         # cluster 3
    assert s.run(0, T_OUT, 10 * 128 + 1, data=b"\x22" * 512)[0] == 0     # inside cluster 10
    assert s.run(0, T_IN, 20 * 128, read_len=4096)[0] == 0               # reads mark nothing
    s.close()
    stop_daemon()
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", IMG],
                                     capture_output=True, text=True).stdout)
    bm = info["format-specific"]["data"]["bitmaps"][0]
    assert bm["name"] == "b0" and "in-use" not in bm["flags"], bm
    assert dirty_extents(IMG, "b0") == [(3 << 16, 1 << 16), (10 << 16, 1 << 16)]
    r = subprocess.run(["qemu-img", "check", IMG], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    start_daemon()


def test_image_consistent():
    stop_daemon()
    r = subprocess.run(["qemu-img", "check", IMG], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    start_daemon()


if __name__ == "__main__":
    start_daemon()
    try:
        vtest.main()
    finally:
        daemon.kill()
        daemon.wait()
        if os.environ.get("VU_KEEP_LOG"):
            print(open(LOG).read())
