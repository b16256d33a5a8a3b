"""LlamaCppEngine: GGUF models in the kernel through llama.cpp's own server code (xllamacpp, prebuilt wheel).

One ``xllamacpp.Server`` per model, with ``SLOTS`` parallel slots over one unified KV cache, so ``-n`` and
comparisons on one model run together (continuous batching). Requests are OpenAI-format dicts handled
in-process; the server's loopback HTTP listener gets a random key so no other process can use it.

Threads: llama.cpp's CPU threads meet at a spinning barrier after every operation, so two servers that each
want every core (several kernels answering at once, or one beside a busy program) slow each other to a crawl.
Each server announces itself with an ``EngineLease``; its thread count is the machine's cores shared among
the engines answering on it, less the cores other work keeps busy, chosen at load and checked again before
a request, when the server is rebuilt if the count should change (``AigcConfig.threads`` pins it).
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no leases, each engine counts only itself
    fcntl = None

from ..core.machine import busy_threads, choose_threads, machine_cores  # noqa: F401 (tests patch them here)
from ..core.cache import Loaded, ModelCache
from ..core.convert import f16_gguf, heal
from ..core.errors import AigcError
from ..core.models import ModelRef
from ..core.types import Chunk, Request
from .base import GENERATE, LOGPROBS, SCHEMA, FinishWithUsage, chunk_from_event, threaded_stream

SLOTS = 4
MAX_CONTEXT = 8192
TOP_ALTERNATIVES = 5
ACTIVE_S = 60.0  # an engine that answered (or loaded) this recently counts as answering
RAISE_AFTER_S = 60.0  # a server runs this long before it is rebuilt with more threads (fewer: at once)


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


def lease_dir() -> Path | None:
    """The per-user folder where running llama.cpp engines announce themselves; None if it is unsafe."""
    from ..core.config import private_folder, user_temp_folder

    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) / "jupyter_aigc" if base else user_temp_folder()
    folder = root / "llama.cpp"
    # someone else's folder (or a link they planted) is neither trusted nor fed
    return folder if private_folder(root) and private_folder(folder) else None


def _held(path: Path) -> bool:
    """Whether a live engine holds ``path`` (its flock; without flock support, whether its pid is alive)."""
    try:
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:
                try:
                    os.kill(int(path.name.split("-")[0]), 0)
                    return True
                except (ValueError, ProcessLookupError):
                    return False
                except PermissionError:
                    return True
            return False
    except OSError:
        return False


def active_engines(folder: Path | None, own: Path | None = None) -> int:
    """Other llama.cpp engines of this user on this machine that are answering now or did within
    ``ACTIVE_S``; files left by dead processes are removed."""
    if folder is None or fcntl is None:
        return 0
    count, now = 0, time.time()
    for path in folder.glob("*.lease"):
        if path == own:
            continue
        if not _held(path):
            for stale in (path, path.with_suffix(".busy")):
                stale.unlink(missing_ok=True)
            continue
        try:
            recent = now - path.stat().st_mtime < ACTIVE_S
        except OSError:
            continue
        count += recent or path.with_suffix(".busy").exists()
    return count


class EngineLease:
    """A running llama.cpp server, announced to the other kernels on this machine: a file in ``folder``
    held under flock for the server's life (the lock dies with the process), with a ``.busy`` twin while it
    answers and its time touched when an answer ends."""

    def __init__(self, folder: Path | None):
        self.path: Path | None = None
        self._file = None
        self._answering = 0
        self._lock = threading.Lock()
        if folder is None or fcntl is None:
            return
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        try:
            staging = folder / f"{name}.new"  # locked before it gets the name others count
            self._file = open(staging, "w")
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.path = staging.rename(folder / f"{name}.lease")
        except OSError:
            self.release()

    @contextmanager
    def answering(self) -> Iterator[None]:
        self._mark(+1)
        try:
            yield
        finally:
            self._mark(-1)

    def _mark(self, step: int) -> None:
        if self.path is None:
            return
        with self._lock:
            self._answering += step
            try:
                if step > 0 and self._answering == 1:
                    self.path.with_suffix(".busy").touch()
                elif step < 0 and self._answering == 0:
                    self.path.with_suffix(".busy").unlink(missing_ok=True)
                    os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        if self.path is not None:
            for path in (self.path.with_suffix(".busy"), self.path):
                path.unlink(missing_ok=True)
            self.path = None
        if self._file is not None:
            self._file.close()  # also drops the lock
            self._file = None


class RunningServer:
    """What the cache holds for one llama.cpp model: its server (``[0]``), the thread count it was built
    with and its lease. Before a request, when no other request is in flight, it is rebuilt if the machine
    now asks for fewer threads (or, after ``RAISE_AFTER_S``, for more)."""

    def __init__(self, build: Callable[[int], object], threads: int, lease: EngineLease):
        self.build, self.lease = build, lease
        self.server, self.threads, self.built, self.rebuilds = None, threads, 0.0, -1
        self.closed = False
        self._in_flight = 0
        self._lock = threading.Lock()
        self._rebuild(threads)

    def __getitem__(self, index: int):
        if index != 0:
            raise IndexError(index)
        return self.server

    @contextmanager
    def request(self, want: Callable[[], tuple[int, bool]]) -> Iterator[object]:
        """The server for one request; ``want`` gives the thread count to have and whether it is pinned."""
        with self._lock:
            if self.closed:
                raise AigcError("This llama.cpp model was closed.", "Run the cell again to load it.")
            age = time.monotonic() - self.built
            if self.server is None:  # an earlier rebuild failed
                self._rebuild(want()[0])
            elif self._in_flight == 0:
                threads, pinned = want()
                if threads < self.threads or (threads > self.threads and (pinned or age > RAISE_AFTER_S)):
                    self._rebuild(threads)
            self._in_flight += 1
            server = self.server
        try:
            with self.lease.answering():
                yield server
        finally:
            with self._lock:
                self._in_flight -= 1

    def _rebuild(self, threads: int) -> None:
        self.server = None  # the old server stops (and frees its KV cache) before the new one starts
        self.server = self.build(threads)
        self.threads, self.built, self.rebuilds = threads, time.monotonic(), self.rebuilds + 1

    def close(self) -> None:
        self.closed, self.server = True, None
        self.lease.release()


class LlamaCppEngine:
    """Serves .gguf files (and the default model, from its F16 copy) with llama.cpp."""

    name = "llama.cpp"
    capabilities = frozenset({GENERATE, LOGPROBS, SCHEMA})
    batching = True  # requests share a batch, which changes the last bits of the numbers

    def __init__(self, cache: ModelCache, progress: Callable[[str], None] = print, threads: int = 0):
        self.cache = cache
        self.progress = progress
        self.threads = threads  # 0: chosen from the machine's load (AigcConfig.threads)
        self.leases = lease_dir()

    def want_threads(self, lease: EngineLease) -> tuple[int, bool]:
        """(threads a server should run now, whether the user pinned it)."""
        if self.threads > 0:
            return self.threads, True
        others = active_engines(self.leases, lease.path)
        return choose_threads(machine_cores(), 1 + others, busy_threads()), False

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
        try:
            shape = gguf_shape(path)
        except Exception as exc:
            raise AigcError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}).",
                            "Check the file (a download may have been cut short), or pick another model.") from None
        n_ctx = min(int(shape["context"]) or MAX_CONTEXT, MAX_CONTEXT)
        lease = EngineLease(self.leases)  # announced before it loads, so kernels starting together see it
        try:
            running = RunningServer(lambda threads: self._server(path, n_ctx, threads),
                                    self.want_threads(lease)[0], lease)
        except BaseException:
            lease.release()
            raise
        kv_bytes = n_ctx * shape["layers"] * shape["kv_width"] * 2 * 2  # K and V, f16
        return Loaded(value=running, nbytes=path.stat().st_size + kv_bytes, device="cpu", dtype=shape["dtype"],
                      engine=self.name, close=running.close)

    @staticmethod
    def _server(path: Path, n_ctx: int, threads: int):
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = SLOTS
        params.kv_unified = True
        params.warmup = False
        params.verbosity = -1
        params.hostnames = ["127.0.0.1"]
        params.api_keys = [secrets.token_urlsafe(24)]
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = threads
            cpu.poll = 0  # idle threads sleep instead of spinning on cores another process needs
        handler = signal.getsignal(signal.SIGINT)
        try:
            return xllamacpp.Server(params)
        except RuntimeError:
            raise AigcError(f"llama.cpp could not load {path}: it is not a valid GGUF model for this version.",
                            "Check the file (a download may have been cut short), or pick another model.") from None
        finally:
            if threading.current_thread() is threading.main_thread() and handler is not None:
                signal.signal(signal.SIGINT, handler)  # llama.cpp installs its own; Kernel → Interrupt needs ours

    def stream(self, request: Request, ref: ModelRef, cancel: threading.Event,
               key_env: str | None = None) -> Iterator[Chunk]:
        body = self.body(request)
        source = f"llama.cpp ({ref.name})"

        def produce(emit) -> None:
            emit = FinishWithUsage(emit)
            with self.cache.use(self.key(ref), lambda: self._load(ref), name=ref.name) as running, \
                    running.request(lambda: self.want_threads(running.lease)) as server:
                failure: list[BaseException] = []

                def callback(event) -> bool:
                    try:
                        chunk = chunk_from_event(event, source)
                    except AigcError as exc:
                        failure.append(exc)
                        return True
                    return emit(chunk) if chunk is not None else cancel.is_set()

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
            # A cached prompt is reused by evaluating only its last token(s), which changes the last bits of
            # the numbers: a seeded request evaluates its whole prompt, so it answers the same every time.
            body.update(seed=request.seed, cache_prompt=False)
        if request.stop:
            body["stop"] = list(request.stop)
        if request.logprobs:
            body.update(logprobs=TOP_ALTERNATIVES if request.raw else True, top_logprobs=TOP_ALTERNATIVES)
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": request.schema}}
        return body
