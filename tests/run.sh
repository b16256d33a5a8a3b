#!/usr/bin/env bash
# The test command: installs what the tests need (Python extras, Debian Chromium) and runs every tier.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
python -m pip install -q "torch==2.13.0" -e ".[smollm2,test]"
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
export AIGC_TEST_OUT="${AIGC_TEST_OUT:-$PWD/test-output}"
mkdir -p "$AIGC_TEST_OUT"
python -m pytest -ra "$@"
