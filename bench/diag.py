#!/usr/bin/env python3
"""Summarises bench/run.sh's diagnosis files (strace, /usr/bin/time, perf stat, callgrind) as
JSON on stdout.

    python3 bench/diag.py DIAG_DIR BIN_DIR > diag.json

For each peer: the system calls from execve to listen (names, count, and the time strace saw
between them, which strace itself inflates), the totals of `strace -c`, page faults and peak RSS
of one start + one request, and for the unstripped builds the instructions executed before
`listen` (callgrind --dump-before=listen) with the top functions and the calls into malloc.
"""
import glob
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta

D, BIN = sys.argv[1], sys.argv[2]
LINE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(?:<\.\.\. )?(\w+)")
DUR = re.compile(r"<(\d+\.\d+)>\s*$")


def ts(s):
    return datetime.strptime(s, "%H:%M:%S.%f")


def strace_startup(path):
    """Syscalls of the main process from execve to the end of listen."""
    calls, t_exec, t_listen, pid0 = [], None, None, None
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        pid, t, name = m.group(1), ts(m.group(2)), m.group(3)
        if pid0 is None:
            pid0 = pid
        if name == "execve" and t_exec is None:
            d = DUR.search(line)
            t_exec = t + timedelta(seconds=float(d.group(1)) if d else 0)
            continue
        if t_exec is None:
            continue
        calls.append(name)
        if name == "listen":
            d = DUR.search(line)
            t_listen = t + timedelta(seconds=float(d.group(1)) if d else 0)
            break
    if t_listen is None:
        return None
    before = calls[:-1]
    socket_at = before.index("socket") if "socket" in before else len(before)
    return {
        "syscalls_before_listen": len(before),
        "syscalls_before_socket": socket_at,
        "before_socket": before[:socket_at],
        "histogram_before_listen": dict(Counter(before).most_common()),
        "strace_us_exec_to_listen": round((t_listen - t_exec).total_seconds() * 1e6),
    }


def strace_c(path):
    total = None
    for line in open(path, errors="replace"):
        parts = line.split()
        if parts and parts[-1] == "total":
            nums = [p for p in parts[:-1]]
            # % time, seconds, usecs/call, calls, errors, total
            try:
                total = int(nums[3]) if len(nums) >= 4 else int(nums[-1])
            except ValueError:
                total = None
    return total


def time_v(path):
    out = {}
    for line in open(path, errors="replace"):
        line = line.strip()
        if line.startswith("Minor (reclaiming a frame) page faults"):
            out["minor_faults"] = int(line.split(":")[1])
        elif line.startswith("Major (requiring I/O) page faults"):
            out["major_faults"] = int(line.split(":")[1])
        elif line.startswith("Maximum resident set size"):
            out["max_rss_kib"] = int(line.split(":")[1])
    return out


def perf(path):
    out = {}
    for line in open(path, errors="replace"):
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("page-faults", "minor-faults", "major-faults"):
            out[parts[1].replace("-", "_")] = int(parts[0].replace(",", ""))
        elif len(parts) >= 3 and parts[2] == "task-clock":
            out["task_clock_ms"] = float(parts[0].replace(",", ""))
    return out


ALLOC = {"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign"}


def callgrind(path):
    """Total instructions, the top functions (exclusive) and calls into the allocator."""
    out = {"file": os.path.basename(path)}
    ann = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=99", path],
        capture_output=True, text=True,
    ).stdout
    top = []
    for line in ann.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(.*)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        what = m.group(2).strip()
        if "PROGRAM TOTALS" in what:
            out["instructions"] = n
        elif what and len(top) < 15:
            top.append({"ir": n, "fn": re.sub(r"\s+\[.*\]$", "", what)})
    out["top"] = top
    names, calls = {}, defaultdict(int)
    cfn = None
    for line in open(path, errors="replace"):
        m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("cfn="):
                cfn = names.get(m.group(1))
            continue
        if line.startswith("calls=") and cfn is not None:
            if cfn in ALLOC:
                calls[cfn] += int(line.split("=")[1].split()[0])
            cfn = None
    out["allocator_calls"] = dict(calls)
    return out


