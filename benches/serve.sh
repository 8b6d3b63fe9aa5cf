# Sourced by the bench scripts: builds the release binary and starts `wsoak serve` on a
# loopback port in its own process (so its sockets and memory are not the client's).
# Sets: bin, tmp (a scratch directory), server_pid, url. Cleans up on exit.
# `start_server` starts a fresh one (a new port) in place of the last.
# Usage: SERVE_DURATION=30m; source benches/serve.sh
#
# With SERVE_LATER=1 no server starts at source time: call `start_server [FLAGS…]` (for
# fault flags) and `stop_server`, which stops it with SIGTERM and prints its exit line
# (the JSON counts), as often as needed.
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/wsoak # where cargo just built it
tmp=$(mktemp -d)
server_pid=
trap 'if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT

start_server() { # [serve flags…] -> server_pid, url; stops the last one first
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  "$bin" serve --listen 127.0.0.1:0 --duration "${SERVE_DURATION:-1h}" "$@" >"$tmp/server.out" &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q "listening on" "$tmp/server.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$tmp/server.out")
  if [ -z "$url" ]; then
    echo "wsoak serve did not start" >&2
    exit 1
  fi
}

stop_server() { # prints the server's exit line: what it saw, as JSON
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
  tail -n 1 "$tmp/server.out"
}

if [ -z "${SERVE_LATER:-}" ]; then
  start_server
fi
