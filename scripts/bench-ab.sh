#!/usr/bin/env bash
# A first backup (every file read, nothing to copy from) by this checkout's
# worker against another commit's, on the same reference tree, files only:
# the two workers take turns, the first to go alternating by round, and the
# run prints each side's wall time and worker CPU (user + sys, from /proc),
# every run, the medians and their ratios.
#   BASE=7f49174 BENCH_MB=600 BENCH_FILES=20000 RUNS=5 scripts/bench-ab.sh
# The default BASE is the last commit before the archive's member table.
# WHAT=restore times restores instead: each side backs the tree up once, then
# restores that backup each round, its clean-up waited for and the file
# system settled after it (settle, in shared.sh), files only.
set -euo pipefail
trap 'echo "bench-ab: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
BASE=${BASE:-7f49174}; MB=${BENCH_MB:-600}; FILES=${BENCH_FILES:-20000}; RUNS=${RUNS:-5}; WHAT=${WHAT:-backup}
. scripts/shared.sh
make -s build
top=$PWD/bench-data
data=$top/mb$MB-f$FILES
benchdata "$data" "$MB" "$FILES"
rev=$(git rev-parse --short "$BASE^{commit}")
tree=$top/ab-$rev
if [ ! -x "$tree/bin/starter" ]; then
  rm -rf "$tree"; git worktree prune
  git worktree add -q --detach "$tree" "$rev"
  (cd "$tree" && go build -o bin/worker ./worker && go build -o bin/starter ./starter)
fi
pids=()
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
wait_log() { for _ in $(seq 1 240); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "not ready: $1" >&2; cat "$1" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
warm() { find "$@" -type f -print0 | xargs -0 cat >/dev/null; }
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.2f\n", ($14+$15)/t}' "/proc/$1/stat"; }
export TEMPORAL_ADDRESS=127.0.0.1:27253 VULCAN_UI_PORT=0 VULCAN_API_ADDR= DATABASE_URL= VULCAN_ROOT=$data VULCAN_UNDO_WINDOW=0
mkdir -p "$top/ab-server"
(cd "$top/ab-server" && exec "$OLDPWD/bin/worker" --dev --server-only >server.log 2>&1) &
pids+=($!)
wait_log "$top/ab-server/server.log" "embedded Temporal server running"
declare -A bin pid wall work
bin[new]=$PWD/bin; bin[base]=$tree/bin
for side in new base; do
  mkdir -p "$top/ab-$side-backups"
  (cd "$data" && VULCAN_BACKUP_DIR="$top/ab-$side-backups" VULCAN_TASK_QUEUE=ab-$side exec "${bin[$side]}/worker" --no-schedule >"$top/ab-$side.log" 2>&1) &
  pid[$side]=$!; pids+=($!)
  wait_log "$top/ab-$side.log" "worker running"
done
starter() { VULCAN_BACKUP_DIR="$top/ab-$side-backups" VULCAN_TASK_QUEUE=ab-$side "${bin[$side]}/starter" "$@" >"$top/ab-starter.log" 2>&1 \
  || { cat "$top/ab-starter.log" >&2; exit 1; }; }
declare -A id
if [ "$WHAT" = restore ]; then
  for side in new base; do
    rm -rf "$top/ab-$side-backups"; mkdir -p "$top/ab-$side-backups"
    starter backup
    id[$side]=$(cd "$top/ab-$side-backups" && ls vulcan_backup_*.json | sed 's/vulcan_backup_\(.*\)\.json/\1/')
  done
  settle
fi
for i in $(seq 1 "$RUNS"); do
  order="new base"; [ $((i % 2)) = 0 ] && order="base new"
  for side in $order; do
    if [ "$WHAT" = restore ]; then
      warm "$data/storage" "$top/ab-$side-backups"
    else
      rm -rf "$top/ab-$side-backups"; mkdir -p "$top/ab-$side-backups"
      sync; warm "$data/storage"
    fi
    a=$(cpu "${pid[$side]}"); s=$(date +%s.%N)
    if [ "$WHAT" = restore ]; then starter restore "${id[$side]}" --yes; else starter backup; fi
    e=$(date +%s.%N); b=$(cpu "${pid[$side]}")
    wall[$side]+="$(echo "$e - $s" | bc) "; work[$side]+="$(echo "$b - $a" | bc) "
    if [ "$WHAT" = restore ]; then
      # The replaced tree goes at once (no undo window); no restore starts
      # within a minute of that mass deletion.
      while ls -d "$data"/storage.pre-restore-* "$data"/.vulcan-restore-* >/dev/null 2>&1; do sleep 0.05; done
      settle
    fi
  done
done
rm -rf "$top"/ab-*-backups
[ "$WHAT" = restore ] && label="restore of a backup" || label="first backup"
printf '\n%s, files only, %d rounds: this checkout (%s) against %s\n' "$label" "$RUNS" "$(git describe --always --dirty)" "$rev"
for side in new base; do
  printf '  %-5s runs: wall %s| worker CPU %s\n' "$side" "$(printf '%.2f ' ${wall[$side]})" "$(printf '%.2f ' ${work[$side]})"
done
wn=$(echo ${wall[new]} | tr ' ' '\n' | median); wb=$(echo ${wall[base]} | tr ' ' '\n' | median)
cn=$(echo ${work[new]} | tr ' ' '\n' | median); cb=$(echo ${work[base]} | tr ' ' '\n' | median)
printf '  medians: wall %.2f against %.2f s (%.2fx the base), worker CPU %.2f against %.2f s (%.2fx)\n' \
  "$wn" "$wb" "$(echo "$wn / $wb" | bc -l)" "$cn" "$cb" "$(echo "$cn / $cb" | bc -l)"
