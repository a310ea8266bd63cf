#!/usr/bin/env python3
"""PCI hotplug without a guest CPU: device_add / device_del over QMP and HMP,
the ACPI PCI hotplug registers (0xae00) and GPE0 (0xafe0) as a guest's ACPI
code sees them, DEVICE_DELETED after the eject, virtio-serial port hotplug,
and the errors QEMU 7.2 gives.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402

HP = 0xae00
UP, DOWN, EJECT, REMOVABLE, BSEL = HP, HP + 4, HP + 8, HP + 12, HP + 16
GPE_STS, GPE_EN = 0xafe0, 0xafe2
PM1_STS, PM1_EN = 0x600, 0x602


def execute(m, name, **args):
    """vmm's execute() takes id= for the envelope; device ids go in arguments here."""
    m.send_raw(json.dumps({"execute": name, "arguments": args}) + "\n")
    return m.reply()


def cmd(m, name, **args):
    r = execute(m, name, **args)
    assert "return" in r, r
    return r["return"]


def start(*args):
    return vmm.Vireo("-M", "pc", "-m", "64M", *args, qtest=True)


def vendor(q, slot):
    q.outl(0xcf8, 0x80000000 | slot << 11)
    return q.inl(0xcfc)


def test_add_announces_and_eject_removes():
    with start() as v:
        m, q = v.qmp(), v.qtest
        assert q.inl(REMOVABLE) == 0xfffffffe
        assert q.inb(GPE_STS) == 0
        q.outb(GPE_EN, 0x02)
        assert vendor(q, 6) == 0xffffffff
        cmd(m, "device_add", driver="virtio-rng-pci", id="rng1", addr="06.0")
        assert vendor(q, 6) & 0xffff == 0x1af4
        assert q.inb(GPE_STS) & 0x02
        assert q.inl(UP) == 1 << 6
        assert q.inl(UP) == 0, "reading up clears it"
        q.outb(GPE_STS, 0x02)
        assert q.inb(GPE_STS) == 0
        info = [i["name"] for i in m.cmd("qom-list", path="/machine/peripheral")]
        assert "rng1" in info
        cmd(m, "device_del", id="rng1")
        assert q.inl(DOWN) == 1 << 6
        assert q.inb(GPE_STS) & 0x02
        e = execute(m, "device_del", id="rng1")["error"]
        assert e["desc"] == "Device rng1 is already in the process of unplug", e
        assert vendor(q, 6) & 0xffff == 0x1af4, "still there until the guest ejects"
        q.outl(EJECT, 1 << 6)
        ev = m.wait_event("DEVICE_DELETED")
        assert ev["data"] == {"path": "/machine/peripheral/rng1/virtio-backend"}, ev
        ev = m.wait_event("DEVICE_DELETED")
        assert ev["data"] == {"device": "rng1", "path": "/machine/peripheral/rng1"}, ev
        assert vendor(q, 6) == 0xffffffff
        assert q.inl(DOWN) == 0
        err = execute(m, "device_del", id="rng1")["error"]
        assert err == {"class": "DeviceNotFound", "desc": "Device 'rng1' not found"}, err
        # the id and the slot are free again
        cmd(m, "device_add", driver="virtio-rng-pci", id="rng1", addr="06.0")
        assert vendor(q, 6) & 0xffff == 0x1af4


def test_free_slot_and_hmp():
    with start("-device", "virtio-rng-pci,id=a") as v:
        m, q = v.qmp(), v.qtest
        out = m.hmp("device_add virtio-net-pci,id=n1")
        assert out == "", out
        slots = [s for s in range(1, 32) if vendor(q, s) != 0xffffffff]
        assert len(slots) == 2, slots
        assert q.inl(UP) == 1 << slots[1]
        assert m.hmp("device_del n1") == ""
        assert q.inl(DOWN) == 1 << slots[1]
        q.outl(EJECT, 1 << slots[1])
        assert m.wait_event("DEVICE_DELETED")["data"]["path"].endswith("virtio-backend")
        assert m.wait_event("DEVICE_DELETED")["data"]["device"] == "n1"


def test_eject_of_a_boot_device():
    # a -device device is hotpluggable too: the guest may eject it
    with start("-device", "virtio-rng-pci,id=boot,addr=05.0") as v:
        m, q = v.qmp(), v.qtest
        q.outl(EJECT, 1 << 5)
        m.wait_event("DEVICE_DELETED")
        assert m.wait_event("DEVICE_DELETED")["data"]["device"] == "boot"
        assert vendor(q, 5) == 0xffffffff


def test_guest_cannot_eject_the_host_bridge():
    with start() as v:
        m, q = v.qmp(), v.qtest
        q.outl(EJECT, 0xffffffff)
        assert vendor(q, 0) != 0xffffffff
        assert m.cmd("query-status")["status"]


