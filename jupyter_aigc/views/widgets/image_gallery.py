"""ImageGallery: %%aigc_image output (progress per image, previews, seeds, enlarge and download)."""

from __future__ import annotations

from pathlib import Path

import anywidget
from traitlets import Dict, List, Unicode

STATIC = Path(__file__).parent / "static"


class ImageGallery(anywidget.AnyWidget):
    """``items``: one dict per image: status, step, steps, seed, and PNG bytes (sent as binary buffers)."""

    _esm = STATIC / "image_gallery.js"
    _css = STATIC / "image_gallery.css"

    items = List(Dict()).tag(sync=True)
    caption = Unicode("").tag(sync=True)
