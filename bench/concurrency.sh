#!/usr/bin/env bash
# Concurrency: requests that block (a 50 ms `std::thread::sleep`, the stand-in for a database
# call), 32 at once. scf-lean's examples/slow.rs with SCF_LEAN_CONCURRENCY=1 and =32 beside hyper
# running the same wait on tokio's blocking pool (bench/peers/hyper-slow).
#
#   bash bench/concurrency.sh             # ROUNDS=3 DURATION=10s MS=50 CONNECTIONS=32
#   ONLY=hyper bash bench/concurrency.sh  # some rows only: scf-lean-1 scf-lean-32 hyper
#   SCF_LEAN_REV=HEAD bash bench/concurrency.sh  # build a clean `git archive` of that commit
#                                        # (default: worktree, the working tree as it is)
#   SLOW_BIN=path bash bench/concurrency.sh   # a prebuilt examples/slow instead of building one
#
# Each peer answers `GET /wait?ms=N` with `200 {"waited_ms":N}` on $PORT. One server at a time,
# pinned to CPU 0; wrk on CPU 1: WRK_THREADS (2) threads, CONNECTIONS keep-alive connections,
# --latency, DURATION, after a WARMUP run (1s, not recorded; WARMUP=0 skips it). Its latency
# figures come from bench/concurrency.lua's done() hook (wrk's histogram, as JSON). The
# server's CPU seconds (utime + stime from /proc/PID/stat, every thread) are read before and
# after the measured run. Rows alternate within a round and the order flips every round.
# Medians of the rounds go to bench/CONCURRENCY.md; the raw lines to
# bench/results/concurrency-<UTC date>.jsonl.
#
# The ideal is CONNECTIONS requests every MS: CONNECTIONS × 1000 / MS req/s (640 at 32 and 50 ms).
# The marks: scf-lean at 32 serves at least 0.9 × the ideal, with p99 at most 1.5 × MS (75 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/snapshot.sh
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10s}; WARMUP=${WARMUP:-1s}; MS=${MS:-50}
CONNECTIONS=${CONNECTIONS:-32}; WRK_THREADS=${WRK_THREADS:-2}
ONLY=${ONLY:-scf-lean-1 scf-lean-32 hyper}
SRV_CPU=${SRV_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
TARGET=x86_64-unknown-linux-musl
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
W=${BENCH_WORK:-/tmp/bench}/concurrency; mkdir -p "$W" bench/results
say() { echo ">> $*" >&2; }
die() { echo "concurrency.sh: $*" >&2; exit 1; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

for t in wrk taskset python3; do
  command -v $t >/dev/null || die "$t is missing (apt-get install -y wrk util-linux python3)"
done
for p in $ONLY; do
  case $p in scf-lean-1|scf-lean-32|hyper) ;; *) die "ONLY: unknown row '$p' (scf-lean-1 scf-lean-32 hyper)";; esac
done

SCF=${SLOW_BIN:-$CARGO_TARGET_DIR/$TARGET/release/examples/slow}
HYPER="$CARGO_TARGET_DIR/$TARGET/release/peer-hyper-slow"
if [[ -n "${SLOW_BIN:-}" ]]; then
  [[ -x "$SLOW_BIN" ]] || die "SLOW_BIN=$SLOW_BIN is not an executable"
