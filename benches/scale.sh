#!/usr/bin/env bash
# Past one process: SESSIONS sessions from one machine, with worker processes on both
# sides, then the cost of workers at 15,000 sessions.
#
#   benches/scale.sh [SESSIONS] [PAIRS]      (defaults: 100000 sessions, 2 pairs; 0 pairs
#                                            skips part 2)
#
# 1. Starts `wsoak serve --workers K` (K = SESSIONS / 18,000, rounded up: one process
#    may open 20,000 files here) in its own process group, and runs benches/scale.yaml
#    against it with `--workers auto`: every page connects, authenticates and binds over
#    a 40 s ramp, heartbeats every 30 s and holds for two minutes after the ramp. Reports
#    sessions bound, heartbeats sent against those the servers saw, reconnects,
#    schedule_lag p99, the setup rate (sessions bound per second of ramp, per core), and
#    memory: the peak RSS of every client process (tester.peak_rss_kib, summed over the
#    parent and the workers) minus that of the same run with 1 session per worker (the
#    processes' own overhead), divided by the sessions.
# 2. PAIRS times, alternating, 15,000 sessions with one heartbeat a second for 40 s
#    (scenarios/miniprogram.yaml) with --workers 0 and with --workers 2, against a fresh
#    `wsoak serve`: CPU per 1,000 heartbeats (tester.cpu_s, every client process, over the
#    whole run) for each, and their ratio.
# Loopback only; every run is bounded by its scenario's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-100000}
pairs=${2:-2}
ulimit -n "$(ulimit -Hn)"
SERVE_LATER=1
source benches/serve.sh
cores=$(nproc)

report_line() { # report.json -> one line of the figures this script quotes
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, hb, lag = r["sessions"], r["heartbeats"], r["latency_ms"]["schedule_lag"]
print(f"bound {s['bound']}/{s['planned']}  reconnects {r['reconnects']['total']}  "
      f"heartbeats sent {hb['sent']} acked {hb['acked']} failed {hb['failed']}  "
      f"schedule_lag p99 {lag['p99']} ms  workers {r['tester']['workers']}  "
      f"peak RSS {r['tester']['peak_rss_kib']} KiB  cpu {r['tester']['cpu_s']} s")
PY
}

workers=$(( (sessions + 17999) / 18000 ))
echo "== $sessions sessions: wsoak serve --workers $workers, wsoak run --workers auto"
start_server --workers "$workers" --max-connections 19000
"$bin" run benches/scale.yaml --quiet --target "$url" --sessions "$sessions" \
  --report "$tmp/big/report.json" >/dev/null
stop_server >"$tmp/server.json"
report_line "$tmp/big/report.json"
python3 - "$tmp/big/report.json" "$tmp/big/intervals.jsonl" "$tmp/server.json" "$cores" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[2])]
server = json.loads(open(sys.argv[3]).read().strip().splitlines()[-1])
cores = int(sys.argv[4])
planned = r["sessions"]["planned"]
print(f"server saw: connections {server['connections']}  heartbeats {server['heartbeats']}  "
      f"(client sent {r['heartbeats']['sent']}: {r['heartbeats']['sent'] - server['heartbeats']} in flight at the end)")
bound_at = next((l["t"] for l in lines if l["states"].get("bound", 0) >= planned), None)
if bound_at:
    rate = planned / bound_at
    print(f"setup: all {planned} bound {bound_at:.0f} s after the start: {rate:.0f} sessions/s, "
          f"{rate / cores:.0f} per core ({cores} cores)")
held = lines[-1]["t"] - (bound_at or 0)
print(f"held: {held:.0f} s with every session bound")
PY
full_rss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tester"]["peak_rss_kib"])' "$tmp/big/report.json")
used=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tester"]["workers"])' "$tmp/big/report.json")
start_server
"$bin" run benches/scale.yaml --quiet --target "$url" --sessions "$used" --workers "$used" \
  --ramp-up 1s --duration 10s --report "$tmp/idle/report.json" >/dev/null
stop_server >/dev/null
idle_rss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tester"]["peak_rss_kib"])' "$tmp/idle/report.json")
python3 -c "print(f'memory: {$full_rss} KiB over the parent and {$used} workers at $sessions sessions, {$idle_rss} KiB with 1 session each: {($full_rss - $idle_rss) / ($sessions - $used):.2f} KiB per session')"

if [ "$pairs" -eq 0 ]; then
  exit 0
fi
echo "== 15000 sessions, one heartbeat a second: --workers 0 against --workers 2"
cost() { # workers -> µs... prints CPU ms per 1,000 heartbeats acked
  start_server
  "$bin" run scenarios/miniprogram.yaml --quiet --target "$url" --sessions 15000 \
    --ramp-up 10s --duration 40s --workers "$1" --report "$tmp/w$1/report.json" >/dev/null
  stop_server >/dev/null
  python3 - "$tmp/w$1/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["sessions"]["bound"] == 15000, r["sessions"]
print(f"{r['tester']['cpu_s'] * 1000 / r['heartbeats']['acked'] * 1000:.1f}")
PY
}
one=() ; two=()
for i in $(seq "$pairs"); do
  a=$(cost 0); b=$(cost 2)
  echo "pair $i: --workers 0 $a ms, --workers 2 $b ms of CPU per 1,000 heartbeats"
  one+=("$a"); two+=("$b")
done
python3 - "${one[*]}" "${two[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
two = [float(x) for x in sys.argv[2].split()]
m1, m2 = statistics.median(one), statistics.median(two)
print(f"median: --workers 0 {m1:.1f} ms, --workers 2 {m2:.1f} ms per 1,000 heartbeats: {m2 / m1:.2f}x")
PY
