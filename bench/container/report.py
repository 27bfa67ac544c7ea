#!/usr/bin/python3
"""The tables of bench/container.sh, from probe.py's measurements and the images' sizes.

    report.py PROBE.json IMAGES.jsonl > table.md

IMAGES.jsonl: one line per image: name, what it holds, compressed bytes (every blob the pull
downloads, as the registry serves them, and the manifest), uncompressed bytes, layers.
Ratios are of medians; "run by run" is the median of each round's own ratio (the two images ran
next to each other in that round).
"""
import json
import statistics
import sys

probe = json.load(open(sys.argv[1]))
images = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
S, M = probe["summary"], probe["measurements"]


def mib(b):
    return f"{b / 1024:,.0f} KiB" if b < 1024 * 1024 else f"{b / 1048576:,.1f} MiB"


def ms(v):
    return f"{v:,.0f}" if v >= 10 else f"{v:,.1f}"


def span(s):
    return f"{ms(s['median'])} ({ms(s['min'])}–{ms(s['max'])})"


print("| image | holds | compressed (pulled) | uncompressed | layers |")
print("|---|---|---:|---:|---:|")
for i in images:
    print(f"| {i['name']} | {i['what']} | {mib(i['compressed_bytes'])} ({i['compressed_bytes']:,} B) "
          f"| {mib(i['uncompressed_bytes'])} | {i['layers']} |")
print()
print(f"Medians (min–max) of {probe['runs']} runs per image, ms:")
print()
print("| image | pull | start → first response | of which `podman run -d` | total | total ÷ scf-lean |")
print("|---|---:|---:|---:|---:|---:|")
ref = S.get("scf-lean", {}).get("total_ms", {}).get("median")
for i in images:
    s = S.get(i["name"])
    if not s:
        continue
    r = f"×{s['total_ms']['median'] / ref:.2f}" if ref else "–"
    print(f"| {i['name']} | {span(s['pull_ms'])} | {span(s['start_ms'])} | {ms(s['run_returned_ms']['median'])} | "
          f"**{ms(s['total_ms']['median'])}** ({ms(s['total_ms']['min'])}–{ms(s['total_ms']['max'])}) | {r} |")
print()


def ratio(a, b, key="total_ms"):
    if a not in S or b not in S:
        return None
    med = S[a][key]["median"] / S[b][key]["median"]
    # Run i of a and run i of b are in the same round.
    pairs = statistics.median(x[key] / y[key] for x, y in zip(M[a], M[b]))
    return med, pairs


rows = [("scf-lean ÷ floor", "scf-lean", "floor", "≤ ×1.10", lambda r: r <= 1.10)]
for t in ("debian-scf-lean", "debian-python", "debian-node"):
    rows.append((f"{t} ÷ scf-lean", t, "scf-lean", "≥ ×10", lambda r: r >= 10))
print("| ratio | total (medians) | run by run | pull | start → first response | goal | |")
print("|---|---:|---:|---:|---:|---|---|")
for label, a, b, goal, ok in rows:
    r = ratio(a, b)
    if r is None:
        continue
    p, st = ratio(a, b, "pull_ms"), ratio(a, b, "start_ms")
    verdict = "" if ok is None else ("**met**" if ok(r[0]) else "**not met**")
    print(f"| {label} | ×{r[0]:.2f} | ×{r[1]:.2f} | ×{p[0]:.2f} | ×{st[0]:.2f} | {goal} | {verdict} |")
