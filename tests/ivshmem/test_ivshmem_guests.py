#!/usr/bin/env python3
"""Two real guests on one vireo-ivshmem-server (in the lab where KVM cannot
boot Linux directly): Debian's 6.1 kernel has no ivshmem driver, so each
guest drives its ivshmem-doorbell device through sysfs with a small static
helper (tests/ivshmem/guest/ivshmem-peer.c). The guests tell each other their
IVPosition through the shared memory, write a message the other reads back,
and ring each other's doorbells; the interrupt shows up as the vector's
pending bit (vectors stay masked, so no driver is needed). The shared
memory is a real KVM memory slot in each guest, so the same page seen by
both proves BAR2 is mapped, not trapped."""
import os
import shlex
import subprocess
import sys

import vtest

sys.path.insert(0, os.path.join(vtest.ROOT, "tests", "lab"))
import lab  # noqa: E402

HELPER_SRC = os.path.join(vtest.ROOT, "tests", "ivshmem", "guest", "ivshmem-peer.c")

# Guest A announces its id at 0x100 and a message at 0x400; guest B its id at
# 0x200. Each waits for the other's id, then A rings B's vector 1 and B,
# once it saw that interrupt, rings A's vector 0.
GUEST_INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
role=$(sed -n 's/.*role=\([ab]\).*/\1/p' /proc/cmdline)
say() { echo "$*" > /dev/ttyS0; }
me=$(ivshmem-peer id) || { say IVSHMEM-FAIL-id; poweroff -f; }
say "IVSHMEM-$role-id=$me"
if [ "$role" = a ]; then mine=0x100; theirs=0x200; else mine=0x200; theirs=0x100; fi
ivshmem-peer write $mine "id:$me"
peer=""
for i in $(seq 1 600); do
    v=$(ivshmem-peer read $theirs 16)
    case "$v" in id:*) peer=${v#id:}; break;; esac
    sleep 0.1
done
[ -n "$peer" ] || { say IVSHMEM-FAIL-nopeer; poweroff -f; }
say "IVSHMEM-$role-peer=$peer"
if [ "$role" = a ]; then
    ivshmem-peer write 0x400 "hello from $me"
    sleep 0.5
    ivshmem-peer ring $peer 1
    ivshmem-peer wait 0 60000 && say IVSHMEM-a-got-interrupt
else
    ivshmem-peer wait 1 60000 && say IVSHMEM-b-got-interrupt
    say "IVSHMEM-b-read=$(ivshmem-peer read 0x400 64)"
    ivshmem-peer ring $peer 0
fi
say IVSHMEM-$role-done
poweroff -f
"""


def build_helper(work):
    out = os.path.join(work, "ivshmem-peer")
    subprocess.run(["cc", "-static", "-O2", "-Wall", "-Werror", "-o", out, HELPER_SRC],
                   check=True)
    return out


def test_two_guests_share_memory_and_ring_each_other():
    server = os.path.join(vtest.BUILD, "vireo-ivshmem-server")
    if not os.path.exists(server):
        vtest.skip("vireo-ivshmem-server is not built")
    work = lab.workdir("ivshmem-")
    helper = build_helper(work)
    initrd = lab.build_initramfs(os.path.join(work, "initrd.gz"), GUEST_INIT,
                                 files={"bin/ivshmem-peer": (open(helper, "rb").read(), 0o755)})
    vireo = vtest.binary("vireo")
    logs = {r: os.path.join(work, f"console-{r}.txt") for r in "ab"}

    def guest(role):
        argv = [vireo, "-accel", "kvm", "-m", "256M", "-smp", "1", "-display", "none",
                "-nodefaults", "-kernel", lab.kernel_path(), "-initrd", initrd,
                "-append", f"console=ttyS0 quiet panic=-1 role={role}",
                "-serial", f"file:{logs[role]}",
                "-chardev", "socket,id=iv,path=$LAB_TMP/iv.sock",
                "-device", "ivshmem-doorbell,chardev=iv,vectors=2,id=iv0"]
        return " ".join(a if "$LAB_TMP" in a else shlex.quote(a) for a in argv)

    script = "\n".join([
        f"{shlex.quote(server)} -F -S $LAB_TMP/iv.sock -M vireo-ivtest-$$ -l 1M -n 2 &",
        "srv=$!",
        "for i in $(seq 1 100); do [ -S $LAB_TMP/iv.sock ] && break; sleep 0.1; done",
        f"{guest('a')} & a=$!",
        f"{guest('b')} & b=$!",
        "wait $a; ra=$?; wait $b; rb=$?",
        "kill $srv; wait $srv",
        'echo "exit a=$ra b=$rb"',
    ])
    status, output = lab.run_vmm(script, timeout=400)
    consoles = {r: open(logs[r], errors="replace").read() if os.path.exists(logs[r]) else ""
                for r in "ab"}
    detail = output[-3000:] + "\n--- a ---\n" + consoles["a"][-1500:] + \
        "\n--- b ---\n" + consoles["b"][-1500:]
    assert status == 0 and "exit a=0 b=0" in output, detail
    a, b = consoles["a"], consoles["b"]
    id_a = a.split("IVSHMEM-a-id=")[1].split()[0]
    id_b = b.split("IVSHMEM-b-id=")[1].split()[0]
    assert id_a != id_b, detail
    assert f"IVSHMEM-a-peer={id_b}" in a and f"IVSHMEM-b-peer={id_a}" in b, detail
    assert "IVSHMEM-b-got-interrupt" in b, detail
    assert f"IVSHMEM-b-read=hello from {id_a}" in b, detail
    assert "IVSHMEM-a-got-interrupt" in a, detail
    for role in "ab":
        print("\n".join(line for line in consoles[role].splitlines() if "IVSHMEM" in line))


if __name__ == "__main__":
    vtest.main()
