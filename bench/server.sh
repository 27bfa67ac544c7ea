# Shared by bench/concurrency.sh and bench/trickle.sh: one server at a time, in $SERVER (its
# pid), stopped on every path; and a free loopback port for it. Source it.

SERVER=

# Stops the server in $SERVER, if any: SIGTERM, up to 5 s, then SIGKILL.
stop_server() {
  [[ -n "$SERVER" ]] || return 0
  kill "$SERVER" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}

# A TCP port nothing listens on now (the servers here take PORT, not PORT=0 and a report).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
