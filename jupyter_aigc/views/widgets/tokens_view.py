"""How text becomes tokens: ``TokensView`` (a model's tokenizer, others beside it, a word built merge by merge)
and ``VocabularyView`` (a BPE trained on the class's text, with a vocabulary-size slider).

Both send their data once; choosing a word, stepping through its merges and moving the vocabulary slider are
worked out in the browser (tokens_common.js holds the BPE loop) with no message to the kernel.
"""

from __future__ import annotations


from traitlets import Dict, Int, List, Unicode

from ...core.errors import AigcError
from ...tasks.tokens import MergeSteps, Tokenization, TrainedBpe, merge_steps, pick_word, words_of
from ..outside import html as outside_html
from .teaching import STATIC, TeachingWidget, esm, plural, token_html

SHOWN_ROWS = 300  # tokens in a static copy's table
COLOURS = ["#fde2c4", "#d4ecd0", "#d3e3f6", "#f3d5e6", "#efe9c2", "#dcd6f2"]


def _esm(name: str) -> str:
    """teaching_common.js, then tokens_common.js (the BPE loop and token boxes), then the view's own file."""
    return esm("tokens_common.js") + "\n" + (STATIC / name).read_text()


def hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def row_of(tokens: Tokenization) -> dict:
    return {"model": tokens.model, "kind": tokens.kind, "vocab_size": tokens.vocab_size, "ids": tokens.ids,
            "tokens": tokens.tokens, "pieces": tokens.pieces, "bytes": [hex_bytes(b) for b in tokens.bytes],
            "special": tokens.special, "nbytes": len(tokens.text.encode()), "chars": len(tokens.text)}


def boxes(fig, pieces, ids, x0: float, y: float, width: float, limit: int = 160) -> float:
    """Token boxes (piece over id) wrapped to ``width``; returns the y below them."""
    x = x0
    for index, (piece, token_id) in enumerate(list(zip(pieces, ids))[:limit]):
        label = piece if piece.strip() else piece.replace(" ", "␣") or "∅"
        w = max(fig.text_width(label, 13, mono=True) + 8, fig.text_width(str(token_id), 9) + 6)
        if x + w > x0 + width and x > x0:
            x, y = x0, y + 42
        fig.rect(x, y, w, 22, fill=COLOURS[index % len(COLOURS)], stroke="#b9b9b9")
        fig.text(x + 4, y + 16, label, size=13, mono=True)
        fig.text(x + w / 2, y + 34, str(token_id), size=9, anchor="middle", fill="#666666")
        x += w + 3
    if len(ids) > limit:
        fig.text(x, y + 16, f"… {len(ids) - limit} more", size=11, fill="#666666")
    return y + 44


