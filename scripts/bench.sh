#!/usr/bin/env bash
# make bench: Vulcan Backup against what operators use today (tar -czf + pg_dump,
# tar -xzf + psql), on the reference data, several runs each, medians and ratios,
# then the Go benchmarks. Data goes to bench-data/ (not committed).
#   BENCH_MB=600 BENCH_FILES=20000 BENCH_ROWS=300000 RUNS=3 scripts/bench.sh
set -euo pipefail
# A command whose output is discarded must still say when it stops the run.
trap 'echo "bench: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
MB=${BENCH_MB:-600}; FILES=${BENCH_FILES:-20000}; ROWS=${BENCH_ROWS:-300000}; RUNS=${RUNS:-3}
. scripts/shared.sh
shared=${VULCAN_SHARED_DIR:?reference data not found: set VULCAN_SHARED_DIR to the directory holding bench/vulcan_db.sql}
data=$PWD/bench-data/mb$MB-f$FILES
make -s build
admin=$(scripts/testdb.sh)
db=$(python3 -c "import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path='/vulcan_bench').geturl())" "$admin")
restoredb=$(python3 -c "import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path='/vulcan_bench_baseline').geturl())" "$admin")

benchdata "$data" "$MB" "$FILES"
psql -q "$admin" -c "DROP DATABASE IF EXISTS vulcan_bench WITH (FORCE)" -c "CREATE DATABASE vulcan_bench" 2>/dev/null
psql -q "$db" -v ON_ERROR_STOP=1 -v rows="$ROWS" -f "$shared/bench/vulcan_db.sql" >/dev/null 2>&1

