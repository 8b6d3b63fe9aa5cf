#!/usr/bin/env bash
# Runs a wsoak scenario on Kubernetes as an N-shard Indexed Job, merges the shards'
# results and copies the merged report here. See --help, and README, "Running on
# Kubernetes".
#
# kubectl has no templating. This script fills the run's values (name, start time,
# shard count, image, deadline) into the manifests beside it with
# `kubectl patch --local --type=json`: a JSON patch on the parsed object, not text
# substitution, so no quoting or indentation can go wrong. Each place it writes to is
# first checked with a JSON patch `test` (the container is `wsoak`, args[2] is
# `--shard-count`, env[0] is WSOAK_START_AT, …): an edited manifest whose layout moved
# stops the script with kubectl's message before anything is applied, instead of
# becoming a wrong Job. Everything is rendered before anything is applied.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
me=${0##*/}

usage() {
  cat <<EOF
Runs a wsoak scenario on Kubernetes as an N-shard Indexed Job and brings back the
merged report.

Usage: $me SCENARIO -n NAMESPACE --image IMAGE [options] [-- WSOAK_RUN_FLAGS...]

  SCENARIO             the scenario file (YAML or .rhai); check it first with
                       \`wsoak check SCENARIO\`. Its target must be reachable from
                       the cluster.
  -n, --namespace NS   the namespace to run in (required)
  -i, --image IMAGE    the image built from deploy/kubernetes/Dockerfile
                       (default: \$WSOAK_IMAGE)
  -s, --shards N       shards, each a pod on its own node where possible (default 3)
  --file PATH          another file the scenario names (card CSV, .rhai hooks); it
                       is mounted beside the scenario, so the scenario names it
                       without a folder (cards: cards.csv). Repeatable.
  --start-in SECONDS   how far ahead the common start time is, for every pod to be
                       scheduled, pulled and running by then (default 120)
  --timeout SECONDS    how long the shards may take in all, from now (default: the
                       start delay + the scenario's duration + 5 minutes; needed
                       when the duration cannot be read from the file: a .rhai
                       scenario, or a YAML one with load stages and no duration)
  --run NAME           the run's name: its Jobs, and its directory on the volume
                       (default wsoak-<start time>, e.g. wsoak-20261129t150000z)
  --pvc NAME           the ReadWriteMany claim for the results (default
                       wsoak-results; created from results-pvc.yaml if missing)
  --out DIR            where the merged run directory goes (default reports/<run>)
  --allow-partial      merge the shards that finished even if some did not
  -h, --help           this help
  -- FLAGS...          more \`wsoak run\` flags for every shard (--interval 10s,
                       --workers 2, …)

It creates the ConfigMap <run>-scenario from SCENARIO, starts the Job <run> (the
pods' live metrics: kubectl -n NS port-forward pod/<pod> 9464, then
http://127.0.0.1:9464/metrics), waits for every shard, runs the Job <run>-merge,
and copies /results/<run>/merged from the volume to --out. The shards' own
directories stay on the volume, in /results/<run>/shard-<I>/.

Exit codes: 0 every threshold passed on the merged data, 1 a threshold failed (as
\`wsoak merge\` exits: a CI job can use them); 2 bad input (this script's
arguments, a shard's usage error, or the merge's: a shard missing); 4 the run did
not get as far as a verdict (a timeout, a kubectl error, the copy failed).

Examples:
  $me my-scenario.yaml -n loadtest --image registry.example/wsoak:0.1.0 -s 5
  $me soak.yaml --file cards.csv -n loadtest -i registry.example/wsoak:0.1.0 \\
     --start-in 300 -- --duration 24h --interval 10s
EOF
}

die() {
  echo "$me: $1" >&2
  exit "${2:-2}"
}

say() { echo "== $*" >&2; }

scenario=""
namespace=""
image=${WSOAK_IMAGE:-}
shards=3
start_in=120
timeout=""
run=""
pvc=wsoak-results
out=""
allow_partial=0
files=()
extra=()

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    -n | --namespace) need_value "$@"; namespace=$2; shift 2 ;;
    -i | --image) need_value "$@"; image=$2; shift 2 ;;
    -s | --shards) need_value "$@"; shards=$2; shift 2 ;;
    --file) need_value "$@"; files+=("$2"); shift 2 ;;
    --start-in) need_value "$@"; start_in=$2; shift 2 ;;
    --timeout) need_value "$@"; timeout=$2; shift 2 ;;
    --run) need_value "$@"; run=$2; shift 2 ;;
    --pvc) need_value "$@"; pvc=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --allow-partial) allow_partial=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [[ -z $scenario ]] || die "one scenario only: $scenario, then $1"
      scenario=$1
      shift
      ;;
  esac
done

# --- Checking the arguments, before anything touches the cluster ---------------------

[[ -n $scenario ]] || die "which scenario? (see --help)"
[[ -f $scenario && -r $scenario ]] || die "$scenario: not a readable file"
[[ -n $namespace ]] || die "-n NAMESPACE is required: a load test runs where you say"
[[ -n $image ]] || die "--image is required (or set WSOAK_IMAGE): the image built from deploy/kubernetes/Dockerfile"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "--shards: $shards is not a whole number of at least 1"
[[ $start_in =~ ^[0-9]+$ ]] || die "--start-in: $start_in is not a whole number of seconds"
[[ -z $timeout || $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout: $timeout is not a whole number of seconds"
command -v kubectl >/dev/null 2>&1 || die "kubectl is not on the PATH"

# A ConfigMap key is a file name: letters, digits, '-', '_', '.'.
key_of() {
  local key=${1##*/}
  [[ $key =~ ^[-._a-zA-Z0-9]+$ ]] || die "$1: a file name of letters, digits, '-', '_' and '.' only (it becomes a ConfigMap key)"
  printf '%s' "$key"
}
scenario_key=$(key_of "$scenario")
from_files=(--from-file="$scenario_key=$scenario")
for f in ${files[@]+"${files[@]}"}; do
  [[ -f $f && -r $f ]] || die "--file $f: not a readable file"
  k=$(key_of "$f")
  [[ $k != "$scenario_key" ]] || die "--file $f: has the scenario's own file name"
  from_files+=(--from-file="$k=$f")
done

# Seconds in a duration as wsoak writes them: 30s, 10m, 1h30m, 1h 30m, 500ms, 2d.
duration_seconds() {
  local text=$1 ms=0 n unit per
  text=${text//[[:space:]]/}
  [[ -n $text ]] || return 1
  while [[ -n $text ]]; do
    [[ $text =~ ^([0-9]+)([a-zA-Z]+)(.*)$ ]] || return 1
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]}
    text=${BASH_REMATCH[3]}
    case $unit in
      ms | msec) per=1 ;;
      s | sec | secs | second | seconds) per=1000 ;;
      m | min | mins | minute | minutes) per=60000 ;;
      h | hr | hrs | hour | hours) per=3600000 ;;
      d | day | days) per=86400000 ;;
      *) return 1 ;;
    esac
    ms=$((ms + 10#$n * per))
  done
  echo $(((ms + 999) / 1000))
}

# The run's length: `--duration` among the extra flags, else the file's top-level
# `duration:`, else wsoak's default of 10s when there is no `load:` either.
run_seconds() {
  local i line value
  for ((i = 0; i < ${#extra[@]}; i++)); do
    case ${extra[i]} in
      --duration=*) value=${extra[i]#--duration=} ;;
      --duration) value=${extra[i + 1]:-} ;;
    esac
  done
  if [[ -z ${value:-} && $scenario != *.rhai ]]; then
    line=$(grep -E '^duration:' "$scenario" | head -n 1 || true)
    if [[ -n $line ]]; then
      value=${line#duration:}
      value=${value%%#*}
      value=${value//[\"\']/}
    elif ! grep -qE '^load:' "$scenario"; then
      value=10s
    fi
  fi
  [[ -n ${value:-} ]] || return 1
  duration_seconds "$value"
}

if [[ -z $timeout ]]; then
  seconds=$(run_seconds) \
    || die "cannot read the run's duration from $scenario: pass --timeout SECONDS (the start delay, the run and a margin)"
  # --grace (default 5s) and writing the reports take seconds; pulling an image on a
  # busy node can take minutes.
  timeout=$((start_in + seconds + 300))
fi

# RFC 3339 in UTC, with GNU date or BSD date.
utc() {
  date -u -d "@$1" "+$2" 2>/dev/null || date -u -r "$1" "+$2"
}
start_epoch=$(($(date +%s) + start_in))
start_at=$(utc "$start_epoch" '%Y-%m-%dT%H:%M:%SZ')
if [[ -z $run ]]; then
  run=wsoak-$(utc "$start_epoch" '%Y%m%dT%H%M%SZ' | tr 'TZ' 'tz')
fi
# The Job's name is a label value on its pods (at most 63 characters); the merge Job
# adds "-merge".
[[ $run =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ && ${#run} -le 50 ]] \
  || die "--run $run: lowercase letters, digits and '-', at most 50 characters, starting and ending with a letter or digit"
[[ -n $out ]] || out=reports/$run
if [[ -e $out ]] && [[ -n $(ls -A "$out" 2>/dev/null) ]]; then
  die "--out $out: already exists and is not empty"
fi

# --- Rendering the manifests ------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/wsoak-k8s.XXXXXX")
fetch_pod=""
shards_applied=0
shards_done=0

k() { kubectl --namespace "$namespace" "$@"; }

cleanup() {
  if [[ -n $fetch_pod ]]; then
    k delete pod "$fetch_pod" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Ctrl-C while the shards run stops the load: a test left hammering a target after its
# operator gave up is worse than a lost run.
interrupted() {
  trap - INT TERM
  if [[ $shards_applied == 1 && $shards_done == 0 ]]; then
    echo >&2
    say "interrupted: deleting job/$run, so that its shards stop (each closes its sessions within --grace)"
    k delete job "$run" --wait=false >/dev/null 2>&1 || true
  fi
  exit 130
}
trap interrupted INT TERM

json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

# render FILE JSON_PATCH OUT: the manifest with the patch applied, or a stop naming the
# file.
render() {
  local err
  if ! kubectl patch --local -f "$1" --type=json -p "$2" -o yaml >"$3" 2>"$work/err"; then
    err=$(cat "$work/err")
    die "${1##*/}: does not have the layout this script fills in ($err). Keep the container named wsoak and the order of its first args and env entries and of its volumes, or apply the manifests by hand (README, Running on Kubernetes)."
  fi
}

c=/spec/template/spec/containers/0
instance=/metadata/labels/app.kubernetes.io~1instance
tinstance=/spec/template/metadata/labels/app.kubernetes.io~1instance
R=$(json_string "$run")
I=$(json_string "$image")
P=$(json_string "$pvc")

extra_ops=""
for a in ${extra[@]+"${extra[@]}"}; do
  extra_ops+=",{\"op\":\"add\",\"path\":\"$c/args/-\",\"value\":$(json_string "$a")}"
done

render "$here/shards-job.yaml" "[
  {\"op\":\"test\",\"path\":\"/kind\",\"value\":\"Job\"},
  {\"op\":\"test\",\"path\":\"$c/name\",\"value\":\"wsoak\"},
  {\"op\":\"test\",\"path\":\"$c/args/0\",\"value\":\"run\"},
  {\"op\":\"test\",\"path\":\"$c/args/2\",\"value\":\"--shard-count\"},
  {\"op\":\"test\",\"path\":\"$c/env/0/name\",\"value\":\"WSOAK_START_AT\"},
  {\"op\":\"test\",\"path\":\"$c/env/1/name\",\"value\":\"WSOAK_RUN\"},
  {\"op\":\"test\",\"path\":\"/spec/template/spec/volumes/0/name\",\"value\":\"scenario\"},
  {\"op\":\"test\",\"path\":\"/spec/template/spec/volumes/1/name\",\"value\":\"results\"},
  {\"op\":\"replace\",\"path\":\"/metadata/name\",\"value\":$R},
  {\"op\":\"add\",\"path\":\"$instance\",\"value\":$R},
  {\"op\":\"add\",\"path\":\"$tinstance\",\"value\":$R},
  {\"op\":\"replace\",\"path\":\"/spec/completions\",\"value\":$shards},
  {\"op\":\"replace\",\"path\":\"/spec/parallelism\",\"value\":$shards},
  {\"op\":\"replace\",\"path\":\"/spec/activeDeadlineSeconds\",\"value\":$timeout},
  {\"op\":\"replace\",\"path\":\"$c/image\",\"value\":$I},
  {\"op\":\"replace\",\"path\":\"$c/args/1\",\"value\":$(json_string "/scenario/$scenario_key")},
  {\"op\":\"replace\",\"path\":\"$c/args/3\",\"value\":\"$shards\"},
  {\"op\":\"replace\",\"path\":\"$c/env/0/value\",\"value\":\"$start_at\"},
  {\"op\":\"replace\",\"path\":\"$c/env/1/value\",\"value\":$R},
  {\"op\":\"replace\",\"path\":\"/spec/template/spec/volumes/0/configMap/name\",\"value\":$(json_string "$run-scenario")},
  {\"op\":\"replace\",\"path\":\"/spec/template/spec/volumes/1/persistentVolumeClaim/claimName\",\"value\":$P}
  $extra_ops
]" "$work/shards.yaml"

merge_args="\"merge\""
for ((i = 0; i < shards; i++)); do
  merge_args+=",$(json_string "/results/\$(WSOAK_RUN)/shard-$i")"
done
merge_args+=",\"--out\",\"/results/\$(WSOAK_RUN)/merged\",\"--junit\",\"/results/\$(WSOAK_RUN)/merged/junit.xml\""
[[ $allow_partial == 0 ]] || merge_args+=",\"--allow-partial\""

render "$here/merge-job.yaml" "[
  {\"op\":\"test\",\"path\":\"/kind\",\"value\":\"Job\"},
  {\"op\":\"test\",\"path\":\"$c/name\",\"value\":\"wsoak\"},
  {\"op\":\"test\",\"path\":\"$c/args/0\",\"value\":\"merge\"},
  {\"op\":\"test\",\"path\":\"$c/env/0/name\",\"value\":\"WSOAK_RUN\"},
  {\"op\":\"test\",\"path\":\"/spec/template/spec/volumes/0/name\",\"value\":\"results\"},
  {\"op\":\"replace\",\"path\":\"/metadata/name\",\"value\":$(json_string "$run-merge")},
  {\"op\":\"add\",\"path\":\"$instance\",\"value\":$R},
  {\"op\":\"add\",\"path\":\"$tinstance\",\"value\":$R},
  {\"op\":\"replace\",\"path\":\"$c/image\",\"value\":$I},
  {\"op\":\"replace\",\"path\":\"$c/args\",\"value\":[$merge_args]},
  {\"op\":\"replace\",\"path\":\"$c/env/0/value\",\"value\":$R},
  {\"op\":\"replace\",\"path\":\"/spec/template/spec/volumes/0/persistentVolumeClaim/claimName\",\"value\":$P}
]" "$work/merge.yaml"

p=/spec/containers/0
render "$here/fetch-pod.yaml" "[
  {\"op\":\"test\",\"path\":\"/kind\",\"value\":\"Pod\"},
  {\"op\":\"test\",\"path\":\"$p/name\",\"value\":\"fetch\"},
  {\"op\":\"test\",\"path\":\"/spec/volumes/0/name\",\"value\":\"results\"},
  {\"op\":\"replace\",\"path\":\"/metadata/name\",\"value\":$(json_string "$run-fetch")},
  {\"op\":\"add\",\"path\":\"$instance\",\"value\":$R},
  {\"op\":\"replace\",\"path\":\"$p/image\",\"value\":$I},
  {\"op\":\"replace\",\"path\":\"/spec/volumes/0/persistentVolumeClaim/claimName\",\"value\":$P}
]" "$work/fetch.yaml"

render "$here/results-pvc.yaml" "[
  {\"op\":\"test\",\"path\":\"/kind\",\"value\":\"PersistentVolumeClaim\"},
  {\"op\":\"replace\",\"path\":\"/metadata/name\",\"value\":$P}
]" "$work/pvc.yaml"

kubectl create configmap "$run-scenario" "${from_files[@]}" --dry-run=client -o yaml >"$work/cm-plain.yaml" \
  || die "cannot build the ConfigMap from $scenario"
render "$work/cm-plain.yaml" "[
  {\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"app.kubernetes.io/name\":\"wsoak\",\"app.kubernetes.io/instance\":$R}}
]" "$work/configmap.yaml"

# --- Running ----------------------------------------------------------------------

fail() { die "$1" 4; }

# The True conditions of a Job, one "Type Reason" a line.
conditions() {
  k get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{.reason}{"\n"}{end}' 2>/dev/null || true
}

# Waits for a Job to finish, in slices of `kubectl wait`; prints "Complete" or
# "Failed <reason>"; fails after SECONDS.
wait_job() {
  local name=$1 deadline=$((SECONDS + $2)) failed
  while :; do
    if k wait --for=condition=complete "job/$name" --timeout=30s >/dev/null 2>&1; then
      echo Complete
      return 0
    fi
    failed=$(conditions "$name" | grep '^Failed' || true)
    if [[ -n $failed ]]; then
      echo "$failed"
      return 0
    fi
    ((SECONDS < deadline)) || return 1
  done
}

# Each pod of a Job: "index name phase exit-code reason", one a line.
pods_of() {
  k get pods -l "batch.kubernetes.io/job-name=$1" -o jsonpath='{range .items[*]}{.metadata.annotations.batch\.kubernetes\.io/job-completion-index}{" "}{.metadata.name}{" "}{.status.phase}{" "}{.status.containerStatuses[0].state.terminated.exitCode}{" "}{.status.containerStatuses[0].state.terminated.reason}{"\n"}{end}' 2>/dev/null | sort -n || true
}

say "run $run: $shards shards of $scenario in namespace $namespace, starting at $start_at"

for job in "$run" "$run-merge"; do
  if k get job "$job" >/dev/null 2>&1; then
    die "job/$job already exists in $namespace: choose another --run, or delete it (kubectl -n $namespace delete job $job)"
  fi
done

if ! k get pvc "$pvc" >/dev/null 2>&1; then
  say "no claim $pvc here: creating it from results-pvc.yaml (ReadWriteMany: see its comments if it stays Pending)"
  k apply -f "$work/pvc.yaml" >/dev/null || fail "cannot create the claim $pvc"
fi
k apply -f "$work/configmap.yaml" >/dev/null || fail "cannot create the ConfigMap $run-scenario"
shards_applied=1
k apply -f "$work/shards.yaml" >/dev/null || fail "cannot create job/$run"

# Every shard should be running before the start time; one that is not will start
# late and cannot keep the common timetable.
while :; do
  running=$(pods_of "$run" | awk '$3 == "Running" || $3 == "Succeeded" || $3 == "Failed"' | wc -l | tr -d ' ')
  ((running < shards)) || break
  if (($(date +%s) >= start_epoch)); then
    say "WARNING: only $running of $shards shard pods were running at the start time $start_at; the others start late:"
    k get pods -l "batch.kubernetes.io/job-name=$run" -o wide >&2 || true
    say "(Pending? kubectl -n $namespace describe pod <pod>: the claim $pvc unbound, no room on the nodes, an image pull. Next time, a larger --start-in.)"
    break
  fi
  sleep 5
done
say "live metrics of a shard: kubectl -n $namespace port-forward pod/<pod> 9464, then http://127.0.0.1:9464/metrics"
pods_of "$run" | awk '{print "   shard " $1 ": pod/" $2}' >&2
say "waiting for job/$run (at most ${timeout}s from its start)"

outcome=$(wait_job "$run" $((timeout + 60))) \
  || fail "job/$run did not finish in time; it is still there: kubectl -n $namespace get pods -l batch.kubernetes.io/job-name=$run (delete it with kubectl -n $namespace delete job $run)"
shards_done=1
say "job/$run: $outcome"

usage_error=""
while read -r index pod phase code reason; do
  [[ -n ${index:-} ]] || continue
  echo "   shard $index: $phase${code:+, exit $code}${reason:+ ($reason)}" >&2
  if [[ ${code:-} == 2 ]]; then
    usage_error=$pod
  fi
done < <(pods_of "$run")
if [[ -n $usage_error ]]; then
  say "a shard refused the run (exit 2); its output:"
  k logs "$usage_error" --tail=20 >&2 || true
  exit 2
fi

say "merging: job/$run-merge"
k apply -f "$work/merge.yaml" >/dev/null || fail "cannot create job/$run-merge"
wait_job "$run-merge" 960 >/dev/null || fail "job/$run-merge did not finish in time"
merge_code=$(k get pods -l "batch.kubernetes.io/job-name=$run-merge" \
  -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}' 2>/dev/null || true)
k logs "job/$run-merge" || true
[[ $merge_code =~ ^[0-9]+$ ]] || fail "job/$run-merge ended without an exit code (kubectl -n $namespace describe job $run-merge)"
if ((merge_code > 1)); then
  say "the merge refused the shards (exit $merge_code): see its output above"
  exit "$merge_code"
fi

fetch_pod=$run-fetch
k apply -f "$work/fetch.yaml" >/dev/null || fail "cannot create pod/$fetch_pod"
k wait --for=condition=Ready "pod/$fetch_pod" --timeout=300s >/dev/null \
  || fail "pod/$fetch_pod did not start (kubectl -n $namespace describe pod $fetch_pod)"
mkdir -p "$(dirname "$out")"
k cp "$fetch_pod:/results/$run/merged" "$out" >/dev/null \
  || fail "could not copy /results/$run/merged (it is still on the volume $pvc)"

verdict=passed
[[ $merge_code == 0 ]] || verdict="FAILED (a threshold)"
say "thresholds $verdict"
say "report      $out/report.json"
say "html        $out/report.html"
say "shards      /results/$run/shard-<I>/ on the volume $pvc"
exit "$merge_code"
