"""GptView: the %%gpt output widget (streamed Markdown, Stop/Regenerate, sampling controls, footers)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anywidget
from traitlets import Bool, Dict, List

from ..markdown import highlight_css
from .static_copy import css

STATIC = Path(__file__).parent / "static"


def prob_color(prob: float) -> str:
    """Background colour for a token of probability ``prob``: red (unsure) through yellow to green (sure)."""
    prob = min(max(prob, 0.0), 1.0)
    return f"hsla({round(120 * prob)}, 75%, 50%, 0.35)"


class GptView(anywidget.AnyWidget):
    """One column per completion or compared variant; each column streams, then shows its footer."""

    _esm = STATIC / "gpt_view.js"
    _css = highlight_css() + css("gpt_view.css")

    columns = List(Dict()).tag(sync=True)
    controls = Dict().tag(sync=True)
    limits = List(Dict()).tag(sync=True)  # the controls' ranges, from spec.json (the options' ranges)
    running = Bool(False).tag(sync=True)
    show_controls = Bool(True).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_stop: Callable[[], None] | None = None
        self.on_regenerate: Callable[[dict], None] | None = None
        self.on_msg(self._handle_message)

    def _handle_message(self, widget, content, buffers) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stop" and self.on_stop:
            self.on_stop()
        elif kind == "regenerate" and self.on_regenerate:
            self.on_regenerate(content.get("controls") or dict(self.controls))  # the task checks what was sent

    def _repr_mimebundle_(self, **kwargs):
        """No text/plain stand-in: where the widget cannot be drawn, the Markdown copy below shows the answer."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = ""
        return bundle
