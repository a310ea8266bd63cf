#!/usr/bin/env python3
"""Kill a vireo writer with SIGKILL at random points during allocating writes,
then show qemu-img check finds no corruption (leaks are allowed) and every
write acknowledged by a flush before the kill reads back."""
import json
import os
import random
import signal
import subprocess
import time

import vtest
from imgtest import Scratch, need_qemu, qimg, qio, vimg, vireo_img

ROUNDS = int(os.environ.get("VIREO_CRASH_ROUNDS", "100"))


def one_round(s, rnd, i):
    img = s.path(f"crash{i % 2}.qcow2")
    if os.path.exists(img):
        os.unlink(img)
    opts = rnd.choice(["cluster_size=65536", "cluster_size=4096", "cluster_size=512,refcount_bits=1",
                       "refcount_bits=64,cluster_size=4096", "compat=0.10"])
    vimg("create", "-q", "-f", "qcow2", "-o", opts, img, "64M")
    step = rnd.choice([4096, 69632, 1052672, 12288])
    pattern = rnd.randrange(1, 255)
    env = dict(os.environ, VIREO_BENCH_LOG="1")
    args = [vireo_img(), "bench", "-w", "-q", "-c", "100000", "-d", str(rnd.choice([1, 4, 32])),
            "-s", "4096", "-S", str(step), "--pattern", str(pattern),
            "--flush-interval", str(rnd.choice([1, 7, 50])), img]
    if rnd.random() < 0.5:
        args[2:2] = ["-t", "none", "-i", "io_uring"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, env=env)
    time.sleep(rnd.uniform(0.01, 0.25))
    p.send_signal(signal.SIGKILL)
    log = p.communicate()[1].decode(errors="replace").splitlines()
    p.wait()
    durable = set()
    pending = set()
    for line in log:
        if line.startswith("done "):
            pending.add(int(line.split()[1]))
        elif line == "flushed":
            durable |= pending
            pending = set()
    r = json.loads(qimg("check", "--output=json", img, ok=(0, 3)).stdout)
    assert r.get("corruptions", 0) == 0, (opts, r)
    # the bench wraps around the disk: only the sample of offsets is checked, quickly
    sample = sorted(durable)[-64:]
    if sample:
        qio(img, *[f"read -P {pattern} {off} 4096" for off in sample])
    return len(durable)


def test_sigkill_during_allocating_writes():
    need_qemu()
    rnd = random.Random(int(os.environ.get("VIREO_CRASH_SEED", "1234")))
    total = 0
    with Scratch() as s:
        for i in range(ROUNDS):
            total += one_round(s, rnd, i)
    # the test is only meaningful if flushed writes were actually checked
    assert total > ROUNDS, total


vtest.main()
