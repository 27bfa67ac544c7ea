#!/usr/bin/env python3
"""Churn: N connections each hold BYTES of an announced 5 MB body, and each one the server makes
give way (503) or closes is opened again at once, for SECONDS; meanwhile small requests (GET)
are timed, one at a time. Prints the attacker connections made, the small requests' statuses
and latency, the server's CPU seconds and VmHWM (docs/HOSTILE.md, "Many small holders").

  bench/churn.py BINARY N BYTES SECONDS      e.g. bench/churn.py target/release/scf-lean 600 40000 10
"""
import os, re, select, socket, subprocess, sys, threading, time, resource

resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
binary, n, size, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
env = dict(os.environ, PORT="0", SCF_LEAN_LOG_LEVEL="info")
env.setdefault("SCF_LEAN_MEMORY_BUDGET_BYTES", str(32 << 20))
p = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
port = int(re.search(r":(\d+) in ", p.stdout.readline().decode()).group(1))
threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
head = b"POST /event-invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n" + b" " * size

def ticks():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def hwm():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmHWM:"):
            return int(l.split()[1])

stop = time.time() + secs
opened = [0]
def attack():
    conns = []
    poller = select.epoll()
    by_fd = {}
    def one():
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        try:
            s.send(head)
        except OSError:
            pass
        poller.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = s
        opened[0] += 1
    for _ in range(n):
        one()
    while time.time() < stop:
        for fd, ev in poller.poll(0.05):
            s = by_fd.pop(fd)
            poller.unregister(fd)
            s.close()
            one()
    for s in by_fd.values():
        s.close()

t = threading.Thread(target=attack)
c0 = ticks()
t.start()
time.sleep(1)
lat, codes = [], {}
while time.time() < stop - 0.2:
    t0 = time.time()
    c = socket.create_connection(("127.0.0.1", port))
    c.settimeout(10)
    c.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
    d = b""
    while b"\r\n\r\n" not in d:
        r = c.recv(65536)
        if not r:
            break
        d += r
    lat.append(time.time() - t0)
    code = int(d[9:12]) if d else 0
    codes[code] = codes.get(code, 0) + 1
    c.close()
    time.sleep(0.005)
t.join()
cpu = (ticks() - c0) / 100
lat.sort()
q = lambda x: lat[int((len(lat) - 1) * x)] * 1000
print(f"churn {n}x{size}: {opened[0]} attacker connections in {secs:.0f} s; small {codes} p50 {q(.5):.2f} ms p99 {q(.99):.2f} ms max {lat[-1]*1000:.1f} ms; server CPU {cpu:.2f} s; VmHWM {hwm()} kB")
p.kill()
