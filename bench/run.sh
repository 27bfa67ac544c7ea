#!/usr/bin/env bash
# Cold-start and warm benchmarks of scf-lean against peers and the physical floor.
#
#   bench/run.sh                 # the full run (about 20 min on 2 cores, tools installed)
#   QUICK=1 bench/run.sh         # a short pass: fewer runs, shorter wrk, 3 container runs
#   ONLY="cold warm" bench/run.sh   # steps: cold hyperfine warm size container variants diag
#   SCF_LEAN_REV=<rev> bench/run.sh # which commit of scf-lean to measure (default HEAD)
#   SCF_LEAN_REV=worktree bench/run.sh  # the working tree as it is, uncommitted edits included
#   SCF_LEAN_BASE=<rev> bench/run.sh     # also measure that commit, as the peer scf-lean-base,
#                                        # interleaved with the others: a before/after in one run
#
# Installs what it needs (Debian packages with apt-get, the musl target with rustup, crates for
# the hyper peer with cargo), builds every peer, measures, and writes:
#   bench/results/<UTC date>.json   every raw measurement
#   bench/REPORT.md                 the tables, the targets met / not met, the diagnosis
#   bench/results/<UTC date>.svg and bench/chart.svg   the headline ratios
# Scratch space: $BENCH_WORK (default /tmp/bench); Rust builds go to /tmp/bench-target.
#
# The peers answer the same request on $PORT: POST /event-invoke with a 1 KB COS event
# (bench/cold/cos-event.json) and every X-Scf-* header; each echoes the event and the context as
# scf-lean's reference echo (src/main.rs) does (bench/peers/*). Nobody logs per request: scf-lean runs with
# SCF_LEAN_LOG_LEVEL=off, Python's access log is switched off, the others have none.
#
# Steps (each interleaves the peers, A B C A B C ..., so that drift hits them alike):
#   cold       bench/cold/coldprobe.rs: COLD_RUNS fresh processes per peer, spawn → listening
#              → first complete response; server on CPU 0, probe on CPU 1. Native peers in one
#              interleaved set, node and python in another beside the floor.
#   hyperfine  hyperfine -N --warmup 10 --runs HF_RUNS over `coldprobe --once PEER`.
#   warm       wrk -t1, keep-alive, server on CPU 0 and wrk on CPU 1: 1 connection (--latency)
#              and 32 connections, WRK_SECS each, WRK_ROUNDS rounds; idle VmRSS after start
#              and VmHWM after the 32-connection run.
#   size       binary bytes; compressed image bytes as a registry stores them (layer, config and
#              manifest summed). Every FROM scratch image (scf-lean's and the native peers') is
#              the one `cargo scf image` writes and `cargo scf push` sends, one packer for all;
#              the others are podman's, recompressed by skopeo copy --dest-compress.
#   container  a local registry (docker-registry on 127.0.0.1:$REGISTRY_PORT) holds every image;
#              per run: rmi, then podman pull + podman run to the first complete response.
#   variants   cold starts of builds that isolate one cost each: a minimal Rust server with and
#              without std's runtime init (bench/cold/std-init); scf-lean with a normal fn main,
#              with a plain link (no hot-text order, no 64 KiB alignment), without +sse4.2.
#   diag       where scf-lean's start-up goes against the floor: strace -c / -tt, page faults
#              (perf stat, perf record of every fault), callgrind instruction counts of
#              unstripped builds, RSS by mapping, unit costs of this machine (bench/cold/costs.c).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The scf-lean source to build: `snapshot REV DIR`.
. bench/snapshot.sh
W=${BENCH_WORK:-/tmp/bench}
QUICK=${QUICK:-}
STAMP=${STAMP:-$(date -u +%Y-%m-%dT%H%M%SZ)}
if [[ -n "$QUICK" ]]; then
  COLD_RUNS=${COLD_RUNS:-40}; HF_RUNS=${HF_RUNS:-30}; WRK_SECS=${WRK_SECS:-3}
  WRK_ROUNDS=${WRK_ROUNDS:-1}; CT_RUNS=${CT_RUNS:-3}
