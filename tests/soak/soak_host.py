#!/usr/bin/env python3
"""The host side of the malicious-guest soak; runs where KVM boots Linux
(in the lab's L1, or on a KVM host).

usage: soak_host.py OUT.json VIREO KERNEL INITRD SEED SECONDS BUDGET

BUDGET bounds the whole run in seconds: the report is written before it ends.

Starts vireo with every device it offers, a guest whose /init runs the
hostile program (tests/soak/soak.c), and meanwhile polls QMP (query-status,
x-query-virtio and each device's x-query-virtio-status, query-block) and
vireo's RSS. When the guest has left every virtio device broken it checks
NEEDS_RESET over QMP, lets the guest rebind the real drivers and use the
devices, checks them again (and inflates the balloon), and writes what it
saw to OUT.json for tests/soak/test_soak.py to judge.
"""
import bisect
import json
import os
import re
import resource
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402

NEEDS_RESET = "VIRTIO_CONFIG_S_NEEDS_RESET"
DRIVER_OK = "VIRTIO_CONFIG_S_DRIVER_OK"
TAP = "soaktap0"


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


GUEST_RAM_KIB = 512 << 10


def can_lock(size):
    """Root (the lab's L1) may lock any amount; others up to RLIMIT_MEMLOCK."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    ok = os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft >= size
    if not ok:
        print(f"soak-host: RLIMIT_MEMLOCK {soft} is below {size}: guest RAM stays unlocked",
              flush=True)
    return ok


def rss_by_mapping(pid):
    """{"start-end name": RSS KiB} for each mapping but guest RAM."""
    out, key, size = {}, None, 0
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    key = parts[0] + " " + (parts[5] if len(parts) > 5 else "[anon]")
                elif parts[0] == "Size:":
                    size = int(parts[1])
                elif parts[0] == "Rss:" and size != GUEST_RAM_KIB:
                    out[key] = int(parts[1])
    except OSError:
        pass
    return out


def rss_growth(before, after, top=8):
    """The mappings whose RSS grew most between two rss_by_mapping()s."""
    grown = [(after[k] - before.get(k, 0), k) for k in after]
    return [f"{k}: +{d} KiB" for d, k in sorted(grown, reverse=True)[:top] if d > 0]


def host_rss_kib(pid):
    """RSS outside the guest's RAM mapping (what vireo itself holds: heap,
    sanitizer shadow, stacks): the guest touching its own pages is not a leak."""
    total = guest = 0
    size = 0
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if line.startswith("Size:"):
                    size = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
                    total += rss
                    if size == GUEST_RAM_KIB:
                        guest += rss
    except OSError:
        return None
    return total - guest


class Console:
    """vireo's serial console (its stdout): every line, kept."""

    def __init__(self, stream):
        self.stream = stream
        self.text = ""
        self.timeline = []      # (monotonic time, line) of the "SOAK"/"RESULT" lines
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            data = self.stream.read1(4096) if hasattr(self.stream, "read1") else self.stream.read(4096)
            if not data:
                break
            with self.cond:
                start = self.text.rfind("\n") + 1
                self.text += data.decode("latin-1").replace("\r", "")
                now = time.monotonic()
                for line in self.text[start:].split("\n")[:-1]:
                    if line.startswith(("SOAK", "RESULT")):
                        self.timeline.append((now, line))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout, alive):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = re.search(pattern, self.text, re.M)
                if m:
                    return m
                if time.monotonic() > deadline or not alive():
                    return None
                self.cond.wait(0.5)


def heartbeat(shm):
    """The guest's heartbeat in ivshmem (tests/soak/soak.c): (counter,
    phase, operations), or None when it is not there."""
    try:
        with open(shm, "rb") as f:
            f.seek(-32, os.SEEK_END)
            magic, count, phase, ops = struct.unpack("<4Q", f.read(32))
    except (OSError, struct.error):
        return None
    return (count, phase, ops) if magic == 0x5441454b414f53 else None


