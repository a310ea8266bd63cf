#!/usr/bin/env python3
"""Devices of the vireo-pc machine driven over qtest (no guest CPU needed):
fw_cfg (ports and DMA), RTC, i8042 reset, ACPI power-off and power button,
the PCI host bridge, the serial port, and garbage on every port.
"""
import os
import random
import struct
import sys
import tempfile

import vmm
import vtest

FW_CFG = 0x510
FW_DMA = 0x514
CTL_ERROR, CTL_READ, CTL_SKIP, CTL_SELECT, CTL_WRITE = 1, 2, 4, 8, 0x10
RAM = 64 << 20


def bswap32(v):
    return struct.unpack("<I", struct.pack(">I", v))[0]


def start(*args):
    return vmm.Vireo("-m", "64M", *args, qtest=True)


def fw_select(q, key):
    q.outw(FW_CFG, key)


def fw_read(q, key, n):
    fw_select(q, key)
    return bytes(q.inb(FW_CFG + 1) for _ in range(n))


def fw_files(q):
    fw_select(q, 0x19)
    count = struct.unpack(">I", bytes(q.inb(FW_CFG + 1) for _ in range(4)))[0]
    files = {}
    for _ in range(count):
        e = bytes(q.inb(FW_CFG + 1) for _ in range(64))
        size, sel = struct.unpack(">IH", e[:6])
        files[e[8:].split(b"\0")[0].decode()] = (sel, size)
    return files


def fw_dma(q, control, length, addr, desc=0x1000):
    """Run one DMA descriptor the way Linux does (two 32-bit big-endian writes)."""
    q.memwrite(desc, struct.pack(">IIQ", control, length, addr))
    q.outl(FW_DMA, bswap32(desc >> 32))
    q.outl(FW_DMA + 4, bswap32(desc & 0xffffffff))
    return struct.unpack(">I", q.memread(desc, 4))[0]


def test_fw_cfg_signature_id_and_items():
    with start("-smp", "1", "-fw_cfg", "opt/vireo/test,string=hello") as v:
        q = v.qtest
        assert fw_read(q, 0, 4) == b"QEMU"
        assert struct.unpack("<I", fw_read(q, 1, 4))[0] == 3      # traditional + DMA
        assert struct.unpack("<Q", fw_read(q, 3, 8))[0] == RAM    # RAM size
        assert struct.unpack("<H", fw_read(q, 5, 2))[0] == 1      # CPUs
        # "QEMU CFG" in big-endian from the DMA address register.
        assert struct.pack("<II", q.inl(FW_DMA), q.inl(FW_DMA + 4)) == b"QEMU CFG"
        files = fw_files(q)
        sel, size = files["opt/vireo/test"]
        assert size == 5 and sel >= 0x20
        assert fw_read(q, sel, 5) == b"hello"


def test_fw_cfg_dma_read_skip_write_errors():
    data = bytes(random.Random(1).randrange(256) for _ in range(4096))
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        with start("-fw_cfg", f"name=opt/bin,file={f.name}") as v:
            q = v.qtest
            sel, size = fw_files(q)["opt/bin"]
            assert size == len(data)
            # select + read
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_READ, 100, 0x2000) == 0
            assert q.memread(0x2000, 100) == data[:100]
            # skip, then read on from the new offset
            assert fw_dma(q, CTL_SKIP, 1000, 0) == 0
            assert fw_dma(q, CTL_READ, 50, 0x3000) == 0
            assert q.memread(0x3000, 50) == data[1100:1150]
            # write to a read-only item: error bit
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_WRITE, 4, 0x2000) == CTL_ERROR
            # buffers outside RAM, straddling its end, wrapping around 2^64
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_READ, 16, RAM + 0x1000) == CTL_ERROR
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_READ, 16, RAM - 8) == CTL_ERROR
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_READ, 64, (1 << 64) - 32) == CTL_ERROR
            # Refused whole: six bytes are left in the item and would fit in RAM,
            # but the 16-byte buffer does not, so RAM keeps what it had.
            q.memwrite(RAM - 8, b"\xa5" * 8)
            assert fw_dma(q, sel << 16 | CTL_SELECT, 0, 0) == 0
            assert fw_dma(q, CTL_SKIP, len(data) - 6, 0) == 0
            assert fw_dma(q, CTL_READ, 16, RAM - 8) == CTL_ERROR
            assert q.memread(RAM - 8, 8) == b"\xa5" * 8
            # a descriptor outside RAM: nothing to report into, and nothing breaks
            q.outl(FW_DMA, bswap32(0x7fffffff))
            q.outl(FW_DMA + 4, bswap32(0xfffff000))
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_READ, 8, 0x2000) == 0
            assert q.memread(0x2000, 8) == data[:8]


