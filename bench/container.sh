#!/usr/bin/env bash
# Container cold start, end to end, as SCF makes one: pull the function's image from a registry,
# unpack it, start the process, send the first event to port 9000. All on this machine: a
# registry on loopback, podman with runc.
#
#   bench/container.sh                          # 10 runs per image, every image
#   RUNS=20 bench/container.sh
#   ONLY="scf-lean floor debian-scf-lean" bench/container.sh   # some of the images
#   SCF_LEAN_REV=<rev> bench/container.sh       # which commit of scf-lean (default HEAD;
#                                               # worktree: the working tree as it is)
#
# The images, all built here (nothing is pulled from elsewhere):
#   scf-lean         the echo (cargo build --release --target x86_64-unknown-linux-musl) in
#                    Dockerfile.musl's FROM scratch image, made and pushed by `cargo scf image`
#                    and `cargo scf push --insecure` (podman build and push for a commit that
#                    has no cargo-scf/src/push.rs)
#   floor            bench/peers/c/floor.c (musl-gcc -Os -static) alone in a FROM scratch image:
#                    the least an image can hold and still answer
#   debian-scf-lean  the same scf-lean binary on a Debian slim root filesystem
#                    (bench/container/debian-slim.py: this machine's required packages)
#   debian-python    Debian slim + Debian's python3 + bench/peers/python/server.py (http.server)
#   debian-node      Debian slim + this machine's node + bench/peers/node/server.js (left out
#                    when /usr/bin/node is missing)
#
# Method: a registry (Debian's docker-registry, CNCF distribution) on 127.0.0.1 with filesystem
# storage in a scratch directory holds every image (pushed gzip-compressed, as podman pushes);
# podman works in a storage of its own there too (overlay, as its default one), empty but for
# what it pulls.
# Then bench/container/probe.py: a warm-up round, then RUNS rounds with the images interleaved
# (each round runs every image once, in a shuffled order: A B C, C A B, B C A, ...). Each run
# removes every image from podman's local storage and syncs (untimed), times
# `podman pull`, then `podman run -d --read-only --tmpfs /tmp --ulimit nofile=1024:1024
# --ulimit nproc=1024:1024 -p 127.0.0.1:PORT:9000` until the first complete response to
# `POST /event-invoke` (bench/cold/cos-event.json, every X-Scf-* header), and removes the
# container. Prints the tables (bench/container/report.py) and keeps the raw measurements in
# $OUT (default /tmp/bench-container-<UTC date>.json, and .md beside it).
#
# Everything it starts or makes (containers, images, the registry, the scratch directory) is
# removed on exit, whatever the exit. Kept: the Rust build cache under /tmp/bench-target (as
# bench/run.sh's) and $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The scf-lean source to build: `snapshot REV DIR`.
. bench/snapshot.sh
RUNS=${RUNS:-10}
ONLY=${ONLY:-scf-lean floor debian-scf-lean debian-python debian-node}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-/tmp/bench-container-$STAMP.json}
TARGET=x86_64-unknown-linux-musl
EVENT=$ROOT/bench/cold/cos-event.json
PY=/usr/bin/python3
LABEL=scf-lean.bench=container-$$
LOCAL=localhost/scf-lean-bench-$$
W=$(mktemp -d /tmp/bench-container.XXXXXX)
REGISTRY_PID=
PROBE_PID=
MADE=()

