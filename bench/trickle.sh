#!/usr/bin/env bash
# Trickle: a plain request's worst latency beside 20 clients trickle-reading long streams.
# scf-lean's examples/sse.rs beside hyper streaming the same events (bench/peers/hyper-sse).
#
#   bash bench/trickle.sh                  # ROUNDS=3 STREAMS=20 REQUESTS=200 by default
#   ONLY=hyper ROUNDS=1 bash bench/trickle.sh   # some peers only: scf-lean hyper
#   SCF_LEAN_REV=HEAD bash bench/trickle.sh     # build a clean `git archive` of that commit
#                                               # (default: worktree, the working tree as it is)
#
# One server at a time, pinned to CPU 0; bench/stream/trickleprobe.rs on CPU 1 against it:
#   1. BASELINE (50) plain requests, GAP_MS (20) apart, on the idle server;
#   2. STREAMS connections with SO_RCVBUF=RCVBUF (4096) set before the connect each ask
#      `GET /events?n=1000000&delay_ms=0` (STREAM_PATH) and read READ_BYTES (4096) every
#      READ_EVERY_MS (200): the server's socket buffers fill and stay full;
#   3. after SETTLE_MS (1000), REQUESTS plain requests GAP_MS apart, each on a fresh
#      connection, timed from the connect to the end of the response; one not answered within
#      TIMEOUT_MS (10000) counts as a timeout at that time; the phase ends at DEADLINE_S (40).
# The plain request is `GET /` (the page) for scf-lean; the hyper peer has no page (it streams
# on every path), so its plain request is `GET /events?n=0&delay_ms=0`, a complete answer of
# 34 bytes of events (PLAIN_SCF and PLAIN_HYPER change them). Peers alternate within a round
# and the order flips every round. Medians of the rounds go to bench/TRICKLE.md; the raw lines
# to bench/results/trickle-<UTC date>.jsonl. The mark: the plain request's max ≤ 5 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/snapshot.sh
ROUNDS=${ROUNDS:-3}; STREAMS=${STREAMS:-20}; REQUESTS=${REQUESTS:-200}; BASELINE=${BASELINE:-50}
GAP_MS=${GAP_MS:-20}; RCVBUF=${RCVBUF:-4096}; READ_BYTES=${READ_BYTES:-4096}
READ_EVERY_MS=${READ_EVERY_MS:-200}; SETTLE_MS=${SETTLE_MS:-1000}; TIMEOUT_MS=${TIMEOUT_MS:-10000}
DEADLINE_S=${DEADLINE_S:-40}; STREAM_PATH=${STREAM_PATH:-/events?n=1000000&delay_ms=0}
PLAIN_SCF=${PLAIN_SCF:-/}; PLAIN_HYPER=${PLAIN_HYPER:-/events?n=0&delay_ms=0}
ONLY=${ONLY:-scf-lean hyper}
SRV_CPU=${SRV_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
TARGET=x86_64-unknown-linux-musl
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
W=${BENCH_WORK:-/tmp/bench}/trickle; mkdir -p "$W" bench/results
say() { echo ">> $*" >&2; }
die() { echo "trickle.sh: $*" >&2; exit 1; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
for p in $ONLY; do
  case $p in scf-lean|hyper) ;; *) die "ONLY: unknown peer '$p' (scf-lean hyper)";; esac
done

say "building: the probe, then the servers: $ONLY (musl, release)"
rustc -O --edition 2021 bench/stream/trickleprobe.rs -o "$W/trickleprobe"
SCF="$CARGO_TARGET_DIR/$TARGET/release/examples/sse"
HYPER="$CARGO_TARGET_DIR/$TARGET/release/peer-hyper-sse"
if want scf-lean; then
  snapshot "${SCF_LEAN_REV:-worktree}" "$W/src"
  (cd "$SNAP_SRC" && cargo build -q --release --target $TARGET --example sse) \
    || die "examples/sse at $SNAP_COMMIT does not build"
fi
SCF_COMMIT=${SNAP_COMMIT:-$(git rev-parse --short=12 HEAD)+worktree}
if want hyper; then (cd bench/peers/hyper-sse && cargo build -q --release --target $TARGET); fi

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=bench/results/trickle-$STAMP.jsonl
: >"$OUT"

. bench/server.sh
PROBE=
trap '[[ -z "$PROBE" ]] || kill "$PROBE" 2>/dev/null || true; stop_server; [[ -s "$OUT" ]] || rm -f "$OUT"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

measure() {  # peer round
  local name=$1 round=$2 bin plain p
  case $name in
    scf-lean) bin=$SCF; plain=$PLAIN_SCF ;;
    hyper) bin=$HYPER; plain=$PLAIN_HYPER ;;
  esac
  p=$(port)
  PORT=$p SCF_LEAN_LOG_LEVEL=off taskset -c "$SRV_CPU" "$bin" >"$W/$name.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 500); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.01; done
  # The probe bounds itself (a watchdog past its deadline); `timeout` is the last resort. In the
  # background, so that a signal to this script is handled at once (the trap stops both).
  timeout $((DEADLINE_S + 40)) taskset -c "$LOAD_CPU" "$W/trickleprobe" \
    --streams "$STREAMS" --rcvbuf "$RCVBUF" --read-bytes "$READ_BYTES" --read-every-ms "$READ_EVERY_MS" \
    --requests "$REQUESTS" --baseline "$BASELINE" --gap-ms "$GAP_MS" --timeout-ms "$TIMEOUT_MS" \
    --settle-ms "$SETTLE_MS" --deadline-s "$DEADLINE_S" --stream-path "$STREAM_PATH" \
    --plain-path "$plain" "$name=$p" >"$W/probe.out" &
  PROBE=$!
  wait $PROBE || die "$name: the probe failed (server log: $W/$name.log)"
  PROBE=
  stop_server
  local line; line=$(cat "$W/probe.out")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["round"]=int(sys.argv[2]); print(json.dumps(r))' \
    "$line" "$round" >>"$OUT"
  say "$name: $(tail -1 "$OUT" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("plain p50 %d µs, p99 %d µs, max %d µs; %d of %d answered, %d timeouts; %d of %d streams served" % (r["plain_p50_us"], r["plain_p99_us"], r["plain_max_us"], r["plain_answered"], r["plain_sent"], r["plain_timeouts"], r["streams_started"], r["streams"]))')"
}

