"""Every view renders with no network: the page may reach the local Jupyter server and nothing else (bertviz
was blank without its CDN). In JupyterLab and in Notebook 7, where the new views' buttons also give a PNG and a
well-formed SVG. Also: the attention of a generated answer
(%%gpt --attention: where the answer begins, and the Answer view, one row per generated token) and
%%aigc_next's presets on the sliders."""

import xml.etree.ElementTree as ET

import pytest

from browser.conftest import TOKEN, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (cell, the root of its view)
VIEWS = [
    ("%aigc_positional --d-model 16 --positions 24", ".aigc-pe"),
    ("%%aigc_next --temperature 0.7 --top-k 20 --top-p 0.9\nThe capital of France is", ".aigc-next"),
    ("%%aigc_lens\nThe capital of France is", ".aigc-lens"),
    ("%%aigc_attention --steps --layer 3 --head 2 --query it\nThe cat sat on the mat because it was tired.",
     ".aigc-steps"),
    ("%%gpt --temperature 0 --max-tokens 12 --attention\nWhat is the capital of France?", ".aigc-attn"),
    ("%%aigc_tokens\nTokenization splits unbelievable words.", ".aigc-tokens"),
    ("%%aigc_generate --strategy beam --num-beams 2 --steps 4\nThe capital of France is", ".aigc-gen"),
]


@pytest.mark.parametrize("frontend", ["lab", "notebook7"])
def test_every_view_renders_offline(page, lab, lab_root, frontend):
    outside: list[str] = []
    local = lab.rstrip("/")

    def route(route):
        if route.request.url.startswith(local) or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    errors: list[str] = []
    page.on("pageerror", lambda error: "aigc" in f"{error} {error.stack}" and errors.append(str(error)))
    name = write_notebook(lab_root, f"offline_{frontend}.ipynb", ["%load_ext jupyter_aigc"] + [c for c, _ in VIEWS])
    if frontend == "lab":
        page.goto(f"{lab}/lab/tree/{name}?token={TOKEN}&reset")
    else:
        page.goto(f"{lab}/notebooks/{name}?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
    page.wait_for_timeout(2000)
    run_all(page)
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    for index, (cell, root) in enumerate(VIEWS, start=1):
        view = cells.nth(index).locator(root).first
        view.wait_for(state="attached", timeout=600000)
        view.scroll_into_view_if_needed()
        view.wait_for(timeout=60000)
        box = view.bounding_box()
        assert box and box["height"] > 60 and box["width"] > 200, (cell, box)
    if frontend == "lab":
        wait_idle(page, 600000)

    sliders = cells.nth(2).locator(".aigc-next input[type=range]")
    assert [sliders.nth(i).input_value() for i in range(3)] == ["0.7", "20", "0.9"], "the presets start the sliders"
    attention = cells.nth(5).locator(".aigc-attn")
    attention.locator("button", has_text="Answer").click()
    rows = attention.locator("canvas.aigc-attn-answer[data-drawn=true]")
    rows.wait_for(timeout=60000)
    assert int(rows.get_attribute("data-rows")) >= 3, "one row per generated token"
    shot(page, f"offline-{frontend}-answer-attention", attention)
    for index in (5, 6, 7):  # the attention of an answer, tokens, generation: their buttons, offline
        view = cells.nth(index).locator(VIEWS[index - 1][1]).first
        view.scroll_into_view_if_needed()
        with page.expect_download(timeout=60000) as png:
            view.locator(".aigc-export-png").click()
        assert open(png.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n", index
        with page.expect_download(timeout=60000) as svg:
            view.locator(".aigc-export-svg").click()
        root = ET.parse(svg.value.path()).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", index
    assert not outside, f"requests outside the local server: {outside[:5]}"
    assert not errors, errors
    shot(page, f"offline-{frontend}", page.locator(".jp-Notebook").first)
