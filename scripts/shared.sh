# Sourced by test.sh and the bench scripts: finds the reference data (bench/mkstorage.go,
# bench/vulcan_db.sql) and exports VULCAN_SHARED_DIR. It is $VULCAN_SHARED_DIR
# if set, else ../shared beside the checkout, else the machine's /work/shared,
# so that a clone made elsewhere (under mktemp, say) finds it too. Left unset
# when none holds it: the tests that need it then say so (and fail in CI).
if [ -z "${VULCAN_SHARED_DIR:-}" ]; then
  for d in ../shared /work/shared; do
    if [ -f "$d/bench/vulcan_db.sql" ]; then
      VULCAN_SHARED_DIR=$(cd "$d" && pwd)
      export VULCAN_SHARED_DIR
      break
    fi
  done
fi

# benchdata DIR MB FILES: the benches' reference tree in DIR/storage, unless it
# is there: mkstorage's MB MiB and FILES small JSON files beside it.
benchdata() {
  [ -d "$1/storage" ] && return 0
  echo "generating $2 MiB + $3 small files in $1" >&2
  mkdir -p "$1"
  go run "${VULCAN_SHARED_DIR:?reference data not found: set VULCAN_SHARED_DIR}/bench/mkstorage.go" -out "$1" -mb "$2" >/dev/null
  python3 - "$1/storage/verification/small" "$3" <<'PY'
import os, sys, random
d, n = sys.argv[1], int(sys.argv[2]); os.makedirs(d, exist_ok=True); r = random.Random(7)
for i in range(n):
    with open(os.path.join(d, f"v-{i:05d}.json"), "w") as f:
        f.write('{"part": "p-%d", "ok": %s, "dev": %f}\n' % (i, "true" if i % 9 else "false", r.random()))
PY
}

# settle waits out a mass deletion before a timed restore: some file systems
# (ext4 without a journal, as on the bench machine) skip every inode freed in
# the last 60 s when they allocate one (see bench.sh).
settle() { sync; sleep "${BENCH_SETTLE:-65}"; }
