"""LlamaCppEngine: GGUF models in the kernel through llama.cpp's own server code (xllamacpp, prebuilt wheel).

One ``xllamacpp.Server`` per model, with ``SLOTS`` parallel slots over one unified KV cache, so ``-n`` and
comparisons on one model run together (continuous batching). Requests are OpenAI-format dicts handled
in-process; the server's loopback HTTP listener gets a random key so no other process can use it.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Callable, Iterator

from ..core.cache import Loaded, ModelCache
from ..core.convert import f16_gguf, heal
from ..core.errors import AigcError
from ..core.models import ModelRef
from ..core.types import Chunk, Request
from .base import GENERATE, LOGPROBS, SCHEMA, chunk_from_event, threaded_stream

SLOTS = 4
MAX_CONTEXT = 8192
TOP_ALTERNATIVES = 5


def gguf_shape(path: Path) -> dict:
    """Context length and the KV-cache geometry from a GGUF file's metadata (memory-mapped, no weights read)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    arch = reader.fields["general.architecture"].contents()

    def value(key: str, default=0):
        field = reader.fields.get(f"{arch}.{key}")
        return field.contents() if field is not None else default

    heads = value("attention.head_count", 1)
    heads = max(heads) if isinstance(heads, list) else heads
    kv_heads = value("attention.head_count_kv", heads)
    kv_heads = max(kv_heads) if isinstance(kv_heads, list) else kv_heads
    embedding = value("embedding_length", 0)
    head_dim = value("attention.key_length", 0) or (embedding // heads if heads else 0)
    return {"context": value("context_length", MAX_CONTEXT), "layers": value("block_count", 0),
            "kv_width": kv_heads * head_dim}


class LlamaCppEngine:
    """Serves .gguf files (and the default model, from its F16 copy) with llama.cpp."""

    name = "llama.cpp"
    capabilities = frozenset({GENERATE, LOGPROBS, SCHEMA})

    def __init__(self, cache: ModelCache, progress: Callable[[str], None] = print):
        self.cache = cache
        self.progress = progress

    def parallel(self, ref: ModelRef) -> int:
        return SLOTS

    def key(self, ref: ModelRef) -> str:
        return f"llama.cpp:{ref.source}"

    def weights(self, ref: ModelRef) -> Path:
        """The file llama.cpp loads: the default model's F16 copy (greedy answers stay right), else the file."""
        return f16_gguf(Path(ref.gguf), self.progress) if ref.default else Path(ref.source)

    def prepare(self, ref: ModelRef) -> None:
        with self.cache.use(self.key(ref), lambda: self._load(ref), name=ref.name):
            pass

    def _load(self, ref: ModelRef) -> Loaded:
        path = self.weights(ref)
        try:
            return self._start(path)
        except AigcError:
            if not ref.default:
                raise
        heal(path, RuntimeError("llama.cpp could not load it"))
        return self._start(self.weights(ref))

    def _start(self, path: Path) -> Loaded:
        import xllamacpp

        try:
            shape = gguf_shape(path)
        except Exception as exc:
            raise AigcError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}).",
                            "Check the file (a download may have been cut short), or pick another model.") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = min(int(shape["context"]) or MAX_CONTEXT, MAX_CONTEXT)
        params.n_parallel = SLOTS
        params.kv_unified = True
        params.warmup = False
        params.verbosity = -1
        params.hostnames = ["127.0.0.1"]
        params.api_keys = [secrets.token_urlsafe(24)]
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        handler = signal.getsignal(signal.SIGINT)
        try:
            server = xllamacpp.Server(params)
        except RuntimeError:
            raise AigcError(f"llama.cpp could not load {path}: it is not a valid GGUF model for this version.",
                            "Check the file (a download may have been cut short), or pick another model.") from None
        finally:
            if threading.current_thread() is threading.main_thread() and handler is not None:
                signal.signal(signal.SIGINT, handler)  # llama.cpp installs its own; Kernel → Interrupt needs ours
        holder = [server]
        kv_bytes = params.n_ctx * shape["layers"] * shape["kv_width"] * 2 * 2  # K and V, f16
        return Loaded(value=holder, nbytes=path.stat().st_size + kv_bytes, device="cpu",
                      dtype=path.stem.split(".")[-1] if path.name != "model.gguf" else "F16",
                      engine=self.name, close=holder.clear)

    def stream(self, request: Request, ref: ModelRef, cancel: threading.Event,
               key_env: str | None = None) -> Iterator[Chunk]:
        body = self.body(request)
        source = f"llama.cpp ({ref.name})"

        def produce(emit) -> None:
            with self.cache.use(self.key(ref), lambda: self._load(ref), name=ref.name) as holder:
                failure: list[BaseException] = []

                def callback(event) -> bool:
                    try:
                        chunk = chunk_from_event(event, source)
                    except AigcError as exc:
                        failure.append(exc)
                        return True
                    return emit(chunk) if chunk is not None else cancel.is_set()

                server = holder[0]
                if request.raw:
                    server.handle_completions(body, callback)
                else:
                    server.handle_chat_completions(body, callback)
                if failure:
                    raise failure[0]

        yield from threaded_stream(produce, cancel, name="aigc-llama.cpp")

    @staticmethod
    def body(request: Request) -> dict:
        body = {"max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
                "stream": True, "stream_options": {"include_usage": True}}
        if request.raw:
            body["prompt"] = request.prompt_text()
        else:
            body["messages"] = request.messages
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.logprobs:
            body.update(logprobs=TOP_ALTERNATIVES if request.raw else True, top_logprobs=TOP_ALTERNATIVES)
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": request.schema}}
        return body
