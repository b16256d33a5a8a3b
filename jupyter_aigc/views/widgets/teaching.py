"""The teaching widgets: the next token, one attention head step by step, positional encoding, the logit lens.

Each sends its numbers once (float32 arrays as binary buffers); sliders recompute in the browser and send
nothing to the kernel. Only stepping the next-token explorer on (a new token needs a forward pass) asks
the kernel. Each also carries a static, sanitised HTML copy for saved notebooks and nbconvert.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import numpy as np
from traitlets import Bool, Bytes, Dict, Float, Int, List, Unicode

from ...core.errors import AigcError
from ...options import spec
from ...tasks.steps import AttentionSteps, Rotary, sinusoidal
from ...tasks.teach import LogitLens, NextToken, distribution, entropy
from ..outside import html as outside_html
from ..outside import tail
from .static_copy import StaticCopy, css

STATIC = Path(__file__).parent / "static"


def esm(name: str) -> str:
    """A teaching widget's ESM: the shared helpers (teaching_common.js) in front of the widget's own file."""
    return (STATIC / "teaching_common.js").read_text() + "\n" + (STATIC / name).read_text()


def f32(array) -> bytes:
    return np.ascontiguousarray(array, dtype=np.float32).tobytes()


def plural(n: int, word: str) -> str:
    """"1 token", "2 tokens", "49,152 tokens"."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def token_html(text: str) -> str:
    return f"<code>{outside_html(repr(text))}</code>"


class TeachingWidget(StaticCopy, anywidget.AnyWidget):
    """A teaching view: the live widget, then its static copy (``static_html()``, sanitised) for frontends without
    widgets, saved notebooks and nbconvert (see static_copy.py), with ``figure()`` as a picture in front. ``save(path)`` writes ``figure()`` as a picture;
    ``caption`` says what to look at (under the view, in its static copy and its pictures)."""

    _css = css("teaching.css")

    caption_text = ""                          # the default caption: what to look at, in a student's words
    caption = Unicode("").tag(sync=True)       # empty: no caption

    def __init__(self, *args, caption: bool | str = True, **kwargs):
        """``caption``: True the view's own (``caption_text``), False none, or a text of your own."""
        super().__init__(*args, caption=self.caption_text if caption is True else str(caption or ""), **kwargs)

    def figure(self):
        """What the view shows by default, as a ``views.figure.Figure`` (what ``save`` writes)."""
        raise AigcError(f"{type(self).__name__} cannot be saved as a picture.", "Take a screenshot instead.")

    def save(self, path, scale: float = 2):
        """Save what the view shows by default as ``path`` (.svg or .png) with its caption; no browser needed.
        (The view's own buttons save what it shows now.)"""
        from ...magics import usage_error
        from ..figure import save

        try:
            return save(self.figure(), path, caption=self.caption, scale=scale)
        except AigcError as error:  # a wrong suffix or folder: one line in the notebook, as a magic's error
            raise usage_error(error) from None

    def safe_html(self) -> str:
        """The static copy: the view's picture (``figure()`` as a PNG), then its numbers (``static_html()``)."""
        from .charts import png_img

        try:
            figure = self.figure()
        except AigcError:  # a view with no picture: its numbers only
            return super().safe_html()
        return f"<p>{png_img(figure.png(scale=1), figure.title or 'the view')}</p>" + super().safe_html()

    def static_bundle(self) -> dict:
        bundle = super().static_bundle()
        if self.caption:
            bundle["text/html"] += f'<p class="aigc-caption"><em>{outside_html(self.caption)}</em></p>'
        return bundle


