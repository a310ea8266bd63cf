#!/usr/bin/env python3
"""vireo-sandbox-list prints, per thread kind and per daemon, the calls the
rule tables allow. Each listing must agree with the filter libseccomp
builds from the same rules (its PFC text): the same system calls, no more
and no fewer, the same actions, the same ioctl requests and socket
families; and the lists have the shape the threads need."""
import os
import re
import subprocess
import tempfile

import vtest

KINDS = ["main", "vcpu", "iothread", "block-worker", "log-writer", "daemon", "nbd-worker",
         "compress-worker"]
PROGRAMS = ["vireo-storage-daemon", "vireo-vhost-user-net", "vireo-ivshmem-server",
            "vireo-ivshmem-client"]


def tool():
    return os.path.join(vtest.BUILD, "tests", "sandbox", "vireo-sandbox-list")


def listing(name, sandbox="on"):
    """({call: [rule text, ...]}, PFC text) for one kind or program."""
    with tempfile.NamedTemporaryFile(prefix="sb-pfc-") as pfc:
        p = subprocess.run([tool(), "--sandbox", sandbox, "--pfc", pfc.name, name],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        text = open(pfc.name).read()
    calls = {}
    header = [ln for ln in p.stdout.splitlines() if ln.startswith(("kind ", "program "))]
    assert len(header) == 1 and name in header[0], p.stdout[:500]
    for line in p.stdout.splitlines():
        if line.startswith("  "):
            call, _, rest = line.strip().partition(" ")
            calls.setdefault(call, []).append(rest.strip())
    n = int(re.search(r": (\d+) system calls", header[0]).group(1))
    assert n == len(calls), (n, len(calls))
    return calls, text


def pfc_sections(text):
    """{call: its lines} from libseccomp's PFC."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r'\s*# filter for syscall "([^"]+)"', line)
        if m:
            cur = out.setdefault(m.group(1), [])
        elif re.match(r"\s*# (filter for arch|default action|pseudo|invalid)", line) or \
                re.match(r"\s*#\s*$", line):
            cur = None
        elif cur is not None:
            cur.append(line.strip())
    return out


def compared(lines, arg):
    """The 32-bit values a section compares argument `arg` with (the low word)."""
    vals = set()
    for ln in lines:
        m = re.match(rf"if \(\$a{arg}\.lo32 (?:& 0x([0-9a-f]+) )?== (\d+)\)", ln)
        if m:
            vals.add(int(m.group(2)))
    return vals


def listed_values(rules, arg):
    vals = set()
    for r in rules:
        m = re.search(rf"arg{arg}(?: & 0x[0-9a-f]+)? == 0x([0-9a-f]+)", r)
        if m:
            vals.add(int(m.group(1), 16) & 0xffffffff)
    return vals


def agree(name, sandbox="on"):
    calls, text = listing(name, sandbox)
    sections = pfc_sections(text)
    assert set(calls) == set(sections), \
        f"{name}: listed only {sorted(set(calls) - set(sections))}, " \
        f"built only {sorted(set(sections) - set(calls))}"
    for call, rules in calls.items():
        lines = sections[call]
        errno = [int(m.group(1)) for r in rules for m in [re.search(r"errno (\d+)", r)] if m]
        built_errno = [int(m.group(1)) for ln in lines
                       for m in [re.match(r"action ERRNO\((\d+)\)", ln)] if m]
        assert errno == built_errno, (name, call, rules, lines)
        conditional = any(ln.startswith("if ($a") for ln in lines)
        assert conditional == any("arg" in r for r in rules), (name, call, rules, lines)
    for call, arg in (("ioctl", 1), ("socket", 0), ("socketpair", 0), ("openat", 2)):
        if call in calls and any("arg" in r for r in calls[call]):
            assert listed_values(calls[call], arg) == compared(sections[call], arg), \
                (name, call, calls[call], sections[call])
    return calls


def test_listing_agrees_with_the_built_filters():
    lists = {name: agree(name) for name in KINDS + PROGRAMS}
    # ioctl requests are named wherever a table names them
    assert any("KVM_RUN" in r for r in lists["vcpu"]["ioctl"]), lists["vcpu"]["ioctl"]
    assert all(re.search(r"  [A-Z_0-9]+$", r) for r in lists["main"]["ioctl"])
    # what the new kinds may not do
    for call in ("socket", "bind", "connect", "listen", "execve", "socketpair", "unlink"):
        assert call not in lists["nbd-worker"], call
    for call in ("pwrite64", "pwritev", "sendmsg", "accept4", "ioctl", "fsync", "epoll_wait"):
        assert call not in lists["compress-worker"], call
    for call in ("accept4", "recvfrom", "sendto", "epoll_wait", "pwrite64", "fdatasync",
                 "fallocate", "clone"):
        assert call in lists["nbd-worker"], call
    # a per-thread list never allows what the process list does not
    for kind in KINDS:
        base = lists["daemon" if kind == "daemon" else "main"]
        assert set(lists[kind]) <= set(base), (kind, sorted(set(lists[kind]) - set(base)))


def test_sub_options_shape_the_listing():
    wide = agree("main")
    narrow = agree("main", "on,spawn=deny,elevateprivileges=deny,resourcecontrol=deny")
    for call in ("setuid", "setresuid", "sched_setaffinity", "setpriority"):
        assert call in wide and call not in narrow, call
    assert "execve" in wide and "execve" not in narrow


def test_unknown_name_is_refused():
    p = subprocess.run([tool(), "no-such-kind"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "no kind or program is called 'no-such-kind'" in p.stderr, p


if __name__ == "__main__":
    vtest.main()
