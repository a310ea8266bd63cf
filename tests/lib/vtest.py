"""A tiny test framework for vireo's functional tests.

A test module defines functions named test_*; calling vtest.main() at the end
runs them in file order, prints 'ok NAME' or 'FAIL NAME' (with the traceback),
and ends with 'N passed, N failed'. A test may call vtest.skip(reason).
"""
import os
import sys
import traceback

ROOT = os.environ.get("VIREO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("VIREO_BUILD") or os.path.join(ROOT, "build")


class Skip(Exception):
    pass


def skip(reason):
    raise Skip(reason)


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built")
    return path


def main(only=None):
    mod = sys.modules["__main__"]
    tests = [(n, f) for n, f in vars(mod).items() if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    if len(sys.argv) > 1:
        tests = [t for t in tests if any(a in t[0] for a in sys.argv[1:])]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok {name}", flush=True)
            passed += 1
        except Skip as s:
            print(f"skip {name}: {s}", flush=True)
        except Exception:
            print(f"FAIL {name}", flush=True)
            traceback.print_exc(file=sys.stdout)
            failed += 1
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
