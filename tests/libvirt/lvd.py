"""A private libvirtd (and virtlogd) for tests, with nothing host-wide.

Both daemons run in a mount namespace of their own (unshare -m) where
/etc/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and
/run/libvirt are bind mounts of directories under one scratch directory.
The configuration there runs domains as root without cgroups, namespaces,
security drivers or ownership changes, and logs the qemu driver (its QMP
traffic included) to log/libvirtd.log. virsh reaches the daemon through
qemu:///system?socket=<scratch>/run/libvirt-sock. Closing the Libvirtd
stops both daemons by their pids; the namespace and its mounts go with them.

Runs as root (mounts), on the host or inside the lab's L1.
"""
import os
import shlex
import shutil
import signal
import subprocess
import time

LIBVIRTD_CONF = """\
log_filters = "1:qemu 1:libvirt 4:object 4:json 4:event 4:util 4:rpc 4:security"
log_outputs = "1:file:{log}/libvirtd.log"
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
"""

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

VIRTLOGD_CONF = """\
log_outputs = "1:file:{log}/virtlogd.log"
"""

# Where libvirt 9.0 (Debian's build) keeps its state, bound to our own dirs.
MOUNTS = [("etc", "/etc/libvirt"), ("lib", "/var/lib/libvirt"),
          ("cache", "/var/cache/libvirt"), ("log", "/var/log/libvirt"),
          ("run", "/run/libvirt")]


class Libvirtd:
    def __init__(self, scratch):
        self.dir = os.path.abspath(scratch)
        self.proc = None
        for sub, _ in MOUNTS:
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        etc = os.path.join(self.dir, "etc")
        log = os.path.join(self.dir, "log")
        for name, text in (("libvirtd.conf", LIBVIRTD_CONF), ("qemu.conf", QEMU_CONF),
                           ("virtlogd.conf", VIRTLOGD_CONF)):
            with open(os.path.join(etc, name), "w") as f:
                f.write(text.format(log=log))
        self.uri = f"qemu:///system?socket={self.dir}/run/libvirt/libvirt-sock"
        self.log = os.path.join(log, "libvirtd.log")

    def start(self, timeout=120):
        binds = " && ".join(
            f"mount --bind {shlex.quote(os.path.join(self.dir, sub))} {target}"
            for sub, target in MOUNTS if target != "/run/libvirt")
        run = shlex.quote(os.path.join(self.dir, "run"))
        # /run/libvirt may not exist (and / may be read-only): bind over /run
        # itself, last, so the other sources are still reachable while binding.
        # /var/lock is /run/lock: virsh console locks the pty there
        script = (f"set -e; {binds}; mkdir -p {run}/libvirt {run}/lock; "
                  f"mount --bind {run} /run; "
                  "virtlogd -d -p /run/virtlogd.pid; "
                  "exec libvirtd -p /run/libvirtd.pid")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.dir, "LC_ALL": "C"}
        self.stderr = open(os.path.join(self.dir, "log", "libvirtd.stderr"), "w")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                      "sh", "-c", script], env=env,
                                     stdout=self.stderr, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        sock = os.path.join(self.dir, "run", "libvirt", "libvirt-sock")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"libvirtd exited with {self.proc.returncode}: "
                                   + self.tail())
            if os.path.exists(sock) and self.virsh("version", timeout=60)[0] == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("libvirtd did not answer in time: " + self.tail())

    def healthy(self):
        return self.proc.poll() is None and self.virsh("list", "--all", timeout=60)[0] == 0

    def virsh(self, *args, timeout=120):
        """(status, stdout, stderr) of one virsh command."""
        try:
            p = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True,
                               text=True, timeout=timeout, env={
                                   "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
                                   "HOME": self.dir})
        except subprocess.TimeoutExpired:
            return 124, "", f"virsh {' '.join(args)}: timed out after {timeout} s"
        return p.returncode, p.stdout, p.stderr

    def tail(self, n=3000):
        text = ""
        for name in ("libvirtd.stderr", "libvirtd.log"):
            try:
                with open(os.path.join(self.dir, "log", name), errors="replace") as f:
                    text += f"--- {name}\n" + f.read()[-n:]
            except OSError:
                pass
        return text

    def qmp_traffic(self):
        """The QMP lines libvirtd sent and received, from its debug log."""
        try:
            with open(self.log, errors="replace") as f:
                return [ln.rstrip("\n") for ln in f
                        if "QEMU_MONITOR_IO_WRITE" in ln or "QEMU_MONITOR_RECV_REPLY" in ln
                        or "QEMU_MONITOR_SEND_MSG" in ln]
        except OSError:
            return []

    def close(self):
        for name in ("libvirtd.pid", "virtlogd.pid"):
            try:
                with open(os.path.join(self.dir, "run", name)) as f:
                    pid = int(f.read().strip() or 0)
                if pid > 0:
                    os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        if self.proc:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.stderr.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def cleanup(scratch):
    shutil.rmtree(scratch, ignore_errors=True)
