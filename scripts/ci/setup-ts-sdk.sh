#!/usr/bin/env bash
# The original's TypeScript SDK, @emergentmethods/flowdapt-ts-sdk 1.0.8, from the npm registry, in
# a scratch folder for tests/server/test_ts_sdk.py (FLOWDAPT_TS_SDK_DIR overrides the folder).
# Without node >= 18 and npm it prints why and exports nothing: that test then skips.
# stdout carries only `export ...` lines for scripts/test.sh; progress goes to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${FLOWDAPT_TS_SDK_DIR:-$ROOT/.ts-sdk}"
VERSION=1.0.8
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup-ts-sdk: node or npm not found; tests/server/test_ts_sdk.py will be skipped" >&2
    exit 0
fi
MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$MAJOR" -lt 18 ]; then
    echo "setup-ts-sdk: node $(node --version) has no fetch (the SDK needs node >= 18); tests/server/test_ts_sdk.py will be skipped" >&2
    exit 0
fi
PKG="$DIR/node_modules/@emergentmethods/flowdapt-ts-sdk/package.json"
if ! { [ -f "$PKG" ] && node -e "process.exit(require('$PKG').version === '$VERSION' ? 0 : 1)"; }; then
    mkdir -p "$DIR"
    [ -f "$DIR/package.json" ] || echo '{"name": "flowdapt-ts-sdk-ci", "private": true}' > "$DIR/package.json"
    echo "installing @emergentmethods/flowdapt-ts-sdk@$VERSION into $DIR..." >&2
    (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error "@emergentmethods/flowdapt-ts-sdk@$VERSION") >&2
fi
echo "TypeScript SDK $VERSION ready in $DIR (node $(node --version))" >&2
echo "export FLOWDAPT_TS_SDK_DIR=$DIR"
