"""What a QEMU system emulator offers as accelerators, asked once per binary.

Debian builds qemu-system-x86_64 without the qtest accelerator, which both
QEMU's qtest programs (libqtest starts its binary with -accel qtest) and the
Python iotests' VMs need; the qtest suite and scripts/qemu-tests decide from
here how to run without it.
"""
import functools
import subprocess


@functools.lru_cache(maxsize=None)
def accelerators(qemu):
    """The names `QEMU -accel help` lists, below its heading; an empty tuple
    if the binary cannot be run or lists nothing."""
    try:
        p = subprocess.run([qemu, "-accel", "help"], capture_output=True,
                           text=True, errors="replace", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    lines = [l.strip() for l in p.stdout.splitlines()]
    # The heading ends with a colon ("Accelerators supported in QEMU binary:");
    # every later non-empty line is one accelerator's name.
    names = [l for l in lines if l and not l.endswith(":")]
    return tuple(names)


def has_qtest_accel(qemu):
    return "qtest" in accelerators(qemu)
