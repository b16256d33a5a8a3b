"""B2: model acquisition. Warm hit (second cell) ÷ first load, and cold start of the default model in a
fresh process from the converted safetensors folder ÷ loading the GGUF through transformers."""

import statistics
import subprocess
import sys
import time

from _common import report

COLD = """
import time
t0 = time.perf_counter()
import jupyter_aigc, torch, transformers
from jupyter_aigc.backends.local_text import LocalTextBackend
from jupyter_aigc.cache import ModelCache
from jupyter_aigc.models import resolve
t1 = time.perf_counter()
backend = LocalTextBackend(ModelCache(2**34))
spec = resolve("SmolLM2-135M-Instruct", {})
backend.load(spec)
t2 = time.perf_counter()
start = time.perf_counter_ns()
backend.load(spec)
warm = (time.perf_counter_ns() - start) / 1e9
print(t1 - t0, t2 - t1, warm)
"""
GGUF = """
import time
import torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
from jupyter_aigc.models import default_gguf
path = default_gguf()
t = time.perf_counter()
AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
print(time.perf_counter() - t)
"""


def run(code: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()[-3:]] if code is COLD else [float(out.split()[-1])]


def main() -> None:
    run(COLD)  # converts the GGUF once if this machine has not yet
    imports, cold, warm = [], [], []
    for _ in range(5):
        i, c, w = run(COLD)
        imports.append(i), cold.append(c), warm.append(w)
    gguf = [run(GGUF)[0] for _ in range(2)]
    report("imports (torch, transformers, jupyter_aigc) s", imports)
    cold_s = report("cold load from the converted folder s", cold)
    warm_s = report("warm hit s", warm)
    gguf_s = report("GGUF through transformers s", gguf)
    print(f"warm hit / first load: {warm_s / cold_s:.2e}")
    print(f"ratio: {gguf_s / cold_s:.1f}")


if __name__ == "__main__":
    main()
