"""B14: shared cores. Four kernels (separate Python processes, each an IPython shell with the extension)
answer the default %%gpt at the same moment; their aggregate tokens/s ÷ one kernel answering alone.
Each cell is timed from run_cell's start to its end. Alone and together alternate, median of 5 pairs.

    python benchmarks/b14_shared_cores.py [--kernels 4] [--pairs 5] [--threads 0]

``--threads N`` pins AigcConfig.threads in every kernel (0: automatic, the default).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

from _common import report

CELL = ("%%gpt --new --temperature 0 --max-tokens 64\n"
        "Write a long, detailed story about a lighthouse keeper and a storm.")
KERNEL = r"""
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "jupyter_aigc")
shell.run_line_magic("config", f"AigcConfig.threads = {int(sys.argv[2])}")
assert shell.run_cell("%%gpt --new --temperature 0 --max-tokens 4\nHello.").success  # loads the model
print("READY", flush=True)
start_at = float(sys.stdin.readline())
while time.time() < start_at:
    time.sleep(0.001)
start = time.time()
result = shell.run_cell(sys.argv[1])
end = time.time()
session = shell._jupyter_aigc_session
entry = session.history[-1]
engine, ref = session.engines["llama.cpp"], session.resolve(None)
running = session.cache.get(engine.key(ref), lambda: None)
print("B14", json.dumps({"ok": result.success, "tokens": entry["usage"]["completion_tokens"], "start": start,
                         "end": end, "threads": running.threads, "rebuilds": running.rebuilds}), flush=True)
"""


def answer_together(count: int, threads: int) -> tuple[float, list[dict]]:
    """Start ``count`` kernels, let each load the model, then have all answer at one moment: tokens/s in all."""
    kernels = [subprocess.Popen([sys.executable, "-c", KERNEL, CELL, str(threads)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        for kernel in kernels:
            for line in kernel.stdout:
                if line.startswith("READY"):
                    break
            else:
                raise RuntimeError("a kernel exited before it was ready")
        start_at = time.time() + 0.5
        for kernel in kernels:
            kernel.stdin.write(f"{start_at}\n")
            kernel.stdin.flush()
        results = []
        for kernel in kernels:
            line = next(line for line in kernel.stdout if line.startswith("B14 "))
            results.append(json.loads(line[4:]))
            kernel.wait(timeout=60)
    finally:
        for kernel in kernels:
            if kernel.poll() is None:
                kernel.kill()
                kernel.wait()
    assert all(r["ok"] for r in results), results
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return sum(r["tokens"] for r in results) / span, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    alone, together, chosen_alone, chosen_together, rebuilds = [], [], [], [], 0
    for _ in range(args.pairs):
        rate, results = answer_together(1, args.threads)
        alone.append(rate)
        chosen_alone.append(results[0]["threads"])
        rate, results = answer_together(args.kernels, args.threads)
        together.append(rate)
        chosen_together.extend(r["threads"] for r in results)
        rebuilds += sum(r["rebuilds"] for r in results)
    one = report("one kernel alone tokens/s (whole cell)", alone)
    many = report(f"{args.kernels} kernels at once, aggregate tokens/s (whole cells)", together)
    print(f"threads chosen alone: {sorted(chosen_alone)}")
    print(f"threads chosen together: {sorted(chosen_together)} ({rebuilds} servers rebuilt before answering)")
    print(f"per-pair ratios: {', '.join(f'{b / a:.3g}' for a, b in zip(alone, together))}")
    print(f"per-kernel share together: {statistics.median(together) / args.kernels:.4g} tokens/s")
    print(f"ratio: {many / one:.3f}")


if __name__ == "__main__":
    main()
