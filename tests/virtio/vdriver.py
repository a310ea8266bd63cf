"""A driver-side virtio-pci implementation over the qtest protocol.

Enough of a guest driver to exercise vireo's devices without a guest CPU:
PCI enumeration and BAR programming through the configuration ports, the
modern capabilities (and the legacy I/O BAR), feature negotiation, and split
virtqueues laid out in guest RAM with chains the test builds by hand, good
or deliberately bad.
"""
import struct
import time

VENDOR_VIRTIO = 0x1af4
CAP_VENDOR = 0x09
CAP_MSIX = 0x11

S_ACK, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET, S_FAILED = 1, 2, 4, 8, 0x40, 0x80
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
VERSION_1 = 1 << 32
INDIRECT_DESC = 1 << 28
EVENT_IDX = 1 << 29

# common configuration offsets
DFSELECT, DF, GFSELECT, GF, MSIX_CFG, NUMQ, STATUS, CFGGEN = 0, 4, 8, 12, 16, 18, 20, 21
Q_SELECT, Q_SIZE, Q_MSIX, Q_ENABLE, Q_NOFF = 22, 24, 26, 28, 30
Q_DESC, Q_AVAIL, Q_USED = 32, 40, 48

MMIO_BASE = 0xe0000000
IO_BASE = 0xc000


class Alloc:
    """Bump allocator over guest RAM (the tests own all of it)."""

    def __init__(self, start=0x100000, end=0x4000000):
        self.next, self.end = start, end

    def take(self, size, align=4096):
        addr = (self.next + align - 1) // align * align
        self.next = addr + size
        assert self.next <= self.end, "test ran out of guest RAM"
        return addr


def cfg_addr(slot, off):
    return 0x80000000 | slot << 11 | (off & 0xfc)


class Pci:
    def __init__(self, qt):
        self.qt = qt

    def read(self, slot, off, size=4):
        self.qt.outl(0xcf8, cfg_addr(slot, off))
        port = 0xcfc + (off & 3)
        return {1: self.qt.inb, 2: self.qt.inw, 4: self.qt.inl}[size](port)

    def write(self, slot, off, val, size=4):
        self.qt.outl(0xcf8, cfg_addr(slot, off))
        port = 0xcfc + (off & 3)
        {1: self.qt.outb, 2: self.qt.outw, 4: self.qt.outl}[size](port, val)

    def find(self, vendor=VENDOR_VIRTIO):
        """(slot, device id, subsystem id) for every function of this vendor."""
        found = []
        for slot in range(32):
            v = self.read(slot, 0)
            if v & 0xffff == vendor:
                found.append((slot, v >> 16, self.read(slot, 0x2c) >> 16))
        return found


