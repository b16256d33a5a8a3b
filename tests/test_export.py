"""Export, for slides: every teaching view and the attention view save an SVG and a PNG from a shell with no
browser; captions show, hide and go into the static copy and the pictures; bad paths are one line."""

import base64
import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from jupyter_aigc.views.figure import Figure
from jupyter_aigc.views.widgets.teaching import PositionalView

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'Say <script>alert(1)</script> & "x" \x1b[31m sk-proj-abcdefghijklmnopqrstuvwxyz0123456789'


def check_svg(path) -> ET.Element:
    """A well-formed SVG with a size and something drawn; every picture in it is an inline PNG."""
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg" and float(root.get("width")) > 0 and float(root.get("height")) > 0
    assert len(root) > 2
    for image in root.iter(SVG + "image"):
        assert image.get("href").startswith("data:image/png;base64,")
    return root


def check_png(path) -> Image.Image:
    """A PNG that PIL opens, not blank: many colours, and not nearly all background."""
    picture = Image.open(path)
    picture.load()
    assert picture.format == "PNG" and picture.width > 100 and picture.height > 50
    pixels = np.asarray(picture.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8
    assert (pixels < 200).any(axis=2).mean() > 0.01, "something dark is drawn"
    return picture


def svg_text(root: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))


def saved(view, folder, name: str):
    """Both pictures of ``view``: the parsed SVG and the PNG."""
    svg, png = view.save(folder / f"{name}.svg"), view.save(folder / f"{name}.png")
    assert svg == folder / f"{name}.svg" and png.exists()
    return check_svg(svg), check_png(png)


def test_figure_escapes_and_masks_outside_text(tmp_path):
    fig = Figure(320, 120, title=HOSTILE)
    fig.text(10, 60, HOSTILE, mono=True).rect(10, 70, 100, 20, fill="#1976d2").line(0, 100, 320, 100)
    fig.heatmap(200, 60, np.arange(12).reshape(3, 4), 60, 40, mid="#ffffff", low="#2166ac", high="#b2182b")
    fig.image(130, 60, np.random.default_rng(0).random((8, 8)), 40, 40)
    svg = fig.captioned(HOSTILE).svg()
    root = ET.fromstring(svg)
    assert "<script" not in svg and "abcdefghijklmnopqrstuvwxyz0123456789" not in svg and "\x1b" not in svg
    assert "<script>alert(1)</script>" in svg_text(root) and "\\x1b" in svg_text(root), "shown as text"
    (tmp_path / "f.png").write_bytes(fig.png())
    assert Image.open(tmp_path / "f.png").size == (640, 240), "twice the CSS size, for projectors"


def test_positional_view_saves_both_with_its_caption_and_without(tmp_path):
    view = PositionalView(64, 128)
    root, png = saved(view, tmp_path, "pe")
    assert view.caption and view.caption.split()[0] in svg_text(root)
    assert view.caption.split()[0] in view.static_bundle()["text/html"]
    bare = PositionalView(64, 128, caption=False)
    assert bare.caption == "" and 'class="aigc-caption"' not in bare.static_bundle()["text/html"]
    root_bare, png_bare = saved(bare, tmp_path, "pe-bare")
    assert float(root_bare.get("height")) < float(root.get("height")) and png_bare.height < png.height
    own = PositionalView(64, 128, caption="Look at the <diagonal>")
    assert "Look at the <diagonal>" in svg_text(check_svg(own.save(tmp_path / "own.svg")))
    assert "Look at the &lt;diagonal&gt;" in own.static_bundle()["text/html"]


def copy_pictures(view) -> list:
    """The PNG pictures in ``view``'s static copy, opened."""
    html = view.static_bundle()["text/html"]
    return [Image.open(io.BytesIO(base64.b64decode(part.split('"', 1)[0])))
            for part in html.split(' src="data:image/png;base64,')[1:]]


def test_the_static_copy_shows_the_views_picture_before_its_numbers():
    view = PositionalView(16, 24)
    pictures = copy_pictures(view)
    figure = view.figure()
    assert [p.size for p in pictures] == [(figure.width, figure.height)], "the default picture at CSS size"
    assert np.array_equal(np.asarray(pictures[0].convert("RGB")),
                          np.asarray(Image.open(io.BytesIO(figure.png(scale=1))).convert("RGB")))
    html = view.static_bundle()["text/html"]
    assert html.index("<img") < html.index("Sinusoidal positional encoding</strong>")


