"""Every view leaves a static copy (its picture and its numbers): hidden while the live widget shows it in
JupyterLab, shown in the notebook saved and reopened with no widget state (what JupyterLab saves by default),
with no "model not found" line, and shown in `jupyter nbconvert --to html` of the saved notebook, with and
without `--execute`, opened with every network request blocked."""

import subprocess
import sys

import pytest

from browser.conftest import TOKEN, open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (cell, text in its static copy)
VIEWS = [
    ("%aigc_positional --d-model 16 --positions 24", "Sinusoidal positional encoding"),
    ("%%aigc_next\nThe capital of France is", "Next token after"),
    ("%%aigc_lens\nThe capital of France is", "Logit lens"),
    ("%%aigc_attention --steps --layer 3 --head 2 --query it\nThe cat sat on the mat because it was tired.",
     "Layer 3, head 2"),
    ("%%aigc_attention --layers 0-2\nThe cat sat on the mat.", "averaged"),
    ("%%aigc_tokens\nTokens are pieces.", "Tokens"),
    ("%%aigc_tokens --train 60\nthe cat sat on the mat, the cat sat", "A BPE vocabulary"),
    ("%%aigc_generate --strategy beam --num-beams 2 --steps 3\nThe capital of France is", "Beam search"),
    ("%%gpt --temperature 0 --max-tokens 8 --attention\nWhat is the capital of France?", "answer →"),
]
COPY = ".jp-OutputArea-child:has(.aigc-fallback)"
COPIES = """() => {
    return [...document.querySelectorAll('.jp-OutputArea-child')]
        .filter(child => child.querySelector('.aigc-fallback'))
        .map(child => ({cell: [...document.querySelectorAll('.jp-CodeCell, .jp-Cell')].indexOf(child.closest('.jp-CodeCell, .jp-Cell')),
                        visible: getComputedStyle(child).display !== 'none', text: child.textContent.slice(0, 2000),
                        pictures: [...child.querySelectorAll('img')].filter(img => img.complete && img.naturalWidth > 0).length}));
}"""


def shown_per_view(copies) -> list:
    """For each view's cell (1, 2, …), whether a copy of it is visible with its text and a picture drawn."""
    return [any(c["visible"] and text in c["text"] and c["pictures"] for c in copies if c["cell"] == index)
            for index, (_, text) in enumerate(VIEWS, start=1)]


def test_views_leave_static_copies_that_show_reopened_and_in_nbconvert(page, lab, lab_root, tmp_path):
    name = write_notebook(lab_root, "static_copies.ipynb", ["%load_ext jupyter_aigc"] + [cell for cell, _ in VIEWS])
    open_notebook(page, lab, name)
    run_all(page)
    wait_idle(page, 600000)
    page.locator(".aigc-lens").first.wait_for(state="attached", timeout=120000)
    live = page.evaluate(COPIES)
    assert len(live) == len(VIEWS) + 1, live  # %%gpt --attention: the answer's copy and the view's
    assert not any(copy["visible"] for copy in live), "while the widgets show, their copies are hidden"
    shot(page, "static-copies-live", page.locator(".jp-Notebook").first)

    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    for kernel in page.request.get(f"{lab}/api/kernels?token={TOKEN}").json():  # a new day: no kernel has the widgets
        page.request.delete(f"{lab}/api/kernels/{kernel['id']}?token={TOKEN}")
    page.goto(f"{lab}/lab/tree/{name}?token={TOKEN}&reset")  # reopened: outputs come from the file
    page.wait_for_selector(COPY, timeout=60000)
    page.wait_for_timeout(3000)  # the widget manager gives up on the missing models
    reopened = page.evaluate(COPIES)
    assert shown_per_view(reopened) == [True] * len(VIEWS), reopened
    errors = page.locator(".jp-OutputArea-output:visible", has_text="Error displaying widget")
    assert errors.count() == 0, "the copy stands in for the widget, with no error line"
    shot(page, "static-copies-reopened", page.locator(".jp-Notebook").first)

    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    for execute in ([], ["--execute"]):  # the notebook as saved, then run again by nbconvert in its own kernel
        source = tmp_path / f"export{len(execute)}.ipynb"
        source.write_bytes((lab_root / name).read_bytes())
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", *execute, "--to", "html", str(source)],
                       check=True, capture_output=True, timeout=600)
        page.goto(source.with_suffix(".html").as_uri())
        page.wait_for_timeout(1500)
        exported = page.evaluate(COPIES)
        assert shown_per_view(exported) == [True] * len(VIEWS), (execute, exported)
        assert "object at 0x" not in page.inner_text("body"), "no Python repr stands in for a widget"
        shot(page, "static-copies-nbconvert" + "-execute" * len(execute))
