"""A whole generation, step by step: greedy, sampling and beam search, recorded from transformers' own ``generate``.

One ``generate`` call per strategy, watched and never steered: ``output_scores``/``output_logits`` give every
step's scores, a logits processor that changes nothing records the running beams it is handed, and hooks on
the model time each forward pass and read its key/value cache. Beam search's candidates at a step are the top
2·k (more with several end tokens) of the running beams' cumulative log-probabilities, taken as transformers
takes them; which of them continue is read back from the next step's beams, so what the tree marks as kept or
pruned is what transformers did. Beside every cached step, a full forward pass over the whole sequence without
the cache is timed too (and gives the same scores).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from ..core.cache import module_bytes
from ..core.cancel import Interrupted
from ..core.errors import AigcError
from ..options import check
from .attention import budget_of, forward_bytes, lean_forward, refuse_over_budget, uses_eager_attention
from .teach import _weights, encode

STRATEGIES = ("greedy", "sample", "beam")
SHOWN = 8        # candidates per step (greedy, sampling) kept for the view
BEAM_TOP = 3     # each running beam's own best next tokens kept for the view
PRUNED_FLOOR = -1e8  # a running score at or below this is transformers' -1e9 "no beam here"


@dataclass(frozen=True)
class Plan:
    """One strategy's checked settings (the defaults are transformers' own)."""

    strategy: str = "greedy"
    steps: int = 12
    num_beams: int = 3
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    seed: int | None = None
    length_penalty: float = 1.0

    @property
    def sequences(self) -> int:
        return self.num_beams if self.strategy == "beam" else 1

    def shown(self) -> dict:
        """The settings that shaped this trace, as the view names them."""
        if self.strategy == "sample":
            return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed}
        if self.strategy == "beam":
            return {"num_beams": self.num_beams, "length_penalty": self.length_penalty, "early_stopping": False}
        return {}


def strategy_of(text) -> str:
    name = str(text).strip().lower()
    if name not in STRATEGIES:
        raise AigcError(f"Unknown strategy {str(text)!r}.", "Use greedy, sample or beam.")
    return name


def plans(strategy="greedy", steps=12, num_beams=3, temperature=1.0, top_k=50, top_p=1.0, seed=None,
          compare=None) -> list[Plan]:
    """The checked plan of each strategy (``compare``: a comma list or a list, e.g. "greedy,sample,beam"),
    before any model is loaded; ranges come from spec.json."""
    if compare:
        names = [part for part in (compare.split(",") if isinstance(compare, str) else list(compare))]
        if not all(str(part).strip() for part in names):
            raise AigcError(f"--compare {compare!r} has an empty item.", "Give a comma list like greedy,sample,beam.")
        names = [strategy_of(name) for name in names]
        if len(set(names)) != len(names):
            raise AigcError(f"--compare {compare!r} names a strategy twice.", "Name each strategy once.")
    else:
        names = [strategy_of(strategy)]
    steps = check("generation_steps", steps, "--steps")
    num_beams = check("num_beams", num_beams, "--num-beams")
    temperature = check("temperature", temperature)
    top_k = check("top_k", top_k, "--top-k")
    top_p = check("top_p", top_p)
    seed = None if seed is None else check("seed", seed)
    if "sample" in names and temperature == 0:
        raise AigcError("--temperature 0 is greedy, not sampling.",
                        "Use --strategy greedy, or a temperature above 0 (e.g. 0.7).")
    if "sample" in names and seed is None:
        seed = random.SystemRandom().randrange(2**31)  # shown, so --seed repeats the draw
    return [Plan(name, steps, num_beams, float(temperature), top_k, float(top_p), seed if name == "sample" else None)
            for name in names]


@dataclass
class GenerationTrace:
    """One strategy's generation, step by step: what the model offered, what was taken, what the cache cost."""

    strategy: str
    model: str
    settings: dict
    prompt: str
    prompt_ids: list[int]
    ids: list[int]                 # the generated token ids (the best beam's for beam search)
    tokens: list[str]              # their texts
    text: str                      # the generated text, decoded
    steps: list[dict]              # per step: the candidates, the token taken, the cache, the timings
    cache: dict                    # the cache's shape: layers, kv_heads, head_dim, itemsize, dtype, sequences
    nodes: list[dict] = field(default_factory=list)   # beam search: every candidate of every step
    beams: list[dict] = field(default_factory=list)   # beam search: the final beams, best first

    def data(self) -> dict:
        """What the browser gets, once."""
        return {"strategy": self.strategy, "model": self.model, "settings": self.settings, "prompt": self.prompt,
                "prompt_length": len(self.prompt_ids), "ids": self.ids, "tokens": self.tokens, "steps": self.steps,
                "cache": self.cache, "nodes": self.nodes, "beams": self.beams}


