"""LocalTextBackend: a transformers causal LM from the ModelCache, generating in a worker thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterator

from ..cache import ModelCache, pick_device, pick_dtype
from ..errors import AigcError
from ..models import ModelSpec, local_folder
from .base import Chunk, Request, TokenInfo

POLL_SECONDS = 0.05
TOP_ALTERNATIVES = 5


def load_text_model(source: str, device: str, dtype, encoder_ok: bool = False) -> tuple:
    """(model, tokenizer) from a folder or Hub id, on ``device`` in ``dtype``, in eval mode.

    With ``encoder_ok``, a model that is not a causal LM (BERT-style) loads as a plain AutoModel.
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    def load(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
        except ValueError:
            if not encoder_ok:
                raise
            model = AutoModel.from_pretrained(source, dtype=dtype, local_files_only=local_only)
        return model, tokenizer

    try:
        try:
            model, tokenizer = load(local_only=True)  # folders and Hub ids already downloaded: no network
        except OSError:
            model, tokenizer = load(local_only=False)
    except OSError as exc:
        raise AigcError(
            f"Could not load '{source}': it is not a local model folder and the Hub could not provide it.",
            "Check the name, or download the model where the Hub is reachable and pass its folder with -m.",
        ) from exc
    except ValueError as exc:
        raise AigcError(
            f"'{source}' is not a text-generation (causal LM) model: {str(exc).splitlines()[0]}",
            "Pass a causal language model to %%gpt.",
        ) from exc
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class TokenCollector:
    """A transformers streamer whose ``put`` only records token ids (and their probabilities), no decoding."""

    def __init__(self, recorder: "ProbabilityRecorder | None" = None):
        self.ids: list[int] = []
        self.tokens: list[tuple[int, float, list]] = []
        self._prompt_seen = False
        self._recorder = recorder

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        if self._recorder is not None:
            for token_id in ids:
                self.tokens.append(self._recorder.describe(token_id))
        self.ids.extend(ids)

    def end(self) -> None:
        pass


class ProbabilityRecorder:
    """A logits processor that keeps the last step's distribution, so each token gets its probability."""

    def __init__(self):
        self._last = None

    def __call__(self, input_ids, scores):
        self._last = scores[0].float().softmax(-1)
        return scores

    def describe(self, token_id: int) -> tuple[int, float, list]:
        probs = self._last
        top = probs.topk(TOP_ALTERNATIVES)
        return token_id, float(probs[token_id]), list(zip(top.indices.tolist(), top.values.tolist()))


class CancelCriteria:
    """A stopping criterion that ends generation at the next token once ``cancel`` is set."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)


class LocalTextBackend:
    """Generates with a local transformers model held in the kernel's ModelCache."""

    name = "local"

    def __init__(self, cache: ModelCache, device: str = "", dtype: str = "",
                 progress: Callable[[str], None] = print):
        self.cache = cache
        self.device = device
        self.dtype = dtype
        self.progress = progress
        # Long-lived generation threads: each new thread that runs torch starts its own OpenMP team,
        # and the teams of finished threads keep spinning, slowing every later generation on the CPU.
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aigc-generate")

    def load(self, spec: ModelSpec, encoder_ok: bool = False) -> tuple:
        """(model, tokenizer) for ``spec``, from the cache or loaded into it once."""

        def loader():
            device = pick_device(self.device)
            dtype = pick_dtype(device, self.dtype)
            model, tokenizer = load_text_model(local_folder(spec, self.progress), device, dtype, encoder_ok)
            return (model, tokenizer), device, str(dtype).removeprefix("torch.")

        return self.cache.get(spec.source, loader, name=spec.name)

    def stream(self, request: Request, spec: ModelSpec, cancel: threading.Event) -> Iterator[Chunk]:
        model, tokenizer = self.load(spec)
        inputs = self._encode(tokenizer, request).to(model.device)
        for index in range(request.n):
            if cancel.is_set():
                return
            yield from self._generate_one(model, tokenizer, inputs, request, cancel, index)

    def _encode(self, tokenizer, request: Request):
        if request.raw or not tokenizer.chat_template:
            text = "\n\n".join(m["content"] for m in request.messages if m["role"] != "system" or not request.raw)
            if request.raw:
                text = request.messages[-1]["content"]
            return tokenizer(text, return_tensors="pt")
        return tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _generate_one(self, model, tokenizer, inputs, request: Request, cancel, index: int) -> Iterator[Chunk]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        recorder = ProbabilityRecorder() if request.logprobs else None
        collector = TokenCollector(recorder)
        kwargs = dict(
            max_new_tokens=request.max_tokens,
            streamer=collector,
            stopping_criteria=StoppingCriteriaList([CancelCriteria(cancel)]),
            pad_token_id=tokenizer.pad_token_id,
        )
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=request.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        if recorder is not None:
            kwargs["logits_processor"] = LogitsProcessorList([recorder])
        failure: list[BaseException] = []

        def run():
            try:
                if request.seed is not None:
                    torch.manual_seed(request.seed + index)
                with torch.inference_mode():
                    model.generate(**inputs, **kwargs)
            except BaseException as exc:  # handed to the consumer thread
                failure.append(exc)

        emitted = ""
        sent_tokens = 0
        worker = self._workers.submit(run)
        try:
            while True:
                done = wait([worker], timeout=POLL_SECONDS).done != set()
                text = tokenizer.decode(collector.ids, skip_special_tokens=True)
                visible = cut_at_stop(text, request.stop) if done else hold_back(text, request.stop)
                tokens = [self._token_info(tokenizer, t) for t in collector.tokens[sent_tokens:]]
                sent_tokens += len(tokens)
                if visible.startswith(emitted) and (len(visible) > len(emitted) or tokens):
                    yield Chunk(text=visible[len(emitted):], index=index, tokens=tokens)
                    emitted = visible
                if done:
                    break
        finally:
            if not worker.done():
                cancel.set()
                wait([worker])
        if failure:
            raise failure[0]
        stopped = cancel.is_set()
        reason = "stopped" if stopped else ("length" if len(collector.ids) >= request.max_tokens else "stop")
        yield Chunk(
            index=index,
            usage={"prompt_tokens": int(inputs["input_ids"].shape[-1]), "completion_tokens": len(collector.ids)},
            finish_reason=reason,
        )

    @staticmethod
    def _token_info(tokenizer, token: tuple[int, float, list]) -> TokenInfo:
        token_id, prob, top = token
        return TokenInfo(
            text=tokenizer.decode([token_id]),
            prob=prob,
            top=[(tokenizer.decode([i]), p) for i, p in top],
        )


def hold_back(text: str, stop: list[str]) -> str:
    """The part of streamed ``text`` safe to show: no half character, no possible start of a stop string."""
    text = cut_at_stop(text, stop).rstrip("\ufffd")
    keep = max((len(s) - 1 for s in stop), default=0)
    return text[: len(text) - keep] if keep else text


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string, which is not included (as the OpenAI API does)."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text
