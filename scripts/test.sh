#!/usr/bin/env bash
# Command 2: install what the tests need (Python extras, Debian Chromium, promptfoo from npm) and run every tier:
# the JupyterLab extension's TypeScript unit tests, then pytest (unit, kernel, server, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
(cd labextension && jlpm test)   # TypeScript unit tests of the JupyterLab extension
AIGC_PROMPTFOO="$(bash scripts/install_promptfoo.sh)"   # promptfoo itself (npm), for the parity tests
export AIGC_PROMPTFOO
CHP="${XDG_CACHE_HOME:-$HOME/.cache}/jupyter-aigc/chp"   # configurable-http-proxy (npm) for the JupyterHub tests
[ -x "$CHP/node_modules/.bin/configurable-http-proxy" ] ||
  npm install --prefix "$CHP" --no-audit --no-fund --loglevel=error configurable-http-proxy@5 >&2
export AIGC_CHP_BIN="$CHP/node_modules/.bin"
export AIGC_TEST_OUT="${AIGC_TEST_OUT:-$PWD/test-output}"
mkdir -p "$AIGC_TEST_OUT"
python -m pytest -ra "$@"
