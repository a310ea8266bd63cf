#!/usr/bin/env python3
"""Run every vireo test and print one closing line: 'N passed, N failed'.

Two kinds of tests:
  * C unit tests (cmocka), registered with meson's test() in tests/**/meson.build;
    each executable counts as many cases as cmocka reports.
  * Python functional tests: tests/**/test_*.py, each a script built on
    tests/lib/vtest.py that prints 'ok NAME' / 'FAIL NAME' lines and ends with
    its own 'N passed, N failed' line.

Usage: tests/run.py --build DIR [-k PATTERN] [--list] [--jobs N]

With --jobs 2 (the default; VIREO_TEST_JOBS sets it too) the tests run in
two lanes at once: the tests that boot guests in the nested lab
(tests/lab/lab.py; one TCG-emulated L1 machine keeps one core busy) one
after the other in one lane, every other test in the other. Only one lab
runs at a time, so lab tests never compete with each other for the
emulated CPU. --jobs 1 runs everything in one lane, in file order.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY = re.compile(r"(\d+) passed, (\d+) failed")


def unit_tests(build):
    out = subprocess.run(["meson", "introspect", "--tests", build],
                         capture_output=True, text=True, check=True).stdout
    return [(t["name"], t["cmd"]) for t in json.loads(out)]


def functional_tests(pattern):
    found = []
    for dirpath, dirnames, files in os.walk(os.path.join(ROOT, "tests")):
        # hidden directories hold caches (tests/.cache: other projects' sources)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in ("cache", "__pycache__") and not d.startswith("."))
        for f in sorted(files):
            if f.startswith("test_") and f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, ROOT)
                if not pattern or re.search(pattern, name):
                    found.append((name, [sys.executable, path]))
    return found


def uses_lab(cmd):
    """Whether a functional test boots guests through tests/lab/lab.py."""
    script = cmd[-1]
    if not script.endswith(".py"):
        return False
    with open(script, encoding="utf-8", errors="replace") as f:
        return re.search(r"^import lab\b", f.read(), re.M) is not None


def cmocka_counts(output, rc):
    passed = len(re.findall(r"^\[\s+OK\s+\]", output, re.M))
    failed = len(re.findall(r"^\[\s+(FAILED|ERROR)\s+\]\s+\S", output, re.M))
    if passed + failed == 0:
        return (1, 0) if rc == 0 else (0, 1)
    if rc != 0 and failed == 0:
        failed = 1
    return passed, failed


def run_one(name, cmd, env, timeout):
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True,
                           text=True, errors="replace", timeout=timeout)
        output, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        output += f"\nTIMEOUT after {timeout}s\n"
        rc = -1
    sums = SUMMARY.findall(output)
    if sums:
        passed, failed = int(sums[-1][0]), int(sums[-1][1])
        if rc != 0 and failed == 0:
            failed = 1
    else:
        passed, failed = cmocka_counts(output, rc)
    return passed, failed, output, time.monotonic() - start


def report(name, p, f, output, secs):
    status = "ok  " if f == 0 else "FAIL"
    print(f"{status} {name}: {p} passed, {f} failed ({secs:.1f}s)", flush=True)
    for line in re.findall(r"^skip .*$", output, re.M):
        print("    " + line, flush=True)   # vtest.skip(): say what did not run, and why
    if f:
        # Every failing test by name first: the tail below may hold only the last.
        for line in re.findall(r"^FAIL \S+$", output, re.M):
            print("    " + line, flush=True)
        tail = output.strip().splitlines()[-60:]
        print("\n".join("    | " + l for l in tail), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-san")
    ap.add_argument("-k", dest="pattern", default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("VIREO_TEST_JOBS", "2")))
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    env = dict(os.environ)
    env["VIREO_BUILD"] = build
    env["VIREO_ROOT"] = ROOT
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env["PYTHONPATH"] = os.path.join(ROOT, "tests", "lib") + os.pathsep + env.get("PYTHONPATH", "")

    tests = [t for t in unit_tests(build) if not args.pattern or re.search(args.pattern, t[0])]
    tests += functional_tests(args.pattern)
    if args.list:
        for name, _ in tests:
            print(name)
        return 0

    lanes = [tests] if args.jobs <= 1 else [
        [t for t in tests if uses_lab(t[1])],
        [t for t in tests if not uses_lab(t[1])],
    ]
    totals = {"passed": 0, "failed": 0}
    lock = threading.Lock()

    def run_lane(lane):
        for name, cmd in lane:
            p, f, output, secs = run_one(name, cmd, env, args.timeout)
            with lock:
                report(name, p, f, output, secs)
                totals["passed"] += p
                totals["failed"] += f

    threads = [threading.Thread(target=run_lane, args=(lane,)) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total_p, total_f = totals["passed"], totals["failed"]
    print(f"\ntotal: {total_p} passed, {total_f} failed")
    return 0 if total_f == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