peers = {}
for path in sorted(glob.glob(os.path.join(D, "*.strace"))):
    name = os.path.basename(path)[: -len(".strace")]
    p = peers.setdefault(name, {})
    p["startup"] = strace_startup(path)
    if os.path.exists(path + "-c"):
        p["strace_total_calls"] = strace_c(path + "-c")
    tv = os.path.join(D, name + ".time")
    if os.path.exists(tv):
        p["time_v"] = time_v(tv)
    pf = os.path.join(D, name + ".perf")
    if os.path.exists(pf):
        p["perf"] = perf(pf)

def smaps(path):
    """Mappings with resident pages: name, Rss and anonymous KiB."""
    maps, cur = [], None
    for line in open(path, errors="replace"):
        parts = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            name = parts[5] if len(parts) > 5 else "[anon]"
            cur = {"name": f"{os.path.basename(name) if name.startswith('/') else name} {parts[1]}",
                   "rss_kib": 0, "anon_kib": 0}
            maps.append(cur)
        elif parts and parts[0] == "Rss:":
            cur["rss_kib"] = int(parts[1])
        elif parts and parts[0] == "Anonymous:":
            cur["anon_kib"] = int(parts[1])
    return [m for m in maps if m["rss_kib"]]


for path in sorted(glob.glob(os.path.join(D, "*smaps"))):
    base = os.path.basename(path)
    if base.endswith(".loaded-smaps"):
        name = base[: -len(".loaded-smaps")]
        peers.setdefault(name, {})["loaded_smaps"] = smaps(path)
    else:
        name = base[: -len(".smaps")]
        peers.setdefault(name, {})["smaps"] = smaps(path)


def segments(path):
    out = []
    for line in open(path):
        p = line.split()
        if p and p[0] == "LOAD":
            va, mem = int(p[2], 16), int(p[5], 16)
            out.append((va & ~4095, (va + mem + 4095) & ~4095, " ".join(p[6:-1])))
    return out


def fault_kind(addr, segs, stack_top):
    for a, b, flags in segs:
        if a <= addr < b:
            return {"R E": "text", "R": "rodata/headers", "RW": "data/bss"}.get(flags, "elf " + flags)
    if stack_top and stack_top - (8 << 20) <= addr <= stack_top + 4096:
        return "stack"
    if addr >= 0x7F0000000000:
        return "anonymous mmap (malloc), vdso"
    return "heap (brk)"


def faults(path, segs):
    """Page faults and memory system calls of the last cold start, by phase."""
    rows = []
    for line in open(path, errors="replace"):
        p = line.split()
        if len(p) >= 2:
            rows.append(p)
    if not rows:
        return None
    last = rows[-1][0]
    phases = {"to_listen": defaultdict(int), "listen_to_response": defaultdict(int)}
    phase = "to_listen"
    stack_top = None
    for p in rows:
        if p[0] != last:
            continue
        ev = p[1].rstrip(":")
        if ev == "page-faults":
            addr = int(p[2], 16)
            # The first fault above the mmap base is execve copying argv onto the stack.
            if stack_top is None and addr >= 0x7F0000000000:
                stack_top = addr
            phases[phase]["fault: " + fault_kind(addr, segs, stack_top)] += 1
        elif ev.startswith("syscalls:sys_enter_"):
            call = ev[len("syscalls:sys_enter_"):]
            if call == "listen":
                phase = "listen_to_response"
                continue
            if call == "writev" and phase == "listen_to_response":
                break
            if call in ("mmap", "munmap", "brk"):
                phases[phase]["syscall: " + call] += 1
    return {k: dict(v) for k, v in phases.items()}


for path in sorted(glob.glob(os.path.join(D, "*.faults"))):
    name = os.path.basename(path)[: -len(".faults")]
    elf = os.path.join(D, name + ".readelf")
    if os.path.exists(elf):
        peers.setdefault(name, {})["faults"] = faults(path, segments(elf))

costs = None
if os.path.exists(os.path.join(D, "costs.json")):
    costs = json.load(open(os.path.join(D, "costs.json")))

for path in sorted(glob.glob(os.path.join(D, "*.callgrind.*"))):
    base = os.path.basename(path)
    name = base.split(".callgrind.")[0]
    # <pid>.1 is the dump before the first listen; <pid> alone the rest of the run.
    part = "before_listen" if re.search(r"\.\d+\.1$", base) else "after_listen"
    if re.search(r"\.\d+\.\d+$", base) and part != "before_listen":
        continue
    peers.setdefault(name, {}).setdefault("callgrind", {})[part] = callgrind(path)

json.dump({"peers": peers, "costs": costs}, sys.stdout, indent=1)
print()
