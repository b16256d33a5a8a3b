"""The image lab's teaching views in a real JupyterLab and headless Chromium, on models trained by
%aigc_train_image in the notebook: dragging the latent point decodes in the browser (the VAE's own decode, with no
comm message), the denoising slider and thumbnails show the model's DDIM steps, the diversity slider walks the
GAN's sample grids."""

import json
import re

import numpy as np
import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook
from browser.test_teaching import DRAWN, CommFrames, set_slider

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LONG = 600000
STEPS = 30


def cells(cache) -> list[str]:
    return [
        f"import os\nos.environ['JUPYTER_AIGC_CACHE'] = {str(cache)!r}\n%load_ext jupyter_aigc",
        "%aigc_train_image --kind vae --data digits --name lab_vae --epochs 30",
        "%aigc_train_image --kind gan --data digits --name lab_gan --epochs 40",
        "%aigc_train_image --kind diffusion --data digits --name lab_diffusion --epochs 4",
        "import jupyter_aigc\nfrom jupyter_aigc.tasks import lab_lessons\nsession = jupyter_aigc.get_session()\n"
        "lab_lessons.latent_map_view(session, 'lab_vae', digit='seven')",
        f"lab_lessons.denoising_view(session, 'lab_diffusion', prompt='a handwritten 7', seed=0, steps={STEPS})",
        "lab_lessons.gan_diversity_view(session, 'lab_gan')",
    ]


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def grey(canvas) -> list[int]:
    """The red channel of every pixel of a canvas drawn at its own resolution."""
    return canvas.evaluate("""c => {
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from({length: c.width * c.height}, (_, i) => data[4 * i]);
    }""")


