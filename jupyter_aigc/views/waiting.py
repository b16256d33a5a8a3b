"""An honest line for a wait of over a second (a model loading, a conversion, a long forward pass): what the
kernel is doing and the seconds so far, updated in place and removed when the view arrives.

``notice(text)`` from deep inside (the first conversion of a model, say) changes what the line says while a
wait is shown, instead of printing a red stderr line that looks like an error.
"""

from __future__ import annotations

import threading
import time

from .outside import html, plain

DELAY = 1.0  # a wait shorter than this shows nothing
_active: list["Waiting"] = []
_lock = threading.Lock()


class Waiting:
    """``with Waiting("Computing the attention maps"):`` shows the line after ``DELAY`` seconds (Jupyter only)."""

    def __init__(self, label: str, shown: bool = True):
        self.label, self.shown = label, shown
        self.detail = ""
        self.started = 0.0
        self.handle = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Waiting":
        self.started = time.monotonic()
        with _lock:
            _active.append(self)
        if self.shown:
            self._thread = threading.Thread(target=self._tick, daemon=True, name="aigc-waiting")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with _lock:
            if self in _active:
                _active.remove(self)
        if self.handle is not None:
            self.handle.update({"text/plain": ""}, raw=True)  # the view took its place

    def note(self, text: str) -> None:
        self.detail = text

    def bundle(self) -> dict:
        seconds = time.monotonic() - self.started
        line = f"{self.label}" + (f": {self.detail}" if self.detail else "") + f" · {seconds:.0f} s"
        return {"text/html": f'<div class="aigc-waiting">⏳ {html(line)}</div>', "text/plain": plain(line)}

    def _tick(self) -> None:
        from IPython.display import display

        if self._done.wait(DELAY):
            return
        self.handle = display(self.bundle(), raw=True, display_id=True)
        while not self._done.wait(1.0):
            self.handle.update(self.bundle(), raw=True)


def notice(text: str) -> bool:
    """Say ``text`` on the line of the wait under way; False when none is shown (the caller prints it)."""
    with _lock:
        current = _active[-1] if _active else None
    if current is None or not current.shown:
        return False
    current.note(text)
    return True
