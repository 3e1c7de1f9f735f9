#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (plugins/flowdapt-dashboard/tests), driven by
# Playwright through executable_path=/usr/bin/chromium: Playwright's own browser download cannot
# reach its servers here. stdout carries only `export ...` lines; progress goes to stderr.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null | head -n1)" >&2
else
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup-chromium: no $CHROMIUM and no apt-get; the dashboard browser tests will be skipped" >&2
        exit 0
    fi
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        SUDO="sudo"
    fi
    echo "installing Debian's chromium with apt-get..." >&2
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >&2
    echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null | head -n1)" >&2
fi
echo "export FLOWDAPT_CHROMIUM=$CHROMIUM"
