"""TransformersEngine: folders, Hub ids and converted GGUFs with transformers/torch.

It serves what llama.cpp cannot: attention weights, raw next-token scores, training and GPUs. Generation
runs in long-lived worker threads (a new thread per answer would start a new OpenMP team each time) and
streams through a transformers streamer whose ``put`` turns token ids into chunks.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..core.cache import Loaded, ModelCache, module_bytes, pick_device, pick_dtype
from ..core.convert import heal, safetensors_folder
from ..core.errors import AigcError
from ..core.models import ModelRef
from ..core.types import Chunk, Request, TokenInfo
from .adapters import Adapters
from .base import ATTENTION, GENERATE, LOGPROBS, SCORES, TRAIN, threaded_stream

TOP_ALTERNATIVES = 5


def load_text_model(source: str, device: str, dtype) -> tuple:
    """(model, tokenizer) from a folder or Hub id, on ``device`` in ``dtype``, in eval mode.

    A model that is not a causal LM (BERT-style) loads as a plain AutoModel (for the attention view).
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    def load(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
        except ValueError:
            model = AutoModel.from_pretrained(source, dtype=dtype, local_files_only=local_only)
        return model, tokenizer

    try:
        try:
            model, tokenizer = load(local_only=True)  # folders and Hub ids already downloaded: no network
        except OSError:
            if Path(source).is_dir():
                raise
            model, tokenizer = load(local_only=False)
    except OSError as exc:
        if Path(source).is_dir():
            raise
        raise AigcError(
            f"Could not load '{source}': it is not a local model folder and the Hub could not provide it.",
            "Check the name, or download the model where the Hub is reachable and pass its folder with -m.",
        ) from exc
    except (ValueError, KeyError, RuntimeError, EnvironmentError) as exc:
        if Path(source).is_dir():
            raise  # a converted copy: the engine heals it; a user's folder: see _load
        raise AigcError(f"'{source}' is not a model transformers can load: {str(exc).splitlines()[0]}",
                        "Pass a model folder saved with save_pretrained, or a Hub id.") from exc
    except Exception as exc:  # safetensors' own errors for a truncated file
        if Path(source).is_dir():
            raise
        raise AigcError(f"Could not load '{source}': {type(exc).__name__}: {str(exc).splitlines()[0]}", "") from exc
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def is_causal(model) -> bool:
    config = model.config
    return bool(getattr(config, "is_decoder", False)) or any(
        a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or [])
    ) or type(model).__name__.endswith("ForCausalLM")


