"""Per-layer, per-head softmax attention maps of a local model, and their packing for the browser."""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Callable

import numpy as np

from ..core.cache import module_bytes
from ..core.errors import AigcError
from ..engines.base import ATTENTION
from ..engines.transformers import is_causal

THUMB_SIZE = 64
_switch_lock = threading.Lock()


class AttentionMaps:
    """Every layer's and head's attention map of ``tokens``; ``causal`` if the model masks the future.

    Causal maps are stored as their lower triangle only (the rest is zero), float32 when that fits the
    memory budget and float16 for long inputs; ``head``, ``layer_mean`` and ``weights`` unpack on demand.
    ``dropped`` counts the tokens cut from the end of a text longer than the model's context; ``layers`` and
    ``heads`` are the ones a view shows (all unless ``attention_maps`` was given a selection).
    """

    def __init__(self, tokens: list[str], stored: np.ndarray, causal: bool, model: str = "", dropped: int = 0):
        self.tokens, self.stored, self.causal, self.model, self.dropped = tokens, stored, causal, model, dropped
        self.n = len(tokens)
        self.answer: tuple[int, int] | None = None  # the generated tokens [start, end), when the text has an answer
        self.layers = list(range(stored.shape[0]))  # the layers and heads a view of these maps shows
        self.heads = list(range(stored.shape[1]))

    @classmethod
    def from_weights(cls, weights: np.ndarray, tokens: list[str], causal: bool, model: str = "") -> "AttentionMaps":
        """Maps from full ``[layer, head, query, key]`` weights."""
        return cls(tokens, pack(weights, causal), causal, model)

    @property
    def shape(self) -> tuple:
        return (*self.stored.shape[:2], self.n, self.n)

    def head(self, layer: int, head: int) -> np.ndarray:
        """One head's ``[query, key]`` map, float32."""
        return unpack(self.stored[layer, head], self.n, self.causal)

    def layer_mean(self, layer: int) -> np.ndarray:
        """``[query, key]``: one layer's heads averaged (float32), one layer at a time."""
        return unpack(self.stored[layer].mean(axis=0, dtype=np.float32), self.n, self.causal)

    @property
    def weights(self) -> np.ndarray:
        """All maps as float32 ``[layer, head, query, key]`` (allocated on each call)."""
        layers, heads = self.stored.shape[:2]
        return np.stack([np.stack([self.head(layer, head) for head in range(heads)]) for layer in range(layers)])


def pack(weights: np.ndarray, causal: bool) -> np.ndarray:
    """The lower triangle of each causal map (``[..., n(n+1)/2]``), or the maps as they are."""
    if not causal:
        return weights
    rows, cols = np.tril_indices(weights.shape[-1])
    return weights[..., rows, cols]


def unpack(stored: np.ndarray, n: int, causal: bool) -> np.ndarray:
    if not causal:
        return stored.astype(np.float32)
    full = np.zeros((n, n), dtype=np.float32)
    full[np.tril_indices(n)] = stored
    return full


@contextmanager
def eager_attention(model):
    """Use eager attention (the only kind that returns weights) for this call, then restore the original.

    The model is not reloaded; callers hold it exclusively (ModelCache.use), so no generation sees it switched.
    """
    original = model.config._attn_implementation
    with _switch_lock:
        if original != "eager":
            model.set_attn_implementation("eager")
        try:
            yield
        finally:
            if original != "eager":
                model.set_attn_implementation(original)


def estimate_bytes(layers: int, heads: int, n: int, itemsize: int = 2, causal: bool = True) -> int:
    """Memory the kept maps take: every layer and head (a causal map's lower triangle)."""
    kept = n * (n + 1) // 2 if causal else n * n
    return layers * heads * kept * itemsize


def eager_bytes(heads: int, n: int) -> int:
    """One layer's eager attention at work: scores, softmax and their copies, float32 ``[heads, n, n]``."""
    return 4 * heads * n * n * 4