# The pre-restore copies go at once (no undo window), as the clean-up is timed.
export VULCAN_ROOT=$data DATABASE_URL=$db TEMPORAL_ADDRESS=127.0.0.1:27233 VULCAN_UI_PORT=0 VULCAN_API_ADDR= VULCAN_RETENTION_DAYS=1 VULCAN_UNDO_WINDOW=0
rm -rf "$data/backups" "$data/.vulcan" "$PWD/bench-data/.vulcan" /tmp/vulcan-bench-x* "$data"/baseline-restore-*
# Creating many files just after many were deleted is slow on some file
# systems: ext4 without a journal (this machine's) skips every inode freed in
# the last 60 s when it allocates one, and tar -xzf of the reference tree took
# 5.5 s instead of 4.4 s right after an rm -rf of the same tree. No timed
# restore, ours or the baseline's, starts within a minute of a mass deletion:
# settle waits that out where one happened, and the baseline extracts into a
# new directory each round, all removed at the end.
settle
# The embedded server runs on its own (worker --dev --server-only), so the
# worker's memory is the worker's alone, as in the compose stack.
pids=()
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
wait_log() { for _ in $(seq 1 240); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "not ready: $1" >&2; cat "$1" >&2; exit 1; }
(cd bench-data && exec "$OLDPWD/bin/worker" --dev --server-only >server.log 2>&1) &
pids+=($!)
wait_log bench-data/server.log "embedded Temporal server running"
(cd "$data" && exec "$OLDPWD/bin/worker" >"$data/worker.log" 2>&1) &
wpid=$!
pids+=($wpid)
wait_log "$data/worker.log" "nightly schedule"

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
# Every timed command starts with its input in the page cache, ours and the
# baseline alike. Some machines evict pages idle for a minute (DAMON pageout:
# /sys/kernel/mm/damon), so without this the first command of a round would
# read from disk and the second, reading the same files, would not.
warm() { find "$@" -type f -print0 | xargs -0 cat >/dev/null; }
warmdb() { psql -qAt "$1" -c "SELECT format('SELECT count(*) FROM %I.%I;', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')" | psql -q "$1" >/dev/null; }
# DROP ... WITH (FORCE) cannot end an autovacuum worker for a role that is not
# superuser; the worker on the freshly loaded baseline ends within seconds.
dropbase() {
  for _ in $(seq 1 60); do
    psql -q "$admin" -c 'DROP DATABASE IF EXISTS vulcan_bench_baseline WITH (FORCE)' 2>/dev/null && return 0
    sleep 0.5
  done
  psql -q "$admin" -c 'DROP DATABASE IF EXISTS vulcan_bench_baseline WITH (FORCE)'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A ours base
for i in $(seq 1 "$RUNS"); do
  warm "$data/storage"; warmdb "$db"
  ours[backup]+="$(secs bin/starter backup) "
  warm "$data/storage"; warmdb "$db"
  base[backup]+="$(secs sh -c "cd '$data' && tar -czf /tmp/vulcan-bench-base.tar.gz storage && pg_dump '$db' > /tmp/vulcan-bench-base.sql") "
  id=$(bin/starter list --json | python3 -c "import json,sys; print([b['id'] for b in json.load(sys.stdin)['backups'] if b['kind']=='manual'][0])")
  warm "$data/backups/vulcan_backup_$id.tar.gz" "$data/backups/vulcan_backup_$id.json"
  ours[verify]+="$(secs bin/starter verify "$id") "
  warm /tmp/vulcan-bench-base.tar.gz
  base[verify]+="$(secs tar -tzf /tmp/vulcan-bench-base.tar.gz) "
  warm "$data/storage" "$data/backups/vulcan_backup_$id.tar.gz" "$data/backups/vulcan_backup_$id.json" "$data/backups/database/vulcan_db_$id.sql"; warmdb "$db"
  ours[restore]+="$(secs bin/starter restore "$id" --yes) "
  # The pre-restore copies are removed by a workflow that outlives the
  # restore: timed on its own, and waited for, so it takes nothing from the
  # baseline's turn.
  ours[cleanup]+="$(secs sh -c "while ls -d '$data'/storage.pre-restore-* '$data'/.vulcan-restore-* >/dev/null 2>&1; do sleep 0.05; done") "
  # The previous database goes untimed, as ours goes in its cleanup; our
  # cleanup has just deleted the pre-restore tree.
  dropbase
  settle
  warm /tmp/vulcan-bench-base.tar.gz /tmp/vulcan-bench-base.sql
  # The baseline extracts at the application root, beside the live tree, as
  # the manual procedure does and as ours stages (.vulcan-restore-<id>).
  # Until session 7 it extracted under /tmp, which on this machine's ext4
  # without a journal handed it fresh inodes, while ours, under the root,
  # met those the previous round's clean-up had just freed: such a file
  # system skips inodes freed in the last 60 s (360 s while their inode
  # table block is dirty, which creating files beside them makes it) when
  # it allocates one (recently_deleted in the kernel's profile), and new
  # directories under one parent draw on the same groups. 20,000 small
  # files took 3.15 s under the root and 0.75 s in a new directory under
  # /tmp, minutes after the bench's last deletion.
  base[restore]+="$(secs sh -c "mkdir '$data/baseline-restore-$i' && tar -xzf /tmp/vulcan-bench-base.tar.gz -C '$data/baseline-restore-$i' && psql -q '$admin' -c 'CREATE DATABASE vulcan_bench_baseline' && psql -q -v ON_ERROR_STOP=1 '$restoredb' < /tmp/vulcan-bench-base.sql") "
done
# The last round's manual backup (emergency backups compress Huffman-only).
archive=$data/backups/vulcan_backup_$id.tar.gz
# The same content as ours (the tree and the dump) through tar -czf, for the size.
(cd "$data" && cp /tmp/vulcan-bench-base.sql storage.sql && tar -czf /tmp/vulcan-bench-same.tar.gz storage storage.sql && rm storage.sql)
printf '\n%-34s %10s %10s %8s\n' "stage ($RUNS runs, medians)" "ours (s)" "base (s)" "ratio"
for k in backup verify restore cleanup; do
  o=$(echo ${ours[$k]} | tr ' ' '\n' | median); b=$(echo ${base[$k]:-} | tr ' ' '\n' | median)
  if [ "$k" = cleanup ]; then
    printf '%-34s %10.2f %10s\n' "  restore cleanup, after it returned" "$o" "-"
    continue
  fi
  printf '%-34s %10.2f %10.2f %7.2fx\n' "$k" "$o" "$b" "$(echo "$b / $o" | bc -l)"
done
# Every run, in order, so the spread shows beside the medians.
for k in backup verify restore; do
  printf '  %-8s runs: ours %s| base %s\n' "$k" "$(printf '%.2f ' ${ours[$k]})" "$(printf '%.2f ' ${base[$k]})"
done
ratio() { echo "$(stat -c %s "$1") / $(stat -c %s "$2")" | bc -l; }
printf '%-34s %10d %10d %7.3fx\n' "archive bytes vs tar -czf, same content" "$(stat -c %s "$archive")" "$(stat -c %s /tmp/vulcan-bench-same.tar.gz)" "$(ratio "$archive" /tmp/vulcan-bench-same.tar.gz)"
printf '%-34s %10d %10d %7.3fx\n' "  (baseline's storage-only tar.gz)" "$(stat -c %s "$archive")" "$(stat -c %s /tmp/vulcan-bench-base.tar.gz)" "$(ratio "$archive" /tmp/vulcan-bench-base.tar.gz)"
echo "bin/worker peak RSS over all of the above (the binary that also holds the embedded server, not running it): $(grep VmHWM /proc/$wpid/status | awk '{print $2, $3}')"
echo "data: $(du -sh "$data/storage" | cut -f1) in $(find "$data/storage" -type f | wc -l) files; database rows=$ROWS; $(nproc) cores"

# Second backups copy the members of unchanged files from the previous one
# (issue 19). The worker's own CPU seconds (user + sys, /proc/<pid>/stat;
# pg_dump is a child and counted apart) around each backup; each round starts
# with a full read (--full), then an unchanged tree, then 5 % of the files
# changed by a byte (put back after the round). The previous archive is not
# warmed: it was written around the page cache, as a nightly one is.
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.2f %.2f\n", ($14+$15)/t, ($16+$17)/t}' "/proc/$1/stat"; }
# timed PID CMD...: "wall worker-cpu children-cpu" of CMD, for worker PID.
timed() {
  local pid=$1 a b w; shift
  read -r a ac < <(cpu "$pid"); w=$(secs "$@"); read -r b bc < <(cpu "$pid")
  echo "$w $(echo "$b - $a" | bc) $(echo "$bc - $ac" | bc)"
}
declare -A inc
changed=$(find "$data/storage" -type f | sort | awk 'NR % 20 == 0')
incround() { # PID LABEL STARTER-ENV...: one round of full, unchanged, 5 % changed
  local pid=$1 label=$2 w c k; shift 2
  for k in full second changed; do
    [ "$k" = changed ] && for f in $changed; do printf x >> "$f"; done
    warm "$data/storage"
    case $k in full) read -r w c kc < <(timed "$pid" env "$@" bin/starter backup --full) ;; *) read -r w c kc < <(timed "$pid" env "$@" bin/starter backup) ;; esac
    inc[$label-$k-wall]+="$w "; inc[$label-$k-cpu]+="$c "; inc[$label-$k-child]+="$kc "
  done
  for f in $changed; do truncate -s -1 "$f"; done
}
for i in $(seq 1 "$RUNS"); do
  incround "$wpid" db
  rm -f "$data"/backups/vulcan_backup_* "$data"/backups/database/vulcan_db_*
