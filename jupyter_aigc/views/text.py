"""Text views only display: a widget in Jupyter, rich in the terminal, sanitised HTML where neither fits."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..core.keys import mask_tokens
from ..core.types import Response, TokenInfo
from ..record.pricing import cost

MIN_UPDATE_INTERVAL = 0.05  # at most 20 display updates a second
ENDINGS = {"stopped": "stopped", "length": "hit max tokens", "error": "failed",
           "incomplete": "cut off: the answer did not finish"}
# The static copy of an answer carries this marker; the live widget's CSS hides such outputs, so the
# answer shows once while the kernel runs, and the copy shows in saved notebooks and nbconvert.
FALLBACK_MARKER = '<div class="aigc-fallback"></div>'


@dataclass
class Column:
    """What one output column shows while it streams and after."""

    title: str
    text: str = ""
    status: str = "waiting"
    tokens: list[TokenInfo] = field(default_factory=list)
    footer: str = ""
    error: str = ""


def footer(response: Response) -> str:
    """'model · backend · 12 in → 40 out · queued 3.1 s · first token 0.21 s · 13.2 tok/s · $0.0001 · stopped'.

    The time waiting for a free slot (a seeded comparison runs its columns one at a time) is not counted
    in the time to the first token."""
    parts = [response.model, response.engine]
    usage = response.usage
    if usage:
        shared = " (all completions)" if usage.get("shared") else ""
        counted = " (counted; the server reports no usage)" if usage.get("counted") else ""
        ignored = (f" (more than --max-tokens {usage['ignored_max_tokens']}: the server ignored it)"
                   if usage.get("ignored_max_tokens") else "")
        parts.append(f"{usage.get('prompt_tokens', '?')} in → {usage.get('completion_tokens', '?')} out"
                     f"{shared}{counted}{ignored}")
    if response.queued >= 0.05:
        parts.append(f"queued {response.queued:.1f} s")
    if response.ttft is not None:
        parts.append(f"first token {response.ttft:.2f} s")
    if response.tokens_per_second:
        parts.append(f"{response.tokens_per_second:.1f} tok/s")
    parts.append(f"{response.elapsed:.2f} s")
    price = cost(response)
    if price is not None:
        parts.append(f"${price:.5f}")
    if response.finish_reason in ENDINGS:
        parts.append(ENDINGS[response.finish_reason])
    elif response.finish_reason not in ("stop", "running"):
        parts.append(f"cut off by the server ({response.finish_reason})")
    return " · ".join(parts)


def final_text(columns: list[Column]) -> str:
    """The answer(s) as plain text, for text/plain outputs and terminals."""
    from .outside import plain

    blocks = []
    for column in columns:
        head = f"{column.title}\n\n" if len(columns) > 1 and column.title else ""
        tail = f"\n\n{column.error}" if column.error else ""
        blocks.append(plain(f"{head}{column.text}{tail}\n\n{column.footer}".strip()))
    return "\n\n---\n\n".join(blocks)


def final_html(columns: list[Column], cursor: bool = False) -> str:
    """The answer(s) as sanitised HTML: model text through ``to_html``, titles, errors and footers escaped."""
    from .markdown import sanitize
    from .outside import html, markdown_html

    blocks = []
    for column in columns:
        head = f"<p><strong>{html(column.title)}</strong></p>" if len(columns) > 1 and column.title else ""
        body = markdown_html(column.text + (" ▍" if cursor else ""))
        tail = f"<p><em>{html(column.error)}</em></p>" if column.error else ""
        foot = f"<p><sub>{html(column.footer)}</sub></p>" if column.footer else ""
        blocks.append(head + body + tail + foot)
    return sanitize("<hr>".join(blocks))


def answer_bundle(columns: list[Column], cursor: bool = False, marker: bool = False) -> dict:
    """A display bundle that is inert in every frontend and in exported HTML: sanitised HTML and plain text."""
    html = final_html(columns, cursor) + (FALLBACK_MARKER if marker else "")
    return {"text/html": html, "text/plain": final_text(columns)}


class Renderer(ABC):
    """Keeps the columns and redraws at most every MIN_UPDATE_INTERVAL seconds; subclasses draw."""

    def __init__(self):
        self.columns: list[Column] = []
        self.stream = True
        self.metadata: dict = {}
        self._last_draw = 0.0
        self._dirty = False

    def start(self, titles: list[str]) -> None:
        self.columns = [Column(title=t, status="running") for t in titles]
        self._draw(final=False)

    def append(self, index: int, text: str, tokens: list[TokenInfo]) -> None:
        column = self.columns[index]
        column.text += text
        column.tokens.extend(tokens)
        self._dirty = True
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.stream and self._dirty and (force or now - self._last_draw >= MIN_UPDATE_INTERVAL):
            self._last_draw = now
            self._dirty = False
            self._draw(final=False)

    def finish_column(self, index: int, response: Response) -> None:
        column = self.columns[index]
        column.text = response.text
        column.status = {"stopped": "stopped", "error": "error", "incomplete": "incomplete", "stop": "done",
                         "length": "done"}.get(response.finish_reason, "incomplete")
        column.footer = footer(response)
        column.error = response.error or ""
        self._dirty = True

    def finish(self) -> None:
        self._draw(final=True)

    @abstractmethod
    def _draw(self, final: bool) -> None:
        """Show the columns (``final``: the last time, with footers)."""


class MarkdownRenderer(Renderer):
    """One IPython display updated in place: the Markdown answer as sanitised HTML, plain text beside it."""

    def __init__(self):
        super().__init__()
        self.handle = None

    def _draw(self, final: bool) -> None:
        from IPython.display import display

        bundle = answer_bundle(self.columns, cursor=not final)
        metadata = {"jupyter_aigc": self.metadata} if final else {}
        if self.handle is None:
            self.handle = display(bundle, raw=True, metadata=metadata, display_id=True)
        else:
            self.handle.update(bundle, raw=True, metadata=metadata)


class TerminalRenderer(Renderer):
    """rich Live output for terminal IPython: streamed Markdown, a footer line, columns as a table."""

    def __init__(self, console=None):
        super().__init__()
        from rich.console import Console

        self.console = console or Console()
        self.live = None

    def _renderable(self):
        from rich.console import Group
        from rich.markdown import Markdown
        from rich.table import Table

        from .outside import plain, rich_text

        def answer(text: str):  # rich Markdown reads no rich markup; links stay text, never OSC 8 hyperlinks
            return Markdown(plain(text) or "…", hyperlinks=False)

        if len(self.columns) == 1:
            column = self.columns[0]
            parts = [answer(column.text)] if column.text or not column.error else []
            if column.error:
                parts.append(rich_text(column.error, style="bold red"))
            if column.footer:
                parts.append(rich_text(column.footer, style="dim"))
            return Group(*parts)
        table = Table(show_lines=True, expand=True)
        for column in self.columns:
            table.add_column(rich_text(column.title))
        table.add_row(*[answer(c.text) for c in self.columns])
        table.add_row(*[rich_text((c.error + " " if c.error else "") + c.footer, style="dim") for c in self.columns])
        return table

    def _draw(self, final: bool) -> None:
        from rich.live import Live

        if self.live is None:
            self.live = Live(self._renderable(), console=self.console, refresh_per_second=20,
                             auto_refresh=False, vertical_overflow="visible")
            self.live.start()
        self.live.update(self._renderable(), refresh=True)
        if final:
            self.live.stop()
            self.console.line()


class WidgetRenderer(Renderer):
    """Streams into a GptView; at the end the display also carries a sanitised HTML copy and provenance.

    It is interactive: the widget's Stop, Regenerate and controls reach the task through ``on_stop`` and
    ``on_regenerate``; ``again()`` redraws a regenerated answer in the same outputs.
    """

    interactive = True

    def __init__(self, view, handle=None, fallback=None):
        super().__init__()
        self.view = view
        self.handle = handle
        self.fallback = fallback

    @property
    def controls(self) -> dict:
        return self.view.controls

    @controls.setter
    def controls(self, value: dict) -> None:
        self.view.controls = value

    @property
    def on_stop(self):
        return self.view.on_stop

    @on_stop.setter
    def on_stop(self, callback) -> None:
        self.view.on_stop = callback

    @property
    def on_regenerate(self):
        return self.view.on_regenerate

    @on_regenerate.setter
    def on_regenerate(self, callback) -> None:
        self.view.on_regenerate = callback

    def again(self) -> "WidgetRenderer":
        """A renderer for a regenerated answer, drawing into the same widget and copy."""
        fresh = WidgetRenderer(self.view, self.handle, self.fallback)
        fresh.stream = True
        return fresh

    def show_error(self, message: str) -> None:
        """A failure that produced no answer (a bad control value, a server that is down), in the widget."""
        self.view.running = False
        from .outside import plain

        self.view.columns = [{"title": "", "html": "", "status": "error", "footer": "", "error": plain(message),
                              "tokens": []}]

    def _payload(self, column: Column) -> dict:
        from .outside import markdown_html, plain
        from .widgets.gpt_view import prob_color

        texts = mask_tokens([t.text for t in column.tokens])  # a key spread over tokens is masked in each
        return {
            "title": plain(column.title),
            "html": markdown_html(column.text),  # a key a server echoes is masked as it streams
            "status": column.status,
            "footer": plain(column.footer),
            "error": plain(column.error),
            "tokens": [[text, t.prob, prob_color(t.prob), [[plain(a) if text == t.text else "…", p] for a, p in t.top]]
                       for text, t in zip(texts, column.tokens)],
        }

    def _draw(self, final: bool) -> None:
        from IPython.display import display

        self.view.running = not final
        self.view.columns = [self._payload(c) for c in self.columns]
        if self.handle is None:
            self.handle = display(self.view, display_id=True)
        if final:
            fallback = answer_bundle(self.columns, marker=True)
            metadata = {"jupyter_aigc": self.metadata}
            if self.fallback is None:
                self.fallback = display(fallback, raw=True, metadata=metadata, display_id=True)
            else:
                self.fallback.update(fallback, raw=True, metadata=metadata)
