# Sourced by the bench scripts: builds the release binary and starts `wsoak serve` on a
# loopback port in its own process (so its sockets and memory are not the client's).
# Sets: bin, tmp (a scratch directory), server_pid, url. Cleans up on exit.
# `start_server` starts a fresh one (a new port) in place of the last.
# Usage: SERVE_DURATION=30m; source benches/serve.sh
cargo build --release --quiet
bin=target/release/wsoak
tmp=$(mktemp -d)
server_pid=
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT

start_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  "$bin" serve --listen 127.0.0.1:0 --duration "${SERVE_DURATION:-1h}" >"$tmp/server.out" &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q "listening on" "$tmp/server.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$tmp/server.out")
}
start_server