class TokensView(TeachingWidget):
    """``text`` as a model's tokens (``ids`` = ``tokenizer.encode``), each with its id and bytes, other tokenizers
    beside it (``compare``), and for a BPE tokenizer one word built from its bytes with the model's merges."""

    _esm = _esm("tokens_view.js")
    caption_text = ("each coloured piece is one token, the number under it its id: the model only ever sees the ids. "
                    "Step through the merges to see how a word is built from its bytes.")

    model_name = Unicode("").tag(sync=True)
    text = Unicode("").tag(sync=True)
    rows = List(Dict()).tag(sync=True)       # one per tokenizer, the model's first (see row_of)
    words = List(Dict()).tag(sync=True)      # the first row's words: {text, piece, first, last}
    bpe = Dict().tag(sync=True)              # merges, symbols, pieces, ignore_merges, total (tasks.tokens)
    word = Int(-1).tag(sync=True)            # the word whose merges are shown first
    note = Unicode("").tag(sync=True)        # why no merges are shown

    def __init__(self, tokenizations: list[Tokenization], tokenizer, word: str | None = None, **kwargs):
        from ...tasks.tokens import browser_merges

        main = tokenizations[0]
        self.tokenizations, self.tokenizer = tokenizations, tokenizer
        self._words = words_of(main)
        extra, self.merge_steps = {}, None
        if tokenizer.merges is None:
            extra["note"] = (f"{main.model}'s tokenizer is {main.kind}, not a plain BPE: it has no merge list "
                             "to step through.")
            if word is not None:
                raise AigcError(f"{main.model} has no BPE merges to build {word!r} with.", "Drop --word.")
        else:
            chosen = self._words[pick_word(self._words, word)]
            self.merge_steps = merge_steps(tokenizer, chosen)
            data = browser_merges(tokenizer, self._words, chosen)
            sent = [w for w in self._words if w.piece in set(data["pieces"])]
            extra |= {"bpe": data, "word": sent.index(chosen), "words": [vars(w) for w in sent]}
        super().__init__(model_name=main.model, text=main.text, rows=[row_of(t) for t in tokenizations],
                         **extra, **kwargs)

    @property
    def ids(self) -> list[int]:
        return self.tokenizations[0].ids

    @property
    def tokens(self) -> list[str]:
        """The tokenizer's own token strings (``convert_ids_to_tokens``)."""
        return self.tokenizations[0].tokens

    @property
    def pieces(self) -> list[str]:
        """The text each token stands for (``\\xNN`` for part of a character)."""
        return self.tokenizations[0].pieces

    def steps(self, word: str) -> MergeSteps:
        """The merges that build ``word`` (a word of the text) from its bytes."""
        if self.tokenizer.merges is None:
            raise AigcError(self.note, "")
        return merge_steps(self.tokenizer, self._words[pick_word(self._words, word)])

    def static_html(self) -> str:
        main = self.tokenizations[0]
        rows = "".join(f"<tr><td>{i}</td><td>{token_html(p)}</td><td>{t}</td><td><code>{hex_bytes(b)}</code></td></tr>"
                       for i, (p, t, b) in enumerate(zip(main.pieces[:SHOWN_ROWS], main.ids, main.bytes)))
        more = f"<p>… and {len(main) - SHOWN_ROWS} more tokens.</p>" if len(main) > SHOWN_ROWS else ""
        html = (f"<p><strong>Tokens</strong> of {outside_html(main.model)} ({outside_html(main.kind)}, vocabulary "
                f"{main.vocab_size:,}): {plural(len(main), 'token')} for {plural(len(main.text), 'character')} "
                f"({plural(len(main.text.encode()), 'byte')}).</p><table><thead><tr><th>#</th><th>token</th><th>id</th>"
                f"<th>bytes</th></tr></thead><tbody>{rows}</tbody></table>{more}")
        for other in self.tokenizations[1:]:
            pieces = " ".join(token_html(p) for p in other.pieces[:SHOWN_ROWS])
            html += f"<p><strong>{outside_html(other.model)}</strong>: {plural(len(other), 'token')}. {pieces}</p>"
        steps = self.merge_steps
        if steps is not None:
            def sym(symbol: str) -> str:
                return token_html(steps.shown.get(symbol, symbol))

            items = "".join(f"<tr><td>{k}</td><td>{'whole word in the vocabulary' if rank < 0 else f'#{rank}'}</td>"
                            f"<td>{sym(left)} + {sym(right)}</td><td>{' '.join(sym(s) for s in state)}</td></tr>"
                            for k, ((left, right, rank), state) in enumerate(zip(steps.merges, steps.states[1:]), 1))
            start = " ".join(sym(s) for s in steps.states[0])
            html += (f"<p><strong>BPE builds</strong> {token_html(steps.word)} from its bytes {start} with "
                     f"{outside_html(main.model)}'s merges, lowest rank first; it ends at ids {steps.ids}, as "
                     f"<code>tokenizer.encode</code> does.</p><table><thead><tr><th>step</th><th>merge rank</th>"
                     f"<th>pair</th><th>symbols after</th></tr></thead><tbody>{items}</tbody></table>")
        elif self.note:
            html += f"<p>{outside_html(self.note)}</p>"
        return html

    def figure(self):
        from ..figure import Figure

        fig = Figure(760, 2000, title=f"Tokens of {self.model_name}")
        y = 34.0
        for tokens in self.tokenizations:
            fig.text(10, y + 12, f"{tokens.model}: {plural(len(tokens), 'token')}", size=12, bold=True)
            y = boxes(fig, tokens.pieces, tokens.ids, 10, y + 20, 740)
        steps = self.merge_steps
        if steps is not None:
            fig.text(10, y + 12, f"BPE builds {steps.word.strip()!r} from its bytes, lowest merge rank first:",
                     size=12, bold=True)
            y += 22
            for k, state in enumerate(steps.states[:14]):
                rank = steps.merges[k - 1][2] if k else None
                label = "bytes" if k == 0 else "whole" if rank < 0 else f"#{rank}"
                fig.text(10, y + 15, label, size=10, fill="#666666")
                x = 70
                for index, symbol in enumerate(state):
                    text = steps.shown.get(symbol, symbol)
                    text = text if text.strip() else text.replace(" ", "␣")
                    w = fig.text_width(text, 12, mono=True) + 8
                    fig.rect(x, y + 2, w, 18, fill=COLOURS[index % len(COLOURS)], stroke="#b9b9b9")
                    fig.text(x + 4, y + 15, text, size=12, mono=True)
                    x += w + 3
                y += 22
            if len(steps.states) > 14:
                fig.text(70, y + 14, f"… {len(steps.states) - 14} more merges", size=11, fill="#666666")
                y += 20
            fig.text(10, y + 14, f"ids {steps.ids}, as tokenizer.encode gives", size=11, fill="#444444")
            y += 20
        fig.height = y + 6
        return fig