def thread_states(pid):
    """Each vireo thread: name, state, kernel wait channel, syscall, CPU ticks."""
    out = {}
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        base = f"/proc/{pid}/task/{tid}"
        try:
            stat = open(f"{base}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            out[tid] = {"name": open(f"{base}/comm").read().strip(), "state": fields[0],
                        "wchan": open(f"{base}/wchan").read().strip(),
                        "syscall": open(f"{base}/syscall").read().split()[0],
                        "ticks": int(fields[11]) + int(fields[12])}
        except (OSError, IndexError, ValueError):
            continue
    return out


def kernel_symbolizer(console):
    """rip -> "function+0xoff" for the guest's kernel, through this machine's
    /proc/kallsyms when it runs the same build (the lab's L1 does), moved by
    the difference of the two KASLR offsets; None otherwise."""
    m = re.search(r"^SOAK-KSYM ([0-9a-f]+) (\S+) (.*?)\r?$", console, re.M)
    if not m or (m.group(2), m.group(3)) != (os.uname().release, os.uname().version):
        return None
    syms = []
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[1] in "tT":
                    syms.append((int(parts[0], 16), parts[2]))
    except OSError:
        return None
    syms.sort()
    ours = [a for a, n in syms if n == "_stext"]
    if not ours or not ours[0]:
        return None     # addresses hidden (kptr_restrict)
    delta = int(m.group(1), 16) - ours[0]
    addrs = [a for a, _ in syms]

    def name(rip):
        i = bisect.bisect_right(addrs, rip - delta) - 1
        return f"{syms[i][1]}+{rip - delta - syms[i][0]:#x}" if i >= 0 else hex(rip)
    return name


def vcpu_rips(q, lock, symbolize, samples=8):
    """Where each vCPU is, sampled a few times (the guest keeps running)."""
    seen = []
    for _ in range(samples):
        with lock:
            text = q.hmp("info registers -a")
        rips = [int(x, 16) for x in re.findall(r"^RIP=([0-9a-f]+)", text, re.M)]
        seen.append([symbolize(r) if symbolize else hex(r) for r in rips])
        time.sleep(0.2)
    return seen


def diagnose_stall(pid, shm, q, lock, symbolize=None):
    """What a silent guest is doing: whether its heartbeat moves (it runs,
    only its console is quiet) and where vireo's threads are (a vCPU thread
    in KVM_RUN that uses CPU is running the guest; one blocked elsewhere is
    vireo's own hang)."""
    beat0, threads0 = heartbeat(shm), thread_states(pid)
    time.sleep(3)
    beat1, threads1 = heartbeat(shm), thread_states(pid)
    for tid, t in threads1.items():
        t["ticks_in_3s"] = t["ticks"] - threads0.get(tid, t)["ticks"]
    diag = {"heartbeat": [beat0, beat1], "threads": threads1}
    try:
        with lock:
            diag["query_status"] = q.cmd("query-status")
            diag["cpus"] = q.cmd("query-cpus-fast")
        diag["rips"] = vcpu_rips(q, lock, symbolize)
    except Exception as e:      # noqa: BLE001 - part of the report
        diag["qmp_error"] = repr(e)
    return diag


def device_statuses(q):
    out = {}
    for d in q.cmd("x-query-virtio"):
        st = q.cmd("x-query-virtio-status", path=d["path"])
        out[d["path"]] = {"name": d["name"], "statuses": st["status"]["statuses"],
                          "broken": st.get("broken"), "started": st.get("started")}
    return out


class Poller:
    """Polls QMP and the RSS while the guest attacks; records latencies."""

    def __init__(self, q, pid):
        self.q, self.pid = q, pid
        self.samples, self.errors = [], []
        self.max_latency = 0.0
        self.polls = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()       # one QMP conversation at a time
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                with self.lock:
                    t0 = time.monotonic()   # vireo's answer time, not our own lock's
                    status = self.q.cmd("query-status")["status"]
                    devs = device_statuses(self.q)
                    self.q.cmd("query-block")
                lat = time.monotonic() - t0
                self.max_latency = max(self.max_latency, lat)
                self.polls += 1
                self.samples.append({"t": t0, "latency": lat, "rss_kib": rss_kib(self.pid),
                                     "host_rss_kib": host_rss_kib(self.pid),
                                     "status": status,
                                     "needs_reset": sum(NEEDS_RESET in " ".join(d["statuses"])
                                                        for d in devs.values())})
            except Exception as e:      # noqa: BLE001 - reported, judged by the test
                self.errors.append(repr(e))
                if len(self.errors) > 5:
                    return
            self.stop.wait(0.5)

    def close(self):
        self.stop.set()
        if self.th.is_alive():
            self.th.join(30)


