#!/usr/bin/env bash
# Installs promptfoo, pinned in tests/promptfoo/package.json, for the parity tests and benchmark B9: into a cache
# folder outside the repository (one per version of that file), skipped when it is there. Prints the command.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=tests/promptfoo/package.json
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/jupyter-aigc/promptfoo-$(sha256sum "$SPEC" | cut -c1-12)"
if [ ! -f "$DIR/.installed" ]; then
  rm -rf "$DIR" && mkdir -p "$DIR" && cp "$SPEC" "$DIR/package.json"
  (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error >&2)
  touch "$DIR/.installed"
fi
echo "$DIR/node_modules/.bin/promptfoo"
