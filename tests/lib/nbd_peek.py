"""A qcow2 bitmap's dirty runs as Debian's own tools read them: qemu-nbd
exports the image read-only with the bitmap, nbdinfo maps
qemu:dirty-bitmap:NAME. Used by tests that check what a VMM or daemon
marked, without trusting vireo's reader."""
import json
import os
import subprocess
import tempfile
import time


def dirty_extents(img, bitmap, timeout=30):
    """[(offset, length), ...] of the dirty runs of @bitmap in qcow2 @img."""
    with tempfile.TemporaryDirectory(prefix="nbd-peek-") as tmp:
        sock = os.path.join(tmp, "nbd.sock")
        nbd = subprocess.Popen(["qemu-nbd", "-r", "-f", "qcow2", "-B", bitmap, "-k", sock, img])
        try:
            deadline = time.time() + 20
            while not os.path.exists(sock):
                assert time.time() < deadline and nbd.poll() is None, "qemu-nbd did not start"
                time.sleep(0.05)
            r = subprocess.run(["nbdinfo", "--json", f"--map=qemu:dirty-bitmap:{bitmap}",
                                f"nbd+unix:///?socket={sock}"], capture_output=True, text=True,
                               timeout=timeout)
            assert r.returncode == 0, r.stderr
        finally:
            nbd.terminate()
            nbd.wait(10)
    return [(e["offset"], e["length"]) for e in json.loads(r.stdout) if e["type"] & 1]