def kv_bytes(config, tokens: int, itemsize: int, sequences: int = 1) -> int:
    """2 (keys and values) × layers × key/value heads × head size × tokens × bytes per element (× sequences)."""
    layers, kv_heads, head_dim = cache_shape(config)
    return 2 * layers * kv_heads * head_dim * tokens * itemsize * sequences


def cache_shape(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head size) from the model's config."""
    heads = getattr(config, "num_attention_heads", 1) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (getattr(config, "hidden_size", 0) or 0) // heads
    return getattr(config, "num_hidden_layers", 0) or 0, kv_heads, head_dim


def cache_tensors(cache) -> list:
    """The key and value tensors a transformers cache holds (one pair per layer)."""
    tensors = []
    for layer in getattr(cache, "layers", None) or []:
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if tensor is not None and hasattr(tensor, "nbytes"):
                tensors.append(tensor)
    return tensors


class Watch:
    """Hooks that watch one ``generate`` call on this thread: each forward pass's time and its cache's tensors,
    and (as a logits processor that changes nothing) the running sequences of every step."""

    def __init__(self, network, cancel=None, on_step: Callable[[int], object] = lambda step: None):
        self.network, self.cancel, self.on_step = network, cancel, on_step
        self.thread = threading.get_ident()
        self.passes: list[dict] = []
        self.running: list = []
        self._start = 0.0
        self._hooks: list = []

    def __enter__(self) -> Watch:
        self._hooks = [self.network.register_forward_pre_hook(self._before),
                       self.network.register_forward_hook(self._after)]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()

    def _before(self, module, args) -> None:
        if threading.get_ident() == self.thread:
            synchronize(self.network)
            self._start = time.perf_counter()

    def _after(self, module, args, output) -> None:
        if threading.get_ident() != self.thread:
            return
        synchronize(self.network)
        seconds = time.perf_counter() - self._start
        cache = output.get("cache")  # transformers ≥ 5.2x; past_key_values before (read as keys: no warning)
        tensors = cache_tensors(cache if cache is not None else output.get("past_key_values"))
        self.passes.append({"seconds": seconds, "bytes": sum(t.nbytes for t in tensors),
                            "tokens": int(tensors[0].shape[-2]) if tensors else 0,
                            "itemsize": tensors[0].element_size() if tensors else 0,
                            "dtype": str(tensors[0].dtype).replace("torch.", "") if tensors else ""})

    def processors(self):
        from transformers import LogitsProcessor, LogitsProcessorList

        watch = self

        class Running(LogitsProcessor):
            def __call__(self, input_ids, scores):
                watch.running.append(input_ids.detach().cpu())
                watch.on_step(len(watch.running))
                return scores

        return LogitsProcessorList([Running()])

    def stopping(self):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancel = self.cancel

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                stop = cancel is not None and cancel.is_set()
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([Stop()])


def synchronize(network) -> None:
    """Wait for the GPU, so a time measures the work and not its queueing."""
    import torch

    if network.device.type == "cuda":
        torch.cuda.synchronize(network.device)