PEERS=(); for p in scf-lean hyper; do want $p && PEERS+=("$p"); done
for r in $(seq "$ROUNDS"); do
  say "round $r of $ROUNDS"
  order=("${PEERS[@]}")
  if [ $((r % 2)) -eq 0 ]; then order=(); for ((i=${#PEERS[@]}-1; i>=0; i--)); do order+=("${PEERS[i]}"); done; fi
  for p in "${order[@]}"; do measure "$p" "$r"; done
done

python3 - "$OUT" "$STAMP" "$ROUNDS" "$SCF_COMMIT" >bench/TRICKLE.md <<'PY'
import json, statistics, sys
out, stamp, rounds, commit = sys.argv[1:]
rows = [json.loads(l) for l in open(out)]
MARK_US = 5000
def of(peer): return [r for r in rows if r["peer"] == peer]
def med(peer, key): return statistics.median(r[key] for r in of(peer))
r0 = rows[0]
print("# Trickle: a plain request beside slow stream readers\n")
print(f"Generated by `bash bench/trickle.sh` at scf-lean {commit}, {stamp}; "
      f"raw lines: `{out}`. {rounds} round(s), one server at a time on CPU 0, "
      "the probe (`bench/stream/trickleprobe.rs`) on CPU 1; medians of the rounds.\n")
print(f"- **Slow readers:** {r0['streams']} connections, SO_RCVBUF {r0['rcvbuf_set']} set before the connect "
      f"(the kernel gave {r0['rcvbuf_got']}), each `GET {r0['stream_path']}` and then reading at most "
      f"{r0['read_bytes']} bytes every {r0['read_every_ms']} ms: the server's socket buffers fill and stay full.")
print(f"- **Plain requests:** after {r0['settle_ms']} ms, {r0['requests']} requests {r0['gap_ms']} ms apart, each on a "
      "fresh connection, timed from the connect to the end of the response. One not answered within "
      f"{r0['timeout_ms']/1000:g} s counts as a timeout at {r0['timeout_ms']/1000:g} s (so a max with timeouts is a lower bound); "
      f"the phase stops after {r0['deadline_s']} s whatever is left.")
print("- **Idle:** the same request on the idle server beforehand "
      f"({r0['idle_sent']} requests), for scale.\n")
print("| peer | plain request | idle p50 µs | p50 µs | p99 µs | max µs | worst round's max µs | answered / sent | timeouts | streams served |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in ["scf-lean", "hyper"]:
    rs = of(p)
    if not rs:
        print(f"| {p} | not measured | | | | | | | | |")
        continue
    # A percentile that may fall on a timeout is a lower bound: "≥".
    late = sum(r["plain_timeouts"] + r["plain_errors"] for r in rs) / max(1, sum(r["plain_sent"] for r in rs))
    lb = lambda q: "≥ " if late > 1 - q else ""
    print(f"| {p} | `GET {rs[0]['plain_path']}` | {med(p,'idle_p50_us'):,.0f} | {lb(0.5)}{med(p,'plain_p50_us'):,.0f} | "
          f"{lb(0.99)}{med(p,'plain_p99_us'):,.0f} | {lb(1)}{med(p,'plain_max_us'):,.0f} | {lb(1)}{max(r['plain_max_us'] for r in rs):,} | "
          f"{sum(r['plain_answered'] for r in rs)} / {sum(r['plain_sent'] for r in rs)} | {sum(r['plain_timeouts'] for r in rs)} | "
          f"{min(r['streams_started'] for r in rs)}–{max(r['streams_started'] for r in rs)} of {rs[0]['streams']} |")
print("\n`answered / sent` and `timeouts` are over all rounds (a request neither answered nor timed out "
      "failed: see `plain_first_error` in the raw lines); `streams served`: how many slow readers "
      "received any of their stream (fewest–most over the rounds).\n")
print("## Mark\n")
if of("scf-lean"):
    m = med("scf-lean", "plain_max_us")
    t = sum(r["plain_timeouts"] + r["plain_errors"] for r in of("scf-lean"))
    print(f"- scf-lean, a plain request's max beside {r0['streams']} trickle readers ≤ {MARK_US/1000:g} ms: "
          f"{'≥ ' if t else ''}{m/1000:,.1f} ms{f' ({t} requests timed out or failed)' if t else ''}, **{'met' if m <= MARK_US and not t else 'not met'}**.")
else:
    print(f"- scf-lean, a plain request's max beside the trickle readers ≤ {MARK_US/1000:g} ms: not measured in this run.")
PY
cat bench/TRICKLE.md
