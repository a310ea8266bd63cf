#!/usr/bin/env python3
"""Run one live migration of a QEMU 7.2 guest whose disk and NIC are vireo's.

Started by test_vhost_user_migration.py where KVM can boot Linux (the host,
or the nested lab: a job there cannot be driven from outside, so the whole
interaction lives here). Everything it sees goes to files in WORK, read by
the test afterwards:

  vireo-storage-daemon   one qcow2 node, exported twice (exp-src, exp-dst)
  vireo-vhost-user-net   twice: on tap vutS (source) and vutD (destination)
  QEMU 7.2 source        -> exp-src, vutS; serial to src-serial.txt
  QEMU 7.2 destination   -> exp-dst, vutD, -incoming; serial to dst-serial.txt

The guest reads chunks of its disk into its page cache and checks their
sums from the cache in rounds, and pings the host side of the tap. The
migration starts during a round; after it, the destination must go on with
the same rounds. A packet socket on vutD records the frames the destination
back-end puts on its tap (the RARP announcement among them).

Usage: migrate_helper.py WORK BUILD IMAGE KERNEL INITRD
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from vmm import QMP  # noqa: E402

WORK, BUILD, IMAGE, KERNEL, INITRD = sys.argv[1:6]
TMP = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR", "/tmp")
MAC = "52:54:00:12:34:56"
HOST_IP = "10.77.0.1/24"
HOST_MAC = "02:00:00:77:00:01"
ROUNDS_AFTER = 2            # complete rounds the destination must show
ETH_P_ALL = 3

procs = []
result = {"steps": []}


def step(text):
    result["steps"].append(f"{time.monotonic() - T0:7.1f}s {text}")
    print(result["steps"][-1], flush=True)


def start(argv, log):
    p = subprocess.Popen(argv, stdout=open(os.path.join(WORK, log), "w"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def wait_path(path, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.05)


def ip(*args):
    subprocess.run(["ip", *args], check=True)


def serial(name):
    try:
        return open(os.path.join(WORK, name), errors="replace").read()
    except FileNotFoundError:
        return ""


def last_round_begun():
    """The highest round number the guest has begun, on either console."""
    text = serial("src-serial.txt") + serial("dst-serial.txt")
    return max((int(n) for n in re.findall(r"^ROUND-START (\d+)", text, re.M)), default=0)


def finished_rounds(text):
    return [int(n) for n in re.findall(r"^ROUND (\d+) ", text, re.M)]


def wait_serial(name, text, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while text not in serial(name):
        if time.monotonic() > deadline or (proc and proc.poll() is not None):
            raise RuntimeError(f"no '{text}' on {name}")
        time.sleep(0.2)


def qemu(role, blk_sock, net_sock, extra):
    t = os.path.join(TMP, role)
    return [
        "qemu-system-x86_64", "-M", "pc", "-enable-kvm", "-cpu", "host",
        "-m", "256M", "-smp", "1",
        "-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
        "-numa", "node,memdev=mem0",
        "-chardev", f"socket,id=cb,path={blk_sock}",
        "-device", "vhost-user-blk-pci,chardev=cb,num-queues=1,id=vblk",
        "-chardev", f"socket,id=cn,path={net_sock}",
        "-netdev", "vhost-user,id=n0,chardev=cn",
        # Announce feature off: the destination then asks the back-end to
        # send the RARP (VHOST_USER_SEND_RARP) instead of the guest.
        "-device", f"virtio-net-pci,netdev=n0,mac={MAC},guest_announce=off,id=vnet",
        "-kernel", KERNEL, "-initrd", INITRD,
        "-append", "console=ttyS0 quiet panic=-1",
        "-display", "none", "-nodefaults", "-no-reboot",
        "-serial", f"file:{os.path.join(WORK, role + '-serial.txt')}",
        "-qmp", f"unix:{t}-qmp.sock,server=on,wait=off", *extra]


def read_frames(sock, seconds):
    frames, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data, addr = sock.recvfrom(65536)
        except (socket.timeout, BlockingIOError):
            continue
        frames.append({"hex": data[:64].hex(), "len": len(data), "pkttype": addr[2]})
    return frames


def main():
    sd_sock = [os.path.join(TMP, "blk-src.sock"), os.path.join(TMP, "blk-dst.sock")]
    net_sock = [os.path.join(TMP, "net-src.sock"), os.path.join(TMP, "net-dst.sock")]
    sd = start([os.path.join(BUILD, "vireo-storage-daemon"),
                "--blockdev", f"driver=file,node-name=file0,filename={IMAGE}",
                "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
                "--export", "type=vhost-user-blk,id=exp-src,node-name=disk0,addr.type=unix,"
                            f"addr.path={sd_sock[0]},writable=on",
                "--export", "type=vhost-user-blk,id=exp-dst,node-name=disk0,addr.type=unix,"
                            f"addr.path={sd_sock[1]},writable=on"], "storage-daemon.log")
    nets = [start([os.path.join(BUILD, "vireo-vhost-user-net"), f"--socket-path={s}",
                   f"--tap={tap}", f"--mac={MAC}"], f"net-{role}.log")
            for s, tap, role in ((net_sock[0], "vutS", "src"), (net_sock[1], "vutD", "dst"))]
    for s in sd_sock:
        wait_path(s, sd, "vireo-storage-daemon")
    for s, p in zip(net_sock, nets):
        wait_path(s, p, "vireo-vhost-user-net")
    step("daemons up")
    # Both taps get one MAC, so the guest's ARP entry for the host stays
    # right when the host's address moves to the destination's tap.
    for tap in ("vutS", "vutD"):
        ip("link", "set", tap, "address", HOST_MAC)
        ip("link", "set", tap, "up")
    ip("addr", "add", HOST_IP, "dev", "vutS")
    pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    pkt.bind(("vutD", 0))

    src = start(qemu("src", sd_sock[0], net_sock[0], []), "qemu-src.log")
    mig = os.path.join(TMP, "mig.sock")
    dst = start(qemu("dst", sd_sock[1], net_sock[1], ["-incoming", f"unix:{mig}"]),
                "qemu-dst.log")
    wait_path(os.path.join(TMP, "src-qmp.sock"), src, "source QEMU")
    wait_path(os.path.join(TMP, "dst-qmp.sock"), dst, "destination QEMU")
    qs = QMP.unix(os.path.join(TMP, "src-qmp.sock"), timeout=120)
    qd = QMP.unix(os.path.join(TMP, "dst-qmp.sock"), timeout=120)
    wait_serial("src-serial.txt", "ROUND-START 2", 600, src)
    step("guest in its second round on the source")
    # Frames seen on the destination's tap before the migration (none expected
    # from the guest: nothing is connected to it yet).
    result["frames_before"] = read_frames(pkt, 0.2)
    # A live phase of several seconds (about 100 MB to send at 16 MiB/s), so
    # the guest's next read, two seconds after ROUND-START, lands in it and
    # the back-end writes guest pages while it logs. Unthrottled, QEMU could
    # stop the guest within a second, before the read, and the log is never
    # used (seen in CI: 0 pages marked).
    qs.cmd("migrate-set-parameters", max_bandwidth=16 << 20, downtime_limit=500)
    qs.cmd("migrate", uri=f"unix:{mig}")
    deadline = time.monotonic() + 600
    while True:
        st = qs.cmd("query-migrate")
        if st.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"migration did not end: {st}")
        time.sleep(0.5)
    result["migration"] = st
    step(f"migration {st['status']}")
    if st["status"] != "completed":
        return
    # The RARP frames come from the destination back-end within a second.
    result["frames_after"] = read_frames(pkt, 5)
    step(f"{len(result['frames_after'])} frames on vutD")
    result["dst_status"] = qd.cmd("query-status")
    # The host side of the guest's network moves to the destination's tap.
    ip("addr", "del", HOST_IP, "dev", "vutS")
    ip("addr", "add", HOST_IP, "dev", "vutD")
    # Rounds begun by now may have pinged before the move; only later ones
    # judge the path through the destination's tap. A round pings after an
    # 8 MiB read, so one that begins just before this is still early.
    result["last_round_begun_before_move"] = last_round_begun()
    # What crosses the destination's tap once the host answers there.
    result["frames_moved"] = read_frames(pkt, 8)
    # The source is done: its frontend leaves the daemons, which then report
    # what they logged.
    qs.cmd("quit")
    src.wait(60)
    deadline = time.monotonic() + 600
    while True:
        text = serial("dst-serial.txt")
        done = finished_rounds(text)
        moved = [n for n in done if n > result["last_round_begun_before_move"]]
        if (len(done) > ROUNDS_AFTER and moved) or time.monotonic() > deadline \
                or dst.poll() is not None:
            break
        time.sleep(0.5)
    step(f"destination shows {len(done)} finished rounds, {len(moved)} begun after the move")
    result["neigh_dst"] = subprocess.run(["ip", "neigh", "show", "dev", "vutD"],
                                         capture_output=True, text=True).stdout.strip()
    qd.cmd("quit")
    dst.wait(60)


T0 = time.monotonic()
try:
    main()
except Exception as e:  # reported to the test, which fails with it
    result["error"] = f"{type(e).__name__}: {e}"
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
    with open(os.path.join(WORK, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("HELPER-DONE", flush=True)