def generation_config(network, plan: Plan):
    """A fresh GenerationConfig: the strategy's settings and the model's own special tokens, nothing else."""
    from transformers import GenerationConfig

    own = network.generation_config
    eos = own.eos_token_id if own.eos_token_id is not None else network.config.eos_token_id
    pad = own.pad_token_id if own.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    settings = {"max_new_tokens": plan.steps, "bos_token_id": own.bos_token_id, "eos_token_id": eos,
                "pad_token_id": pad, "return_dict_in_generate": True, "output_scores": True, "output_logits": True}
    if plan.strategy == "sample":
        settings |= {"do_sample": True, "temperature": plan.temperature, "top_k": plan.top_k, "top_p": plan.top_p}
    elif plan.strategy == "beam":
        settings |= {"do_sample": False, "num_beams": plan.num_beams, "num_return_sequences": plan.num_beams,
                     "length_penalty": plan.length_penalty, "early_stopping": False}
    else:
        settings |= {"do_sample": False}
    return GenerationConfig(**settings)


def eos_ids(config) -> list[int]:
    eos = config.eos_token_id
    return [] if eos is None else [int(e) for e in (eos if isinstance(eos, list) else [eos])]


def refuse_too_long(network, n: int, plan: Plan, name: str, budget: int) -> None:
    """The prompt plus the steps within the model's context, and their memory within the budget."""
    limit = getattr(network.config, "max_position_embeddings", None)
    if limit and n + plan.steps > limit:
        raise AigcError(f"The prompt is {n} tokens; {plan.steps} more would pass the {limit} tokens {name} reads.",
                        "Shorten the prompt or lower --steps.")
    held, config = module_bytes(network), network.config
    vocab = getattr(config, "vocab_size", 0) or 0
    beams, eager = plan.sequences, uses_eager_attention(network)
    itemsize = next(network.parameters()).element_size()
    refuse_over_budget(f"The {plan.strategy} trace", n + plan.steps,
                       lambda m: held + forward_bytes(config, beams * m, eager) + kv_bytes(config, m, itemsize, beams)
                       + 2 * plan.steps * beams * vocab * 4, budget)


def generation_traces(session, prompt: str, todo: list[Plan], model=None, chat: bool = False,
                      cancel=None, progress: Callable[[str], object] | None = None) -> list[GenerationTrace]:
    """The trace of each plan on one prompt (``chat``: wrapped in the chat template as a user turn).
    ``progress`` hears where the work is ("beam search 2 of 3: step 5 of 12") for the line of a long wait."""
    if not prompt.strip():
        raise AigcError("There is no prompt to continue.", "Write the start of a text in the cell body.")
    engine, ref = _weights(session, model)
    budget = budget_of(session)
    with engine.use(ref) as (network, tokenizer):
        ids = encode(tokenizer, prompt, chat)
        return [trace(network, tokenizer, ids, plan, ref.name, budget, cancel,
                      progress_of(progress, plan, index, len(todo))) for index, plan in enumerate(todo)]


def progress_of(progress, plan: Plan, index: int, runs: int) -> Callable[[str], object]:
    """``progress`` with the run named in front ("sampling 2 of 3: …"), or a callable that says nothing."""
    if progress is None:
        return lambda text: None
    name = {"greedy": "greedy", "sample": "sampling", "beam": "beam search"}[plan.strategy]
    where = f"{name} {index + 1} of {runs}" if runs > 1 else name
    return lambda text: progress(f"{where}: {text}")


