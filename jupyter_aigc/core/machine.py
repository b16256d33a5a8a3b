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
    """Threads of other programs that are runnable right now: Linux's /proc/loadavg less this process's own
    runnable threads (its Python threads, a metric being computed, the reader itself: work the caller is
    sizing for, not competing with it), the least of a few readings a millisecond apart, so a passing blip does
    not count. 0 where unknown."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - own_runnable_threads())
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(0.001)
    return max(0, min(counts))


def own_runnable_threads() -> int:
    """This process's threads that are running or ready to run (state R in /proc/self/task/*/stat); at least 1,
    the reader."""
    count = 0
    for task in os.scandir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task.name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]  # the name in (…) may hold spaces or ")"
        except (OSError, IndexError):
            continue  # a thread that ended meanwhile
        count += state == "R"
    return max(1, count)


def choose_threads(cores: int, engines: int, busy: int) -> int:
    """Threads for one llama.cpp server: the cores shared among ``engines`` answering at once (this one
    included), and no more than the cores other work leaves free; never fewer than one."""
    return max(1, min(cores // max(1, engines), cores - busy))
