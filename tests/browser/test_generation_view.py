"""%%aigc_generate in a real JupyterLab, in headless Chromium, on the real default model: the beam tree is drawn
from the data sent once and explored (clicking boxes, stepping) with no message to the kernel; the tree's marks
are the kernel's; three strategies sit side by side; the key/value cache formula is shown; token strings are text."""

import json
import re
import xml.etree.ElementTree as ElementTree

import pytest

from browser.conftest import open_notebook, run_all, shot, shots_dir, wait_idle, write_notebook
from browser.test_teaching import CommFrames, cell

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__aigc_xss=1">'
CELLS = [
    "%load_ext jupyter_aigc",
    "%%aigc_generate --strategy beam --num-beams 3 --steps 6 -o b\nThe capital of France is",
    "%%aigc_generate --compare greedy,sample,beam --steps 5 --seed 1 -o c\nThe capital of France is",
    f"%%aigc_generate --steps 3\nShe wrote {XSS} and the page",
    "import json\n"
    "print('AIGC_REF=' + json.dumps({'status': [n['status'] for n in b.trace.nodes],\n"
    "    'final': [bm['node'] for bm in b.beams], 'greedy': c.traces[0].tokens}))",
]
LONG = 600000


def test_generation_view(page, lab, lab_root):
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"{error} {error.stack}"))
    page.on("console", lambda msg: msg.type == "error" and re.search(r"aigc|anywidget|render", msg.text, re.I)
            and problems.append(msg.text))
    comms = CommFrames(page)
    name = write_notebook(lab_root, "generation.ipynb", CELLS)
    open_notebook(page, lab, name)
    run_all(page)
    for index in (1, 2, 3):
        cell(page, index).locator(".aigc-gen .aigc-gen-run").first.wait_for(timeout=LONG)
    wait_idle(page, LONG)
    output = cell(page, 4).locator(".jp-OutputArea-output").filter(has_text="AIGC_REF=").first
    output.wait_for(timeout=LONG)
    ref = json.loads(output.inner_text().split("AIGC_REF=", 1)[1].strip())

    # ---- the beam tree: every candidate of every step, marked as the kernel recorded it
    beam = cell(page, 1).locator(".aigc-gen-run[data-strategy='beam']")
    boxes = beam.locator("g.aigc-gen-node[data-node]")
    assert boxes.count() == 6 * 6, "6 steps × 2·3 candidates"
    assert boxes.evaluate_all("els => els.map(e => e.dataset.status)") == ref["status"]
    assert "pruned" in ref["status"] and "kept" in ref["status"]
    finals = beam.locator("g.aigc-gen-final")
    assert sorted(int(n) for n in finals.evaluate_all("els => els.map(e => e.dataset.node)")) == sorted(ref["final"])
    assert beam.locator(".aigc-gen-finals tr.aigc-gen-final-row").count() == 3
    formula = beam.locator(".aigc-gen-formula").inner_text()
    assert "2 × 30 layers × 3 key/value heads × 64" in formula and "× 3 beams" in formula, formula
    assert "✓" in beam.locator(".aigc-gen-measured").inner_text()
    assert beam.locator(".aigc-gen-chart .aigc-gen-bar-cached").count() == 6
    cell(page, 1).scroll_into_view_if_needed()
    shot(page, "generation-beam", cell(page, 1))

    # explored in the browser: a click on a pruned box, on a final beam, and stepping back send nothing
    sent = len(comms)
    pruned = ref["status"].index("pruned")
    beam.locator(f"g.aigc-gen-node[data-node='{pruned}']").click()
    info = beam.locator(".aigc-gen-info")
    assert "pruned" in info.inner_text()
    assert beam.locator(f"g.aigc-gen-node[data-node='{pruned}']").get_attribute("class").count("aigc-gen-selected")
    beam.locator(".aigc-gen-finals tr.aigc-gen-final-row").first.click()
    assert "final beam 1" in info.inner_text()
    slider = beam.locator("input[data-control='step']")
    page.evaluate("([input]) => { input.value = '2'; input.dispatchEvent(new Event('input', {bubbles: true})); }",
                  [slider.element_handle()])
    assert beam.locator(".aigc-gen-where").inner_text().startswith("step 2 of 5")
    assert beam.locator("g.aigc-gen-node.aigc-gen-future").count() == 3 * 6, "steps 3–5 are not drawn yet"
    beam.locator(".aigc-gen-next").click()
    assert beam.locator("g.aigc-gen-node.aigc-gen-future").count() == 2 * 6
    assert "after step 3" in beam.locator(".aigc-gen-formula").inner_text()
    shot(page, "generation-beam-step", cell(page, 1))
    page.wait_for_timeout(500)
    assert len(comms) == sent, f"exploring the tree sent {len(comms) - sent} comm messages"

    # its buttons save what it shows now (step 3, final beam 1 opened), drawn in the browser
    view = cell(page, 1).locator(".aigc-gen").first
    saved = {}
    for kind in ("svg", "png"):
        with page.expect_download(timeout=60000) as info:
            view.locator(f".aigc-export-{kind}").click()
        path = shots_dir().parent / f"generation-beam.{kind}"
        info.value.save_as(path)
        saved[kind] = path.read_bytes()
    picture = ElementTree.fromstring(saved["svg"].decode("utf-8"))
    assert picture.tag == "{http://www.w3.org/2000/svg}svg"
    text = "".join(picture.itertext())
    assert "final beam 1" in text and "after step 3" in text and "key/value cache keeps" in text
    assert saved["svg"].count(b"aigc-gen-node") >= 36 and b"aigc-export" not in saved["svg"]
    assert saved["png"][:8] == b"\x89PNG\r\n\x1a\n" and len(saved["png"]) > 20000

    # ---- greedy, sampling and beam search side by side on one prompt
    compare = cell(page, 2).locator(".aigc-gen")
    panels = compare.locator(".aigc-gen-run")
    assert panels.evaluate_all("els => els.map(e => e.dataset.strategy)") == ["greedy", "sample", "beam"]
    tops = panels.evaluate_all("els => els.map(e => e.getBoundingClientRect()).map(r => [r.left, r.top])")
    assert tops[0][0] < tops[1][0] < tops[2][0] and abs(tops[0][1] - tops[2][1]) < 2, "side by side"
    greedy = panels.nth(0)
    assert greedy.locator(".aigc-gen-token").evaluate_all("els => els.map(e => e.title)") == [
        f"step {i}: {json.dumps(t)}" for i, t in enumerate(ref["greedy"])]
    assert greedy.locator(".aigc-gen-bar.aigc-gen-taken").count() == 1
    sent = len(comms)
    greedy.locator(".aigc-gen-token[data-step='0']").click()
    assert greedy.locator(".aigc-gen-where").inner_text().startswith("step 0 of 4")
    assert greedy.locator(".aigc-gen-bar.aigc-gen-taken .aigc-gen-cand").inner_text() == " Paris"
    assert "seed 1" in panels.nth(1).locator(".aigc-gen-settings").inner_text()
    page.wait_for_timeout(300)
    assert len(comms) == sent, "stepping sent nothing to the kernel"
    cell(page, 2).scroll_into_view_if_needed()
    shot(page, "generation-compare", cell(page, 2))

    # ---- hostile token strings are text
    hostile = cell(page, 3).locator(".aigc-gen")
    assert XSS in hostile.locator(".aigc-gen-prompt").text_content()
    assert hostile.locator("img").count() == 0
    assert page.evaluate("window.__aigc_xss") is None
    assert not problems, problems
