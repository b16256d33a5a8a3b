"""How many CPU threads each in-kernel llama.cpp server runs (issue 18).

llama.cpp's threads meet at a spinning barrier after every operation, so kernels that each take every core
slow each other to a crawl. Each running server holds a lease file (flock) in a per-user folder; a server's
thread count is the cores shared among the engines answering on the machine, less the cores other work keeps
busy, and ``AigcConfig.threads`` pins it. These tests use a private lease folder, so other kernels on the
machine do not count, and fix the machine's cores and load where the real figures would make them flaky.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from traitlets import TraitError

from conftest import run_gpt
from jupyter_aigc.core.cache import ModelCache
from jupyter_aigc.core.types import Request
from jupyter_aigc.engines import llamacpp
from jupyter_aigc.engines.llamacpp import EngineLease, LlamaCppEngine, active_engines, choose_threads

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from jupyter_aigc.engines.llamacpp import EngineLease
    lease = EngineLease(Path(sys.argv[1]))
    print(lease.path, flush=True)
    sys.stdin.readline()
""")


class OtherKernel:
    """Another process holding an engine lease in ``folder`` (as a kernel with a llama.cpp model does)."""

    def __init__(self, folder):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.path = self.proc.stdout.readline().strip()
        assert self.path.endswith(".lease"), "the other process announced its engine"

    def kill(self) -> None:
        """Dies without cleaning up, as a crashed kernel does: its file stays, its lock goes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def others(tmp_path):
    started: list[OtherKernel] = []

    def start(count: int = 1) -> list[OtherKernel]:
        new = [OtherKernel(tmp_path) for _ in range(count)]
        started.extend(new)
        return new

    yield start
    for kernel in started:
        kernel.kill()


@pytest.fixture
def two_idle_cores(monkeypatch):
    """A 2-core machine with nothing else running, whatever this machine's load is right now."""
    monkeypatch.setattr(llamacpp, "machine_cores", lambda: 2)
    monkeypatch.setattr(llamacpp, "busy_threads", lambda samples=3: 0)


def test_policy_shares_the_cores_and_leaves_busy_ones_alone():
    assert choose_threads(cores=2, engines=1, busy=0) == 2, "alone on an idle machine: every core"
    assert choose_threads(cores=2, engines=2, busy=0) == 1
    assert choose_threads(cores=2, engines=6, busy=0) == 1, "never fewer than one"
    assert choose_threads(cores=16, engines=4, busy=0) == 4
    assert choose_threads(cores=16, engines=1, busy=12) == 4, "a busy machine leaves its busy cores alone"
    assert choose_threads(cores=2, engines=1, busy=1) == 1, "one CPU hog beside a 2-core kernel"


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="threads' states are read from Linux's /proc")
def test_this_processs_own_busy_threads_are_not_other_work():
    """The kernel's own threads (the evaluation's runner, a metric, the widget) are the work a llama.cpp server
    is sized for, not other programs: counting them made an evaluation rebuild the server with one thread."""
    import hashlib
    import threading

    from jupyter_aigc.core.machine import own_runnable_threads

    stop = threading.Event()
    data = b"x" * (1 << 22)

    def hog():
        while not stop.is_set():
            hashlib.sha256(data).digest()  # hashlib lets go of the GIL: the thread runs on a core of its own

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(2)]
    for thread in hogs:
        thread.start()
    try:
        time.sleep(0.2)
        seen = max(own_runnable_threads() for _ in range(50))
        assert seen >= 3, "both hashing threads and the reader are runnable"
    finally:
        stop.set()
        for thread in hogs:
            thread.join()
    assert min(own_runnable_threads() for _ in range(20)) == 1, "the reader alone, once they stopped"


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="the busy-core reading is Linux's /proc/loadavg")
def test_cpu_hogs_leave_their_cores_to_them(tmp_path):
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        assert llamacpp.busy_threads() >= 2, "two processes that never sleep are busy"
        engine = engine_in(tmp_path)
        threads, pinned = engine.want_threads(EngineLease(None))
        assert threads <= max(1, llamacpp.machine_cores() - 2) and not pinned
        engine.threads = 3
        assert engine.want_threads(EngineLease(None)) == (3, True), "AigcConfig.threads overrides the machine"
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_live_lease_counts_and_a_dead_one_is_cleaned_up(tmp_path, others):
    assert active_engines(tmp_path) == 0
    (first, second) = others(2)
    assert active_engines(tmp_path) == 2
    mine = EngineLease(tmp_path)
    assert active_engines(tmp_path, own=mine.path) == 2, "an engine does not count itself"
    assert active_engines(tmp_path) == 3, "another engine of this same process counts"
    first.kill()
    assert active_engines(tmp_path, own=mine.path) == 1, "a dead kernel's engine no longer counts"
    assert not os.path.exists(first.path), "and its file is removed"
    path = mine.path
    mine.release()
    assert not path.exists()
    assert active_engines(tmp_path) == 1