@pytest.mark.parametrize("name, fix", [
    ("pe.jpg", "Give a path ending in .svg or .png."),
    ("pe", "Give a path ending in .svg or .png."),
    ("missing/pe.svg", "Choose a folder that exists"),
    ("file.txt/pe.png", "Choose a folder that exists"),
])
def test_bad_paths_are_one_line_with_the_fix(shell, tmp_path, name, fix, capsys):
    from IPython.core.error import UsageError

    (tmp_path / "file.txt").write_text("not a folder")
    with pytest.raises(UsageError) as error:  # shown by IPython as one line, as a magic's error
        PositionalView(16, 8).save(tmp_path / name)
    assert fix in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / name).exists()
    shell.user_ns["view"] = PositionalView(16, 8)
    result = shell.run_cell(f"view.save({str(tmp_path / name)!r})")
    err = capsys.readouterr().err
    assert not result.success and fix in err and "Traceback" not in err, err


def test_image_lab_views_save_their_pictures(tmp_path):
    from test_image_lab_lessons import grid_png, history_with, new_model

    from jupyter_aigc.tasks.lab_lessons import denoising, diversity, latent_map
    from jupyter_aigc.views.widgets.image_lab_lessons import DenoiseView, GanDiversityView, LatentMapView

    gan = new_model("gan")
    gan.info.history = history_with([0.9, 0.6, 0.3], grid_png(np.random.default_rng(0).random((20, 8, 8)), 10))
    views = {"latent": LatentMapView(latent_map(new_model("vae"))),
             "denoise": DenoiseView(denoising(new_model("diffusion").eval(), label=7, seed=3, steps=6)),
             "gan": GanDiversityView(diversity(gan))}
    for name, view in views.items():
        root, _ = saved(view, tmp_path, name)
        assert view.caption and view.caption.split()[0] in svg_text(root), name
        assert len(list(root.iter(SVG + "image"))) >= 1, name


@pytest.mark.slow
def test_model_views_save_svg_and_png_and_magics_hide_captions(shell, tmp_path):
    import jupyter_aigc

    views = {"next": jupyter_aigc.next_token_view(HOSTILE + " The capital of France is"),
             "steps": jupyter_aigc.attention_steps("The cat sat on the mat because it was tired.", 3, 2, "it"),
             "lens": jupyter_aigc.logit_lens("The capital of France is"),
             "attention": jupyter_aigc.attention_view("The cat sat on the mat.", layers="0-2", heads="0-3"),
             "rotary": jupyter_aigc.positional_encoding(32, 48, model="SmolLM2-135M-Instruct")}
    texts = {}
    for name, view in views.items():
        assert len(copy_pictures(view)) == 1, f"{name}: one picture in the static copy"
        root, _ = saved(view, tmp_path, name)
        texts[name] = svg_text(root)
        assert view.caption and view.caption.split()[-1] in texts[name], name
    assert "Paris" in texts["next"] and "Paris" in texts["lens"]
    cut = "Say sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 and" + " more words" * 16  # the copy shows its end
    copy = jupyter_aigc.next_token_view(cut).static_bundle()["text/html"]
    assert "more words" in copy and "0123456789" not in copy, "masked, then cut: no half key escapes the mask"
    entropy = views["next"].static_html().split("entropy ", 1)[1].split(" bits", 1)[0]
    assert f"entropy {entropy} bits" in texts["next"], "the picture's entropy is the whole distribution's"
    assert "<script>" in texts["next"] and "abcdefghijklmnopqrstuvwxyz0123456789" not in texts["next"]
    assert "masked" in texts["steps"] and "it" in texts["steps"]
    assert "H3" in texts["attention"] and "roll" in texts["attention"]
    attention = ET.parse(tmp_path / "attention.svg").getroot()
    assert len(list(attention.iter(SVG + "image"))) == 3 * 4 + 3 + 1, "every head, each layer's mean, the rollout"
    assert jupyter_aigc.logit_lens("Hi", caption=False).caption == ""

    for cell in ("%%aigc_next --caption off -o v\nThe capital of France is",
                 "%%aigc_lens --caption off -o v\nThe capital of France is",
                 "%%aigc_attention --layers 0 --heads 0 --caption off -o v\nThe cat sat.",
                 "%%aigc_attention --steps --layer 0 --head 0 --caption off -o v\nThe cat sat.",
                 "%aigc_positional --d-model 16 --positions 8 --caption off -o v"):
        shell.user_ns.pop("v", None)
        assert shell.run_cell(cell).success, cell
        view = shell.user_ns["v"]
        assert view.caption == "" and 'class="aigc-caption"' not in view.static_bundle()["text/html"], cell
        assert type(view).caption_text[:20] not in svg_text(check_svg(view.save(tmp_path / "bare.svg"))), cell
    assert shell.run_cell("%%aigc_lens -o v\nHi").success and shell.user_ns["v"].caption
    result = shell.run_cell("%%aigc_lens --caption maybe\nHi")
    assert not result.success
