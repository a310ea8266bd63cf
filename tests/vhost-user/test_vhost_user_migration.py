#!/usr/bin/env python3
"""Live migration of a QEMU 7.2 guest served by vireo's vhost-user back-ends.

Two QEMU 7.2 processes with KVM (on the host where KVM boots Linux, else in
the nested lab), the source migrating to the destination (-incoming). The
guest's disk is a qcow2 node of vireo-storage-daemon exported on two sockets,
one per QEMU; its NIC is vireo-vhost-user-net, one daemon and tap per QEMU
(migrate_helper.py runs the whole scene).

- LOG_SHMFD: in rounds, the guest drops its page cache, reads the next 8 MiB
  chunk of its disk into the cache (the back-end writes those pages, not a
  vCPU), and checks the chunk's sum from the cache four times over a few
  seconds. The migration starts in the
  middle of the rounds; rounds finished on the destination must still see the
  right data. Pages the back-end filled after QEMU had sent them reach the
  destination only through the dirty log the back-end keeps. The daemon's log
  must show F_LOG_ALL and a count of marked pages. Limit: a build with the
  back-end's log switched off also passed the data check (the chunks were
  read before QEMU's first pass reached their pages), so the data check alone
  does not prove the log; the marked-page count and the scripted tests of
  the log (test_vhost_user_blk.py, test_vhost_user_net.py) do.
- RARP: the guest's announce feature is off, so the destination QEMU sends
  VHOST_USER_SEND_RARP and the destination's back-end must put a RARP frame
  for the guest's MAC on its tap (a packet socket reads it).
- Ping between the guest and the host through the tap, before the migration
  (source tap) and after it (destination tap).
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vtest  # noqa: E402

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
MiB = 1 << 20
CHUNKS, CHUNK_MB = 4, 8
MAC = bytes.fromhex("525400123456")
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrate_helper.py")

GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
load-modules
for i in $(seq 1 100); do [ -b /dev/vda ] && [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set eth0 up
ip addr add 10.77.0.2/24 dev eth0
SUMS
n=0
while :; do
    n=$((n+1))
    echo "ROUND-START $n"
    echo 1 > /proc/sys/vm/drop_caches
    # The helper starts the migration on seeing ROUND-START 2; the pause
    # leaves QEMU time to turn the dirty log on before this round's read, so
    # the back-end writes at least one chunk while it logs.
    sleep 2
    # Into the page cache: the back-end writes these pages. Each round reads
    # another chunk, so the freed pages it gets back held other data: a
    # page the back-end filled after QEMU had sent it differs on the
    # destination unless the back-end logged it.
    i=$((n % CHUNKS))
    dd if=/dev/vda of=/dev/null bs=1M skip=$((i*CHUNK_MB)) count=CHUNK_MB 2>/dev/null
    # Two probes, 3 s each: the first reply can wait for the host to resolve
    # the guest's address on its tap, through a nested guest.
    if out=$(ping -c 2 -W 3 10.77.0.1 2>&1); then p=ok; else
        p=fail
        echo "PING-FAIL $n: $(echo "$out" | tail -2 | tr '\n' ' ') neigh: $(ip neigh | tr '\n' ' ')"
    fi
    # From the cache, several times over a few seconds (a switch-over in
    # this window finds on the destination what the source's pages held).
    bad=""
    for j in 1 2 3 4; do
        sleep 1
        s=$(dd if=/dev/vda bs=1M skip=$((i*CHUNK_MB)) count=CHUNK_MB 2>/dev/null | md5sum | cut -c1-32)
        eval want=\$SUM$i
        [ "$s" = "$want" ] || bad="$bad$i.$j,"
    done
    echo "ROUND $n sums=${bad:-ok} ping=$p"
done
"""


def rounds(text):
    return [(int(m.group(1)), m.group(2), m.group(3))
            for m in re.finditer(r"^ROUND (\d+) sums=(\S+) ping=(\S+)", text, re.M)]


