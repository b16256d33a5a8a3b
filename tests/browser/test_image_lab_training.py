"""%aigc_train_image's live view in a real JupyterLab: the sample grid is redrawn while the model learns, the
loss charts grow, and Stop ends training and keeps a model that %%aigc_image then draws with."""

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_grid_changes_while_training_and_stop_keeps_a_model(page, lab, lab_root):
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    name = write_notebook(lab_root, "image_lab_training.ipynb", [
        "%load_ext jupyter_aigc",
        "%aigc_train_image --kind gan --name browser-gan --epochs 600 -o trained",
        "print('STATUS', trained.progress.status, trained.progress.step, trained.progress.total_steps)",
        "%%aigc_image -m browser-gan -n 4 --seed 1 --size 64x64\na handwritten 7",
    ])
    open_notebook(page, lab, name)
    run_all(page)
    view = page.locator(".aigc-train")
    view.wait_for(timeout=300000)
    page.wait_for_function("el => Number(el.dataset.grids || 0) >= 2", arg=view.element_handle(), timeout=300000)
    first = view.locator(".aigc-train-samples img").get_attribute("src")
    grids = int(view.get_attribute("data-grids"))
    page.wait_for_function(f"el => Number(el.dataset.grids) > {grids + 1}", arg=view.element_handle(), timeout=300000)
    assert view.locator(".aigc-train-samples img").get_attribute("src") != first, "the grid was redrawn"
    charts = view.locator("canvas.aigc-train-chart")
    assert charts.count() == 2 and {charts.nth(i).get_attribute("data-curve") for i in range(2)} == {
        "discriminator", "generator"}
    page.wait_for_function("c => Number(c.dataset.points || 0) >= 2", arg=charts.first.element_handle(),
                           timeout=300000)
    state = view.locator(".aigc-train-state").inner_text()
    assert "epoch" in state and "images/s" in state and "left" in state, state
    assert "one column per class (0, 1, 2" in view.locator(".aigc-train-caption").inner_text()
    shot(page, "image-lab-training", view)
    view.locator(".aigc-train-stop").click()
    page.wait_for_function("el => el.dataset.status === 'stopped'", arg=view.element_handle(), timeout=300000)
    wait_idle(page)
    status = page.locator(".jp-OutputArea-output", has_text="STATUS").inner_text()
    _, state, step, total = status.split()
    assert state == "stopped" and 0 < int(step) < int(total)
    drawn = page.locator(".jp-Notebook .jp-CodeCell").nth(3).locator(".aigc-gallery-item[data-status='done']")
    drawn.nth(3).wait_for(timeout=120000)
    assert drawn.count() == 4, "the model kept at Stop draws"
    shot(page, "image-lab-stopped", page.locator(".jp-Notebook").first)
    assert problems == []
