# Sourced by test.sh and bench.sh: finds the reference data (bench/mkstorage.go,
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
