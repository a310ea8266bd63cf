#!/usr/bin/env python3
"""QEMU 7.2's own qtest programs, built from Debian's source package, run
against vireo through libqtest exactly as QEMU's `make check-qtest` runs them.

Each GTest case is one 'ok'/'FAIL' line of this test. A program that aborts
counts its abort as a failure; the cases it never reached are not counted.
qos-test's cases each run in a program of their own, so one failed
assertion does not hide the cases after it.
The same programs are also started against Debian's qemu-system-x86_64 for
comparison; its results are reported as notes, not counted.

Cases vireo does not run are in skip-list.txt, each with its reason.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from qemu_accel import accelerators  # noqa: E402  (needs the path above)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("VIREO_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("VIREO_BUILD") or os.path.join(ROOT, "build")

# (program, GTest path prefixes to run (-p), or None for all of them)
QOS_PREFIX = "/x86_64/pc/i440FX-pcihost/pci-bus-pc/pci-bus/"
PROGRAMS = [
    ("fw_cfg-test", None),
    ("rtc-test", None),
    ("machine-none-test", None),
    ("qmp-test", None),
    ("test-hmp", None),
    ("qmp-cmd-test", None),
    ("qos-test", [QOS_PREFIX + d for d in (
        "virtio-blk-pci", "virtio-net-pci", "virtio-rng-pci",
        "virtio-serial-pci", "virtio-balloon-pci")]),
]
PROGRAM_TIMEOUT = 600
TAP_RESULT = re.compile(r"^(ok|not ok) \d+ (\S+)(.*)$")


def skip_list():
    """{path: reason} from skip-list.txt."""
    entries = {}
    with open(os.path.join(HERE, "skip-list.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                path, _, reason = line.partition(" ")
                entries[path] = reason.strip()
    return entries


def build_programs():
    """The build directory of the qtest programs, or None with a reason."""
    script = os.path.join(ROOT, "scripts", "qemu-qtests")
    p = subprocess.run([script], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-5:]
    return p.stdout.strip().splitlines()[-1], None


def list_cases(exe, env, workdir):
    """Every GTest path the program registers (qos-test asks the VMM for them)."""
    p = subprocess.run([exe, "-l"], env=env, cwd=workdir, capture_output=True,
                       text=True, errors="replace", timeout=PROGRAM_TIMEOUT)
    return [l for l in p.stdout.split() if l.startswith("/")]


def run_cases(exe, env, workdir, selection, skips):
    """One run of the program; returns (results [(path, ok)], aborted_text)."""
    cmd = [exe, "--tap", "-k"] + selection
    for path in skips:
        cmd += ["-s", path]
    try:
        p = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True,
                           text=True, errors="replace", timeout=PROGRAM_TIMEOUT)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out, rc = out + f"\nTIMEOUT after {PROGRAM_TIMEOUT}s", -1
    results = []
    for line in out.splitlines():
        m = TAP_RESULT.match(line)
        if m and "# SKIP" not in m.group(3):
            results.append((m.group(2), m.group(1) == "ok"))
    aborted = None
    if rc != 0 and all(ok for _, ok in results):
        tail = [l for l in out.splitlines() if l and not l.startswith("# starting")]
        aborted = "\n".join(tail[-12:])
    return results, aborted


def run_program(qtests, binary, prog, prefixes, skips, workdir):
    """Run one program's cases: [(path, ok, abort text or None)]."""
    env = dict(os.environ)
    env["QTEST_QEMU_BINARY"] = binary
    env["QTEST_QEMU_IMG"] = shutil.which("qemu-img") or "qemu-img"
    env.pop("QTEST_LOG", None)
    exe = os.path.join(qtests, "tests", "qtest", prog)
    if not prefixes:
        results, aborted = run_cases(exe, env, workdir, [], skips)
        rows = [(path, ok, None) for path, ok in results]
        if aborted is not None:
            rows.append((f"(aborted after {len(results)} cases)", False, aborted))
        return rows
    # qos-test names whole graph paths as single cases and stops at the
    # first failed assertion: run each wanted case on its own, so every one
    # gets its line whatever happened to the one before.
    wanted = [l for l in list_cases(exe, env, workdir)
              if any(l.startswith(x + "/") for x in prefixes) and l not in skips]
    if not wanted:
        return [("(no case of " + " ".join(prefixes) + " is listed)", False, None)]
    rows = []
    for path in wanted:
        results, aborted = run_cases(exe, env, workdir, ["-p", path], [])
        ok = aborted is None and bool(results) and all(r for _, r in results)
        rows.append((path, ok, aborted))
    return rows


