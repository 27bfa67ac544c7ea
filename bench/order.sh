#!/usr/bin/env bash
# Regenerates src/hot-text.ld: the functions the static musl binary runs from exec to listen,
# per event, per HTTP request and at shutdown, laid out first in .text by GNU ld (build.rs passes
# the script with -T; its INSERT keeps ld's default script). Why: the kernel maps a file's pages
# into a process by fault-around (16 pages from the faulting 64 KiB window, Linux 6.18 also maps
# whole large page-cache folios), so start-up code spread over .text, between std's backtrace
# symbolizer and libunwind that never run, pulled most of .text into RSS.
#
#   bench/order.sh            # needs valgrind (apt-get install valgrind) and python3
#
# The code of start-up and requests must fit one 64 KiB window (65,520 bytes after .init), or
# every process maps a second one (+64 KiB RSS): order.py warns. Code first run at shutdown is
# laid out last and may spill past it (one more page mapped as the process exits). What keeps it there: the paths a good request or
# start does not take (errors, --help, debug lines, settings) are #[cold] #[inline(never)]
# functions of their own, not inlined into the loop and Call::run.
#
# Rerun it after changing what runs at start-up or per request (a new dependency, a toolchain
# upgrade, src/server.rs...). A stale script degrades gracefully: a rule whose section no longer
# exists matches nothing, and the function it named stays where ld would put it anyway (RSS
# creeps back towards the unordered figure; nothing breaks). The rules wildcard the parts of
# the mangled names that follow cargo's -C metadata and the toolchain (legacy 17h<hash>E, v0
# crate disambiguators), so a version bump, a profile change or an unrelated source edit keeps
# them matching; renamed or new functions need a rerun.
#
# Measured with bench/order-measure.py (7 runs, medians, KiB; Linux 6.18, ext4), stripped
# release binary 471,184 -> 471,256 bytes (gzip -9: 232,912 -> 233,916):
#
#                                  idle VmRSS (of it the binary)   after 10 events
#   page cache as cp wrote it (64 KiB folios)
#     unordered                    360 (336)                       436 (400)
#     ordered                      260 (236)                       268 (236)
#   page cache dropped before each run (COLD=1: readahead, 4 KiB pages)
#     unordered                    336 (308)                       408 (372)
#     ordered                      176 (148)                       184 (148)
#   default log level (info: a line per request), cold
#     unordered                    404 (372)                       408 (372)
#     ordered                      180 (148)                       184 (148)
#
# With the folios the first text fault maps [0x401000, 0x411000) and with it the whole folio
# of 0x410000: two windows. `-Wl,-z,max-page-size=0x10000` (64 KiB-aligned segments) gives
# 172-180 idle / 180-184 after events in every case, for 594,136 bytes on disk (zero padding;
# gzip +580 bytes): SCF_LEAN_LINK_ARGS="-Wl,--build-id=none @hot-text -Wl,-z,max-page-size=0x10000".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/scf-lean-order}
TARGET=x86_64-unknown-linux-musl
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$OUT/target

# 1. The same code with symbols, and a link map (input section -> address). Unordered:
#    SCF_LEAN_LINK_ARGS replaces build.rs's arguments, hot-text.ld included. Linked by GNU ld
#    through cc, whose map order.py reads (the input sections are the same for rust-lld, the
#    build's linker, and build.rs gives lld its own copy of the script).
CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=cc \
SCF_LEAN_LINK_ARGS="-Wl,--build-id=none -Wl,-Map=$OUT/scf-lean.map" \
  cargo build --release --target $TARGET --bin scf-lean --config profile.release.strip=false --quiet
BIN=$CARGO_TARGET_DIR/$TARGET/release/scf-lean

# 2. Profile it under callgrind, one dump per phase: start (to listen), 10 event invocations,
#    3 HTTP-trigger requests, shutdown (SIGTERM). Default log level, stdout a pipe: SCF runs
#    it that way (a file takes the log's other, out-of-line way).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -f "$OUT"/callgrind.out*
PORT=$PORT valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" --demangle=no \
  --compress-strings=no --compress-pos=no "$BIN" > >(cat >"$OUT/server.log") 2>"$OUT/valgrind.log" &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
python3 - "$PORT" "$VG" <<'PY'
import socket, subprocess, sys, time
port, vg = int(sys.argv[1]), sys.argv[2]
def listening():  # the listen table, not a probe connection (that would run accept code)
    return any(l.split()[1].endswith(":%04X" % port) and l.split()[3] == "0A"
               for l in open("/proc/net/tcp").readlines()[1:])
t = time.time()
while not listening():
    assert time.time() - t < 60, "no listen"
    time.sleep(0.05)
time.sleep(0.5)
def dump():
    subprocess.run(["callgrind_control", "-d", vg], check=True, stdout=subprocess.DEVNULL)
def request(head, body=b""):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head.replace(b"\n", b"\r\n") + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    h, rest = data.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(rest) < n:
        rest += s.recv(65536)
    assert h.startswith(b"HTTP/1.1 200"), h
    s.close()
dump()
for i in range(10):  # as SCF sends them (a new connection each time)
    request(b"POST /event-invoke HTTP/1.1\nHost: 127.0.0.1:9000\nContent-Type: application/json\n"
            b"X-Scf-Request-Id: 4a5e1c3f-0000-4000-8000-%012d\nX-Scf-Memory: 128\nX-Scf-Timeout: 3000\n"
            b"X-Scf-Name: f\nX-Scf-Namespace: default\nX-Scf-Version: $LATEST\nX-Scf-Region: ap-guangzhou\n"
            b"X-Scf-Appid: 1250000000\nX-Scf-Uin: 100000000001\n" % i, b'{"a":1}')
dump()
for i in range(3):
    request(b"POST /path?q=%d HTTP/1.1\nHost: 127.0.0.1:9000\nContent-Type: text/plain\n"
            b"X-Scf-Request-Id: 4a5e1c3f-0000-4000-8000-%012d\n" % (i, i), b"hello")
dump()
PY
kill -TERM $VG
wait $VG || true
trap - EXIT

# 3. Executed functions -> their input sections -> src/hot-text.ld. strcmp: musl's __vdsosym
#    looks the vDSO's clock_gettime up with it at the first clock read; valgrind hides the vDSO.
#    __munmap, realloc, __libc_realloc: under concurrent load buffers grow and go back to the
#    kernel (measured: each in turn mapped a second window under wrk -c32, VmHWM +64 KiB); the
#    sequential profile, whose buffers are sized at once, runs neither.
python3 bench/order.py "$OUT/scf-lean.map" "$BIN" src/hot-text.ld --extra strcmp,__munmap,realloc,__libc_realloc \
  "$OUT/callgrind.out.1" "$OUT/callgrind.out.2" "$OUT/callgrind.out.3" "$OUT/callgrind.out"
