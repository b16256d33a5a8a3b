"""ModelCache: the kernel-resident LRU of loaded models, with a memory budget and per-entry stats."""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class CacheEntry:
    """A loaded model (or pipeline) and what the cache knows about it."""

    key: str
    name: str
    value: Any
    device: str
    dtype: str
    nbytes: int
    load_time: float
    hits: int = 0
    last_used: float = field(default_factory=time.monotonic)

    def stats(self) -> dict:
        return {
            "name": self.name,
            "key": self.key,
            "device": self.device,
            "dtype": self.dtype,
            "bytes": self.nbytes,
            "hits": self.hits,
            "load_time": self.load_time,
        }


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

    Loads of the same key are serialised by a per-key lock, so two concurrent requests load once.
    When the bytes held pass ``budget_bytes`` the least recently used entries are evicted.
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.listeners: list[Callable[[], None]] = []

    def get(self, key: str, loader: Callable[[], tuple[Any, str, str]], name: str | None = None) -> Any:
        """Return the cached value for ``key``, calling ``loader`` once if it is absent.

        ``loader`` returns ``(value, device, dtype)``.
        """
        entry = self._hit(key)
        if entry is not None:
            return entry.value
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._hit(key)
            if entry is not None:
                return entry.value
            start = time.perf_counter()
            value, device, dtype = loader()
            entry = CacheEntry(
                key=key,
                name=name or key,
                value=value,
                device=device,
                dtype=dtype,
                nbytes=module_bytes(value),
                load_time=time.perf_counter() - start,
            )
            with self._lock:
                self._entries[key] = entry
                self._evict_over_budget(keep=key)
        self._notify()
        return entry.value

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
            victim = next((k for k in self._entries if k != keep), None)
            if victim is None:
                return
            self._drop(victim)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        entry.value = None
        del entry
        release_memory()

    def find(self, name_or_key: str) -> str | None:
        """The key of the entry whose key or display name is ``name_or_key``."""
        with self._lock:
            for key, entry in self._entries.items():
                if name_or_key in (key, entry.name):
                    return key
        return None

    def evict(self, name_or_key: str) -> bool:
        """Drop one entry and free its memory; False if nothing matched."""
        key = self.find(name_or_key)
        if key is None:
            return False
        with self._lock:
            if key in self._entries:
                self._drop(key)
        self._notify()
        return True

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
                self._drop(key)
        self._notify()

    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

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
    """Collect garbage and hand freed CUDA memory back to the driver."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
