"""Engines by name, and which engine serves a capability for a model."""

from __future__ import annotations

from .errors import AigcError
from .models import LOCAL_ENGINES, ModelRef

LABELS = {"generate": "text generation", "logprobs": "token probabilities", "schema": "JSON-schema output",
          "scores": "next-token scores", "attention": "attention weights", "train": "training",
          "images": "image generation"}
WEIGHTS_WORK = ("scores", "attention", "train")  # needs the weights themselves, not a choice of how to generate


class Registry:
    """``engines`` maps a name ('transformers', 'llama.cpp', 'openai', 'diffusers', …) to an engine object."""

    def __init__(self, engines: dict):
        self.engines = engines
        self._said: set[str] = set()

    def _say_once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            from ..views.outside import say

            say(text)

    def engine(self, ref: ModelRef):
        return self.engines[ref.engine]

    def serving(self, ref: ModelRef, capability: str) -> tuple:
        """(engine, ref) that can do ``capability`` for ``ref``: its own engine, or for a GGUF's weights the
        other local engine (the transformers copy of the default model gives attention and scores)."""
        engine = self.engines[ref.engine]
        if capability in engine.capabilities:
            return engine, ref
        if ref.gguf and capability in WEIGHTS_WORK:
            for name in LOCAL_ENGINES:
                if capability in self.engines[name].capabilities:
                    if ref.from_class:
                        self._say_once(f"The {LABELS.get(capability, capability)} need the model's weights: "
                                       f"{ref.source} loads here in your kernel, from the same file the class server "
                                       "uses. %%gpt's answers still come from the class server.")
                    return self.engines[name], ref.on(name)
        having = [name for name, e in self.engines.items() if capability in e.capabilities]
        label = LABELS.get(capability, capability)
        raise AigcError(f"{ref.name} runs on the {engine.name} engine, which gives no {label}.",
                        f"The {' and '.join(having)} engine{'s' if len(having) > 1 else ''} can: "
                        + ("pick a local model with -m (a folder, Hub id or .gguf file)."
                           if ref.engine == "openai" else f"use --engine {having[0]}."))
