#!/usr/bin/env bash
# Client memory per idle bound session.
#
#   benches/memory.sh [SESSIONS] [REPEATS]      (defaults: 10000 sessions, 3 repeats)
#
# Runs `wsoak serve` as a separate process (so the server's sockets and memory are not
# counted), then `wsoak run benches/idle.yaml` against it with SESSIONS sessions and with
# 1 session. Per-session memory = (peak RSS at SESSIONS - peak RSS at 1) / (SESSIONS - 1),
# where peak RSS is the report's tester.peak_rss_kib (the process's VmHWM). Prints each
# repeat and the median. Loopback only; every run is bounded by the scenario's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-10000}
repeats=${2:-3}
SERVE_DURATION=30m
source benches/serve.sh

peak() { # sessions -> peak RSS KiB
  "$bin" run benches/idle.yaml --quiet --target "$url" --sessions "$1" \
    --report "$tmp/r.json" >/dev/null
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["sessions"]["bound"]==int(sys.argv[2]), r["sessions"]; print(r["tester"]["peak_rss_kib"])' "$tmp/r.json" "$1"
}

results=()
for i in $(seq "$repeats"); do
  base=$(peak 1)
  full=$(peak "$sessions")
  per=$(python3 -c "print(f'{($full-$base)/($sessions-1):.2f}')")
  echo "repeat $i: 1 session ${base} KiB, $sessions sessions ${full} KiB -> ${per} KiB per session"
  results+=("$per")
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print "median KiB per idle bound session: " a[int((NR+1)/2)]}'