def forward_bytes(config, n: int, eager: bool = False) -> int:
    """Working memory of one forward pass over ``n`` tokens beyond the weights: one layer's activations (the
    MLP's intermediate and some hidden-size copies, float32) and, with eager attention, its n×n maps.

    Only what grows with the text: the runtime's own scratch (about 0.4 GB at the first pass on a CPU, whatever
    the length) is not counted; a budget is the model plus what the text costs.
    """
    hidden = getattr(config, "hidden_size", 0) or 0
    inner = getattr(config, "intermediate_size", 0) or 4 * hidden
    work = n * (4 * inner + 12 * hidden) * 4
    return work + (eager_bytes(getattr(config, "num_attention_heads", 1), n) if eager else 0)


def uses_eager_attention(network) -> bool:
    """Whether the model computes its attention maps in full (eager), which the estimates must count."""
    return getattr(network.config, "_attn_implementation", "eager") == "eager"


def lean_forward(network) -> dict:
    """Forward options that save memory where the model takes them: no key/value cache, and the LM head
    scoring the last position only."""
    import inspect

    takes = inspect.signature(network.forward).parameters
    return {key: value for key, value in (("use_cache", False), ("logits_to_keep", 1)) if key in takes}


def budget_of(session) -> int:
    """The memory budget of the views that hold per-layer numbers (``AigcConfig.attention_budget_gb``)."""
    return int(session.config.attention_budget_gb * 2**30)


def refuse_over_budget(what: str, n: int, estimate: Callable[[int], int], budget: int, detail: str = "") -> int:
    """``estimate(n)`` in bytes (the model included), or an AigcError when it is over ``budget``: the estimate
    and the longest text that fits, found by bisection (``estimate`` grows with the number of tokens)."""
    need = estimate(n)
    if need <= budget:
        return need
    low, high = 0, n - 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if estimate(middle) <= budget else (low, middle - 1)
    message = (f"{what} of {n:,} tokens would take about {need / 2**30:.1f} GB with the model{detail}, "
               f"over the {budget / 2**30:g} GB budget.")
    if low < 1:
        raise AigcError(message, f"Raise `%config AigcConfig.attention_budget_gb` to at least "
                                 f"{math.ceil(estimate(1) / 2**30 * 10) / 10:g}.")
    raise AigcError(message, f"Shorten the text to about {low:,} tokens, or raise "
                             "`%config AigcConfig.attention_budget_gb`.")


def _attention_modules(model):
    """The modules whose output carries the attention weights, and the index of the weights in it."""
    from transformers.utils.output_capturing import OutputRecorder

    target = (getattr(model, "_can_record_outputs", None) or {}).get("attentions")
    if target is None:
        return [], 1
    cls, index = (target.target_class, target.index) if isinstance(target, OutputRecorder) else (target, 1)
    return [m for m in model.modules() if isinstance(m, cls)], index