class NextTokenView(TeachingWidget):
    """The next-token explorer: the whole vocabulary's raw scores, reshaped live by temperature/top-k/top-p.

    ``logits`` is the raw score of every token (numpy); ``distribution(temperature, top_k, top_p)`` applies
    the transforms in transformers' order. Greedy, Sample and a double click on a bar append a token (one click only marks it).
    """

    _esm = esm("next_token.js")
    caption_text = ("Each bar is how likely that token comes next. Greedy takes the tallest bar; sampling picks at "
                    "random, weighted by the bars. Temperature flattens or sharpens them; top-k and top-p cut off the "
                    "tail.")

    model_name = Unicode("").tag(sync=True)
    prompt = Unicode("").tag(sync=True)
    path = List(Dict()).tag(sync=True)        # tokens added: {text, id, prob, rank, how}
    top = List(Dict()).tag(sync=True)         # the most likely tokens: {id, text, logit}
    scores = Bytes(b"").tag(sync=True)        # float32 [vocab]: the raw logits
    busy = Bool(False).tag(sync=True)
    error = Unicode("").tag(sync=True)
    start = Dict({"temperature": 1.0, "top_k": 0, "top_p": 1.0}).tag(sync=True)  # where the sliders start

    def __init__(self, explorer: NextToken, **kwargs):
        super().__init__(model_name=explorer.ref.name, prompt=explorer.text, **kwargs)
        self.explorer = explorer
        self._publish()
        self.on_msg(self._handle_message)

    @property
    def logits(self) -> np.ndarray:
        return self.explorer.logits

    @property
    def text(self) -> str:
        return self.explorer.text

    def distribution(self, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> tuple[list[str], np.ndarray]:
        ids, probs = distribution(self.explorer.logits, temperature, top_k, top_p)
        return [self.explorer.token(i) for i in ids], probs

    def _publish(self) -> None:
        self.top = self.explorer.top()
        self.scores = f32(self.explorer.logits)

    def _handle_message(self, widget, content, buffers) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        self.busy = True
        try:
            if kind == "append":
                token_id = int(content["id"])
                entry = {"text": self.explorer.token(token_id), "id": token_id, "prob": float(content.get("prob", 0)),
                         "rank": int(content.get("rank", 0)), "how": str(content.get("how", ""))[:10]}
                self.explorer.append(token_id)
                self.path = [*self.path, entry]
            elif kind == "undo" and self.path:
                self.explorer.undo()
                self.path = self.path[:-1]
            elif kind == "reset":
                self.explorer.reset()
                self.path = []
            self._publish()
            self.error = ""
        except (AigcError, KeyError, TypeError, ValueError) as exc:
            self.error = str(exc)
        finally:
            self.busy = False

    def figure(self):
        from . import pictures

        return pictures.next_token(self)

    def static_html(self) -> str:
        start = self.start
        ids, probs = distribution(self.explorer.logits, start["temperature"], start["top_k"], start["top_p"])
        rows = "".join(f"<tr><td>{token_html(self.explorer.token(i))}</td><td>{p:.1%}</td></tr>"
                       for i, p in zip(ids[:10], probs[:10]))
        cuts = (f"; top-k {start['top_k']}" if start["top_k"] else "") + (
            f"; top-p {start['top_p']:g}" if start["top_p"] < 1 else "")
        return (f"<p><strong>Next token after</strong> <code>{outside_html(tail(self.explorer.text, 200))}</code> "
                f"({outside_html(self.model_name)}; temperature {start['temperature']:g}{cuts}; "
                f"entropy {entropy(probs):.2f} bits)</p>"
                f"<table><thead><tr><th>token</th><th>probability</th></tr></thead><tbody>{rows}</tbody></table>")


class AttentionStepsView(TeachingWidget):
    """One head, one query token: q, every k, q·kᵀ/√dₖ, the causal mask, softmax, v and weights·V.

    Q, K and V of every token travel once; choosing another query recomputes in the browser.
    """

    _esm = esm("attention_steps.js")
    caption_text = ("The query token compares itself with every token before it (q·k). Softmax turns those scores into "
                    "weights that sum to 1: where this token looks. Later tokens are masked: a token cannot see the "
                    "future.")

    model_name = Unicode("").tag(sync=True)
    tokens = List(Unicode()).tag(sync=True)
    layer = Int(0).tag(sync=True)
    head = Int(0).tag(sync=True)
    kv_head = Int(0).tag(sync=True)
    query = Int(0).tag(sync=True)
    head_dim = Int(0).tag(sync=True)
    scale = Float(1.0).tag(sync=True)
    rotary = Bool(False).tag(sync=True)
    causal = Bool(True).tag(sync=True)
    qkv = Bytes(b"").tag(sync=True)   # float32 [3, n, d]: Q (rotated), K (rotated), V

    def __init__(self, steps: AttentionSteps, **kwargs):
        super().__init__(model_name=steps.model, tokens=steps.tokens, layer=steps.layer, head=steps.head,
                         kv_head=steps.kv_head, query=steps.query, head_dim=steps.Q.shape[1], scale=steps.scale,
                         rotary=steps.rotary, causal=steps.causal, qkv=f32(np.stack([steps.Q, steps.K, steps.V])),
                         **kwargs)
        self.steps = steps

    q = property(lambda self: self.steps.q)
    k = property(lambda self: self.steps.k)
    v = property(lambda self: self.steps.v)
    scores = property(lambda self: self.steps.scores)
    weights = property(lambda self: self.steps.weights)
    output = property(lambda self: self.steps.output)
    mask = property(lambda self: self.steps.mask)

    def figure(self):
        from . import pictures

        return pictures.attention_steps(self)

    def static_html(self) -> str:
        steps = self.steps
        rows = "".join(
            f"<tr><td>{j}</td><td>{token_html(t)}</td><td>{s:.3f}</td><td>{w:.3f}</td></tr>" if allowed else
            f"<tr><td>{j}</td><td>{token_html(t)}</td><td>masked</td><td>0</td></tr>"
            for j, (t, s, w, allowed) in enumerate(zip(steps.tokens, steps.scores, steps.weights, steps.mask)))
        return (f"<p><strong>Layer {steps.layer}, head {steps.head}</strong> (key/value head {steps.kv_head}) of "
                f"{outside_html(steps.model)}: query {steps.query} {token_html(steps.tokens[steps.query])}. "
                f"score<sub>j</sub> = q·k<sub>j</sub> / √{len(steps.q)}; weights = softmax(scores); "
                f"output = weights · V.</p><table><thead><tr><th>j</th><th>key</th><th>q·k/√d</th>"
                f"<th>weight</th></tr></thead><tbody>{rows}</tbody></table>")


class PositionalView(TeachingWidget):
    """The sinusoidal encoding (recomputed in the browser for any d_model and positions), the similarity of
    positions, and, for a rotary model, its frequencies and how a real q·k depends on the offset only."""

    _esm = esm("positional.js")
    caption_text = ("Each row is one position's code: fast waves on the left, slow ones on the right, so every position "
                    "gets its own pattern. Nearby positions have similar codes (the strong band along the diagonal).")

    d_model = Int(64).tag(sync=True)
    positions = Int(128).tag(sync=True)
    model_name = Unicode("").tag(sync=True)
    inv_freq = List(Float()).tag(sync=True)   # rotary: radians per position of each dimension pair
    rotary_qk = Bytes(b"").tag(sync=True)     # float32 [2, d]: a real q and k of the model, before rotation
    rotary_where = Dict().tag(sync=True)      # {"layer", "head"}
    limits = Dict().tag(sync=True)            # the sliders' ranges: spec.json's, the ones the kernel checks

    def __init__(self, d_model: int = 64, positions: int = 128, rotary: Rotary | None = None, **kwargs):
        self.matrix = sinusoidal(positions, d_model)
        self.rotary = rotary
        rules = spec()["settings"]
        extra = {"limits": {key: {"min": rules[key]["min"], "max": rules[key]["max"]}
                            for key in ("d_model", "positions")}}
        if rotary is not None:
            extra |= {"model_name": rotary.model, "inv_freq": rotary.inv_freq.tolist(),
                      "rotary_qk": f32(np.stack([rotary.q, rotary.k])),
                      "rotary_where": {"layer": rotary.layer, "head": rotary.head}}
        super().__init__(d_model=d_model, positions=positions, **extra, **kwargs)

    @property
    def similarity(self) -> np.ndarray:
        """Dot products between the encodings of every pair of positions."""
        return self.matrix @ self.matrix.T

    def figure(self):
        from . import pictures

        return pictures.positional(self)

    def static_html(self) -> str:
        text = (f"<p><strong>Sinusoidal positional encoding</strong>, d_model = {self.d_model}, "
                f"{self.positions} positions: PE(pos, 2i) = sin(pos / 10000<sup>2i/d_model</sup>), "
                "PE(pos, 2i+1) = cos(pos / 10000<sup>2i/d_model</sup>).</p>")
        if self.rotary is not None:
            offsets = "".join(f"<tr><td>{d}</td><td>{self.rotary.score(d + 5, 5):.3f}</td>"
                              f"<td>{self.rotary.score(d + 40, 40):.3f}</td></tr>" for d in (0, 1, 2, 4, 8, 16))
            text += (f"<p>{outside_html(self.rotary.model)} rotates q and k instead (rotary encoding): the score of a "
                     "query at position m and a key at n depends on m − n only.</p><table><thead><tr><th>m − n</th>"
                     f"<th>score at n = 5</th><th>score at n = 40</th></tr></thead><tbody>{offsets}</tbody></table>")
        return text


class LogitLensView(TeachingWidget):
    """For every layer and position, the token the model would predict if it stopped there, and how sure."""

    _esm = esm("logit_lens.js")
    caption_text = ("Read each column downwards: the model's guess for the next token after that layer. Darker = surer. "
                    "Early layers guess vaguely; the right answer usually appears in the last layers.")

    model_name = Unicode("").tag(sync=True)
    tokens = List(Unicode()).tag(sync=True)
    top_tokens = List(List(Unicode())).tag(sync=True)
    probs = Bytes(b"").tag(sync=True)   # float32 [layer, position]

    def __init__(self, lens: LogitLens, **kwargs):
        super().__init__(model_name=lens.model, tokens=lens.tokens, top_tokens=lens.top_tokens,
                         probs=f32(lens.top_probs), **kwargs)
        self.lens = lens

    @property
    def top_probs(self) -> np.ndarray:
        return self.lens.top_probs

    def figure(self):
        from . import pictures

        return pictures.logit_lens(self)

    def static_html(self) -> str:
        lens = self.lens
        head = "".join(f"<th>{token_html(t)}</th>" for t in lens.tokens)
        rows = "".join(f"<tr><td>{layer}</td>" + "".join(
            f"<td>{token_html(t)} {p:.0%}</td>" for t, p in zip(lens.top_tokens[layer], lens.top_probs[layer]))
            + "</tr>" for layer in range(len(lens.top_tokens)))
        return (f"<p><strong>Logit lens</strong> of {outside_html(lens.model)}: each layer's prediction for the next "
                f"token (layer 0 = the embeddings).</p><table><thead><tr><th>layer</th>{head}</tr></thead>"
                f"<tbody>{rows}</tbody></table>")