say() { echo ">> $*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
bytes() { stat -c %s "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
podman() { command podman --runtime runc "$@"; }

cleanup() {
  local rc=$? ids i
  set +e
  if [[ -n "$PROBE_PID" ]]; then
    kill "$PROBE_PID" 2>/dev/null
    wait "$PROBE_PID" 2>/dev/null
  fi
  ids=$(podman ps -aq --filter "label=$LABEL" 2>/dev/null)
  [[ -n "$ids" ]] && podman rm -f -t 0 $ids >/dev/null 2>&1
  for i in "${MADE[@]}"; do podman rmi -f "$i" >/dev/null 2>&1; done
  if [[ -n "$REGISTRY_PID" ]]; then
    kill "$REGISTRY_PID" 2>/dev/null
    wait "$REGISTRY_PID" 2>/dev/null
  fi
  # The storage's own mounts (overlay keeps its directory a private mount), innermost first.
  awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m"; done
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A podman storage of its own (overlay, as the default one), so that no layer of another image
# on this machine is found locally and nothing here touches the images outside it.
cat >"$W/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$W/storage"
runroot = "$W/run"
EOF
export CONTAINERS_STORAGE_CONF=$W/storage.conf

# ---------------------------------------------------------------- tools ------------------
need=()
for pair in docker-registry:docker-registry podman:podman runc:runc skopeo:skopeo \
  musl-gcc:musl-tools curl:curl; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[[ -x $PY ]] || need+=(python3)
if ((${#need[@]})); then
  say "apt-get install ${need[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >&2
if want debian-node && [[ ! -x /usr/bin/node ]]; then
  say "no /usr/bin/node: debian-node is left out"
  ONLY=${ONLY/debian-node/}
fi

# ---------------------------------------------------------------- build ------------------
ctx=$W/ctx
mkdir -p "$ctx"
IMAGES=() # name=local image, or name=oci:LAYOUT (cargo scf image)
WHAT=()   # name=what it holds

if want scf-lean || want debian-scf-lean; then
  snapshot "${SCF_LEAN_REV:-HEAD}" "$W/src"
  src=$SNAP_SRC
  commit=$SNAP_COMMIT
  say "building scf-lean $commit (release, $TARGET)"
  (cd "$src" && SCF_LEAN_COMMIT=$commit CARGO_TARGET_DIR=/tmp/bench-target/scf-lean \
    cargo build -q --release --target "$TARGET" -p scf-lean --bin scf-lean >&2)
  mkdir -p "$ctx/scf-lean"
  cp "/tmp/bench-target/scf-lean/$TARGET/release/scf-lean" "$ctx/scf-lean/scf-lean"
  SCF_BYTES=$(bytes "$ctx/scf-lean/scf-lean")
fi
if want scf-lean; then
  if [[ -f "$src/cargo-scf/src/push.rs" ]]; then
    # The project's own tool makes the image (Dockerfile.musl's, without a container engine)
    # and pushes it.
    say "building cargo-scf; cargo scf image"
    (cd "$src" && CARGO_TARGET_DIR=/tmp/bench-target/scf-lean cargo build -q --release -p cargo-scf >&2)
    SCF_TOOL=/tmp/bench-target/scf-lean/release/cargo-scf
    (cd "$src" && "$SCF_TOOL" scf image --binary "$ctx/scf-lean/scf-lean" --oci-dir "$W/oci-scf-lean" >&2)
    IMAGES+=("scf-lean=oci:$W/oci-scf-lean")
    WHAT+=("scf-lean=FROM scratch (\`cargo scf image\`, Dockerfile.musl's image): the static scf-lean echo, $SCF_BYTES B")
  else
    df=$src/Dockerfile.musl
    [[ -f "$df" ]] || df=$ROOT/Dockerfile.musl
    MADE+=("$LOCAL/scf-lean")
    podman build -q --layers=false -f "$df" --build-arg BINARY=scf-lean -t "$LOCAL/scf-lean" \
      "$ctx/scf-lean" >/dev/null
    IMAGES+=("scf-lean=$LOCAL/scf-lean")
    WHAT+=("scf-lean=FROM scratch (Dockerfile.musl): the static scf-lean echo, $SCF_BYTES B")
  fi
fi
if want floor; then
  say "building the floor (musl-gcc -Os -static)"
  mkdir -p "$ctx/floor"
  musl-gcc -Os -static -Wall -o "$ctx/floor/floor" bench/peers/c/floor.c
  strip "$ctx/floor/floor"
  MADE+=("$LOCAL/floor")
  podman build -q --layers=false -f bench/container/Dockerfile.scratch --build-arg BINARY=floor \
    -t "$LOCAL/floor" "$ctx/floor" >/dev/null
  IMAGES+=("floor=$LOCAL/floor")
  WHAT+=("floor=FROM scratch: bench/peers/c/floor.c, static, $(bytes "$ctx/floor/floor") B")
fi
if want debian-scf-lean || want debian-python || want debian-node; then
  say "the Debian slim root (bench/container/debian-slim.py)"
  $PY bench/container/debian-slim.py "$W/debian" >/dev/null
  BASE=$LOCAL/debian-slim
  MADE+=("$BASE")
  podman import -q "$W/debian/base.tar" "$BASE" >/dev/null
  mapfile -t DEB < <($PY - "$W/debian/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
b, p = m["base"], m["python"]
print(f"Debian {m['debian']} slim ({len(b['packages'])} packages, {b['file_bytes'] / 1e6:.1f} MB of files)")
print(f"{len(p['packages'])} packages more, {p['file_bytes'] / 1e6:.1f} MB")
PY
  )
  DEB_BASE=${DEB[0]}
  DEB_PY=${DEB[1]}
fi
if want debian-scf-lean; then
  MADE+=("$LOCAL/debian-scf-lean")
  podman build -q --layers=false -f bench/container/Dockerfile.debian-scf-lean \
    --build-arg "BASE=$BASE" -t "$LOCAL/debian-scf-lean" "$ctx/scf-lean" >/dev/null
  IMAGES+=("debian-scf-lean=$LOCAL/debian-scf-lean")
  WHAT+=("debian-scf-lean=$DEB_BASE + the same scf-lean binary")
fi
if want debian-python; then
  mkdir -p "$ctx/python"
  ln "$W/debian/python.tar" "$ctx/python/python.tar"
  cp bench/peers/python/server.py "$ctx/python/"
  MADE+=("$LOCAL/debian-python")
  podman build -q --layers=false -f bench/container/Dockerfile.debian-python \
    --build-arg "BASE=$BASE" -t "$LOCAL/debian-python" "$ctx/python" >/dev/null
  IMAGES+=("debian-python=$LOCAL/debian-python")
  WHAT+=("debian-python=$DEB_BASE + Debian's python3 ($($PY --version 2>&1): $DEB_PY) + http.server script")
fi
if want debian-node; then
  mkdir -p "$ctx/node"
  cp /usr/bin/node "$ctx/node/node"
  cp bench/peers/node/server.js "$ctx/node/"
  MADE+=("$LOCAL/debian-node")
  podman build -q --layers=false -f bench/container/Dockerfile.debian-node \
    --build-arg "BASE=$BASE" -t "$LOCAL/debian-node" "$ctx/node" >/dev/null
  IMAGES+=("debian-node=$LOCAL/debian-node")
  WHAT+=("debian-node=$DEB_BASE + node $(/usr/bin/node --version) ($(bytes /usr/bin/node) B executable) + http script")
fi
((${#IMAGES[@]})) || { echo "no image selected (ONLY=$ONLY)" >&2; exit 1; }

# ---------------------------------------------------------------- registry ---------------
# A free port, then the registry on it; if another process took the port first, another one.
start_registry() {
  local try i
  for try in 1 2 3; do
    REGISTRY_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf "$W/registry"
    mkdir -p "$W/registry/data"
    cat >"$W/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
    docker-registry serve "$W/registry/config.yml" >"$W/registry/log" 2>&1 &
    REGISTRY_PID=$!
    for i in $(seq 100); do
      curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1 && return 0
      kill -0 "$REGISTRY_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
  done
  cat "$W/registry/log" >&2
  echo "the registry did not start" >&2
  return 1
}
start_registry
say "registry on 127.0.0.1:$REGISTRY_PORT"

TARGETS=()
for p in "${IMAGES[@]}"; do
  name=${p%%=*}
  img=${p#*=}
  remote=127.0.0.1:$REGISTRY_PORT/bench/$name:latest
  MADE+=("$remote")
  if [[ "$img" == oci:* ]]; then
    "$SCF_TOOL" scf push "$remote" --layout "${img#oci:}" --insecure >/dev/null
  else
    podman push -q --tls-verify=false "$img" "docker://$remote" >&2
  fi
  skopeo inspect --raw --tls-verify=false "docker://$remote" >"$W/$name.manifest"
  what=
  for w in "${WHAT[@]}"; do [[ "${w%%=*}" == "$name" ]] && what=${w#*=}; done
  # Sizes as the registry serves the image; uncompressed: its layers' tar streams.
  $PY - "$W/$name.manifest" "$name" "$what" "http://127.0.0.1:$REGISTRY_PORT/v2/bench/$name" \
    >>"$W/images.jsonl" <<'PY'
import json, os, sys, urllib.request, zlib
path, name, what, repo = sys.argv[1:]
m = json.load(open(path))
blobs = [l["size"] for l in m["layers"]] + [m["config"]["size"]]
unpacked = 0
for l in m["layers"]:
    z = zlib.decompressobj(wbits=31)
    with urllib.request.urlopen(f"{repo}/blobs/{l['digest']}", timeout=60) as r:
        while chunk := r.read(1 << 20):
            unpacked += len(z.decompress(chunk))
    unpacked += len(z.flush())
print(json.dumps({"name": name, "what": what, "layers": len(m["layers"]),
                  "layer_bytes": [l["size"] for l in m["layers"]],
                  "compressed_bytes": sum(blobs) + os.path.getsize(path),
                  "uncompressed_bytes": unpacked}))
PY
  TARGETS+=("$name=$remote")
done
# Nothing of the images stays in local storage: each pull fetches and unpacks every layer.
for p in "${IMAGES[@]}"; do [[ "${p#*=}" == oci:* ]] || podman rmi -f "${p#*=}" >/dev/null; done
[[ -z "${BASE:-}" ]] || podman rmi -f "$BASE" >/dev/null
left=$(podman images -aq)
[[ -z "$left" ]] || { echo "images left in the bench's storage: $left" >&2; exit 1; }

# ---------------------------------------------------------------- measure ----------------
say "$RUNS runs per image, interleaved: ${TARGETS[*]%%=*}"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average $LOAD0, $(nproc) cores"
# In the background, so that a signal to this script is handled at once (the trap stops it).
$PY bench/container/probe.py --runs "$RUNS" --event "$EVENT" --json "$W/probe.json" \
  --label "$LABEL" "${TARGETS[@]}" >/dev/null &
PROBE_PID=$!
wait "$PROBE_PID"
PROBE_PID=
$PY - "$W/probe.json" "$W/images.jsonl" "$OUT" <<PY
import json, sys
probe = json.load(open(sys.argv[1]))
probe["images"] = [json.loads(l) for l in open(sys.argv[2])]
probe["stamp"] = "$STAMP"
probe["scf_lean_commit"] = "${commit:-}"
probe["podman"] = "$(command podman --version)"
probe["registry"] = "$(docker-registry --version)"
probe["loadavg_at_start"] = "$LOAD0".split()
probe["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
json.dump(probe, open(sys.argv[3], "w"), indent=1)
PY
{
  echo "bench/container.sh, $STAMP, RUNS=$RUNS, scf-lean ${commit:-–}; $(nproc) cores," \
    "load average $LOAD0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo
  $PY bench/container/report.py "$W/probe.json" "$W/images.jsonl"
} | tee "${OUT%.json}.md"
say "raw measurements: $OUT"
