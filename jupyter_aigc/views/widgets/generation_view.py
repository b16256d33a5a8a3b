"""GenerationView (%%aigc_generate): a whole generation step by step, one strategy or several side by side.

Every step's numbers travel once (``runs``, small JSON records); stepping, the beam tree and its details are
drawn and explored in the browser with no message to the kernel. The static copy is a table per strategy, and
``figure()`` draws the steps (or the beam tree) for ``save``.
"""

from __future__ import annotations

from traitlets import Dict, List, Unicode

from ...tasks.generation import GenerationTrace
from ..figure import GREY, Figure
from ..outside import html as outside_html
from ..outside import plain, tail
from .pictures import shown
from .teaching import TeachingWidget, esm, token_html

NAMES = {"greedy": "Greedy", "sample": "Sampling", "beam": "Beam search"}
STATUS = {"kept": "kept", "ended": "ended (end token)", "pruned": "pruned"}
BLUE, ORANGE, GOLD, LIGHT = "#1976d2", "#ef6c00", "#f9a825", "#bbbbbb"


def settings_text(trace: GenerationTrace) -> str:
    s = trace.settings
    if trace.strategy == "sample":
        return (f"temperature {s['temperature']:g}, top-k {s['top_k'] or 'off'}, "
                f"top-p {s['top_p']:g}{' (off)' if s['top_p'] >= 1 else ''}, seed {s['seed']}")
    if trace.strategy == "beam":
        return f"{s['num_beams']} beams, length penalty {s['length_penalty']:g}"
    return "the most likely token at every step"