def trace(network, tokenizer, ids: list[int], plan: Plan, name: str, budget: int, cancel=None,
          progress: Callable[[str], object] = lambda text: None) -> GenerationTrace:
    """Run ``generate`` for ``plan`` under a ``Watch``, then time the same steps without the cache."""
    import torch

    refuse_too_long(network, len(ids), plan, name, budget)
    config = generation_config(network, plan)
    inputs = torch.tensor([ids], device=network.device)
    devices = [network.device] if network.device.type == "cuda" else []
    mask = torch.ones_like(inputs)
    with torch.inference_mode(), torch.random.fork_rng(devices=devices):
        # two untimed steps first, so the timed ones leave out the first calls' setup (the caller's RNG is kept)
        warm = generation_config(network, replace(plan, steps=2))
        network.generate(inputs, attention_mask=mask, generation_config=warm)
        if plan.seed is not None:
            torch.manual_seed(plan.seed)
        with Watch(network, cancel, lambda step: progress(f"step {step} of {plan.steps}")) as watch:
            out = network.generate(inputs, attention_mask=mask, generation_config=config,
                                   logits_processor=watch.processors(), stopping_criteria=watch.stopping())
    if cancel is not None and cancel.is_set():
        raise Interrupted()
    word = lambda i: tokenizer.decode([int(i)])  # noqa: E731
    layers, kv_heads, head_dim = cache_shape(network.config)
    first = next((p for p in watch.passes if p["itemsize"]), {"itemsize": 0, "dtype": ""})
    shape = {"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "itemsize": first["itemsize"],
             "dtype": first["dtype"], "sequences": plan.sequences,
             "bytes_per_token": kv_bytes(network.config, 1, first["itemsize"])}
    n = len(ids)
    if plan.strategy == "beam":
        steps, nodes, beams = beam_steps(out, watch, n, word, eos_ids(config), config.pad_token_id,
                                         len(out.scores) >= plan.steps)
        generated = beams[0]["ids"] if beams else []
    else:
        steps, nodes, beams = token_steps(out, n, word), [], []
        generated = out.sequences[0, n:].tolist()
    inputs_of = (lambda t: watch.running[t]) if plan.strategy == "beam" else (lambda t: out.sequences[:, :n + t])
    costs(network, steps, watch.passes, inputs_of, out.logits, shape, cancel, progress)
    return GenerationTrace(plan.strategy, name, plan.shown(), tokenizer.decode(ids), list(ids), generated,
                           [word(i) for i in generated], tokenizer.decode(generated), steps, shape, nodes, beams)


def token_steps(out, n: int, word) -> list[dict]:
    """Greedy and sampling: per step the most likely tokens (their probability as given by the raw scores and
    as the strategy used them: after temperature, top-k and top-p when sampling) and the token taken."""
    import torch

    steps = []
    for t, (raw, used) in enumerate(zip(out.logits, out.scores)):
        raw, used = raw[0].float(), used[0].float()
        p_raw, p_used = torch.softmax(raw, -1), torch.softmax(used, -1)
        taken = int(out.sequences[0, n + t])
        order = torch.topk(raw, SHOWN).indices.tolist()
        if taken not in order:
            order.append(taken)
        candidates = [{"id": i, "text": word(i), "p": float(p_used[i]), "raw": float(p_raw[i])} for i in order]
        steps.append({"step": t, "token": {"id": taken, "text": word(taken), "p": float(p_used[taken]),
                                           "raw": float(p_raw[taken]), "rank": int((raw > raw[taken]).sum()) + 1},
                      "candidates": candidates, "kept": int(torch.isfinite(used).sum())})
    return steps


