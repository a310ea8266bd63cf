#!/usr/bin/env python3
"""qcow2 grows its file ahead of cluster allocation (fallocate in steps of
1 MiB doubling to 64 MiB), so allocating O_DIRECT writes do not extend the
file one by one.  Checked with Debian's qemu-img and qemu-io:

  * after a clean close the unused tail is gone: the file ends where
    qemu-img check says the image ends, and the image is clean;
  * while the writer runs the file is longer than the image; killed then
    (SIGKILL after a flush), the tail is free space: no corruption, no
    leak beyond the clusters a kill may leave counted but unmapped, flushed
    writes read back;
  * reopened after the crash, new clusters land in that tail and read as
    written, with zeros around the data.
"""
import json
import os
import signal
import subprocess
import time

import vtest
from imgtest import Scratch, need_qemu, qimg, qio, vimg, vireo_img


def check_json(img):
    return json.loads(qimg("check", "--output=json", img, ok=(0, 2, 3)).stdout)


def test_clean_close_trims_the_tail():
    need_qemu()
    with Scratch() as s:
        img = s.path("t.qcow2")
        vimg("create", "-q", "-f", "qcow2", img, "1G")
        vimg("bench", "-q", "-w", "-t", "none", "-c", "300", "-d", "8", "-s", "4096",
             "-S", "1048576", "--pattern", "90", img)
        r = check_json(img)
        assert r.get("corruptions", 0) == 0 and r.get("leaks", 0) == 0, r
        assert os.path.getsize(img) == r["image-end-offset"], (os.path.getsize(img), r)
        qio(img, "read -P 90 0 4096", "read -P 90 299M 4096", "read -P 0 4096 61440")


def test_sigkill_leaves_a_free_tail_and_reopen_reuses_it():
    need_qemu()
    with Scratch() as s:
        img = s.path("k.qcow2")
        vimg("create", "-q", "-f", "qcow2", img, "1G")
        env = dict(os.environ, VIREO_BENCH_LOG="1")
        p = subprocess.Popen([vireo_img(), "bench", "-w", "-q", "-t", "none", "-c", "1000000",
                              "-d", "4", "-s", "4096", "-S", "1048576", "--pattern", "33",
                              "--flush-interval", "16", img],
                             stderr=subprocess.PIPE, env=env)
        durable, pending, flushes = set(), set(), 0
        deadline = time.monotonic() + 120
        while flushes < 20 and time.monotonic() < deadline:
            line = p.stderr.readline().decode()
            if not line:
                break
            if line.startswith("done "):
                pending.add(int(line.split()[1]))
            elif line.strip() == "flushed":
                durable |= pending
                pending = set()
                flushes += 1
        p.send_signal(signal.SIGKILL)
        p.communicate()
        assert flushes >= 20, "the writer made no progress"
        r = check_json(img)
        # Leaks are allowed after a kill (clusters counted, not yet mapped).
        assert r.get("corruptions", 0) == 0, r
        assert os.path.getsize(img) > r["image-end-offset"], "no tail grown ahead"
        sample = sorted(durable)[-32:]
        qio(img, *[f"read -P 33 {off} 4096" for off in sample])
        # Reopen: new clusters go into the old tail, which must read as zeros
        # around the data even though the file already covered it.
        end = r["image-end-offset"]
        vimg("bench", "-q", "-w", "-t", "none", "-c", "64", "-d", "4", "-s", "4096",
             "-o", "512M", "-S", "1048576", "--pattern", "44", img)
        r2 = check_json(img)
        assert r2.get("corruptions", 0) == 0 and r2.get("leaks", 0) == r.get("leaks", 0), r2
        assert r2["image-end-offset"] > end
        qio(img, "read -P 44 512M 4096", "read -P 0 537923584 61440",
            "read -P 44 575M 4096", f"read -P 33 {sample[-1]} 4096")


if __name__ == "__main__":
    vtest.main()
