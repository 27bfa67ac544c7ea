#!/usr/bin/env bash
# Through a real reverse proxy, as API Gateway sends them: nginx (Debian nginx-light) in front,
# upstream keep-alive (keepalive 16, HTTP/1.1, Connection ""), and N requests mixing SCF events
# and pass-through GET/POST with idle pauses. Zero 502s (and zero other failures) to pass.
#   bench/nginx.sh           # 100,000 requests
#   N=5000 bench/nginx.sh    # the CI form (.ci/nginx-smoke)
# Needs nginx (nginx-light), wrk and python3; runs nginx with a config under /tmp, loopback only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${N:-100000}
WORK=$(mktemp -d /tmp/scf-nginx.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }

build_release
start_server SCF_LEAN_LOG_LEVEL=info
up=$SERVER_PORT
mkdir -p "$WORK/tmp"
# nginx listens on a port picked here: if another process takes it first, nginx cannot bind
# and exits, and another port is tried.
for attempt in 1 2 3 4 5; do
  front=$(free_port)
  sed -e "s|@WORK@|$WORK|g" -e "s|@UPSTREAM@|$up|g" -e "s|@PORT@|$front|g" \
    "$ROOT/bench/nginx/nginx.conf" >"$WORK/nginx.conf"
  nginx -t -q -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/error.log"
  nginx -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/error.log" &
  nginx_pid=$!
  PIDS+=("$nginx_pid")
  wait_port "$front" && kill -0 "$nginx_pid" 2>/dev/null && break
  [ "$attempt" -lt 5 ] || { echo "nginx could not listen" >&2; exit 1; }
done
fd0=$(fd_count "$SERVER_PID")
t0=$(date +%s)

echo "== $N requests through nginx (2 threads, 32 client connections, idle pauses)"
run_count "http://127.0.0.1:$front/" $((N / 2)) 2 32 pause
count=$(field count); bad=$(field non200); s502=$(field s502); errors=$(field errors)
sleep 0.5
# nginx's own view: status and upstream status of every request it logged.
ng502=$(awk '$1 == 502' "$WORK/access.log" | wc -l)
ngbad=$(awk '$1 != 200' "$WORK/access.log" | wc -l)
upstream_errors=$(grep -c -E 'upstream|connect\(\) failed|recv\(\) failed' "$WORK/error.log" || true)
served=$(grep -c ' 200 ' "$WORK/server.log" || true)
fd1=$(fd_count "$SERVER_PID")
echo "nginx: wrk count $count, non-200 $bad, 502 $s502, socket errors $errors; nginx log: 502 $ng502, non-200 $ngbad, upstream errors $upstream_errors; server answered $served 200s; server fds $fd0 -> $fd1 (upstream keep-alive pool); $(( $(date +%s) - t0 )) s"
[ "$count" -ge "$N" ] && [ "$bad" -eq 0 ] && [ "$s502" -eq 0 ] && [ "$errors" -eq 0 ] \
  && [ "$ng502" -eq 0 ] && [ "$ngbad" -eq 0 ] && [ "$upstream_errors" -eq 0 ] \
  && kill -0 "$SERVER_PID" || { echo "nginx: FAIL"; tail -5 "$WORK/error.log"; exit 1; }
echo "nginx: PASS"