def extract(model, tokenizer, text: str, name: str = "", budget_bytes: int = 3 * 2**30) -> AttentionMaps:
    """Run one eager forward pass and keep every layer's and head's attention weights.

    Each layer's weights are taken as the layer finishes (a hook), stored as float32 if all of them fit
    ``budget_bytes`` and as float16 otherwise; a text whose estimate is over the budget is refused before the
    pass. Grouped-query models return one map per query head (the key/value heads are shared, not the maps).
    """
    import torch

    if not text.strip():
        raise AigcError("There is no text to look at.", "Write the text in the cell body.")
    limit = getattr(model.config, "max_position_embeddings", None) or 2048
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    dropped = max(0, ids.shape[-1] - limit)
    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=limit).to(model.device)
    n = int(inputs["input_ids"].shape[-1])
    config = model.config
    layers = getattr(config, "num_hidden_layers", 1)
    heads = getattr(config, "num_attention_heads", 1)
    causal = is_causal(model)
    held = module_bytes(model)  # the budget covers the model and the maps

    def need(m: int, itemsize: int = 2) -> int:
        return held + estimate_bytes(layers, heads, m, itemsize, causal) + forward_bytes(config, m, eager=True)

    refuse_over_budget("The attention maps", n, need, budget_bytes, f" ({layers} layers × {heads} heads × {n}²)")
    keep_dtype = torch.float32 if need(n, 4) <= budget_bytes else torch.float16
    modules, index = _attention_modules(model)
    size = n * (n + 1) // 2 if causal else n * n
    kept = np.empty((len(modules), heads, size), dtype=np.float32 if keep_dtype == torch.float32 else np.float16)
    rows, cols = np.tril_indices(n) if causal else (None, None)
    done = 0

    def keep(module, args, output):
        nonlocal done
        weights = output[index] if isinstance(output, tuple) and len(output) > index else None
        if weights is None:
            return output
        layer = weights[0].to(keep_dtype).cpu().numpy()
        kept[done] = layer[:, rows, cols] if causal else layer.reshape(heads, -1)
        done += 1
        return output[:index] + (None,) + output[index + 1:]

    handles = [m.register_forward_hook(keep) for m in modules]
    try:
        with torch.inference_mode(), eager_attention(model):
            output = model(**inputs, output_attentions=not modules, **lean_forward(model))
    finally:
        for handle in handles:
            handle.remove()
    if not modules and getattr(output, "attentions", None) and output.attentions[0] is not None:
        kept = pack(np.stack([a[0].to(keep_dtype).cpu().numpy() for a in output.attentions]), causal)
    elif done < len(modules) or not modules:
        raise AigcError(f"{name or 'This model'} returned no attention weights.",
                        "Use a transformers model whose attention layers support output_attentions.")
    elif not causal:
        kept = kept.reshape(len(modules), heads, n, n)
    tokens = [tokenizer.decode([i]) for i in inputs["input_ids"][0].tolist()]
    return AttentionMaps(tokens, kept, causal, name, dropped)


def answer_tokens(tokenizer, text: str, chars: tuple[int, int], n: int) -> tuple[int, int] | None:
    """The tokens [start, end) of the first ``n`` whose text lies in the characters ``chars`` (the answer)."""
    offsets = tokenizer(text, return_offsets_mapping=True).get("offset_mapping")
    if not offsets:
        return None
    inside = [i for i, (a, b) in enumerate(offsets[:n]) if b > a and a >= chars[0] and b <= chars[1]]
    return (inside[0], inside[-1] + 1) if inside else None


def attention_maps(session, text: str, model=None, layers: str | None = None,
                   heads: str | None = None, answer: tuple[int, int] | None = None) -> AttentionMaps:
    """The maps of ``text`` on a local model (a name or a ModelRef), from the cached copy, never a second one.

    ``layers`` and ``heads`` ('0-3,7') are checked against the model's config before the forward pass and
    kept as ``maps.layers`` and ``maps.heads``. The model is held exclusively while its attention
    implementation is switched, so no generation in another cell sees it half-changed. ``answer``: the
    characters of ``text`` a model generated; ``maps.answer`` becomes their tokens.
    """
    from ..core.models import ModelRef

    ref = model if isinstance(model, ModelRef) else session.resolve(model)
    engine, ref = session.registry.serving(ref, ATTENTION)
    with engine.use(ref, exclusive=True) as (network, tokenizer):
        config = network.config
        picked_layers = parse_range(layers, getattr(config, "num_hidden_layers", 1), "layers")
        picked_heads = parse_range(heads, getattr(config, "num_attention_heads", 1), "heads")
        maps = extract(network, tokenizer, text, ref.name, budget_of(session))
        if answer is not None:
            maps.answer = answer_tokens(tokenizer, text, answer, maps.n)
    maps.layers, maps.heads = picked_layers, picked_heads
    return maps


