"""OpenAIBackend: the official openai SDK, streaming chat completions from OpenAI or any compatible server."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import replace
from typing import Iterator

from ..errors import AigcError
from ..keys import redact, resolve_key
from ..models import ModelSpec
from .base import Chunk, Request, TokenInfo

OPENAI_URL = "https://api.openai.com/v1"
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
LOCAL_HOSTS = ("127.", "localhost", "[::1]", "0.0.0.0")


def is_local_url(url: str | None) -> bool:
    host = (url or "").split("://", 1)[-1]
    return host.startswith(LOCAL_HOSTS)


def server_message(exc) -> str:
    """The server's own error text (``{"error": {"message": …}}``), not the SDK's wrapper around it."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


class OpenAIBackend:
    """Chat completions through ``openai.OpenAI``; honours OPENAI_API_KEY and OPENAI_BASE_URL."""

    name = "openai"

    def __init__(self, base_url: str = "", timeout: float = 60.0, max_retries: int = 2):
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._clients: dict[tuple, object] = {}

    def url_for(self, spec: ModelSpec) -> str:
        import os

        return (spec.base_url or self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")

    def client(self, spec: ModelSpec, key_env: str | None = None):
        import openai

        url = self.url_for(spec)
        key = resolve_key("openai", key_env, local_server=url != OPENAI_URL and is_local_url(url))
        cache_key = (url, hash(key), self.timeout, self.max_retries)
        if cache_key not in self._clients:
            self._clients[cache_key] = openai.OpenAI(
                api_key=key, base_url=url, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._clients[cache_key]

    def list_models(self, spec: ModelSpec, key_env: str | None = None) -> list[str]:
        client = self.client(spec, key_env)
        try:
            return sorted(m.id for m in client.models.list())
        except Exception as exc:
            raise self._translate(exc, spec) from None

    def stream(self, request: Request, spec: ModelSpec, cancel: threading.Event,
               key_env: str | None = None) -> Iterator[Chunk]:
        """OpenAI answers ``n`` completions in one stream; other servers (llama.cpp, Ollama…) often ignore
        ``n``, so they get one request per completion, seeded ``seed + i``."""
        client = self.client(spec, key_env)
        if request.n == 1 or self.url_for(spec) == OPENAI_URL:
            yield from self._stream_once(client, request, spec, cancel)
            return
        for index in range(request.n):
            if cancel.is_set():
                return
            seed = None if request.seed is None else request.seed + index
            single = replace(request, n=1, seed=seed)
            for chunk in self._stream_once(client, single, spec, cancel):
                chunk.index = index  # request-wide usage of a single completion is this completion's
                yield chunk

    def _stream_once(self, client, request: Request, spec: ModelSpec, cancel: threading.Event) -> Iterator[Chunk]:
        params = self._params(request, spec)
        try:
            try:
                stream = client.chat.completions.create(**params)
            except Exception as exc:
                if "max_tokens" in str(exc) and "max_completion_tokens" in str(exc):
                    params["max_completion_tokens"] = params.pop("max_tokens")
                    stream = client.chat.completions.create(**params)
                else:
                    raise
        except Exception as exc:
            raise self._translate(exc, spec) from None
        counted = [0] * request.n  # content chunks: the usage of servers that report none when streaming
        reported = False
        try:
            for event in stream:
                for choice in event.choices:
                    text = (choice.delta.content or "") if choice.delta else ""
                    if text and choice.index < len(counted):
                        counted[choice.index] += 1
                    yield Chunk(text=text, index=choice.index, tokens=self._tokens(choice),
                                finish_reason=choice.finish_reason)
                if event.usage:
                    reported = True
                    yield Chunk(index=-1, usage={"prompt_tokens": event.usage.prompt_tokens,
                                                 "completion_tokens": event.usage.completion_tokens})
                if cancel.is_set():
                    break
        except Exception as exc:
            raise AigcError(
                redact(f"The server at {self.url_for(spec)} broke off the answer: {type(exc).__name__}."),
                "The partial answer is kept; run the cell again once the server is back.",
            ) from None
        finally:
            stream.close()
        if not reported:
            for index, count in enumerate(counted):
                yield Chunk(index=index, usage={"completion_tokens": count, "counted": True})

    def _params(self, request: Request, spec: ModelSpec) -> dict:
        params = dict(model=spec.source, messages=request.messages, stream=True,
                      stream_options={"include_usage": True}, max_tokens=request.max_tokens)
        reasoning = self.url_for(spec) == OPENAI_URL and REASONING_MODEL.match(spec.source)
        if reasoning:
            params["max_completion_tokens"] = params.pop("max_tokens")
        else:
            params.update(temperature=request.temperature, top_p=request.top_p)
        if request.n > 1:
            params["n"] = request.n
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.logprobs:
            params.update(logprobs=True, top_logprobs=5)
        return params

    @staticmethod
    def _tokens(choice) -> list[TokenInfo]:
        content = getattr(getattr(choice, "logprobs", None), "content", None) or []
        return [
            TokenInfo(text=t.token, prob=math.exp(t.logprob),
                      top=[(a.token, math.exp(a.logprob)) for a in (t.top_logprobs or [])])
            for t in content
        ]

    def _translate(self, exc: Exception, spec: ModelSpec) -> AigcError:
        """A short message, with the fix, for every way a request can fail."""
        import openai

        url = self.url_for(spec)
        if isinstance(exc, AigcError):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            return AigcError(f"The server at {url} did not answer within {self.timeout:g} s.",
                             "Raise it with `%config AigcConfig.timeout = 120`, or check the server.")
        if isinstance(exc, openai.APIConnectionError):
            return AigcError(f"Could not connect to {url} (connection refused or unreachable).",
                             "Check that the server is running and the --base-url (host and port) is right.")
        if isinstance(exc, openai.AuthenticationError):
            return AigcError(f"The server at {url} rejected the API key (401).",
                             "Set a valid key with `%aigc key openai` or OPENAI_API_KEY.")
        if isinstance(exc, openai.NotFoundError):
            try:
                available = ", ".join(self.list_models(spec)) or "none"
            except AigcError:
                available = "unknown (the model list could not be read)"
            return AigcError(f"The server at {url} has no model '{spec.source}' (404).",
                             f"Available: {available}.")
        if isinstance(exc, openai.RateLimitError):
            return AigcError(f"The server at {url} is rate-limiting requests (429), even after "
                             f"{self.max_retries} retries.", "Wait a little and run the cell again.")
        if isinstance(exc, openai.InternalServerError):
            return AigcError(f"The server at {url} failed ({exc.status_code}) after {self.max_retries} retries.",
                             "Run the cell again later, or check the server's log.")
        if isinstance(exc, openai.BadRequestError):
            return AigcError(redact(f"The server at {url} refused the request (400): {server_message(exc)}"),
                             "Change the option it names (for example drop --temperature for reasoning models).")
        if isinstance(exc, openai.APIStatusError):
            return AigcError(redact(f"The server at {url} answered {exc.status_code}: {server_message(exc)}"),
                             "Check the model name and options.")
        return AigcError(redact(f"Request to {url} failed: {type(exc).__name__}: {exc}"), "")
