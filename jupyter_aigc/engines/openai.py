"""OpenAIEngine: the official openai SDK against OpenAI or any OpenAI-compatible server.

Chat requests use /v1/chat/completions; ``--raw`` uses the Completion API (/v1/completions). The HTTP
work runs in a producer thread, so Stop and Kernel → Interrupt end the cell at once even when a server
accepts the connection and never answers.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Iterator

from ..core.errors import AigcError
from ..core.keys import redact, remember_url_secret, resolve_key
from ..core.models import ModelRef
from ..core.types import Chunk, Request
from .base import GENERATE, LOGPROBS, SCHEMA, FinishWithUsage, chunk_from_event, event_error, threaded_stream

OPENAI_URL = "https://api.openai.com/v1"
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
LOCAL_HOSTS = ("127.", "localhost", "[::1]", "0.0.0.0")
TOP_ALTERNATIVES = 5


def is_local_url(url: str | None) -> bool:
    host = (url or "").split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return host.startswith(LOCAL_HOSTS)


def server_message(exc) -> str:
    """The server's own error text (``{"error": {"message": …}}``), not the SDK's wrapper around it."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


def _snippet(text: str, size: int = 80) -> str:
    words = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return words[:size] + ("…" if len(words) > size else "")


class EventStream:
    """The server-sent events of a streamed answer, each ``data:`` JSON object as a dict, read from the HTTP
    response with httpx-sse. The SDK's own Stream builds a pydantic object per event: on two cores that CPU is
    taken from the llama.cpp server the answers come from (measured with promptfoo's 96 answers, benchmark B9).
    Events named other than ``error`` are not answer chunks and are skipped, as the SDK does; ``[DONE]`` ends it."""

    def __init__(self, response):
        self.response = response

    def __iter__(self) -> Iterator[dict]:
        from httpx_sse import EventSource

        for event in EventSource(self.response).iter_sse():
            if event.data.startswith("[DONE]"):
                return
            if event.data and event.event in ("message", "error"):
                value = json.loads(event.data)
                if not isinstance(value, dict):
                    raise json.JSONDecodeError("an event that is not a JSON object", event.data, 0)
                yield value

    def close(self) -> None:
        self.response.close()


