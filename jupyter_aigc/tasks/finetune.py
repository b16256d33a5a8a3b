"""The fine-tuning task behind %%aigc_finetune: check, tokenize, train (LoRA by default), save, and make the
result a model the rest of the notebook can use at once (``%%gpt -m NAME``).

The result joins the model cache and the session's names when training starts, so it answers to ``-m NAME``
the moment the cell ends, even after Stop, an interrupt or a failed save (``FinetuneTask.save`` tries again).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..core.cache import Loaded, module_bytes
from ..core.config import cache_dir
from ..core.errors import AigcError
from ..core.models import ADAPTER_INFO, DEFAULT_NAMES, ModelRef
from ..engines.base import TRAIN
from ..engines.training import Progress, Settings, train
from .finetune_data import data_hash, load_examples, tokenize

FULL_LIMIT = 1_500_000_000  # parameters: --full copies the model, so only small ones


@dataclass
class Result:
    """One run: usable as ``-m name`` from the start of training; ``saved`` once ``folder`` holds it."""

    name: str
    ref: ModelRef
    folder: Path
    progress: Progress
    examples: int
    cut: int
    info: dict = field(default_factory=dict)
    saved: bool = False
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


def check_folder(folder: Path) -> Path:
    """The folder to save in, refused before training when it cannot be one (a file, or not writable)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise AigcError(f"Cannot save to {folder}: {existing} is a file.",
                        "Pass --save a new folder's path, or an existing folder's.")
    if existing is not None and not os.access(existing, os.W_OK):
        raise AigcError(f"Cannot save to {folder}: {existing} is read-only.", "Pass --save a folder you can write to.")
    return folder


def split(rows: list, eval_split: float) -> tuple[list, list]:
    """(train, held out): at least one held out when --eval-split asks for any, and at least one to train on."""
    held_out = max(1, round(len(rows) * eval_split)) if eval_split else 0
    if held_out >= len(rows):
        raise AigcError(f"--eval-split {eval_split:g} holds out {held_out} of the {len(rows)} usable examples, "
                        "leaving none to train on.", "Lower --eval-split (0 trains on all of them), or add examples.")
    random.Random(0).shuffle(rows)
    return rows[held_out:], rows[:held_out]


@contextmanager
def saving(folder: Path, message: str, fix: str):
    """A failed write becomes ``message`` with the reason, and a folder it created is removed again."""
    from safetensors import SafetensorError

    created = not folder.exists()
    try:
        yield
    except (OSError, RuntimeError, SafetensorError) as exc:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AigcError(f"{message} could not be saved to {folder} ({reason}).", fix) from None


