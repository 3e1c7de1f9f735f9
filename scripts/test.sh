#!/usr/bin/env bash
# Run the whole test suite the way CI does: prepare what the tests need, run pytest, clean up.
#   pip install uv && uv sync --all-packages --frozen --compile-bytecode && bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup=()
on_exit() {
  local i
  for ((i=${#cleanup[@]}-1; i>=0; i--)); do eval "${cleanup[$i]}" || true; done
}
trap on_exit EXIT

# The suite never depends on the caller's home directory (~/.ray, ~/.flowdapt, caches, browser
# profiles): everything runs with HOME pointing at a fresh directory, removed at the end. Package
# caches stay where they are, so nothing is downloaded again.
if [ -z "${FLOWDAPT_TEST_KEEP_HOME:-}" ]; then
  export UV_CACHE_DIR="${UV_CACHE_DIR:-$(uv cache dir 2>/dev/null || echo "$HOME/.cache/uv")}"
  export npm_config_cache="${npm_config_cache:-$HOME/.npm}"
  export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
  TEST_HOME=$(mktemp -d "${TMPDIR:-/tmp}/flowdapt-test-home.XXXXXX")
  cleanup+=("rm -rf '$TEST_HOME'")
  export HOME="$TEST_HOME"
  echo "== HOME=$HOME (fresh; uv cache $UV_CACHE_DIR)" >&2
fi

# Each scripts/ci/setup-*.sh prepares one thing (a side venv, a cluster) and may print
# `export NAME=value` lines for the tests and a `teardown: COMMAND` line for the end.
for setup in scripts/ci/setup-*.sh; do
  [ -e "$setup" ] || continue
  echo "== $setup" >&2
  out=$(bash "$setup")
  while IFS= read -r line; do
    case "$line" in
      export\ *) eval "$line" ;;
      teardown:\ *) cleanup+=("${line#teardown: }") ;;
    esac
  done <<< "$out"
done

# The workspace's own packages are editable installs, which `uv sync --compile-bytecode` leaves
# alone; with PYTHONDONTWRITEBYTECODE=1 (set on these machines) every server and CLI process the
# tests start would compile them again. Compile them once (Python checks each file's mtime).
uv run --frozen --all-packages python -m compileall -q core/src plugins/*/src >/dev/null || true

uv run --frozen --all-packages pytest "$@"
