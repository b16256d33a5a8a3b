"""The teaching views drawn as figures (``views.figure``): what each shows by default, for ``view.save(path)``."""

from __future__ import annotations

import struct

import numpy as np

from ..figure import GREY, Figure, clean, mosaic, ramp

BLUE = "#1976d2"
DARK_BLUE = "#08308c"


def shown(text: str, limit: int = 16) -> str:
    """A token as the views show it: masked, whitespace made visible, then (never before) cut to ``limit``."""
    if text == "":
        return "∅"
    text = clean(text.replace("\r", "␍"))
    text = text.replace(" ", "␣") if text.strip() == "" else text
    return text if len(text) <= limit else text[:limit - 1] + "…"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def next_token(view, bars: int = 12) -> Figure:
    """The most likely next tokens as bars, under the explorer's own settings (its presets, else temperature 1)."""
    from ...tasks.teach import distribution, entropy

    start = {"temperature": 1.0, "top_k": 0, "top_p": 1.0} | dict(getattr(view, "start", None) or {})
    temperature, top_k, top_p = float(start["temperature"]), int(start["top_k"]), float(start["top_p"])
    ids, probs = distribution(view.explorer.logits, temperature, top_k, top_p)
    bits = entropy(probs)  # of the whole distribution, as the widget and the static copy say
    ids, probs = ids[:bars], probs[:bars]
    label_width, bar_width, row = 150, 360, 22
    fig = Figure(label_width + bar_width + 80, 64 + row * len(ids), title="Next token")
    prompt = clean(view.explorer.text)  # masked, then cut
    fig.text(10, 38, "after " + (prompt if len(prompt) <= 80 else "…" + prompt[-79:]), size=12, fill=GREY, mono=True)
    settings = f"temperature {temperature:g}" + (f", top-k {top_k}" if top_k else "") + (
        f", top-p {top_p:g}" if top_p < 1 else "")
    fig.text(fig.width - 10, 20, f"{view.model_name} · {settings} · entropy {bits:.2f} bits", size=11,
             fill=GREY, anchor="end")
    top = float(probs[0]) if len(probs) else 1.0
    for index, (token_id, p) in enumerate(zip(ids, probs.tolist())):
        y = 52 + index * row
        fig.text(label_width - 8, y + 15, shown(view.explorer.token(int(token_id)), 18), size=12, anchor="end", mono=True)
        fig.rect(label_width, y + 3, bar_width, row - 6, fill="#eeeeee")
        fig.rect(label_width, y + 3, max(1.0, bar_width * float(p) / (top or 1.0)), row - 6, fill=BLUE)
        fig.text(label_width + bar_width + 6, y + 15, f"{p:.1%}" if p >= 0.01 else f"{100 * p:.2g}%", size=11)
    return fig


def attention_steps(view) -> Figure:
    """One query's scores and softmax weights over every key, the masked future greyed."""
    steps = view.steps
    row, label_width, bar_width = 20, 150, 260
    fig = Figure(label_width + 90 + bar_width + 70, 70 + row * len(steps.tokens),
                 title=f"Layer {steps.layer}, head {steps.head}: query {steps.query} «{shown(steps.tokens[steps.query])}»")
    fig.text(10, 40, f"{steps.model} · weights = softmax(q·k / √{len(steps.q)})", size=11, fill=GREY)
    fig.text(label_width + 40, 58, "q·k/√d", size=11, fill=GREY, anchor="middle")
    fig.text(label_width + 90, 58, "weight", size=11, fill=GREY)
    for j, (token, score, weight, allowed) in enumerate(zip(steps.tokens, steps.scores, steps.weights, steps.mask)):
        y = 64 + j * row
        colour = "#222222" if allowed else "#aaaaaa"
        if j == steps.query:
            fig.rect(4, y, fig.width - 8, row, fill="#fff3e0")
        fig.text(label_width - 8, y + 14, f"{j} {shown(token)}", size=12, anchor="end", mono=True, fill=colour)
        fig.text(label_width + 40, y + 14, f"{float(score):.2f}" if allowed else "masked", size=11,
                 anchor="middle", fill=colour)
        fig.rect(label_width + 90, y + 4, bar_width, row - 8, fill="#eeeeee" if allowed else "#f6f6f6")
        if allowed:
            fig.rect(label_width + 90, y + 4, max(1.0, bar_width * float(weight)), row - 8, fill=BLUE)
            fig.text(label_width + 96 + bar_width, y + 14, f"{float(weight):.3f}", size=11)
    return fig


