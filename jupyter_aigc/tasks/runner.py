"""TextRunner: every completion of every variant, fanned out over engines (bounded per model), into a view.

Each of a variant's ``n`` completions is its own request (seed + i), so engines with parallel slots
(llama.cpp, servers) run them together; ``engine.parallel(ref)`` bounds how many run at once per model.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, replace

from ..core.errors import AigcError
from ..core.keys import redact
from ..core.models import ModelRef
from ..core.registry import Registry
from ..core.types import Chunk, Request, Response

UPDATE_INTERVAL = 0.05  # the view redraws at most 20 times a second
SETTLE = 0.8  # after Stop, how long the runner waits for engines to hand in their last chunks
_DONE = object()
_STARTED = object()  # a completion got its slot: the time before it was spent in the queue
FINISH_REASONS = ("stop", "length", "stopped", "incomplete", "error")  # the ones this package knows


@dataclass
class Variant:
    """One column group: a model and a request (``n`` completions become ``n`` columns)."""

    ref: ModelRef
    request: Request
    title: str = ""


@dataclass
class Completion:
    column: int
    variant: Variant
    request: Request


def completions(variants: list[Variant]) -> list[Completion]:
    out = []
    for variant in variants:
        n = variant.request.n
        for i in range(n):
            seed = None if variant.request.seed is None else variant.request.seed + i
            out.append(Completion(len(out), variant, replace(variant.request, n=1, seed=seed)))
    return out


def column_titles(variants: list[Variant]) -> list[str]:
    titles = []
    for variant in variants:
        n = variant.request.n
        titles += [" ".join(filter(None, [variant.title, f"#{i + 1}" if n > 1 else ""])) for i in range(n)]
    return titles


class Slots:
    """A model's parallel slots: a request takes one, or all of them to run alone."""

    def __init__(self, size: int):
        self.size = size
        self._free = size
        self._changed = threading.Condition()

    def acquire(self, count: int, cancel: threading.Event) -> bool:
        with self._changed:
            while self._free < count:
                if cancel.is_set():
                    return False
                self._changed.wait(UPDATE_INTERVAL)
            self._free -= count
            return True

    def release(self, count: int) -> None:
        with self._changed:
            self._free += count
            self._changed.notify_all()