def size_text(count: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


class GenerationView(TeachingWidget):
    """A generation step by step: ``.traces`` (one ``GenerationTrace`` per strategy), ``.ids`` the generated token
    ids (a dict by strategy when several are compared), ``.beams`` the final beams of beam search."""

    _esm = esm("generation_view.js")
    caption_text = ("At every step the model scores every token and the strategy takes one: greedy the most likely, "
                    "sampling a random draw, beam search the k most likely sentences so far. The key/value cache keeps "
                    "what was computed for earlier tokens, so each step reads one new token instead of the whole text.")

    model_name = Unicode("").tag(sync=True)
    runs = List(Dict()).tag(sync=True)   # GenerationTrace.data() of each strategy

    def __init__(self, traces: list[GenerationTrace], **kwargs):
        traces = list(traces)
        super().__init__(model_name=traces[0].model if traces else "", runs=[t.data() for t in traces], **kwargs)
        self.traces = traces

    @property
    def trace(self) -> GenerationTrace:
        return self.traces[0]

    @property
    def ids(self):
        if len(self.traces) == 1:
            return list(self.trace.ids)
        return {t.strategy: list(t.ids) for t in self.traces}

    @property
    def text(self):
        if len(self.traces) == 1:
            return self.trace.text
        return {t.strategy: t.text for t in self.traces}

    @property
    def beams(self) -> list[dict]:
        return next((t.beams for t in self.traces if t.strategy == "beam"), [])

    def static_text(self) -> str:
        return "\n".join(f"{NAMES[t.strategy]}: {plain(t.text)}" for t in self.traces)

    def static_html(self) -> str:
        return "".join(self._trace_html(t) for t in self.traces)

    def _trace_html(self, t: GenerationTrace) -> str:
        head = (f"<p><strong>{NAMES[t.strategy]}</strong> on {outside_html(t.model)} "
                f"({outside_html(settings_text(t))}): <code>{outside_html(tail(t.prompt, 200))}</code> → "
                f"<strong><code>{outside_html(t.text)}</code></strong></p>")
        return head + (self._beam_html(t) if t.strategy == "beam" else self._steps_html(t)) + self._cache_html(t)

    @staticmethod
    def _steps_html(t: GenerationTrace) -> str:
        rows = ""
        for step in t.steps:
            taken = step["token"]
            top = ", ".join(f"{token_html(c['text'])} {c['p']:.1%}" for c in step["candidates"][:5])
            rows += (f"<tr><td>{step['step']}</td><td>{token_html(taken['text'])}</td><td>{taken['p']:.1%} "
                     f"(rank {taken['rank']})</td><td>{top}</td></tr>")
        return ("<table><thead><tr><th>step</th><th>token taken</th><th>its probability</th>"
                f"<th>top candidates</th></tr></thead><tbody>{rows}</tbody></table>")

    @staticmethod
    def _beam_html(t: GenerationTrace) -> str:
        finals = "".join(f"<tr><td>{rank + 1}</td><td><code>{outside_html(''.join(b['tokens']))}</code></td>"
                         f"<td>{b['logp']:.3f}</td><td>{b['length']}</td><td>{b['score']:.4f}</td></tr>"
                         for rank, b in enumerate(t.beams))
        rows = ""
        for step in t.steps:
            cells = ", ".join(f"{token_html(t.nodes[i]['text'])} {t.nodes[i]['score']:.2f} "
                              f"({STATUS[t.nodes[i]['status']]})" for i in step["candidates"])
            rows += f"<tr><td>{step['step']}</td><td>{cells}</td></tr>"
        return ("<p>Final beams (score = log P / length<sup>length penalty</sup>):</p><table><thead><tr><th>#</th>"
                "<th>text</th><th>log P</th><th>length</th><th>score</th></tr></thead>"
                f"<tbody>{finals}</tbody></table><p>Candidates of each step (cumulative log P):</p><table><thead>"
                f"<tr><th>step</th><th>candidates</th></tr></thead><tbody>{rows}</tbody></table>")

    @staticmethod
    def _cache_html(t: GenerationTrace) -> str:
        c = t.cache
        rows = "".join(f"<tr><td>{s['step']}</td><td>{s['cache']['tokens']}</td><td>{s['cache']['bytes']:,}</td>"
                       f"<td>{s['ms']['cached']:.1f}</td><td>{s['ms']['full']:.1f}</td></tr>" for s in t.steps)
        beams = f" × {c['sequences']} beams" if c["sequences"] > 1 else ""
        return (f"<p>Key/value cache: 2 × {c['layers']} layers × {c['kv_heads']} key/value heads × {c['head_dim']} "
                f"× tokens × {c['itemsize']} bytes ({outside_html(c['dtype'])}){beams}.</p><table><thead><tr>"
                "<th>step</th><th>tokens cached</th><th>bytes</th><th>ms with the cache</th><th>ms without</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>")

    def figure(self) -> Figure:
        """Each strategy under the other: its steps' top candidates (or the beam tree), then the cache's cost."""
        parts = [beam_figure(t) if t.strategy == "beam" else steps_figure(t) for t in self.traces]
        fig = Figure(max(p.width for p in parts), sum(p.height for p in parts))
        y = 0.0
        for part in parts:
            for shape in part.shapes:
                kind, *rest = shape
                if kind in ("rect", "text", "image"):
                    rest[1] += y
                elif kind == "line":
                    rest[1] += y
                    rest[3] += y
                fig.shapes.append((kind, *rest))
            y += part.height
        return fig


def heading(fig: Figure, t: GenerationTrace) -> None:
    fig.text(10, 20, f"{NAMES[t.strategy]} · {t.model} · {settings_text(t)}", size=13, bold=True)
    fig.text(10, 40, tail(t.prompt, 50), size=12, mono=True, fill=GREY)


def steps_figure(t: GenerationTrace, rows: int = 5, shown_steps: int = 12) -> Figure:
    """One column per step: the most likely tokens and their probability, the token taken highlighted."""
    steps = t.steps[:shown_steps]
    column, row = 104, 20
    fig = Figure(20 + column * max(1, len(steps)), 120 + row * (rows + 1))
    heading(fig, t)
    for index, step in enumerate(steps):
        x = 10 + index * column
        fig.text(x + 2, 64, f"step {step['step']}", size=11, fill=GREY)
        candidates = step["candidates"][:rows]
        if step["token"]["id"] not in [c["id"] for c in candidates]:
            candidates = [*candidates[:rows - 1], next(c for c in step["candidates"] if c["id"] == step["token"]["id"])]
        for r, c in enumerate(candidates):
            y = 70 + r * row
            taken = c["id"] == step["token"]["id"]
            fig.rect(x, y, column - 8, row - 3, fill="#e3f0fc" if taken else "#f4f4f4",
                     stroke=BLUE if taken else "none")
            fig.rect(x, y + row - 6, (column - 8) * c["p"], 3, fill=BLUE if taken else LIGHT)
            fig.text(x + 3, y + 13, shown(c["text"], 8), size=11, mono=True, bold=taken)
            fig.text(x + column - 11, y + 13, f"{c['p']:.0%}", size=10, anchor="end", fill=GREY)
        cache = step["cache"]
        fig.text(x + 2, 86 + rows * row, size_text(cache["bytes"]), size=10, fill=GREY)
        fig.text(x + 2, 100 + rows * row, f"{step['ms']['cached']:.0f} / {step['ms']['full']:.0f} ms", size=10,
                 fill=GREY)
    fig.text(10, fig.height - 6, "under each step: the key/value cache, and the step's time with / without it",
             size=10, fill=GREY)
    return fig


def beam_figure(t: GenerationTrace) -> Figure:
    """The beam tree: a column per step, every candidate weighed, kept (blue), ended, pruned (grey) or final (gold)."""
    per_step = max((len(s["candidates"]) for s in t.steps), default=1)
    column, row, left = 112, 24, 96
    fig = Figure(left + 20 + column * len(t.steps), 90 + row * per_step)
    heading(fig, t)
    centre = lambda node: (left + node["step"] * column, 60 + node["rank"] * row + row / 2)  # noqa: E731
    fig.rect(10, 60, left - 24, row - 4, fill="#eeeeee", stroke=GREY)
    fig.text(14, 60 + row / 2 + 4, "prompt", size=11)
    for node in t.nodes:
        x, y = centre(node)
        px, py = (left - 14, 60 + row / 2) if node["parent"] < 0 else centre(t.nodes[node["parent"]])
        if node["parent"] >= 0:
            px += column - 14
        fig.line(px, py, x, y, stroke=LIGHT if node["status"] == "pruned" else BLUE, width=1)
    for node in t.nodes:
        x, y = centre(node)
        final = node["final"] >= 0
        fill = "#fff4d6" if final else "#e3f0fc" if node["status"] == "kept" else "#f6f6f6"
        stroke = GOLD if final else BLUE if node["status"] == "kept" else LIGHT
        fig.rect(x, y - row / 2 + 2, column - 14, row - 4, fill=fill, stroke=stroke, stroke_width=2 if final else 1)
        colour = "#999999" if node["status"] == "pruned" and not final else "#222222"
        fig.text(x + 3, y + 4, shown(node["text"], 7), size=11, mono=True, fill=colour)
        fig.text(x + column - 17, y + 4, f"{node['score']:.2f}", size=9, anchor="end", fill=GREY)
    best = t.beams[0] if t.beams else None
    if best:
        fig.text(10, fig.height - 8, f"best beam: score {best['score']:.3f} = log P {best['logp']:.3f} / "
                 f"{best['length']} tokens · gold: the final beams · grey: pruned", size=10, fill=GREY)
    return fig
