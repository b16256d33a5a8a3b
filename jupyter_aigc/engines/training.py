"""Training with transformers' Trainer: LoRA through peft, or every weight of a copy (``--full``).

The Trainer does the optimisation; a callback reports each logged loss. Once ``cancel`` is set (Stop or
Kernel → Interrupt) training ends within the step under way: hooks on the forward and backward passes abandon
it, so the weights are those of the last finished step, and the model is free again at once.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Settings:
    epochs: float = 8.0
    learning_rate: float = 1e-3
    lora_r: int = 16
    batch_size: int = 8
    eval_split: float = 0.0
    full: bool = False


@dataclass
class Progress:
    """What the chart and the progress bar show; ``losses`` and ``eval_losses`` are ``[step, loss]`` pairs."""

    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    losses: list = field(default_factory=list)
    eval_losses: list = field(default_factory=list)
    tokens_per_second: float | None = None
    seconds_left: float | None = None
    status: str = "running"


def lora_config(rank: int):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")


class Stopped(Exception):
    """Raised inside a forward or backward pass once ``cancel`` is set: the step is abandoned."""


@contextmanager
def stop_hooks(model, cancel: threading.Event):
    """Hooks that abandon the current forward or backward pass of ``model`` once ``cancel`` is set."""

    def check(*_):
        if cancel.is_set():
            raise Stopped()

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_pre_hook(check) for m in leaves]
    handles += [p.register_hook(check) for p in model.parameters() if p.requires_grad]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def train(model, tokenizer, rows: list[dict], eval_rows: list[dict], settings: Settings, device: str,
          report: Callable[[Progress], None], cancel: threading.Event, progress: Progress | None = None) -> Progress:
    """Train ``model`` in place (a peft model with its adapter active, or a copy for --full); ``progress`` is
    filled in as it goes (and is the caller's to keep if training is interrupted)."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    progress = progress if progress is not None else Progress()
    tokens = [sum(1 for label in row["labels"] if label != -100) for row in rows]
    steps_per_epoch = math.ceil(len(rows) / settings.batch_size)
    progress.total_steps = max(1, math.ceil(steps_per_epoch * settings.epochs))
    started = time.perf_counter()

    class Report(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            progress.step, progress.epoch = state.global_step, state.epoch or 0.0
            elapsed = time.perf_counter() - started
            seen = sum(tokens) * (progress.epoch or 0)
            progress.tokens_per_second = seen / elapsed if elapsed > 0 else None
            done = progress.step / progress.total_steps
            progress.seconds_left = elapsed / done * (1 - done) if done else None
            if cancel.is_set():
                control.should_training_stop = True
                progress.status = "stopped"
            report(progress)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                progress.losses.append([state.global_step, float(logs["loss"])])
            if "eval_loss" in logs:
                progress.eval_losses.append([state.global_step, float(logs["eval_loss"])])
            report(progress)

    on_gpu = device.startswith("cuda")
    scratch = tempfile.mkdtemp(prefix="aigc-train-")  # the Trainer's output_dir; nothing is saved there
    arguments = TrainingArguments(
        output_dir=scratch, num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size, logging_steps=1, save_strategy="no", report_to=[],
        disable_tqdm=True, use_cpu=not on_gpu, bf16=on_gpu and _bf16_ok(), lr_scheduler_type="linear",
        eval_strategy="steps" if eval_rows else "no", eval_steps=max(1, steps_per_epoch) if eval_rows else None,
        remove_unused_columns=False, dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=arguments, train_dataset=Dataset.from_list(rows),
                      eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True), callbacks=[Report()])
    for printer in (PrinterCallback, ProgressCallback):  # the chart shows the losses, not a stream of log lines
        trainer.remove_callback(printer)
    model.train()
    try:
        with warnings.catch_warnings(), stop_hooks(model, cancel):
            warnings.simplefilter("ignore", FutureWarning)
            if cancel.is_set():
                raise Stopped()
            trainer.train()
    except Stopped:
        progress.status = "stopped"
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)  # an abandoned step's gradients
        shutil.rmtree(scratch, ignore_errors=True)
    if progress.status == "running":
        progress.status = "finished"
    report(progress)
    return progress


def _bf16_ok() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
