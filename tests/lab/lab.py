"""The nested KVM test lab: run real-guest tests where /dev/kvm cannot boot Linux.

Some hosts expose a /dev/kvm that cannot run a stock Linux guest (the kvm_pvm
module). There, this module boots an "L1" Linux guest under QEMU's TCG with an
emulated AMD SVM CPU; inside it Debian's kvm-amd gives a working /dev/kvm. The
host root is shared read-only into L1 over 9p, so the project's build and the
host's tools run there unchanged inside `chroot /host`.

Entry points (see README.md):
  run_vmm(script, timeout)   run a shell script where KVM can boot Linux:
                             directly on the host when possible, else in a Lab
  Lab                        one booted L1; lab.run(script, timeout) many times
  build_initramfs(...)       an L2 guest initramfs from busybox-static + modules
                             (guest_image.py, re-exported here)
  kvm_can_boot_linux()       whether the host /dev/kvm can boot Linux
  kernel_path(), kernel_version(), modules_dir()

Python 3.11 standard library only.
"""
import atexit
import ctypes
import fcntl
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_image import (  # noqa: F401  (re-exported: tests use lab.NAME)
    Cpio, LOAD_MODULES, LabError, _log, build_initramfs, kernel_path, kernel_version, module_available, modules_dir, read_cpio, resolve_modules, vmlinux_path,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Exit status reported when a script ran out of time (as coreutils timeout).
TIMEOUT = 124
L1_HUNG = "[vireo-lab: L1 stopped answering and was killed]"
# A tmpfs inside L1 (and on any Linux host): UNIX sockets cannot be bound on
# the 9p-shared host root, so jobs get $LAB_TMP, a fresh directory under it.
L1_TMPFS = "/dev/shm"

# Modules of the L1 guest, in load order. Dependencies are added
# automatically; the optional ones are skipped when the kernel lacks them.
L1_MODULES = [
    "irqbypass", "ccp", "kvm nx_huge_pages=off", "kvm-amd",
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
    "virtio_pci", "virtio_console",
    "netfs", "fscache", "9pnet", "9pnet_virtio", "9p",
]
L1_OPTIONAL_MODULES = ["tun", "vhost_iotlb", "vhost", "vhost_net", "vsock", "vhost_vsock"]

# Environment passed from the caller into jobs run inside L1 (on the host the
# whole environment is inherited).
PASS_ENV = re.compile(r"^(PATH|HOME|LANG|LC_\w+|TERM|VIREO_\w+|ASAN_OPTIONS|UBSAN_OPTIONS|"
                      r"LSAN_OPTIONS|PYTHONPATH|PYTHONDONTWRITEBYTECODE)$")

# ---------------------------------------------------------------------------
# Host detection

_KVM_GET_API_VERSION = 0xAE00
_kvm_verdict = None


def kvm_can_boot_linux():
    """True when the host /dev/kvm can run a stock Linux guest.

    VIREO_LAB=force makes this False (always use the lab), VIREO_LAB=never
    makes it True (never use the lab). Otherwise it is False when /dev/kvm is
    missing or unusable, or when the host KVM module is kvm_pvm, which runs
    tiny real-mode code but stalls a real kernel in early boot.
    """
    global _kvm_verdict
    override = os.environ.get("VIREO_LAB", "").strip().lower()
    if override == "force":
        return False
    if override == "never":
        return True
    if _kvm_verdict is None:
        _kvm_verdict = _probe_kvm()
    return _kvm_verdict


def _probe_kvm():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION) != 12:
            return False
    except OSError:
        return False
    finally:
        os.close(fd)
    return not _kvm_pvm_loaded()


def _kvm_pvm_loaded():
    # /proc/modules may not exist (no CONFIG_MODULES, or hidden); /sys/module
    # lists both loaded modules and built-ins that have parameters.
    if os.path.isdir("/sys/module/kvm_pvm"):
        return True
    try:
        with open("/proc/modules") as f:
            return any(line.split()[0] == "kvm_pvm" for line in f if line.strip())
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Jobs: one shell script run with a given environment, on the host or in L1

