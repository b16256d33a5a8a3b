"""ImageGallery: %%aigc_image output (progress per image, previews, seeds, enlarge and download)."""

from __future__ import annotations

from pathlib import Path

import anywidget
from traitlets import Dict, List, Unicode

from .static_copy import StaticCopy, css

STATIC = Path(__file__).parent / "static"


class ImageGallery(StaticCopy, anywidget.AnyWidget):
    """``items``: one dict per image: status, step, steps, seed, and PNG bytes (sent as binary buffers)."""

    _esm = STATIC / "image_gallery.js"
    _css = css("image_gallery.css")

    items = List(Dict()).tag(sync=True)
    caption = Unicode("").tag(sync=True)

    def safe_html(self) -> str:
        """The static copy: the caption and each finished image (PNGs this package encoded) with its seed."""
        from ..outside import html
        from .charts import png_img

        done = [item for item in self.items if item.get("status") == "done" and
                bytes(item.get("png") or b"").startswith(b"\x89PNG\r\n\x1a\n")]
        pictures = " ".join(png_img(bytes(item["png"]), f"seed {item.get('seed')}") for item in done)
        seeds = ", ".join(str(item.get("seed")) for item in done)
        return f"<p><b>{html(self.caption)}</b>" + (f" · seeds {html(seeds)}" if done else "") + f"</p><p>{pictures}</p>"

    def static_text(self) -> str:
        return f"{self.caption}: {sum(item.get('status') == 'done' for item in self.items)} image(s)"