def beam_steps(out, watch: Watch, n: int, word, eos: list[int], pad, at_limit: bool) -> tuple[list, list, list]:
    """Beam search: per step the running beams, the candidates transformers weighs (top 2·k of the cumulative
    log-probabilities over every beam's next token) and which it kept, ended (an end token among the best k, or
    the best k at the step limit: they join the finished beams) or pruned; then the final beams."""
    import torch

    k = watch.running[0].shape[0]
    keep = max(2, 1 + len(eos)) * k
    scores = torch.full((k,), -1e9, dtype=torch.float32)
    scores[0] = 0.0  # at the start the k beams are one prompt: only the first counts
    where = [-1] * k  # the node each running beam is (-1: the prompt)
    nodes: list[dict] = []
    steps: list[dict] = []
    for t, logp in enumerate(out.scores):
        logp = logp.float().cpu()
        vocab = logp.shape[-1]
        running = watch.running[t]
        beams = [{"node": where[b], "score": float(scores[b]),
                  "top": [{"id": int(i), "text": word(i), "logp": float(logp[b, i])}
                          for i in torch.topk(logp[b], BEAM_TOP).indices.tolist()]}
                 for b in range(k) if scores[b] > PRUNED_FLOOR]
        values, flat = torch.topk((logp + scores[:, None]).reshape(-1), keep)
        made = []
        for rank, (value, index) in enumerate(zip(values.tolist(), flat.tolist())):
            beam, token = divmod(index, vocab)
            node = {"id": len(nodes), "step": t, "parent": where[beam], "beam": beam, "token": token,
                    "text": word(token), "logp": float(logp[beam, token]), "score": value, "rank": rank,
                    "eos": token in eos, "status": "ended" if token in eos and rank < k else "pruned",
                    "slot": -1, "final": -1}
            nodes.append(node)
            made.append(node)
        if t + 1 == len(out.scores) and at_limit:
            for node in made[:k]:
                node["status"] = "ended"
        if t + 1 < len(watch.running):
            chosen = {tuple(running[node["beam"]].tolist()) + (node["token"],): node for node in made}
            for slot, row in enumerate(watch.running[t + 1]):
                node = chosen.get(tuple(row.tolist()))
                if node is None:
                    if scores.max() <= PRUNED_FLOOR:
                        continue
                    raise RuntimeError(f"beam {slot} of step {t + 1} is none of step {t}'s candidates")
                node.update(status="kept", slot=slot)
            where = [next((m["id"] for m in made if m["slot"] == b), -1) for b in range(k)]
            scores = torch.tensor([next((m["score"] for m in made if m["slot"] == b), -1e9) for b in range(k)],
                                  dtype=torch.float32)
        steps.append({"step": t, "beams": beams, "candidates": [m["id"] for m in made]})
    return steps, nodes, final_beams(out, nodes, n, word, pad)


def final_beams(out, nodes: list[dict], n: int, word, pad) -> list[dict]:
    """transformers' returned beams (best first) with their scores, each found as a node of the tree."""
    paths: dict[tuple, int] = {}
    for node in nodes:
        parent = node["parent"]
        paths_of_parent = nodes[parent]["path"] if parent >= 0 else ()
        node["path"] = (*paths_of_parent, node["token"])
        paths[node["path"]] = node["id"]
    beams = []
    scores = out.sequences_scores.tolist()
    for rank, sequence in enumerate(out.sequences.tolist()):
        generated = sequence[n:]
        for length in range(len(generated), 0, -1):
            found = paths.get(tuple(generated[:length]))
            if found is not None and all(token == pad for token in generated[length:]):
                break
        else:
            raise RuntimeError(f"final beam {rank} is not in the recorded tree")
        node = nodes[found]
        node.update(final=rank, final_score=scores[rank])
        ids = list(node["path"])
        beams.append({"ids": ids, "tokens": [word(i) for i in ids], "score": scores[rank], "logp": node["score"],
                      "length": len(ids), "node": found})
    for node in nodes:
        del node["path"]
    return beams


def costs(network, steps: list[dict], passes: list[dict], inputs_of, logits, shape: dict, cancel=None,
          progress: Callable[[str], object] = lambda text: None) -> None:
    """Each step's cache (bytes from the shapes, and as measured) and time with it, then a full forward pass over
    the same sequences without it: timed, and how far its scores are from the cached pass's."""
    import torch

    for t, step in enumerate(steps):
        if cancel is not None and cancel.is_set():
            raise Interrupted()
        progress(f"timing step {t + 1} of {len(steps)} without the cache")
        cached = passes[t] if t < len(passes) else {"seconds": 0.0, "bytes": 0, "tokens": 0}
        sequences = inputs_of(t).to(network.device)
        tokens = sequences.shape[-1]
        with torch.inference_mode():
            synchronize(network)
            start = time.perf_counter()
            full = network(input_ids=sequences, **lean_forward(network)).logits[:, -1].float()
            synchronize(network)
            seconds = time.perf_counter() - start
        drift = float((full - logits[t].float().to(full.device)).abs().max())
        step["cache"] = {"tokens": tokens, "bytes": kv_bytes(network.config, tokens, shape["itemsize"],
                                                              shape["sequences"]),
                         "measured": cached["bytes"], "measured_tokens": cached["tokens"]}
        step["ms"] = {"cached": 1000 * cached["seconds"], "full": 1000 * seconds, "reads": 1 if t else tokens,
                      "full_reads": tokens, "drift": drift}
