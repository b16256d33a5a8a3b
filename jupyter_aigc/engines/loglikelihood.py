"""Log-probabilities of continuations under a transformers model, computed as lm-evaluation-harness's HF
backend computes its ``loglikelihood`` requests (``HFLM``, lm_eval 0.4).

Tokenisation: trailing whitespace of the context moves to the continuation; the whole string is encoded and
split after the context's own tokens (``_encode_pair``); an empty context is the BOS token (EOS without one).
Scoring: the log-softmax at the position before each continuation token, summed; "greedy" when each of them
is the most likely token. lm-eval runs context + continuation (less its last token) as one row per choice;
here each distinct context runs once and its choices continue from its key/value cache (``shared``; the same
sums, up to float rounding), or, for a model whose forward takes no cache, one row per choice as lm-eval does
(``flat``). Rows are right-padded, longest first, and only scoring positions go through the LM head.
"""

from __future__ import annotations

import inspect
import threading
from typing import Callable

from ..core.errors import AigcError

TOKENS_PER_BATCH = 8192   # padded tokens in one forward pass
LOGITS_PER_BATCH = 2**27  # floats of vocabulary scores kept in one pass (512 MB)
ROWS_PER_BATCH = 64


def prefix_token_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def tok_encode(tokenizer, text: str, add_special_tokens: bool | None = None) -> list[int]:
    """``HFLM.tok_encode``: the tokenizer's own special tokens, unless the text starts with the BOS text."""
    kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
    if add_special_tokens is None and text.startswith(tokenizer.decode(prefix_token_id(tokenizer))):
        kwargs["add_special_tokens"] = False
    return list(tokenizer.encode(text, **kwargs))


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) as ``TemplateLM.loglikelihood`` makes them for a causal model."""
    if context == "":
        continuation_ids = tok_encode(tokenizer, continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        if continuation_ids and continuation_ids[0] == prefix:
            return continuation_ids[:1], continuation_ids[1:]
        return [prefix], continuation_ids
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tok_encode(tokenizer, context + continuation)
    context_ids = tok_encode(tokenizer, context)
    return context_ids, whole[len(context_ids):]


def batches(lengths: list[int], scored: list[int], vocab: int) -> list[list[int]]:
    """Row indices grouped for forward passes, longest first (as lm-eval orders them: least padding); a group's
    padded tokens and the vocabulary scores it keeps (the positions from its earliest scored one) are bounded."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups, current, width, start = [], [], 0, 0
    for index in order:
        if current:
            span = width - min(start, lengths[index] - scored[index])
            rows = len(current) + 1
            if rows > ROWS_PER_BATCH or rows * width > TOKENS_PER_BATCH or rows * span * vocab > LOGITS_PER_BATCH:
                groups.append(current)
                current = []
        if not current:
            width, start = lengths[index], lengths[index] - scored[index]
        current.append(index)
        start = min(start, lengths[index] - scored[index])
    return groups + [current] if current else groups


def loglikelihoods(network, requests: list[tuple[list[int], list[int]]], cancel: threading.Event,
                   done: Callable[[int, float, bool], None], limit: int | None = None, share: bool = True) -> None:
    """For each (context ids, continuation ids): ``done(index, total log-probability, is greedy)``, a batch at
    a time; returns early once ``cancel`` is set (between batches).

    ``share``: each distinct context goes through the model once and its choices continue from its key/value
    cache (the same sums, computed once per context instead of once per choice); without it, or for a model
    whose forward takes no cache, every (context + continuation) is a row of its own, as in lm-eval."""
    for index, (context, continuation) in enumerate(requests):
        if not continuation:
            raise AigcError(f"Choice request {index} has no tokens to score.", "Give each choice some text.")
        if limit and len(context) + len(continuation) > limit + 1:
            raise AigcError(f"A prompt with its choice is {len(context) + len(continuation)} tokens; the model "
                            f"reads {limit} at most.", "Shorten the prompt template or the choices.")
    takes = set(inspect.signature(network.forward).parameters)
    cache = next((name for name in ("cache", "past_key_values") if name in takes), None)  # transformers 5: cache
    if share and cache and {"attention_mask", "position_ids", "use_cache"} <= takes:
        shared(network, requests, cancel, done, "logits_to_keep" in takes, cache)
    else:
        flat(network, requests, cancel, done)


def _vocab(network) -> int:
    config = network.config
    return getattr(config, "vocab_size", 0) or getattr(config.get_text_config(), "vocab_size", 1)


def _scored(scores, continuation: list[int]) -> tuple[float, bool]:
    """(sum of the continuation's log-probabilities, whether each is the most likely token) from its rows."""
    import torch

    target = torch.tensor(continuation, device=scores.device)
    return float(scores.gather(1, target.unsqueeze(-1)).sum()), bool((scores.argmax(-1) == target).all())


