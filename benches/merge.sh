#!/usr/bin/env bash
# `wsoak merge` on day-long shards: its time and peak memory, and that it stays exact.
#
#   benches/merge.sh [INTERVALS] [SHARDS]     (defaults: 86400 intervals, 3 shards)
#
# Runs SHARDS real shards of scenarios/miniprogram.yaml (60 sessions, 4 s, one start,
# against one `wsoak serve`), then stretches each shard's intervals.jsonl and latency.hlog
# to INTERVALS intervals (86,400 is a day of 1 s intervals) by repeating its steady
# intervals with new numbers and times, and times `wsoak merge` of the stretched shards
# (wall time and peak RSS from GNU time). Checks that the merged report's heartbeat
# count is the sum of the stretched shards' lines. Loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
intervals=${1:-86400}
shards=${2:-3}
SERVE_DURATION=5m
source benches/serve.sh

start=$(date -u -d '+3 sec' +%Y-%m-%dT%H:%M:%SZ)
for i in $(seq 0 $((shards - 1))); do
  "$bin" run scenarios/miniprogram.yaml --quiet --target "$url" --sessions 60 \
    --duration 4s --shard "$i/$shards" --start-at "$start" \
    --report "$tmp/short/shard-$i/report.json" >/dev/null &
done
wait

python3 - "$tmp" "$shards" "$intervals" <<'EOF'
import json, os, sys
tmp, shards, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total, samples = 0, 0
for i in range(shards):
    src, dst = f"{tmp}/short/shard-{i}", f"{tmp}/long/shard-{i}"
    os.makedirs(dst)
    for f in ("run.json", "report.json"):
        open(f"{dst}/{f}", "w").write(open(f"{src}/{f}").read())
    lines = [json.loads(l) for l in open(f"{src}/intervals.jsonl")]
    # The steady intervals (not the first, not the last two) are the pattern repeated.
    steady = lines[1:-2]
    header, groups = [], {}
    for l in open(f"{src}/latency.hlog"):
        if l.startswith("#") or l.startswith('"'):
            header.append(l)
            continue
        fields = l.split(",")
        end = round(float(fields[1]) + float(fields[2]), 3)
        groups.setdefault(end, []).append(fields)
    with open(f"{dst}/intervals.jsonl", "w") as out, open(f"{dst}/latency.hlog", "w") as hlog:
        hlog.writelines(header)
        prev = 0.0
        for k in range(n):
            line = dict(steady[k % len(steady)])
            t = round(k + 1 + (line["t"] % 1), 3)
            tmpl_t = line["t"]
            line["seq"], line["t"] = k, t
            out.write(json.dumps(line) + "\n")
            total += line["counts"].get("heartbeats.sent", 0)
            # The log's ends and the lines' t are each rounded to the millisecond.
            group = next((g for end, g in groups.items() if abs(end - tmpl_t) <= 0.0015), [])
            assert bool(group) == bool(line["latency_ms"]), (tmpl_t, list(groups))
            samples += line["latency_ms"].get("heartbeat", {}).get("count", 0)
            for fields in group:
                hlog.write(",".join([fields[0], f"{prev:.3f}", f"{t - prev:.3f}"] + fields[3:]))
            prev = t
open(f"{tmp}/expected", "w").write(f"{total} {samples}")
EOF

size=$(du -sh "$tmp/long" | cut -f1)
echo "merging $shards shards of $intervals intervals each ($size of logs)"
/usr/bin/time -f "%e s wall, %M KiB peak RSS" -o "$tmp/time" \
  "$bin" merge "$tmp"/long/shard-* --out "$tmp/merged" >/dev/null
cat "$tmp/time"
python3 - "$tmp" <<'EOF'
import json, sys
tmp = sys.argv[1]
r = json.load(open(f"{tmp}/merged/report.json"))
sent, samples = map(int, open(f"{tmp}/expected").read().split())
hb = r["latency_ms"]["heartbeat"]
assert r["heartbeats"]["sent"] == sent, (r["heartbeats"]["sent"], sent)
assert hb["count"] == samples, (hb["count"], samples)
print(f"merged: heartbeats sent {sent} and heartbeat latencies {samples}, as in the "
      f"shards' lines; heartbeat p99 {hb['p99']} ms")
EOF
