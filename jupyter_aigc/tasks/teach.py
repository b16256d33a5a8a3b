"""Teaching numbers from a real model: the next-token distribution and the logit lens.

Both need the weights (raw scores over the whole vocabulary, hidden states per layer), so they run on the
transformers engine; a GGUF model (the default) uses its transformers copy. The sampling transforms are the
ones transformers' own sampler applies, in its order: temperature, then top-k, then top-p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.cache import module_bytes
from ..core.errors import AigcError
from ..engines.base import SCORES
from .attention import budget_of, forward_bytes, lean_forward, refuse_over_budget, uses_eager_attention

TOP_SHOWN = 50
LENS_CHUNK = 2**25  # bytes of vocabulary scores the lens computes at once (a few positions of one layer)


def distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) after temperature, top-k and top-p, most likely first; the cut tokens are
    left out and the rest renormalised. Temperature 0 is greedy: the most likely token, probability 1."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature <= 0:
        best = int(np.argmax(logits))
        return np.array([best]), np.array([1.0])
    scores = logits / temperature
    order = np.argsort(-scores, kind="stable")
    if top_k and top_k < len(order):
        order = order[:top_k]
    kept = scores[order]
    probs = np.exp(kept - kept.max())
    probs /= probs.sum()
    if top_p < 1.0:
        # transformers' TopPLogitsWarper: drop the least likely tokens whose cumulative mass is ≤ 1 - top_p
        # (ascending order), always keeping the most likely one.
        ascending = np.cumsum(probs[::-1])
        drop = ascending <= 1.0 - top_p
        drop[-1] = False
        keep = ~drop[::-1]
        order, probs = order[keep], probs[keep]
        probs = probs / probs.sum()
    return order, probs


def entropy(probs: np.ndarray) -> float:
    """Entropy in bits."""
    probs = probs[probs > 0]
    return float(-(probs * np.log2(probs)).sum())


def _weights(session, model):
    """(engine, ref) holding the weights of ``model`` (a name or None for the default)."""
    ref = session.resolve(model)
    return session.registry.serving(ref, SCORES)


def encode(tokenizer, text: str, chat: bool) -> list[int]:
    if not text:
        raise AigcError("There is no text to continue.", "Write the start of a text in the cell body.")
    if chat:
        if not tokenizer.chat_template:
            raise AigcError("This model has no chat template.", "Drop --chat to continue the text as given.")
        return list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"])
    return list(tokenizer(text)["input_ids"])


class NextToken:
    """The model's raw next-token scores for a growing sequence of token ids (one forward pass per step)."""

    def __init__(self, session, text: str, model=None, chat: bool = False):
        self.engine, self.ref = _weights(session, model)
        self.budget = budget_of(session)
        with self.engine.use(self.ref) as (network, tokenizer):
            self.tokenizer = tokenizer
            self.ids = encode(tokenizer, text, chat)
            self.prompt_length = len(self.ids)
            self.logits = self._scores(network)

    def _scores(self, network) -> np.ndarray:
        """The last position's scores, from a forward pass that computes no other position's."""
        import torch

        limit = getattr(network.config, "max_position_embeddings", None)
        if limit and len(self.ids) >= limit:
            raise AigcError(f"The text is {len(self.ids)} tokens; {self.ref.name} reads {limit} at most.",
                            "Shorten the text.")
        held = module_bytes(network)
        vocab = getattr(network.config, "vocab_size", 0) or 0
        refuse_over_budget("The next-token scores", len(self.ids),
                           lambda n: held + forward_bytes(network.config, n, uses_eager_attention(network)) + 8 * vocab,
                           self.budget)
        with torch.inference_mode():
            out = network(input_ids=torch.tensor([self.ids], device=network.device), **lean_forward(network))
        return out.logits[0, -1].float().cpu().numpy()

    def append(self, token_id: int) -> None:
        """Add a token and score the next one."""
        if not 0 <= token_id < len(self.logits):
            raise AigcError(f"Token id {token_id} is not in the vocabulary.", "")
        self.ids.append(int(token_id))
        with self.engine.use(self.ref) as (network, _):
            self.logits = self._scores(network)

    def undo(self) -> None:
        if len(self.ids) > self.prompt_length:
            self.ids.pop()
            with self.engine.use(self.ref) as (network, _):
                self.logits = self._scores(network)

    def reset(self) -> None:
        """Back to the prompt, with one forward pass."""
        if len(self.ids) > self.prompt_length:
            del self.ids[self.prompt_length:]
            with self.engine.use(self.ref) as (network, _):
                self.logits = self._scores(network)

    def token(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)])

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids)

    def top(self, count: int = TOP_SHOWN) -> list[dict]:
        order = np.argsort(-self.logits, kind="stable")[:count]
        return [{"id": int(i), "text": self.token(i), "logit": float(self.logits[i])} for i in order]


