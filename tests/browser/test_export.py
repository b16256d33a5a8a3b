"""Export, for slides, in a real JupyterLab and headless Chromium: every teaching view, the image lab's views and
the attention view carry their caption (or none with --caption off) and save what they show now as a PNG and a
well-formed SVG, drawn in the browser (the downloads are captured and checked; nothing is fetched)."""

import io
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser.conftest import open_notebook, run_all, shot, shots_dir, wait_idle, write_notebook
from browser.test_teaching import SET_VALUE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LONG = 600000
LAB = """import numpy as np, torch
from jupyter_aigc.engines.lab_models import LabInfo, LabModel
from jupyter_aigc.engines.lab_training import grid_png
from jupyter_aigc.tasks.lab_lessons import denoising, diversity, latent_map
from jupyter_aigc.views.widgets.image_lab_lessons import DenoiseView, GanDiversityView, LatentMapView
def new(kind):
    torch.manual_seed(0)
    return LabModel.new(LabInfo(kind=kind, name='lesson', shape=(8, 8), classes=[str(i) for i in range(10)]))
import base64
gan = new('gan')
grid = base64.b64encode(grid_png(np.random.default_rng(0).random((20, 8, 8)), 10)).decode()
gan.info.history = {'diversity': [[1.0, 0.9], [2.0, 0.6], [3.0, 0.3]], 'real_diversity': 5.0,
                    'snapshots': [[3.0, grid]]}
LatentMapView(latent_map(new('vae')))"""
CELLS = [
    "%load_ext jupyter_aigc",
    "%%aigc_next\nThe capital of France is",
    "%%aigc_attention --steps --layer 3 --head 2\nThe cat sat on the mat because it was tired.",
    "%aigc_positional --d-model 64 --positions 64 --caption off",
    "%%aigc_lens\nThe capital of France is",
    "%%aigc_attention --layers 0-2 --heads 0-3\nThe cat sat on the mat because it was tired.",
    LAB,
    "DenoiseView(denoising(new('diffusion').eval(), label=7, seed=3, steps=6))",
    "GanDiversityView(diversity(gan))",
]
VIEWS = [(1, ".aigc-next", "next-token"), (2, ".aigc-steps", "attention-steps"),
         (3, ".aigc-pe", "positional-encoding"), (4, ".aigc-lens", "logit-lens"), (5, ".aigc-attn", "attention"),
         (6, ".aigc-latent", "latent-map"), (7, ".aigc-denoise", "denoising"), (8, ".aigc-gandiv", "gan-diversity")]


def exports_dir() -> Path:
    folder = Path(os.environ.get("AIGC_TEST_OUT", shots_dir().parent)) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def download(page, button, path: Path) -> bytes:
    with page.expect_download(timeout=60000) as info:
        button.click()
    info.value.save_as(path)
    return path.read_bytes()


def not_blank(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    pixels = np.asarray(picture.convert("RGB"))
    assert picture.format == "PNG" and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16
    assert (pixels < 160).any(axis=2).mean() > 0.005, "something dark is drawn"
    return picture


def test_every_view_saves_png_and_svg_with_its_caption(page, lab, lab_root):
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"{error} {error.stack}"))
    page.on("console", lambda msg: msg.type == "error" and re.search(r"aigc|anywidget|render|save", msg.text, re.I)
            and problems.append(msg.text))
    outside: list[str] = []
    page.on("request", lambda request: request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
            or outside.append(request.url))
    open_notebook(page, lab, write_notebook(lab_root, "export.ipynb", CELLS))
    run_all(page)
    for index, selector, _ in VIEWS:
        cell(page, index).locator(selector).first.wait_for(timeout=LONG)
    wait_idle(page, LONG)
    page.wait_for_timeout(1000)

    # what the view shows now: the next-token explorer at temperature 0.5
    nxt = cell(page, 1).locator(".aigc-next").first
    temperature = nxt.locator("input[type=range]").first
    page.evaluate(SET_VALUE, [temperature.element_handle(), 0.5])
    page.wait_for_timeout(300)
    entropy = nxt.locator(".aigc-next-entropy").inner_text()

    sizes = {}
    for index, selector, name in VIEWS:
        view = cell(page, index).locator(selector).first
        view.scroll_into_view_if_needed()
        caption = view.locator(".aigc-caption")
        if name == "positional-encoding":
            assert caption.is_hidden(), "--caption off hides it"
        else:
            assert caption.is_visible() and len(caption.inner_text()) > 30, name
        shot(page, f"export-view-{name}", view)
        png = download(page, view.locator(".aigc-export-png"), exports_dir() / f"{name}.png")
        picture = not_blank(png)
        box = view.bounding_box()
        assert abs(picture.width - 2 * box["width"]) <= 4, (name, picture.width, box)
        svg = download(page, view.locator(".aigc-export-svg"), exports_dir() / f"{name}.svg").decode("utf-8")
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg", name
        body = root.find("{http://www.w3.org/2000/svg}foreignObject")
        assert body is not None and len(body) == 1, name
        assert "aigc-export" not in svg and ">PNG<" not in svg, "the save buttons are left out"
        text = "".join(body.itertext())
        if name != "positional-encoding":
            assert caption.inner_text().strip()[:40] in text, name
        sizes[name] = (picture.size, len(svg))
        if name == "next-token":
            assert entropy in text and 'value="0.5"' in svg, "the picture is the view as it is now"
        if name in ("attention", "latent-map", "denoising", "gan-diversity", "positional-encoding"):
            assert "<img" in svg and "data:image/png;base64," in svg, f"{name}: canvases and pictures inline"
        assert view.locator(".aigc-export-note").inner_text() == "", name
    assert problems == [] and outside == [], (problems, outside)
    print("AIGC_SIZES", sizes)