def _job_wrapper(script_path, env, cwd, tmp):
    """The shell wrapper every job runs under (same on host and in L1): it sets
    the environment and runs the script. The caller creates and removes $LAB_TMP
    (in L1 the agent does, with its own busybox: each exec from the 9p host
    root costs time under TCG)."""
    lines = ["# vireo lab job wrapper"]
    for k, v in sorted(env.items()):
        lines.append(f"export {k}={shlex.quote(str(v))}")
    lines += [
        f"export LAB_TMP={shlex.quote(tmp)} TMPDIR={shlex.quote(tmp)}",
        f"cd {shlex.quote(cwd)} || exit 125",
        f"exec /bin/sh {shlex.quote(script_path)}",
    ]
    return "\n".join(lines) + "\n"


def _as_script(script):
    if isinstance(script, (list, tuple)):
        return shlex.join(str(a) for a in script) + "\n"
    return script if script.endswith("\n") else script + "\n"


class _Tail:
    """Follows a job's output file, echoing new bytes to a stream."""

    def __init__(self, path, stream):
        self.path, self.stream, self.pos = path, stream, 0

    def poll(self):
        if self.stream is None:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except OSError:
            return
        if chunk:
            self.pos += len(chunk)
            buf = getattr(self.stream, "buffer", None)
            if buf is not None:
                self.stream.flush()
                buf.write(chunk)
                buf.flush()
            else:
                self.stream.write(chunk.decode(errors="replace"))
                self.stream.flush()


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _timeout_note(timeout):
    return f"\n[vireo-lab: timed out after {timeout:g} s]\n"


