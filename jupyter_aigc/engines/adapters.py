"""LoRA adapters over a cached transformers model, with peft: one copy of the base weights, many adapters.

Adapter layers stay *disabled* on the shared model, so every cell that uses the base gets the base, with no
lease of its own kind. A cell that uses an adapter holds the model exclusively, enables and selects its
adapter, and disables the layers again when it is done; training does the same.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import AigcError


class Adapters:
    """The peft wrappers of the cached models, by the cache key of their base."""

    def __init__(self):
        self._wrappers: dict[str, object] = {}
        self._stale: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def wrapper(self, base_key: str):
        return self._wrappers.get(base_key)

    def names(self, base_key: str) -> list[str]:
        wrapper = self._wrappers.get(base_key)
        names = list(wrapper.peft_config) if wrapper is not None else []
        return [n for n in names if (base_key, n) not in self._stale]

    def create(self, base_key: str, model, name: str, config):
        """A new (untrained) adapter ``name`` on ``model``; an adapter of that name is replaced."""
        from peft import get_peft_model

        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes inside peft
            wrapper = self._wrappers.get(base_key)
            if wrapper is None:
                wrapper = get_peft_model(model, config, adapter_name=name)
                self._wrappers[base_key] = wrapper
            else:
                if name in wrapper.peft_config:
                    wrapper.delete_adapter(name)
                wrapper.add_adapter(name, config)
            wrapper.base_model.disable_adapter_layers()
            return wrapper

    def load(self, base_key: str, model, name: str, folder: str) -> None:
        """Load a saved adapter onto ``model`` (a later kernel using ``-m`` on the saved folder)."""
        from peft import PeftModel

        path = Path(folder)
        source = path / name if (path / name / "adapter_config.json").is_file() else path
        try:
            with self._lock, warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes inside peft
                wrapper = self._wrappers.get(base_key)
                if wrapper is None:
                    self._wrappers[base_key] = PeftModel.from_pretrained(model, str(source), adapter_name=name)
                elif name not in wrapper.peft_config:
                    wrapper.load_adapter(str(source), adapter_name=name)
                self._wrappers[base_key].base_model.disable_adapter_layers()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise AigcError(f"Could not load the adapter {name} from {folder}: {type(exc).__name__}: "
                            f"{(str(exc).splitlines() or [''])[0]}",
                            "Give the folder %%aigc_finetune saved, over the base model it was trained on.") from None

    def plain_copy(self, base_key: str, model):
        """A deep copy of ``model`` without any adapter layers, every weight trainable (for --full); the caller
        holds the model exclusively."""
        import copy

        with self._lock:
            wrapper = self._wrappers.get(base_key)
            twin = copy.deepcopy(wrapper).unload() if wrapper is not None else copy.deepcopy(model)
        return twin.requires_grad_(True)

    @contextmanager
    def active(self, base_key: str, name: str):
        """Adapter ``name`` switched on for the ``with`` block (the caller holds the model exclusively)."""
        wrapper = self._wrappers[base_key]
        wrapper.base_model.enable_adapter_layers()
        wrapper.set_adapter(name)
        try:
            yield wrapper
        finally:
            wrapper.base_model.disable_adapter_layers()

    def delete(self, base_key: str, name: str) -> None:
        """Mark an evicted adapter; its layers go at the next exclusive use of the base (``purge``), so no
        cell generating with the base sees its modules change."""
        with self._lock:
            self._stale.add((base_key, name))

    def purge(self, base_key: str) -> None:
        """Remove the marked adapters of ``base_key`` (the caller holds the model exclusively)."""
        with self._lock:
            wrapper = self._wrappers.get(base_key)
            for key, name in [s for s in self._stale if s[0] == base_key]:
                self._stale.discard((key, name))
                if wrapper is None or name not in wrapper.peft_config:
                    continue
                if len(wrapper.peft_config) == 1:
                    wrapper.unload()  # the base model without LoRA layers again
                    del self._wrappers[base_key]
                    wrapper = None
                else:
                    wrapper.delete_adapter(name)

    def forget(self, base_key: str) -> None:
        """The base was evicted: its wrapper goes with it."""
        with self._lock:
            self._wrappers.pop(base_key, None)
            self._stale = {s for s in self._stale if s[0] != base_key}

    def nbytes(self, base_key: str, name: str) -> int:
        wrapper = self._wrappers[base_key]
        return sum(p.numel() * p.element_size() for n, p in wrapper.named_parameters() if f".{name}." in n)
