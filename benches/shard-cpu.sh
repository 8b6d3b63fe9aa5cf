#!/usr/bin/env bash
# Tester CPU per heartbeat at 15,000 sessions: a baseline binary (A) against this
# checkout's (B), side by side.
#
#   benches/shard-cpu.sh BASELINE_BIN [PAIRS] [SESSIONS]    (defaults: 3 pairs, 15000)
#
# e.g. benches/shard-cpu.sh /work/main/target/release/wsoak  (A = main, B = this branch)
#
# Runs `wsoak serve` (this checkout's) as a separate process, then, alternating A B A B …,
# scenarios/miniprogram.yaml (auth, bindCard, one heartbeat a second) with SESSIONS
# sessions ramped up over 10 s, for 40 s, each run against a fresh server (a new port, so
# no earlier run's closed connections share its address pairs). Per run it prints:
#   steady  µs of wsoak CPU per acked heartbeat after the ramp: intervals.jsonl `cpu_ms`
#           over the intervals ending at 15 to 38 s, divided by the heartbeats acked in
#           them (the figure compared)
#   whole   the report's tester.cpu_s * 1e6 / heartbeats.acked, ramp included
#   and the report's schedule_lag and heartbeat p99 (ms), and the worst steady
#   interval's schedule_lag p99.
# At the end: each side's median, every pair's ratio B/A and the median ratio. RUN_ARGS
# adds flags to both sides' `wsoak run` (e.g. RUN_ARGS="--shards 1"). Needs
# SESSIONS + ~100 open files in each process (ulimit -n); loopback only, every run
# bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: benches/shard-cpu.sh BASELINE_BIN [PAIRS] [SESSIONS]" >&2
  exit 2
fi
baseline=$(realpath "$1")
pairs=${2:-3}
sessions=${3:-15000}
if [ "$(ulimit -n)" -lt $((sessions + 100)) ] && [ "$(ulimit -Hn)" -lt $((sessions + 100)) ]; then
  echo "shard-cpu.sh: $sessions sessions need $((sessions + 100)) open files; ulimit -Hn is $(ulimit -Hn)" >&2
  exit 2
fi
ulimit -n "$(ulimit -Hn)" # for the server; the client raises its own
SERVE_DURATION=10m
SERVE_LATER=1
source benches/serve.sh
declare -A binary=([A]="$baseline" [B]="$(realpath "$bin")")
echo "A: ${binary[A]}"
echo "B: ${binary[B]}"

measure() { # side -> "steady whole lag_p99 heartbeat_p99 worst_steady_lag_p99"
  start_server
  "${binary[$1]}" run scenarios/miniprogram.yaml --quiet --target "$url" \
    --sessions "$sessions" --ramp-up 10s --duration 40s --report "$tmp/report.json" \
    ${RUN_ARGS:-} >/dev/null
  stop_server >/dev/null
  python3 - "$tmp/intervals.jsonl" "$tmp/report.json" "$sessions" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
report = json.load(open(sys.argv[2]))
sessions = int(sys.argv[3])
assert report["sessions"]["bound"] == sessions, report["sessions"]
steady = [l for l in lines if 15 <= l["t"] <= 38]
cpu_ms = sum(l["cpu_ms"] for l in steady)
acked = sum(l["counts"].get("heartbeats.acked", 0) for l in steady)
assert acked > 0, "no heartbeats acked"
whole = report["tester"]["cpu_s"] * 1e6 / report["heartbeats"]["acked"]
lat = report["latency_ms"]
worst = max((l["latency_ms"].get("schedule_lag") or {}).get("p99") or 0 for l in steady)
print(f"{cpu_ms * 1000 / acked:.2f} {whole:.2f} {lat['schedule_lag']['p99']:.3f} "
      f"{lat['heartbeat']['p99']:.3f} {worst:.3f}")
PY
}

declare -A steady
ratios=()
for i in $(seq "$pairs"); do
  declare -A this=()
  for side in A B; do
    read -r s w lag hb worst <<<"$(measure "$side")"
    echo "pair $i $side: steady $s µs/heartbeat, whole $w µs/heartbeat, schedule_lag p99 $lag ms, heartbeat p99 $hb ms, worst steady interval schedule_lag p99 $worst ms"
    steady[$side]+="$s "
    this[$side]=$s
  done
  ratio=$(python3 -c "print(f'{${this[B]} / ${this[A]}:.3f}')")
  echo "pair $i: B/A $ratio"
  ratios+=("$ratio")
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
a=$(median "${steady[A]}")
b=$(median "${steady[B]}")
echo "median steady A: $a µs per heartbeat, B: $b µs per heartbeat (B/A of medians $(python3 -c "print(f'{$b/$a:.3f}')"))"
echo "median pair ratio B/A: $(median "${ratios[*]}")"
