"""The JupyterLab extension (labextension/) in a real JupyterLab, driven in headless Chromium.

Covers: the extension is loaded; a %%gpt cell's body is highlighted as Markdown and a Python cell is not;
the status bar shows the default model and its device after a %%gpt cell; Evict in the cache panel frees
it in the kernel; the insert and attention commands (toolbar, keyboard shortcuts).
"""

import json

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GPT_CELL = "%%gpt --temperature 0 --max-tokens 12\n# Answer in one word\nWhat animal is **{topic}** about?"
PYTHON_CELL = "# a comment\nx = {topic}  # a set, not a placeholder\nprint('cached models:', len(get_session().cache))"


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def command_mode_on(page, index: int) -> None:
    """Select cell ``index`` in command mode, as a click on its prompt and Escape do."""
    cell(page, index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")


def test_editor_status_bar_evict_and_commands(page, lab, lab_root):
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and "aigc" in msg.text.lower() and problems.append(msg.text))
    name = write_notebook(lab_root, "labextension.ipynb", [
        "topic = 'cats'\nfrom jupyter_aigc import get_session",
        "%load_ext jupyter_aigc",
        GPT_CELL,
        PYTHON_CELL,
    ])
    open_notebook(page, lab, name)

    config = json.loads(page.locator("#jupyter-config-data").text_content())
    assert "jupyter-aigc" in [e["name"] for e in config["federated_extensions"]]
    toolbar = page.locator(".jp-NotebookPanel-toolbar")
    toolbar.locator("[data-command='jupyter-aigc:insert-gpt-cell']").wait_for(timeout=30000)

    prompt, python = cell(page, 2), cell(page, 3)
    assert prompt.locator(".cm-aigc-magic").inner_text() == "%%gpt"
    assert prompt.locator(".cm-aigc-flag").all_inner_texts() == ["--temperature", "--max-tokens"]
    assert prompt.locator(".tok-heading").count() > 0, "'# Answer…' is a Markdown heading"
    assert "**{topic}**" == "".join(prompt.locator(".cm-line", has_text="animal").locator(".tok-strong").all_inner_texts())
    assert prompt.locator(".cm-aigc-placeholder").inner_text() == "{topic}"
    assert python.locator("[class*='tok-'], [class*='cm-aigc']").count() == 0, "Python cells are untouched"
    assert python.locator(".cm-line").first.inner_text() == "# a comment"
    shot(page, "labext-prompt-cell", prompt)

    status = page.locator(".jp-aigc-StatusItem")
    assert status.count() == 0 or not status.is_visible(), "nothing shows before %load_ext"

    run_all(page)
    wait_idle(page)
    status.wait_for(state="visible", timeout=60000)
    label = page.locator(".jp-aigc-StatusItem-label")
    page.wait_for_function("el => el.textContent.includes('tok/s')", arg=label.element_handle(), timeout=120000)
    text = label.inner_text()
    assert "SmolLM2-135M-Instruct" in text and "cpu" in text, text
    assert "cached models: 1" in python.locator(".jp-OutputArea-output").inner_text()
    shot(page, "labext-status-bar", page.locator(".jp-StatusBar-Widget"))

    status.click()
    panel = page.locator(".jp-aigc-CachePanel")
    panel.wait_for(timeout=10000)
    row = panel.locator("tr", has_text="SmolLM2-135M-Instruct")
    assert "cpu" in row.inner_text()
    shot(page, "labext-cache-panel", panel)
    row.locator("button.jp-aigc-evict").click()
    panel.get_by_text("No model is loaded").wait_for(timeout=30000)
    page.wait_for_function("el => el.textContent.includes('no model loaded')", arg=label.element_handle(),
                           timeout=30000)
    page.keyboard.press("Escape")

    command_mode_on(page, 3)
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("el => el.innerText.includes('cached models: 0')",
                           arg=python.locator(".jp-OutputArea").element_handle(), timeout=60000)

    before = page.locator(".jp-Notebook .jp-Cell").count()
    command_mode_on(page, 3)
    toolbar.locator("[data-command='jupyter-aigc:insert-gpt-cell']").click()
    page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === {before + 1}")
    inserted = cell(page, 4)
    assert inserted.locator(".cm-aigc-magic").inner_text() == "%%gpt"
    assert "jp-mod-active" in (inserted.get_attribute("class") or "")
    page.keyboard.type("Name a colour.")
    assert inserted.locator(".cm-content").inner_text().startswith("%%gpt\nName a colour.")

    command_mode_on(page, 4)
    page.keyboard.press("g")
    page.keyboard.press("i")
    image = cell(page, 5)
    image.locator(".cm-aigc-magic").wait_for(timeout=10000)
    assert image.locator(".cm-aigc-magic").inner_text() == "%%aigc_image"

    command_mode_on(page, 2)
    page.keyboard.press("g")
    page.keyboard.press("a")
    attention = cell(page, 3)
    attention.locator(".cm-aigc-magic").wait_for(timeout=10000)
    assert attention.locator(".cm-content").inner_text().startswith(
        "%%aigc_attention\n# Answer in one word\nWhat animal is **{topic}** about?")
    attention.locator("canvas.aigc-attn-grid[data-drawn='true']").wait_for(timeout=240000)
    shot(page, "labext-commands", page.locator(".jp-NotebookPanel"))

    page.click(".lm-MenuBar-itemLabel:text-is('Kernel')")
    page.click(".lm-Menu-item[data-command='kernelmenu:restart']")
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    status.wait_for(state="hidden", timeout=30000)  # the restarted kernel has not loaded the extension
    assert not problems, problems