def run_on_host(script, timeout=300, env=None, cwd=None, stream=None, jobs_dir=None):
    """Run SCRIPT with /bin/sh on this host, like a Lab job. Returns
    (exit_status, output); output is stdout and stderr merged; a timeout kills
    the script's whole process group and returns (TIMEOUT, output + note)."""
    jobs_dir = jobs_dir or os.path.join(_session_root(), ".jobs")
    os.makedirs(jobs_dir, exist_ok=True)
    job = tempfile.mkdtemp(prefix="host-", dir=jobs_dir)
    script_path = os.path.join(job, "script.sh")
    with open(script_path, "w") as f:
        f.write(_as_script(script))
    tmp = tempfile.mkdtemp(prefix="vireo-lab-tmp-", dir=L1_TMPFS if os.path.isdir(L1_TMPFS) else None)
    full_env = dict(os.environ, LAB_MODE="host", LAB_SHARED=_session_root())
    full_env.update(env or {})
    with open(os.path.join(job, "run.sh"), "w") as f:
        f.write(_job_wrapper(script_path, {}, cwd or os.getcwd(), tmp))
    out_path = os.path.join(job, "out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(["/bin/sh", os.path.join(job, "run.sh")], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True)
    tail, deadline, timed_out = _Tail(out_path, stream), time.monotonic() + timeout, False
    while proc.poll() is None:
        if time.monotonic() > deadline:
            timed_out = True
            break
        tail.poll()
        time.sleep(0.05)
    _kill_group(proc.pid)
    status = proc.wait()
    tail.poll()
    shutil.rmtree(tmp, ignore_errors=True)
    output = _read_text(out_path)
    shutil.rmtree(job, ignore_errors=True)
    if timed_out:
        return TIMEOUT, output + _timeout_note(timeout)
    return (128 - status if status < 0 else status), output


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------
# L1

# The L1 guest's /init. It mounts the host root (read-only) and the writable
# share at the same path as on the host, then either serves jobs on the
# virtio-serial port named lab.ctl or gives a shell on the console.
#
# Control protocol, one text line per message:
#   L1 -> host  "ready UPTIME"            once, when jobs can run
#   host -> L1  "run ID SECONDS"          run $SHARE/.jobs/ID/run.sh in the chroot;
#                                         output goes to $SHARE/.jobs/ID/out
#   L1 -> host  "done ID STATUS"          the job ended with exit STATUS; a job
#                                         killed for time also leaves .../timedout
#   host -> L1  "quit 0 0"                power off
L1_INIT = r"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "LAB-INIT-FAILED: $*"; sync; poweroff -f; sleep 10; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "${w#*=}";; esac; done; }
load-modules 2>&1 | grep -v 'File exists'
SHARE=$(arg lab.share)
MODE=$(arg lab.mode)
P9=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /host
mount -t 9p -o $P9,ro,cache=$(arg lab.cache) hostroot /host || fail "cannot mount the host root"
mount -t proc proc /host/proc || fail "cannot mount /host/proc"
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t tmpfs -o mode=755 tmpfs /host/run
mkdir -p "/host$SHARE" 2>/dev/null
mount -t 9p -o $P9 labshare "/host$SHARE" || fail "cannot mount the share at $SHARE"
[ -c /dev/kvm ] || fail "no /dev/kvm (kvm-amd did not load)"

if [ "$MODE" = shell ]; then
    # The session leader opens the console, so it becomes the controlling tty.
    JOB=$(arg lab.job)
    if [ -n "$JOB" ]; then
        J="$SHARE/.jobs/$JOB"
        mkdir -p "/host/dev/shm/lab-$JOB"
        setsid sh -c 'exec <>/dev/ttyS0 >&0 2>&0; chroot /host /bin/sh "$1"; echo $? >"$2"' \
            sh "$J/run.sh" "/host$J/status"
    else
        echo "vireo-lab: L1 shell in chroot /host; /dev/kvm ready; shared dir $SHARE; exit powers off"
        export HOME=/root TERM=xterm TMPDIR=/dev/shm LAB_MODE=lab LAB_SHARED="$SHARE" LAB_TMP=/dev/shm
        setsid sh -c 'exec <>/dev/ttyS0 >&0 2>&0; exec chroot /host /bin/sh -c "cd /; exec bash -i || exec sh -i"'
    fi
    sync; poweroff -f
fi

PORT=
for d in /sys/class/virtio-ports/*; do
    [ "$(cat "$d/name" 2>/dev/null)" = lab.ctl ] && PORT=/dev/${d##*/}
done
[ -n "$PORT" ] || fail "no lab.ctl virtio-serial port"
exec 3<>"$PORT"

run_job() {
    J="$SHARE/.jobs/$1"
    mkdir -p "/host/dev/shm/lab-$1"
    setsid chroot /host /bin/sh "$J/run.sh" >"/host$J/out" 2>&1 </dev/null &
    pid=$!
    # The watchdog is a session of its own so that killing it takes its sleep too.
    setsid sh -c "sleep $2; : >'/host$J/timedout'; kill -KILL -$pid" >/dev/null 2>&1 &
    dog=$!
    wait "$pid"
    st=$?
    kill -KILL -"$dog" 2>/dev/null
    # Whatever the job left running in its session goes too.
    kill -KILL -"$pid" 2>/dev/null
    rm -rf "/host/dev/shm/lab-$1"
    echo "done $1 $st" >&3
}

echo "ready $(cut -d' ' -f1 /proc/uptime)" >&3
# A heartbeat: the host tells a frozen L1 from a long job by its silence.
( while sleep 5; do echo "tick" >&3; done ) &
while read -r verb id limit <&3; do
    case "$verb" in
        run) run_job "$id" "$limit" ;;
        quit) break ;;
    esac
