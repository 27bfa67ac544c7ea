#!/usr/bin/env bash
# Soak: KEEP keep-alive requests, then FRESH requests on a fresh connection each, against the
# release binary; then the checks: zero errors and non-200s, RSS flat, no descriptor growth.
#   bench/soak.sh                      # 1,000,000 keep-alive + 100,000 fresh connections
#   KEEP=20000 FRESH=2000 bench/soak.sh   # the CI form (.ci/soak-smoke)
# Needs wrk and python3. Loopback only; every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KEEP=${KEEP:-1000000}
FRESH=${FRESH:-100000}
# RSS may grow by this much (KiB) from after the warm-up to the end.
RSS_SLACK_KB=${RSS_SLACK_KB:-512}
WORK=$(mktemp -d /tmp/scf-soak.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT

build_release
start_server SCF_LEAN_LOG_LEVEL=off
url="http://127.0.0.1:$SERVER_PORT/"
t0=$(date +%s)

echo "== warm-up: 10,000 keep-alive requests on as many connections as the soak"
run_count "$url" 5000 2 50 >/dev/null
rss0=$(rss_kb "$SERVER_PID"); fd0=$(fd_count "$SERVER_PID")
echo "start (after warm-up): VmRSS ${rss0} kB, fds ${fd0}"

fail=0
echo "== $KEEP keep-alive requests (2 threads, 50 connections)"
run_count "$url" $((KEEP / 2)) 2 50
k_count=$(field count); k_bad=$(( $(field non200) + $(field errors) ))
rss1=$(rss_kb "$SERVER_PID"); fd1=$(fd_count "$SERVER_PID")
echo "after keep-alive: VmRSS ${rss1} kB, fds ${fd1}"
[ "$k_count" -ge "$KEEP" ] && [ "$k_bad" -eq 0 ] || { echo "FAIL: keep-alive count $k_count, bad $k_bad"; fail=1; }

echo "== $FRESH requests, each on a fresh connection (Connection: close; 2 threads, 8 connections)"
run_count "$url" $((FRESH / 2)) 2 8 close
f_count=$(field count); f_bad=$(( $(field non200) + $(field errors) ))
# The last connections close as their clients' FINs arrive (or their linger time ends: 2 s).
for _ in $(seq 1 100); do [ "$(fd_count "$SERVER_PID")" -le "$fd0" ] && break; sleep 0.05; done
rss2=$(rss_kb "$SERVER_PID"); fd2=$(fd_count "$SERVER_PID")
echo "end: VmRSS ${rss2} kB, fds ${fd2}"
[ "$f_count" -ge "$FRESH" ] && [ "$f_bad" -eq 0 ] || { echo "FAIL: fresh count $f_count, bad $f_bad"; fail=1; }

kill -0 "$SERVER_PID" || { echo "FAIL: the server died"; fail=1; }
[ "$rss2" -le $((rss0 + RSS_SLACK_KB)) ] || { echo "FAIL: RSS grew from $rss0 to $rss2 kB"; fail=1; }
[ "$fd2" -le "$fd0" ] || { echo "FAIL: fds grew from $fd0 to $fd2"; fail=1; }
echo "soak: keep-alive $k_count, fresh $f_count, errors+non-200 $((k_bad + f_bad)); VmRSS ${rss0} -> ${rss1} -> ${rss2} kB; fds ${fd0} -> ${fd1} -> ${fd2}; $(( $(date +%s) - t0 )) s"
[ "$fail" -eq 0 ] && echo "soak: PASS" || { echo "soak: FAIL"; exit 1; }
