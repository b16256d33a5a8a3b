"""ModelCache: the kernel-resident LRU of loaded models, sized by what each engine reports, with leases."""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass
class Loaded:
    """What an engine's loader returns: the model object and what it costs.

    ``close`` frees what the engine holds outside Python objects (a llama.cpp server); ``base`` is the
    cache key of the model an adapter sits on.
    """

    value: Any
    nbytes: int
    device: str
    dtype: str
    engine: str = ""
    close: Callable[[], None] | None = None
    base: str | None = None


@dataclass
class CacheEntry:
    key: str
    name: str
    loaded: Loaded
    load_time: float
    hits: int = 0
    last_used: float = field(default_factory=time.monotonic)
    readers: int = 0
    writer: bool = False
    evicted: bool = False

    def stats(self) -> dict:
        loaded = self.loaded
        return {"name": self.name, "key": self.key, "engine": loaded.engine, "device": loaded.device,
                "dtype": loaded.dtype, "bytes": loaded.nbytes, "hits": self.hits, "load_time": self.load_time,
                "base": loaded.base}


def pick_device(preferred: str = "") -> str:
    """cuda, then mps, then cpu, unless ``preferred`` names one."""
    import torch

    if preferred:
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, preferred: str = ""):
    """bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on the CPU, unless ``preferred`` names one."""
    import torch

    if preferred:
        return getattr(torch, preferred)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def module_bytes(obj: Any) -> int:
    """Bytes held by the parameters and buffers of a torch module, or of every module in a pipeline."""
    import torch

    modules = [obj] if isinstance(obj, torch.nn.Module) else []
    if not modules and hasattr(obj, "components"):
        modules = [m for m in obj.components.values() if isinstance(m, torch.nn.Module)]
    if not modules and isinstance(obj, tuple):
        modules = [m for m in obj if isinstance(m, torch.nn.Module)]
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


class ModelCache:
    """Holds loaded models by key; a second request is a dictionary hit, never a reload.

    Loads of one key are serialised, so concurrent requests load once. When the bytes held pass
    ``budget_bytes`` the least recently used entries are evicted. ``use`` lends a model: shared for
    generation, exclusive for work that changes it for a while (attention switching, training); an
    evicted model in use is freed when its last user returns it.
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._key_locks: dict[str, threading.Lock] = {}
        self.listeners: list[Callable[[], None]] = []

    def get(self, key: str, loader: Callable[[], Loaded], name: str | None = None) -> Any:
        """The cached value for ``key``, calling ``loader`` once if it is absent."""
        return self._entry(key, loader, name).loaded.value

    @contextmanager
    def use(self, key: str, loader: Callable[[], Loaded], name: str | None = None,
            exclusive: bool = False) -> Iterator[Any]:
        """Lend the model for the ``with`` block; exclusive use waits until no one else holds it."""
        while True:
            entry = self._entry(key, loader, name)
            with self._changed:
                while not entry.evicted and (entry.writer or (exclusive and entry.readers)):
                    self._changed.wait(0.1)
                if entry.evicted:
                    continue  # evicted while we waited: load it again
                if exclusive:
                    entry.writer = True
                else:
                    entry.readers += 1
                break
        try:
            yield entry.loaded.value
        finally:
            with self._changed:
                if exclusive:
                    entry.writer = False
                else:
                    entry.readers -= 1
                self._changed.notify_all()
                if entry.evicted and not entry.readers and not entry.writer:
                    self._close(entry)

    def _entry(self, key: str, loader: Callable[[], Loaded], name: str | None) -> CacheEntry:
        entry = self._hit(key)
        if entry is not None:
            return entry
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._hit(key)
            if entry is not None:
                return entry
            start = time.perf_counter()
            loaded = loader()
            entry = CacheEntry(key=key, name=name or key, loaded=loaded, load_time=time.perf_counter() - start)
            with self._lock:
                self._entries[key] = entry
                self._evict_over_budget(keep=key)
        self._notify()
        return entry

    def _hit(self, key: str) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.hits += 1
            entry.last_used = time.monotonic()
            self._entries.move_to_end(key)
            return entry

    def _evict_over_budget(self, keep: str) -> None:
        while self.total_bytes() > self.budget_bytes:
            victim = next((k for k in self._entries if k != keep and self._entries[k].loaded.base != keep), None)
            if victim is None:
                return
            self._drop(victim)

    def _drop(self, key: str) -> None:
        """Remove ``key`` and the adapters built on it; free each now, or when its last user is done."""
        for other in [k for k, e in self._entries.items() if e.loaded.base == key]:
            self._drop(other)
        entry = self._entries.pop(key)
        entry.evicted = True
        self._changed.notify_all()
        if not entry.readers and not entry.writer:
            self._close(entry)

    @staticmethod
    def _close(entry: CacheEntry) -> None:
        loaded = entry.loaded
        if loaded.close is not None:
            loaded.close()
        loaded.value = None
        release_memory()

    def find(self, name_or_key: str) -> str | None:
        """The key of the entry whose key or display name is ``name_or_key``."""
        with self._lock:
            for key, entry in self._entries.items():
                if name_or_key in (key, entry.name):
                    return key
        return None

    def evict(self, name_or_key: str) -> list[str]:
        """Drop every entry with that key or name (a model can be held by two engines) and the adapters on
        them, and free their memory; the keys dropped (empty if nothing matched)."""
        with self._lock:
            keys = [k for k, e in self._entries.items() if name_or_key in (k, e.name)]
            for key in keys:
                if key in self._entries:
                    self._drop(key)
        if keys:
            self._notify()
        return keys

    def evict_lru(self, keep: str | None = None) -> bool:
        """Drop the least recently used entry other than ``keep`` (to recover from out-of-memory)."""
        with self._lock:
            victim = next((k for k in self._entries if k != keep), None)
            if victim is None:
                return False
            self._drop(victim)
        self._notify()
        return True

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                if key in self._entries:
                    self._drop(key)
        self._notify()

    def total_bytes(self) -> int:
        with self._lock:
            return sum(e.loaded.nbytes for e in self._entries.values())

    def stats(self) -> list[dict]:
        with self._lock:
            return [e.stats() for e in self._entries.values()]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener()


def release_memory() -> None:
    """Collect garbage and hand freed CUDA memory back to the driver (without importing torch)."""
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
