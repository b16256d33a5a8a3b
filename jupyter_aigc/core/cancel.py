"""The one place that runs a magic's work and ends it: Stop, Kernel → Interrupt, awaited and polled cells.

The work runs in a daemon thread and gets a ``threading.Event`` that Stop buttons and interrupts set. The
cell waits for the thread with short timeouts, so an interrupt always reaches it. After an interrupt the
work has ``GRACE`` seconds to finish (engines return at once when the event is set, keeping partial
output); work stuck in something that cannot be cancelled (a socket, a forward pass) is left to finish
in the background, and the cell ends anyway.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, TypeVar

from .errors import AigcError

GRACE = 1.0
WAIT = 0.05
T = TypeVar("T")


class Interrupted(AigcError):
    """Kernel → Interrupt ended the cell; what was produced so far is kept."""

    def __init__(self):
        super().__init__("Interrupted.", "What was produced before the interrupt is kept.")


class Job:
    """``work(cancel)`` in a daemon thread that carries the caller's context (so its output finds the cell)."""

    def __init__(self, work: Callable[[threading.Event], T], cancel: threading.Event | None = None):
        self.cancel = cancel or threading.Event()
        self.done = threading.Event()
        self.interrupted = False
        self._result = None
        self._error: BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._target, work), daemon=True,
                                        name="aigc-job")

    def _target(self, work) -> None:
        try:
            self._result = work(self.cancel)
        except BaseException as exc:  # handed to the waiting cell
            self._error = exc
        finally:
            self.done.set()

    def start(self) -> "Job":
        self._thread.start()
        return self

    def result(self):
        if self._error is not None:
            raise self._error
        return self._result

    def run(self, poll: Callable[[], None] | None = None):
        """Wait in the calling thread; ``poll`` lets an old kernel deliver widget clicks meanwhile."""
        with self._noting_interrupts():
            self.start()
            try:
                while not self.done.wait(WAIT):
                    if self.interrupted:
                        raise KeyboardInterrupt
                    if poll is not None:
                        poll()
            except KeyboardInterrupt:
                self._stop_after_interrupt()
        return self.result()

    async def run_async(self):
        """Await the work; the kernel serves widget messages meanwhile and turns an interrupt into a cancel."""
        with self._noting_interrupts():
            self.start()
            try:
                while not self.done.is_set():
                    if self.interrupted:
                        raise KeyboardInterrupt
                    await asyncio.sleep(WAIT)
            except (asyncio.CancelledError, KeyboardInterrupt):
                self._stop_after_interrupt()
        return self.result()

    @contextmanager
    def _noting_interrupts(self):
        """While the cell waits, SIGINT also notes itself here and sets the cancel, then raises as before.

        The KeyboardInterrupt that Python raises can be lost: when the signal lands while the main thread runs a
        finaliser (a garbage-collected socket's ``__del__``, say), Python prints "Exception ignored" and goes
        on. On a busy machine that left a cell waiting out a hung server (181 s). The note cannot be lost.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # SIGINT ignored or left to the system: nothing to add to
            yield
            return

        def note(signum, frame):
            self.interrupted = True
            self.cancel.set()
            previous(signum, frame)

        signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _stop_after_interrupt(self) -> None:
        self.cancel.set()
        deadline = time.monotonic() + GRACE
        try:
            while not self.done.is_set() and time.monotonic() < deadline:
                self.done.wait(WAIT)
        except KeyboardInterrupt:
            pass
        raise Interrupted()


class SteppedJob:
    """Work that steps on the calling thread: ``work(cancel)`` is a generator that yields between steps.

    Training runs this way. torch's CPU thread pools (MKL and OpenMP) run at full speed on the main thread, but a
    thread started after the main thread used torch ran the image lab's training at 35-60% of the speed (measured
    on 2 cores: 12.6k against 33k images/s for the VAE). The work's setup, up to its first yield (imports, data,
    the model), runs as a ``Job``, so an interrupt there ends the cell at once without breaking a half-done import.
    Then the steps run here; between them the kernel serves widget messages (Stop), at most every ``SLICE``
    seconds. An interrupt now only sets the cancel: the step under way finishes, the work ends as Stop ends it
    (keeping what was trained), and then the cell fails with ``Interrupted``.
    """

    SLICE = 0.05

    def __init__(self, work: Callable[[threading.Event], T], cancel: threading.Event | None = None):
        self.work = work
        self.cancel = cancel or threading.Event()
        self.interrupted = False

    def _setup(self, steps):
        def first(cancel: threading.Event):
            finished, result = self._next(steps)
            if not finished and cancel.is_set():
                steps.close()  # interrupted while setting up: nothing was trained, nothing is kept
            return finished, result

        return Job(first, self.cancel)

    @staticmethod
    def _next(steps) -> tuple[bool, object]:
        """(finished, result) after one more step."""
        try:
            next(steps)
        except StopIteration as done:
            return True, done.value
        return False, None

    def run(self, poll: Callable[[], None] | None = None):
        steps = self.work(self.cancel)
        with self._noting_interrupts():  # the setup's Job notes an interrupt first, and raises it
            finished, result = self._setup(steps).run(poll)
            last = time.monotonic()
            while not finished:
                finished, result = self._next(steps)
                if poll is not None and time.monotonic() - last >= self.SLICE:
                    poll()
                    last = time.monotonic()
        return self._result(result)

    async def run_async(self):
        steps = self.work(self.cancel)
        with self._noting_interrupts():
            finished, result = await self._setup(steps).run_async()
            last = time.monotonic()
            while not finished:
                finished, result = self._next(steps)
                if time.monotonic() - last >= self.SLICE:
                    try:
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        self._note()
                    last = time.monotonic()
        return self._result(result)

    def _note(self, *_) -> None:
        self.interrupted = True
        self.cancel.set()

    def _result(self, result):
        if self.interrupted:
            raise Interrupted()
        return result

    @contextmanager
    def _noting_interrupts(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
