"""The peak resident memory of a child Python process, measured by the child itself."""

from __future__ import annotations

import subprocess
import sys

# VmHWM is the high-water mark of the child's own memory map. ru_maxrss is not: Linux carries it across exec,
# so a child of a large pytest process (subprocess uses vfork) reports at least the parent's peak.
PEAK_GB = ("int(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
           " / 2**20")


def run_child(code: str, *args: str, cwd, env=None) -> tuple[str, float]:
    """Run ``code`` (which must end by printing ``PEAK_GB``'s value last) and return (stdout, peak in GB)."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900,
                         cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, float(out.stdout.split()[-1])