class TextRunner:
    """Runs variants to the end, or until ``cancel``; the view gets chunks as they come."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._limits: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()

    def _slots(self, engine, ref: ModelRef) -> "Slots":
        key = f"{engine.name}:{ref.source}:{ref.base_url}"
        with self._lock:
            if key not in self._limits:
                self._limits[key] = Slots(engine.parallel(ref))
            return self._limits[key]

    def run(self, variants: list[Variant], view, cancel: threading.Event, key_env: str | None = None) -> list[Response]:
        jobs = completions(variants)
        responses = [self._blank(job) for job in jobs]
        view.start(column_titles(variants))
        events: queue.SimpleQueue = queue.SimpleQueue()
        start = time.perf_counter()
        for job in jobs:
            threading.Thread(target=self._produce, args=(job, cancel, key_env, events), daemon=True,
                             name=f"aigc-completion-{job.column}").start()
        finished: set[int] = set()
        counted = [0] * len(jobs)  # content chunks: the token count of servers that report no usage
        try:
            self._collect(jobs, responses, events, view, cancel, start, finished, counted)
        finally:  # whatever happened, every column ends and the view stops running
            elapsed = time.perf_counter() - start
            for column, response in enumerate(responses):
                if column not in finished:
                    self._ended(response, cancel, elapsed, counted[column], jobs[column].request.max_tokens)
                    self._finish(column, response, jobs[column].request, view)
            view.metadata = {"responses": [r.metadata() for r in responses]}
            view.finish()
        return responses

    def _finish(self, column: int, response: Response, request: Request, view) -> None:
        response.text = redact(response.text)  # a key a server echoes never reaches -o, memory or history
        self._parse(response, request)
        view.finish_column(column, response)

    def _collect(self, jobs, responses, events, view, cancel, start, finished: set[int], counted: list[int]) -> None:
        """Apply the engines' chunks as they come, until every completion ended (or Stop and ``SETTLE``)."""
        active = len(jobs)
        settle_until = None
        while active:
            if cancel.is_set():
                settle_until = settle_until or time.monotonic() + SETTLE
                if time.monotonic() > settle_until:
                    break  # an engine stuck in a call that cannot be cancelled: the cell ends anyway
            try:
                column, item = events.get(timeout=UPDATE_INTERVAL)
            except queue.Empty:
                view.flush()
                continue
            if item is _STARTED:
                responses[column].queued = time.perf_counter() - start
            elif item is _DONE:
                active -= 1
                self._ended(responses[column], cancel, time.perf_counter() - start, counted[column],
                            jobs[column].request.max_tokens)
                self._finish(column, responses[column], jobs[column].request, view)
                finished.add(column)
            else:
                counted[column] += bool(getattr(item, "text", ""))
                self._apply(responses[column], column, item, view, time.perf_counter() - start)

    def _produce(self, job: Completion, cancel, key_env, events: queue.SimpleQueue) -> None:
        ref = job.variant.ref
        try:
            engine = self.registry.engine(ref)
            slots = self._slots(engine, ref)
            # A seeded answer must come out the same every time: on an engine that batches requests
            # together (which changes the last bits of the numbers) it runs alone.
            alone = job.request.seed is not None and engine.batching
            taken = slots.size if alone else 1
            if not slots.acquire(taken, cancel):
                return
            events.put((job.column, _STARTED))
            try:
                if not cancel.is_set():
                    for chunk in engine.stream(job.request, ref, cancel, key_env):
                        events.put((job.column, chunk))
            finally:
                slots.release(taken)
        except AigcError as exc:
            events.put((job.column, exc))
        except Exception as exc:  # an unexpected failure still keeps the partial text
            events.put((job.column, AigcError(redact(f"{type(exc).__name__}: {exc}"), "")))
        finally:
            events.put((job.column, _DONE))

    @staticmethod
    def _blank(job: Completion) -> Response:
        params = job.variant.request.params()
        params["seed"] = job.request.seed
        if job.variant.ref.base_url:
            params["base_url"] = redact(job.variant.ref.base_url)
        return Response(text="", model=job.variant.ref.name, engine=job.variant.ref.engine, params=params,
                        finish_reason="running")

    @staticmethod
    def _apply(response: Response, column: int, item, view, now: float) -> None:
        if isinstance(item, AigcError):
            response.error = redact(str(item))
            response.finish_reason = "incomplete" if response.text else "error"
            response.elapsed = now
            return
        chunk: Chunk = item
        if chunk.text and response.ttft is None:
            response.ttft = now - response.queued
        if chunk.text or chunk.tokens:
            response.text += chunk.text
            response.tokens.extend(chunk.tokens)
            view.append(column, chunk.text, chunk.tokens)
        if chunk.usage:
            response.usage = dict(chunk.usage)
        if chunk.finish_reason and response.finish_reason == "running":
            response.finish_reason = chunk.finish_reason
            response.elapsed = now

    @staticmethod
    def _ended(response: Response, cancel: threading.Event, now: float, counted: int, max_tokens: int) -> None:
        """The completion's stream is over: a stream that ended without saying why is cut off, and so is one
        a server ended for its own reason (a content filter); a server that ignored max_tokens is marked."""
        if response.elapsed == 0:
            response.elapsed = now
        if response.finish_reason == "running":
            response.finish_reason = "stopped" if cancel.is_set() else "incomplete"
            if not cancel.is_set() and not response.error:
                response.error = "The stream ended before the answer was finished: it is cut off."
        elif response.finish_reason not in FINISH_REASONS and not response.error:
            reason = response.finish_reason
            response.error = (f"The server cut the answer off (finish reason '{redact(reason)[:40]}')"
                              + (": its content filter stopped it." if reason == "content_filter" else "."))
        if response.usage.get("completion_tokens") is None and counted:
            response.usage = {**response.usage, "completion_tokens": counted, "counted": True}
        if (response.usage.get("completion_tokens") or 0) > max_tokens:
            response.usage = {**response.usage, "ignored_max_tokens": max_tokens}
        if not response.text and not response.error and response.finish_reason in ("stop", "length"):
            response.error = (f"The model returned an empty answer (finish reason '{response.finish_reason}', "
                              f"{response.usage.get('completion_tokens', 0)} tokens).")

    @staticmethod
    def _parse(response: Response, request: Request) -> None:
        """With a schema, the answer must be JSON that follows it; ``parsed`` holds the object."""
        if request.schema is None or response.finish_reason in ("error", "stopped"):
            return
        try:
            response.parsed = json.loads(response.text)
        except ValueError as exc:
            response.error = response.error or f"The answer is not valid JSON ({exc})."
            return
        from ..core.schema import first_error

        problem = first_error(response.parsed, request.schema)
        if problem is not None:
            response.error = f"The answer does not follow the schema: {problem}."
