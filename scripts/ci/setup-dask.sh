#!/usr/bin/env bash
# Start a separate Dask cluster: `dask scheduler` and two `dask worker` processes, for the tests
# that connect by address. Prints `export FLOWDAPT_TEST_DASK_ADDRESS=...` and a `teardown:` line.
# Standalone: eval "$(bash scripts/ci/setup-dask.sh | grep ^export)"; later the teardown line's command
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
DASK=.venv/bin/dask
if ! "$PY" -c "import distributed" 2>/dev/null; then
  echo "setup-dask: distributed is not installed; skipping (tests that need FLOWDAPT_TEST_DASK_ADDRESS will skip)" >&2
  exit 0
fi
# A state dir of its own, so concurrent test runs on one machine never stop each other's cluster.
STATE=$(mktemp -d "${TMPDIR:-/tmp}/flowdapt-ci-dask.XXXXXX")
PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
ADDRESS="tcp://127.0.0.1:$PORT"
# One process group for the scheduler and its workers, so stop-dask.sh stops exactly these.
setsid bash -c "
  '$DASK' scheduler --host 127.0.0.1 --port $PORT --no-dashboard >'$STATE/dask-scheduler.log' 2>&1 &
  sleep 1
  for i in 1 2; do
    '$DASK' worker $ADDRESS --host 127.0.0.1 --nthreads 1 --nworkers 1 --resources CPU=1 \
      --memory-limit 2GB --no-dashboard --name ci-worker-\$i >'$STATE/dask-worker-'\$i'.log' 2>&1 &
  done
  wait
" </dev/null >/dev/null 2>&1 &
PID=$!
echo "$PID" > "$STATE/dask.pid"
if ! "$PY" - "$ADDRESS" <<'PYEOF' >&2
import sys
from distributed import Client
with Client(sys.argv[1], timeout=60) as client:
    client.wait_for_workers(2, timeout=90)
    print(f"setup-dask: scheduler {sys.argv[1]} with {len(client.scheduler_info()['workers'])} workers")
PYEOF
then
  echo "setup-dask: the Dask cluster did not start:" >&2
  tail -20 "$STATE"/dask-*.log >&2 || true
  bash scripts/ci/stop-dask.sh "$STATE" >&2 || true
  exit 1
fi
echo "export FLOWDAPT_TEST_DASK_ADDRESS=$ADDRESS"
echo "teardown: bash scripts/ci/stop-dask.sh $STATE"
