#!/usr/bin/env bash
# Measures release-profile variants of the static musl binary: size, exec→first-response time
# and throughput. Results: bench/PROFILES.md.
#
#   bench/profiles.sh                 # build every variant, probe, wrk
#   RUNS=200 WRK_ROUNDS=3 bench/profiles.sh
#   NO_WRK=1 bench/profiles.sh        # sizes and start times only
#   ONLY="chosen o3-fat" bench/profiles.sh
#
# Each variant is built with `cargo build --release --target x86_64-unknown-linux-musl` into its
# own target directory under $OUT, with the profile set through CARGO_PROFILE_RELEASE_*,
# RUSTFLAGS (which replaces .cargo/config.toml's flags) and SCF_LEAN_LINK_ARGS (which replaces
# build.rs's musl link arguments). The "tiny" variants use nightly and bench/build-tiny.sh.
#
# Start time: bench/cold/coldprobe.rs, RUNS runs per variant, interleaved between variants, median.
# Throughput: `wrk -t1 -c32 -d5s -s bench/event.lua`, server with SCF_LEAN_LOG_LEVEL=off,
# WRK_ROUNDS rounds interleaved between variants, median; beside requests/s, requests per CPU-second
# of the server (robust when other work shares the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/scf-lean-profiles}
RUNS=${RUNS:-200}
WRK_ROUNDS=${WRK_ROUNDS:-3}
WRK_SECS=${WRK_SECS:-5}
TARGET=x86_64-unknown-linux-musl
mkdir -p "$OUT/bin"

# The flags of .cargo/config.toml (RUSTFLAGS replaces them, so each variant spells them out).
NOPIE="-C target-feature=+crt-static,+sse4.2 -C relocation-model=static"
PIE="-C target-feature=+crt-static,+sse4.2"
# build.rs's default musl link arguments (keep in sync with MUSL_LINK_ARGS there).
LINK_CHOSEN="-Wl,--build-id=none"

# name | opt-level | lto | codegen-units | panic | strip | rustflags | link args
VARIANTS=(
  "chosen|s|fat|1|unwind|true|$NOPIE|$LINK_CHOSEN"
  "o3-fat|3|fat|1|unwind|true|$NOPIE|"
  "o2-fat|2|fat|1|unwind|true|$NOPIE|"
  "os-fat|s|fat|1|unwind|true|$NOPIE|"
  "oz-fat|z|fat|1|unwind|true|$NOPIE|"
  "o3-thin|3|thin|1|unwind|true|$NOPIE|"
  "o3-nolto|3|off|1|unwind|true|$NOPIE|"
  "o3-fat-cgu16|3|fat|16|unwind|true|$NOPIE|"
  "o3-fat-abort|3|fat|1|abort|true|$NOPIE|"
  "os-fat-abort|s|fat|1|abort|true|$NOPIE|"
  "o3-fat-pie|3|fat|1|unwind|true|$PIE|"
  "o3-fat-nostrip|3|fat|1|unwind|false|$NOPIE|"
  "o3+buildid-none|3|fat|1|unwind|true|$NOPIE|-Wl,--build-id=none"
  "o3+noseparate-code|3|fat|1|unwind|true|$NOPIE|-Wl,-z,noseparate-code"
  "o3+norelro|3|fat|1|unwind|true|$NOPIE|-Wl,-z,norelro"
  "o3+all-link-args|3|fat|1|unwind|true|$NOPIE|-Wl,--build-id=none -Wl,-z,noseparate-code -Wl,-z,norelro"
  "tiny-oz|tiny:z"
  "tiny-os|tiny:s"
)

selected() {
  [[ -z "${ONLY:-}" ]] && return 0
  for o in $ONLY; do [[ "$o" == "$1" ]] && return 0; done
  return 1
}