done
kill $wpid; wait $wpid 2>/dev/null || true
rm -rf "$data"/baseline-restore-*

# Files only, on a worker of its own, and restic beside it on the same tree.
fdir=$PWD/bench-data/inc-backups
rm -rf "$fdir"
fenv=(VULCAN_ROOT="$data" DATABASE_URL= VULCAN_BACKUP_DIR="$fdir" VULCAN_TASK_QUEUE=bench-inc)
(cd "$data" && exec env "${fenv[@]}" "$OLDPWD/bin/worker" --no-schedule >"$data/worker-inc.log" 2>&1) &
fpid=$!; pids+=($fpid)
wait_log "$data/worker-inc.log" "worker running"
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$PWD/bench-data/restic-repo
scripts/debian.sh restic restic >/dev/null
for i in $(seq 1 "$RUNS"); do
  incround "$fpid" files "${fenv[@]}"
  rm -rf "$fdir"
  rm -rf "$RESTIC_REPOSITORY"; restic init -q >/dev/null
  for k in full second; do
    warm "$data/storage"
    r=$( { /usr/bin/time -f '%e %U %S' restic backup -q "$data/storage" >/dev/null; } 2>&1 | tail -1)
    inc[restic-$k-wall]+="$(echo "$r" | awk '{print $1}') "; inc[restic-$k-cpu]+="$(echo "$r" | awk '{print $2 + $3}') "
  done
