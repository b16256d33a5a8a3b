"""Static copies of the training views' charts: loss curves drawn as a PNG with PIL, for saved notebooks and
nbconvert (the live widgets draw the same curves on a canvas)."""

from __future__ import annotations

import base64
import io

COLOURS = ((25, 118, 210), (245, 124, 0), (56, 142, 60), (142, 36, 170))
GREY = (100, 100, 100)


def _panel(draw, box: tuple, curves: list, steps: int) -> None:
    """Curves ``[(name, points, colour)]`` on one scale inside ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    values = [v for _, points, _ in curves for _, v in points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or abs(high) or 1.0
    low, high = low - 0.05 * span, high + 0.05 * span
    draw.rectangle([left, top + 14, right, bottom], outline=(210, 210, 210))
    draw.text((left - 46, top + 14), f"{high:.3g}", fill=GREY)
    draw.text((left - 46, bottom - 10), f"{low:.3g}", fill=GREY)

    def xy(step, value):
        return left + (right - left) * step / steps, top + 14 + (bottom - top - 14) * (1 - (value - low) / (high - low))

    x = left
    for name, points, colour in curves:
        if len(points) > 1:
            draw.line([xy(s, v) for s, v in points], fill=colour, width=2)
        elif points:
            cx, cy = xy(*points[0])
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        label = name + (f" {points[-1][1]:.4g}" if points else "")
        draw.line([x, top + 6, x + 14, top + 6], fill=colour, width=2)
        draw.text((x + 18, top), label, fill=colour)
        x += 18 + 7 * len(label) + 14


def curves_png(curves: dict, total_steps: int, shared: bool = True, width: int = 560, height: int = 150) -> bytes:
    """``name -> [[step, value], …]`` as a PNG: one panel on one scale (``shared``), or a panel per curve."""
    from PIL import Image, ImageDraw

    named = [(name, points, COLOURS[i % len(COLOURS)]) for i, (name, points) in enumerate(curves.items())]
    panels = [named] if shared else [[curve] for curve in named]
    steps = max([total_steps or 1] + [s for _, points, _ in named for s, _ in points])
    image = Image.new("RGB", (width, height * len(panels) + 16), "white")
    draw = ImageDraw.Draw(image)
    for index, panel in enumerate(panels):
        _panel(draw, (52, 4 + index * height, width - 10, (index + 1) * height - 4), panel, steps)
    draw.text((width - 70, height * len(panels)), f"step {steps}", fill=GREY)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_img(data: bytes, alt: str, width: float | None = None) -> str:
    """An <img> of PNG bytes this package drew (alt text masked and escaped; anything but a PNG gives nothing)."""
    from ..outside import html

    if not bytes(data).startswith(b"\x89PNG\r\n\x1a\n"):
        return ""
    size = f' width="{round(width)}"' if width else ""
    return f'<img alt="{html(alt)}"{size} src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def maps_png(maps: list, labels: list[str], cell: int = 96, columns: int = 6) -> bytes:
    """Square ``[query, key]`` maps (each scaled to its own maximum, darker = more) as a grid of labelled tiles."""
    from PIL import Image, ImageDraw

    rows = (len(maps) + columns - 1) // columns
    width = min(columns, len(maps)) * (cell + 8) + 8
    image = Image.new("RGB", (width, rows * (cell + 22) + 8), "white")
    draw = ImageDraw.Draw(image)
    for index, (matrix, label) in enumerate(zip(maps, labels)):
        top = max(float(matrix.max()), 1e-9)
        shade = (255 - 255 * (matrix / top).clip(0, 1)).astype("uint8")
        tile = Image.fromarray(shade, "L").resize((cell, cell), Image.NEAREST).convert("RGB")
        x, y = 8 + (index % columns) * (cell + 8), 8 + (index // columns) * (cell + 22)
        image.paste(tile, (x, y + 14))
        draw.rectangle([x - 1, y + 13, x + cell, y + 14 + cell], outline=(200, 200, 200))
        draw.text((x, y), label, fill=GREY)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
