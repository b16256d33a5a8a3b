"""TrainingView: what the live views of a training run share (FinetuneView, ImageLabView): the title, the
progress (the run's progress dataclass as a dict, pushed at most every ``PUSH_INTERVAL`` while it runs), Stop,
and the front-end helpers in ``static/training_common.js`` put in front of each view's own file."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import anywidget
from traitlets import Dict, Unicode

from .static_copy import StaticCopy

STATIC = Path(__file__).parent / "static"
PUSH_INTERVAL = 0.2


def training_esm(name: str) -> str:
    """A training view's ESM: the shared helpers (training_common.js), then the view's own file."""
    return (STATIC / "training_common.js").read_text() + "\n" + (STATIC / name).read_text()


class TrainingView(StaticCopy, anywidget.AnyWidget):
    title = Unicode("").tag(sync=True)
    progress = Dict().tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_stop: Callable[[], None] | None = None
        self._pushed = 0.0
        self._lock = threading.Lock()
        self.on_msg(self._handle_message)

    def _handle_message(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "stop" and self.on_stop:
            self.on_stop()

    def _due(self, status: str, force: bool = False) -> bool:
        """Whether to push now (call it holding ``self._lock``): always when forced or the run is no longer
        running, else at most every PUSH_INTERVAL."""
        now = time.monotonic()
        if not force and status == "running" and now - self._pushed < PUSH_INTERVAL:
            return False
        self._pushed = now
        return True