done
rm -rf "$RESTIC_REPOSITORY"
kill $fpid; wait $fpid 2>/dev/null || true
med() { echo ${inc[$1]} | tr ' ' '\n' | median; }
printf '\n%-40s %9s %9s %12s %9s %9s\n' "incremental ($RUNS rounds, medians)" "wall (s)" "vs full" "worker CPU" "vs full" "pg_dump"
for label in files db restic; do
  for k in full second changed; do
    [ -n "${inc[$label-$k-wall]:-}" ] || continue
    w=$(med $label-$k-wall); c=$(med $label-$k-cpu); fw=$(med $label-full-wall); fc=$(med $label-full-cpu)
    ch=$( [ $label = db ] && med $label-$k-child || echo - )
    printf '%-40s %9.2f %8.2fx %12.2f %8.2fx %9s\n' "  $label: $k" "$w" "$(echo "$fw / $w" | bc -l)" "$c" "$(echo "$c / $fc" | bc -l)" "$ch"
  done
done
echo "  (vs full: wall as a speed-up, full / this; CPU as a share, this / full. restic's CPU is the whole process's.)"
for label in files db restic; do for k in full second changed; do
  [ -n "${inc[$label-$k-wall]:-}" ] && printf '  %-16s runs: wall %s| cpu %s\n' "$label-$k" "$(printf '%.2f ' ${inc[$label-$k-wall]})" "$(printf '%.2f ' ${inc[$label-$k-cpu]})"
done; done

# Worker memory against the data size: a fresh worker per tree, one backup,
# built as the production image builds it (without the embedded server).
echo
go build -tags nodevserver -o bench-data/worker-nodevserver ./worker
# Each tree also holds 20,000 small files: the member table, and the groups
# of small files read ahead, grow with the number of files, not their bytes.
for mb in ${RSS_MB:-512 2048}; do
  rdata=$PWD/bench-data/rss$mb-f20000
  benchdata "$rdata" "$mb" 20000
  rm -rf "$rdata/backups"
  (cd "$rdata" && VULCAN_ROOT=$rdata VULCAN_TASK_QUEUE=bench-rss$mb exec "$OLDPWD/bench-data/worker-nodevserver" --no-schedule >"$rdata/worker.log" 2>&1) &
  rpid=$!; pids+=($rpid)
  wait_log "$rdata/worker.log" "worker running"
  (cd "$rdata" && VULCAN_ROOT=$rdata VULCAN_TASK_QUEUE=bench-rss$mb "$OLDPWD/bin/starter" backup >/dev/null)
  echo "production worker (-tags nodevserver) peak RSS, one backup of $(du -sh "$rdata/storage" | cut -f1) in $(find "$rdata/storage" -type f | wc -l) files + database: $(grep VmHWM /proc/$rpid/status | awk '{print $2, $3}')"
  # The second backup copies the first's members: its member table and
  # the previous one's are held at once.
  (cd "$rdata" && VULCAN_ROOT=$rdata VULCAN_TASK_QUEUE=bench-rss$mb "$OLDPWD/bin/starter" backup >/dev/null)
  echo "  the same worker after a second backup copying the first's members: $(grep VmHWM /proc/$rpid/status | awk '{print $2, $3}')"
  kill $rpid; wait $rpid 2>/dev/null || true
  rm -rf "$rdata/backups"
done

# An empty tree and no database, through the embedded server: latency.
edata=$PWD/bench-data/empty
rm -rf "$edata"; mkdir -p "$edata/storage"
(cd "$edata" && VULCAN_ROOT=$edata DATABASE_URL= VULCAN_TASK_QUEUE=bench-empty exec "$OLDPWD/bin/worker" --no-schedule >"$edata/worker.log" 2>&1) &
pids+=($!)
wait_log "$edata/worker.log" "worker running"
lat=""
for _ in $(seq 1 11); do lat+="$(cd "$edata" && VULCAN_ROOT=$edata DATABASE_URL= VULCAN_TASK_QUEUE=bench-empty secs "$OLDPWD/bin/starter" backup) "; done
echo "empty tree, no database, 11 backups: p50 $(echo $lat | tr ' ' '\n' | median) s (all: $lat)"
# Off-site copies against restic, to the same versitygw.
scripts/bench-offsite.sh
# A restore drill beside a busy application, at the drill worker's priority
# and reniced to the worker's.
scripts/bench-drill.sh
# A first backup against the last commit before the member table, in turns.
scripts/bench-ab.sh
echo
go test -run '^$' -bench . -benchmem ./internal/archive ./internal/manifest
