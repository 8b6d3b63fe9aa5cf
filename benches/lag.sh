#!/usr/bin/env bash
# The tester's own schedule lag at the end of a big ramp, with and without spreading
# sessions over source addresses.
#
#   benches/lag.sh [REPEATS] [SESSIONS]      (defaults: 3 repeats, 15000 sessions)
#
# Runs scenarios/miniprogram.yaml (auth, bindCard, one heartbeat a second) with SESSIONS
# sessions ramped up over 10 s and held to 25 s, against `wsoak serve` in a separate
# process, in two ways, alternating:
#   spread   the default: a 127.x target spreads over 127.0.0.1, 127.0.0.2, …
#   single   --source-addrs 127.0.0.1: every connection from one address
# Each run gets a fresh server (a new port), so no earlier run's closed connections
# share its (source, destination) pairs. Prints, per run, every interval's connects,
# connect p99 and schedule_lag p99, then the worst interval's p99 and the worst at the
# ramp's end (the intervals ending 10 to 12 s); at the end, their medians per way. Needs SESSIONS + ~100 open files in each process
# (ulimit -n); loopback only, every run bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
sessions=${2:-15000}
if [ "$(ulimit -n)" -lt $((sessions + 100)) ] && [ "$(ulimit -Hn)" -lt $((sessions + 100)) ]; then
  echo "lag.sh: $sessions sessions need $((sessions + 100)) open files; ulimit -Hn is $(ulimit -Hn)" >&2
  exit 2
fi
ulimit -n "$(ulimit -Hn)" # for the server; the client raises its own
SERVE_DURATION=10m
source benches/serve.sh

worst() { # way, extra args... -> the run's intervals on stderr; the worst p99 (ms)
  local way=$1
  shift
  "$bin" run scenarios/miniprogram.yaml --quiet --target "$url" --sessions "$sessions" \
    --ramp-up 10s --duration 25s --report "$tmp/report.json" "$@" >/dev/null
  python3 - "$tmp/intervals.jsonl" "$tmp/report.json" "$way" "$sessions" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
report = json.load(open(sys.argv[2]))
way, sessions = sys.argv[3], int(sys.argv[4])
assert report["sessions"]["bound"] == sessions, report["sessions"]
print(f"  {way}: t(s)  connects  connect p99 ms  schedule_lag p99 ms", file=sys.stderr)
worst = (0.0, 0.0)
for l in lines:
    lag = (l["latency_ms"].get("schedule_lag") or {}).get("p99")
    connect = (l["latency_ms"].get("connect") or {}).get("p99")
    attempted = l["counts"].get("connects.attempted", 0)
    show = lambda v: "-" if v is None else f"{v:.3f}"
    print(f"  {way}: {l['t']:5.1f} {attempted:9} {show(connect):>15} {show(lag):>20}", file=sys.stderr)
    if lag is not None and lag > worst[1]:
        worst = (l["t"], lag)
errors = sum(report["errors"].values())
# The ramp ends at t=10 s: the intervals ending 10 to 12 s hold its last connects.
ramp_end = max((l["latency_ms"].get("schedule_lag") or {}).get("p99") or 0.0
               for l in lines if 9.5 < l["t"] <= 12.5)
print(f"  {way}: worst schedule_lag p99 {worst[1]:.3f} ms at t={worst[0]:.1f}s, "
      f"{ramp_end:.3f} ms at the ramp's end; bound {report['sessions']['bound']}, "
      f"errors {errors}, heartbeats sent {report['heartbeats']['sent']}", file=sys.stderr)
print(f"{worst[1]:.3f} {ramp_end:.3f}")
PY
}

declare -A runs ends
for i in $(seq "$repeats"); do
  for way in spread single; do
    start_server
    if [ "$way" = single ]; then
      out=$(worst "$way" --source-addrs 127.0.0.1)
    else
      out=$(worst "$way")
    fi
    read -r ms end <<<"$out"
    echo "repeat $i  $way: schedule_lag p99 of the worst interval $ms ms, at the ramp's end $end ms"
    runs[$way]+="$ms "
    ends[$way]+="$end "
  done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for way in spread single; do
  echo "median $way: worst interval $(median "${runs[$way]}") ms (runs: ${runs[$way]% }); " \
    "ramp's end $(median "${ends[$way]}") ms (runs: ${ends[$way]% })"
done
