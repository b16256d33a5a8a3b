"""One attention head worked through with the model's own numbers, and positional encodings.

``attention_steps`` captures a layer's input to its attention module during a normal forward pass and
recomputes that head by hand: q and k (after the rotary encoding, where the model uses one), the scores
q·kᵀ/√dₖ, the causal mask, the softmax weights, v and the output = weights·V. The model's own attention
probabilities and the head's slice of its attention output (the input of the output projection) are
captured in the same pass, so ``check()`` can compare them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..core.cache import module_bytes
from ..core.errors import AigcError
from ..engines.base import ATTENTION
from .attention import budget_of, eager_attention, forward_bytes, lean_forward, refuse_over_budget


@dataclass
class AttentionSteps:
    """Every query's numbers for one head (``Q[i]``, ``K``, ``V``…); ``q``, ``scores``… are the chosen query's."""

    tokens: list[str]
    layer: int
    head: int
    kv_head: int
    query: int
    Q: np.ndarray              # [n, d] after the rotary encoding
    K: np.ndarray              # [n, d] after the rotary encoding
    V: np.ndarray              # [n, d]
    scale: float               # 1/√dₖ as the model applies it
    causal: bool
    model_weights: np.ndarray  # [n, n] the model's own attention probabilities for this head
    model_output: np.ndarray   # [n, d] this head's slice of the attention output, before the output projection
    rotary: bool
    model: str

    @property
    def q(self) -> np.ndarray:
        return self.Q[self.query]

    @property
    def k(self) -> np.ndarray:
        return self.K

    @property
    def v(self) -> np.ndarray:
        return self.V

    @property
    def mask(self) -> np.ndarray:
        """True where the query may look (the causal mask hides later keys)."""
        n = len(self.tokens)
        return np.arange(n) <= self.query if self.causal else np.ones(n, dtype=bool)

    @property
    def scores(self) -> np.ndarray:
        """q·kⱼ/√dₖ for every key j (float64)."""
        return (self.K.astype(np.float64) @ self.q.astype(np.float64)) * self.scale

    @property
    def weights(self) -> np.ndarray:
        """softmax of the scores over the keys the mask lets through."""
        scores = np.where(self.mask, self.scores, -np.inf)
        exp = np.exp(scores - scores[self.mask].max())
        return exp / exp.sum()

    @property
    def output(self) -> np.ndarray:
        """weights · V."""
        return self.weights @ self.V.astype(np.float64)


def query_position(query: int | str, tokens: list[str]) -> int:
    """The query token's position: a position (negative counts from the end) or a word of the text (its first
    token spelled so, ignoring case and spaces)."""
    n = len(tokens)
    text = str(query).strip()
    if text.lstrip("-").isdigit():
        position = int(text)
        if not -n <= position < n:
            raise AigcError(f"Query {position} is out of range: the text is {n} tokens.", f"Use 0 to {n - 1}, or -1.")
        return position
    spelled = [t.strip().lower() for t in tokens]
    if text.lower() in spelled:
        return spelled.index(text.lower())
    shown = ", ".join(repr(t) for t in tokens[:30]) + (", …" if n > 30 else "")
    raise AigcError(f"No token of the text is '{text}'.", f"Give a position (0 to {n - 1}) or one of: {shown}.")


def attention_steps(session, text: str, layer: int, head: int, query: int | str = -1, model=None) -> AttentionSteps:
    import torch

    if not text.strip():
        raise AigcError("There is no text to look at.", "Write the text in the cell body.")
    ref = session.resolve(model)
    engine, ref = session.registry.serving(ref, ATTENTION)
    with engine.use(ref, exclusive=True) as (network, tokenizer):
        config = network.config
        layers = getattr(config, "num_hidden_layers", 0)
        heads = getattr(config, "num_attention_heads", 0)
        if not 0 <= layer < layers:
            raise AigcError(f"Layer {layer} is out of range: {ref.name} has {layers} layers.",
                            f"Use 0 to {layers - 1}.")
        if not 0 <= head < heads:
            raise AigcError(f"Head {head} is out of range: {ref.name} has {heads} heads per layer.",
                            f"Use 0 to {heads - 1}.")
        attn = attention_module(network, layer)
        ids = tokenizer(text, return_tensors="pt")["input_ids"].to(network.device)
        n = ids.shape[-1]
        query = query_position(query, [tokenizer.decode([i]) for i in ids[0].tolist()])
        held = module_bytes(network)  # an eager pass, and the chosen head's n×n map kept
        refuse_over_budget("The attention steps", n, lambda m: held + forward_bytes(config, m, eager=True) + 4 * m * m,
                           budget_of(session), f" (an eager pass: {heads} heads × {n}² per layer)")
        captured = {}

        def before(module, args, kwargs):
            captured["hidden"] = kwargs.get("hidden_states", args[0] if args else None)
            captured["position"] = kwargs.get("position_embeddings")

        def after(module, args, output):
            captured["weights"] = output[1][0, head].clone()  # this head's map only, not the layer's

        def before_projection(module, args):
            captured["output"] = args[0]

        handles = [attn.register_forward_pre_hook(before, with_kwargs=True), attn.register_forward_hook(after),
                   attn.o_proj.register_forward_pre_hook(before_projection)]
        try:
            with torch.inference_mode(), eager_attention(network):
                network(input_ids=ids, **lean_forward(network))
        finally:
            for handle in handles:
                handle.remove()
        head_dim = attn.head_dim
        kv_heads = getattr(config, "num_key_value_heads", heads)
        kv_head = head // (heads // kv_heads)
        with torch.inference_mode():
            hidden = captured["hidden"]
            q = attn.q_proj(hidden).view(1, n, -1, head_dim).transpose(1, 2)
            k = attn.k_proj(hidden).view(1, n, -1, head_dim).transpose(1, 2)
            v = attn.v_proj(hidden).view(1, n, -1, head_dim).transpose(1, 2)
            rotary = captured["position"] is not None
            if rotary:
                rope = getattr(sys.modules[type(attn).__module__], "apply_rotary_pos_emb")
                q, k = rope(q, k, *captured["position"])
        tokens = [tokenizer.decode([i]) for i in ids[0].tolist()]
        output = captured["output"][0].view(n, -1, head_dim)[:, head]
        return AttentionSteps(
            tokens=tokens, layer=layer, head=head, kv_head=kv_head, query=query % n,
            Q=q[0, head].float().cpu().numpy(), K=k[0, kv_head].float().cpu().numpy(),
            V=v[0, kv_head].float().cpu().numpy(), scale=float(attn.scaling), causal=True,
            model_weights=captured["weights"].float().cpu().numpy(),
            model_output=output.float().cpu().numpy(), rotary=rotary, model=ref.name)


def attention_module(network, layer: int):
    """The self-attention module of ``layer`` in a Llama-style decoder (q/k/v/o projections)."""
    base = getattr(network, network.base_model_prefix, network)
    blocks = getattr(base, "layers", None)
    attn = getattr(blocks[layer], "self_attn", None) if blocks is not None else None
    if attn is None or not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
        raise AigcError("The step-by-step view needs a Llama-style model (q_proj, k_proj, v_proj, o_proj).",
                        "Use the default model, or a Llama, Mistral, Qwen or SmolLM model.")
    return attn


def positional_size(d_model, positions) -> tuple[int, int]:
    """``d_model`` and ``positions`` checked against their ranges in spec.json (the browser redraws a
    positions × positions similarity), before anything is allocated; ``d_model`` must be even."""
    from ..options import check

    d_model, positions = check("d_model", d_model, "--d-model"), check("positions", positions, "--positions")
    if d_model % 2:
        raise AigcError(f"--d-model {d_model} is odd: sin and cos fill the dimensions in pairs, so d_model is even.",
                        f"Use e.g. --d-model {d_model + 1}.")
    return d_model, positions


def sinusoidal(positions: int, d_model: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))."""
    d_model, positions = positional_size(d_model, positions)
    pos = np.arange(positions, dtype=np.float64)[:, None]
    i = np.arange(d_model // 2, dtype=np.float64)[None, :]
    angle = pos / np.power(10000.0, 2 * i / d_model)
    matrix = np.empty((positions, d_model))
    matrix[:, 0::2], matrix[:, 1::2] = np.sin(angle), np.cos(angle)
    return matrix


@dataclass
class Rotary:
    """A model's rotary encoding: the rotation frequency of each dimension pair, and a real q and k."""

    inv_freq: np.ndarray   # [d/2] radians per position of each pair
    q: np.ndarray          # [d] a query vector of the model (before rotation)
    k: np.ndarray          # [d] a key vector of the model (before rotation)
    model: str
    layer: int
    head: int

    def rotate(self, vector: np.ndarray, position: int) -> np.ndarray:
        """The rotation transformers applies (rotate_half: pairs are (i, i + d/2))."""
        half = len(vector) // 2
        angle = position * self.inv_freq
        cos, sin = np.cos(angle), np.sin(angle)
        x1, x2 = vector[:half], vector[half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin])

    def score(self, m: int, n: int) -> float:
        """(R_m q)·(R_n k): depends on m - n only."""
        return float(self.rotate(self.q, m) @ self.rotate(self.k, n))


