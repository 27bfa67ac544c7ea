#!/usr/bin/env python3
"""Memory pressure: partial uploads that hold the memory budget, then 50 small requests.

  bench/pressure.py BINARY SHAPE...        SHAPE = NxSENT[ofANNOUNCED], e.g. 600x40000of5000000
  bench/pressure.py pid:PID:PORT SHAPE...  a server already running (a container: its PID as
                                           the host sees it, the published port)

Each SHAPE is N connections that send the head of a POST /event-invoke announcing ANNOUNCED
bytes of body (10 x SENT if not given) and SENT bytes of it, then stop. Then 50 small requests,
one at a time on fresh connections (a GET and an event in turn): their statuses and latency;
how the holders fared (a 503 waiting, or still held); the server's VmHWM. A binary is started on
PORT=0 with SCF_LEAN_MEMORY_BUDGET_BYTES=32 MiB unless set. docs/HOSTILE.md, "Many small
holders", has the figures; tests/hostile.rs runs the same shapes.
"""
import os, re, socket, subprocess, sys, time, resource

resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
binary = sys.argv[1]
shapes = sys.argv[2:]
env = dict(os.environ, PORT="0", SCF_LEAN_LOG_LEVEL="info")
env.setdefault("SCF_LEAN_MEMORY_BUDGET_BYTES", str(32 << 20))
import threading
class Ext:
    def __init__(self, pid): self.pid = pid
    def kill(self): pass
if binary.startswith("pid:"):
    _, pid, port = binary.split(":")
    p, port = Ext(int(pid)), int(port)
else:
    p = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    port = int(re.search(r":(\d+) in ", line).group(1))
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()

def status(pid, key):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key):
            return int(l.split()[1])

base_rss = status(p.pid, "VmRSS:")
holders = []
t0 = time.time()
for shape in shapes:
    m = re.fullmatch(r"(\d+)x(\d+)(?:of(\d+))?", shape)
    n, sent, ann = int(m[1]), int(m[2]), int(m[3] or 0) or None
    ann = ann or sent * 10
    head = f"POST /event-invoke HTTP/1.1\r\nHost: t\r\nContent-Length: {ann}\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(True)
        s.settimeout(5)
        try:
            s.sendall(head + b" " * sent)
        except OSError:
            pass
        holders.append(s)
hold_s = time.time() - t0
time.sleep(0.5)
codes = {}
lat = []
for i in range(50):
    t = time.time()
    c = socket.create_connection(("127.0.0.1", port))
    c.settimeout(10)
    req = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n" if i % 2 == 0 else b"POST /event-invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
    c.sendall(req)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d:
                break
            data += d
        code = int(data[9:12]) if data else 0
    except OSError as e:
        code = str(e)
    lat.append(time.time() - t)
    codes[code] = codes.get(code, 0) + 1
    c.close()
hwm = status(p.pid, "VmHWM:")
# How the holders fared: a 503 waiting, or nothing (still held).
held = refused = gone = 0
for s in holders:
    s.settimeout(0.001)
    try:
        d = s.recv(100)
        if d.startswith(b"HTTP/1.1 503"):
            refused += 1
        elif not d:
            gone += 1
        else:
            gone += 1
    except socket.timeout:
        held += 1
    except OSError:
        gone += 1
lat.sort()
print(f"{' + '.join(shapes)}: small requests {codes}, p50 {lat[25]*1000:.2f} ms, max {lat[-1]*1000:.2f} ms; "
      f"holders: {held} held, {refused} refused 503, {gone} closed; VmHWM {hwm} kB (VmRSS {base_rss} kB at start); "
      f"holders sent in {hold_s:.2f} s")
p.kill()
for s in holders:
    s.close()
