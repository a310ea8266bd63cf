"""Persistent dirty bitmaps in a running vireo, checked with QEMU 7.2's tools.

  * while vireo runs, the stored bitmaps are flagged in-use on disk (what
    `qemu-img info -U` shows), as QEMU does;
  * a clean end (QMP quit, SIGTERM, guest poweroff) writes them back
    consistent: qemu-img info/check, qemu-img bitmap and QEMU 7.2 read the
    same bits vireo had (sha256), and qemu-img map shows the data where the
    guest wrote it, as for QEMU doing the same writes;
  * after SIGKILL the bitmaps stay in-use and both vireo and QEMU list them
    as inconsistent (same members), refuse to use them with the same error,
    and let them be removed;
  * a bitmap QEMU stored is loaded by vireo with the same bits.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitmaplib as bl  # noqa: E402
import vtest  # noqa: E402


def need_qemu():
    if not bl.QEMU or not bl.QEMU_IMG:
        vtest.skip("qemu-system-x86_64 and qemu-img are needed")


def create(path, *bitmaps):
    subprocess.run([bl.QEMU_IMG, "create", "-q", "-f", "qcow2", path, "64M"], check=True)
    for name, gran in bitmaps:
        subprocess.run([bl.QEMU_IMG, "bitmap", "--add", "-g", str(gran), path, name],
                       check=True)


def info(path, *extra):
    out = subprocess.run([bl.QEMU_IMG, "info", *extra, "--output=json", path],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)["format-specific"]["data"]
    return {b["name"]: b for b in data.get("bitmaps", [])}


def check(path):
    r = subprocess.run([bl.QEMU_IMG, "check", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def data_map(path):
    """Guest ranges with and without data in the image.  Whether a part of a
    data cluster reads as a hole in the host file (zero) depends on how the
    file system got it, so only the data flag counts; runs are merged."""
    out = subprocess.run([bl.QEMU_IMG, "map", "--output=json", path],
                         capture_output=True, text=True, check=True).stdout
    runs = []
    for e in json.loads(out):
        if runs and runs[-1][2] == e["data"] and runs[-1][0] + runs[-1][1] == e["start"]:
            runs[-1][1] += e["length"]
        else:
            runs.append([e["start"], e["length"], e["data"]])
    return runs


def add(mon, name, **a):
    r = bl.run(mon, "block-dirty-bitmap-add", node="disk0", name=name, **a)
    assert r == {"return": {}}, r


def run_vireo_writes(path, end):
    """vireo: the stored bitmap 'old' plus a new persistent 'new' (512-byte
    granularity), the guest's writes, then @end.  Returns the digests."""
    v = bl.Vireo(*bl.blockdev_args(path))
    try:
        flags = info(path, "-U")["old"]["flags"]
        assert "in-use" in flags, flags                 # flagged while running
        add(v.mon, "new", granularity=512, persistent=True)
        add(v.mon, "temp")                              # not persistent: gone at the end
        bl.guest_writes(bl.VirtioBlk(v.qtest))
        sha = {n: bl.sha256(v.mon, n) for n in ("old", "new")}
        if end == "quit":
            v.quit()
        elif end == "sigterm":
            v.proc.terminate()
            assert v.proc.wait(60) == 0
            v.close()
        elif end == "poweroff":
            v.qtest.outw(0x604, (5 << 10) | 0x2000)     # ACPI S5 with SLP_EN
            assert v.proc.wait(60) == 0
            v.close()
        return sha
    except BaseException:
        v.close()
        raise


def qemu_view(path, names, writes=False):
    """QEMU 7.2 opens @path: digests and the dirty-bitmaps list."""
    q = bl.Qemu(*bl.blockdev_args(path))
    try:
        if writes:
            add(q.mon, "new", granularity=512, persistent=True)
            bl.guest_writes(bl.VirtioBlk(q.qtest))
        return {n: bl.sha256(q.mon, n) for n in names}, bl.bitmaps(q.mon)
    finally:
        q.quit()


