#!/usr/bin/env python3
"""RSS of the server at idle and after 10 event invocations (bench/order.sh, src/hot-text.ld).

  [COLD=1] [LOG=off|default|info...] bench/order-measure.py BINARY [RUNS]

Per run: start BINARY (PORT free, SCF_LEAN_LOG_LEVEL=LOG, default off), wait until the port is in
the listen table (no probe connection), sleep 0.2 s, read VmRSS, the Rss of the binary's own
mappings (smaps) and minflt; send 10 `POST /event-invoke` `{"a":1}` (a connection each), read
them again; SIGTERM. Prints each run and the medians (KiB; faults). COLD=1 drops the binary's
page cache before each run (posix_fadvise DONTNEED), so the exec reads it by readahead; without
it the page cache is what it is (e.g. as `cp` wrote it: 64 KiB folios on Linux 6.18 ext4).
"""
import os, sys, socket, subprocess, time, statistics, signal

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def status(pid):
    d = {}
    for l in open(f"/proc/{pid}/status"):
        k, v = l.split(":", 1); d[k] = v.strip()
    return int(d["VmRSS"].split()[0])

def minflt(pid):
    s = open(f"/proc/{pid}/stat").read()
    f = s[s.rindex(")") + 2:].split()
    return int(f[7])  # field 10 minflt (index 9 overall; after pid, comm: state=0 ... minflt=7)

def exe_rss(pid, exe):
    tot, per, cur = 0, [], None
    for l in open(f"/proc/{pid}/smaps"):
        parts = l.split()
        if len(parts) >= 6 and "-" in parts[0] and not l.startswith(("Rss", "Size")) and parts[0][0] in "0123456789abcdef" and ":" in parts[3]:
            cur = (parts[0], parts[1], parts[-1])
        elif l.startswith("Rss:") and cur and cur[2] == exe:
            kb = int(parts[1]); tot += kb; per.append(f"{cur[1]}:{kb}")
    return tot, per

def request(port, n):
    body = b'{"a":1}'
    req = (b"POST /event-invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, rest = data.split(b"\r\n\r\n", 1)
        cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
        while len(rest) < cl:
            rest += s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head
        s.close()
    return rest

COLD = os.environ.get("COLD") == "1"
LOG = os.environ.get("LOG", "off")
def run(exe):
    if COLD:  # drop the binary's page cache: the exec reads it by readahead, as on a fresh host
        fd = os.open(exe, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
    port = free_port()
    env = dict(os.environ, PORT=str(port))
    if LOG != "default": env["SCF_LEAN_LOG_LEVEL"] = LOG
    p = subprocess.Popen([exe], env=env, stdout=subprocess.DEVNULL)
    t0 = time.time()
    while True:
        # poll the listen table, not the port: a probe connection would run accept code
        if any(l.split()[1].endswith(":%04X" % port) and l.split()[3] == "0A" for l in open("/proc/net/tcp").readlines()[1:]):
            break
        if time.time() - t0 > 5: raise RuntimeError("no listen")
        time.sleep(0.002)
    time.sleep(0.2)
    e = exe_rss(p.pid, os.path.realpath(exe))
    r = dict(idle_rss=status(p.pid), idle_exe=e[0], idle_flt=minflt(p.pid), idle_maps=e[1])
    body = request(port, 10)
    time.sleep(0.05)
    r.update(req_rss=status(p.pid), req_exe=exe_rss(p.pid, os.path.realpath(exe))[0], req_flt=minflt(p.pid))
    r["req_maps"] = exe_rss(p.pid, os.path.realpath(exe))[1]
    p.send_signal(signal.SIGTERM); p.wait()
    return r

exe = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 7
rs = [run(exe) for _ in range(n)]
for r in rs: print(r)
keys = ["idle_rss", "idle_exe", "idle_flt", "req_rss", "req_exe", "req_flt"]
print("MEDIAN", "cold" if COLD else "warm", "log=" + LOG, exe, os.path.getsize(exe), {k: statistics.median(r[k] for r in rs) for k in keys})
