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
from .base import GENERATE, LOGPROBS, SCHEMA, FinishWithUsage, chunk_from_event, threaded_stream

SLOTS = 4
MAX_CONTEXT = 8192
TOP_ALTERNATIVES = 5


FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
              12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
              32: "BF16"}
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_metadata(path: Path) -> dict:
    """The scalar key/value metadata of a GGUF file, read from its header (arrays such as the vocabulary are
    skipped, so this takes milliseconds where gguf.GGUFReader takes seconds)."""
    import struct

    with open(path, "rb") as f:
        def read(fmt: str):
            size = struct.calcsize("<" + fmt)
            data = f.read(size)
            if len(data) != size:
                raise ValueError("the file ends inside its header")
            return struct.unpack("<" + fmt, data)[0]

        def string() -> bytes:
            return f.read(read("Q"))

        if f.read(4) != b"GGUF":
            raise ValueError("it does not start with the GGUF magic number")
        version = read("I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        read("Q")
        metadata = {}
        for _ in range(read("Q")):
            key = string().decode("utf-8", "replace")
            kind = read("I")
            if kind in _SCALARS:
                metadata[key] = read(_SCALARS[kind])
            elif kind == 8:
                metadata[key] = string().decode("utf-8", "replace")
            elif kind == 9:
                item, count = read("I"), read("Q")
                if item == 8:
                    for _ in range(count):
                        f.seek(read("Q"), 1)
                elif item in _SCALARS:
                    f.seek(count * struct.calcsize("<" + _SCALARS[item]), 1)
                else:
                    raise ValueError(f"unsupported array type {item}")
            else:
                raise ValueError(f"unknown value type {kind}")
    return metadata


def gguf_shape(path: Path) -> dict:
    """Context length and the KV-cache geometry of a GGUF model."""
    meta = gguf_metadata(path)
    arch = meta.get("general.architecture", "llama")
    heads = meta.get(f"{arch}.attention.head_count", 1)
    kv_heads = meta.get(f"{arch}.attention.head_count_kv", heads)
    head_dim = meta.get(f"{arch}.attention.key_length") or meta.get(f"{arch}.embedding_length", 0) // max(heads, 1)
    return {"context": meta.get(f"{arch}.context_length", MAX_CONTEXT), "layers": meta.get(f"{arch}.block_count", 0),
            "kv_width": kv_heads * head_dim, "dtype": FILE_TYPES.get(meta.get("general.file_type"), "GGUF")}


class LlamaCppEngine:
    """Serves .gguf files (and the default model, from its F16 copy) with llama.cpp."""

    name = "llama.cpp"
    capabilities = frozenset({GENERATE, LOGPROBS, SCHEMA})
    batching = True  # requests share a batch, which changes the last bits of the numbers

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

    def prepare(self, ref: ModelRef, key_env: str | None = None) -> None:
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
        return Loaded(value=holder, nbytes=path.stat().st_size + kv_bytes, device="cpu", dtype=shape["dtype"],
                      engine=self.name, close=holder.clear)

    def stream(self, request: Request, ref: ModelRef, cancel: threading.Event,
               key_env: str | None = None) -> Iterator[Chunk]:
        body = self.body(request)
        source = f"llama.cpp ({ref.name})"

        def produce(emit) -> None:
            emit = FinishWithUsage(emit)
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
                emit.flush()

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
