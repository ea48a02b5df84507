#!/usr/bin/env bash
# Off-site copies against restic, both to the same versitygw on this machine,
# files only (restic does not dump the database), several runs, medians and
# ratios: first copy, second copy of the unchanged tree (wall time and bytes
# the bucket holds), and getting the backup back from the bucket.
#   BENCH_MB=600 RUNS=3 scripts/bench-offsite.sh
# Ours: the copy is the OffsiteCopyWorkflow the backup starts, timed from the
# backup's commit (its manifest) to the copy's record (backups/offsite/
# last.json); the fetch is `starter restore <id> --dry-run` of a backup gone
# from the disk: download, decrypt, rebuild the archive, check it whole and
# check every file in it. restic's: `restic backup`, and `restic restore`.
set -euo pipefail
trap 'echo "bench-offsite: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
MB=${BENCH_MB:-600}; RUNS=${RUNS:-3}
. scripts/shared.sh
shared=${VULCAN_SHARED_DIR:?reference data not found: set VULCAN_SHARED_DIR}
make -s build tools
restic=$(scripts/debian.sh restic restic)
age_keygen=$(scripts/debian.sh age-keygen age)
base=$PWD/bench-data/offsite
data=$base/mb$MB
[ -d "$data/storage" ] || { mkdir -p "$data"; go run "$shared/bench/mkstorage.go" -out "$data" -mb "$MB" >/dev/null; }
mkdir -p "$base/keys"
[ -f "$base/keys/identity.txt" ] || "$age_keygen" -o "$base/keys/identity.txt" 2>/dev/null
"$age_keygen" -y "$base/keys/identity.txt" > "$base/keys/recipients.txt"