class VocabularyView(TeachingWidget):
    """A BPE vocabulary trained on the class's text, growing one merge at a time; the slider picks a vocabulary
    size and the text is tokenised again in the browser with the first merges only."""

    _esm = _esm("tokenizer_lab.js")
    caption_text = ("a BPE vocabulary starts with the bytes of the text and adds the most frequent pair as a new "
                    "token, again and again: a bigger vocabulary needs fewer tokens for the same text.")

    text = Unicode("").tag(sync=True)
    alphabet = List(Unicode()).tag(sync=True)    # the base symbols (byte-level strings), in id order
    merges = List(List(Unicode())).tag(sync=True)
    vocab = Dict().tag(sync=True)                # byte-level string → id
    shown = Dict().tag(sync=True)                # byte-level string → the text it stands for
    pieces = List(Unicode()).tag(sync=True)      # the text's pre-tokens, in order
    requested = Int(0).tag(sync=True)
    size = Int(0).tag(sync=True)                 # the slider's first value

    def __init__(self, trained: TrainedBpe, **kwargs):
        self.trained = trained
        super().__init__(text=trained.text, alphabet=trained.alphabet, merges=[list(m) for m in trained.merges],
                         vocab=trained.vocab, shown=trained.shown(), pieces=trained.pieces(),
                         requested=trained.requested, size=trained.vocab_size, **kwargs)

    @property
    def tokenizer(self):
        """The trained ``tokenizers.Tokenizer`` (every merge)."""
        return self.trained.tokenizer

    @property
    def vocab_size(self) -> int:
        return self.trained.vocab_size

    def tokens(self, vocab_size: int | None = None) -> list[str]:
        """The text's tokens with the vocabulary cut to ``vocab_size`` (``tokenizers``' own BPE, first merges)."""
        return self.trained.tokens(vocab_size)

    def ids(self, vocab_size: int | None = None) -> list[int]:
        return self.trained.ids(vocab_size)

    def growth(self, points: int = 12) -> list[tuple[int, int]]:
        """(vocabulary size, tokens in the text) at ``points`` sizes from the bytes alone to every merge."""
        low, high = len(self.trained.alphabet), self.vocab_size
        sizes = sorted({round(low + (high - low) * i / (points - 1)) for i in range(points)})
        return [(size, len(self.trained.ids(size))) for size in sizes]

    def static_html(self) -> str:
        trained, shown = self.trained, self.shown
        learned = "".join(f"<tr><td>{len(trained.alphabet) + k + 1}</td><td>{token_html(shown[a])} + "
                          f"{token_html(shown[b])}</td><td>{token_html(shown[a + b])}</td></tr>"
                          for k, (a, b) in enumerate(trained.merges[:60]))
        growth = "".join(f"<tr><td>{size}</td><td>{count}</td></tr>" for size, count in self.growth(6))
        pieces = " ".join(token_html(shown.get(t, t)) for t in trained.tokens()[:SHOWN_ROWS])
        return (f"<p><strong>A BPE vocabulary</strong> trained on the text: {len(trained.alphabet)} bytes + "
                f"{len(trained.merges)} merges = {trained.vocab_size} tokens (asked for {trained.requested}).</p>"
                f"<table><thead><tr><th>vocabulary size</th><th>tokens in the text</th></tr></thead>"
                f"<tbody>{growth}</tbody></table><table><thead><tr><th>size</th><th>merge</th><th>new token</th>"
                f"</tr></thead><tbody>{learned}</tbody></table><p>The text with every merge: {pieces}</p>")

    def figure(self):
        from ..figure import Figure

        trained, shown = self.trained, self.shown
        tokens = trained.tokens()
        fig = Figure(760, 400, title=f"A BPE vocabulary of {trained.vocab_size} tokens trained on the text")
        y = boxes(fig, [shown.get(t, t) for t in tokens], trained.ids(), 10, 34, 740, limit=90)
        growth = self.growth()
        top = max(c for _, c in growth)
        left, width, base, tall = 60, 660, y + 130, 100
        fig.line(left, base, left + width, base, stroke="#999999")
        fig.line(left, base, left, base - tall, stroke="#999999")
        fig.text(left - 6, base - tall + 4, str(top), size=10, anchor="end", fill="#666666")
        fig.text(left - 6, base + 4, "0", size=10, anchor="end", fill="#666666")
        low, high = growth[0][0], growth[-1][0]
        scale_x = lambda size: left + width * (size - low) / max(1, high - low)  # noqa: E731
        for (s1, c1), (s2, c2) in zip(growth, growth[1:]):
            fig.line(scale_x(s1), base - tall * c1 / top, scale_x(s2), base - tall * c2 / top, stroke="#1976d2",
                     width=2)
        fig.text(left, base + 16, f"{low} (bytes)", size=10, fill="#666666")
        fig.text(left + width, base + 16, f"{high} tokens in the vocabulary", size=10, anchor="end", fill="#666666")
        fig.text(left, base - tall - 8, "tokens needed for the text", size=11, fill="#444444")
        fig.height = base + 26
        return fig
