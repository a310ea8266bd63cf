"""Dirty bitmap QMP commands, vireo and QEMU 7.2 side by side.

Both run the same -blockdev (file + qcow2) behind a virtio-blk-pci device;
QEMU paused under TCG with a qtest socket, vireo under its qtest
accelerator.  Every request gets the same reply from both (errors word
for word), the `dirty-bitmaps` lists agree, and the same guest writes
(virtio-blk requests driven over qtest) set the same bits: equal
x-debug-block-dirty-bitmap-sha256 digests and counts.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitmaplib as bl  # noqa: E402
import vtest  # noqa: E402

LONG = "b" * 1024
LONG_OK = "c" * 1023

# (command, arguments): the requests both VMMs answer in turn.
SEQUENCE = [
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "b0"}),
    ("block-dirty-bitmap-add", {"node": "vd0", "name": "b1"}),
    ("block-dirty-bitmap-add", {"node": "nope", "name": "b1"}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "b0"}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": ""}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "g", "granularity": 1000}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "g", "granularity": 256}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "g", "granularity": 0}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "g", "granularity": -1}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "g", "granularity": 1 << 32}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "g", "granularity": 2147483648}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "p", "persistent": True}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "p2", "persistent": True,
                                "disabled": True, "granularity": 512}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": LONG}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": LONG_OK, "persistent": True}),
    ("block-dirty-bitmap-add", {"node": "disk0"}),
    ("block-dirty-bitmap-add", {"name": "x"}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "x", "persistent": "yes"}),
    ("x-debug-block-dirty-bitmap-sha256", {"node": "disk0", "name": "b0"}),
    ("x-debug-block-dirty-bitmap-sha256", {"node": "disk0", "name": "p2"}),
    ("x-debug-block-dirty-bitmap-sha256", {"node": "disk0", "name": "zz"}),
    ("x-debug-block-dirty-bitmap-sha256", {"node": "nope", "name": "x"}),
    ("block-dirty-bitmap-enable", {"node": "disk0", "name": "zz"}),
    ("block-dirty-bitmap-disable", {"node": "disk0", "name": "b0"}),
    ("block-dirty-bitmap-disable", {"node": "disk0", "name": "b0"}),
    ("block-dirty-bitmap-enable", {"node": "disk0", "name": "b0"}),
    ("block-dirty-bitmap-disable", {"node": "disk0", "name": "p"}),
    ("block-dirty-bitmap-clear", {"node": "disk0", "name": "b0"}),
    ("block-dirty-bitmap-clear", {"node": "nope", "name": "x"}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0",
                                  "bitmaps": ["p2", {"node": "disk0", "name": "p"}]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0", "bitmaps": ["nope"]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "nope", "bitmaps": ["b0"]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0",
                                  "bitmaps": [{"node": "x", "name": "p"}]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0", "bitmaps": [3]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0",
                                  "bitmaps": [{"node": "disk0"}]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0",
                                  "bitmaps": [{"node": "disk0", "name": "p", "x": 1}]}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0"}),
    ("block-dirty-bitmap-merge", {"node": "disk0", "target": "b0", "bitmaps": "p"}),
    ("block-dirty-bitmap-remove", {"node": "disk0", "name": "nope"}),
    ("block-dirty-bitmap-remove", {"node": "disk0", "name": "p"}),
    ("block-dirty-bitmap-remove", {"node": "disk0", "name": "p"}),
    ("block-dirty-bitmap-remove", {"node": "disk0", "name": "g"}),
    ("block-dirty-bitmap-add", {"node": "disk0", "name": "p", "persistent": True}),
]


def image(d, name):
    path = os.path.join(d, name)
    subprocess.run([bl.QEMU_IMG, "create", "-q", "-f", "qcow2", path, "64M"], check=True)
    return path


def need_qemu():
    if not bl.QEMU or not bl.QEMU_IMG:
        vtest.skip("qemu-system-x86_64 and qemu-img are needed")


def test_commands_and_errors_match_qemu():
    need_qemu()
    with tempfile.TemporaryDirectory() as d:
        q = bl.Qemu(*bl.blockdev_args(image(d, "q.qcow2")))
        try:
            want = [bl.run(q.mon, c, **a) for c, a in SEQUENCE]
            want_list = bl.bitmaps(q.mon)
        finally:
            q.quit()
        v = bl.Vireo(*bl.blockdev_args(image(d, "v.qcow2")))
        try:
            got = [bl.run(v.mon, c, **a) for c, a in SEQUENCE]
            got_list = bl.bitmaps(v.mon)
        finally:
            v.quit()
    for (c, a), w, g in zip(SEQUENCE, want, got):
        assert w == g, f"{c} {a}:\n  QEMU  {w}\n  vireo {g}"
    assert want_list == got_list, f"\n  QEMU  {want_list}\n  vireo {got_list}"


def test_guest_writes_set_the_same_bits():
    """Writes, write-zeroes and discards (discard=unmap) through virtio-blk:
    the same bits in bitmaps of three granularities, one disabled."""
    need_qemu()
    adds = [{"name": "g64k"}, {"name": "g512", "granularity": 512, "persistent": True},
            {"name": "g1m", "granularity": 1 << 20}, {"name": "off", "disabled": True}]
    results = []
    with tempfile.TemporaryDirectory() as d:
        for kind in ("qemu", "vireo"):
            args = bl.blockdev_args(image(d, kind + ".qcow2"))
            vm = bl.Qemu(*args) if kind == "qemu" else bl.Vireo(*args)
            try:
                for a in adds:
                    assert bl.run(vm.mon, "block-dirty-bitmap-add", node="disk0", **a) == \
                        {"return": {}}
                bl.guest_writes(bl.VirtioBlk(vm.qtest))
                results.append(({a["name"]: bl.sha256(vm.mon, a["name"]) for a in adds},
                                bl.bitmaps(vm.mon)))
            finally:
                vm.quit()
    (qsha, qlist), (vsha, vlist) = results
    assert qsha == vsha, f"\n  QEMU  {qsha}\n  vireo {vsha}"
    assert qlist == vlist, f"\n  QEMU  {qlist}\n  vireo {vlist}"
    counts = {b["name"]: b["count"] for b in vlist}
    assert counts["off"] == 0 and counts["g64k"] > 0, counts


if __name__ == "__main__":
    vtest.main()
