"""One way for a widget to leave a static copy of what it shows, for saved notebooks, nbconvert and a notebook
reopened with no kernel.

Displayed, a view makes two outputs: the live widget (with no text stand-in) and, after it, the static copy
(safe HTML carrying the fallback marker). While the widget beside it is drawn, the widget's own CSS
(``static/static_copy.css``) hides the copy, so the view shows once; wherever the widget cannot be drawn
(nbconvert's HTML, GitHub, a reopened notebook) the copy shows. A view whose picture changes while it runs
(training) calls ``update_static_copy()`` when it is done.
"""

from __future__ import annotations

from pathlib import Path

from ..markdown import sanitize
from ..outside import plain
from ..text import FALLBACK_MARKER

STATIC = Path(__file__).parent / "static"


def css(*names: str) -> str:
    """The CSS of a widget: its own files, then the rule that hides its static copy while it is drawn."""
    return "\n".join((STATIC / name).read_text() for name in (*names, "static_copy.css"))


class StaticCopy:
    """Mixin in front of ``anywidget.AnyWidget``: ``static_html()`` is the copy (sanitised on the way out unless
    ``safe_html`` is overridden by a view that builds safe HTML with pictures itself)."""

    _static_handle = None

    def static_html(self) -> str:
        return ""

    def static_text(self) -> str:
        """The copy as plain text (masked and made visible on the way out)."""
        return type(self).__name__

    def safe_html(self) -> str:
        return sanitize(self.static_html())

    def static_bundle(self) -> dict:
        return {"text/html": self.safe_html() + FALLBACK_MARKER, "text/plain": plain(self.static_text())}

    def _repr_mimebundle_(self, **kwargs):
        """The widget alone: where it cannot be drawn, the static copy after it shows instead."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = ""
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        display(data, metadata=metadata, raw=True)
        self._static_handle = display(self.static_bundle(), raw=True, display_id=True,
                                      metadata={"jupyter_aigc": {"static_copy": type(self).__name__}})

    def update_static_copy(self) -> None:
        """Redraw the static copy from the view as it is now (a view that changed since it was displayed)."""
        if self._static_handle is not None:
            self._static_handle.update(self.static_bundle(), raw=True,
                                       metadata={"jupyter_aigc": {"static_copy": type(self).__name__}})