def test_an_idle_engine_stops_counting_until_it_answers_again(tmp_path, others):
    (other,) = others(1)
    past = time.time() - llamacpp.ACTIVE_S - 5
    os.utime(other.path, (past, past))
    assert active_engines(tmp_path) == 0, "loaded long ago, silent since: its cores are free"
    busy = EngineLease(tmp_path)
    os.utime(busy.path, (past, past))
    with busy.answering():
        assert active_engines(tmp_path) == 1, "answering now counts, however old the lease"
    assert active_engines(tmp_path) == 1, "and for a while after the answer"
    busy.release()


def request(max_tokens: int = 4) -> Request:
    return Request(messages=[{"role": "user", "content": "Say hello."}], model="SmolLM2-135M-Instruct",
                   temperature=0, max_tokens=max_tokens)


def answer(engine, ref) -> str:
    return "".join(chunk.text for chunk in engine.stream(request(), ref, threading.Event()))


def engine_in(folder, threads: int = 0) -> LlamaCppEngine:
    engine = LlamaCppEngine(ModelCache(8 * 2**30), lambda message: None, threads)
    engine.leases = folder
    return engine


def running(engine, ref):
    return engine.cache.get(engine.key(ref), lambda: pytest.fail("the model is not loaded"))


@pytest.mark.slow
def test_a_second_kernel_makes_the_engine_use_fewer_threads(tmp_path, others, two_idle_cores, monkeypatch):
    from jupyter_aigc.core.models import resolve

    ref = resolve("SmolLM2-135M-Instruct", {})
    engine = engine_in(tmp_path)
    engine.prepare(ref)
    server = running(engine, ref)
    assert server.threads == 2, "alone on 2 idle cores"
    first = server[0]
    assert answer(engine, ref)
    assert server.rebuilds == 0 and server[0] is first, "nothing changed: the same server answers"

    (other,) = others(1)
    newcomer = engine_in(tmp_path)
    newcomer.prepare(ref)
    assert running(newcomer, ref).threads == 1, "a kernel that loads beside another takes its share"
    assert answer(engine, ref)
    assert server.threads == 1 and server.rebuilds == 1 and server[0] is not first, \
        "the running engine gave up a core before answering beside the others"
    newcomer.cache.clear()
    other.kill()

    assert answer(engine, ref)
    assert server.threads == 1, "more threads only after the server has run a while at its count"
    monkeypatch.setattr(llamacpp, "RAISE_AFTER_S", 0.0)
    assert answer(engine, ref)
    assert server.threads == 2, "alone again: every core"
    engine.cache.clear()
    assert list(tmp_path.glob("*.lease")) == [], "an evicted model's lease is gone"


@pytest.mark.slow
def test_config_threads_pins_the_count_and_applies_to_the_next_answer(shell, tmp_path, others, two_idle_cores):
    session = shell._jupyter_aigc_session
    engine = session.engines["llama.cpp"]
    engine.leases = tmp_path
    others(3)
    shell.run_line_magic("config", "AigcConfig.threads = 2")
    assert engine.threads == 2
    assert run_gpt(shell, "--temperature 0 --max-tokens 16 --new -o answer", "What is the capital of France?").success
    assert "Paris" in shell.user_ns["answer"]
    server = running(engine, session.resolve(None))
    assert server.threads == 2, "pinned: three other kernels answering do not change it"

    shell.run_line_magic("config", "AigcConfig.threads = 1")
    assert run_gpt(shell, "--temperature 0 --max-tokens 16 --new -o answer", "What is the capital of France?").success
    assert "Paris" in shell.user_ns["answer"]
    assert server.threads == 1 and server.rebuilds == 1, "the change applied to the next answer"

    shell.run_line_magic("config", "AigcConfig.threads = 0")
    assert run_gpt(shell, "--max-tokens 2 --new", "Hi").success
    assert server.threads == 1, "automatic again: 2 cores shared with 3 other kernels"
    with pytest.raises(TraitError):
        session.config.threads = -1