def vmm_link(tmp, target, name):
    """libqtest takes the target from the binary's name: *-system-x86_64."""
    link = os.path.join(tmp, name)
    os.symlink(target, link)
    return link


def report_vireo(qtests, binary, skips, workdir):
    passed = failed = 0
    for prog, prefixes in PROGRAMS:
        exe = os.path.join(qtests, "tests", "qtest", prog)
        env = dict(os.environ, QTEST_QEMU_BINARY=binary)
        # A skip-list entry belongs to the program that registers its path.
        listed = set(list_cases(exe, env, workdir))
        mine = [p for p in skips if p in listed]
        for path in mine:
            print(f"skip {prog} {path}: {skips[path]}", flush=True)
        rows = run_program(qtests, binary, prog, prefixes, mine, workdir)
        for path, ok, aborted in rows:
            print(f"{'ok' if ok else 'FAIL'} {prog} {path}", flush=True)
            if aborted:
                print("\n".join("    " + l for l in aborted.splitlines()), flush=True)
            passed += ok
            failed += not ok
        ok_count = sum(ok for _, ok, _ in rows)
        print(f"# vireo {prog}: {ok_count}/{len(rows)} cases passed", flush=True)
    return passed, failed


def report_qemu(qtests, tmp, workdir):
    """The same programs against Debian's QEMU 7.2: notes only."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("skip compare-with-qemu: qemu-system-x86_64 is not installed", flush=True)
        return
    accels = accelerators(qemu)
    if "qtest" not in accels:
        # libqtest starts its binary with -accel qtest; without it every
        # program waits for a connection that never comes, then aborts.
        print("skip compare-with-qemu-7.2: this qemu-system-x86_64 has no qtest "
              f"accelerator (-accel help lists {', '.join(accels) or 'none'})", flush=True)
        return
    binary = vmm_link(tmp, qemu, "qemu-system-x86_64")
    for prog, prefixes in PROGRAMS:
        rows = run_program(qtests, binary, prog, prefixes, [], workdir)
        ok_count = sum(ok for _, ok, _ in rows)
        aborts = [a for _, _, a in rows if a]
        why = ""
        if aborts:
            why = f" (aborted: {aborts[0].splitlines()[-1]})"
        line = f"qemu-7.2 {prog}: {ok_count}/{len(rows)} cases passed{why}"
        if ok_count == 0:
            print(f"skip compare-with-{line}", flush=True)
        else:
            print(f"# {line}", flush=True)


def main():
    qtests, why = build_programs()
    if qtests is None:
        # A suite that cannot run is a failure: skipping it would let
        # make check pass with vireo untested against QEMU's own tests.
        print("FAIL qemu-qtests: QEMU 7.2's source package could not be fetched or built:",
              flush=True)
        print("\n".join("    " + l for l in why), flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    vireo = os.path.join(BUILD, "vireo")
    with tempfile.TemporaryDirectory(prefix="vireo-qtests-") as tmp:
        binary = vmm_link(tmp, vireo, "vireo-system-x86_64")
        workdir = os.path.join(tmp, "work")
        os.mkdir(workdir)
        passed, failed = report_vireo(qtests, binary, skip_list(), workdir)
        report_qemu(qtests, tmp, workdir)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
