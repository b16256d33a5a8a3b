"""Notebook 7 (the `notebook` package, served by the same Jupyter server): the %%gpt widget streams and
the extension's prompt-cell highlighting and insert command work there too (it has no status bar)."""

import pytest

from browser.conftest import TOKEN, run_all, shot, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_gpt_widget_and_extension_in_notebook7(page, lab, lab_root):
    problems: list[str] = []  # Notebook 7.6 itself throws one settings error on load: only ours count
    page.on("pageerror", lambda error: "aigc" in f"{error} {error.stack}" and problems.append(str(error)))
    name = write_notebook(lab_root, "notebook7.ipynb", [
        "%load_ext jupyter_aigc",
        "%%gpt --temperature 0 --max-tokens 16\nWhat is the capital of France? Answer in one sentence.",
    ])
    page.goto(f"{lab}/notebooks/{name}?token={TOKEN}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    assert cells.nth(1).locator(".cm-aigc-magic").inner_text() == "%%gpt"
    page.locator("[data-command='jupyter-aigc:insert-gpt-cell']").first.wait_for(timeout=30000)

    run_all(page)
    answer = cells.nth(1).locator(".aigc-column[data-status='done'] .aigc-md")
    answer.wait_for(timeout=240000)
    assert "Paris" in answer.inner_text()
    assert "tok/s" in cells.nth(1).locator(".aigc-footer").inner_text()
    shot(page, "notebook7-gpt", cells.nth(1))

    cells.nth(1).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.locator("[data-command='jupyter-aigc:insert-gpt-cell']").first.click()
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === 3")
    assert cells.nth(2).locator(".cm-aigc-magic").inner_text() == "%%gpt"
    shot(page, "notebook7-page")
    assert not problems, problems
