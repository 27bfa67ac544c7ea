# Shared by bench/nginx.sh, bench/soak.sh and bench/hostile.sh: build, start, measure, count.
# Source it; everything it starts is remembered and stopped by `cleanup` (trap it on EXIT).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/scf-lean"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# A TCP port nothing listens on now, for a program that cannot be told to pick one itself
# (nginx): another process may take it before that program binds it, so its caller tries again
# when the bind fails.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

build_release() {
  (cd "$ROOT" && cargo build --release --quiet --bin scf-lean)
}

# start_server [VAR=value ...]: runs the release binary on PORT=0 (the kernel picks a free port
# as it binds; it binds 0.0.0.0, only loopback is used); sets SERVER_PID and SERVER_PORT, the
# port its listening socket has (read from /proc, whatever its log level); log lines go to
# $WORK/server.log.
start_server() {
  env PORT=0 "$@" "$BIN" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  SERVER_PORT=$(listening_port "$SERVER_PID")
}

# listening_port PID: the port PID's listening TCP socket has, once it listens (at most 10 s).
listening_port() {
  python3 - "$1" <<'PY'
import os, sys, time
pid = sys.argv[1]
deadline = time.time() + 10
while time.time() < deadline:
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
                  if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
    except OSError:
        sys.exit(f"process {pid} is gone")
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).readlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                print(int(f[1].rsplit(":", 1)[1], 16))
                sys.exit(0)
    time.sleep(0.02)
sys.exit(f"process {pid} listens on no port after 10 s")
PY
}

# wait_port PORT: until something accepts on it (at most 10 s).
wait_port() {
  local i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
# User + system CPU time in clock ticks.
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# run_count URL PER_THREAD THREADS CONNS [close] [pause]: wrk with bench/count.lua until every
# thread has PER_THREAD responses (at most 1 hour); prints wrk's output, and its count line
# is left in $WORK/count.txt.
run_count() {
  local url=$1 per=$2 threads=$3 conns=$4; shift 4
  local done_dir="$WORK/done.$RANDOM"
  mkdir -p "$done_dir"
  COUNT_DONE_DIR="$done_dir" wrk -t"$threads" -c"$conns" -d3600s --timeout 10s \
    -s "$ROOT/bench/count.lua" "$url" -- "$per" "$@" >"$WORK/wrk.out" 2>&1 &
  local wrk_pid=$!
  local i
  for i in $(seq 1 72000); do
    [ "$(ls "$done_dir" | wc -l)" -ge "$threads" ] && break
    kill -0 "$wrk_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || true
  cat "$WORK/wrk.out"
  grep '^count:' "$WORK/wrk.out" >"$WORK/count.txt" || echo "count: 0 ok: 0 non200: 0 s502: 0 errors: 1" >"$WORK/count.txt"
}

# field NAME: a number from the count line.
field() { sed -n "s/.*\b$1: \([0-9]*\).*/\1/p" "$WORK/count.txt" | head -1; }
