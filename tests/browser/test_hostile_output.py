"""No script from a model or a server ever runs: live in JupyterLab, after saving and reopening, and in
nbconvert's HTML. The hostile OpenAI-compatible server (tests/hostile_server.py) streams script, style and
event-handler markup; the real default model is asked to repeat an <img onerror> line (the original report).
"""

import nbformat
import pytest
from nbconvert import HTMLExporter

from browser.conftest import TOKEN, open_notebook, run_all, shot, wait_idle, write_notebook
from hostile_server import HostileServer, dangerous_markup

pytestmark = [pytest.mark.browser, pytest.mark.slow]
IMG = '<img src=x onerror="window.__aigc_xss=99">'
FLAGS = "[window.__aigc_xss, window.__x, getComputedStyle(document.body).display]"


@pytest.fixture(scope="module")
def hostile():
    with HostileServer() as server:
        yield server


def outputs_html(page) -> str:
    """What the outputs show of model and server text: the widget's answer parts, HTML copies, stderr."""
    parts = ".aigc-md, .aigc-error, .aigc-footer, .aigc-title, .jp-RenderedHTML, .jp-RenderedText"
    return "".join(page.locator(f".jp-OutputArea-output :is({parts})").evaluate_all("els => els.map(e => e.innerHTML)"))


def test_model_and_server_markup_never_runs(page, lab, lab_root, hostile, tmp_path):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    name = write_notebook(lab_root, "hostile.ipynb", [
        "%load_ext jupyter_aigc",
        f"%%gpt -m xss --base-url {hostile.url}\nsay hi",
        f"%%gpt --raw --temperature 0 --max-tokens 40\n{IMG}\n{IMG}\n{IMG}",
        "%config AigcConfig.widget = False",
        f"%%gpt -m xss --base-url {hostile.url}\nsay hi, without the widget",
        f"%%gpt -m xss-error --base-url {hostile.url}\nfail with markup",
    ])
    open_notebook(page, lab, name)
    run_all(page)
    page.locator(".jp-OutputArea-output", has_text="refused the request").first.wait_for(timeout=240000)
    wait_idle(page)
    assert page.evaluate(FLAGS) == [None, None, "block"], "no handler ran and the page is not blanked"
    assert dialogs == []
    html = outputs_html(page)
    assert dangerous_markup(html) == [], "no live markup from the model in any output"
    assert "window.__aigc_xss=1" in html, "the markup is shown as text"
    shot(page, "hostile-live", page.locator(".jp-Notebook").first)

    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    saved = nbformat.read(lab_root / name, as_version=4)
    for cell in saved.cells:
        for output in cell.get("outputs", []):
            assert dangerous_markup(output.get("data", {}).get("text/html", "")) == []

    page.goto(f"{lab}/lab/tree/{name}?token={TOKEN}&reset")  # reopened: outputs come from the file
    page.locator(".jp-OutputArea-output", has_text="window.__aigc_xss=1").first.wait_for(timeout=60000)
    page.wait_for_timeout(1000)
    assert page.evaluate(FLAGS) == [None, None, "block"]
    assert dangerous_markup(outputs_html(page)) == []
    shot(page, "hostile-reopened", page.locator(".jp-Notebook").first)

    exported, _ = HTMLExporter().from_notebook_node(saved)
    export = tmp_path / "hostile.html"
    export.write_text(exported)
    page.goto(export.as_uri())
    page.wait_for_timeout(1500)
    assert page.evaluate(FLAGS) == [None, None, "block"] and dialogs == []
    assert "window.__aigc_xss=1" in page.content()
    shot(page, "hostile-nbconvert")
