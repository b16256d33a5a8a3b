"""The fine-tuning task behind %%aigc_finetune: check, tokenize, train (LoRA by default), save, and make the
result a model the rest of the notebook can use at once (``%%gpt -m NAME``)."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.config import cache_dir
from ..core.errors import AigcError
from ..core.models import ADAPTER_INFO, DEFAULT_NAMES, ModelRef
from ..engines.base import TRAIN
from ..engines.training import Progress, Settings, train
from .finetune_data import data_hash, load_examples, tokenize

FULL_LIMIT = 1_500_000_000  # parameters: --full copies the model, so only small ones


@dataclass
class Result:
    name: str
    ref: ModelRef
    folder: Path
    progress: Progress
    examples: int
    cut: int
    merged: Path | None = None


def check_settings(args) -> Settings:
    problems = []
    if not 0 < args.epochs <= 1000:
        problems.append(f"--epochs {args.epochs:g} (use 1 to 1000)")
    if not 0 < args.lr < 1:
        problems.append(f"--lr {args.lr:g} (use a small positive number such as 1e-3)")
    if not 1 <= args.lora_r <= 1024:
        problems.append(f"--lora-r {args.lora_r} (use 4 to 64)")
    if not 0 <= args.eval_split < 0.9:
        problems.append(f"--eval-split {args.eval_split:g} (use 0 to 0.5)")
    if not 8 <= args.max_length <= 32768:
        problems.append(f"--max-length {args.max_length} (use 64 to 4096)")
    if not 1 <= args.batch_size <= 1024:
        problems.append(f"--batch-size {args.batch_size} (use 1 to 64)")
    if problems:
        raise AigcError(f"These settings make no sense: {'; '.join(problems)}.", "Change them, or leave them out "
                        "for the defaults (8 epochs, lr 1e-3, rank 16).")
    return Settings(epochs=args.epochs, learning_rate=args.lr, lora_r=args.lora_r, batch_size=args.batch_size,
                    eval_split=args.eval_split, full=args.full)


def check_name(session, name: str | None) -> str:
    if not name or not name.strip():
        raise AigcError("%%aigc_finetune needs --name.", "Name the result, e.g. --name zubrowka; then %%gpt -m zubrowka.")
    name = name.strip()
    taken = (name.lower() in DEFAULT_NAMES or name in session.all_aliases() or "/" in name or name.endswith(".gguf")
             or Path(name).exists() or name.startswith("openai:"))
    held = {s["name"] for s in session.cache.stats() if s["engine"] != "transformers" or not s.get("base")}
    if taken or (name in held and name not in session.adapters):
        raise AigcError(f"--name {name} is already a model's name here.",
                        "Pick another name, so -m keeps meaning what it meant.")
    return name


class FinetuneTask:
    def __init__(self, session):
        self.session = session

    def run(self, args, body: str, namespace: dict, cancel: threading.Event, view=None) -> Result:
        session = self.session
        settings = check_settings(args)
        name = check_name(session, args.name)
        ref = session.resolve(args.model)
        if ref.engine == "openai":
            raise AigcError(f"{ref.name} is served over an API; its weights cannot be trained here.",
                            "Pick a local base with -m (a folder, a Hub id, a .gguf file, or the default model).")
        engine, ref = session.registry.serving(ref, TRAIN)
        examples, label = load_examples(args.data, namespace, body)
        with engine.use(ref) as (model, tokenizer):
            rows, cut = tokenize(examples, tokenizer, args.max_length)
            parameters = sum(p.numel() for p in model.parameters())
        if cut:
            print(f"{cut} of {len(examples)} examples were longer than --max-length {args.max_length} tokens and "
                  "were cut.", flush=True)
        if not rows:
            raise AigcError("No example keeps any answer tokens within --max-length.", "Raise --max-length.")
        if settings.full and parameters > FULL_LIMIT:
            raise AigcError(f"--full trains every weight of a copy of {ref.name} ({parameters / 1e9:.1f}B parameters).",
                            "Drop --full to train a LoRA adapter instead.")
        random.Random(0).shuffle(rows)
        held_out = int(round(len(rows) * settings.eval_split))
        train_rows, eval_rows = rows[held_out:], rows[:held_out]
        folder = Path(args.save).expanduser() if args.save else cache_dir() / "adapters" / name
        started = time.time()
        report = view.update if view is not None else (lambda progress: None)
        session.begin()
        try:
            progress, result_ref = self._train(engine, ref, name, settings, train_rows, eval_rows, report, cancel,
                                               folder, args)
        except Exception as exc:  # out of memory: free the cache and say what to do
            if "out of memory" not in str(exc).lower() and type(exc).__name__ != "OutOfMemoryError":
                raise
            session.cache.clear()
            raise AigcError("Out of memory while training; the model cache was emptied.",
                            "Try a smaller --max-length or --batch-size, or --lora-r 8.") from None
        finally:
            session.end()
        info = {"name": name, "base": base_spec(ref), "data_hash": data_hash(examples), "data": label,
                "examples": len(examples), "settings": asdict(settings), "max_length": args.max_length,
                "losses": progress.losses, "eval_losses": progress.eval_losses, "status": progress.status,
                "seconds": time.time() - started}
        (folder / ADAPTER_INFO).write_text(json.dumps(info, indent=1))
        session.adapters[name] = result_ref
        merged = self._merge(engine, result_ref, folder) if args.merge and not settings.full else None
        session.history.append({"time": started, "kind": "finetune", "prompt": f"--name {name}", "model": name,
                                "engine": engine.name, "finish_reason": progress.status,
                                **{k: info[k] for k in ("base", "data_hash", "settings", "status", "seconds")},
                                "final_loss": progress.losses[-1][1] if progress.losses else None,
                                "final_eval_loss": progress.eval_losses[-1][1] if progress.eval_losses else None})
        return Result(name, result_ref, folder, progress, len(examples), cut, merged)

    def _train(self, engine, ref: ModelRef, name: str, settings: Settings, rows, eval_rows, report, cancel,
               folder: Path, args):
        if settings.full:
            with engine.copy_for_training(ref) as (model, tokenizer, device):
                progress = train(model, tokenizer, rows, eval_rows, settings, device, report, cancel)
                model.save_pretrained(folder)
                tokenizer.save_pretrained(folder)
            return progress, ModelRef("transformers", str(folder.resolve()), name)
        with engine.training(ref, name, settings.lora_r) as (wrapper, tokenizer, device):
            progress = train(wrapper, tokenizer, rows, eval_rows, settings, device, report, cancel)
            wrapper.save_pretrained(str(folder), selected_adapters=[name])
        adapter = ModelRef("transformers", ref.source, name, gguf=ref.gguf, default=ref.default, adapter=name,
                           adapter_path=str(folder.resolve()), base=ref)
        engine.register_adapter(adapter)
        return progress, adapter

    @staticmethod
    def _merge(engine, adapter: ModelRef, folder: Path) -> Path:
        """A merged copy (base + adapter in plain weights) saved beside the adapter; the cached base stays."""
        import copy

        target = folder.parent / f"{folder.name}-merged"
        with engine.use(adapter) as (model, tokenizer):
            wrapper = engine.adapters.wrapper(engine.key(adapter))
            twin = copy.deepcopy(wrapper)
        merged = twin.merge_and_unload()
        merged.save_pretrained(target)
        tokenizer.save_pretrained(target)
        return target


def base_spec(ref: ModelRef) -> str:
    """What -m needs to find the base again in a later kernel."""
    if ref.default:
        return "SmolLM2-135M-Instruct"
    return ref.gguf or ref.source
