#!/usr/bin/env bash
# Run the whole test suite the way CI does: prepare what the tests need, run pytest, clean up.
#   pip install uv && uv sync --all-packages --frozen && bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup=()
on_exit() {
  local i
  for ((i=${#cleanup[@]}-1; i>=0; i--)); do eval "${cleanup[$i]}" || true; done
}
trap on_exit EXIT

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

uv run --frozen --all-packages pytest "$@"
