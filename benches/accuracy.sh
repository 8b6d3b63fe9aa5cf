#!/usr/bin/env bash
# Heartbeat latency accuracy: what wsoak reports against what the server really did.
#
#   benches/accuracy.sh [REPEATS]        (default 3)
#
# Per repeat, starts a fresh `wsoak serve --slow-ack-every 1 --slow-ack 50ms` (every
# heartbeat reply held 50 ms) as a separate process, runs benches/accuracy.yaml against
# it (500 sessions, one heartbeat each per 250 ms, 30 s), then stops the server with
# SIGTERM. The server measures every hold it gave, from reading the heartbeat to having
# written its reply (`heartbeat_hold_ms` in its exit line); that is the truth. wsoak's
# heartbeat latency spans the same hold plus loopback transit both ways, so it can only
# be at or above it; the difference is wsoak's error. Prints, per repeat, wsoak's p50 and
# p99, the server's, the differences and wsoak's own schedule lag (how late it woke to
# send; counted in its latency on purpose, so a busy tester shows), then the medians.
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
SERVE_LATER=1
SERVE_DURATION=10m
source benches/serve.sh

d50s=() d99s=()
for i in $(seq "$repeats"); do
  start_server --slow-ack-every 1 --slow-ack 50ms
  "$bin" run benches/accuracy.yaml --quiet --target "$url" --report "$tmp/report.json" >/dev/null
  stop_server >"$tmp/server.json"
  line=$(python3 - "$tmp/report.json" "$tmp/server.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
c, h = r["latency_ms"]["heartbeat"], s["heartbeat_hold_ms"]
lag = r["latency_ms"]["schedule_lag"]  # wsoak's own lateness, part of its latency by design
assert r["sessions"]["bound"] == 500, r["sessions"]
assert r["heartbeats"]["failed"] == 0, r["heartbeats"]
assert h["count"] == s["heartbeats"] == s["heartbeat_acks_held"], s
d50, d99 = c["p50"] - h["p50"], c["p99"] - h["p99"]
print(f'{d50:.3f} {d99:.3f} wsoak p50 {c["p50"]:.3f} p99 {c["p99"]:.3f} (n {c["count"]}, min {c["min"]:.3f})'
      f' | server hold p50 {h["p50"]:.3f} p99 {h["p99"]:.3f} (n {h["count"]}, min {h["min"]:.3f})'
      f' | difference p50 {d50:+.3f} p99 {d99:+.3f} ms'
      f' | wsoak schedule_lag p50 {lag["p50"]:.3f} p99 {lag["p99"]:.3f}')
PY
  )
  read -r d50 d99 rest <<<"$line"
  echo "repeat $i: $rest"
  d50s+=("$d50") d99s+=("$d99")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median difference (wsoak − server): p50 $(median "${d50s[@]}") ms (goal ≤ 0.3), p99 $(median "${d99s[@]}") ms (goal ≤ 1.0)"