class Virtqueue:
    def __init__(self, dev, index, size, alloc):
        self.dev, self.index, self.size = dev, index, size
        self.desc = alloc.take(16 * size, 4096)
        self.avail = alloc.take(6 + 2 * size, 2)
        self.used = alloc.take(6 + 8 * size, 4096)
        self.free = list(range(size))
        self.avail_idx = 0
        self.last_used = 0
        qt = dev.qt
        qt.memwrite(self.desc, bytes(16 * size))
        qt.memwrite(self.avail, bytes(6 + 2 * size))
        qt.memwrite(self.used, bytes(6 + 8 * size))

    def write_desc(self, i, addr, length, flags, nxt=0, table=None):
        base = table if table is not None else self.desc
        self.dev.qt.memwrite(base + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def add_chain(self, bufs, indirect_at=None):
        """bufs: [(addr, len, writable)]. Returns the head. indirect_at: RAM for a table."""
        if indirect_at is not None:
            for i, (a, n, w) in enumerate(bufs):
                flags = (F_WRITE if w else 0) | (F_NEXT if i + 1 < len(bufs) else 0)
                self.write_desc(i, a, n, flags, i + 1, table=indirect_at)
            head = self.free.pop(0)
            self.write_desc(head, indirect_at, 16 * len(bufs), F_INDIRECT)
            return self.publish(head)
        ids = [self.free.pop(0) for _ in bufs]
        for k, (a, n, w) in enumerate(bufs):
            last = k + 1 == len(bufs)
            flags = (F_WRITE if w else 0) | (0 if last else F_NEXT)
            self.write_desc(ids[k], a, n, flags, 0 if last else ids[k + 1])
        return self.publish(ids[0])

    def publish(self, head):
        qt = self.dev.qt
        qt.writew(self.avail + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xffff
        qt.writew(self.avail + 2, self.avail_idx)
        return head

    def kick(self):
        self.dev.notify(self.index)

    def used_idx(self):
        return self.dev.qt.readw(self.used + 2)

    def wait_used(self, timeout=10):
        """Next (id, len) from the used ring, waiting for it."""
        deadline = time.monotonic() + timeout
        while self.used_idx() == self.last_used:
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue {self.index}: no used entry")
            time.sleep(0.002)
        off = self.used + 4 + 8 * (self.last_used % self.size)
        vid, n = struct.unpack("<II", self.dev.qt.memread(off, 8))
        self.last_used = (self.last_used + 1) & 0xffff
        if vid < self.size and vid not in self.free:
            self.free.append(vid)
        return vid, n


class VirtioPciDevice:
    """One virtio-pci function, programmed and driven through its modern BAR."""

    def __init__(self, qt, slot, alloc=None):
        self.qt, self.slot = qt, slot
        self.pci = Pci(qt)
        self.alloc = alloc or Alloc()
        self.caps = {}
        self.bar4 = MMIO_BASE + slot * 0x100000
        self.bar1 = self.bar4 + 0x80000
        self.io = IO_BASE + slot * 0x100
        self.queues = {}
        self._program_bars()
        self._read_caps()

    def _program_bars(self):
        p = self.pci
        if p.read(self.slot, 0x10) & 1:
            p.write(self.slot, 0x10, self.io)
        p.write(self.slot, 0x14, self.bar1)
        p.write(self.slot, 0x20, self.bar4 & 0xffffffff)
        p.write(self.slot, 0x24, self.bar4 >> 32)
        p.write(self.slot, 0x04, 0x7, 2)   # I/O, memory, bus master

    def _read_caps(self):
        off = self.pci.read(self.slot, 0x34, 1)
        seen = 0
        while off and seen < 48:
            cap_id = self.pci.read(self.slot, off, 1)
            nxt = self.pci.read(self.slot, off + 1, 1)
            if cap_id == CAP_VENDOR:
                cfg_type = self.pci.read(self.slot, off + 3, 1)
                bar = self.pci.read(self.slot, off + 4, 1)
                offset = self.pci.read(self.slot, off + 8)
                length = self.pci.read(self.slot, off + 12)
                mult = self.pci.read(self.slot, off + 16) if cfg_type == 2 else 0
                self.caps[cfg_type] = (bar, offset, length, mult)
            elif cap_id == CAP_MSIX:
                self.caps["msix"] = off
            off, seen = nxt, seen + 1

    # register access
    def common(self, off):
        return self.bar4 + self.caps[1][1] + off

    def r8(self, off): return self.qt.readb(self.common(off))
    def r16(self, off): return self.qt.readw(self.common(off))
    def r32(self, off): return self.qt.readl(self.common(off))
    def w8(self, off, v): self.qt.writeb(self.common(off), v)
    def w16(self, off, v): self.qt.writew(self.common(off), v)
    def w32(self, off, v): self.qt.writel(self.common(off), v)

    def status(self):
        return self.r8(STATUS)

    def set_status(self, v):
        self.w8(STATUS, v)

    def isr(self):
        return self.qt.readb(self.bar4 + self.caps[3][1])

    def config(self, off, size=1):
        a = self.bar4 + self.caps[4][1] + off
        return {1: self.qt.readb, 2: self.qt.readw, 4: self.qt.readl, 8: self.qt.readq}[size](a)

    def write_config(self, off, v, size=1):
        a = self.bar4 + self.caps[4][1] + off
        {1: self.qt.writeb, 2: self.qt.writew, 4: self.qt.writel}[size](a, v)

    def notify(self, q):
        _, off, _, mult = self.caps[2]
        self.w16(Q_SELECT, q)
        noff = self.r16(Q_NOFF)
        self.qt.writew(self.bar4 + off + noff * mult, q)

    def host_features(self):
        f = 0
        for sel in (0, 1):
            self.w32(DFSELECT, sel)
            f |= self.r32(DF) << (32 * sel)
        return f

    def negotiate(self, want=None):
        """Reset, offer what we want (default: everything offered). Returns status."""
        self.set_status(0)
        self.set_status(S_ACK)
        self.set_status(S_ACK | S_DRIVER)
        feats = self.host_features() if want is None else want
        for sel in (0, 1):
            self.w32(GFSELECT, sel)
            self.w32(GF, (feats >> (32 * sel)) & 0xffffffff)
        self.set_status(S_ACK | S_DRIVER | S_FEATURES_OK)
        self.features = feats
        return self.status()

    def setup_queue(self, index, size=None):
        self.w16(Q_SELECT, index)
        size = size or self.r16(Q_SIZE)
        self.w16(Q_SIZE, size)
        vq = Virtqueue(self, index, size, self.alloc)
        for off, addr in ((Q_DESC, vq.desc), (Q_AVAIL, vq.avail), (Q_USED, vq.used)):
            self.w32(off, addr & 0xffffffff)
            self.w32(off + 4, addr >> 32)
        self.w16(Q_ENABLE, 1)
        self.queues[index] = vq
        return vq

    def driver_ok(self):
        self.set_status(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)

    def init(self, queues=(0,), want=None):
        st = self.negotiate(want)
        assert st & S_FEATURES_OK, f"FEATURES_OK refused: status 0x{st:x}"
        vqs = [self.setup_queue(q) for q in queues]
        self.driver_ok()
        return vqs