def test_clean_end_stores_consistent_bitmaps():
    need_qemu()
    with tempfile.TemporaryDirectory() as d:
        ref = os.path.join(d, "qemu.qcow2")
        create(ref, ("old", 65536))
        qsha, qlist = qemu_view(ref, ("old", "new"), writes=True)
        for end in ("quit", "sigterm", "poweroff"):
            img = os.path.join(d, f"{end}.qcow2")
            create(img, ("old", 65536))
            vsha = run_vireo_writes(img, end)
            assert vsha == qsha, f"{end}: vireo {vsha} QEMU {qsha}"
            bms = info(img)
            assert sorted(bms) == ["new", "old"], bms
            for b in bms.values():
                assert b["flags"] == ["auto"], (end, b)
            assert bms["new"]["granularity"] == 512
            check(img)
            # QEMU 7.2 loads what vireo stored: same bits, same listing.
            sha2, list2 = qemu_view(img, ("old", "new"))
            assert sha2 == vsha, (end, sha2, vsha)
            assert list2 == qlist, (end, list2, qlist)
        # The data where the guest wrote it, as QEMU's image has it.
        assert data_map(img) == data_map(ref), f"\n  QEMU  {data_map(ref)}\n  vireo {data_map(img)}"
        r = subprocess.run([bl.QEMU_IMG, "compare", "-q", ref, img])
        assert r.returncode == 0, "the guest's writes differ"
        # qemu-img bitmap copies vireo's bits into another image unchanged.
        copy = os.path.join(d, "copy.qcow2")
        create(copy, ("c", 512))
        subprocess.run([bl.QEMU_IMG, "bitmap", "--merge", "new", "-b", img, "-F", "qcow2",
                        copy, "c"], check=True)
        sha3, _ = qemu_view(copy, ("c",))
        assert sha3["c"] == vsha["new"], (sha3, vsha)


def test_sigkill_leaves_inconsistent_bitmaps():
    need_qemu()
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "v.qcow2")
        create(img, ("old", 65536), ("old2", 4096))
        v = bl.Vireo(*bl.blockdev_args(img))
        try:
            bl.guest_writes(bl.VirtioBlk(v.qtest))
        finally:
            v.kill()
        bms = info(img)
        assert all("in-use" in b["flags"] for b in bms.values()), bms
        twin = os.path.join(d, "q.qcow2")
        shutil.copyfile(img, twin)
        probes = [("block-dirty-bitmap-clear", {"name": "old"}),
                  ("block-dirty-bitmap-enable", {"name": "old"}),
                  ("block-dirty-bitmap-merge", {"target": "old2", "bitmaps": ["old"]}),
                  ("block-dirty-bitmap-add", {"name": "old", "persistent": True}),
                  ("block-dirty-bitmap-remove", {"name": "old2"})]
        seen = []
        for kind, path in (("qemu", twin), ("vireo", img)):
            args = bl.blockdev_args(path)
            vm = bl.Qemu(*args) if kind == "qemu" else bl.Vireo(*args)
            try:
                listed = bl.bitmaps(vm.mon)
                replies = [bl.run(vm.mon, c, node="disk0", **a) for c, a in probes]
                seen.append((listed, replies, bl.bitmaps(vm.mon)))
            finally:
                vm.quit()
        (ql, qr, qafter), (vl, vr, vafter) = seen
        assert vl == ql, f"\n  QEMU  {ql}\n  vireo {vl}"
        assert all(b["inconsistent"] for b in vl), vl
        for (c, a), w, g in zip(probes, qr, vr):
            assert w == g, f"{c} {a}:\n  QEMU  {w}\n  vireo {g}"
        assert vafter == qafter
        # The removed one is gone from the file; the other is still in-use.
        for path in (img, twin):
            bms = info(path)
            assert list(bms) == ["old"] and "in-use" in bms["old"]["flags"], bms


def test_vireo_loads_what_qemu_stored():
    need_qemu()
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "q.qcow2")
        create(img, ("old", 65536))
        qsha, qlist = qemu_view(img, ("old", "new"), writes=True)
        v = bl.Vireo(*bl.blockdev_args(img))
        try:
            vsha = {n: bl.sha256(v.mon, n) for n in ("old", "new")}
            vlist = bl.bitmaps(v.mon)
        finally:
            v.quit()
        assert vsha == qsha, (vsha, qsha)
        assert vlist == qlist, f"\n  QEMU  {qlist}\n  vireo {vlist}"
        check(img)


if __name__ == "__main__":
    vtest.main()