@dataclass
class LogitLens:
    """For every layer and position: the token the model would predict if it stopped there."""

    tokens: list[str]
    top_tokens: list[list[str]]       # [layer][position]
    top_probs: np.ndarray             # [layer, position]
    model: str

    @property
    def shape(self) -> tuple:
        return self.top_probs.shape


def logit_lens(session, text: str, model=None) -> LogitLens:
    """Each layer's hidden state through the model's final norm and LM head (layer 0 is the embeddings).

    Only the view's numbers are kept: per layer and position the most likely token and its probability,
    computed a few positions at a time, so the vocabulary-wide scores never exist for every layer at once.
    """
    import torch

    if not text.strip():
        raise AigcError("There is no text to look at.", "Write the text in the cell body.")
    engine, ref = _weights(session, model)
    with engine.use(ref) as (network, tokenizer):
        norm, head = final_norm(network), network.get_output_embeddings()
        if norm is None or head is None:
            raise AigcError(f"{ref.name} has no final norm and LM head to read the layers with.",
                            "Use a causal language model (Llama, GPT-2, Qwen, …).")
        ids = tokenizer(text, return_tensors="pt")["input_ids"].to(network.device)
        n, config = ids.shape[-1], network.config
        limit = getattr(config, "max_position_embeddings", None)
        if limit and n > limit:
            raise AigcError(f"The text is {n} tokens; {ref.name} reads {limit} at most.", "Shorten the text.")
        held = module_bytes(network)
        refuse_over_budget("The logit lens", n, lambda m: held + lens_bytes(config, m, uses_eager_attention(network)),
                           budget_of(session))
        with torch.inference_mode():
            out = network(input_ids=ids, output_hidden_states=True, **lean_forward(network))
            best, probs = top_tokens(out.hidden_states, norm, head)
        del out
        tokens = [tokenizer.decode([i]) for i in ids[0].tolist()]
        top = [[tokenizer.decode([i]) for i in row] for row in best.tolist()]
        probs = probs.cpu().numpy()
    return LogitLens(tokens, top, probs, ref.name)


def top_tokens(hidden_states, norm, head) -> tuple:
    """``[layer, position]`` ids of the most likely tokens and their probabilities (float32), from the LM head's
    scores a few positions at a time, every layer in turn (the same sizes again and again, so the allocator
    reuses its blocks). The last hidden state already went through the final norm inside the model."""
    import torch

    last, n = len(hidden_states) - 1, hidden_states[0].shape[1]
    best = torch.empty(last + 1, n, dtype=torch.long)
    probs = torch.empty(last + 1, n, dtype=torch.float32)
    step = lens_step(head.weight.shape[0])
    for start in range(0, n, step):
        for index, hidden in enumerate(hidden_states):
            states = hidden[0, start:start + step]
            scores = head(states if index == last else norm(states)).float()
            top, which = scores.max(-1)
            # softmax's largest value is 1 / Σ exp(score - max), computed in place (no second copy of the scores)
            probs[index, start:start + step] = scores.sub_(top[:, None]).exp_().sum(-1).reciprocal_().cpu()
            best[index, start:start + step] = which.cpu()
    return best, probs


def lens_step(vocab: int) -> int:
    """Positions per chunk: about ``LENS_CHUNK`` bytes of float32 scores over the vocabulary."""
    return max(1, LENS_CHUNK // (4 * vocab))


def lens_bytes(config, n: int, eager: bool = False) -> int:
    """Memory the logit lens of ``n`` tokens takes beyond the weights: one forward pass at work, every
    layer's hidden states (float32) and one chunk of vocabulary scores (twice, for a dtype change)."""
    layers, hidden = getattr(config, "num_hidden_layers", 0) + 1, getattr(config, "hidden_size", 0) or 0
    vocab = getattr(config, "vocab_size", 0) or 0
    chunk = 2 * min(n, lens_step(vocab)) * vocab * 4 if vocab else 0
    return forward_bytes(config, n, eager) + layers * n * hidden * 4 + chunk


def final_norm(network):
    """The norm applied to the last hidden state before the LM head (``model.norm`` or ``ln_f``)."""
    base = getattr(network, network.base_model_prefix, network)
    for name in ("norm", "ln_f", "final_layer_norm", "final_layernorm"):
        module = getattr(base, name, None)
        if module is not None:
            return module
    return None
