#!/usr/bin/env bash
# Start a separate Ray head (`ray start --head`) for the tests that connect to a cluster by address.
# Prints `export FLOWDAPT_TEST_RAY_ADDRESS=...` and a `teardown:` line (scripts/test.sh reads both).
# Standalone: eval "$(bash scripts/ci/setup-ray.sh | grep ^export)"; later the teardown line's command
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
RAY=.venv/bin/ray
if ! "$PY" -c "import ray" 2>/dev/null; then
  echo "setup-ray: ray is not installed; skipping (tests that need FLOWDAPT_TEST_RAY_ADDRESS will skip)" >&2
  exit 0
fi
# A state dir of its own, so concurrent test runs on one machine never stop each other's cluster.
STATE=$(mktemp -d "${TMPDIR:-/tmp}/flowdapt-ci-ray.XXXXXX")
# Free ports for everything the head listens on, so it never meets a local instance's defaults.
read -r GCS CLIENT DASH AGENT AGENT_GRPC METRICS RTENV NODE OBJ < <("$PY" - <<'PYEOF'
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PYEOF
)
LOG="$STATE/ray-head.log"
# Token authentication with a token of this run's own, in the state dir: the head and every driver
# (tests, servers, workers) read it through RAY_AUTH_TOKEN_PATH, so nothing depends on ~/.ray.
TOKEN="$STATE/auth_token"
"$PY" -c "import secrets; print(secrets.token_hex(32), end='')" > "$TOKEN"
chmod 600 "$TOKEN"
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN"
# setsid: its own process group, so stop-ray.sh stops exactly these processes (never `ray stop`,
# which would stop every Ray instance on the machine).
setsid "$RAY" start --head --block --disable-usage-stats \
  --node-ip-address=127.0.0.1 --port="$GCS" --ray-client-server-port="$CLIENT" \
  --include-dashboard=false --dashboard-port="$DASH" --dashboard-agent-listen-port="$AGENT" \
  --dashboard-agent-grpc-port="$AGENT_GRPC" --metrics-export-port="$METRICS" \
  --runtime-env-agent-port="$RTENV" --node-manager-port="$NODE" --object-manager-port="$OBJ" \
  --num-cpus=2 --object-store-memory=500000000 \
  </dev/null >"$LOG" 2>&1 &
PID=$!
echo "$PID" > "$STATE/ray-head.pid"
for _ in $(seq 1 240); do
  if grep -q "Ray runtime started" "$LOG" 2>/dev/null; then break; fi
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "setup-ray: ray start --head exited early:" >&2; tail -30 "$LOG" >&2; exit 1
  fi
  sleep 0.5
done
if ! grep -q "Ray runtime started" "$LOG"; then
  echo "setup-ray: the Ray head did not start within 120 s:" >&2; tail -30 "$LOG" >&2
  bash scripts/ci/stop-ray.sh "$STATE" >&2 || true
  exit 1
fi
echo "setup-ray: Ray head at 127.0.0.1:$GCS (pid $PID, log $LOG)" >&2
echo "export FLOWDAPT_TEST_RAY_ADDRESS=127.0.0.1:$GCS"
# Drivers send the token only in token mode, and read it from this run's state dir.
echo "export RAY_AUTH_MODE=token"
echo "export RAY_AUTH_TOKEN_PATH=$TOKEN"
echo "teardown: bash scripts/ci/stop-ray.sh $STATE"