elif want scf-lean-1 || want scf-lean-32; then
  snapshot "${SCF_LEAN_REV:-worktree}" "$W/src"
  [[ -f "$SNAP_SRC/examples/slow.rs" ]] || die "examples/slow.rs is not in $SNAP_COMMIT: the scf-lean rows need it
  (GET /wait?ms=N -> {\"waited_ms\":N}, PORT, SCF_LEAN_CONCURRENCY). ONLY=hyper measures the hyper row alone."
  say "building: examples/slow at $SNAP_COMMIT (musl, release)"
  (cd "$SNAP_SRC" && cargo build -q --release --target $TARGET --example slow) \
    || die "examples/slow at $SNAP_COMMIT does not build"
fi
SCF_COMMIT=${SNAP_COMMIT:-$(git rev-parse --short=12 HEAD)+worktree}
if want hyper; then
  say "building: the hyper peer (bench/peers/hyper-slow)"
  (cd bench/peers/hyper-slow && cargo build -q --release --target $TARGET)
fi

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=bench/results/concurrency-$STAMP.jsonl
: >"$OUT"
TICK=$(getconf CLK_TCK)

. bench/server.sh
trap 'stop_server; [[ -s "$OUT" ]] || rm -f "$OUT"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
# One request on a fresh connection: the whole response, or nothing after 5 s.
get() {
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0; printf "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" "$1" >&3; cat <&3' "$1" "$2" 2>/dev/null || true
}

measure() {  # row round
  local name=$1 round=$2 bin env=() p
  case $name in
    scf-lean-1) bin=$SCF; env=(SCF_LEAN_CONCURRENCY=1 SCF_LEAN_LOG_LEVEL=off) ;;
    scf-lean-32) bin=$SCF; env=(SCF_LEAN_CONCURRENCY=32 SCF_LEAN_LOG_LEVEL=off) ;;
    hyper) bin=$HYPER ;;
  esac
  p=$(port)
  env PORT=$p "${env[@]}" taskset -c "$SRV_CPU" "$bin" >"$W/$name.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 500); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.01; done
  local check; check=$(get "$p" "/wait?ms=1")
  [[ "$check" == "HTTP/1.1 200"* && "$check" == *'{"waited_ms":1}'* ]] \
    || die "$name: GET /wait?ms=1 did not answer 200 {\"waited_ms\":1}: $(head -c 300 <<<"$check") $(tail -5 "$W/$name.log")"
  local url="http://127.0.0.1:$p/wait?ms=$MS" wrk=(taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" --timeout 10s)
  [[ "$WARMUP" == 0 ]] || "${wrk[@]}" -d"$WARMUP" "$url" >/dev/null
  local c0 c1 raw="$W/wrk-$name-$round.txt"
  c0=$(cpu_ticks "$SERVER")
  "${wrk[@]}" -d"$DURATION" --latency -s bench/concurrency.lua "$url" >"$raw"
  c1=$(cpu_ticks "$SERVER")
  local threads; threads=$(awk '/^Threads:/ {print $2}' "/proc/$SERVER/status")
  stop_server
  local json; json=$(sed -n 's/^JSON //p' "$raw")
  [[ -n "$json" ]] || die "$name: no JSON line from wrk (see $raw)"
  python3 - "$json" "$name" "$round" "$MS" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" "$(( c1 - c0 ))" "$TICK" "$threads" "$bin" >>"$OUT" <<'PY'
import json, sys
j, name, rnd, ms, conns, threads, dur, ticks, tick, srv_threads, binary = sys.argv[1:]
r = json.loads(j)
cpu = int(ticks) / int(tick)
row = {"peer": name, "round": int(rnd), "ms": int(ms), "connections": int(conns),
       "wrk_threads": int(threads), "duration": dur, **r, "cpu_s": round(cpu, 2),
       "cpu_us_per_req": round(cpu * 1e6 / r["requests"], 1) if r["requests"] else None,
       "server_threads": int(srv_threads), "bin": binary}
print(json.dumps(row))
PY
  say "$name: $(tail -1 "$OUT" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.1f req/s, p50 %.1f ms, p99 %.1f ms, CPU %.2f s" % (r["rps"], r["p50_us"]/1e3, r["p99_us"]/1e3, r["cpu_s"]))')"
}

