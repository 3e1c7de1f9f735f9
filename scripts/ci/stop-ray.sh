#!/usr/bin/env bash
# Stop the Ray head that setup-ray.sh started (its process group only).
set -uo pipefail
STATE=${1:?usage: stop-ray.sh STATE_DIR (from the teardown line setup-ray.sh printed)}
PIDFILE="$STATE/ray-head.pid"
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
kill -TERM -- "-$PID" 2>/dev/null || true
for _ in $(seq 1 40); do
  kill -0 -- "-$PID" 2>/dev/null || break
  sleep 0.25
done
kill -KILL -- "-$PID" 2>/dev/null || true
rm -f "$PIDFILE"; rm -rf "$STATE"
echo "stop-ray: stopped the Ray head (process group $PID)" >&2
