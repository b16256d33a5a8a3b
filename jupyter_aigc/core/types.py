"""The typed request, the chunks engines stream, and the response a cell records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Request:
    """Everything a text engine needs for one completion; ``n`` completions become ``n`` requests."""

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
    schema: dict | None = None

    def prompt_text(self) -> str:
        """The text a plain completion continues (``--raw``): the last user message, as written."""
        return self.messages[-1]["content"]

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
            "schema": self.schema is not None,
        }


@dataclass
class TokenInfo:
    """One generated token, its probability and the top alternatives (with ``--logprobs``)."""

    text: str
    prob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Chunk:
    """A piece of streamed output; ``usage`` and ``finish_reason`` arrive with the last chunk.

    finish_reason: "stop" (the model ended), "length" (max tokens), "stopped" (Stop or interrupt),
    "incomplete" (the stream ended without saying why: the answer is cut off).
    """

    text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    usage: dict | None = None
    finish_reason: str | None = None


@dataclass
class Response:
    """One finished (or stopped) completion, as recorded in memory, history and metadata."""

    text: str
    model: str
    engine: str
    params: dict
    usage: dict = field(default_factory=dict)
    ttft: float | None = None   # seconds from the request's start (after any queue) to its first token
    elapsed: float = 0.0        # seconds from the cell's start to the end, the queue included
    queued: float = 0.0         # seconds waiting for a free slot of the engine before the request started
    finish_reason: str = "stop"
    tokens: list[TokenInfo] = field(default_factory=list)
    error: str | None = None
    parsed: object = None

    @property
    def tokens_per_second(self) -> float | None:
        out = self.usage.get("completion_tokens")
        gen_time = self.elapsed - self.queued - (self.ttft or 0.0)
        if not out or gen_time <= 0:
            return None
        return out / gen_time

    @property
    def cut_off(self) -> bool:
        """The answer did not end on its own (Stop, max tokens, a broken or unfinished stream, an error)."""
        return self.finish_reason != "stop"

    def metadata(self) -> dict:
        """Provenance for output metadata and history: no key, no token list."""
        data = asdict(self)
        data.pop("tokens")
        data["tokens_per_second"] = self.tokens_per_second
        return data
