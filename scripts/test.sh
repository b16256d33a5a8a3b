#!/usr/bin/env bash
# Command 2: install what the tests need (Python extras, Debian Chromium) and run every tier:
# the JupyterLab extension's TypeScript unit tests, then pytest (unit, kernel, server, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
(cd labextension && jlpm test)   # TypeScript unit tests of the JupyterLab extension
export AIGC_TEST_OUT="${AIGC_TEST_OUT:-$PWD/test-output}"
mkdir -p "$AIGC_TEST_OUT"
python -m pytest -ra "$@"