def flat(network, requests, cancel, done) -> None:
    """One row per distinct (context + continuation)[:-1], right-padded: lm-eval's own computation (choices
    differing only in their last token share a row, as lm-eval's logits cache has them)."""
    import torch

    inputs: dict[tuple, list[int]] = {}
    for index, (context, continuation) in enumerate(requests):
        inputs.setdefault(tuple(context + continuation)[:-1], []).append(index)
    rows = list(inputs)
    scored = [max(len(requests[index][1]) for index in inputs[row]) for row in rows]
    takes_keep = "logits_to_keep" in inspect.signature(network.forward).parameters
    pad = 0  # lm-eval pads with 0 on the right; a causal model's real positions never see the padding
    for group in batches([len(r) for r in rows], scored, _vocab(network)):
        if cancel.is_set():
            return
        width = max(len(rows[i]) for i in group)
        ids = torch.tensor([list(rows[i]) + [pad] * (width - len(rows[i])) for i in group], device=network.device)
        first = min(len(rows[i]) - scored[i] for i in group)
        kwargs = {"use_cache": False}
        offset = 0
        if takes_keep:
            kwargs["logits_to_keep"], offset = torch.arange(first, width, device=network.device), first
        with torch.inference_mode():
            scores = torch.log_softmax(network(input_ids=ids, **kwargs).logits.float(), dim=-1)
            for row, i in enumerate(group):
                end = len(rows[i])
                for index in inputs[rows[i]]:
                    continuation = requests[index][1]
                    done(index, *_scored(scores[row, end - len(continuation) - offset:end - offset], continuation))


def shared(network, requests, cancel, done, takes_keep: bool, cache_name: str) -> None:
    """Contexts right-padded in one pass that keeps their key/value cache; the cache rows are repeated for each
    continuation, which runs on in a second pass (padding masked out, positions after its own context)."""
    import torch

    contexts: dict[tuple, list[int]] = {}
    for index, (context, _) in enumerate(requests):
        contexts.setdefault(tuple(context), []).append(index)
    keys = list(contexts)
    counts = [len(contexts[k]) for k in keys]
    spans = [max(len(requests[index][1]) for index in contexts[k]) for k in keys]
    for group in _context_batches(keys, counts, spans, _vocab(network)):
        if cancel.is_set():
            return
        lengths = [len(keys[i]) for i in group]
        width = max(lengths)
        ids = torch.tensor([list(keys[i]) + [0] * (width - len(keys[i])) for i in group], device=network.device)
        kwargs = {"use_cache": True}
        offset = 0
        if takes_keep:
            offset = min(lengths) - 1
            kwargs["logits_to_keep"] = torch.arange(offset, width, device=network.device)
        with torch.inference_mode():
            out = network(input_ids=ids, **kwargs)
            at = torch.tensor(lengths, device=out.logits.device) - 1 - offset
            last = torch.log_softmax(out.logits[torch.arange(len(group), device=at.device), at].float(), -1)
            members = [(g, index) for g, i in enumerate(group) for index in contexts[keys[i]]]
            longer = [(g, index) for g, index in members if len(requests[index][1]) > 1]  # one token: done above
            tails = [requests[index][1][:-1] for _, index in longer]
            more = max((len(t) for t in tails), default=0)
            row_of = {index: row for row, (_, index) in enumerate(longer)}
            if more:
                cache = getattr(out, cache_name)
                cache.reorder_cache(torch.tensor([g for g, _ in longer], device=network.device))
                context_mask = [[1] * lengths[g] + [0] * (width - lengths[g]) for g, _ in longer]
                mask = torch.tensor([m + [1] * len(t) + [0] * (more - len(t)) for m, t in zip(context_mask, tails)],
                                    device=network.device)
                positions = torch.tensor([[lengths[g] + j for j in range(more)] for g, _ in longer],
                                         device=network.device)
                tail_ids = torch.tensor([t + [0] * (more - len(t)) for t in tails], device=network.device)
                rest = torch.log_softmax(network(input_ids=tail_ids, attention_mask=mask, position_ids=positions,
                                                 use_cache=True, **{cache_name: cache}).logits.float(), -1)
            for g, index in members:
                continuation = requests[index][1]
                rows = last[g].unsqueeze(0)
                if len(continuation) > 1:
                    rows = torch.cat([rows, rest[row_of[index], :len(continuation) - 1]])
                done(index, *_scored(rows, continuation))


def _context_batches(keys: list[tuple], counts: list[int], spans: list[int], vocab: int) -> list[list[int]]:
    """Contexts grouped, longest first: padded context tokens, continuation rows and their vocabulary scores
    bounded per pass (a context's continuations always share its pass)."""
    order = sorted(range(len(keys)), key=lambda i: -len(keys[i]))
    groups, current, rows, span = [], [], 0, 0
    for index in order:
        width = len(keys[current[0]]) if current else len(keys[index])
        wider = max(span, spans[index])
        if current and (rows + counts[index] > ROWS_PER_BATCH or (len(current) + 1) * width > TOKENS_PER_BATCH
                        or (rows + counts[index]) * wider * vocab > LOGITS_PER_BATCH):
            groups.append(current)
            current, rows, wider = [], 0, spans[index]
        current.append(index)
        rows, span = rows + counts[index], wider
    return groups + [current] if current else groups
