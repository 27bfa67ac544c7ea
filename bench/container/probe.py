#!/usr/bin/python3
"""Container cold starts as SCF makes them: pull the image, run it, send the first event.

    probe.py --runs N --event FILE --json OUT --label KEY=VALUE NAME=IMAGE ...

Each run of an image, untimed first: every image named on the command line is removed from
podman's local storage (images that share a base layer would otherwise find it there), and the
storage must then hold no image at all (bench/container.sh gives podman a storage of its own);
then `sync` and a pause of SETTLE s, so that the writes and deletions the last run left behind
(a Debian image is 77-171 MiB of files) do not land on this one. Then, timed from one clock:
  pull     `podman pull --tls-verify=false IMAGE` until it returns (download, check, unpack)
  start    `podman run -d --read-only --tmpfs /tmp --ulimit nofile=1024:1024
           --ulimit nproc=1024:1024 -p 127.0.0.1:PORT:9000 IMAGE` (runc), then `POST
           /event-invoke` (every X-Scf-* header, the event as the body) tried again every
           0.5 ms until a complete response comes: from the start of `podman run` to the last
           byte of the response. podman forwards the port before the process listens, so a
           connection can be accepted and dropped; the whole exchange is retried.
  total    pull + start
The response must be a 200 that echoes the request id. The container is removed after
(untimed); a new loopback port is used each run. The images are interleaved: every round runs
each image once, in an order shuffled anew each round (seeded, --seed), so that no image
always follows the same one (a rotation, A B C, B C A, ..., would keep each one's neighbour).
One round first is not recorded (--warmup): podman's and the registry's first runs.

Prints a markdown table; OUT gets every measurement.
"""
import argparse
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import time

REQUEST_ID = "container-0001"
DEADLINE = 120.0
SETTLE = 1.0


def request(body):
    head = (
        "POST /event-invoke HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
        "Content-Type: application/json\r\n"
        f"X-Scf-Request-Id: {REQUEST_ID}\r\nX-Scf-Memory: 128\r\nX-Scf-Timeout: 3000\r\n"
        "X-Scf-Version: $LATEST\r\nX-Scf-Name: cos-handler\r\nX-Scf-Namespace: default\r\n"
        "X-Scf-Region: ap-chengdu\r\nX-Scf-Appid: 1253970026\r\nX-Scf-Uin: 100000000001\r\n"
        "X-Scf-Secret-Id: AKIDbenchbenchbenchbenchbenchbench\r\n"
        "X-Scf-Secret-Key: benchbenchbenchbenchbenchbenchbe\r\n"
        "X-Scf-Session-Token: benchtokenbenchtokenbenchtokenbenchtokenbenchtoken\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def exchange(port, req):
    """One request on a new connection; the whole response (head, body) or an OSError."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed before the head")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if length is None:
            raise ConnectionResetError("no Content-Length")
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed mid-body")
            body += chunk
        return head, body


def podman(*args, timeout=300):
    return subprocess.run(["podman", "--runtime", "runc", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def podman_ok(*args):
    r = podman(*args)
    if r.returncode != 0:
        sys.exit(f"podman {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(name, image, images, req, label):
    for i in images:
        podman("rmi", "-f", i)
    if podman_ok("images", "-aq"):
        sys.exit("images left in local storage before a pull (bench/container.sh gives the probe a storage of its own)")
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)
    port = free_port()
    t0 = time.perf_counter()
    podman_ok("pull", "-q", "--tls-verify=false", image)
    t1 = time.perf_counter()
    cid = podman_ok("run", "-d", "--read-only", "--tmpfs", "/tmp",
                    "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                    "--label", label, "-p", f"127.0.0.1:{port}:9000", image)
    t2 = time.perf_counter()
    try:
        while True:
            try:
                head, body = exchange(port, req)
                break
            except OSError as e:
                if time.perf_counter() - t1 > DEADLINE:
                    logs = podman("logs", cid).stderr[-2000:]
                    sys.exit(f"{name}: no response {DEADLINE:.0f} s after podman run: {e}\n{logs}")
                time.sleep(0.0005)
        t3 = time.perf_counter()
    finally:
        podman("rm", "-f", "-t", "0", cid)
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" " or REQUEST_ID.encode() not in body:
        sys.exit(f"{name}: unexpected response {status!r} {body[:200]!r}")
    ms = lambda a, b: round((b - a) * 1000, 2)
    return {"pull_ms": ms(t0, t1), "run_returned_ms": ms(t1, t2), "start_ms": ms(t1, t3),
            "total_ms": ms(t0, t3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--event", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("targets", nargs="+", metavar="NAME=IMAGE")
    a = ap.parse_args()
    # Stopped: the podman command under way is killed (subprocess.run does it on the way out)
    # and the container removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    targets = [t.split("=", 1) for t in a.targets]
    images = [i for _, i in targets]
    req = request(open(a.event, "rb").read())
    runs = {n: [] for n, _ in targets}
    order = []
    rng = random.Random(a.seed)
    last = None
    for r in range(-a.warmup, a.runs):
        rnd = list(targets)
        rng.shuffle(rnd)
        if r >= 0:
            order.append([n for n, _ in rnd])
        for name, image in rnd:
            m = one(name, image, images, req, a.label)
            m["after"], last = last, name
            if r >= 0:
                runs[name].append(m)
            print(f"   {'warm-up' if r < 0 else f'round {r + 1}/{a.runs}'} {name}: "
                  f"pull {m['pull_ms']:.0f} ms, start {m['start_ms']:.0f} ms, "
                  f"total {m['total_ms']:.0f} ms", file=sys.stderr)
    for i in images:
        podman("rmi", "-f", i)

    keys = ("pull_ms", "run_returned_ms", "start_ms", "total_ms")
    summary = {}
    for name, ms in runs.items():
        summary[name] = {key: {"median": statistics.median(m[key] for m in ms),
                               "min": min(m[key] for m in ms), "max": max(m[key] for m in ms)}
                         for key in keys}
    json.dump({"runs": a.runs, "warmup_rounds": a.warmup, "seed": a.seed, "order": order,
               "targets": dict(targets), "measurements": runs,
               "summary": summary}, open(a.json, "w"), indent=1)

    f = lambda s: f"{s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f})"
    print("| image | pull, ms | start → first response, ms | total, ms |")
    print("|---|---:|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {f(s['pull_ms'])} | {f(s['start_ms'])} | **{s['total_ms']['median']:,.0f}** "
              f"({s['total_ms']['min']:,.0f}–{s['total_ms']['max']:,.0f}) |")


if __name__ == "__main__":
    main()