class OpenAIEngine:
    """Completions through ``openai.OpenAI``; honours OPENAI_API_KEY and OPENAI_BASE_URL."""

    name = "openai"
    capabilities = frozenset({GENERATE, LOGPROBS, SCHEMA})
    batching = False  # what a server does with concurrent requests is the server's business

    def __init__(self, base_url: str = "", timeout: float = 60.0, max_retries: int = 2):
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._clients: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def parallel(self, ref: ModelRef) -> int:
        return 8

    def prepare(self, ref: ModelRef, key_env: str | None = None) -> None:
        self.client(ref, key_env)  # a missing key fails here, before any output

    def url_for(self, ref: ModelRef) -> str:
        url = (ref.base_url or self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        remember_url_secret(url)
        return url

    def client(self, ref: ModelRef, key_env: str | None = None):
        import openai

        url = self.url_for(ref)
        key = resolve_key(ref.key, key_env, local_server=ref.key != "class" and url != OPENAI_URL and is_local_url(url))
        cache_key = (url, hash(key), self.timeout, self.max_retries)
        with self._lock:
            if cache_key not in self._clients:
                self._clients[cache_key] = openai.OpenAI(
                    api_key=key, base_url=url, timeout=self.timeout, max_retries=self.max_retries)
            return self._clients[cache_key]

    def list_models(self, ref: ModelRef, key_env: str | None = None) -> list[str]:
        client = self.client(ref, key_env)
        started = time.monotonic()
        try:
            return sorted(m.id for m in client.models.list())
        except Exception as exc:
            raise self.translate(exc, ref, started) from None

    def stream(self, request: Request, ref: ModelRef, cancel: threading.Event,
               key_env: str | None = None) -> Iterator[Chunk]:
        client = self.client(ref, key_env)
        url = self.url_for(ref)

        def produce(emit) -> None:
            emit = FinishWithUsage(emit)
            started = time.monotonic()
            try:
                stream = self._open(client, request, ref)
            except Exception as exc:
                raise self.translate(exc, ref, started, raw=request.raw) from None
            try:
                for event in stream:
                    chunk = chunk_from_event(event, f"The server at {url}")
                    if chunk is not None and emit(chunk):
                        return
            except AigcError:
                raise
            except json.JSONDecodeError:
                raise AigcError(f"The server at {url} sent an event that is not JSON.",
                                "It does not speak the OpenAI streaming protocol; check --base-url.") from None
            except Exception as exc:
                raise AigcError(
                    redact(f"The server at {url} broke off the answer ({type(exc).__name__})."),
                    "The partial answer is kept and marked cut off; run the cell again once the server is back.",
                ) from None
            finally:
                stream.close()
            emit.flush()

        yield from threaded_stream(produce, cancel, name="aigc-openai")

    def _open(self, client, request: Request, ref: ModelRef):
        """Start the streamed request; an answer that is not an event stream (an HTML page) is an error."""
        params = self.params(request, ref)
        api = client.completions if request.raw else client.chat.completions
        try:
            raw = api.with_raw_response.create(**params)
        except Exception as exc:
            if "max_tokens" in str(exc) and "max_completion_tokens" in str(exc) and not request.raw:
                params["max_completion_tokens"] = params.pop("max_tokens")
                raw = api.with_raw_response.create(**params)
            else:
                raise
        kind = raw.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            body = raw.http_response.read().decode("utf-8", "replace")
            try:
                error = json.loads(body).get("error")
            except (ValueError, AttributeError):
                error = None
            if error:
                raise event_error(error, f"The server at {self.url_for(ref)}")
            raise AigcError(redact(f"The server at {self.url_for(ref)} answered with {kind or 'no content type'}, "
                                   f"not an OpenAI event stream: '{_snippet(body)}'."),
                            "Check --base-url: it usually ends in /v1 and names an OpenAI-compatible server.")
        return EventStream(raw.http_response)

    def params(self, request: Request, ref: ModelRef) -> dict:
        params = dict(model=ref.source, stream=True, stream_options={"include_usage": True},
                      max_tokens=request.max_tokens)
        if request.raw:
            params["prompt"] = request.prompt_text()
        else:
            params["messages"] = request.messages
        reasoning = self.url_for(ref) == OPENAI_URL and REASONING_MODEL.match(ref.source)
        if reasoning:
            params["max_completion_tokens"] = params.pop("max_tokens")
        else:
            params.update(temperature=request.temperature, top_p=request.top_p)
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.logprobs:
            if request.raw:
                params["logprobs"] = TOP_ALTERNATIVES
            else:
                params.update(logprobs=True, top_logprobs=TOP_ALTERNATIVES)
        if request.schema is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "schema": request.schema}}
        return params

    def translate(self, exc: Exception, ref: ModelRef, started: float, raw: bool = False) -> AigcError:
        """A short message, with the fix, for every way a request can fail; times are the real ones."""
        import openai

        url = self.url_for(ref)
        waited = time.monotonic() - started
        tries = f"{1 + self.max_retries} attempts in {waited:.0f} s" if self.max_retries else f"{waited:.0f} s"
        if isinstance(exc, AigcError):
            return exc
        if ref.from_class and isinstance(exc, openai.APIStatusError):  # the class server's message says it all
            return AigcError(redact(f"The class server at {url}: {server_message(exc)}"), "")
        if isinstance(exc, openai.APITimeoutError):
            return AigcError(f"The server at {url} did not answer ({tries}, {self.timeout:g} s each).",
                             "Check the server, or raise `%config AigcConfig.timeout = 120`.")
        if isinstance(exc, openai.APIConnectionError):
            return AigcError(f"Could not connect to {url}: connection refused or unreachable ({tries}).",
                             "Check that the server is running and the --base-url (host and port) is right.")
        if isinstance(exc, openai.AuthenticationError):
            return AigcError(f"The server at {url} rejected the API key (401).",
                             "Set a valid key with `%aigc key openai` or OPENAI_API_KEY.")
        if isinstance(exc, openai.NotFoundError):
            try:
                names = self.list_models(ref)
                available = ", ".join(names) or "none"
            except AigcError:
                names, available = None, "unknown (the model list could not be read)"
            if raw and (names is None or ref.source in names):
                return AigcError(f"The server at {url} has no Completion API: /completions answered 404 (--raw).",
                                 "The server speaks chat only; drop --raw to send the prompt as a chat message.")
            return AigcError(redact(f"The server at {url} has no model '{ref.source}' (404)."),
                             redact(f"Available: {available}."))
        if isinstance(exc, openai.RateLimitError):
            return AigcError(f"The server at {url} is rate-limiting requests (429; {tries}).",
                             "Wait a little and run the cell again.")
        if isinstance(exc, openai.InternalServerError):
            return AigcError(f"The server at {url} failed ({exc.status_code}; {tries}).",
                             "Run the cell again later, or check the server's log.")
        if isinstance(exc, openai.BadRequestError):
            return AigcError(redact(f"The server at {url} refused the request (400): {server_message(exc)}"),
                             "Change the option it names (for example drop --temperature for reasoning models).")
        if isinstance(exc, openai.APIStatusError):
            return AigcError(redact(f"The server at {url} answered {exc.status_code}: {server_message(exc)}"),
                             "Check the model name and options.")
        return AigcError(redact(f"Request to {url} failed: {type(exc).__name__}: {exc}"), "")

