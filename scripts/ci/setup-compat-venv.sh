#!/usr/bin/env bash
# Side virtualenv with the original Flowdapt clients (flowctl 0.1.4, flowdapt-sdk 0.1.8) from PyPI,
# for tests/server/test_compat.py. They pin old dependencies, so they live apart from the workspace
# venv. Prints `export FLOWDAPT_COMPAT_VENV=...` for scripts/test.sh; messages go to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FLOWDAPT_COMPAT_VENV:-$ROOT/.compat-venv}"
if ! { [ -x "$VENV/bin/flowctl" ] && "$VENV/bin/python" -c "import flowdapt_sdk, flowctl" 2>/dev/null; }; then
    uv venv --quiet --python 3.11 "$VENV" >&2
    uv pip install --quiet --python "$VENV/bin/python" "flowctl==0.1.4" "flowdapt-sdk==0.1.8" >&2
    "$VENV/bin/python" -c "import flowdapt_sdk, flowctl" >&2
fi
echo "compat clients ready in $VENV" >&2
echo "export FLOWDAPT_COMPAT_VENV=$VENV"
