#!/usr/bin/env python3
"""Messages a guest can trigger are rate-limited and never block vireo.

The guest (driven over qtest) breaks a virtqueue thousands of times: stderr
must stay at a handful of lines per second, with a count of what was held
back. With stderr a full pipe that nobody reads, the monitor must keep
answering and SIGTERM must still end vireo promptly.
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))
import vdriver  # noqa: E402
import vmm  # noqa: E402
import vtest  # noqa: E402

BURST = 5           # lines a call site may print at once (util/log.h)


def rng(v):
    slot = vdriver.Pci(v.qtest).find()[0][0]
    return vdriver.VirtioPciDevice(v.qtest, slot)


def break_lines(d, times):
    """qtest lines that reset the device and break queue 0 (size 3) each time."""
    one = [f"writeb 0x{d.common(vdriver.STATUS):x} 0x0",
           f"writew 0x{d.common(vdriver.Q_SELECT):x} 0x0",
           f"writew 0x{d.common(vdriver.Q_SIZE):x} 0x3",
           f"writew 0x{d.common(vdriver.Q_ENABLE):x} 0x1"]
    return one * times


def pipeline(qt, lines, batch=2000):
    for i in range(0, len(lines), batch):
        part = lines[i:i + batch]
        qt.sock.sendall("".join(l + "\n" for l in part).encode())
        for _ in part:
            r = qt.line()
            assert r.startswith("OK"), r


def test_broken_queue_flood_is_rate_limited():
    with vmm.Vireo("-device", "virtio-rng-pci", qtest=True) as v:
        d = rng(v)
        start = time.monotonic()
        pipeline(v.qtest, break_lines(d, 3000))
        assert d.status() & vdriver.S_NEEDS_RESET
        time.sleep(1.2)                      # credit for one more line
        pipeline(v.qtest, break_lines(d, 1))
        took = time.monotonic() - start
        v.proc.send_signal(signal.SIGTERM)
        assert v.wait() == 0
        lines = v.stderr.splitlines()
        broken = [l for l in lines if "needs a reset" in l]
        summaries = [l for l in lines if "similar messages suppressed" in l]
        assert broken, v.stderr
        # a burst, then about one line per second
        assert len(broken) <= BURST + int(took) + 2, (len(broken), took)
        assert summaries, v.stderr
        # every break is either printed or counted, once
        held = sum(int(l.split()[2]) for l in summaries)
        assert held + len(broken) == 3001, (held, len(broken))


def fill_pipe(pid):
    """Fill vireo's stderr pipe through a private non-blocking description."""
    fd = os.open(f"/proc/{pid}/fd/2", os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except BlockingIOError:
        pass
    # fill the last partial page byte by byte
    try:
        while True:
            os.write(fd, b"x")
    except BlockingIOError:
        pass
    os.close(fd)


def test_full_stderr_pipe_does_not_block_monitor():
    with vmm.Vireo("-device", "virtio-rng-pci", qtest=True) as v:
        d = rng(v)
        q = v.qmp()
        fill_pipe(v.proc.pid)
        v.qtest.sock.settimeout(5)
        q.sock.settimeout(5)
        pipeline(v.qtest, break_lines(d, 50))
        start = time.monotonic()
        assert q.cmd("query-status")["status"] == "running"
        assert time.monotonic() - start < 1
        start = time.monotonic()
        v.proc.send_signal(signal.SIGTERM)
        # stderr is still full: exiting must not wait for it
        assert v.proc.wait(5) == 0
        assert time.monotonic() - start < 1.5


if __name__ == "__main__":
    vtest.main()
