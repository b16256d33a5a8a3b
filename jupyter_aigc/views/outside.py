"""One way to show outside text: one function per medium, each masking keys and URL credentials.

Outside text is anything this package's source did not write: model answers, server ids and errors, finish
reasons, usage fields, file names, the user's data, history rows. It reaches a person only through:

- ``plain``: a terminal, text/plain outputs, stdout/stderr and error lines. Control characters, escape
  sequences and bidi overrides are made visible (``\\x1b``, ``\\u202e``), so they cannot move the cursor,
  write the clipboard, retitle the terminal, or reverse what is shown.
- ``html``: escaped HTML for Jupyter (tables, titles, footers, hovers).
- ``markdown_html``: a model's Markdown answer as allow-list sanitised HTML (``views.markdown``).
- ``rich_text``: a ``rich.text.Text`` of ``plain`` text, so rich never reads it as markup.
"""

from __future__ import annotations

import re

from ..core.keys import redact

# C0 and C1 controls but tab and newline, DEL, and the bidi embedding, override and isolate characters.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
LONG = 2000


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clip(text: str, limit: int = LONG) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def plain(text, limit: int | None = None) -> str:
    """Outside text for a terminal or a text/plain output: masked, with hidden characters made visible."""
    text = redact("" if text is None else text).replace("\r\n", "\n")
    text = _HIDDEN.sub(_visible, text)
    return clip(text, limit) if limit else text


def tail(text, limit: int) -> str:
    """The end of outside text (a prompt, say), masked before it is cut (a key cut in half would escape the mask),
    with "…" in front when cut."""
    text = plain(text)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def html(text, limit: int | None = None) -> str:
    """Outside text as escaped HTML (no tag, entity or attribute of it survives)."""
    from html import escape

    return escape(plain(text, limit))


def markdown_html(text: str) -> str:
    """A model's Markdown answer as sanitised HTML, masked."""
    from .markdown import to_html

    return to_html(redact(text))


def rich_text(text, style: str = "", limit: int | None = None):
    """Outside text as a rich ``Text``: rich lays it out but never reads its brackets as markup."""
    from rich.text import Text

    return Text(plain(text, limit), style=style)


def say(text, file=None) -> None:
    """Print a line that carries outside text (a name, a path, a count from a server) on stdout or ``file``."""
    print(plain(text), file=file)