done
sync
poweroff -f
"""


def l1_initramfs(version=None):
    """Path of the (cached) L1 initramfs for that kernel."""
    version = version or kernel_version()
    mods = L1_MODULES + [m for m in L1_OPTIONAL_MODULES if module_available(m, version)]
    return build_initramfs(None, L1_INIT, modules=mods, kernel_version=version)


def _set_pdeathsig():
    # Runs in the QEMU child before exec: if the test process dies (even by
    # SIGKILL from a runner's timeout), the kernel kills QEMU too.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_session = None


def _session_root():
    """A per-process directory shared with L1 (writable there, same path);
    workdir() directories and job files live here. Removed at exit."""
    global _session
    if _session is None:
        _session = tempfile.mkdtemp(prefix="vireo-lab-")
        atexit.register(shutil.rmtree, _session, True)
    return _session


class Lab:
    """One L1 guest with a working /dev/kvm. Use as a context manager:

        with lab.Lab() as l1:
            status, output = l1.run("ls -l /dev/kvm", timeout=30)

    Jobs run with /bin/sh inside `chroot /host` (the host root, read-only),
    in the caller's working directory, with $LAB_MODE=lab, $LAB_SHARED (the
    writable shared directory, same path on both sides), $LAB_TMP and $TMPDIR
    (a fresh directory on a tmpfs, for UNIX sockets and scratch files).
    """

    def __init__(self, shared_dir=None, memory_mb=4096, boot_timeout=180, kernel=None,
                 qemu="qemu-system-x86_64", extra_qemu_args=()):
        self.shared = os.path.abspath(shared_dir or _session_root())
        self.tmpfs = L1_TMPFS
        self.memory_mb = memory_mb
        self.boot_timeout = boot_timeout
        self.kernel = kernel or kernel_path()
        self.qemu = qemu
        self.extra_qemu_args = list(extra_qemu_args)
        # 9p caching of the host root: "none" sees host changes at once (a
        # rebuilt binary, a new image); "loose" makes repeated execs faster
        # but may serve stale files.
        self.cache = os.environ.get("VIREO_LAB_9P_CACHE", "none")
        # Seconds past a job's time limit before L1 is declared hung.
        self.grace = 60
        # Seconds without a heartbeat (L1 sends one every 5 s) before L1
        # is declared hung whatever the job's limit: a frozen L1 (seen
        # under TCG on a loaded host, with nothing on its console) is then
        # found in minutes, not after a long job's whole limit.
        self.silence_limit = 120
        self.proc = None
        self.sock = None
        self.boot_seconds = None
        self._rundir = None
        self._buf = b""
        self._next_job = 0
        if re.search(r"\s", self.shared):
            raise LabError(f"shared dir must not contain whitespace: {self.shared!r}")

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def boot_kernel(self):
        """The file L1 boots: the kernel's uncompressed ELF (PVH entry, saves
        ~2 s of decompression under TCG) unless VIREO_LAB_PVH=0."""
        if os.environ.get("VIREO_LAB_PVH", "1") != "0":
            return vmlinux_path(self.kernel) or self.kernel
        return self.kernel

    def qemu_command(self, initrd, mode="agent", ctl_path=None, console="file", job=None):
        """The L0 QEMU command line booting L1 (see ../shared kvm-lab notes)."""
        # no_timer_check: under TCG on a loaded host the IO-APIC timer check can
        # miss its ticks and panic L1 ("IO-APIC + timer doesn't work!").
        append = ("console=ttyS0 panic=-1 quiet kvm.nx_huge_pages=off no_timer_check "
                  f"lab.share={self.shared} lab.mode={mode} lab.cache={self.cache}")
        if job:
            append += f" lab.job={job}"
        cmd = [self.qemu, "-M", "pc", "-accel", "tcg", "-cpu", "EPYC,+svm",
               "-m", str(self.memory_mb), "-smp", "1",
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-kernel", self.boot_kernel(), "-initrd", initrd, "-append", append,
               "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,"
                          "readonly=on,multidevs=remap",
               "-virtfs", f"local,path={self.shared},mount_tag=labshare,"
                          "security_model=none,multidevs=remap"]
        if console == "file":
            cmd += ["-serial", f"file:{os.path.join(self._rundir, 'console.log')}"]
        else:
            # A plain stdio console (no QEMU mux, signals off): Ctrl-A and
            # Ctrl-C reach the program in L1, e.g. vireo's own Ctrl-A mux.
            cmd += ["-chardev", "stdio,id=l1con,signal=off", "-serial", "chardev:l1con"]
        if mode == "agent" and self._rundir:
            # HMP on a socket, read only when L1 freezes: where its CPU is.
            cmd += ["-monitor", f"unix:{os.path.join(self._rundir, 'hmp.sock')},server=on,wait=off"]
        if ctl_path:
            cmd += ["-chardev", f"socket,id=labctl,path={ctl_path}",
                    "-device", "virtio-serial-pci",
                    "-device", "virtserialport,chardev=labctl,name=lab.ctl"]
        return cmd + self.extra_qemu_args

    def start(self):
        """Boot L1 and wait until it serves jobs. Raises LabError on failure."""
        if self.alive:
            return
        self.close()
        if not shutil.which(self.qemu):
            raise LabError(f"{self.qemu} not found: install qemu-system-x86")
        os.makedirs(os.path.join(self.shared, ".jobs"), exist_ok=True)
        initrd = l1_initramfs(kernel_version_of(self.kernel))
        self._rundir = tempfile.mkdtemp(prefix="vireo-l1-")
        ctl_path = os.path.join(self._rundir, "ctl.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(ctl_path)
        listener.listen(1)
        t0 = time.monotonic()
        with open(os.path.join(self._rundir, "qemu.log"), "wb") as log:
            self.proc = subprocess.Popen(self.qemu_command(initrd, ctl_path=ctl_path),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_set_pdeathsig)
        _log(f"L1 QEMU pid {self.proc.pid}, run dir {self._rundir}")
        try:
            self.sock = self._accept(listener, t0 + 60)
            line = self._readline(t0 + self.boot_timeout)
            if not line or not line.startswith("ready"):
                raise LabError(f"L1 did not come up (got {line!r})")
        except BaseException:
            failure = self._diagnostics()
            self.close()
            if isinstance(sys.exc_info()[1], LabError):
                raise LabError(f"{sys.exc_info()[1]}\n{failure}") from None
            raise
        finally:
            listener.close()
        self.boot_seconds = time.monotonic() - t0
        _log(f"L1 ready in {self.boot_seconds:.1f} s ({line})")

    def _accept(self, listener, deadline):
        while True:
            if self.proc.poll() is not None:
                raise LabError(f"L1 QEMU exited with {self.proc.returncode} before connecting")
            r, _, _ = select.select([listener], [], [], 0.2)
            if r:
                conn, _ = listener.accept()
                return conn
            if time.monotonic() > deadline:
                raise LabError("L1 QEMU did not connect its control channel")

    def _readline(self, deadline, on_wait=None):
        """Next control line from L1, or None if L1 died or DEADLINE passed."""
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                return None
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if on_wait:
                on_wait()
            if r:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return None
                self._buf += chunk
            elif self.proc.poll() is not None:
                return None
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace").strip()

    def _cpu_state(self):
        """L1's registers from L0's monitor (for a frozen L1), or ''."""
        path = os.path.join(self._rundir or "", "hmp.sock")
        if self.proc is None or self.proc.poll() is not None or not os.path.exists(path):
            return ""
        text = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path)
                s.sendall(b"info registers\n")
                end = time.monotonic() + 5
                while time.monotonic() < end and b"EFER=" not in text:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    text += chunk
        except OSError:
            pass
        lines = [ln for ln in text.decode(errors="replace").splitlines()
                 if re.match(r"(RAX|RSI|R8|R12|RIP|ES|CS|SS|CR0|EFER)", ln)]
        return "--- L1 CPU (L0 monitor) ---\n" + "\n".join(lines) if lines else ""

    def _diagnostics(self):
        parts = [self._cpu_state()] if self.proc and self.proc.poll() is None else []
        if self.proc and self.proc.poll() is not None:
            parts.append(f"QEMU exit status {self.proc.returncode}")
        for name in ("qemu.log", "console.log"):
            text = _read_text(os.path.join(self._rundir or "", name)).strip()
            if text:
                parts.append(f"--- {name} (tail) ---\n" + "\n".join(text.splitlines()[-30:]))
        return "\n".join(p for p in parts if p)

    def console_log(self):
        """The L1 serial console so far (kernel messages, init errors)."""
        return _read_text(os.path.join(self._rundir or "", "console.log"))

    def close(self, kill=False):
        """Power L1 off (killing QEMU if it does not exit promptly, or at
        once with KILL)."""
        if kill and self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.sock is not None and not kill:
            try:
                self.sock.sendall(b"quit 0 0\n")
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10 if self.sock is not None else 0.1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock is not None:
            self.sock.close()
        self.proc = self.sock = None
        self._buf = b""
        if self._rundir and not os.environ.get("VIREO_LAB_KEEP"):
            shutil.rmtree(self._rundir, ignore_errors=True)
        self._rundir = None

    # -- jobs --------------------------------------------------------------

    def workdir(self, prefix="work-"):
        """A new directory writable both here and inside L1 (same path)."""
        return tempfile.mkdtemp(prefix=prefix, dir=self.shared)

    def run(self, script, timeout=300, env=None, cwd=None, stream=None):
        """Run SCRIPT (shell text, or an argv list) in L1's chroot of the host.

        Returns (exit_status, output), output being stdout and stderr merged.
        After TIMEOUT seconds the job's process group is killed and
        (TIMEOUT, output + note) is returned; L1 stays usable. If L1 stops
        answering, it is killed and TIMEOUT returned; if it dies, LabError is
        raised. Either way the next run() boots a new L1.
        STREAM, if given (e.g. sys.stdout), receives output as it arrives."""
        if not self.alive:
            self.start()
        job_id, job = self._prepare_job(script, env, cwd)
        try:
            return self._run_job(job, job_id, timeout, stream)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def _prepare_job(self, script, env, cwd):
        """Write a job's files to the shared directory; returns (id, dir)."""
        self._next_job += 1
        job_id = f"{os.getpid()}-{self._next_job}"
        job = os.path.join(self.shared, ".jobs", job_id)
        os.makedirs(job)
        script_path = os.path.join(job, "script.sh")
        with open(script_path, "w") as f:
            f.write(_as_script(script))
        job_env = {k: v for k, v in os.environ.items() if PASS_ENV.match(k)}
        job_env.update(LAB_MODE="lab", LAB_SHARED=self.shared)
        job_env.update(env or {})
        with open(os.path.join(job, "run.sh"), "w") as f:
            f.write(_job_wrapper(script_path, job_env, cwd or os.getcwd(),
                                 f"{L1_TMPFS}/lab-{job_id}"))
        return job_id, job

    def _run_job(self, job, job_id, timeout, stream):
        out_path = os.path.join(job, "out")
        tail = _Tail(out_path, stream)
        limit = max(1, int(round(timeout)))
        try:
            self.sock.sendall(f"run {job_id} {limit}\n".encode())
        except OSError as e:
            note = self._diagnostics()
            self.close(kill=True)
            raise LabError(f"L1 control channel broke: {e}\n{note}") from None
        # L1 enforces the time limit itself; this deadline only catches an L1
        # that stopped answering (TCG can be slow, hence the grace period).
        deadline = time.monotonic() + limit + self.grace
        while True:
            silent_until = min(deadline, time.monotonic() + self.silence_limit)
            line = self._readline(silent_until, on_wait=tail.poll)
            if line is None:
                tail.poll()
                # Before the deadline, no line means EOF or QEMU exited.
                died = time.monotonic() < silent_until or self.proc.poll() is not None
                note = self._diagnostics()
                self.close(kill=True)
                output = _read_text(out_path)
                if died:
                    raise LabError(f"L1 died during a job\n--- job output ---\n{output}\n{note}")
                silent = (f"[vireo-lab: no word from L1 for {self.silence_limit} s]\n"
                          if time.monotonic() < deadline else _timeout_note(timeout))
                return TIMEOUT, output + silent + L1_HUNG + "\n" + note
            words = line.split()
            if len(words) == 3 and words[0] == "done" and words[1] == job_id:
                break
        tail.poll()
        output = _read_text(out_path)
        if os.path.exists(os.path.join(job, "timedout")):
            return TIMEOUT, output + _timeout_note(timeout)
        return int(words[2]), output

    # -- interactive -------------------------------------------------------

    def shell(self, script=None, env=None, cwd=None):
        """Boot L1 with this terminal on its console: a root shell in the
        chroot of the host, or SCRIPT (with a controlling tty, so interactive
        programs work) after which L1 powers off. Returns SCRIPT's exit status
        (130 if it was interrupted), or QEMU's for the shell. Keys go to L1
        unfiltered; 'poweroff -f' in the shell ends it. QEMU's own messages go to a log shown only if it fails."""
        initrd = l1_initramfs(kernel_version_of(self.kernel))
        self._rundir = tempfile.mkdtemp(prefix="vireo-l1-")
        os.makedirs(os.path.join(self.shared, ".jobs"), exist_ok=True)
        job_id, job = self._prepare_job(script, env, cwd) if script else (None, None)
        log_path = os.path.join(self._rundir, "qemu.log")
        try:
            with open(log_path, "wb") as log:
                status = subprocess.call(self.qemu_command(initrd, mode="shell", console="stdio",
                                                           job=job_id),
                                         stderr=log, preexec_fn=_set_pdeathsig)
            if status != 0:
                sys.stderr.write(_read_text(log_path))
            if job:
                text = _read_text(os.path.join(job, "status")).strip()
                status = int(text) if text.isdigit() else 130
            return status
        finally:
            if job:
                shutil.rmtree(job, ignore_errors=True)
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None