def run_migration():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    work = lab.workdir("vu-migrate-")
    raw, img = os.path.join(work, "disk.raw"), os.path.join(work, "disk.qcow2")
    data = os.urandom(CHUNKS * CHUNK_MB * MiB)

    def make_image():
        with open(raw, "wb") as f:
            f.write(data)
            f.truncate(64 * MiB)
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, img],
                       check=True)
        os.unlink(raw)
    sums = "\n".join(f"SUM{i}={hashlib.md5(data[i * CHUNK_MB * MiB:(i + 1) * CHUNK_MB * MiB]).hexdigest()}"
                     for i in range(CHUNKS))
    init = (GUEST_INIT.replace("SUMS", sums)
            .replace("CHUNKS", str(CHUNKS))
            .replace("CHUNK_MB", str(CHUNK_MB)))
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), init,
                                 modules=["virtio_pci", "virtio_blk", "virtio_net"])
    status, out = lab.run_vmm([sys.executable, HELPER, work, vtest.BUILD, img,
                               lab.kernel_path(), initrd], timeout=1500,
                              prepare=make_image)
    files = {}
    for name in os.listdir(work):
        if name.endswith((".txt", ".log")):
            files[name] = open(os.path.join(work, name), errors="replace").read()
    try:
        result = json.load(open(os.path.join(work, "result.json")))
    except FileNotFoundError:
        result = {"error": "the helper wrote no result"}

    def frames(key):
        return "\n".join(f"  {f['len']:5} type {f['pkttype']} {f['hex'][:68]}"
                         for f in result.get(key, []))

    def context():
        # The log files first and the scene's summary last: a test runner
        # showing only the tail of a failure keeps the summary.
        return ("\n".join(f"--- {n} ---\n{t[-2500:]}" for n, t in sorted(files.items())) +
                f"\nstatus {status}\n{out[-3000:]}\n" +
                f"frames after migration:\n{frames('frames_after')}\n"
                f"frames after the move:\n{frames('frames_moved')}\n" +
                f"host's neighbours on vutD at the end: {result.get('neigh_dst')}\n" +
                summary())

    def summary():
        src, dst = files.get("src-serial.txt", ""), files.get("dst-serial.txt", "")
        return ("\n".join(result.get("steps", [])) +
                f"\nrounds on the source: {rounds(src)}\n"
                f"rounds on the destination: {rounds(dst)}\n"
                f"last round begun before the host's address moved: "
                f"{result.get('last_round_begun_before_move')}\n" +
                "".join(line + "\n" for line in re.findall(r"^PING-FAIL .*$", src + dst, re.M)))

    print(summary(), flush=True)
    assert "error" not in result, result["error"] + "\n" + context()
    assert result["migration"]["status"] == "completed", context()
    return work, img, result, files, context


_scene = None


def scene():
    """One migration serves every check below (a lab run costs minutes)."""
    global _scene
    if _scene is None:
        _scene = run_migration()
    return _scene


def test_guest_data_right_after_migration_with_the_dirty_log():
    work, img, result, files, context = scene()
    src, dst = files["src-serial.txt"], files["dst-serial.txt"]
    before, after = rounds(src), rounds(dst)
    assert len(before) >= 1 and all(r[1] == "ok" for r in before), context()
    # The destination went on with the same loop: its first round began on
    # the source (no ROUND-START for it on the destination's console).
    assert len(after) >= 3, context()
    starts = [int(n) for n in re.findall(r"^ROUND-START (\d+)", src, re.M)]
    assert after[0][0] == starts[-1], (after[0], starts, context())
    bad = [r for r in after if r[1] != "ok"]
    assert not bad, f"chunks with stale data on the destination: {bad}\n" + context()
    print(f"{len(before)} rounds on the source, {len(after)} on the destination; "
          f"migration: {result['migration'].get('total-time')} ms total, "
          f"{result['migration'].get('downtime')} ms down, "
          f"{result['migration'].get('ram', {}).get('transferred')} bytes")


def test_storage_daemon_logged_dirty_pages():
    work, img, result, files, context = scene()
    log = files["storage-daemon.log"]
    assert re.search(r"exp-src: dirty logging on \(F_LOG_ALL\), log of [1-9]\d* bytes", log), log
    m = re.search(r"exp-src: dirty logging off \([^)]*\): (\d+) pages marked", log)
    assert m and int(m.group(1)) > 0, log
    print(f"storage daemon marked {m.group(1)} pages")
    # The destination's export was never asked to log.
    assert "exp-dst: dirty logging on" not in log, log
    for name in ("storage-daemon.log", "net-src.log", "net-dst.log"):
        t = files.get(name, "")
        assert "ERROR: AddressSanitizer" not in t and "runtime error" not in t, (name, t)
    r = subprocess.run(["qemu-img", "check", img], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def is_rarp_for(frame, mac):
    b = bytes.fromhex(frame["hex"])
    return (len(b) >= 42 and b[0:6] == b"\xff" * 6 and b[6:12] == mac and
            b[12:14] == b"\x80\x35" and b[14:16] == b"\x00\x01" and b[16:18] == b"\x08\x00" and
            b[18] == 6 and b[19] == 4 and b[20:22] == b"\x00\x03" and
            b[22:28] == mac and b[32:38] == mac)


def test_rarp_from_the_destination_back_end():
    work, img, result, files, context = scene()
    assert not any(is_rarp_for(f, MAC) for f in result["frames_before"]), result
    rarps = [f for f in result["frames_after"] if is_rarp_for(f, MAC)]
    assert rarps, (result["frames_after"], context())
    assert all(f["len"] == 60 for f in rarps), rarps
    print(f"{len(rarps)} RARP frames for the guest's MAC on the destination tap")


def test_ping_through_the_tap_before_and_after():
    work, img, result, files, context = scene()
    before, after = rounds(files["src-serial.txt"]), rounds(files["dst-serial.txt"])
    assert all(r[2] == "ok" for r in before), context()
    # The host's address moves to the destination's tap after the RARP check;
    # the rounds the guest began after that must reach it there. (A round
    # begun before the move may have pinged the address while it was gone.)
    moved = [r for r in after if r[0] > result["last_round_begun_before_move"]]
    assert moved, context()
    assert all(r[2] == "ok" for r in moved), context()


if __name__ == "__main__":
    vtest.main()
