#!/usr/bin/env bash
# Side virtualenv with the original Flowdapt clients (flowctl 0.1.4, flowdapt-sdk 0.1.8) from PyPI.
# They pin old dependencies, so they live apart from the workspace venv. tests/server/test_compat.py
# finds it through FLOWDAPT_COMPAT_VENV (default: <repo>/.compat-venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FLOWDAPT_COMPAT_VENV:-$ROOT/.compat-venv}"
if [ -x "$VENV/bin/flowctl" ] && "$VENV/bin/python" -c "import flowdapt_sdk, flowctl" 2>/dev/null; then
    echo "compat venv ready: $VENV"
    exit 0
fi
uv venv --quiet --python 3.11 "$VENV"
uv pip install --quiet --python "$VENV/bin/python" "flowctl==0.1.4" "flowdapt-sdk==0.1.8"
"$VENV/bin/python" -c "import flowdapt_sdk, flowctl; print('compat venv ready:', '$VENV')"
