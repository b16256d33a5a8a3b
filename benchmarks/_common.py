"""Helpers for the benchmarks: a real kernel, and A/B pairs reduced to a median ratio."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kernel import Kernel  # noqa: E402  (tests/kernel.py: a real ipykernel driven by jupyter_client)


def start_kernel() -> Kernel:
    kernel = Kernel()
    kernel.run("%load_ext jupyter_aigc")
    return kernel


def alternate(measure_a, measure_b, pairs: int = 5) -> tuple[list[float], list[float]]:
    """Run A B A B … and return both lists of figures."""
    a, b = [], []
    for _ in range(pairs):
        a.append(measure_a())
        b.append(measure_b())
    return a, b


def report(name: str, values: list[float], unit: str = "") -> float:
    median = statistics.median(values)
    print(f"{name}: {median:.4g}{unit} (median of {len(values)}: {', '.join(f'{v:.4g}' for v in values)})")
    return median
