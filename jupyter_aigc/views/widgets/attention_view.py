"""AttentionView: a grid of every head's attention map, a full head view and token lines, data on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from traitlets import Bool, Bytes, Dict, Int, List, Unicode

from ...tasks.attention import AttentionMaps, head_matrix, thumbnails
from .static_copy import css
from .teaching import TeachingWidget, esm, plural

STATIC = Path(__file__).parent / "static"


class AttentionView(TeachingWidget):
    """Thumbnails of all selected heads are sent first; a head's full N×N map only when it is opened.

    ``layers`` and ``heads`` default to the selection the maps were made with (``maps.layers``, ``maps.heads``).
    """

    _esm = esm("attention_view.js")
    _css = css("teaching.css", "attention_view.css")   # teaching.css: the caption and save buttons
    caption_text = ("Each row sums to 1: where this token looks. Darker = more attention; the grey triangle is the "
                    "future, which a token cannot see.")

    model_name = Unicode("").tag(sync=True)
    tokens = List(Unicode()).tag(sync=True)
    layers = List(Int()).tag(sync=True)
    heads = List(Int()).tag(sync=True)
    causal = Bool(True).tag(sync=True)
    thumbs = Bytes(b"").tag(sync=True)
    thumb_meta = Dict().tag(sync=True)
    answer = List(Int()).tag(sync=True)   # [start, end): the generated tokens, empty when there is no answer

    def __init__(self, maps: AttentionMaps, layers: list[int] | None = None, heads: list[int] | None = None,
                 **kwargs):
        layers = maps.layers if layers is None else layers
        heads = maps.heads if heads is None else heads
        data, (side, scales) = thumbnails(maps, layers, heads)
        super().__init__(model_name=maps.model, tokens=maps.tokens, layers=layers, heads=heads,
                         causal=maps.causal, thumbs=data, thumb_meta={"size": side, "scales": scales},
                         answer=list(maps.answer or ()), **kwargs)
        self.maps = maps
        self.bytes_sent = len(data)
        self.on_msg(self._handle_message)

    def _handle_message(self, widget, content, buffers) -> None:
        if not isinstance(content, dict) or content.get("type") != "head":
            return
        reply = {"type": "head", "id": content.get("id"), "layer": content.get("layer"), "head": content.get("head")}
        try:
            layer, head = int(content["layer"]), int(content["head"])
            if layer != -1 and (layer not in self.layers or (head != -1 and head not in self.heads)):
                raise ValueError(f"layer {layer}, head {head} is not in this view")
            data, top = head_matrix(self.maps, layer, head)
        except (KeyError, TypeError, ValueError) as exc:
            self.send({**reply, "error": str(exc)})
            return
        self.bytes_sent += len(data)
        self.send({**reply, "n": len(self.tokens), "scale": top}, buffers=[data])

    def figure(self):
        from . import pictures

        return pictures.attention_grid(self)

    def arrays(self) -> np.ndarray:
        """The selected maps as float32 ``[layer, head, query, key]``."""
        return np.stack([np.stack([self.maps.head(layer, head) for head in self.heads]) for layer in self.layers])

    def safe_html(self) -> str:
        """The static copy: each shown layer's heads averaged, as a PNG, and the tokens."""
        from ..outside import html
        from .charts import maps_png, png_img

        maps = self.maps
        picture = maps_png([maps.layer_mean(layer) for layer in self.layers], [f"layer {layer}" for layer in self.layers])
        tokens = " ".join(("<b>answer →</b> " if i == (maps.answer or (-1,))[0] else "") + f"<code>{html(repr(token))}</code>"
                          for i, token in enumerate(maps.tokens[:200]))
        return (f"<p><b>Attention</b> of {html(maps.model)} over {plural(maps.n, 'token')}: each layer's heads "
                f"{html(str(self.heads[0]) + '–' + str(self.heads[-1]) if len(self.heads) > 1 else str(self.heads[0]))} "
                "averaged. Row = the token that looks, column = the token looked at; darker = more "
                "attention (each row sums to 1).</p>" + png_img(picture, "attention maps") + f"<p>{tokens}</p>")

    def static_text(self) -> str:
        answer = self.maps.answer
        return f"Attention of {self.maps.model} over {plural(self.maps.n, 'token')}" + (
            f" (the answer: tokens {answer[0]}–{answer[1] - 1})" if answer else "")
