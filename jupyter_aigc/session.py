"""AigcSession: what a kernel remembers (config, model cache, engines, conversation, history, aliases)."""

from __future__ import annotations

import sys

from .core.cache import ModelCache
from .core.config import AigcConfig
from .core.models import ModelRef, resolve
from .core.registry import Registry
from .engines.diffusers import DiffusersEngine
from .engines.image_lab import ImageLabEngine
from .engines.llamacpp import LlamaCppEngine
from .engines.openai import OpenAIEngine
from .engines.openai_images import OpenAIImagesEngine
from .engines.transformers import TransformersEngine
from .record.chat import ChatSession
from .record.history import HistoryStore
from .record.status import StatusPublisher
from .tasks.evaluate import EvalTask
from .tasks.finetune import FinetuneTask
from .tasks.gpt import GptTask
from .tasks.image_lab import ImageLabTask, lab_ref
from .tasks.runner import TextRunner


def notice(message: str) -> None:
    """Progress a user should see (a conversion running): on the line of the wait under way, or on stderr so it
    never mixes with answers."""
    from .views.outside import say
    from .views.waiting import notice as on_the_waiting_line

    if not on_the_waiting_line(message):
        say(message, file=sys.stderr)


class AigcSession:
    """One per kernel: created by %load_ext, kept across %reload_ext. Holds state; tasks do the work."""

    def __init__(self, shell=None):
        self.shell = shell
        self.config = AigcConfig(parent=shell)
        self.cache = ModelCache(int(self.config.cache_budget_gb * 2**30))
        self.chat = ChatSession()
        self.history = HistoryStore()
        self.aliases: dict = {}
        openai = OpenAIEngine(self.config.base_url, self.config.timeout, self.config.max_retries)
        self.engines = {
            "llama.cpp": LlamaCppEngine(self.cache, notice, self.config.threads),
            "transformers": TransformersEngine(self.cache, self.config.device, self.config.dtype, notice),
            "openai": openai,
            "diffusers": DiffusersEngine(self.cache, self.config.device, self.config.dtype),
            "openai-images": OpenAIImagesEngine(openai),
            "image-lab": ImageLabEngine(self.cache, self.config.device),
        }
        self.registry = Registry(self.engines)
        self.runner = TextRunner(self.registry)
        self.gpt = GptTask(self)
        self.evaluate = EvalTask(self)
        self.finetune = FinetuneTask(self)
        self.image_lab = ImageLabTask(self)
        self.adapters: dict = {}  # fine-tuned models by name (ModelRef)
        self.config.observe(self._sync, ["cache_budget_gb", "device", "dtype", "base_url", "timeout", "max_retries",
                                        "threads"])
        self._generating = 0
        self.status = StatusPublisher(self)

    @property
    def generating(self) -> bool:
        """True while a text or image generation runs; the JupyterLab status item shows it."""
        return self._generating > 0

    def begin(self) -> None:
        self._generating += 1
        self.status.publish()

    def end(self) -> None:
        self._generating = max(0, self._generating - 1)
        self.status.publish()

    def _sync(self, change=None) -> None:
        config = self.config
        self.cache.budget_bytes = int(config.cache_budget_gb * 2**30)
        self.engines["llama.cpp"].threads = config.threads  # a running model is rebuilt before its next answer
        for name in ("transformers", "diffusers"):
            self.engines[name].device, self.engines[name].dtype = config.device, config.dtype
        self.engines["image-lab"].device = config.device
        openai = self.engines["openai"]
        openai.base_url, openai.timeout, openai.max_retries = config.base_url, config.timeout, config.max_retries

    def all_aliases(self) -> dict:
        return {**self.config.aliases, **self.aliases}

    def resolve(self, text: str | None, base_url: str | None = None, engine: str | None = None,
                kind: str = "text") -> ModelRef:
        """A model name as typed (None: the configured default) → ModelRef."""
        default = self.config.default_image_model if kind == "image" else self.config.default_model
        if kind == "text" and (text or default) in self.adapters:
            return self.adapters[text or default]
        if kind == "image" and (text or default):
            found = self.image_lab.find((text or default).strip()) or lab_ref(text or default)
            if found is not None:
                return found
        if kind == "text" and not text and not base_url and not engine and self.config.class_url:
            return self.class_ref(default)
        return resolve(text or default, self.all_aliases(), base_url, engine, self.config.gguf_engine, kind)

    def class_ref(self, default: str) -> ModelRef:
        """The default model as the class server serves it (``%aigc connect`` or $JUPYTER_AIGC_CLASS_URL); views
        that need the weights load the same GGUF here (``ModelRef.on``)."""
        local = resolve(default, self.all_aliases(), None, None, self.config.gguf_engine, "text")
        url = self.config.class_url.rstrip("/")
        return ModelRef("openai", local.name, f"{local.name} (class)", url if url.endswith("/v1") else url + "/v1",
                        gguf=local.gguf, default=local.default, key="class")