NAMES=()
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r name opt lto cgu panic strip flags link <<<"$v"
  selected "$name" || continue
  NAMES+=("$name")
  echo ">> building $name" >&2
  if [[ "$opt" == tiny:* ]]; then
    OPT_LEVEL=${opt#tiny:} CARGO_TARGET_DIR="$OUT/target-$name" bench/build-tiny.sh >&2
    cp "$OUT/target-$name/$TARGET/tiny/scf-lean" "$OUT/bin/$name"
    continue
  fi
  env CARGO_TARGET_DIR="$OUT/target-$name" \
    CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt" CARGO_PROFILE_RELEASE_LTO="$lto" \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS="$cgu" CARGO_PROFILE_RELEASE_PANIC="$panic" \
    CARGO_PROFILE_RELEASE_STRIP="$strip" CARGO_PROFILE_RELEASE_DEBUG=false \
    RUSTFLAGS="$flags" SCF_LEAN_LINK_ARGS="$link" \
    cargo build --quiet --release --target "$TARGET" --bin scf-lean >&2
  cp "$OUT/target-$name/$TARGET/release/scf-lean" "$OUT/bin/$name"
done

for n in "${NAMES[@]}"; do
  if readelf -l "$OUT/bin/$n" | grep -q -e INTERP -e DYNAMIC; then
    echo "!! $n is not a non-PIE static executable" >&2
  fi
done

# What a cold start downloads is the gzip-compressed layer: containers/image compresses at
# gzip's default level (6).
{
  echo "| variant | file bytes | text+data bytes | gzip -6 bytes |"
  echo "|---|---:|---:|---:|"
  for n in "${NAMES[@]}"; do
    b="$OUT/bin/$n"
    echo "| $n | $(stat -c %s "$b") | $(size "$b" | awk 'NR==2 {print $1 + $2}') | $(gzip -6 -c "$b" | wc -c) |"
  done
} | tee "$OUT/sizes.md"
echo

rustc -O --edition 2021 bench/cold/coldprobe.rs -o "$OUT/coldprobe"
ARGS=()
for n in "${NAMES[@]}"; do ARGS+=("$n=$OUT/bin/$n"); done
echo ">> coldprobe: $RUNS runs per variant, interleaved" >&2
"$OUT/coldprobe" -n "$RUNS" --event "$ROOT/bench/cold/cos-event.json" "${ARGS[@]}" | tee "$OUT/probe.md"

[[ -n "${NO_WRK:-}" ]] && exit 0

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One wrk run: prints "requests/s:requests per CPU-second of the server". The second number is
# the server's own cost (its utime+stime from /proc), so other work on the machine, which moves
# the first, barely moves it.
wrk_once() {
  local bin=$1 port pid out ticks reqs
  port=$(free_port)
  PORT=$port SCF_LEAN_LOG_LEVEL=off "$bin" &
  pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.01; done
  out=$(wrk -t1 -c32 -d"${WRK_SECS}s" -s "$ROOT/bench/event.lua" "http://127.0.0.1:$port/event-invoke")
  # Fields 14 and 15 of /proc/PID/stat (after the parenthesised name): utime, stime in ticks.
  ticks=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
  kill "$pid"
  wait "$pid" || true
  if grep -q -e "Non-2xx" -e "Socket errors" <<<"$out"; then
    echo "!! $bin: $(grep -e Non-2xx -e 'Socket errors' <<<"$out")" >&2
  fi
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v r="$reqs" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
    '/Requests\/sec/ {printf "%d:%d", $2, (t > 0 ? r * hz / t : 0)}' <<<"$out"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RUNS_OF
for r in $(seq "$WRK_ROUNDS"); do
  for n in "${NAMES[@]}"; do
    echo ">> wrk round $r: $n" >&2
    RUNS_OF[$n]="${RUNS_OF[$n]:-} $(wrk_once "$OUT/bin/$n")"
  done
done

echo
echo "| variant | requests/s (median of $WRK_ROUNDS) | requests per server CPU-second (median) | rounds (req/s:req per CPU-s) |"
echo "|---|---:|---:|---|"
for n in "${NAMES[@]}"; do
  # shellcheck disable=SC2086
  rps=$(printf '%s\n' ${RUNS_OF[$n]} | cut -d: -f1 | median)
  # shellcheck disable=SC2086
  cpu=$(printf '%s\n' ${RUNS_OF[$n]} | cut -d: -f2 | median)
  echo "| $n | $rps | $cpu |${RUNS_OF[$n]} |"
done | tee "$OUT/wrk.md"
