"""ImageLabView: %aigc_train_image's live view: loss curves, a grid of samples from fixed noise redrawn as the
model learns, progress with the time left, and Stop (the model is kept as trained so far)."""

from __future__ import annotations

from dataclasses import asdict

from traitlets import Bytes

from ..outside import html, plain
from .charts import curves_png, png_img
from .static_copy import css
from .training_view import TrainingView, training_esm


class ImageLabView(TrainingView):
    """``progress``: the run's LabProgress (step, total_steps, epoch, curves, …)."""

    _esm = training_esm("image_lab_view.js")
    _css = css("image_lab_view.css")

    grid = Bytes(b"").tag(sync=True)  # PNG of the latest samples

    def update(self, progress, grid: bytes | None) -> None:
        with self._lock:
            if not self._due(progress.status, force=grid is not None):
                return
            with self.hold_sync():
                if grid is not None:
                    self.grid = grid
                self.progress = asdict(progress)

    def _line(self) -> str:
        progress = self.progress or {}
        losses = ", ".join(f"{name} {points[-1][1]:.3f}" for name, points in (progress.get("curves") or {}).items()
                           if points)
        return f"{progress.get('status', 'starting')} · epoch {progress.get('epoch', 0):.1f}" + (
            f" · {losses}" if losses else "")

    def safe_html(self) -> str:
        """The static copy: the last sample grid and the final losses."""
        progress = self.progress or {}
        curves = progress.get("curves") or {}
        drawn = any(curves.values())
        chart = png_img(curves_png(curves, progress.get("total_steps") or 0, shared=False), "loss curves") if drawn else ""
        image = png_img(self.grid, "samples from fixed noise") if self.grid else ""
        return f"<div><b>{html(self.title)}</b><br>{html(self._line())}<br>{chart}{image}</div>"

    def static_text(self) -> str:
        return plain(f"{self.title}: {self._line()}")


class TerminalImageLabView:
    """A rich progress bar with the latest losses, in terminal IPython."""

    def __init__(self):
        from rich.progress import Progress as Bar

        self.bar = Bar()
        self.task = None

    def update_static_copy(self) -> None:
        """A terminal keeps no saved copy."""

    def update(self, progress, grid: bytes | None) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("training", total=progress.total_steps or None)
        losses = " ".join(f"{name} {points[-1][1]:.3f}" for name, points in progress.curves.items() if points)
        self.bar.update(self.task, completed=progress.step, description=f"epoch {progress.epoch:.1f} {losses}")
        if progress.status != "running":
            self.bar.stop()