def test_image_lab_views(page, lab, lab_root):
    import torch

    from jupyter_aigc.engines.lab_models import LabModel
    from jupyter_aigc.tasks.lab_lessons import denoising

    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"{error} {error.stack}"))
    page.on("console", lambda msg: msg.type == "error" and re.search(r"aigc|anywidget|render", msg.text, re.I)
            and problems.append(msg.text))
    comms = CommFrames(page)
    cache = lab_root / "image-lab-cache"
    open_notebook(page, lab, write_notebook(lab_root, "image_lab_views.ipynb", cells(cache)))
    run_all(page)
    for index, root in ((4, ".aigc-latent"), (5, ".aigc-denoise"), (6, ".aigc-gandiv")):
        cell(page, index).locator(root).first.wait_for(timeout=LONG)
    wait_idle(page, LONG)
    folder = cache / "image_lab"

    # ---- latent map: the dragged point is decoded in the browser, with the VAE's own weights
    latent = cell(page, 4).locator(".aigc-latent")
    plane, decoded = latent.locator(".aigc-latent-plane"), latent.locator(".aigc-latent-decoded")
    assert plane.get_attribute("data-label") == "7" and latent.locator("select").input_value() == "7"
    assert plane.evaluate(DRAWN) > 100000
    vae = LabModel.load(folder / "lab_vae")

    def decoded_matches(label: int) -> list[float]:
        z = json.loads(decoded.get_attribute("data-z"))
        pixels = np.array(json.loads(decoded.get_attribute("data-pixels")))
        with torch.no_grad():
            expected = vae.modules["vae"].decode(torch.tensor([z], dtype=torch.float32), torch.tensor([label]))
        assert np.abs(pixels - expected[0].numpy()).max() < 1e-5, "the browser's decoder is the VAE's"
        assert grey(decoded) == pytest.approx(np.round(255 * np.clip(pixels, 0, 1)).tolist(), abs=1)
        return z

    assert decoded_matches(7) == [0, 0]
    sent = len(comms)
    cell(page, 4).scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 300)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + 100 + 20 * step, box["y"] + 300 - 22 * step)
    page.mouse.up()
    page.wait_for_timeout(300)
    z = decoded_matches(7)
    assert z[0] > 0.5 and z[1] > 0.5, z
    assert re.search(r"z = \(\d\.\d\d, \d\.\d\d\) · class 7", latent.locator(".aigc-latent-z").inner_text())
    shot(page, "lab-latent-map", cell(page, 4))
    tiles = plane.evaluate("c => c.toDataURL()")
    latent.locator("select").select_option("3")
    page.wait_for_function("el => el.dataset.label === '3'", arg=plane.element_handle(), timeout=5000)
    page.wait_for_timeout(300)
    assert plane.evaluate("c => c.toDataURL()") != tiles
    assert decoded_matches(3) == z
    latent.locator(".aigc-latent-chip[data-label='1']").click()
    page.wait_for_timeout(300)
    assert decoded_matches(1) == z
    page.wait_for_timeout(500)
    assert len(comms) == sent, f"the latent map sent {len(comms) - sent} comm messages: {comms.frames[sent:]}"
    shot(page, "lab-latent-map-class-1", cell(page, 4))

    # ---- denoising: the slider and thumbnails show the model's own DDIM steps, with no message
    steps = denoising(LabModel.load(folder / "lab_diffusion"), label=7, seed=0, steps=STEPS)
    view = cell(page, 5).locator(".aigc-denoise")
    slider = view.locator("input[data-control='step']")
    assert view.get_attribute("data-step") == str(STEPS) and view.get_attribute("data-timestep") == "done"
    assert view.locator(".aigc-denoise-thumb").count() == 2 * STEPS + 1
    sent = len(comms)
    for k in (0, 1, 10, STEPS - 1, STEPS):
        set_slider(page, slider, k)
        assert view.get_attribute("data-step") == str(k)
        shown = grey(view.locator(".aigc-denoise-xt"))
        assert shown == pytest.approx(np.round(255 * np.clip(steps.xt[k], 0, 1)).ravel().tolist(), abs=1)
        if k < STEPS:
            assert view.get_attribute("data-timestep") == str(steps.timesteps[k])
            assert f"timestep t = {steps.timesteps[k]}" in view.locator(".aigc-denoise-where").inner_text()
            guess = grey(view.locator(".aigc-denoise-x0"))
            assert guess == pytest.approx(np.round(255 * np.clip(steps.x0[k], 0, 1)).ravel().tolist(), abs=1)
        if k == 10:
            shot(page, "lab-denoise-step-10", cell(page, 5))
    view.locator(".aigc-denoise-thumb[data-step='5']").first.click()
    assert view.get_attribute("data-step") == "5"
    page.wait_for_timeout(500)
    assert len(comms) == sent, "the denoising slider sent nothing to the kernel"
    set_slider(page, slider, STEPS)
    shot(page, "lab-denoise-done", cell(page, 5))

    # ---- GAN diversity: the chart, the reference line's words, the snapshot slider
    gan = cell(page, 6).locator(".aigc-gandiv")
    assert gan.locator(".aigc-gandiv-chart").evaluate(DRAWN) > 5000
    assert "mode collapse" in gan.locator(".aigc-lab-note").inner_text()
    assert gan.locator(".aigc-gandiv-verdict").inner_text().strip()
    snapshots = gan.locator("input[data-control='snapshot']")
    last = int(snapshots.get_attribute("max"))
    assert last >= 3
    picture = gan.locator(".aigc-gandiv-grid")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle(), timeout=5000)
    late_epoch, late_src = picture.get_attribute("data-epoch"), picture.get_attribute("src")
    sent = len(comms)
    set_slider(page, snapshots, 0)
    assert float(picture.get_attribute("data-epoch")) < float(late_epoch)
    assert picture.get_attribute("src") != late_src
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle(), timeout=5000)
    shot(page, "lab-gan-diversity-first", cell(page, 6))
    set_slider(page, snapshots, last)
    page.wait_for_timeout(500)
    assert len(comms) == sent, "the snapshot slider sent nothing to the kernel"
    shot(page, "lab-gan-diversity", cell(page, 6))
    assert not problems, problems