def kernel_version_of(kernel):
    name = os.path.basename(kernel)
    return name[8:] if name.startswith("vmlinuz-") else kernel_version()


# ---------------------------------------------------------------------------
# The entry point for tests

_shared_lab = None


def shared_lab():
    """The process's Lab used by run_vmm(): one L1 per test process, booted on
    first run (or by .start()), powered off at exit."""
    global _shared_lab
    if _shared_lab is None:
        _shared_lab = Lab()
        atexit.register(_shared_lab.close)
    return _shared_lab


def uses_lab():
    """Whether run_vmm() runs scripts inside the lab."""
    return not kvm_can_boot_linux()


def workdir(prefix="work-"):
    """A new directory that run_vmm() scripts can write (same path for the
    test and the script, in either mode). Removed when the process exits."""
    return tempfile.mkdtemp(prefix=prefix, dir=_session_root())


def run_vmm(script, timeout=300, env=None, cwd=None, stream=None, prepare=None):
    """Run SCRIPT (shell text or argv list) where KVM can boot Linux.

    Directly on the host if kvm_can_boot_linux(), else inside the process's
    Lab (booted on first use, reused by later calls). Returns (exit_status,
    output) in both cases, with the same environment conventions: $LAB_MODE
    (host|lab), $LAB_TMP and $TMPDIR (tmpfs scratch dir for sockets, removed
    after the script), $LAB_SHARED; files of workdir() are writable. A timeout
    kills the script and returns (TIMEOUT, output + note). Raises LabError if
    the lab cannot boot. PREPARE, if given, is called on the host before
    each try: a job that is run again must find the files it changes (disk
    images, bitmaps) as they were before the first try."""
    if prepare:
        prepare()
    if kvm_can_boot_linux():
        return run_on_host(script, timeout, env, cwd, stream)
    status, output = shared_lab().run(script, timeout, env, cwd, stream)
    if status == TIMEOUT and L1_HUNG in output:
        # L1 itself froze (the job's own limit is enforced inside L1 and
        # would have answered): the emulated host failed, not the job. Say
        # so, and run the job once more in a fresh L1.
        note = "[vireo-lab: L1 froze during the job; running it again in a new L1]\n"
        sys.stdout.write(note)
        sys.stdout.flush()
        if prepare:
            prepare()
        status, again = shared_lab().run(script, timeout, env, cwd, stream)
        first = "\n".join(output.splitlines()[-20:])
        output = f"[vireo-lab: the first try's last lines]\n{first}\n{note}{again}"
    return status, output
