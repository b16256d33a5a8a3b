"""The %%gpt widget in a real JupyterLab, driven in headless Chromium, on examples/02_prompt_lab.ipynb."""

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def test_stream_stop_controls_compare_logprobs(page, lab):
    open_notebook(page, lab, "02_prompt_lab.ipynb")
    run_all(page)
    story = cell(page, 1)
    running = story.locator(".aigc-column[data-status='running'] .aigc-md")
    running.wait_for(timeout=120000)
    page.wait_for_function(
        "el => el.textContent.trim().length > 20",
        arg=running.element_handle(), timeout=60000)
    assert story.locator(".aigc-column[data-status='running']").count() == 1, "text shows before the end"
    shot(page, "gpt-streaming", story)
    story.locator(".aigc-stop").click()
    story.locator(".aigc-column[data-status='stopped']").wait_for(timeout=30000)
    stopped_text = story.locator(".aigc-md").inner_text()
    assert len(stopped_text.strip()) > 20 and "stopped" in story.locator(".aigc-footer").inner_text()
    shot(page, "gpt-stopped", story)

    wait_idle(page)
    compare = cell(page, 2)
    compare.locator(".aigc-column[data-status='done']").nth(1).wait_for(timeout=120000)
    assert compare.locator(".aigc-column").count() == 2
    titles = compare.locator(".aigc-title").all_inner_texts()
    assert titles == ["temperature 0.0", "temperature 1.0"]
    shot(page, "gpt-compare", compare)

    logprobs = cell(page, 3)
    token = logprobs.locator(".aigc-token").first
    token.wait_for(timeout=120000)
    token.hover()
    tip = logprobs.locator(".aigc-tip")
    tip.wait_for(state="visible", timeout=5000)
    assert tip.locator("tr").count() == 6, "the token and its top-5 alternatives"
    shot(page, "gpt-logprobs-hover", logprobs)

    # change the seed control: the story regenerates in place with a different text
    seed = story.locator("input[data-control='seed']")
    seed.fill("12345")
    seed.dispatch_event("change")
    story.locator(".aigc-column[data-status='running']").wait_for(timeout=30000)
    story.locator(".aigc-column[data-status='done'], .aigc-column[data-status='stopped']").wait_for(timeout=180000)
    regenerated = story.locator(".aigc-md").inner_text()
    assert regenerated.strip() and regenerated != stopped_text
    assert "seed" not in story.locator(".aigc-error").inner_text()
    shot(page, "gpt-regenerated", story)
