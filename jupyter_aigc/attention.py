"""Per-layer, per-head softmax attention maps of a local model, and their packing for the browser."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .errors import AigcError

THUMB_SIZE = 64
_switch_lock = threading.Lock()


@dataclass
class AttentionMaps:
    """``weights[layer, head, query, key]`` (float32) for ``tokens``; ``causal`` if the model masks the future."""

    tokens: list[str]
    weights: np.ndarray
    causal: bool
    model: str

    @property
    def shape(self) -> tuple:
        return self.weights.shape


@contextmanager
def eager_attention(model):
    """Use eager attention (the only kind that returns weights) for this call, then restore the original.

    The model is not reloaded; generation before and after uses the same implementation.
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


def is_causal(model) -> bool:
    config = model.config
    return bool(getattr(config, "is_decoder", False)) or any(
        a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or [])
    ) or type(model).__name__.endswith("ForCausalLM")


def extract(model, tokenizer, text: str, name: str = "", max_tokens: int = 2048) -> AttentionMaps:
    """Run one eager forward pass and return every layer's and head's attention weights.

    Grouped-query models return one map per query head (the key/value heads are shared, not the maps).
    """
    import torch

    if not text.strip():
        raise AigcError("There is no text to look at.", "Write the text in the cell body.")
    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens).to(model.device)
    with torch.inference_mode(), eager_attention(model):
        output = model(**inputs, output_attentions=True)
    if not output.attentions or output.attentions[0] is None:
        raise AigcError(f"{name or 'This model'} returned no attention weights.",
                        "Use a transformers model whose attention layers support output_attentions.")
    weights = torch.stack([a[0] for a in output.attentions]).float().cpu().numpy()
    ids = inputs["input_ids"][0].tolist()
    tokens = [tokenizer.decode([i]) for i in ids]
    return AttentionMaps(tokens=tokens, weights=weights, causal=is_causal(model), model=name)


def mean_over_heads(weights: np.ndarray) -> np.ndarray:
    """``[layer, query, key]``: each layer's heads averaged."""
    return weights.mean(axis=1)


def rollout(weights: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): residual-adjusted head means multiplied across layers."""
    n = weights.shape[-1]
    result = np.eye(n, dtype=np.float64)
    for layer in mean_over_heads(weights).astype(np.float64):
        adjusted = 0.5 * layer + 0.5 * np.eye(n)
        adjusted /= adjusted.sum(axis=-1, keepdims=True)
        result = adjusted @ result
    return result.astype(np.float32)


def quantize(matrix: np.ndarray) -> tuple[bytes, float]:
    """8-bit bytes of ``matrix`` scaled to its maximum, and that maximum (value ≈ byte / 255 * max)."""
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
    pictures = [maps.weights[layer, head] for layer in layers for head in heads]
    means = mean_over_heads(maps.weights)
    pictures += [means[layer] for layer in layers] + [rollout(maps.weights[layers])]
    side = min(size, maps.weights.shape[-1])
    chunks, scales = [], []
    for picture in pictures:
        data, top = quantize(downsample(picture, size))
        chunks.append(data)
        scales.append(top)
    return b"".join(chunks), [side, scales]


def head_matrix(maps: AttentionMaps, layer: int, head: int) -> tuple[bytes, float]:
    """One full N×N map as 8-bit bytes: head ≥ 0 is a head, head == -1 the layer's mean, layer == -1 the rollout."""
    if layer == -1:
        return quantize(rollout(maps.weights))
    if head == -1:
        return quantize(mean_over_heads(maps.weights)[layer])
    return quantize(maps.weights[layer, head])


def parse_range(text: str | None, count: int, what: str) -> list[int]:
    """'0-3,7' → [0, 1, 2, 3, 7], checked against ``count``; None → all."""
    if not text:
        return list(range(count))
    picked: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            picked += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise AigcError(f"--{what} '{text}' is not a list of numbers.", f"Use e.g. --{what} 0-3,7.") from None
    bad = [i for i in picked if not 0 <= i < count]
    if bad:
        raise AigcError(f"--{what} {bad[0]} is out of range: the model has {count} {what}.",
                        f"Use numbers from 0 to {count - 1}.")
    return sorted(set(picked))
