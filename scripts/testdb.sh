#!/usr/bin/env bash
# Starts the local PostgreSQL 15 cluster (installing it from Debian's packages
# if missing) and creates the roles the integration tests use:
#   vulcan_test      LOGIN CREATEDB  (rename swap)
#   vulcan_nocreate  LOGIN, no CREATEDB (in-place fallback); tests create its databases
# Prints the admin URL the tests read from VULCAN_TEST_DATABASE_URL.
set -euo pipefail

as_postgres() { (cd / && runuser -u postgres -- "$@"); }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "testdb: installing PostgreSQL from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main"' | grep -q .; then
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432 >&2

as_postgres psql -q -v ON_ERROR_STOP=1 <<'SQL' >&2
SET client_min_messages = warning;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vulcan_test') THEN
    CREATE ROLE vulcan_test LOGIN CREATEDB PASSWORD 'vulcan-test-secret';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vulcan_nocreate') THEN
    CREATE ROLE vulcan_nocreate LOGIN NOCREATEDB PASSWORD 'vulcan-nocreate-secret';
  END IF;
END $$;
-- lets vulcan_test create databases owned by vulcan_nocreate, one per test
GRANT vulcan_nocreate TO vulcan_test;
SQL
as_postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'vulcan_test'" | grep -q 1 ||
  as_postgres createdb -O vulcan_test vulcan_test >&2
echo "postgres://vulcan_test:vulcan-test-secret@127.0.0.1:5432/vulcan_test?sslmode=disable"
