"""FinetuneView: %%aigc_finetune's live loss chart (train and eval), progress, tokens/s, time left and Stop."""

from __future__ import annotations

from dataclasses import asdict

from .static_copy import css
from .training_view import TrainingView, training_esm


class FinetuneView(TrainingView):
    """``progress``: the run's Progress (step, total_steps, epoch, losses, eval_losses, …)."""

    _esm = training_esm("finetune_view.js")
    _css = css("finetune_view.css")

    def _line(self) -> str:
        progress = self.progress or {}
        losses = progress.get("losses") or []
        return f"{progress.get('status', 'starting')} · step {progress.get('step', 0)} of " \
               f"{progress.get('total_steps', 0)}" + (f" · loss {losses[-1][1]:.4f}" if losses else "")

    def safe_html(self) -> str:
        """The static copy: the status line and the loss chart as a PNG."""
        from ..outside import html
        from .charts import curves_png, png_img

        progress = self.progress or {}
        losses = progress.get("losses") or []
        curves = {"train loss": losses, "eval loss": progress.get("eval_losses") or []}
        chart = png_img(curves_png(curves, progress.get("total_steps") or 0), "loss chart") if losses else ""
        return f"<div><b>{html(self.title)}</b><br>{html(self._line())}<br>{chart}</div>"

    def static_text(self) -> str:
        from ..outside import plain

        return plain(f"{self.title}: {self._line()}")

    def update(self, progress) -> None:
        with self._lock:
            if self._due(progress.status):
                self.progress = asdict(progress)


class TerminalFinetuneView:
    """A rich progress bar with the last loss, in terminal IPython."""

    def __init__(self):
        from rich.progress import Progress as Bar

        self.bar = Bar()
        self.task = None

    def update_static_copy(self) -> None:
        """A terminal keeps no saved copy."""

    def update(self, progress) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("training", total=progress.total_steps or None)
        loss = f"loss {progress.losses[-1][1]:.3f}" if progress.losses else ""
        self.bar.update(self.task, completed=progress.step, description=f"training {loss}")
        if progress.status != "running":
            self.bar.stop()
