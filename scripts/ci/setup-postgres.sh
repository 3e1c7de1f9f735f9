#!/usr/bin/env bash
# A fresh PostgreSQL database for this test run on the server already running here
# (127.0.0.1:5432, trust auth, user postgres; override with FLOWDAPT_TEST_POSTGRES_ADMIN_DSN).
# Prints `export FLOWDAPT_TEST_POSTGRES_DSN=...` and a `teardown:` line that drops the database;
# progress goes to stderr. Without a reachable server it says so and exports nothing (the
# PostgreSQL tests then create their own database, or skip naming the address).
# Standalone: eval "$(bash scripts/ci/setup-postgres.sh | grep ^export)"
set -euo pipefail
ADMIN_DSN="${FLOWDAPT_TEST_POSTGRES_ADMIN_DSN:-postgresql://postgres@127.0.0.1:5432/postgres}"
if ! command -v psql >/dev/null 2>&1; then
  echo "setup-postgres: psql is not installed; the PostgreSQL tests create their own database" >&2
  exit 0
fi
ok=""
for _ in $(seq 1 20); do  # a server that is just starting answers within a few seconds
  if psql "$ADMIN_DSN" -XtAqc "SELECT 1" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
if [ -z "$ok" ]; then
  echo "setup-postgres: no PostgreSQL server answers at ${ADMIN_DSN%%\?*} (connect as in FLOWDAPT_TEST_POSTGRES_ADMIN_DSN)" >&2
  exit 0
fi
DB="flowdapt_test_$(date +%s)_$$_$RANDOM"
psql "$ADMIN_DSN" -XtAqc "CREATE DATABASE \"$DB\"" >&2
DSN="${ADMIN_DSN%/*}/$DB"
psql "$DSN" -XtAqc "SELECT 1" >/dev/null
echo "setup-postgres: database $DB on $(psql "$ADMIN_DSN" -XtAqc 'SHOW server_version') ready" >&2
echo "export FLOWDAPT_TEST_POSTGRES_DSN=$DSN"
echo "teardown: psql '$ADMIN_DSN' -XtAqc 'DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)'"
