"""Pictures of the teaching views for slides: a tiny scene drawn as SVG (by hand) and as PNG (PIL).

For a view author. A widget that subclasses ``TeachingWidget`` gets ``.save(path)`` (``.svg`` or ``.png``)
and a caption; it only implements one method that draws what its static copy / default state shows::

    from ..figure import Figure

    class TokensView(TeachingWidget):
        caption_text = "each coloured piece is one token; the number under it is its id"   # the default caption

        def figure(self) -> Figure:
            fig = Figure(640, 120, title=f"Tokens of {self.model_name}")   # the title is optional
            x = 10
            for piece, token_id in zip(self.pieces, self.ids):
                width = fig.text_width(piece, 14, mono=True) + 8
                fig.rect(x, 30, width, 26, fill="#fde7c8", stroke="#c9a36b")
                fig.text(x + 4, 48, piece, size=14, mono=True)          # any outside text: masked and escaped here
                fig.text(x + width / 2, 72, str(token_id), size=10, anchor="middle", fill="#666")
                x += width + 4
            return fig

``save`` adds the caption under the figure (``Figure.captioned``), so ``figure()`` never draws it. Coordinates
are in CSS pixels, y down, text ``y`` is its baseline. Pictures (``image``, ``heatmap``) are numpy arrays
(grey ``[h, w]`` in 0..1 or 0..255, ``[h, w, 3]`` RGB), PIL images or PNG bytes, scaled up without smoothing;
``ramp`` (colour scales, diverging with ``mid``) and ``mosaic`` (a grid of small grey images) help. Text is
outside text: it is masked (keys, URL credentials), hidden characters made visible, and XML-escaped. To
shorten outside text, cut ``clean(text)``, never the raw text: a key cut in half escapes the mask.

In the browser: with ``_esm = esm("tokens_view.js")`` (teaching_common.js in front) and ``teaching.css`` in its
CSS, the widget's ``render`` calls ``const unframe = frameView(model, root, "tokens")`` after appending its parts
(it adds the caption and the PNG / SVG buttons that save what the view shows now) and ``unframe()`` on cleanup.
Give the magic the ``teaching`` option group of spec.json (``--caption off``) and pass ``caption`` through.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import struct
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..core.errors import AigcError
from .outside import plain

SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
GREY = "#666666"
# what XML 1.0 cannot hold, after ``plain`` made the control characters visible
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def colour(value) -> str:
    """``"#rrggbb"``, ``"#rgb"``, white, black, none, or an (r, g, b) tuple, as SVG writes it."""
    if isinstance(value, (tuple, list, np.ndarray)):
        r, g, b = (int(max(0, min(255, round(float(c))))) for c in list(value)[:3])
        return f"#{r:02x}{g:02x}{b:02x}"
    return str(value)


def clean(text) -> str:
    """Outside text as a figure shows it: one line, masked, hidden characters visible, valid in XML."""
    return _NOT_XML.sub("\ufffd", plain(str(text)).replace("\n", "↵").replace("\t", "⇥"))


def pixels(picture) -> np.ndarray:
    """A picture as uint8 RGB ``[h, w, 3]``: grey or RGB(A) numpy (0..1 floats or 0..255), or a PIL image."""
    if hasattr(picture, "convert") and hasattr(picture, "size"):
        return np.asarray(picture.convert("RGB"), dtype=np.uint8)
    array = np.asarray(picture)
    if array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.float64)
        finite = array[np.isfinite(array)]
        top = 1.0 if finite.size == 0 or finite.max() <= 1.0 else 255.0
        array = np.clip(np.nan_to_num(array) * (255.0 / top), 0, 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"a picture must be [h, w], [h, w, 3] or [h, w, 4], not {list(array.shape)}")
    return np.ascontiguousarray(array[:, :, :3])


def ramp(values, low="#ffffff", high="#08308c", vmin: float | None = None, vmax: float | None = None,
         mask=None, masked="#e2e2e6", mid=None) -> np.ndarray:
    """Values ``[h, w]`` as RGB pixels on a linear scale from ``low`` to ``high`` (through ``mid`` halfway, for
    a diverging scale); ``mask`` True cells in grey."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    lo = vmin if vmin is not None else float(values.min()) if values.size else 0.0
    hi = vmax if vmax is not None else float(values.max()) if values.size else 1.0
    t = np.clip((values - lo) / ((hi - lo) or 1.0), 0, 1)[..., None]
    a, b = (np.array(_rgb(c), dtype=np.float64) for c in (low, high))
    if mid is None:
        rgb = (a + (b - a) * t).round().astype(np.uint8)
    else:
        m = np.array(_rgb(mid), dtype=np.float64)
        rgb = np.where(t < 0.5, a + (m - a) * (2 * t), m + (b - m) * (2 * t - 1)).round().astype(np.uint8)
    if mask is not None:
        rgb[np.asarray(mask, dtype=bool)] = _rgb(masked)
    return rgb


