#!/usr/bin/env bash
# Command 1: install jupyter-aigc with the embedded default model and run the main job on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python -m jupyter_aigc demo "$@"