def test_fw_cfg_dma_several_mib():
    data = os.urandom(5 << 20)
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        with start("-fw_cfg", f"opt/big,file={f.name}") as v:
            q = v.qtest
            sel, size = fw_files(q)["opt/big"]
            assert size == len(data)
            assert fw_dma(q, sel << 16 | CTL_SELECT | CTL_READ, len(data), 0x100000) == 0
            chunk = 256 << 10
            for off in range(0, len(data), chunk):
                assert q.memread(0x100000 + off, chunk) == data[off:off + chunk], off


def expect_start_error(args, needle):
    rc, out, err = vmm.run("-accel", "qtest", "-display", "none", *args, timeout=20)
    assert rc != 0, f"{args} was accepted"
    assert needle in err, f"{args}: {err!r} lacks {needle!r}"
    assert "AddressSanitizer" not in err


def test_fw_cfg_option_errors():
    expect_start_error(["-fw_cfg", "opt/" + "x" * 60 + ",string=a"], "too long")
    expect_start_error(["-fw_cfg", "opt/a,string=1", "-fw_cfg", "opt/a,string=2"], "duplicate")
    expect_start_error(["-fw_cfg", "opt/a,file=/nonexistent"], "/nonexistent")
    expect_start_error(["-fw_cfg", "opt/a,file=/tmp"], "not a regular file")
    # A name outside opt/ works but is warned about.
    rc, out, err = vmm.run("-accel", "qtest", "-display", "none", "-fw_cfg", "x,string=1",
                           "-qmp", "stdio", input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n')
    assert rc == 0, err
    assert "opt/" in err


def test_rtc_reads_time_and_set_emits_rtc_change():
    with start("-rtc", "base=2020-01-02T03:04:05") as v:
        q = v.qtest
        qmp = v.qmp()

        def cmos(i):
            q.outb(0x70, i)
            return q.inb(0x71)

        bcd = lambda b: (b >> 4) * 10 + (b & 15)
        assert (bcd(cmos(9)), bcd(cmos(8)), bcd(cmos(7))) == (20, 1, 2)
        assert bcd(cmos(0x32)) == 20
        assert bcd(cmos(4)) == 3
        # Set the clock one year later the way Linux does: SET, write, clear SET.
        q.outb(0x70, 0x0b)
        b = q.inb(0x71)
        q.outb(0x70, 0x0b)
        q.outb(0x71, b | 0x80)
        q.outb(0x70, 9)
        q.outb(0x71, 0x21)
        q.outb(0x70, 0x0b)
        q.outb(0x71, b & 0x7f)
        ev = qmp.wait_event("RTC_CHANGE", timeout=10)
        off = ev["data"]["offset"]
        assert abs(off - 366 * 86400) < 5, ev
        assert ev["data"]["qom-path"].startswith("/machine")
        assert bcd(cmos(9)) == 21


def test_rtc_change_is_rate_limited():
    with start() as v:
        q = v.qtest
        qmp = v.qmp()
        for year in (0x30, 0x31, 0x32, 0x33):
            q.outb(0x70, 9)
            q.outb(0x71, year)          # writing a time register while running sets the time
        first = qmp.wait_event("RTC_CHANGE", timeout=10)["data"]["offset"]
        last = qmp.wait_event("RTC_CHANGE", timeout=10)["data"]["offset"]
        # The burst gives the first report at once and only the latest one later.
        assert last - first > 2 * 365 * 86400, (first, last)
        try:
            extra = qmp.wait_event("RTC_CHANGE", timeout=2)
            raise AssertionError(f"unexpected third RTC_CHANGE {extra}")
        except TimeoutError:
            pass


def test_i8042_reset_and_no_reboot():
    with start() as v:
        qmp = v.qmp()
        v.qtest.outb(0x64, 0xfe)
        ev = qmp.wait_event("RESET")
        assert ev["data"] == {"guest": True, "reason": "guest-reset"}
    with start("-no-reboot") as v:
        qmp = v.qmp()
        v.qtest.outb(0x64, 0xfe)
        ev = qmp.wait_event("SHUTDOWN")
        assert ev["data"] == {"guest": True, "reason": "guest-reset"}
        assert v.wait() == 0
    # A reset asked for on the monitor is a shutdown too (QEMU 7.2 does the same).
    with start("-no-reboot") as v:
        qmp = v.qmp()
        qmp.cmd("system_reset")
        ev = qmp.wait_event("SHUTDOWN")
        assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
        assert v.wait() == 0


def test_acpi_poweroff_and_power_button():
    with start() as v:
        q = v.qtest
        qmp = v.qmp()
        # Power button: status bit 8 appears; with the enable bit the SCI (GSI 9) rises.
        q.ok("irq_intercept_in ioapic")
        q.outw(0x602, 0x100)
        qmp.cmd("system_powerdown")
        qmp.wait_event("POWERDOWN")
        assert q.inw(0x600) & 0x100
        assert "IRQ raise 9" in q.irqs, q.irqs
        q.outw(0x600, 0x100)                      # write 1 to clear: the SCI drops
        assert not q.inw(0x600) & 0x100
        assert q.irqs[-1] == "IRQ lower 9", q.irqs
        # S5: SLP_TYP 5 with SLP_EN.
        q.outw(0x604, (5 << 10) | 0x2000)
        ev = qmp.wait_event("SHUTDOWN")
        assert ev["data"] == {"guest": True, "reason": "guest-shutdown"}


def pci_cfg_read(q, slot, reg):
    q.outl(0xcf8, 0x80000000 | slot << 11 | reg)
    return q.inl(0xcfc)


def test_pci_host_bridge():
    with start() as v:
        q = v.qtest
        assert pci_cfg_read(q, 0, 0) == 0x00081b36          # 1b36:0008
        assert pci_cfg_read(q, 0, 8) >> 8 == 0x060000       # host bridge class
        assert pci_cfg_read(q, 1, 0) == 0xffffffff          # empty slot
        q.outl(0xcf8, 0x80000000 | 1 << 16)                 # bus 1 does not exist
        assert q.inl(0xcfc) == 0xffffffff


def test_serial_loopback_and_scratch():
    with start("-serial", "null") as v:
        q = v.qtest
        q.outb(0x3ff, 0x5a)
        assert q.inb(0x3ff) == 0x5a                         # scratch register
        q.outb(0x3fc, 0x10 | 0x0a)                          # loopback, RTS, OUT2
        assert q.inb(0x3fe) & 0xf0 == 0x90                  # CTS and DCD follow
        q.outb(0x3f8, 0x42)                                 # transmit...
        assert q.inb(0x3fd) & 1                             # ...and receive it
        assert q.inb(0x3f8) == 0x42


def test_garbage_on_every_port_and_mmio():
    rnd = random.Random(7)
    with start("-serial", "null", "-no-reboot", "-no-shutdown") as v:
        q = v.qtest
        ports = list(range(0x60, 0x72)) + list(range(0x2e8, 0x400)) + \
            list(range(0x500, 0x520)) + list(range(0x600, 0x610)) + list(range(0xcf8, 0xd00))
        for port in ports:
            for _ in range(3):
                if port in (0x518, 0x514):
                    continue            # DMA descriptors at random addresses: covered above
                op = rnd.choice(["outb", "outw", "outl", "inb", "inw", "inl"])
                if op.startswith("out"):
                    q.ok(f"{op} 0x{port:x} 0x{rnd.getrandbits(32):x}")
                else:
                    q.ok(f"{op} 0x{port:x}")
        for _ in range(200):
            addr = rnd.choice([0xc0000000, 0xfebff000, 0xfec00000, 0xfee00000, 1 << 40]) + rnd.randrange(0x1000)
            q.ok(f"writel 0x{addr:x} 0x{rnd.getrandbits(32):x}")
            q.ok(f"readl 0x{addr:x}")
        # Still alive and answering.
        qmp = v.qmp()
        assert qmp.cmd("query-status")["status"] in ("running", "shutdown", "paused")
        assert fw_read(q, 0, 4) == b"QEMU"


def test_bad_kernel_and_initrd():
    with tempfile.TemporaryDirectory() as d:
        junk = os.path.join(d, "junk")
        with open(junk, "wb") as f:
            f.write(os.urandom(64 << 10))
        expect_start_error(["-kernel", junk], "not a Linux kernel")
        expect_start_error(["-kernel", "/nonexistent/vmlinuz"], "/nonexistent/vmlinuz")
        kernels = [k for k in os.listdir("/boot") if k.startswith("vmlinuz-")]
        if not kernels:
            vtest.skip("no /boot/vmlinuz-*")
        big = os.path.join(d, "big.img")
        with open(big, "wb") as f:
            f.truncate(80 << 20)
        with open(big, "wb") as f:
            f.truncate(120 << 20)
        expect_start_error(["-m", "128M", "-kernel", "/boot/" + kernels[0], "-initrd", big],
                           "does not fit")
        expect_start_error(["-m", "8M", "-kernel", "/boot/" + kernels[0]], "too small")
        expect_start_error(["-initrd", big], "-kernel")


def test_bad_machine_sizes():
    expect_start_error(["-m", "0"], "RAM size")
    expect_start_error(["-m", "512K"], "RAM size")
    expect_start_error(["-m", "4T"], "RAM size")
    expect_start_error(["-smp", "0"], "CPU")
    expect_start_error(["-smp", "255"], "1 to 254 CPUs")  # 255 is the broadcast APIC id
    expect_start_error(["-smp", "100000"], "CPU")
    expect_start_error(["-M", "no-such-machine"], "no-such-machine")


vtest.main()
