"""The machine's CPUs: how many this process may use, how many other work keeps busy, and how many threads a
computation should take so it does not fight other work for the same cores."""

from __future__ import annotations

import os
import time
from pathlib import Path


def machine_cores() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (containers, JupyterHub limits)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


def busy_threads(samples: int = 3) -> int:
    """Threads of other work that are runnable right now (Linux's /proc/loadavg, less the reader): the
    least of a few readings a millisecond apart, so a passing blip does not count. 0 where unknown."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(0.001)
    return max(0, min(counts))


def choose_threads(cores: int, engines: int, busy: int) -> int:
    """Threads for one llama.cpp server: the cores shared among ``engines`` answering at once (this one
    included), and no more than the cores other work leaves free; never fewer than one."""
    return max(1, min(cores // max(1, engines), cores - busy))
