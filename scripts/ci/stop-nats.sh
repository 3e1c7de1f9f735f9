#!/usr/bin/env bash
# Undo setup-nats.sh: delete the streams of this run's prefix, and stop the nats-server it started
# (STATE_DIR empty: it used the broker that was already running, which keeps running).
set -uo pipefail
cd "$(dirname "$0")/../.."
STATE=${1-}
URL=${2:?usage: stop-nats.sh STATE_DIR URL PREFIX (from the teardown line setup-nats.sh printed)}
PREFIX=${3-}
if [ -n "$PREFIX" ]; then
  .venv/bin/python - "$URL" "$PREFIX" <<'PYEOF' >&2 || true
import asyncio, sys
from flowdapt_nats.bus import delete_streams
deleted = asyncio.run(delete_streams(sys.argv[1], sys.argv[2] + "*"))
print(f"stop-nats: deleted {len(deleted)} streams of prefix {sys.argv[2]}")
PYEOF
fi
if [ -n "$STATE" ] && [ -f "$STATE/nats.pid" ]; then
  PID=$(cat "$STATE/nats.pid")
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$PID" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$PID" 2>/dev/null || true
  rm -rf "$STATE"
  echo "stop-nats: stopped nats-server (pid $PID)" >&2
fi