def positional(view) -> Figure:
    """The sinusoidal encoding (position × dimension) and the similarity of positions, side by side."""
    matrix = view.matrix
    side = 300
    fig = Figure(2 * side + 110, side + 96, title=f"Sinusoidal positional encoding, d_model = {view.d_model}, "
                                                 f"{view.positions} positions")
    fig.text(50, 44, "PE[position, dimension]", size=12)
    fig.heatmap(50, 52, matrix, side, side, low="#2166ac", mid="#ffffff", high="#b2182b", vmin=-1, vmax=1)
    similarity = view.similarity
    fig.text(side + 90, 44, "similarity PE[m] · PE[n]", size=12)
    top = float(np.abs(similarity).max()) or 1.0
    fig.heatmap(side + 90, 52, similarity, side, side, low="#2166ac", mid="#ffffff", high="#b2182b", vmin=-top,
                vmax=top)
    for x, label in ((50, "dimension →"), (side + 90, "position n →")):
        fig.text(x, side + 68, label, size=11, fill=GREY)
    fig.text(10, 66, "pos ↓", size=11, fill=GREY)
    fig.text(10, side + 88, "blue −1 · white 0 · red +1", size=11, fill=GREY)
    return fig


def logit_lens(view) -> Figure:
    """Each layer's top next token at every position, shaded by its probability."""
    lens = view.lens
    cell_w, cell_h, label_w = 78, 18, 92
    layers, n = len(lens.top_tokens), len(lens.tokens)
    fig = Figure(label_w + n * cell_w + 10, 62 + (layers + 1) * cell_h + 8, title=f"Logit lens of {lens.model}")
    fig.text(10, 40, "each cell: the token predicted to come after its column's token; darker = surer", size=11,
             fill=GREY)
    fig.text(label_w - 6, 62, "layer ↓ input →", size=10, anchor="end", fill=GREY)
    for position, token in enumerate(lens.tokens):
        fig.text(label_w + position * cell_w + cell_w / 2, 62, shown(token, 10), size=11, anchor="middle",
                 mono=True, bold=True)
    colours = ramp(np.asarray(lens.top_probs, dtype=np.float64), low="#ffffff", high=BLUE, vmin=0, vmax=1)
    for layer in range(layers):
        y = 66 + layer * cell_h
        name = "0 embeddings" if layer == 0 else f"{layer} output" if layer == layers - 1 else str(layer)
        fig.text(label_w - 6, y + 13, name, size=10, anchor="end", fill=GREY)
        for position in range(n):
            p = float(lens.top_probs[layer][position])
            fig.rect(label_w + position * cell_w, y, cell_w - 1, cell_h - 1, fill=tuple(colours[layer, position]))
            fig.text(label_w + position * cell_w + 3, y + 13, shown(lens.top_tokens[layer][position], 10), size=10,
                     mono=True, fill="#ffffff" if p > 0.55 else "#222222")
    return fig


