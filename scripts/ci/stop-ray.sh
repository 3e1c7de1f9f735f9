#!/usr/bin/env bash
# Stop the Ray head that setup-ray.sh started (its process group only).
set -uo pipefail
STATE=${FLOWDAPT_CI_STATE:-/tmp/flowdapt-ci}
PIDFILE="$STATE/ray-head.pid"
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
kill -TERM -- "-$PID" 2>/dev/null || true
for _ in $(seq 1 40); do
  kill -0 -- "-$PID" 2>/dev/null || break
  sleep 0.25
done
kill -KILL -- "-$PID" 2>/dev/null || true
rm -f "$PIDFILE"
echo "stop-ray: stopped the Ray head (process group $PID)" >&2
