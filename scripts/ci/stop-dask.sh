#!/usr/bin/env bash
# Stop the Dask scheduler and workers that setup-dask.sh started (their process group only).
set -uo pipefail
STATE=${1:?usage: stop-dask.sh STATE_DIR (from the teardown line setup-dask.sh printed)}
PIDFILE="$STATE/dask.pid"
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
kill -TERM -- "-$PID" 2>/dev/null || true
for _ in $(seq 1 40); do
  kill -0 -- "-$PID" 2>/dev/null || break
  sleep 0.25
done
kill -KILL -- "-$PID" 2>/dev/null || true
rm -f "$PIDFILE"; rm -rf "$STATE"
echo "stop-dask: stopped the Dask cluster (process group $PID)" >&2