def attention_grid(view) -> Figure:
    """The grid the attention view opens on: every head's map (each scaled to its own maximum, square-root
    colours), each layer's mean, and the rollout."""
    from .teaching import plural

    layers, heads, n = list(view.layers), list(view.heads), len(view.tokens)
    side = int(view.thumb_meta["size"])
    maps = np.frombuffer(view.thumbs, dtype=np.uint8).reshape(-1, side, side)
    rows, cols = np.indices((side, side))
    step = n / side
    masked = (np.floor(cols * step) > np.floor((rows + 1) * step) - 1) if view.causal else None
    cols_n = len(heads) + 1
    cell = int(max(22, min(72, 640 // cols_n)))
    gap, pad, top = 3, 40, 60
    fig = Figure(max(560, pad + cols_n * (cell + gap) + 10), top + 16 + (len(layers) + 1) * (cell + gap) + 6,
                 title=f"Attention of {view.model_name} · {plural(n, 'token')}")
    fig.text(10, 38, "row = the token that looks, column = the token looked at; darker = more attention", size=11,
             fill=GREY)
    fig.text(10, 54, clip(" · ".join(shown(t, 12) for t in view.tokens), 95), size=11, mono=True)
    top += 16
    for j, head in enumerate(heads):
        fig.text(pad + j * (cell + gap), top - 4, f"H{head}", size=10, fill=GREY)
    fig.text(pad + len(heads) * (cell + gap), top - 4, "mean", size=10, fill=GREY)

    def place(index, x, y):
        values = np.sqrt(maps[index].astype(np.float64) / 255)
        fig.heatmap(x, y, values, cell, cell, low="#ffffff", high=DARK_BLUE, vmin=0, vmax=1, mask=masked)

    for i, layer in enumerate(layers):
        y = top + i * (cell + gap)
        fig.text(4, y + cell / 2 + 4, f"L{layer}", size=10, fill=GREY)
        for j in range(len(heads)):
            place(i * len(heads) + j, pad + j * (cell + gap), y)
        place(len(layers) * len(heads) + i, pad + len(heads) * (cell + gap), y)
    y = top + len(layers) * (cell + gap)
    fig.text(4, y + cell / 2 + 4, "roll", size=10, fill=GREY)
    place(len(layers) * len(heads) + len(layers), pad, y)
    return fig


def latent_map(view) -> Figure:
    data = view.data
    size, height, width = data.size, *data.shape
    picture = mosaic(data.grid.reshape(size * size, height, width), size, gap=0)
    scale = max(1, 420 // max(picture.shape))
    which = f", class {data.classes[data.label]}" if data.classes else ""
    fig = Figure(picture.shape[1] * scale + 20, picture.shape[0] * scale + 70, title=f"Latent map of {data.name}{which}")
    fig.text(10, 40, f"the decoder's image at each point z of [−{data.extent:g}, {data.extent:g}]²; z₁ across, z₂ up",
             size=11, fill=GREY)
    fig.image(10, 52, picture, picture.shape[1] * scale, picture.shape[0] * scale)
    return fig


def denoising(view) -> Figure:
    data = view.data
    picks = sorted(set(np.linspace(0, data.steps, min(11, data.steps + 1)).round().astype(int).tolist()))
    guesses = data.x0[[min(k, data.steps - 1) for k in picks]] if data.steps else data.xt[picks]
    picture = mosaic(np.concatenate([data.xt[picks], guesses]), len(picks))
    scale = max(1, 640 // picture.shape[1])
    which = f" of {data.class_name}" if data.class_name else ""
    fig = Figure(picture.shape[1] * scale + 90, picture.shape[0] * scale + 84,
                 title=f"Denoising: one sample{which} by {data.name} (seed {data.seed})")
    fig.text(10, 40, f"{data.steps} DDIM steps, left to right: " + ", ".join(
        f"t={data.timesteps[k]}" if k < data.steps else "done" for k in picks), size=11, fill=GREY)
    fig.image(80, 52, picture, picture.shape[1] * scale, picture.shape[0] * scale)
    half = picture.shape[0] * scale / 2
    fig.text(74, 52 + half / 2 + 4, "x_t", size=12, anchor="end")
    fig.text(74, 52 + 1.5 * half + 4, "guess x̂₀", size=12, anchor="end")
    return fig


def gan_diversity(view) -> Figure:
    data = view.data
    chart_w, chart_h, left, top = 360, 200, 50, 56
    picture = data.snapshots[-1][1] if data.snapshots else None
    fig = Figure(left + chart_w + (260 if picture else 20), top + chart_h + 50,
                 title=f"Diversity over epochs of {data.name}")
    fig.text(10, 40, "samples' spread ÷ the real images' (1 = as varied as the real data; near 0 = mode collapse)",
             size=11, fill=GREY)
    high = max([1.2, *data.ratios])
    fig.rect(left, top, chart_w, chart_h, stroke="#cccccc")
    one = top + chart_h * (1 - 1 / high)
    fig.line(left, one, left + chart_w, one, stroke="#aaaaaa")
    fig.text(left - 4, one + 4, "1", size=10, anchor="end", fill=GREY)
    fig.text(left - 4, top + chart_h, "0", size=10, anchor="end", fill=GREY)
    last = max(data.epochs or [1]) or 1
    points = [(left + chart_w * e / last, top + chart_h * (1 - r / high)) for e, r in zip(data.epochs, data.ratios)]
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        fig.line(x1, y1, x2, y2, stroke=BLUE, width=2)
    for x, y in points:
        fig.rect(x - 2, y - 2, 4, 4, fill=BLUE)
    fig.text(left + chart_w, top + chart_h + 16, f"epoch {last:g}", size=10, anchor="end", fill=GREY)
    fig.text(left, top + chart_h + 34, clean(data.verdict)[:90], size=11)
    if picture:
        epoch = data.snapshots[-1][0]
        wide, tall = struct.unpack(">II", picture[16:24])
        fig.height = max(fig.height, top + 220 * tall / wide + 10)
        fig.text(left + chart_w + 20, top - 4, f"samples at epoch {epoch:g}", size=11, fill=GREY)
        fig.image(left + chart_w + 20, top, picture, 220, 220 * tall / wide)
    return fig
