"""B2: model acquisition. Cold start of the default %%gpt in a fresh process, timed around the whole first cell
(run_cell's start to its end: parsing, loading, the answer, the view, the record), and a warm hit (the second
cell's model acquisition) ÷ that first cell. Then the same cold start beside one busy process (a CPU hog this
script starts and stops by its pid). Conversion is done once beforehand. The ratio line is the quiet first
cell in seconds, against the 1.0 s target."""

import subprocess
import sys

from _common import report

CELL = "%%gpt --max-tokens 4\\nHi"
COLD = f"""
import sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "jupyter_aigc")
t1 = time.perf_counter()
result = shell.run_cell("{CELL}")
t2 = time.perf_counter()
assert result.success
session = shell._jupyter_aigc_session
ref = session.resolve(None)
engine = session.registry.engine(ref)
start = time.perf_counter_ns()
engine.prepare(ref)
warm = (time.perf_counter_ns() - start) / 1e9
start = time.perf_counter()
assert shell.run_cell("{CELL}").success
second = time.perf_counter() - start
threads = session.cache.get(engine.key(ref), None).threads
print()
print(t1 - t0, t2 - t1, warm, second, int("torch" in sys.modules), threads)
"""


def run() -> list[float]:
    out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()[-6:]]


def measure(runs: int = 5) -> dict:
    figures = {"load": [], "cold": [], "warm": [], "second": [], "torch": [], "threads": []}
    for _ in range(runs):
        for name, value in zip(figures, run()):
            figures[name].append(value)
    return figures


def main() -> None:
    run()  # makes the F16 copy once if this machine has not yet
    quiet = measure()
    report("import + %load_ext s", quiet["load"])
    cold = report("cold start, the whole first default %%gpt cell s", quiet["cold"])
    warm = report("warm hit (second cell's model acquisition) s", quiet["warm"])
    report("the whole second cell s", quiet["second"])
    print(f"llama.cpp threads chosen: {sorted(int(t) for t in quiet['threads'])}")
    print(f"torch imported: {'yes' if any(quiet['torch']) else 'no'}")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = measure()
    finally:
        hog.kill()  # by its own pid
        hog.wait()
    report("beside one busy process: cold start, the whole first cell s", busy["cold"])
    report("beside one busy process: the whole second cell s", busy["second"])
    print(f"beside one busy process: llama.cpp threads chosen: {sorted(int(t) for t in busy['threads'])}")
    print(f"warm hit / first cell: {warm / cold:.2e}")
    print(f"ratio: {cold:.3f}")


if __name__ == "__main__":
    main()
