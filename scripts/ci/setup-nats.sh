#!/usr/bin/env bash
# The NATS broker (with JetStream) for the event-bus tests (plugins/flowdapt-nats). Uses the one on
# 127.0.0.1:4222 when it answers with JetStream; else starts `nats-server -js` there (or on a free
# port when 4222 is taken by something else) and prints a `teardown:` line that stops it.
# Prints `export FLOWDAPT_TEST_NATS_URL=...` and `export FLOWDAPT_TEST_NATS_PREFIX=...` (unique per
# run: every stream the tests make starts with it, so concurrent runs never see each other's events;
# the teardown deletes them).
# Standalone: eval "$(bash scripts/ci/setup-nats.sh | grep ^export)"; later the teardown line's command
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
HOST=127.0.0.1
PORT=${FLOWDAPT_NATS_PORT:-4222}
if ! "$PY" -c "import nats" 2>/dev/null; then
  echo "setup-nats: nats-py is not installed (uv sync --all-packages); skipping (the NATS tests will skip)" >&2
  exit 0
fi

# jetstream URL: 0 when the broker at URL answers with JetStream enabled, 2 without it, 1 when nothing answers.
jetstream() {
  "$PY" - "$1" <<'PYEOF'
import asyncio, sys
import nats, nats.errors, nats.js.errors

async def quiet(exc):
    pass

async def main(url):
    try:
        nc = await asyncio.wait_for(nats.connect(url, allow_reconnect=False, connect_timeout=2, error_cb=quiet), 3)
    except Exception:
        return 1
    try:
        await nc.jetstream(timeout=2).account_info()
        return 0
    except Exception:
        return 2
    finally:
        await nc.close()

sys.exit(asyncio.run(main(sys.argv[1])))
PYEOF
}

URL="nats://$HOST:$PORT"
STATE=""
set +e; jetstream "$URL"; status=$?; set -e
if [ "$status" != 0 ]; then
  SERVER=$(command -v nats-server || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || true)
  if [ -z "$SERVER" ]; then
    echo "setup-nats: no NATS with JetStream at $URL and nats-server is not installed; the NATS tests will skip" >&2
    exit 0
  fi
  if [ "$status" = 2 ]; then
    # Something answers on the port without JetStream: leave it alone, use a port of our own.
    PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('$HOST', 0)); print(s.getsockname()[1])")
    URL="nats://$HOST:$PORT"
    echo "setup-nats: the broker on $HOST:${FLOWDAPT_NATS_PORT:-4222} has no JetStream; starting one on $PORT" >&2
  fi
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/flowdapt-ci-nats.XXXXXX")
  setsid "$SERVER" -js -a "$HOST" -p "$PORT" -sd "$STATE/store" >"$STATE/nats-server.log" 2>&1 </dev/null &
  echo $! > "$STATE/nats.pid"
  for _ in $(seq 1 100); do
    set +e; jetstream "$URL"; status=$?; set -e
    [ "$status" = 0 ] && break
    sleep 0.1
  done
  if [ "$status" != 0 ]; then
    echo "setup-nats: nats-server did not start on $URL:" >&2
    tail -20 "$STATE/nats-server.log" >&2 || true
    bash scripts/ci/stop-nats.sh "$STATE" "$URL" "" >&2 || true
    exit 1
  fi
  echo "setup-nats: started nats-server -js on $URL (store $STATE/store)" >&2
else
  echo "setup-nats: NATS with JetStream answers at $URL" >&2
fi
PREFIX="fdci_$(date +%s)_$$"
echo "export FLOWDAPT_TEST_NATS_URL=$URL"
echo "export FLOWDAPT_TEST_NATS_PREFIX=$PREFIX"
echo "teardown: bash scripts/ci/stop-nats.sh '${STATE}' $URL $PREFIX"