else
  COLD_RUNS=${COLD_RUNS:-300}; HF_RUNS=${HF_RUNS:-200}; WRK_SECS=${WRK_SECS:-10}
  WRK_ROUNDS=${WRK_ROUNDS:-5}; CT_RUNS=${CT_RUNS:-20}
fi
ONLY=${ONLY:-cold hyperfine warm size container variants diag}
REGISTRY_PORT=${REGISTRY_PORT:-5055}
SRV_CPU=${SRV_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TARGET=x86_64-unknown-linux-musl
export CARGO_TARGET_DIR=/tmp/bench-target
EVENT=$ROOT/bench/cold/cos-event.json
BIN=$W/bin
PARTS=$W/parts
mkdir -p "$BIN" "$PARTS" "$ROOT/bench/results"
rm -f "$PARTS"/*.json "$PARTS"/*.jsonl
T_START=$(date +%s)

say() { echo ">> $*" >&2; }
step() { [[ " $ONLY " == *" $1 "* ]]; }

# ---------------------------------------------------------------- install ----------------
install_tools() {
  local want=() pair
  for pair in hyperfine:hyperfine wrk:wrk go:golang-go musl-gcc:musl-tools \
    docker-registry:docker-registry podman:podman runc:runc skopeo:skopeo \
    debootstrap:debootstrap strace:strace valgrind:valgrind taskset:util-linux \
    node:nodejs curl:curl; do
    command -v "${pair%%:*}" >/dev/null || want+=("${pair#*:}")
  done
  [[ -x /usr/bin/time ]] || want+=(time)
  [[ -x /usr/bin/python3 ]] || want+=(python3)
  if ((${#want[@]})); then
    say "apt-get install ${want[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >&2
  fi
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >&2
  HAVE_NIGHTLY=1
  if ! rustup +nightly target list --installed 2>/dev/null | grep -qx "$TARGET" ||
    [[ ! -d "$(rustc +nightly --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ]]; then
    rustup toolchain install nightly --component rust-src --target "$TARGET" >&2 || HAVE_NIGHTLY=
  fi
}

# ---------------------------------------------------------------- build ------------------
build_all() {
  local src
  snapshot "${SCF_LEAN_REV:-HEAD}" "$W/src"
  src=$SNAP_SRC
  SCF_COMMIT=$SNAP_COMMIT
  SCF_SRC=$src
  say "building scf-lean $SCF_COMMIT (stable, release, $TARGET)"
  (cd "$src" && SCF_LEAN_COMMIT=$SCF_COMMIT CARGO_TARGET_DIR=/tmp/bench-target/scf-lean \
    cargo build -q --release --target "$TARGET" --bin scf-lean >&2)
  cp /tmp/bench-target/scf-lean/$TARGET/release/scf-lean "$BIN/scf-lean"
  if [[ -n "$HAVE_NIGHTLY" ]]; then
    say "building scf-lean tiny (bench/build-tiny.sh)"
    (cd "$src" && SCF_LEAN_COMMIT=$SCF_COMMIT CARGO_TARGET_DIR=/tmp/bench-target/scf-lean \
      bench/build-tiny.sh -q --bin scf-lean >&2)
    cp /tmp/bench-target/scf-lean/$TARGET/tiny/scf-lean "$BIN/scf-lean-tiny"
  else
    say "no nightly with rust-src: the tiny build is left out"
    rm -f "$BIN/scf-lean-tiny"
  fi
  rm -f "$BIN/scf-lean-base"
  if [[ -n "${SCF_LEAN_BASE:-}" ]]; then
    local base base_commit
    snapshot "$SCF_LEAN_BASE" "$W/src-base"
    base=$SNAP_SRC
    base_commit=$SNAP_COMMIT
    say "building scf-lean-base $base_commit (the commit to compare with)"
    (cd "$base" && SCF_LEAN_COMMIT=$base_commit CARGO_TARGET_DIR=/tmp/bench-target/scf-lean-base \
      cargo build -q --release --target "$TARGET" --bin scf-lean >&2)
    cp /tmp/bench-target/scf-lean-base/$TARGET/release/scf-lean "$BIN/scf-lean-base"
  fi
  say "building the C floor (musl-gcc -static -O2)"
  musl-gcc -static -O2 -Wall -o "$BIN/floor-c" bench/peers/c/floor.c
  strip "$BIN/floor-c"
  say "building the hyper peer (tokio current-thread, static musl)"
  (cd bench/peers/hyper && cargo build -q --release --target "$TARGET" >&2)
  cp "$CARGO_TARGET_DIR/$TARGET/release/peer-hyper" "$BIN/hyper-ct"
  say "building the Go peer (CGO_ENABLED=0)"
  (cd bench/peers/go && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$BIN/go" . >&2)
  say "building the probe"
  rustc -O --edition 2021 --target "$TARGET" -C target-feature=+crt-static -C strip=symbols \
    bench/cold/coldprobe.rs -o "$BIN/coldprobe"
  PY=/usr/bin/python3
  # name=command (a program and its arguments; no spaces inside paths).
  PEERS=("floor-c=$BIN/floor-c" "scf-lean=$BIN/scf-lean")
  [[ -x "$BIN/scf-lean-base" ]] && PEERS+=("scf-lean-base=$BIN/scf-lean-base")
  [[ -x "$BIN/scf-lean-tiny" ]] && PEERS+=("scf-lean-tiny=$BIN/scf-lean-tiny")
  PEERS+=("hyper-ct=$BIN/hyper-ct" "go=$BIN/go"
    "node=$(command -v node) $ROOT/bench/peers/node/server.js"
    "python=$PY $ROOT/bench/peers/python/server.py")
  for p in "${PEERS[@]}"; do
    local b=${p#*=}
    b=${b%% *}
    if [[ "$b" == "$BIN"/* ]] && readelf -lW "$b" | grep -q -e INTERP -e DYNAMIC; then
      say "warning: ${p%%=*} is not a static executable"
    fi
  done
}

# ---------------------------------------------------------------- machine ----------------
machine_json() {
  local load cpu
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
  cat >"$PARTS/machine.json" <<EOF
{"stamp":"$STAMP","quick":$([[ -n "$QUICK" ]] && echo true || echo false),
 "scf_lean_commit":"$SCF_COMMIT","bench_commit":"$(git rev-parse --short=12 HEAD)",
 "kernel":"$(uname -r)","cpu":"$cpu","cores":$(nproc),"loadavg_at_start":"$load",
 "rustc":"$(rustc --version)","nightly":"$(rustc +nightly --version 2>/dev/null || true)",
 "go":"$(go version)","node":"$(node --version)","python":"$($PY --version 2>&1)",
 "musl_gcc":"$(musl-gcc --version | head -1)","wrk":"$(wrk -v 2>&1 | head -1)",
 "hyperfine":"$(hyperfine --version)","podman":"$(podman --version)",
 "params":{"cold_runs":$COLD_RUNS,"hf_runs":$HF_RUNS,"wrk_secs":$WRK_SECS,
   "wrk_rounds":$WRK_ROUNDS,"container_runs":$CT_RUNS,"srv_cpu":$SRV_CPU,"load_cpu":$LOAD_CPU}}
EOF
}

# ---------------------------------------------------------------- cold -------------------
run_cold() {
  # Two groups: the native peers, and the interpreters beside the floor. An interpreter's
  # 20-40 MB process leaves work behind (exit, cache pollution) that would fall on whichever
  # native start follows it.
  local native=() interp=("floor-c=$BIN/floor-c") p
  for p in "${PEERS[@]}"; do
    case ${p%%=*} in node | python) interp+=("$p") ;; *) native+=("$p") ;; esac
  done
  say "cold: $COLD_RUNS runs per peer, interleaved (native peers)"
  "$BIN/coldprobe" -n "$COLD_RUNS" --pin "$SRV_CPU,$LOAD_CPU" --event "$EVENT" \
    --json "$PARTS/cold.json" "${native[@]}" >&2
  say "cold: $COLD_RUNS runs per peer, interleaved (interpreters beside the floor)"
  "$BIN/coldprobe" -n "$COLD_RUNS" --pin "$SRV_CPU,$LOAD_CPU" --event "$EVENT" \
    --json "$PARTS/cold-interp.json" "${interp[@]}" >&2
}

run_hyperfine() {
  say "hyperfine: $HF_RUNS runs per peer"
  local args=() p
  for p in "${PEERS[@]}"; do
    args+=(-n "${p%%=*}" "$BIN/coldprobe --once --pin $SRV_CPU,$LOAD_CPU --event $EVENT ${p#*=}")
  done
  hyperfine -N --warmup 10 --runs "$HF_RUNS" --style basic \
    --export-json "$PARTS/hyperfine.json" "${args[@]}" >&2
}

# ---------------------------------------------------------------- warm -------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_listen() {
  local port=$1 i
  for i in $(seq 1000); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

# wrk's "86.00us" / "2.17ms" / "1.05s" → µs
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'; }

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# One wrk run against a running server → one JSON line.
wrk_once() {
  local name=$1 round=$2 pid=$3 port=$4 conns=$5 out t0 t1 reqs rps p50 p99 errs
  t0=$(cpu_ticks "$pid")
  out=$(BENCH_EVENT=$EVENT taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${WRK_SECS}s" --latency \
    -s "$ROOT/bench/warm/cos.lua" "http://127.0.0.1:$port/event-invoke")
  t1=$(cpu_ticks "$pid")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errs=$( (grep -E 'Non-2xx|Socket errors' <<<"$out" || true) | tr '\n' ' ' | sed 's/"/ /g')
  [[ -n "$errs" ]] && say "warning: $name c$conns: $errs"
  echo "{\"peer\":\"$name\",\"round\":$round,\"conns\":$conns,\"requests\":$reqs,\"rps\":$rps,\"p50_us\":$p50,\"p99_us\":$p99,\"server_cpu_ticks\":$((t1 - t0)),\"clk_tck\":$(getconf CLK_TCK),\"errors\":\"$errs\"}" >>"$PARTS/warm.jsonl"
}

# Largest VmHWM/VmRSS of PID seen every 20 ms until $W/rss-stop exists, written to FILE.
# Bash builtins only (no awk or sleep process every 20 ms: 50 forks a second would land on the
# CPUs being measured); `read -t` on a pipe nothing writes to is the sleep.
sample_rss() {
  local pid=$1 out=$2 max=0 key v _ tick
  exec {tick}<> <(:)
  while [[ ! -e "$W/rss-stop" ]]; do
    while read -r key v _; do
      [[ "$key" == VmHWM: || "$key" == VmRSS: ]] && ((v > max)) && max=$v
    done <"/proc/$pid/status" 2>/dev/null || true
    read -r -t 0.02 -u "$tick" _ || true
  done
  exec {tick}>&-
  echo "$max" >"$out"
}

run_warm() {
  say "warm: $WRK_ROUNDS rounds x (1 and 32 connections, ${WRK_SECS}s), interleaved"
  local r p name cmd port pid idle hwm
  for r in $(seq "$WRK_ROUNDS"); do
    for p in "${PEERS[@]}"; do
      name=${p%%=*}
      cmd=${p#*=}
      port=$(free_port)
      # shellcheck disable=SC2086
      PORT=$port SCF_LEAN_LOG_LEVEL=off taskset -c "$SRV_CPU" $cmd </dev/null >/dev/null 2>>"$W/warm-$name.stderr" &
      pid=$!
      wait_listen "$port" || { say "$name did not listen"; kill "$pid"; exit 1; }
      sleep 0.2
      idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
      say "warm round $r: $name (idle RSS $idle KiB)"
      # Warm-up (JITs, lazily grown buffers), not recorded.
      BENCH_EVENT=$EVENT taskset -c "$LOAD_CPU" wrk -t1 -c32 -d1s -s "$ROOT/bench/warm/cos.lua" \
        "http://127.0.0.1:$port/event-invoke" >/dev/null
      wrk_once "$name" "$r" "$pid" "$port" 1
      # The peak: /proc's VmHWM is only brought up to date when the process unmaps memory
      # (reading it returns max(that, the current RSS)), so it is sampled during the run too.
      rm -f "$W/rss-stop"
      sample_rss "$pid" "$W/rss-max" &
      local sampler=$!
      wrk_once "$name" "$r" "$pid" "$port" 32
      touch "$W/rss-stop"
      wait "$sampler" || true
      hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
      local sampled
      sampled=$(cat "$W/rss-max")
      ((sampled > hwm)) && hwm=$sampled
      echo "{\"peer\":\"$name\",\"round\":$r,\"idle_rss_kib\":$idle,\"peak_hwm_kib\":$hwm}" >>"$PARTS/memory.jsonl"
      kill "$pid"
      wait "$pid" 2>/dev/null || true
    done
  done
}

# ---------------------------------------------------------------- images -----------------
# Builds bench-<peer> images into podman's storage; IMAGES=(name=tag ...).
build_images() {
  local ctx=$W/ctx name
  rm -rf "$ctx"
  mkdir -p "$ctx"
  IMAGES=()
  for name in floor-c scf-lean scf-lean-base scf-lean-tiny hyper-ct go; do
    [[ -x "$BIN/$name" ]] || continue
    mkdir -p "$ctx/$name"
    cp "$BIN/$name" "$ctx/$name/$name"
    local df=$ROOT/bench/container/Dockerfile.scratch
    if [[ "$name" == scf-lean* ]]; then
      # The project's own recipe (from the measured commit when it has one).
      df=$SCF_SRC/Dockerfile.musl
      [[ -f "$df" ]] || df=$ROOT/Dockerfile.musl
      [[ -f "$df" ]] || df=$ROOT/bench/container/Dockerfile.scratch
    fi
    podman --runtime runc build -q -f "$df" --build-arg "BINARY=$name" -t "bench-$name" "$ctx/$name" >/dev/null
    IMAGES+=("$name=bench-$name")
  done
  # The interpreters' images matter to the container step only (and the Debian one takes a
  # debootstrap): the size step alone leaves them out.
  step container || return 0
  # node: the executable and the shared libraries it loads, nothing else.
  mkdir -p "$ctx/node/root/usr/bin" "$ctx/node/srv"
  cp "$(command -v node)" "$ctx/node/root/usr/bin/node"
  local lib
  for lib in $(ldd "$(command -v node)" | grep -oE '/[^ ]+'); do
    mkdir -p "$ctx/node/root$(dirname "$lib")"
    cp -L "$lib" "$ctx/node/root$lib"
  done
  tar --numeric-owner -C "$ctx/node/root" -cf "$ctx/node/rootfs.tar" .
  rm -rf "$ctx/node/root"
  cp bench/peers/node/server.js "$ctx/node/srv/"
  podman --runtime runc build -q -f bench/container/Dockerfile.node -t bench-node "$ctx/node" >/dev/null
  IMAGES+=("node=bench-node")
  # python: the typical image, Debian minbase + python3.
  mkdir -p "$ctx/python/srv"
  bench/container/debian-rootfs.sh /tmp/bench-cache/debian-python3.tar >&2
  ln /tmp/bench-cache/debian-python3.tar "$ctx/python/rootfs.tar" 2>/dev/null ||
    cp /tmp/bench-cache/debian-python3.tar "$ctx/python/rootfs.tar"
  cp bench/peers/python/server.py "$ctx/python/srv/"
  podman --runtime runc build -q -f bench/container/Dockerfile.python -t bench-python "$ctx/python" >/dev/null
  IMAGES+=("python-debian=bench-python")
}

run_size() {
  say "size: binaries and compressed images"
  local p name b oci blobs layers
  for p in "${PEERS[@]}"; do
    name=${p%%=*}
    b=${p#*=}
    b=${b%% *}
    echo "{\"peer\":\"$name\",\"file\":\"$b\",\"binary_bytes\":$(stat -L -c %s "$b"),\"gzip6_bytes\":$(gzip -6 -c "$b" | wc -c),\"static\":$(readelf -lW "$b" 2>/dev/null | grep -q INTERP && echo false || echo true)}" >>"$PARTS/size.jsonl"
  done
  # The packer: cargo-scf of the bench's own tree, the same for every commit measured.
  say "building cargo-scf (the packer of the FROM scratch images)"
  cargo build -q --release -p cargo-scf >&2
  local packer=$CARGO_TARGET_DIR/release/cargo-scf
  for p in "${IMAGES[@]}"; do
    name=${p%%=*}
    oci=$W/oci/$name
    rm -rf "$oci"
    mkdir -p "$W/oci"
    if [[ -x "$BIN/$name" ]]; then
      (cd "$ROOT" && "$packer" scf image --binary "$BIN/$name" --oci-dir "$oci" \
        --tag "bench-$name:latest" >/dev/null)
    else
      skopeo copy -q --dest-compress "containers-storage:localhost/${p#*=}:latest" "oci:$oci" >/dev/null
    fi
    blobs=$(find "$oci/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
    layers=$(find "$oci/blobs" -type f | wc -l)
    echo "{\"peer\":\"$name\",\"image\":\"${p#*=}\",\"image_compressed_bytes\":$blobs,\"blobs\":$layers,\"image_uncompressed_bytes\":$(podman image inspect --format '{{.Size}}' "${p#*=}")}" >>"$PARTS/image.jsonl"
  done
}

# ---------------------------------------------------------------- container --------------
REGISTRY_PID=
stop_registry() {
  if [[ -n "$REGISTRY_PID" ]]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
  fi
}

run_container() {
  say "container: local registry on 127.0.0.1:$REGISTRY_PORT, $CT_RUNS runs per image"
  local reg=$W/registry p name tag targets=()
  rm -rf "$reg"
  mkdir -p "$reg/data"
  cat >"$reg/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $reg/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  docker-registry serve "$reg/config.yml" >"$reg/log" 2>&1 &
  REGISTRY_PID=$!
  local i
  for i in $(seq 100); do
    curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  for p in "${IMAGES[@]}"; do
    name=${p%%=*}
    tag=127.0.0.1:$REGISTRY_PORT/bench/$name:latest
    podman tag "${p#*=}" "$tag"
    podman push -q --tls-verify=false "$tag" >&2
    targets+=("$name=$tag")
  done
  # Nothing of the images may stay in local storage: the pull must fetch every layer.
  for p in "${IMAGES[@]}"; do
    podman rmi -f "${p#*=}" "127.0.0.1:$REGISTRY_PORT/bench/${p%%=*}:latest" >/dev/null 2>&1 || true
  done
  "$BIN/coldprobe" --container -n "$CT_RUNS" --event "$EVENT" --json "$PARTS/container.json" \
    "${targets[@]}" >&2
  for p in "${targets[@]}"; do podman rmi -f "${p#*=}" >/dev/null 2>&1 || true; done
  stop_registry
}

# ---------------------------------------------------------------- diag -------------------
# Runs CMD (with PORT set) until it answers one request, then SIGTERM. Wrapper: $WRAP.
diag_one() {
  local port=$1
  shift
  PORT=$port SCF_LEAN_LOG_LEVEL=off "$@" </dev/null >/dev/null 2>&1 &
  local pid=$!
  wait_listen "$port" || true
  curl -s -o /dev/null -X POST --data-binary @"$EVENT" -H 'X-Scf-Request-Id: diag-1' \
    "http://127.0.0.1:$port/event-invoke" || true
  sleep 0.3
  # SIGTERM to the server itself: the child of the wrapper (strace, time, perf), or the
  # wrapper's own process (valgrind runs the program in place). The wrapper then writes its
  # summary and exits.
  local child
  child=$(pgrep -P "$pid" | head -1 || true)
  kill -TERM "${child:-$pid}" 2>/dev/null || true
  local i
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

run_diag() {
  say "diag: strace, page faults, callgrind (scf-lean vs the floor)"
  local d=$W/diag name b port
  rm -rf "$d"
  mkdir -p "$d"
  # Unstripped builds for callgrind's symbols (same code otherwise).
  (cd "$SCF_SRC" && SCF_LEAN_COMMIT=$SCF_COMMIT CARGO_TARGET_DIR=/tmp/bench-target/scf-lean-sym \
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build -q --release --target "$TARGET" --bin scf-lean >&2)
  cp /tmp/bench-target/scf-lean-sym/$TARGET/release/scf-lean "$d/scf-lean.sym"
  musl-gcc -static -O2 -g -o "$d/floor-c.sym" bench/peers/c/floor.c
  for name in floor-c scf-lean scf-lean-base scf-lean-tiny hyper-ct go; do
    b=$BIN/$name
    [[ -x "$b" ]] || continue
    port=$(free_port)
    diag_one "$port" strace -f -tt -T -o "$d/$name.strace" "$b"
    port=$(free_port)
    diag_one "$port" strace -f -c -o "$d/$name.strace-c" "$b"
    port=$(free_port)
    diag_one "$port" /usr/bin/time -v -o "$d/$name.time" "$b"
    port=$(free_port)
    diag_one "$port" perf stat -e task-clock,page-faults,minor-faults,major-faults -o "$d/$name.perf" "$b" || true
  done
  # Idle RSS by mapping.
  local pid
  for name in floor-c scf-lean scf-lean-tiny hyper-ct; do
    [[ -x "$BIN/$name" ]] || continue
    port=$(free_port)
    PORT=$port SCF_LEAN_LOG_LEVEL=off "$BIN/$name" </dev/null >/dev/null 2>&1 &
    pid=$!
    wait_listen "$port" || true
    sleep 0.2
    cp "/proc/$pid/smaps" "$d/$name.smaps"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  # RSS by mapping in the middle of a 32-connection run (what the peak is made of).
  for name in floor-c scf-lean scf-lean-tiny; do
    [[ -x "$BIN/$name" ]] || continue
    port=$(free_port)
    PORT=$port SCF_LEAN_LOG_LEVEL=off taskset -c "$SRV_CPU" "$BIN/$name" </dev/null >/dev/null 2>&1 &
    pid=$!
    wait_listen "$port" || true
    BENCH_EVENT=$EVENT taskset -c "$LOAD_CPU" wrk -t1 -c32 -d2s -s "$ROOT/bench/warm/cos.lua" \
      "http://127.0.0.1:$port/event-invoke" >/dev/null &
    sleep 1
    cp "/proc/$pid/smaps" "$d/$name.loaded-smaps"
    wait $!
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  # Unit costs of this machine: CPUID, a system call, a page fault, mmap churn.
  musl-gcc -static -O2 -o "$d/costs" bench/cold/costs.c
  taskset -c "$SRV_CPU" "$d/costs" >"$d/costs.json"
  # Every page fault and memory system call of one cold start, in order (perf, when it works).
  for name in floor-c scf-lean scf-lean-tiny; do
    [[ -x "$BIN/$name" ]] || continue
    if perf record -q -e page-faults -c 1 -d -e syscalls:sys_enter_listen \
      -e syscalls:sys_enter_accept4 -e syscalls:sys_enter_mmap -e syscalls:sys_enter_munmap \
      -e syscalls:sys_enter_brk -e syscalls:sys_enter_writev -o "$d/$name.pf.data" -- \
      "$BIN/coldprobe" -n 1 --pin "$SRV_CPU,$LOAD_CPU" --event "$EVENT" "x=$BIN/$name" >/dev/null 2>&1; then
      perf script -i "$d/$name.pf.data" --comm "$name" -F pid,event,addr,ip 2>/dev/null >"$d/$name.faults" || true
      readelf -lW "$BIN/$name" >"$d/$name.readelf"
    fi
  done
  for name in floor-c scf-lean; do
    port=$(free_port)
    diag_one "$port" valgrind --tool=callgrind --dump-before=listen --dump-instr=no \
      --callgrind-out-file="$d/$name.callgrind.%p" "$d/$name.sym"
    sleep 0.5
  done
  python3 bench/diag.py "$d" "$BIN" >"$PARTS/diag.json"
}

# ---------------------------------------------------------------- variants ---------------
# Side-by-side cold starts of builds that each take one start-up measure away (REPORT.md's
# diagnosis): a minimal Rust std server with and without std's runtime init
# (bench/cold/std-init); scf-lean as shipped; and scf-lean without one of its measures: with a
# normal `fn main` (std's runtime init), with a plain link (no hot-text ordering, no 64 KiB
# segment alignment), without -C target-feature=+sse4.2 (httparse detects its SIMD at run time).
run_variants() {
  say "variants: start-up experiments, $COLD_RUNS runs each, interleaved"
  (cd bench/cold/std-init && cargo build -q --release --target "$TARGET" >&2)
  cp "$CARGO_TARGET_DIR/$TARGET/release/std-main" "$BIN/rust-std-main"
  cp "$CARGO_TARGET_DIR/$TARGET/release/no-main" "$BIN/rust-no-main"
  local vsrc=$W/variant-src
  rm -rf "$vsrc" && mkdir -p "$vsrc" && (cd "$SCF_SRC" && tar -c --exclude=./target --exclude=./template/target --exclude=./fuzz .) | tar -x -C "$vsrc"
  # fn main: the echo's entry written the ordinary way.
  sed -i -e 's/^scf_lean::main!(function());$/fn main() -> std::process::ExitCode { scf_lean::run(function()) }/' \
    "$vsrc/src/main.rs"
  grep -q 'scf_lean::run(function())' "$vsrc/src/main.rs" || { echo "variant fn-main: the echo's entry not found" >&2; return 1; }
  (cd "$vsrc" && SCF_LEAN_COMMIT=$SCF_COMMIT CARGO_TARGET_DIR=/tmp/bench-target/scf-lean-fn-main \
    cargo build -q --release --target "$TARGET" --bin scf-lean >&2)
  cp /tmp/bench-target/scf-lean-fn-main/$TARGET/release/scf-lean "$BIN/scf-lean,fn-main"
  (cd "$SCF_SRC" && SCF_LEAN_COMMIT=$SCF_COMMIT CARGO_TARGET_DIR=/tmp/bench-target/scf-lean-plain-link \
    SCF_LEAN_LINK_ARGS="-Wl,--build-id=none" cargo build -q --release --target "$TARGET" --bin scf-lean >&2)
  cp /tmp/bench-target/scf-lean-plain-link/$TARGET/release/scf-lean "$BIN/scf-lean,plain-link"
  (cd "$SCF_SRC" && SCF_LEAN_COMMIT=$SCF_COMMIT CARGO_TARGET_DIR=/tmp/bench-target/scf-lean-no-sse42 \
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build -q --release --target "$TARGET" --bin scf-lean >&2)
  cp /tmp/bench-target/scf-lean-no-sse42/$TARGET/release/scf-lean "$BIN/scf-lean,no-sse4.2"
  local v=("floor-c=$BIN/floor-c" "rust-no-main=$BIN/rust-no-main" "rust-std-main=$BIN/rust-std-main"
    "scf-lean=$BIN/scf-lean" "scf-lean,fn-main=$BIN/scf-lean,fn-main"
    "scf-lean,plain-link=$BIN/scf-lean,plain-link" "scf-lean,no-sse4.2=$BIN/scf-lean,no-sse4.2")
  [[ -x "$BIN/scf-lean-tiny" ]] && v+=("scf-lean-tiny=$BIN/scf-lean-tiny")
  "$BIN/coldprobe" -n "$COLD_RUNS" --pin "$SRV_CPU,$LOAD_CPU" --event "$EVENT" \
    --json "$PARTS/variants.json" "${v[@]}" >&2
  local b
  for b in rust-no-main rust-std-main scf-lean,fn-main scf-lean,plain-link scf-lean,no-sse4.2; do
    echo "{\"peer\":\"$b\",\"binary_bytes\":$(stat -c %s "$BIN/$b"),\"cpuid_in_code\":$(objdump -d "$BIN/$b" | grep -c cpuid || true)}" >>"$PARTS/variant-size.jsonl"
  done
}

# ---------------------------------------------------------------- main -------------------
trap 'stop_registry' EXIT
install_tools
build_all
machine_json
step cold && run_cold
step hyperfine && run_hyperfine
step warm && run_warm
if step size || step container; then
  say "building the images"
  build_images
fi
step size && run_size
step container && run_container
for p in "${IMAGES[@]:-}"; do
  [[ -n "$p" ]] && podman rmi -f "${p#*=}" >/dev/null 2>&1 || true
done
step variants && run_variants
step diag && run_diag
echo "{\"seconds\":$(($(date +%s) - T_START))}" >"$PARTS/duration.json"
say "report"
python3 bench/report.py "$PARTS" "$ROOT/bench/results/$STAMP.json" "$ROOT/bench/REPORT.md" \
  "$ROOT/bench/results/$STAMP.svg"
cp "$ROOT/bench/results/$STAMP.svg" "$ROOT/bench/chart.svg"
say "done in $(($(date +%s) - T_START)) s: bench/REPORT.md, bench/results/$STAMP.json, bench/chart.svg"
