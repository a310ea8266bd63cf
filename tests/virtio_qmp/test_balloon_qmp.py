"""balloon / query-balloon / BALLOON_CHANGE and HMP balloon, against the
virtio-balloon device driven by a test-side driver over qtest."""
import os
import struct
import sys

import vmm
import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "virtio"))
import vdriver  # noqa: E402

MiB = 1 << 20


def test_no_balloon_device():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        for r in (q.execute("query-balloon"), q.execute("balloon", value=64 * MiB)):
            assert r["error"] == {"class": "DeviceNotActive",
                                  "desc": "No balloon device has been activated"}


def test_target_reaches_the_driver_and_pages_come_back():
    with vmm.Vireo("-m", "256M", "-device", "virtio-balloon-pci", qtest=True) as v:
        q = v.qmp()
        assert q.cmd("query-balloon") == {"actual": 256 * MiB}
        alloc = vdriver.Alloc()
        slot = vdriver.Pci(v.qtest).find()[0][0]
        d = vdriver.VirtioPciDevice(v.qtest, slot, alloc)
        inflate, = d.init(queues=(0,), want=vdriver.VERSION_1)
        q.cmd("balloon", value=192 * MiB)
        # The target, in 4 KiB pages, is in the config space for the driver.
        assert d.config(0, 4) == (64 * MiB) >> 12
        # The driver gives 16 pages back and reports its new size.
        pfns = alloc.take(16 * 4)
        v.qtest.memwrite(pfns, struct.pack("<16I", *range(0x8000, 0x8010)))
        inflate.add_chain([(pfns, 16 * 4, False)])
        inflate.kick()
        inflate.wait_used()
        d.write_config(4, 16, 4)                       # 'actual'
        e = q.wait_event("BALLOON_CHANGE")
        assert e["data"] == {"actual": 256 * MiB - 16 * 4096}
        assert q.cmd("query-balloon") == {"actual": 256 * MiB - 16 * 4096}
        assert q.hmp("info balloon") == f"balloon: actual={(256 * MiB - 16 * 4096) >> 20}\r\n"
        q.hmp("balloon 128")
        assert d.config(0, 4) == (128 * MiB) >> 12


if __name__ == "__main__":
    vtest.main()