port=27950 access=bench secret=bench-secret-$$
export AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret
pids=()
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
wait_log() { for _ in $(seq 1 240); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "not ready: $1" >&2; cat "$1" >&2; exit 1; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
warm() { find "$@" -type f -print0 | xargs -0 cat >/dev/null; }
mkbucket() { # an empty PUT on the bucket, signed
  printf 'user = "%s:%s"\n' "$access" "$secret" | curl -fsS -K - -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "http://127.0.0.1:$port/$1" >/dev/null
}
# waitcopy ID: seconds from the backup's commit to its copy's record.
waitcopy() {
  for _ in $(seq 1 3600); do
    if [ -f "$bdir/offsite/last.json" ] && grep -q "\"id\": \"$1\"" "$bdir/offsite/last.json"; then
      echo "$(stat -c %.9Y "$bdir/offsite/last.json") - $(stat -c %.9Y "$bdir/vulcan_backup_$1.json")" | bc; return 0
    fi
    sleep 0.1
  done
  echo "the copy of $1 did not complete" >&2; cat "$data/worker.log" >&2; exit 1
}
latest() { bin/starter list --json | python3 -c "import json,sys; print(json.load(sys.stdin)['backups'][0]['id'])"; }

declare -A r
for i in $(seq 1 "$RUNS"); do
  rm -rf "$base/s3" "$base/state" "$base/backups" "$base/restic-restore" "$data/.vulcan"
  mkdir -p "$base/s3"
  ROOT_ACCESS_KEY_ID=$access ROOT_SECRET_ACCESS_KEY=$secret .tools/versitygw --port "127.0.0.1:$port" --quiet posix "$base/s3" >"$base/s3.log" 2>&1 &
  vpid=$!; pids+=($vpid)
  for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.1; done
  mkbucket vulcan-bench; mkbucket restic-bench

  export VULCAN_ROOT=$data DATABASE_URL= TEMPORAL_ADDRESS=127.0.0.1:27333 VULCAN_UI_PORT=0 VULCAN_API_ADDR= VULCAN_TASK_QUEUE=bench-offsite \
    VULCAN_BACKUP_DIR=$base/backups VULCAN_OFFSITE_URL="s3://vulcan-bench/host?endpoint=http://127.0.0.1:$port&style=path" \
    VULCAN_OFFSITE_RECIPIENTS_FILE=$base/keys/recipients.txt VULCAN_OFFSITE_IDENTITY_FILE=$base/keys/identity.txt VULCAN_RETENTION_DAYS=7
  bdir=$base/backups
  (cd "$data" && exec "$OLDPWD/bin/worker" --dev --no-schedule --state-dir "$base/state" >"$data/worker.log" 2>&1) &
  wpid=$!; pids+=($wpid)
  wait_log "$data/worker.log" "worker running"

  for k in first second; do
    warm "$data/storage"
    bin/starter backup >/dev/null 2>&1
    id=$(latest)
    r[ours-$k]+="$(waitcopy "$id") "
    r[ours-$k-bytes]+="$(du -sb "$base/s3/vulcan-bench" | cut -f1) "
  done
  # The disk is gone: the backup comes back from the bucket and is checked.
  rm -f "$bdir/vulcan_backup_$id".* "$bdir/database/vulcan_db_$id.sql"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  r[ours-fetch]+="$(secs bin/starter restore "$id" --dry-run) "
  # The same dry run of the backup now here: the check alone, without the download.
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  r[ours-check]+="$(secs bin/starter restore "$id" --dry-run) "
  kill $wpid; wait $wpid 2>/dev/null || true

  export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="s3:http://127.0.0.1:$port/restic-bench"
  "$restic" init -q >/dev/null
  for k in first second; do
    warm "$data/storage"
    r[restic-$k]+="$(secs "$restic" backup -q "$data/storage") "
    r[restic-$k-bytes]+="$(du -sb "$base/s3/restic-bench" | cut -f1) "
  done
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  r[restic-fetch]+="$(secs "$restic" restore latest -q --target "$base/restic-restore") "
  rm -rf "$base/restic-restore"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  r[restic-verify]+="$(secs "$restic" restore latest -q --verify --target "$base/restic-restore") "
  rm -rf "$base/restic-restore"
  kill $vpid; wait $vpid 2>/dev/null || true
  unset RESTIC_PASSWORD RESTIC_REPOSITORY
done
rm -rf "$base/s3" "$base/restic-restore" "$base/backups" "$base/state"

med() { echo ${r[$1]} | tr ' ' '\n' | median; }
printf '\noff-site, %s of files, to versitygw on this machine (%s rounds, medians)\n' "$(du -sh "$data/storage" | cut -f1)" "$RUNS"
printf '%-34s %10s %10s %10s\n' "" "ours (s)" "restic (s)" "restic/ours"
for k in first second fetch; do
  o=$(med ours-$k); x=$(med restic-$k)
  printf '%-34s %10.2f %10.2f %9.2fx\n' "  $k" "$o" "$x" "$(echo "$x / $o" | bc -l)"
done
o=$(med ours-fetch); x=$(med restic-verify)
printf '%-34s %10.2f %10.2f %9.2fx\n' "  fetch, restic with --verify" "$o" "$x" "$(echo "$x / $o" | bc -l)"
printf '%-34s %10.2f\n' "  of ours, the dry run's check alone" "$(med ours-check)"
printf '%-34s %10s %10s %10s\n' "" "ours (MiB)" "restic (MiB)" "restic/ours"
for k in first second; do
  o=$(med ours-$k-bytes); x=$(med restic-$k-bytes)
  printf '%-34s %10.1f %10.1f %9.2fx\n' "  bucket after the $k copy" "$(echo "$o / 1048576" | bc -l)" "$(echo "$x / 1048576" | bc -l)" "$(echo "$x / $o" | bc -l)"
done
for k in first second fetch; do printf '  %-14s runs: ours %s| restic %s\n' "$k" "$(printf '%.2f ' ${r[ours-$k]})" "$(printf '%.2f ' ${r[restic-$k]})"; done
printf '  %-14s runs: ours (check alone) %s| restic --verify %s\n' "fetch" "$(printf '%.2f ' ${r[ours-check]})" "$(printf '%.2f ' ${r[restic-verify]})"
echo "  (first: the first copy of the tree; second: the next night's, tree unchanged; fetch: the backup back from the bucket, checked (ours: starter restore --dry-run of a backup gone from the disk; restic: restore)"
