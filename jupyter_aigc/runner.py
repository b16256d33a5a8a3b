"""Runs one or more request variants through their backends concurrently and feeds a renderer."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from .backends.base import Request, Response
from .errors import AigcError
from .keys import redact
from .models import ModelSpec
from .render import MIN_UPDATE_INTERVAL, Renderer

_DONE = object()


@dataclass
class Variant:
    """One column group: a model and a request (``n`` completions become ``n`` columns)."""

    spec: ModelSpec
    request: Request
    title: str = ""


class TextRunner:
    """Sends variants to the backend their spec names; the slowest variant sets the wall time."""

    def __init__(self, backends: dict):
        self.backends = backends

    def run(self, variants: list[Variant], renderer: Renderer, cancel: threading.Event,
            key_env: str | None = None, poll=None) -> list[Response]:
        """Run ``variants`` to the end (or until ``cancel``/an interrupt); ``poll`` lets a UI deliver clicks."""
        offsets, titles = [], []
        for variant in variants:
            offsets.append(len(titles))
            n = variant.request.n
            titles += [" ".join(filter(None, [variant.title, f"#{i + 1}" if n > 1 else ""])) for i in range(n)]
        responses = [self._blank(v, i) for v in variants for i in range(v.request.n)]
        renderer.start(titles)
        events: queue.Queue = queue.Queue()
        threads = [
            threading.Thread(target=self._produce, args=(k, v, cancel, key_env, events), daemon=True,
                             name=f"aigc-variant-{k}")
            for k, v in enumerate(variants)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        active = len(threads)
        last_poll = start
        try:
            while active:
                if poll is not None and time.perf_counter() - last_poll >= MIN_UPDATE_INTERVAL:
                    last_poll = time.perf_counter()
                    poll()
                try:
                    k, item = events.get(timeout=MIN_UPDATE_INTERVAL)
                except queue.Empty:
                    renderer.flush()
                    continue
                if item is _DONE:
                    active -= 1
                else:
                    self._apply(variants[k], offsets[k], item, responses, renderer, start)
        except KeyboardInterrupt:
            cancel.set()
            for thread in threads:
                thread.join()
            while not events.empty():
                k, item = events.get()
                if item is not _DONE:
                    self._apply(variants[k], offsets[k], item, responses, renderer, start)
            for response in responses:
                if response.finish_reason != "error":
                    response.finish_reason = "stopped"
        elapsed = time.perf_counter() - start
        for index, response in enumerate(responses):
            response.elapsed = elapsed if response.elapsed == 0 else response.elapsed
            if cancel.is_set() and response.finish_reason == "running":
                response.finish_reason = "stopped"
            if response.finish_reason == "running":
                response.finish_reason = "stop"
            renderer.finish_column(index, response)
        renderer.metadata = {"responses": [r.metadata() for r in responses]}
        renderer.finish()
        return responses

    def _produce(self, k: int, variant: Variant, cancel, key_env, events: queue.Queue) -> None:
        backend = self.backends[variant.spec.backend]
        try:
            for chunk in backend.stream(variant.request, variant.spec, cancel, **_key_arg(backend, key_env)):
                events.put((k, chunk))
        except AigcError as exc:
            events.put((k, exc))
        except Exception as exc:  # an unexpected failure still keeps the partial text
            events.put((k, AigcError(redact(f"{type(exc).__name__}: {exc}"), "")))
        finally:
            events.put((k, _DONE))

    @staticmethod
    def _blank(variant: Variant, index: int) -> Response:
        params = variant.request.params()
        if variant.spec.base_url:
            params["base_url"] = variant.spec.base_url
        return Response(text="", model=variant.spec.name, backend=variant.spec.backend, params=params,
                        finish_reason="running")

    @staticmethod
    def _apply(variant: Variant, offset: int, item, responses: list[Response], renderer: Renderer,
               start: float) -> None:
        now = time.perf_counter() - start
        group = responses[offset: offset + variant.request.n]
        if isinstance(item, AigcError):
            for response in group:
                if response.finish_reason == "running":
                    response.finish_reason = "error"
                    response.error = str(item)
                    response.elapsed = now
            return
        if item.usage and item.index < 0:
            for response in group:
                response.usage = dict(item.usage, shared=variant.request.n > 1)
            return
        response = group[item.index]
        if item.text and response.ttft is None:
            response.ttft = now
        if item.text or item.tokens:
            response.text += item.text
            response.tokens.extend(item.tokens)
            renderer.append(offset + item.index, item.text, item.tokens)
        if item.usage:
            response.usage = dict(item.usage)
        if item.finish_reason:
            response.finish_reason = item.finish_reason
            response.elapsed = now


def _key_arg(backend, key_env: str | None) -> dict:
    return {"key_env": key_env} if backend.name == "openai" else {}