class FinetuneTask:
    def __init__(self, session):
        self.session = session
        self.results: dict[str, Result] = {}  # by name: what the latest run of each name trained

    def run(self, args, body: str, namespace: dict, cancel: threading.Event, view=None) -> Result:
        session = self.session
        settings = check_settings(args)
        name = check_name(session, args.name)
        folder = check_folder(Path(args.save).expanduser() if args.save else cache_dir() / "adapters" / name)
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
        train_rows, eval_rows = split(rows, settings.eval_split)
        result = Result(name, ref, folder, Progress(), len(examples), cut)
        result.info = {"name": name, "base": base_spec(ref), "data_hash": data_hash(examples), "data": label,
                       "examples": len(examples), "settings": asdict(settings), "max_length": args.max_length}
        started = time.time()
        report = view.update if view is not None else (lambda progress: None)
        session.begin()
        try:
            self._train(engine, ref, result, settings, train_rows, eval_rows, report, cancel)
        except Exception as exc:  # out of memory: free the cache and say what to do
            self._forget(result)
            if "out of memory" not in str(exc).lower() and type(exc).__name__ != "OutOfMemoryError":
                raise
            session.cache.clear()
            raise AigcError("Out of memory while training; the model cache was emptied.",
                            "Try a smaller --max-length or --batch-size, or --lora-r 8.") from None
        finally:
            session.end()
        progress = result.progress
        result.info.update(losses=progress.losses, eval_losses=progress.eval_losses, status=progress.status,
                           seconds=time.time() - started)
        info = result.info
        session.history.append({"time": started, "kind": "finetune", "prompt": f"--name {name}", "model": name,
                                "engine": engine.name, "finish_reason": progress.status,
                                **{k: info[k] for k in ("base", "data_hash", "settings", "status", "seconds")},
                                "final_loss": progress.losses[-1][1] if progress.losses else None,
                                "final_eval_loss": progress.eval_losses[-1][1] if progress.eval_losses else None})
        self.save(name, folder)
        if args.merge and not settings.full:
            result.merged = self._merge(engine, result.ref, folder)
        return result

    def _train(self, engine, ref: ModelRef, result: Result, settings: Settings, rows, eval_rows, report, cancel):
        """Train, with the result registered under its name first and held exclusively while it changes."""
        session, name = self.session, result.name
        self.results[name] = result
        if not settings.full:
            with engine.training(ref, name, settings.lora_r) as (wrapper, tokenizer, device):
                adapter = ModelRef("transformers", ref.source, name, gguf=ref.gguf, default=ref.default,
                                   adapter=name, base=ref)
                engine.register_adapter(adapter)
                result.ref = session.adapters[name] = adapter
                train(wrapper, tokenizer, rows, eval_rows, settings, device, report, cancel, result.progress)
            return
        with engine.use(ref, exclusive=True) as (model, tokenizer):
            twin = engine.adapters.plain_copy(engine.key(ref), model)  # the cached base never changes
        full = ModelRef("transformers", str(result.folder.resolve()), name)
        key = engine.key(full)
        session.cache.evict(name)  # what this name meant before
        session.cache.evict(key)  # a model loaded from the folder this one will be saved in
        device = str(twin.device)
        loaded = Loaded(value=(twin, tokenizer), nbytes=module_bytes(twin), device=device,
                        dtype=str(twin.dtype).removeprefix("torch."), engine=engine.name,
                        close=lambda: engine.adapters.forget(key))
        with session.cache.use(key, lambda: loaded, name=name, exclusive=True):
            result.ref = session.adapters[name] = full
            train(twin, tokenizer, rows, eval_rows, settings, device, report, cancel, result.progress)

    def _forget(self, result: Result) -> None:
        """Training failed: the name no longer means the half-made result."""
        if self.session.adapters.get(result.name) is result.ref:
            del self.session.adapters[result.name]
            self.session.cache.evict(result.name)
        self.results.pop(result.name, None)

    def save(self, name: str, folder: str | Path | None = None) -> Path:
        """Save the model fine-tuned here as ``name`` (held in memory) to ``folder``, by default its own."""
        result = self.results.get(name)
        if result is None:
            raise AigcError(f"No model named {name} was fine-tuned in this kernel.",
                            "Give the --name of an %%aigc_finetune run of this kernel.")
        folder = Path(folder).expanduser() if folder else result.folder
        engine, ref = self.session.registry.serving(result.ref, TRAIN)
        key = engine.key(ref)
        unsaved = f"{name} is trained (it answers to -m {name} in this kernel) but"
        fix = (f"Free some space or pick a writable folder, then: jupyter_aigc.get_session().finetune.save({name!r}, "
               "'FOLDER').")
        if key not in self.session.cache or (ref.adapter and name not in engine.adapters.names(key)):
            raise AigcError(f"{name} is no longer in memory (the model cache let it go), so it cannot be saved.",
                            "Train it again with %%aigc_finetune.")
        with saving(folder, unsaved, fix):
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(folder))
            if ref.adapter:
                with engine.use(ref.base):  # shared: no adapter is added or removed while this one is written
                    engine.adapters.wrapper(key).save_pretrained(str(folder), selected_adapters=[name])
            else:
                with engine.use(ref) as (model, tokenizer):
                    model.save_pretrained(folder)
                    tokenizer.save_pretrained(folder)
            (folder / ADAPTER_INFO).write_text(json.dumps(result.info, indent=1))
        if ref.adapter:
            ref = replace(ref, adapter_path=str(folder.resolve()))
        elif ref.source != str(folder.resolve()):  # reload from the saved folder when next used
            self.session.cache.evict(key)
            ref = ModelRef("transformers", str(folder.resolve()), name)
        result.ref = self.session.adapters[name] = ref
        result.folder, result.saved = folder, True
        return folder

    @staticmethod
    def _merge(engine, adapter: ModelRef, folder: Path) -> Path:
        """A merged copy (base + adapter in plain weights) saved beside the adapter; the cached base stays."""
        import copy

        target = folder.parent / f"{folder.name}-merged"
        with engine.use(adapter) as (model, tokenizer):
            wrapper = engine.adapters.wrapper(engine.key(adapter))
            twin = copy.deepcopy(wrapper)
        merged = twin.merge_and_unload()
        with saving(target, f"{adapter.name} is saved in {folder}, but its merged copy",
                    "Free some space, or pass --save a folder where the merged copy fits beside it."):
            merged.save_pretrained(target)
            tokenizer.save_pretrained(target)
        return target


def base_spec(ref: ModelRef) -> str:
    """What -m needs to find the base again in a later kernel."""
    if ref.default:
        return "SmolLM2-135M-Instruct"
    return ref.gguf or ref.source