def rotary_of(session, model=None, text: str = "The cat sat on the mat.", layer: int = 0, head: int = 0) -> Rotary:
    """The model's inverse frequencies and, from a real forward pass, the unrotated q and k of one head."""
    import torch

    ref = session.resolve(model)
    engine, ref = session.registry.serving(ref, ATTENTION)
    with engine.use(ref) as (network, tokenizer):
        base = getattr(network, network.base_model_prefix, network)
        rope = getattr(base, "rotary_emb", None)
        if rope is None or not hasattr(rope, "inv_freq"):
            raise AigcError(f"{ref.name} does not use rotary position embeddings.",
                            "Leave model out to see the sinusoidal encoding only.")
        attn = attention_module(network, layer)
        ids = tokenizer(text, return_tensors="pt")["input_ids"].to(network.device)
        captured = {}
        handle = attn.register_forward_pre_hook(
            lambda m, a, kw: captured.update(hidden=kw.get("hidden_states", a[0] if a else None)), with_kwargs=True)
        try:
            with torch.inference_mode():
                network(input_ids=ids)
                hidden = captured["hidden"]
                q = attn.q_proj(hidden).view(1, ids.shape[-1], -1, attn.head_dim)[0, -1, head]
                kv_head = head // max(1, attn.num_key_value_groups if hasattr(attn, "num_key_value_groups") else 1)
                k = attn.k_proj(hidden).view(1, ids.shape[-1], -1, attn.head_dim)[0, 0, kv_head]
        finally:
            handle.remove()
        return Rotary(rope.inv_freq.float().cpu().numpy().astype(np.float64), q.float().cpu().numpy().astype(np.float64),
                      k.float().cpu().numpy().astype(np.float64), ref.name, layer, head)
