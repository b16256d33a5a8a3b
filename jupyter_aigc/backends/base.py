"""The one request type, the chunks backends stream, and the response a cell records."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol


@dataclass
class Request:
    """Everything a text backend needs for one completion (or ``n`` of them)."""

    messages: list[dict]
    model: str
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    raw: bool = False
    logprobs: bool = False
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def params(self) -> dict:
        """The sampling parameters, safe to show and store (no key, no messages)."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop),
            "n": self.n,
            "raw": self.raw,
        }


@dataclass
class TokenInfo:
    """One generated token, its probability and the top alternatives (with ``--logprobs``)."""

    text: str
    prob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Chunk:
    """A piece of streamed output for completion ``index``; ``usage`` arrives with the last chunk."""

    text: str = ""
    index: int = 0
    tokens: list[TokenInfo] = field(default_factory=list)
    usage: dict | None = None
    finish_reason: str | None = None


@dataclass
class Response:
    """One finished (or stopped) completion, as recorded in memory, history and metadata."""

    text: str
    model: str
    backend: str
    params: dict
    usage: dict = field(default_factory=dict)
    ttft: float | None = None
    elapsed: float = 0.0
    finish_reason: str = "stop"
    tokens: list[TokenInfo] = field(default_factory=list)
    error: str | None = None

    @property
    def tokens_per_second(self) -> float | None:
        out = self.usage.get("completion_tokens")
        gen_time = self.elapsed - (self.ttft or 0.0)
        if not out or gen_time <= 0:
            return None
        return out / gen_time

    def metadata(self) -> dict:
        """Provenance for output metadata and history: no key, no token list."""
        data = asdict(self)
        data.pop("tokens")
        data["tokens_per_second"] = self.tokens_per_second
        return data


class TextBackend(Protocol):
    """A backend only generates: it turns a Request into Chunks and stops when ``cancel`` is set.

    ``index`` -1 on a chunk means usage for the whole request; ``spec`` is a models.ModelSpec.
    """

    name: str

    def stream(self, request: Request, spec, cancel: threading.Event, **options) -> Iterator[Chunk]: ...