_NAMES = {"white": (255, 255, 255), "black": (0, 0, 0), "none": (255, 255, 255)}


def mosaic(images, columns: int, gap: int = 1, fill: float = 0.35) -> np.ndarray:
    """Grey images ``[n, h, w]`` (0..1) as one picture, ``columns`` wide, ``gap`` pixels of ``fill`` between."""
    images = np.asarray(images, dtype=np.float32)
    n, height, width = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap), fill, dtype=np.float32)
    for index, image in enumerate(images):
        top, left = gap + (index // columns) * (height + gap), gap + (index % columns) * (width + gap)
        out[top:top + height, left:left + width] = np.clip(image, 0, 1)
    return out


def _rgb(value) -> tuple:
    """A colour as (r, g, b): ``#rgb``, ``#rrggbb``, white, black or a tuple."""
    text = colour(value).lower()
    if text in _NAMES:
        return _NAMES[text]
    digits = text.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    if not re.fullmatch("[0-9a-f]{6}", digits):
        raise ValueError(f"a colour is #rrggbb, #rgb, white, black or (r, g, b), not {value!r}")
    return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))


@dataclass
class Figure:
    """A scene of rectangles, lines, text and pictures, ``width`` × ``height`` CSS pixels on ``background``."""

    width: float
    height: float
    background: str = "white"
    title: str = ""
    shapes: list = field(default_factory=list)

    def __post_init__(self):
        if self.title:
            self.text(10, 20, self.title, size=14, bold=True)

    def rect(self, x, y, width, height, fill="none", stroke="none", stroke_width: float = 1) -> Figure:
        self.shapes.append(("rect", float(x), float(y), float(width), float(height), colour(fill), colour(stroke),
                            float(stroke_width)))
        return self

    def line(self, x1, y1, x2, y2, stroke=GREY, width: float = 1) -> Figure:
        self.shapes.append(("line", float(x1), float(y1), float(x2), float(y2), colour(stroke), float(width)))
        return self

    def text(self, x, y, text, size: float = 12, fill="#222222", anchor: str = "start", bold: bool = False,
             mono: bool = False) -> Figure:
        """One line of text with its baseline at ``y``; ``anchor`` is start, middle or end."""
        if anchor not in ("start", "middle", "end"):
            raise ValueError(f"anchor must be start, middle or end, not {anchor!r}")
        self.shapes.append(("text", float(x), float(y), clean(text), float(size), colour(fill), anchor, bold, mono))
        return self

    def image(self, x, y, picture, width=None, height=None) -> Figure:
        """A picture at (x, y), scaled to ``width`` × ``height`` (default its own size) without smoothing.
        ``picture``: numpy, a PIL image, or PNG bytes (kept as they are in an SVG)."""
        if isinstance(picture, (bytes, bytearray)):
            if not bytes(picture[:8]) == b"\x89PNG\r\n\x1a\n":
                raise ValueError("picture bytes must be a PNG")
            data, (w, h) = bytes(picture), struct.unpack(">II", bytes(picture[16:24]))
        else:
            data = pixels(picture)
            h, w = data.shape[:2]
        self.shapes.append(("image", float(x), float(y), float(width or w), float(height or h), data))
        return self

    def heatmap(self, x, y, values, width, height, **scale) -> Figure:
        """Values ``[rows, columns]`` as coloured cells filling ``width`` × ``height`` (``ramp``'s options)."""
        return self.image(x, y, ramp(values, **scale), width, height)

    @staticmethod
    def text_width(text, size: float = 12, mono: bool = False) -> float:
        """An estimate of a line's width, good enough to lay out labels."""
        return len(clean(text)) * size * (0.61 if mono else 0.56)

    def captioned(self, caption: str, size: float = 13) -> Figure:
        """A copy with ``caption`` wrapped under the picture (an empty caption: the same figure)."""
        if not caption:
            return self
        per_line = max(20, int((self.width - 20) / (size * 0.55)))
        lines = textwrap.wrap(clean(caption), per_line) or [""]
        taller = Figure(self.width, self.height + 8 + len(lines) * size * 1.4, self.background,
                        shapes=list(self.shapes))
        for index, line in enumerate(lines):
            taller.text(10, self.height + 4 + (index + 1) * size * 1.3, line, size=size, fill="#444444")
        return taller

    def svg(self) -> str:
        """The scene as a standalone SVG document (well-formed XML; every text escaped)."""
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
               f'width="{self.width:g}" height="{self.height:g}" viewBox="0 0 {self.width:g} {self.height:g}">',
               f'<rect x="0" y="0" width="100%" height="100%" fill={quoteattr(colour(self.background))}/>']
        for shape in self.shapes:
            kind, *rest = shape
            if kind == "rect":
                x, y, w, h, fill, stroke, sw = rest
                out.append(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" fill={quoteattr(fill)} '
                           f'stroke={quoteattr(stroke)} stroke-width="{sw:g}"/>')
            elif kind == "line":
                x1, y1, x2, y2, stroke, w = rest
                out.append(f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke={quoteattr(stroke)} '
                           f'stroke-width="{w:g}"/>')
            elif kind == "text":
                x, y, text, size, fill, anchor, bold, mono = rest
                out.append(f'<text x="{x:g}" y="{y:g}" font-size="{size:g}" fill={quoteattr(fill)} '
                           f'text-anchor="{anchor}" font-family={quoteattr(MONO if mono else SANS)}'
                           f'{" font-weight=" + quoteattr("bold") if bold else ""} xml:space="preserve">'
                           f'{escape(text)}</text>')
            else:
                x, y, w, h, data = rest
                encoded = data if isinstance(data, bytes) else _png(data)
                uri = "data:image/png;base64," + base64.b64encode(encoded).decode("ascii")
                out.append(f'<image x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" preserveAspectRatio="none" '
                           f'image-rendering="pixelated" style="image-rendering:pixelated" href="{uri}" '
                           f'xlink:href="{uri}"/>')
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def png(self, scale: float = 2) -> bytes:
        """The scene as PNG bytes, ``scale`` device pixels per CSS pixel (2: sharp on a projector)."""
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (max(1, round(self.width * scale)), max(1, round(self.height * scale))),
                          _rgb(self.background))
        draw = ImageDraw.Draw(image)
        for shape in self.shapes:
            kind, *rest = shape
            if kind == "rect":
                x, y, w, h, fill, stroke, sw = rest
                box = [x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1]
                if box[2] >= box[0] and box[3] >= box[1]:
                    draw.rectangle(box, fill=None if fill == "none" else _rgb(fill),
                                   outline=None if stroke == "none" else _rgb(stroke),
                                   width=max(1, round(sw * scale)))
            elif kind == "line":
                x1, y1, x2, y2, stroke, w = rest
                draw.line([x1 * scale, y1 * scale, x2 * scale, y2 * scale], fill=_rgb(stroke),
                          width=max(1, round(w * scale)))
            elif kind == "text":
                x, y, text, size, fill, anchor, bold, mono = rest
                anchors = {"start": "ls", "middle": "ms", "end": "rs"}
                draw.text((x * scale, y * scale), text, fill=_rgb(fill), font=_font(size * scale, bold, mono),
                          anchor=anchors[anchor])
            else:
                x, y, w, h, data = rest
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                picture = Image.open(io.BytesIO(data)).convert("RGB") if isinstance(data, bytes) else Image.fromarray(data)
                image.paste(picture.resize(size, Image.NEAREST), (round(x * scale), round(y * scale)))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def save(self, path, scale: float = 2) -> Path:
        """Write the scene to ``path``: ``.svg`` or ``.png`` (one line, with the fix, for anything else)."""
        return save(self, path, scale=scale)