def context_length(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


class TransformersEngine:
    """Generates with a transformers model held in the kernel's ModelCache."""

    name = "transformers"
    capabilities = frozenset({GENERATE, LOGPROBS, SCORES, ATTENTION, TRAIN})
    batching = False

    def __init__(self, cache: ModelCache, device: str = "", dtype: str = "",
                 progress: Callable[[str], None] = print):
        self.cache = cache
        self.device = device
        self.dtype = dtype
        self.progress = progress
        self.adapters = Adapters()
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aigc-generate")

    def parallel(self, ref: ModelRef) -> int:
        return 1

    def key(self, ref: ModelRef) -> str:
        """The cache key of the weights (an adapter's is its base's: one copy of the base weights)."""
        return f"transformers:{(ref.base or ref).source}"

    def prepare(self, ref: ModelRef, key_env: str | None = None) -> None:
        with self.use(ref):
            pass

    @contextmanager
    def use(self, ref: ModelRef, exclusive: bool = False):
        """Lend ``(model, tokenizer)`` from the cache; exclusive use for work that changes the model.

        For an adapter the model is held exclusively with that adapter switched on (loaded from its folder
        the first time); for the base, adapter layers are off.
        """
        base = ref.base or ref
        key = self.key(ref)
        with self.cache.use(key, lambda: self._load(base), name=base.name,
                            exclusive=exclusive or ref.adapter is not None) as (model, tokenizer):
            if ref.adapter is None:
                yield model, tokenizer
                return
            self.adapters.purge(key)
            if ref.adapter not in self.adapters.names(key):
                if not ref.adapter_path:
                    raise AigcError(f"The adapter {ref.adapter} is no longer loaded and was never saved.",
                                    "Train it again with %%aigc_finetune.")
                self.adapters.load(key, model, ref.adapter, ref.adapter_path)
            self.register_adapter(ref)
            with self.adapters.active(key, ref.adapter):
                yield model, tokenizer

    def register_adapter(self, ref: ModelRef) -> None:
        """The adapter's own cache entry: its bytes only, with its base (evicting the base drops it)."""
        key = self.key(ref)

        def loader() -> Loaded:
            entry = next(s for s in self.cache.stats() if s["key"] == key)
            return Loaded(value=ref, nbytes=self.adapters.nbytes(key, ref.adapter), device=entry["device"],
                          dtype=entry["dtype"], engine=self.name, base=key,
                          close=lambda: self.adapters.delete(key, ref.adapter))

        self.cache.get(f"adapter:{ref.adapter}", loader, name=ref.adapter)

    @contextmanager
    def training(self, ref: ModelRef, name: str, rank: int):
        """Exclusive use of ``ref``'s model with a new LoRA adapter ``name`` on and trainable."""
        from .training import lora_config

        key = self.key(ref)
        with self.cache.use(key, lambda: self._load(ref), name=ref.name, exclusive=True) as (model, tokenizer):
            self.cache.evict(name)  # an adapter of that name trained before is replaced
            self.adapters.purge(key)
            wrapper = self.adapters.create(key, model, name, lora_config(rank))
            with self.adapters.active(key, name):
                yield wrapper, tokenizer, next(s for s in self.cache.stats() if s["key"] == key)["device"]

    def _load(self, ref: ModelRef) -> Loaded:
        device = pick_device(self.device)
        dtype = pick_dtype(device, self.dtype)
        if not ref.gguf:
            try:
                model, tokenizer = load_text_model(ref.source, device, dtype)
            except AigcError:
                raise
            except Exception as exc:  # a folder with a truncated or broken file
                first = (str(exc).splitlines() or [""])[0]
                raise AigcError(f"Could not load the model in {ref.source}: {type(exc).__name__}: {first}",
                                "Check the folder's files (a copy may have been cut short), or save the model "
                                "again with save_pretrained.") from None
        else:
            folder = safetensors_folder(Path(ref.gguf), self.progress)
            try:
                model, tokenizer = load_text_model(str(folder), device, dtype)
            except Exception as exc:  # a corrupt or truncated converted copy: convert again, once
                heal(folder, exc)
                model, tokenizer = load_text_model(str(safetensors_folder(Path(ref.gguf), self.progress)),
                                                   device, dtype)
        key = self.key(ref)
        return Loaded(value=(model, tokenizer), nbytes=module_bytes(model), device=device,
                      dtype=str(dtype).removeprefix("torch."), engine=self.name,
                      close=lambda: self.adapters.forget(key))

    def encode(self, tokenizer, request: Request):
        if request.raw or not tokenizer.chat_template:
            text = request.prompt_text() if request.raw else "\n\n".join(m["content"] for m in request.messages)
            return tokenizer(text, return_tensors="pt")
        return tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def stream(self, request: Request, ref: ModelRef, cancel: threading.Event,
               key_env: str | None = None) -> Iterator[Chunk]:
        def produce(emit) -> None:
            with self.use(ref) as (model, tokenizer):
                self._generate(model, tokenizer, request, ref, cancel, emit)

        yield from threaded_stream(produce, cancel, executor=self._workers)

    def _generate(self, model, tokenizer, request: Request, ref: ModelRef, cancel, emit) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if not is_causal(model):
            raise AigcError(f"{ref.name} is not a text-generation (causal LM) model.",
                            "Pass a causal language model to %%gpt; this one works in %%aigc_attention.")
        inputs = self.encode(tokenizer, request).to(model.device)
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        limit = context_length(model)
        if limit and prompt_tokens >= limit:
            raise AigcError(f"The prompt is {prompt_tokens} tokens, but {ref.name}'s context holds {limit}.",
                            "Shorten the prompt, start a new conversation with --new (earlier turns count too), "
                            "or pick a model with a longer context.")
        recorder = ProbabilityRecorder() if request.logprobs else None
        streamer = ChunkStreamer(tokenizer, request.stop, emit, recorder)
        kwargs = dict(max_new_tokens=request.max_tokens, streamer=streamer, pad_token_id=tokenizer.pad_token_id,
                      stopping_criteria=StoppingCriteriaList([CancelCriteria(cancel)]))
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=request.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        if recorder is not None:
            kwargs["logits_processor"] = LogitsProcessorList([recorder])
        if request.seed is not None:
            torch.manual_seed(request.seed)
        with torch.inference_mode():
            model.generate(**inputs, **kwargs)
        streamer.finish()
        if cancel.is_set():
            reason = "stopped"
        elif len(streamer.ids) >= request.max_tokens:
            reason = "length"
        else:
            reason = "stop"
        emit(Chunk(usage={"prompt_tokens": prompt_tokens, "completion_tokens": len(streamer.ids)},
                   finish_reason=reason))


class ChunkStreamer:
    """A transformers streamer: each ``put`` of new token ids emits the newly decoded, displayable text."""

    def __init__(self, tokenizer, stop: list[str], emit, recorder: "ProbabilityRecorder | None" = None):
        self.tokenizer = tokenizer
        self.stop = stop
        self.emit = emit
        self.recorder = recorder
        self.ids: list[int] = []
        self.shown = ""
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        new = value.reshape(-1).tolist()
        self.ids.extend(new)
        tokens = [self.recorder.describe(self.tokenizer, t) for t in new] if self.recorder else []
        self._show(hold_back(self._text(), self.stop), tokens)

    def end(self) -> None:
        pass

    def finish(self) -> None:
        self._show(cut_at_stop(self._text(), self.stop), [])

    def _text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def _show(self, visible: str, tokens: list[TokenInfo]) -> None:
        if visible.startswith(self.shown) and (len(visible) > len(self.shown) or tokens):
            self.emit(Chunk(text=visible[len(self.shown):], tokens=tokens))
            self.shown = visible
        elif tokens:
            self.emit(Chunk(tokens=tokens))


class ProbabilityRecorder:
    """A logits processor that keeps the last step's distribution, so each token gets its probability."""

    def __init__(self):
        self._last = None

    def __call__(self, input_ids, scores):
        self._last = scores[0].float().softmax(-1)
        return scores

    def describe(self, tokenizer, token_id: int) -> TokenInfo:
        probs = self._last
        top = probs.topk(TOP_ALTERNATIVES)
        return TokenInfo(text=tokenizer.decode([token_id]), prob=float(probs[token_id]),
                         top=[(tokenizer.decode([i]), p) for i, p in zip(top.indices.tolist(), top.values.tolist())])


class CancelCriteria:
    """A stopping criterion that ends generation at the next token once ``cancel`` is set."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)


def hold_back(text: str, stop: list[str]) -> str:
    """The part of streamed ``text`` safe to show: no half character, no possible start of a stop string."""
    text = cut_at_stop(text, stop).rstrip("\ufffd")
    keep = max((len(s) - 1 for s in stop), default=0)
    return text[: len(text) - keep] if keep else text


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string, which is not included (as the OpenAI API does)."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text
