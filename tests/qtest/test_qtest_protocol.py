"""The qtest accelerator: QEMU's line protocol against vireo's RAM and
buses, with hostile input answered by FAIL lines."""
import base64
import os

import vmm
import vtest


def test_ram_access_all_widths():
    with vmm.Vireo("-m", "64M", qtest=True) as v:
        t = v.qtest
        t.writeb(0x1000, 0xab)
        t.writew(0x1002, 0xbeef)
        t.writel(0x1004, 0x12345678)
        t.writeq(0x1008, 0x1122334455667788)
        assert t.readb(0x1000) == 0xab
        assert t.readw(0x1002) == 0xbeef
        assert t.readl(0x1004) == 0x12345678
        assert t.readq(0x1008) == 0x1122334455667788
        assert t.ok("read 0x1000 4") == "0xab00efbe"
        assert t.ok("readb 0x1000") == "0x00000000000000ab"      # QEMU's 16-digit form
        t.ok("write 0x2000 3 0x010203")
        assert t.memread(0x2000, 3) == b"\x01\x02\x03"
        data = os.urandom(4096)
        t.memwrite(0x3000, data)
        assert t.memread(0x3000, 4096) == data
        t.ok("memset 0x3000 16 0x5a")
        assert t.memread(0x3000, 16) == b"\x5a" * 16
        assert t.memread(64 * 1024 * 1024 - 8, 8) is not None     # last bytes of RAM


def test_guest_ram_is_shared_memfd():
    with vmm.Vireo("-m", "32M", qtest=True) as v:
        # vireo connects to the test before building the machine; a reply
        # comes only from the main loop, once RAM exists.
        v.qtest.readb(0)
        maps = open(f"/proc/{v.proc.pid}/maps").read()
        assert "memfd:vireo-guest-ram" in maps


def test_port_io_unassigned_reads_all_ones():
    with vmm.Vireo(qtest=True) as v:
        t = v.qtest
        assert t.ok("inb 0x2f0") == "0x00ff"
        assert t.ok("inw 0x2f0") == "0xffff"
        assert t.ok("inl 0x2f0") == "0xffffffff"
        t.outb(0x2f0, 0x12)                  # dropped, no crash


def test_uart_through_qtest_and_irq_intercept():
    with vmm.Vireo("-serial", "null", qtest=True) as v:
        t = v.qtest
        t.ok("irq_intercept_in ioapic")
        t.outb(0x3fb, 0x03)                  # 8N1
        t.outb(0x3f9, 0x02)                  # IER: transmitter empty interrupt
        t.outb(0x3fc, 0x08)                  # MCR: OUT2 gates the interrupt on a PC
        t.cmd("clock_step 1000000")
        assert any(l == "IRQ raise 4" for l in t.irqs), t.irqs
        assert t.inb(0x3fd) & 0x60 == 0x60   # LSR: THR empty, transmitter empty


def test_clock_step_and_set():
    with vmm.Vireo(qtest=True) as v:
        t = v.qtest
        start = int(t.ok("clock_step 1000"))
        assert int(t.ok("clock_step 500")) == start + 500
        assert int(t.ok("clock_set 10000000")) == 10000000
        assert int(t.ok("clock_set 5")) == 10000000      # the clock never goes back
        assert t.ok("endianness") == "little"


def test_hostile_input_gets_fail():
    with vmm.Vireo("-m", "16M", qtest=True) as v:
        t = v.qtest
        for bad in ("", "bogus", "inb", "inb 0x10000", "outb 0x80", "outb zz 1", "readq",
                    "readq -1", "read 0 0", "read 0x0 999999999999", "write 0 4 nothex",
                    "write 0 4 0xzz00", "b64write 0 4 !!!!", "memset 0 1",
                    "clock_step -5", "clock_set x", "irq_intercept_in",
                    "b64read 0 99999999999"):
            r = t.cmd(bad)
            assert r.startswith("FAIL"), (bad, r)
        # Addresses outside RAM read as all ones and writes vanish.
        assert t.readq(0xfff0000000000) == 0xffffffffffffffff
        t.writeq(0xfffffffffffffff8, 1)
        assert t.memread(16 * 1024 * 1024 - 2, 4) == b"\x00\x00\xff\xff"   # straddles the end
        assert t.ok("endianness") == "little"


def test_qmp_alongside_qtest():
    with vmm.Vireo(qtest=True) as v:
        q = v.qmp()
        assert q.cmd("query-status")["status"] == "running"
        v.qtest.writel(0x100, 7)
        q.cmd("stop")
        assert v.qtest.readl(0x100) == 7


if __name__ == "__main__":
    vtest.main()
