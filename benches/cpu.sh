#!/usr/bin/env bash
# Tester CPU per heartbeat round trip: YAML-built heartbeats against Rhai-built ones.
#
#   benches/cpu.sh [REPEATS]        (default 3)
#
# Runs `wsoak serve` as a separate process, then, alternating, three scenarios against it:
#   benches/heartbeat.yaml            message and ack matcher from YAML
#   benches/heartbeat-rhai.yaml       each heartbeat built by a Rhai hook
#   benches/heartbeat-rhai-both.yaml  each heartbeat built and each ack judged by hooks
# 1,000 sessions heartbeat every 100 ms (10,000 round trips/s) for 15 s. The figure is
# steady-state CPU: the wsoak process's CPU time (intervals.jsonl `cpu_ms`) over the
# intervals after the ramp (seconds 3 to 14), divided by the heartbeats acked in them.
# Prints each run, the median per scenario and its ratio to YAML. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
SERVE_DURATION=1h
source benches/serve.sh

per_heartbeat() { # scenario -> µs of CPU per acked heartbeat, steady state
  "$bin" run "$1" --quiet --target "$url" --report "$tmp/report.json" >/dev/null
  python3 - "$tmp/intervals.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
steady = [l for l in lines if 3 <= l["t"] <= 14]
cpu_ms = sum(l["cpu_ms"] for l in steady)
acked = sum(l["counts"].get("heartbeats.acked", 0) for l in steady)
assert acked > 0, "no heartbeats acked"
print(f"{cpu_ms * 1000 / acked:.2f}")
PY
}

declare -A runs
names=(heartbeat heartbeat-rhai heartbeat-rhai-both)
for i in $(seq "$repeats"); do
  for name in "${names[@]}"; do
    us=$(per_heartbeat "benches/$name.yaml")
    echo "repeat $i  $name: $us µs CPU per heartbeat round trip"
    runs[$name]+="$us "
  done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(median "${runs[heartbeat]}")
for name in "${names[@]}"; do
  m=$(median "${runs[$name]}")
  echo "median $name: $m µs per heartbeat ($(python3 -c "print(f'{$m/$base:.2f}')")× YAML)"
done