def save(figure: Figure, path, caption: str = "", scale: float = 2) -> Path:
    """``figure`` (with ``caption`` under it) as ``path``; the suffix picks SVG or PNG."""
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise AigcError(f"cannot save a picture as {clean(target.name)!r}: only .svg and .png are written.",
                        "Give a path ending in .svg or .png.")
    if suffix == ".png" and importlib.util.find_spec("PIL") is None:
        raise AigcError("saving a PNG needs Pillow, which is not installed.", "Run `pip install pillow`, or save an .svg.")
    figure = figure.captioned(caption)
    data = figure.svg().encode("utf-8") if suffix == ".svg" else figure.png(scale)
    try:
        target.write_bytes(data)
    except OSError as error:
        raise AigcError(f"cannot write {clean(str(target))}: {clean(error.strerror or error)}.",
                        "Choose a folder that exists and that you can write to.") from None
    return target


_FONTS: dict = {}


def _font(size: float, bold: bool, mono: bool):
    """DejaVu (installed with most Linux systems and matplotlib), else Pillow's own font."""
    from PIL import ImageFont

    key = (round(size), bold, mono)
    if key not in _FONTS:
        name = "DejaVuSansMono" if mono else "DejaVuSans"
        name += "-Bold.ttf" if bold else ".ttf"
        try:
            _FONTS[key] = ImageFont.truetype(name, key[0])
        except OSError:
            try:
                _FONTS[key] = ImageFont.load_default(key[0])
            except TypeError:   # Pillow < 10.1: a fixed bitmap font
                _FONTS[key] = ImageFont.load_default()
    return _FONTS[key]


def _png(data: np.ndarray) -> bytes:
    """RGB pixels ``[h, w, 3]`` as PNG bytes, with zlib only (an SVG needs no Pillow)."""
    height, width = data.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), data.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))
