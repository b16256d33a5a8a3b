"""B2: model acquisition. Cold start of the default %%gpt in a fresh process (import, %load_ext, the model
part of the first cell), and a warm hit (second cell) ÷ the first load. Conversion is done once beforehand."""

import subprocess
import sys

from _common import report

COLD = """
import sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "jupyter_aigc")
t1 = time.perf_counter()
session = shell._jupyter_aigc_session
ref = session.resolve(None)
engine = session.registry.engine(ref)
engine.prepare(ref)
t2 = time.perf_counter()
start = time.perf_counter_ns()
engine.prepare(ref)
warm = (time.perf_counter_ns() - start) / 1e9
print(t1 - t0, t2 - t1, warm, int("torch" in sys.modules))
"""


def run() -> list[float]:
    out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()[-4:]]


def main() -> None:
    run()  # makes the F16 copy once if this machine has not yet
    loads, models, warms, torch = [], [], [], []
    for _ in range(5):
        load, model, warm, with_torch = run()
        loads.append(load), models.append(model), warms.append(warm), torch.append(with_torch)
    report("import + %load_ext s", loads)
    cold = report("cold start, model part of the first default %%gpt s", models)
    warm = report("warm hit s", warms)
    print(f"torch imported: {'yes' if any(torch) else 'no'}")
    print(f"warm hit / first load: {warm / cold:.2e}")
    print(f"ratio: {cold:.3f}")


if __name__ == "__main__":
    main()
