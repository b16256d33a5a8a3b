"""The %%aigc_image gallery in JupyterLab on examples/04_images.ipynb: progress while denoising, then images."""

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_gallery_shows_progress_then_images(page, lab):
    open_notebook(page, lab, "04_images.ipynb")
    run_all(page)
    gallery = page.locator(".aigc-gallery").first
    page.locator(".aigc-gallery-item[data-status='running']").first.wait_for(timeout=180000)
    shot(page, "image-gallery-progress", gallery)
    page.locator(".aigc-gallery-item[data-status='done']").nth(2).wait_for(timeout=180000)
    assert gallery.locator(".aigc-gallery-item").count() == 3
    seeds = gallery.locator(".aigc-gallery-seed").all_inner_texts()
    assert [s.strip() for s in seeds] == ["seed 7", "seed 8", "seed 9"]
    size = gallery.locator("img").first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [128, 128]
    shot(page, "image-gallery-done", gallery)
    gallery.locator("img").first.click()
    page.locator(".aigc-gallery-zoom img").wait_for(timeout=5000)
    shot(page, "image-gallery-enlarged")
    page.locator(".aigc-gallery-zoom").click()
    wait_idle(page)
