#!/usr/bin/env python3
"""virtio-net: a device reset brings back the MAC address of mac= (as QEMU
does), whatever the last driver set through the control queue
(MAC_ADDR_SET) or, as a legacy driver, by writing configuration space.

Found by the malicious-guest soak (tests/soak/, seed 4): the hostile
program wrote a multicast MAC into the configuration, and after the guest
reset the device by binding its real driver, Linux refused to bring the
interface up (EADDRNOTAVAIL) because the MAC had survived the reset.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402

F_CTRL_VQ, F_CTRL_MAC_ADDR = 17, 23
CTRL_MAC, MAC_ADDR_SET = 1, 1
MAC = bytes.fromhex("525400aabbcc")
HOSTILE = bytes.fromhex("0f1e2d3c4b5a")     # multicast bit set: no driver accepts it


def device(v):
    slot = vdriver.Pci(v.qtest).find()[0][0]
    return vdriver.VirtioPciDevice(v.qtest, slot, vdriver.Alloc())


def config_mac(d):
    return bytes(d.config(i) for i in range(6))


def test_mac_set_by_control_queue_is_undone_by_reset():
    with vmm.Vireo("-device", f"virtio-net-pci,mac={':'.join(f'{b:02x}' for b in MAC)}",
                   qtest=True) as v:
        d = device(v)
        assert config_mac(d) == MAC
        want = 1 << F_CTRL_VQ | 1 << F_CTRL_MAC_ADDR | vdriver.VERSION_1
        _, _, ctrl = d.init((0, 1, 2), want=want)
        buf = d.alloc.take(4096)
        v.qtest.memwrite(buf, bytes([CTRL_MAC, MAC_ADDR_SET]) + HOSTILE)
        v.qtest.writeb(buf + 1024, 0xee)
        ctrl.add_chain([(buf, 2, False), (buf + 2, 6, False), (buf + 1024, 1, True)])
        ctrl.kick()
        ctrl.wait_used()
        assert v.qtest.readb(buf + 1024) == 0
        assert config_mac(d) == HOSTILE
        d.set_status(0)
        assert d.status() == 0
        assert config_mac(d) == MAC


def test_mac_written_by_legacy_driver_is_undone_by_reset():
    with vmm.Vireo("-device", f"virtio-net-pci,mac={':'.join(f'{b:02x}' for b in MAC)}",
                   qtest=True) as v:
        d = device(v)
        d.set_status(0)
        d.set_status(vdriver.S_ACK | vdriver.S_DRIVER)
        for sel in (0, 1):          # no VERSION_1: configuration writes set the MAC
            d.w32(vdriver.GFSELECT, sel)
            d.w32(vdriver.GF, 0)
        for i, b in enumerate(HOSTILE):
            d.write_config(i, b)
        assert config_mac(d) == HOSTILE
        d.set_status(0)
        assert config_mac(d) == MAC


if __name__ == "__main__":
    vtest.main()
