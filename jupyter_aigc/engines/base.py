"""What an engine declares it can do, and the one way engines stream: a producer thread and a queue.

An engine only computes. Callers never test its type: they ask ``capabilities`` (and the registry
routes a capability to an engine that has it).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import Executor
from typing import Callable, Iterator, Protocol

from ..core.errors import AigcError
from ..core.keys import redact
from ..core.types import Chunk, Request, TokenInfo

GENERATE = "generate"        # stream text chunks
LOGPROBS = "logprobs"        # per-token probabilities with top alternatives
SCHEMA = "schema"            # JSON-schema constrained output
SCORES = "scores"            # raw next-token logits over the whole vocabulary
ATTENTION = "attention"      # per-layer, per-head attention weights
TRAIN = "train"              # fine-tuning (LoRA)
IMAGES = "images"            # text to image

POLL = 0.05
DRAIN = 0.5  # after Stop, how long a stream waits for the producer's last chunk before it lets go


class TextEngine(Protocol):
    """A text engine: ``stream`` yields the chunks of one completion and returns soon after ``cancel``."""

    name: str
    capabilities: frozenset[str]
    batching: bool  # requests share a batch (seeded ones then run alone, to stay reproducible)

    def parallel(self, ref) -> int:
        """How many requests for one model this engine runs at once."""

    def prepare(self, ref, key_env: str | None = None) -> None:
        """Load what ``ref`` needs now (or find its API key), so errors surface before any output."""

    def stream(self, request: Request, ref, cancel: threading.Event, key_env: str | None = None) -> Iterator[Chunk]:
        """The chunks of one completion of ``request``."""


_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def threaded_stream(produce: Callable[[Callable[[Chunk], bool]], None], cancel: threading.Event,
                    executor: Executor | None = None, name: str = "aigc-engine") -> Iterator[Chunk]:
    """Run ``produce(emit)`` in a worker and yield what it emits; ``emit`` returns True once cancelled.

    The consumer never blocks for long: once ``cancel`` is set it waits at most ``DRAIN`` seconds for the
    producer to finish, then returns, leaving a producer stuck in a socket or a forward pass behind.
    """
    items: queue.SimpleQueue = queue.SimpleQueue()

    def emit(chunk: Chunk) -> bool:
        items.put(chunk)
        return cancel.is_set()

    def run() -> None:
        try:
            produce(emit)
        except BaseException as exc:  # handed to the consumer
            items.put(_Failure(exc))
        finally:
            items.put(_END)

    if executor is not None:
        executor.submit(run)
    else:
        threading.Thread(target=run, daemon=True, name=name).start()
    cancelled_at = None
    while True:
        try:
            item = items.get(timeout=POLL)
        except queue.Empty:
            if cancel.is_set():
                cancelled_at = cancelled_at or time.monotonic()
                if time.monotonic() - cancelled_at > DRAIN:
                    return
            continue
        if item is _END:
            return
        if isinstance(item, _Failure):
            raise item.error
        yield item


class FinishWithUsage:
    """Wraps ``emit`` so the chunk that finishes an answer also carries the usage that OpenAI-format streams
    send in a separate event after it: the last chunk has both. ``flush`` sends a finish left waiting."""

    def __init__(self, emit: Callable[[Chunk], bool]):
        self.emit = emit
        self.held: Chunk | None = None

    def __call__(self, chunk: Chunk) -> bool:
        if self.held is not None:
            held, self.held = self.held, None
            if chunk.usage and not chunk.text and not chunk.tokens and not chunk.finish_reason:
                held.usage = chunk.usage
                return self.emit(held)
            if self.emit(held):
                return True
        if chunk.finish_reason and not chunk.usage:
            self.held = chunk
            return False
        return self.emit(chunk)

    def flush(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            self.emit(held)


def chunk_from_event(event: dict, source: str) -> Chunk | None:
    """One streamed OpenAI-format event (chat or text completion, from a server or llama.cpp) as a Chunk.

    Every request asks for one completion, so any choice index but 0 is the server's mistake.
    """
    if "error" in event:
        raise event_error(event["error"], source)
    chunk = Chunk()
    for choice in event.get("choices") or []:
        if choice.get("index", 0) != 0:
            raise AigcError(f"{source} sent an answer for completion #{choice['index'] + 1}, but one was asked for.",
                            "The server does not follow the OpenAI protocol; check its version or --base-url.")
        delta = choice.get("delta")
        chunk.text += (delta.get("content") or "") if delta is not None else (choice.get("text") or "")
        logprobs = choice.get("logprobs") or {}
        for token in (logprobs.get("content") if isinstance(logprobs, dict) else None) or []:
            chunk.tokens.append(TokenInfo(
                text=str(token.get("token", "")), prob=_probability(token.get("logprob"), source),
                top=[(str(alt.get("token", "")), _probability(alt.get("logprob"), source))
                     for alt in token.get("top_logprobs") or []]))
        finish = choice.get("finish_reason")
        chunk.finish_reason = (finish if isinstance(finish, str) else None) or chunk.finish_reason
    usage = event.get("usage")
    if isinstance(usage, dict) and usage:
        chunk.usage = {"prompt_tokens": _count(usage.get("prompt_tokens")),
                       "completion_tokens": _count(usage.get("completion_tokens"))}
    if not (chunk.text or chunk.tokens or chunk.usage or chunk.finish_reason):
        return None
    return chunk


def _probability(logprob, source: str) -> float:
    """exp(logprob) for a logprob a server sent; anything but a number ≤ 0 is the server's error."""
    try:
        value = float(logprob)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) and value != -math.inf or value > 1e-6:
        raise AigcError(f"{source} sent a token log-probability that is not a number ≤ 0 ({str(logprob)[:40]}).",
                        "Run the cell without --logprobs, or use a server whose logprobs are right.")
    return math.exp(min(value, 0.0))


def _count(value) -> int | None:
    """A token count from a server's usage: an int (also when sent as a string), else unknown."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number < 10**12 else None


def event_error(error, source: str):
    """An error event or error body as a one-line AigcError (the context overflow gets both numbers)."""
    if not isinstance(error, dict):
        return AigcError(redact(f"{source} failed: {error}"), "")
    if error.get("type") == "exceed_context_size_error" or "n_ctx" in error:
        prompt, context = error.get("n_prompt_tokens"), error.get("n_ctx")
        return AigcError(f"The prompt is {prompt} tokens, but the model's context holds {context}.",
                         "Shorten the prompt, start a new conversation with --new (earlier turns count too), "
                         "or pick a model with a longer context.")
    return AigcError(redact(f"{source} refused the request: {error.get('message') or error}"),
                     "Change the option it names.")
