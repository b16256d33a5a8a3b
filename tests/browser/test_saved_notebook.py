"""A notebook executed headless, saved and then opened in JupyterLab without running it shows the answer."""

import nbformat
import pytest
from nbclient import NotebookClient

from browser.conftest import TOKEN, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_reopened_notebook_shows_the_last_answer(page, lab, lab_root):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("%load_ext jupyter_aigc"),
                nbformat.v4.new_code_cell("%%gpt --temperature 0 --max-tokens 24\nWhat is the capital of France?")]
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    nbformat.write(nb, lab_root / "saved_answer.ipynb")
    page.goto(f"{lab}/lab/tree/saved_answer.ipynb?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60000)
    answer = page.locator(".jp-OutputArea-output:visible", has_text="The capital of France is Paris")
    answer.first.wait_for(timeout=60000)
    assert page.locator(".jp-InputPrompt", has_text="[*]").count() == 0, "nothing was run"
    shot(page, "saved-notebook-reopened", page.locator(".jp-Notebook").first)
