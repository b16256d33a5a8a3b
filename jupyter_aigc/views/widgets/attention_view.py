"""AttentionView: a grid of every head's attention map, a full head view and token lines, data on demand."""

from __future__ import annotations

from pathlib import Path

import anywidget
import numpy as np
from traitlets import Bool, Bytes, Dict, Int, List, Unicode

from ...tasks.attention import AttentionMaps, head_matrix, thumbnails

STATIC = Path(__file__).parent / "static"


class AttentionView(anywidget.AnyWidget):
    """Thumbnails of all selected heads are sent first; a head's full N×N map only when it is opened.

    ``layers`` and ``heads`` default to the selection the maps were made with (``maps.layers``, ``maps.heads``).
    """

    _esm = STATIC / "attention_view.js"
    _css = STATIC / "attention_view.css"

    model_name = Unicode("").tag(sync=True)
    tokens = List(Unicode()).tag(sync=True)
    layers = List(Int()).tag(sync=True)
    heads = List(Int()).tag(sync=True)
    causal = Bool(True).tag(sync=True)
    thumbs = Bytes(b"").tag(sync=True)
    thumb_meta = Dict().tag(sync=True)

    def __init__(self, maps: AttentionMaps, layers: list[int] | None = None, heads: list[int] | None = None,
                 **kwargs):
        layers = maps.layers if layers is None else layers
        heads = maps.heads if heads is None else heads
        data, (side, scales) = thumbnails(maps, layers, heads)
        super().__init__(model_name=maps.model, tokens=maps.tokens, layers=layers, heads=heads,
                         causal=maps.causal, thumbs=data, thumb_meta={"size": side, "scales": scales}, **kwargs)
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

    def arrays(self) -> np.ndarray:
        """The selected maps as float32 ``[layer, head, query, key]``."""
        return np.stack([np.stack([self.maps.head(layer, head) for head in self.heads]) for layer in self.layers])
