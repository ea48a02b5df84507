#!/usr/bin/env bash
# A restore drill beside a busy application: how much the drill slows the
# application down, with the drill worker at the priority it ships with
# (its session's scheduling group and every thread at nice 19, the lowest
# best-effort I/O level) and with all of it reniced to nice 0 (as a drill
# ran inside the worker), same binary, same run, several rounds, medians
# and ratios.
#   BENCH_MB=300 RUNS=3 scripts/bench-drill.sh
# The application is two gzip -6 processes (one per core here) compressing
# the tree's largest files a fixed number of times; the figure is their wall
# time beside a drill started with them over their wall time alone. Files
# only (no database): the scratch load runs in PostgreSQL's own processes,
# whatever the drill worker's priority.
set -euo pipefail
trap 'echo "bench-drill: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
MB=${BENCH_MB:-300}; RUNS=${RUNS:-3}
. scripts/shared.sh
shared=${VULCAN_SHARED_DIR:?reference data not found: set VULCAN_SHARED_DIR}
[ "$(id -u)" = 0 ] || { echo "bench-drill: renicing the drill worker to 0 needs root" >&2; exit 1; }
make -s build
base=$PWD/bench-data/drill
data=$base/mb$MB
[ -d "$data/storage" ] || { mkdir -p "$data"; go run "$shared/bench/mkstorage.go" -out "$data" -mb "$MB" >/dev/null; }
pids=()
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
wait_log() { for _ in $(seq 1 240); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "not ready: $1" >&2; cat "$1" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
# The application's work: the four largest files, each compressed three
# times by each of two processes, read from the page cache (warm: the
# application's CPU, not the disk, is what the drill's niceness guards).
mapfile -t big < <(find "$data/storage" -type f -printf '%s %p\n' | sort -rn | head -4 | cut -d' ' -f2-)
app() {
  local s e
  cat "${big[@]}" >/dev/null
  s=$(date +%s.%N)
  # A session of its own, as a service the worker does not share one with.
  setsid -w bash -c 'for _ in 1 2; do (for _ in 1 2 3; do for f in "$@"; do gzip -6 -c "$f" >/dev/null; done; done) & done; wait' app "${big[@]}"
  e=$(date +%s.%N); echo "$e - $s" | bc
}
reports() { local f; shopt -s nullglob; f=("$base"/backups/drills/*.json); echo ${#f[@]}; }
# drill_with_app: the application's seconds beside a drill started with it,
# and the drill's own (its report's total).
drill_with_app() {
  local before after app_s drill_s
  before=$(reports)
  bin/starter drill --detach >/dev/null
  app_s=$(app)
  for _ in $(seq 1 1200); do
    after=$(reports)
    [ "$after" -gt "$before" ] && break
    sleep 0.1
  done
  [ "$after" -gt "$before" ] || { echo "the drill did not finish" >&2; cat "$data/worker.log" >&2; exit 1; }
  drill_s=$(python3 -c "import json,glob,os; f=max(glob.glob('$base/backups/drills/*.json'), key=os.path.getmtime); r=json.load(open(f)); assert r['passed'], r; print(r['total_seconds'])")
  echo "$app_s $drill_s"
}
# priority N: the drill worker's scheduling group and every thread of it to
# nice N (and the I/O level that goes with it).
priority() {
  local pid level=$(( ($1 + 20) / 5 ))
  pid=$(pgrep -f -- "--drill-worker .*--task-queue bench-drill") || { echo "no drill worker" >&2; exit 1; }
  [ ! -e /proc/"$pid"/autogroup ] || echo "$1" > /proc/"$pid"/autogroup
  for t in /proc/"$pid"/task/*; do
    renice -n "$1" -p "${t##*/}" >/dev/null
    ionice -c 2 -n "$level" -p "${t##*/}"
  done
}

export VULCAN_ROOT=$data DATABASE_URL= TEMPORAL_ADDRESS=127.0.0.1:27433 VULCAN_UI_PORT=0 VULCAN_API_ADDR= VULCAN_TASK_QUEUE=bench-drill \
  VULCAN_BACKUP_DIR=$base/backups VULCAN_OFFSITE_URL=
rm -rf "$base/backups" "$base/state"
(cd "$data" && exec "$OLDPWD/bin/worker" --dev --no-schedule --state-dir "$base/state" >"$data/worker.log" 2>&1) &
wpid=$!; pids+=($wpid)
wait_log "$data/worker.log" "drill worker running"
bin/starter backup >/dev/null

declare -A r
for i in $(seq 1 "$RUNS"); do
  cold; r[alone]+="$(app) "
  for k in low normal; do
    if [ $k = low ]; then priority 19; else priority 0; fi
    cold; read -r app_s drill_s < <(drill_with_app)
    r[$k]+="$app_s "; r[$k-drill]+="$drill_s "
  done
done
kill $wpid; wait $wpid 2>/dev/null || true
rm -rf "$base/backups" "$base/state"

med() { echo ${r[$1]} | tr ' ' '\n' | median; }
a=$(med alone)
printf '\nrestore drill of a %s tree beside an application on both cores (%s rounds, medians)\n' "$(du -sh "$data/storage" | cut -f1)" "$RUNS"
printf '%-44s %9s %12s %10s\n' "" "app (s)" "app / alone" "drill (s)"
printf '%-44s %9.2f %11.2fx %10s\n' "  application alone" "$a" 1 "-"
printf '%-44s %9.2f %11.2fx %10.2f\n' "  beside a drill at nice 19 (as shipped)" "$(med low)" "$(echo "$(med low) / $a" | bc -l)" "$(med low-drill)"
printf '%-44s %9.2f %11.2fx %10.2f\n' "  beside a drill at nice 0 (reniced)" "$(med normal)" "$(echo "$(med normal) / $a" | bc -l)" "$(med normal-drill)"
for k in alone low normal; do printf '  %-8s runs: %s\n' "$k" "$(printf '%.2f ' ${r[$k]})"; done