def test_errors():
    with start() as v:
        m = v.qmp()
        e = execute(m, "device_add", id="x")["error"]
        assert e["desc"] == "Parameter 'driver' is missing", e
        e = execute(m, "device_add", driver="no-such-device")["error"]
        assert e["desc"] == "'no-such-device' is not a valid device model name", e
        e = execute(m, "device_del", id="nothere")["error"]
        assert e["class"] == "DeviceNotFound", e
        cmd(m, "device_add", driver="virtio-rng-pci", id="r", addr="7")
        e = execute(m, "device_add", driver="virtio-rng-pci", id="r")["error"]
        assert "Duplicate" in e["desc"], e
        e = execute(m, "device_add", driver="virtio-rng-pci", id="s", addr="7")["error"]
        assert e["desc"] == ("PCI: slot 7 function 0 not available for virtio-rng-pci, "
                             "in use by virtio-rng-pci,id=r"), e
        e = execute(m, "device_add", driver="virtio-rng-pci", id="t", bus="pci.1")["error"]
        assert e["desc"] == "Bus 'pci.1' not found", e
        e = execute(m, "device_add", driver="virtio-rng-pci", id="u", addr={"a": 1})["error"]
        assert e["class"] == "GenericError", e


def test_serial_port_hotplug():
    with start("-device", "virtio-serial-pci,id=ser") as v:
        m = v.qmp()
        cmd(m, "device_add", driver="virtserialport", id="hp-port")
        assert "hp-port" in [i["name"] for i in m.cmd("qom-list", path="/machine/peripheral")]
        cmd(m, "device_del", id="hp-port")
        ev = m.wait_event("DEVICE_DELETED")
        assert ev["data"] == {"device": "hp-port", "path": "/machine/peripheral/hp-port"}, ev
        # a built-in device cannot go
        e = execute(m, "device_del", id="/machine/unattached/device[0]")["error"]
        assert "does not support hotplugging" in e["desc"], e


def test_disk_hotplug_and_reuse_of_its_drive():
    import tempfile
    d = tempfile.mkdtemp(prefix="vireo-hp-")
    img = os.path.join(d, "disk.raw")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    try:
        with start("-drive", f"if=none,id=drive1,file={img},format=raw") as v:
            m, q = v.qmp(), v.qtest
            cmd(m, "device_add", driver="virtio-blk-pci", id="drv1", drive="drive1", addr="06.0")
            assert vendor(q, 6) >> 16 in (0x1001, 0x1042)
            e = execute(m, "device_add", driver="virtio-blk-pci", id="drv2", drive="drive1")
            assert "already in use" in e["error"]["desc"], e
            cmd(m, "device_del", id="drv1")
            q.outl(EJECT, 1 << 6)
            m.wait_event("DEVICE_DELETED")
            m.wait_event("DEVICE_DELETED")
            # the drive is free again once its disk is gone
            cmd(m, "device_add", driver="virtio-blk-pci", id="drv2", drive="drive1", addr="06.0")
    finally:
        os.unlink(img)
        os.rmdir(d)


def test_serial_controller_unplug_takes_its_ports():
    with start("-chardev", "null,id=c0", "-device", "virtio-serial-pci,id=ser,addr=5",
               "-device", "virtconsole,chardev=c0,id=con0") as v:
        m, q = v.qmp(), v.qtest
        cmd(m, "device_add", driver="virtserialport", id="p1")
        cmd(m, "device_del", id="ser")
        q.outl(EJECT, 1 << 5)
        paths = [m.wait_event("DEVICE_DELETED")["data"]["path"] for _ in range(4)]
        assert paths == ["/machine/peripheral/p1", "/machine/peripheral/con0",
                         "/machine/peripheral/ser/virtio-backend",
                         "/machine/peripheral/ser"], paths
        e = execute(m, "device_add", driver="virtserialport", id="p2")["error"]
        assert e["desc"] == "No 'virtio-serial-bus' bus found for device 'virtserialport'", e
        # the chardev is free for a new port on a new controller
        cmd(m, "device_add", driver="virtio-serial-pci", id="ser2")
        cmd(m, "device_add", driver="virtconsole", chardev="c0", id="con1")


def test_balloon_unplug_and_a_new_one():
    with start("-device", "virtio-balloon-pci,id=b0,addr=5") as v:
        m, q = v.qmp(), v.qtest
        cmd(m, "qom-set", path="b0", property="guest-stats-polling-interval", value=2)
        cmd(m, "device_del", id="b0")
        q.outl(EJECT, 1 << 5)
        m.wait_event("DEVICE_DELETED")
        m.wait_event("DEVICE_DELETED")
        e = m.execute("query-balloon")["error"]
        assert e["class"] == "DeviceNotActive", e
        cmd(m, "device_add", driver="virtio-balloon-pci", id="b1")
        assert m.cmd("query-balloon")["actual"] == 64 << 20


def test_none_machine():
    with vmm.Vireo("-machine", "none", qtest=True) as v:
        m = v.qmp()
        e = execute(m, "device_add", driver="virtio-rng-pci")["error"]
        assert e["desc"] == "No 'PCI' bus found for device 'virtio-rng-pci'", e


def test_guest_garbage_on_the_registers():
    with start("-device", "virtio-rng-pci,id=a") as v:
        m, q = v.qmp(), v.qtest
        for port in list(range(HP, EJECT)) + list(range(EJECT + 4, HP + 0x18)):
            q.outb(port, 0xff)
            q.inb(port)
            q.outw(port & ~1, 0xffff)
        q.outl(BSEL, 5)
        assert q.inl(UP) == 0 and q.inl(REMOVABLE) == 0
        q.outl(EJECT, 0xffffffff)       # ignored: bus 5 has no slots
        q.outl(BSEL, 0)
        assert m.cmd("qom-list", path="/machine/peripheral/a")
        q.outl(EJECT, 0xfffffffe)       # every slot at once
        m.wait_event("DEVICE_DELETED")
        m.wait_event("DEVICE_DELETED")


vtest.main()