def conversation_text(session, ref, request, answer: str) -> tuple[str, tuple[int, int]]:
    """Prompt + answer as the model saw them (through its chat template, or joined for plain completions), and
    the characters of the answer in that text."""
    engine, ref = session.registry.serving(ref, ATTENTION)
    messages = request.messages + [{"role": "assistant", "content": answer}]
    if request.raw:
        prompt = request.prompt_text()
        return prompt + answer, (len(prompt), len(prompt) + len(answer))
    with engine.use(ref) as (_, tokenizer):
        if not tokenizer.chat_template:
            prompt = "\n\n".join(m["content"] for m in request.messages) + "\n\n"
            return prompt + answer, (len(prompt), len(prompt) + len(answer))
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        prompt = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
    start = len(prompt) if text.startswith(prompt + answer) else text.rfind(answer)
    return text, (start, start + len(answer))


def rollout(maps: AttentionMaps, layers: list[int] | None = None) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): residual-adjusted head means multiplied across layers."""
    n = maps.n
    result = np.eye(n, dtype=np.float64)
    for index in range(maps.shape[0]) if layers is None else layers:
        adjusted = 0.5 * maps.layer_mean(index).astype(np.float64) + 0.5 * np.eye(n)
        adjusted /= adjusted.sum(axis=-1, keepdims=True)
        result = adjusted @ result
    return result.astype(np.float32)


def quantize(matrix: np.ndarray) -> tuple[bytes, float]:
    """8-bit bytes of ``matrix`` scaled to its maximum, and that maximum (value ≈ byte / 255 * max)."""
    matrix = matrix.astype(np.float32, copy=False)
    top = float(matrix.max()) or 1.0
    return np.round(matrix / top * 255).astype(np.uint8).tobytes(), top


def downsample(matrix: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """A ``size``×``size`` max-pooled picture of an N×N map (unchanged when N ≤ size)."""
    n = matrix.shape[-1]
    if n <= size:
        return matrix
    edges = np.linspace(0, n, size + 1).astype(int)
    rows = np.maximum.reduceat(matrix, edges[:-1], axis=-2)
    return np.maximum.reduceat(rows, edges[:-1], axis=-1)


def thumbnails(maps: AttentionMaps, layers: list[int], heads: list[int], size: int = THUMB_SIZE) -> tuple[bytes, list]:
    """Every selected head (then each layer's mean, then the rollout) as 8-bit thumbnails, one buffer.

    Each thumbnail is scaled to its own maximum so weak and strong heads are both visible.
    """
    pictures = [(maps.head, layer, head) for layer in layers for head in heads]
    pictures += [(maps.layer_mean, layer) for layer in layers] + [(rollout, maps, layers)]
    side = min(size, maps.n)
    chunks, scales = [], []
    for make, *args in pictures:  # one full map at a time
        data, top = quantize(downsample(make(*args), size))
        chunks.append(data)
        scales.append(top)
    return b"".join(chunks), [side, scales]


def head_matrix(maps: AttentionMaps, layer: int, head: int) -> tuple[bytes, float]:
    """One full N×N map as 8-bit bytes: head ≥ 0 is a head, head == -1 the layer's mean, layer == -1 the rollout."""
    if layer == -1:
        return quantize(rollout(maps))
    if head == -1:
        return quantize(maps.layer_mean(layer))
    return quantize(maps.head(layer, head))


def parse_range(text: str | None, count: int, what: str) -> list[int]:
    """'0-3,7' → [0, 1, 2, 3, 7], each part checked against ``count`` before it is expanded; None → all."""
    if not text:
        return list(range(count))
    picked: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise AigcError(f"--{what} '{text}' is not a list of numbers.", f"Use e.g. --{what} 0-3,7.") from None
        if last < first:
            raise AigcError(f"--{what} {first}-{last} is empty:", f"write it low-high, e.g. {last}-{first}.")
        for end in (first, last):
            if not 0 <= end < count:
                raise AigcError(f"--{what} {end} is out of range: the model has {count} {what}.",
                                f"Use numbers from 0 to {count - 1}.")
        picked.update(range(first, last + 1))
    return sorted(picked)
