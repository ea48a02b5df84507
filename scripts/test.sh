#!/usr/bin/env bash
# The test suite behind `make test` and CI: formatting, vet, unit tests with
# the race detector, then the suites that need PostgreSQL (started here) and
# the embedded Temporal server. Fails loudly on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/shared.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
# The build variants: the production worker without the embedded server, the
# fault-injection worker of the crash tests.
go vet -tags nodevserver ./worker
go vet -tags faultinject ./internal/faultpoint ./activities ./internal/pgdump ./internal/restore
echo "== staticcheck"
.tools/staticcheck ./...
echo "== gosec (every finding fixed or justified inline: #nosec <rule> -- why)"
.tools/gosec -quiet ./...
[ "${1:-}" = lint ] && exit 0

echo "== PostgreSQL"
VULCAN_TEST_DATABASE_URL=$(scripts/testdb.sh)
export VULCAN_TEST_DATABASE_URL

# The off-site tests start versitygw (.tools, built by make tools) and run the
# manual recovery path with the real age CLI.
scripts/debian.sh age age >/dev/null
[ -x .tools/versitygw ] || { echo "test: .tools/versitygw is missing; run make tools" >&2; exit 1; }

# Packages without the embedded server run with the race detector.
race_pkgs=$(go list ./... | grep -v -e /e2e -e /internal/devserver -e /worker$ -e /control$)
echo "== unit and integration tests (-race)"
go test -race -count=1 $race_pkgs

echo "== fuzzing, bounded (manifest parser and member table, gzip member reader, archive extraction, off-site index and refs)"
# Bounded by a count of runs, not a duration: with -fuzztime <duration>, Go
# 1.26's fuzz coordinator can report "context deadline exceeded" as a failure
# when the time runs out (go.dev/issue/75804, fixed in Go 1.27). Each count is
# about 15 s of fuzzing here; -timeout still fails a run that hangs.
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "$2" -fuzzminimizetime 5s -timeout 5m "$3"; }
fuzz FuzzDecode 150000x ./internal/manifest
fuzz FuzzMembers 150000x ./internal/manifest
fuzz FuzzMemberReader 20000x ./internal/archive
fuzz FuzzExtract 3000x ./internal/archive
fuzz FuzzDecodeRestore 50000x ./api
fuzz FuzzDecodeIndex 50000x ./internal/offsite
fuzz FuzzOpenRefs 20000x ./internal/offsite
fuzz FuzzResolveForRestore 20000x ./internal/store

echo "== embedded Temporal server (ports, fatal errors)"
go test -count=1 ./internal/devserver ./worker ./control

echo "== headless Chromium (browser tests)"
scripts/browser.sh

echo "== end-to-end tests (embedded Temporal server, real binaries)"
go test -count=1 -timeout 20m ./e2e/...