ROWS=(); for p in scf-lean-1 scf-lean-32 hyper; do want $p && ROWS+=("$p"); done
for r in $(seq "$ROUNDS"); do
  say "round $r of $ROUNDS"
  order=("${ROWS[@]}")
  if [ $((r % 2)) -eq 0 ]; then order=(); for ((i=${#ROWS[@]}-1; i>=0; i--)); do order+=("${ROWS[i]}"); done; fi
  for p in "${order[@]}"; do measure "$p" "$r"; done
done

python3 - "$OUT" "$STAMP" "$ROUNDS" "$DURATION" "$MS" "$CONNECTIONS" "$WRK_THREADS" "${SLOW_BIN:-}" "$SCF_COMMIT" >bench/CONCURRENCY.md <<'PY'
import json, statistics, sys
out, stamp, rounds, dur, ms, conns, wthreads, slow_bin, commit = sys.argv[1:]
ms, conns = int(ms), int(conns)
rows = [json.loads(l) for l in open(out)]
ideal = conns * 1000 / ms
p99_mark = 1.5 * ms
def med(peer, key):
    v = [r[key] for r in rows if r["peer"] == peer and r[key] is not None]
    return statistics.median(v) if v else None
label = {"scf-lean-1": "scf-lean, SCF_LEAN_CONCURRENCY=1", "scf-lean-32": "scf-lean, SCF_LEAN_CONCURRENCY=32",
         "hyper": "hyper + tokio spawn_blocking"}
print("# Concurrency: blocking requests, 32 at once\n")
print(f"Generated by `bash bench/concurrency.sh` at scf-lean {commit}, {stamp}; "
      f"raw lines: `{out}`. {rounds} round(s), one server at a time on CPU 0, wrk on CPU 1; medians of the rounds."
      + (f" The scf-lean rows ran the prebuilt `{slow_bin}` (SLOW_BIN), not a build of this tree." if slow_bin else "") + "\n")
print(f"Every request is `GET /wait?ms={ms}`: the server sleeps {ms} ms in `std::thread::sleep` (the "
      "stand-in for a blocking database call) and answers `{\"waited_ms\":" + str(ms) + "}`. "
      f"wrk: {conns} keep-alive connections, {wthreads} threads, {dur} per run, `--latency`; the "
      "percentiles are wrk's histogram. CPU: the server's utime + stime over the run, every thread.\n")
print(f"**Ideal:** {conns} × 1000 / {ms} = **{ideal:,.0f} req/s** ({conns} waits of {ms} ms overlapping, "
      "nothing else costing time). One wait at a time gives at most "
      f"{1000/ms:,.0f} req/s, 1/{conns} of it.\n")
print("| row | req/s | ÷ ideal | p50 ms | p99 ms | max ms | errors | CPU s | CPU µs / req | server threads |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
measured = []
for p in ["scf-lean-1", "scf-lean-32", "hyper"]:
    if not any(r["peer"] == p for r in rows):
        print(f"| {label[p]} | not measured | | | | | | | | |")
        continue
    measured.append(p)
    errs = sum(r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"] + r["err_status"]
               for r in rows if r["peer"] == p)
    rps = med(p, "rps")
    cpr = med(p, "cpu_us_per_req")
    print(f"| {label[p]} | {rps:,.1f} | {rps/ideal:.3f} | {med(p,'p50_us')/1e3:,.1f} | "
          f"{med(p,'p99_us')/1e3:,.1f} | {med(p,'max_us')/1e3:,.1f} | {errs} | {med(p,'cpu_s'):.2f} | "
          f"{'' if cpr is None else f'{cpr:,.0f}'} | {med(p,'server_threads'):.0f} |")
print(f"\n`errors`: wrk's connect, read, write, timeout (10 s) and non-2xx/3xx counts, all rounds together.\n")
print("## Marks\n")
if "scf-lean-32" in measured:
    rps, p99 = med("scf-lean-32", "rps"), med("scf-lean-32", "p99_us") / 1e3
    ok1, ok2 = rps >= 0.9 * ideal, p99 <= p99_mark
    print(f"- scf-lean at SCF_LEAN_CONCURRENCY=32, throughput ≥ 0.9 × ideal ({0.9*ideal:,.0f} req/s): "
          f"{rps:,.1f} req/s, {rps/ideal:.3f} × ideal, **{'met' if ok1 else 'not met'}**.")
    print(f"- scf-lean at SCF_LEAN_CONCURRENCY=32, p99 ≤ {p99_mark:g} ms (1.5 × {ms} ms): "
          f"{p99:,.1f} ms, **{'met' if ok2 else 'not met'}**.")
else:
    print(f"- scf-lean at SCF_LEAN_CONCURRENCY=32, throughput ≥ 0.9 × ideal ({0.9*ideal:,.0f} req/s): not measured in this run.")
    print(f"- scf-lean at SCF_LEAN_CONCURRENCY=32, p99 ≤ {p99_mark:g} ms (1.5 × {ms} ms): not measured in this run.")
PY
cat bench/CONCURRENCY.md
