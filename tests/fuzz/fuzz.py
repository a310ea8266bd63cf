#!/usr/bin/env python3
"""Fuzz for longer than the smoke test does: `make fuzz` runs every target
(or those named) one after the other, each for SECONDS or, with --runs, until
it made that many executions if that comes first. New inputs go to
BUILD/fuzz-corpus/TARGET and crashes to BUILD/fuzz-crashes/TARGET-*; the
committed seeds stay as they are.
Usage: fuzz.py --build DIR --time SECONDS [--runs N] [--timeout S] [TARGET...]"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=targets.build_dir())
    ap.add_argument("--time", type=int, default=600)
    ap.add_argument("--runs", type=int, default=0)
    # A long run at low priority on a busy machine can be starved for
    # seconds; libFuzzer counts that as a slow input. --timeout raises the bar.
    ap.add_argument("--timeout", type=int, default=10)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    unknown = [n for n in args.names if n not in targets.BY_NAME]
    if unknown:
        sys.exit(f"unknown target(s) {', '.join(unknown)}; known: "
                 + ", ".join(targets.BY_NAME))
    chosen = [targets.BY_NAME[n] for n in args.names] or targets.TARGETS
    subprocess.run(["ninja", "-C", args.build] + [t["exe"] for t in chosen], check=True)
    crashes = os.path.join(args.build, "fuzz-crashes")
    os.makedirs(crashes, exist_ok=True)
    summary, failed = [], False
    for t in chosen:
        work = os.path.join(args.build, "fuzz-corpus", t["name"])
        os.makedirs(work, exist_ok=True)
        cmd = [os.path.join(args.build, t["exe"])] + targets.fuzzer_args(
            t, args.time, work, os.path.join(crashes, t["name"] + "-"),
            timeout=args.timeout, runs=args.runs)
        print(f"== {t['name']}: {t['what']}", flush=True)
        p = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, errors="replace",
                           env=targets.fuzzer_env())
        sys.stderr.write(p.stderr[-4000:])
        runs = re.search(r"stat::number_of_executed_units:\s+(\d+)", p.stderr)
        cov = re.findall(r"cov: (\d+)", p.stderr)
        secs = re.search(r"Done \d+ runs in (\d+) second", p.stderr)
        summary.append(f"{t['name']}: exit {p.returncode}, "
                       f"{runs.group(1) if runs else '?'} executions"
                       f"{' in ' + secs.group(1) + ' s' if secs else ''}, "
                       f"{cov[-1] if cov else '?'} edges")
        failed |= p.returncode != 0
    print("\n".join(summary))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