def main():
    out_path, vireo, kernel, initrd, seed, seconds, budget = sys.argv[1:8]
    end = time.monotonic() + float(budget)
    left = lambda: max(1.0, end - time.monotonic())
    say = lambda msg: print(f"soak-host: {time.monotonic() - t_launch:.1f} s: {msg}", flush=True)
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR") or "/tmp"
    sock = os.path.join(tmp, "soak-qmp.sock")
    disk = os.path.join(tmp, "soak-disk.img")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    shm = f"/dev/shm/soak-ivshmem-{os.getpid()}"
    # Locked guest memory: the balloon still takes and checks every page
    # number, but frees none. The devices copy the page's data around (a
    # disk read puts back what a write took, a used ring holds lengths such
    # as 4096), so a balloon chain can come to read page numbers of the
    # guest's own kernel, and freeing those (PFN 0x1000 once held its page
    # tables) crashes the guest by its own hand, not by vireo's.
    argv = [vireo, "-m", "512M", "-smp", "2", "-display", "none", "-no-reboot",
            *(["-overcommit", "mem-lock=on"] if can_lock(512 << 20) else []),
            "-kernel", kernel, "-initrd", initrd,
            "-append", f"console=ttyS0 loglevel=1 panic=-1 soak_seed={seed} soak_secs={seconds}",
            "-serial", "stdio", "-qmp", f"unix:{sock},server=on,wait=off",
            "-fw_cfg", "name=opt/vireo/soak,string=soak",
            "-drive", f"file={disk},format=raw,if=none,id=d0",
            "-device", "virtio-blk-pci,drive=d0,id=blk0",
            "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
            "-device", "virtio-net-pci,netdev=n0,id=net0",
            "-device", "virtio-serial-pci,id=ser0",
            "-chardev", f"file,id=c0,path={tmp}/soak-con", "-device", "virtconsole,chardev=c0",
            "-chardev", f"file,id=c1,path={tmp}/soak-port",
            "-device", "virtserialport,chardev=c1,name=org.vireo.soak",
            "-device", "virtio-rng-pci,id=rng0",
            "-device", "virtio-balloon-pci,id=balloon0",
            "-object", f"memory-backend-file,id=hb,size=1M,mem-path={shm},share=on",
            "-device", "ivshmem-plain,memdev=hb,id=shm0"]
    result = {"argv": argv, "seed": int(seed), "seconds": float(seconds)}
    env = dict(os.environ)
    # ASan holds freed memory in a quarantine (256 MiB by default) that
    # would read as growth: keep it small so that RSS shows real leaks.
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))
    t_launch, t_soak = time.monotonic(), None
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    err_chunks = []
    threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True).start()
    con = Console(proc.stdout)
    alive = lambda: proc.poll() is None
    poller = None
    try:
        for _ in range(300):
            if subprocess.run(["ip", "link", "show", TAP], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run(["ip", "addr", "add", "10.0.9.2/24", "dev", TAP], capture_output=True)
        subprocess.run(["ip", "link", "set", TAP, "up"], capture_output=True)
        q = vmm.QMP.unix(sock, timeout=60)
        poller = Poller(q, proc.pid)
        say("vireo started, QMP connected")
        if not con.wait_for(r"^SOAK-START", left(), alive):
            raise RuntimeError("the hostile program never started")
        result["rss_start_kib"] = rss_kib(proc.pid)
        result["host_rss_start_kib"] = host_rss_kib(proc.pid)
        t_start = t_soak = time.monotonic()
        result["rss_mid_kib"] = None
        say("the attack started")
        # The attack lasts SECONDS; three minutes past that the guest is stuck.
        attack_end = min(end, t_start + float(seconds) + 180)
        while alive() and not re.search(r"^SOAK-END", con.text, re.M) and \
                time.monotonic() < attack_end:
            if result["rss_mid_kib"] is None and time.monotonic() - t_start > float(seconds) / 4:
                result["rss_mid_kib"] = rss_kib(proc.pid)     # after warm-up
                result["host_rss_mid_kib"] = host_rss_kib(proc.pid)
                maps_mid = rss_by_mapping(proc.pid)
            time.sleep(0.5)
        result["rss_end_kib"] = rss_kib(proc.pid)
        result["host_rss_end_kib"] = host_rss_kib(proc.pid)
        if result["rss_mid_kib"] is not None:
            result["host_rss_growth"] = rss_growth(maps_mid, rss_by_mapping(proc.pid))
        result["end_at_s"] = round(time.monotonic() - t_launch, 1)
        if alive() and not re.search(r"^SOAK-END", con.text, re.M):
            result["stall"] = diagnose_stall(proc.pid, shm, q, poller.lock,
                                                 kernel_symbolizer(con.text))
            raise RuntimeError("the guest never finished its attack")
        say("the attack ended")
        # The guest's last steps take seconds: past a few minutes it is stuck.
        if not con.wait_for(r"^SOAK-WAIT", min(left(), 180), alive):
            if alive():
                result["stall"] = diagnose_stall(proc.pid, shm, q, poller.lock,
                                                 kernel_symbolizer(con.text))
            raise RuntimeError("the guest never finished breaking its devices")
        with poller.lock:
            result["broken"] = device_statuses(q)
            result["query_status_broken"] = q.cmd("query-status")
        say("devices broken; the guest rebinds its drivers")
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        if not con.wait_for(r"^SOAK-GUEST-DONE", min(left(), 300), alive):
            if alive():
                result["stall"] = diagnose_stall(proc.pid, shm, q, poller.lock,
                                                 kernel_symbolizer(con.text))
            raise RuntimeError("the guest never finished using its devices again")
        with poller.lock:
            after = device_statuses(q)
            result["after"] = after
            balloon = q.cmd("query-balloon")["actual"]
            q.cmd("balloon", value=384 << 20)
            deadline = time.monotonic() + min(60, left())
            while time.monotonic() < deadline:
                actual = q.cmd("query-balloon")["actual"]
                if actual <= 384 << 20:
                    break
                time.sleep(0.5)
            result["balloon"] = {"before": balloon, "after": actual}
        poller.close()      # the guest powers off next: no poll may race vireo's exit
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        say("guest done, balloon checked")
        try:
            proc.wait(left())
        except subprocess.TimeoutExpired:
            result["error"] = "vireo did not exit after the guest powered off"
    except Exception as e:      # noqa: BLE001 - everything goes to the report
        result["error"] = repr(e)
    finally:
        if poller:
            poller.close()
            result["polls"] = poller.polls
            result["poll_errors"] = poller.errors
            result["max_qmp_latency_s"] = round(poller.max_latency, 3)
            result["rss_samples_kib"] = [s["rss_kib"] for s in poller.samples]
            result["host_rss_samples_kib"] = [s["host_rss_kib"] for s in poller.samples]
            result["needs_reset_samples"] = [s["needs_reset"] for s in poller.samples]
            slow = sorted(poller.samples, key=lambda s: -s["latency"])[:5]
            result["slowest_polls"] = [{"at_s": round(s["t"] - t_launch, 1),
                                        "latency_s": round(s["latency"], 3)} for s in slow]
            result["start_at_s"] = round(t_soak - t_launch, 1) if t_soak else None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        time.sleep(0.5)
        result["exit_status"] = proc.returncode
        if poller:
            result["events"] = [e.get("event") + " " + json.dumps(e.get("data", {}))
                                for e in q.events][-50:]
        result["stderr"] = b"".join(err_chunks).decode(errors="replace")[-20000:]
        result["console"] = con.text[-60000:]
        result["timeline"] = [(round(t - t_launch, 1), line) for t, line in con.timeline
                              if not line.startswith(("SOAK-IOMEM", "SOAK dev"))]
        try:
            os.unlink(shm)
        except OSError:
            pass
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
