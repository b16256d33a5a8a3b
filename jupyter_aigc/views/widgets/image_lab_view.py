"""ImageLabView: %aigc_train_image's live view: loss curves, a grid of samples from fixed noise redrawn as the
model learns, progress with the time left, and Stop (the model is kept as trained so far)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import anywidget
from traitlets import Bytes, Dict, Unicode

from ..outside import html, plain
from .charts import curves_png, png_img
from .static_copy import StaticCopy, css

STATIC = Path(__file__).parent / "static"
PUSH_INTERVAL = 0.2


class ImageLabView(StaticCopy, anywidget.AnyWidget):
    _esm = STATIC / "image_lab_view.js"
    _css = css("image_lab_view.css")

    title = Unicode("").tag(sync=True)
    progress = Dict().tag(sync=True)  # LabProgress as a dict: step, total_steps, epoch, curves, …
    grid = Bytes(b"").tag(sync=True)  # PNG of the latest samples

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_stop: Callable[[], None] | None = None
        self._pushed = 0.0
        self._lock = threading.Lock()
        self.on_msg(self._handle_message)

    def _handle_message(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "stop" and self.on_stop:
            self.on_stop()

    def update(self, progress, grid: bytes | None) -> None:
        now = time.monotonic()
        with self._lock:
            if grid is None and progress.status == "running" and now - self._pushed < PUSH_INTERVAL:
                return
            self._pushed = now
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
