"""The teaching views in a real JupyterLab (and Notebook 7), driven in headless Chromium, on the real default
model: the next-token explorer's sliders reshape the distribution in the browser without a message to the
kernel while a click on a bar asks it for the next step; the attention head step by step; the positional
encoding's canvases; the logit lens; token strings shown as text, never markup."""

import json
import re

import pytest

from browser.conftest import TOKEN, open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__aigc_xss=1">'
CELLS = [
    "%load_ext jupyter_aigc",
    "%%aigc_next -o nt\nThe capital of France is",
    "%%aigc_attention --steps --layer 3 --head 2 -o st\nThe cat sat on the mat because it was tired.",
    "%aigc_positional -m SmolLM2-135M-Instruct -o pe",
    "%%aigc_lens\nThe capital of France is",
    f"%%aigc_next\nShe wrote {XSS} and the page",
    # the kernel's own numbers, to check what the browser computes
    "import dataclasses, json\n"
    "from jupyter_aigc.tasks.teach import distribution\n"
    "ids, probs = distribution(nt.logits, 0.5)\n"
    "ref = {'next': {str(int(i)): float(p) for i, p in zip(ids[:20], probs[:20])},\n"
    "       'weights10': st.weights.tolist(), 'weights5': dataclasses.replace(st.steps, query=5).weights.tolist(),\n"
    "       'rotary': [pe.rotary.score(m, 0) for m in range(8)]}\n"
    "print('AIGC_REF=' + json.dumps(ref))",
]
ROOTS = [".aigc-next", ".aigc-steps", ".aigc-pe", ".aigc-lens", ".aigc-next"]
LONG = 600000

SET_VALUE = """([input, value]) => {
    input.value = String(value);
    input.dispatchEvent(new Event('input', {bubbles: true}));
    input.dispatchEvent(new Event('change', {bubbles: true}));
}"""
# how many pixels of a canvas are drawn (not transparent)
DRAWN = """canvas => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i]) count++;
    return count;
}"""


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


class CommFrames:
    """Every websocket frame the page sends that carries a comm message (widget state or a custom message)."""

    def __init__(self, page):
        self.frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))

    def _sent(self, payload) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
        if "comm_msg" in text:
            self.frames.append(text)

    def __len__(self) -> int:
        return len(self.frames)


def set_slider(page, input_locator, value) -> None:
    page.evaluate(SET_VALUE, [input_locator.element_handle(), value])
    page.wait_for_timeout(300)


def bars(view) -> list[dict]:
    return view.locator(".aigc-next-bar[data-token-id]").evaluate_all(
        "els => els.map(e => ({id: e.dataset.tokenId, prob: Number(e.dataset.prob),"
        " cut: e.classList.contains('aigc-next-cut')}))")


def entropy(view) -> float:
    return float(view.locator(".aigc-next-entropy").get_attribute("data-entropy"))


def test_teaching_views(page, lab, lab_root):
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"{error} {error.stack}"))
    page.on("console", lambda msg: msg.type == "error" and re.search(r"aigc|anywidget|render", msg.text, re.I)
            and problems.append(msg.text))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    comms = CommFrames(page)
    name = write_notebook(lab_root, "teaching.ipynb", CELLS)
    open_notebook(page, lab, name)
    run_all(page)
    for index, root in enumerate(ROOTS, start=1):
        cell(page, index).locator(root).first.wait_for(timeout=LONG)
    cell(page, 4).locator(".aigc-lens-final").wait_for(timeout=LONG)
    wait_idle(page, LONG)
    output = cell(page, 6).locator(".jp-OutputArea-output").filter(has_text="AIGC_REF=").first
    output.wait_for(timeout=LONG)
    ref = json.loads(output.inner_text().split("AIGC_REF=", 1)[1].strip())

    # ---- next token: the sliders recompute in the browser and send nothing
    nxt = cell(page, 1).locator(".aigc-next")
    nxt.locator(".aigc-next-bar[data-token-id]").first.wait_for(timeout=60000)
    before, h_before = bars(nxt), entropy(nxt)
    assert 10 <= len(before) <= 20
    assert nxt.locator(".aigc-next-others").count() == 1
    assert "all other" in nxt.locator(".aigc-next-others").inner_text()
    others = float(nxt.locator(".aigc-next-others").get_attribute("data-prob"))
    assert abs(sum(b["prob"] for b in before) + others - 1) < 1e-6
    assert not any(b["cut"] for b in before), "temperature 1, no top-k, no top-p: nothing is cut"
    sent = len(comms)
    set_slider(page, nxt.locator("input[data-control='temperature']"), 0.5)
    sharper, h_sharper = bars(nxt), entropy(nxt)
    assert [b["prob"] for b in sharper] != [b["prob"] for b in before]
    assert sharper[0]["prob"] > before[0]["prob"] and h_sharper < h_before
    for bar in sharper:  # the browser's distribution is the kernel's distribution()
        assert bar["prob"] == pytest.approx(ref["next"][bar["id"]], rel=1e-9, abs=1e-15)
    set_slider(page, nxt.locator("input[data-control='temperature']"), 1.6)
    assert entropy(nxt) > h_before
    set_slider(page, nxt.locator("input[data-control='top_k']"), 1)
    top1 = bars(nxt)
    assert top1[0]["prob"] == 1 and not top1[0]["cut"]
    assert all(b["cut"] for b in top1[1:]), "top-k = 1 cuts every other token"
    assert nxt.locator(".aigc-next-bar.aigc-next-cut").nth(0).get_attribute("data-token-id") == top1[1]["id"]
    assert entropy(nxt) == 0
    set_slider(page, nxt.locator("input[data-control='top_k']"), 0)
    set_slider(page, nxt.locator("input[data-control='temperature']"), 1)
    set_slider(page, nxt.locator("input[data-control='top_p']"), 0.5)
    nucleus = bars(nxt)
    assert any(b["cut"] for b in nucleus) and not nucleus[0]["cut"]
    assert abs(sum(b["prob"] for b in nucleus) - 1) < 1e-6, "top-p 0.5 keeps a few of the shown tokens only"
    set_slider(page, nxt.locator("input[data-control='top_p']"), 1)
    assert [b["prob"] for b in bars(nxt)] == [b["prob"] for b in before], "back to the same numbers"
    page.wait_for_timeout(500)
    assert len(comms) == sent, f"moving the sliders sent {len(comms) - sent} comm messages: {comms.frames[sent:]}"
    shot(page, "teach-next-token", cell(page, 1))

    # a single (stray) click only marks a bar; a double click on the second bar adds that token
    second = before[1]
    second_text = nxt.locator(".aigc-next-bar[data-token-id]").nth(1).locator(".aigc-next-token").text_content()
    nxt.locator(".aigc-next-bar[data-token-id]").nth(1).click()
    page.wait_for_timeout(500)
    assert len(comms) == sent and nxt.locator(".aigc-next-added").count() == 0, "one click changed the text"
    assert nxt.locator(".aigc-next-bar.aigc-next-marked").count() == 1
    nxt.locator(".aigc-next-bar[data-token-id]").nth(1).dblclick()
    added = nxt.locator(".aigc-next-added")
    added.first.wait_for(timeout=120000)
    assert added.count() == 1
    assert added.first.get_attribute("data-token-id") == second["id"]
    assert added.first.get_attribute("data-how") == "click"
    assert added.first.text_content() == second_text
    page.wait_for_function(
        "([el, old]) => [...el.querySelectorAll('.aigc-next-bar[data-token-id]')]"
        ".map(b => b.dataset.tokenId).join() !== old",
        arg=[nxt.element_handle(), ",".join(b["id"] for b in before)], timeout=120000)
    chosen = nxt.locator(".aigc-next-chosen").inner_text()
    assert "click" in chosen and "rank 2" in chosen
    assert len(comms) > sent, "the click went to the kernel (and the frame counter sees comm messages)"
    page.wait_for_function("el => !el.classList.contains('aigc-next-busy')", arg=nxt.element_handle(), timeout=120000)
    shot(page, "teach-next-token-step", cell(page, 1))

    # Undo goes back to the prompt's scores; Greedy adds the most likely token; Sample with top-k = 1 must too
    def settle():
        page.wait_for_timeout(300)
        page.wait_for_function("el => !el.classList.contains('aigc-next-busy')", arg=nxt.element_handle(),
                               timeout=120000)

    nxt.locator(".aigc-next-undo").click()
    page.wait_for_function("el => el.querySelectorAll('.aigc-next-added').length === 0", arg=nxt.element_handle(),
                           timeout=120000)
    settle()
    assert [b["id"] for b in bars(nxt)] == [b["id"] for b in before]
    nxt.locator(".aigc-next-greedy").click()
    added.first.wait_for(timeout=120000)
    settle()
    assert added.first.get_attribute("data-how") == "greedy" and added.first.text_content() == " Paris"
    set_slider(page, nxt.locator("input[data-control='top_k']"), 1)
    nxt.locator(".aigc-next-sample").click()
    page.wait_for_function("el => el.querySelectorAll('.aigc-next-added').length === 2", arg=nxt.element_handle(),
                           timeout=120000)
    settle()
    assert added.nth(1).get_attribute("data-how") == "sample"
    assert "sample · 100% · rank 1" in nxt.locator(".aigc-next-chosen").inner_text()
    set_slider(page, nxt.locator("input[data-control='top_k']"), 0)
    nxt.locator(".aigc-next-reset").click()
    page.wait_for_function("el => el.querySelectorAll('.aigc-next-added').length === 0", arg=nxt.element_handle(),
                           timeout=120000)
    settle()
    assert [b["prob"] for b in bars(nxt)] == [b["prob"] for b in before], "Reset: the prompt's numbers again"
    assert nxt.locator(".aigc-next-error").inner_text() == ""

    # ---- attention step by step: the formula with numbers; another query is chosen in the browser
    steps = cell(page, 2).locator(".aigc-steps")
    formula = steps.locator(".aigc-steps-formula")
    text = formula.inner_text()
    assert "√" in text and re.search(r"\d", text) and "score" in text
    assert re.search(r"score = \(q·k\)/√64 = −?[\d.]+/8 = −?[\d.]+", text), text
    assert steps.locator(".aigc-steps-rotary").count() == 1, "SmolLM2 rotates q and k"
    assert steps.locator(".aigc-steps-kv").get_attribute("data-kv-head") == "0"
    rows = steps.locator(".aigc-steps-table tbody tr")
    assert rows.count() == 11
    assert steps.get_attribute("data-query") == "10"
    weights = rows.evaluate_all("els => els.map(e => Number(e.dataset.weight))")
    assert weights == pytest.approx(ref["weights10"], abs=1e-9), "the browser's softmax is the kernel's"
    sent = len(comms)
    steps.locator(".aigc-steps-token[data-index='5']").click()
    page.wait_for_function("el => el.dataset.query === '5'", arg=steps.element_handle(), timeout=5000)
    assert steps.locator(".aigc-steps-masked").count() == 5, "keys 6…10 come after the query"
    assert "−∞ (masked)" in steps.locator(".aigc-steps-masked .aigc-steps-score").first.inner_text()
    assert formula.inner_text() != text
    weights = rows.evaluate_all("els => els.map(e => Number(e.dataset.weight))")
    assert weights == pytest.approx(ref["weights5"], abs=1e-9)
    page.wait_for_timeout(500)
    assert len(comms) == sent, "choosing another query sent nothing to the kernel"
    shot(page, "teach-steps", cell(page, 2))

    # ---- positional encoding: the canvases draw; the sliders redraw in the browser
    pe = cell(page, 3).locator(".aigc-pe")
    heat, similarity = pe.locator(".aigc-pe-heatmap"), pe.locator(".aigc-pe-similarity")
    assert heat.evaluate(DRAWN) > 10000 and similarity.evaluate(DRAWN) > 10000
    assert pe.locator(".aigc-pe-freq").evaluate(DRAWN) > 1000
    offset = pe.locator(".aigc-pe-offset")
    assert offset.evaluate(DRAWN) > 1000
    assert float(offset.get_attribute("data-max-difference")) < 1e-3, "the score depends on m − n only"
    assert "m − n only" in pe.inner_text()
    assert json.loads(offset.get_attribute("data-scores")) == pytest.approx(ref["rotary"], rel=1e-6), \
        "the browser rotates like transformers' rotate_half"
    picture = heat.evaluate("c => c.toDataURL()")
    sent = len(comms)
    set_slider(page, pe.locator("input[data-control='d_model']"), 128)
    set_slider(page, pe.locator("input[data-control='positions']"), 200)
    page.wait_for_function("el => el.dataset.drawn === '128x200'", arg=heat.element_handle(), timeout=5000)
    assert heat.evaluate("c => c.toDataURL()") != picture
    assert heat.evaluate(DRAWN) > 10000
    page.wait_for_timeout(500)
    assert len(comms) == sent, "the positional sliders sent nothing to the kernel"
    shot(page, "teach-positional", cell(page, 3))

    # ---- logit lens: 30 layers + the embeddings; the model's own prediction last
    lens = cell(page, 4).locator(".aigc-lens")
    rows = lens.locator(".aigc-lens-grid tbody tr")
    assert rows.count() == 31
    assert lens.locator(".aigc-lens-grid thead th.aigc-lens-input").count() == 5
    final = rows.nth(30)
    assert "aigc-lens-final" in final.get_attribute("class")
    assert final.locator(".aigc-lens-cell").last.text_content() == " Paris"
    assert "embeddings" in rows.nth(0).locator("th").inner_text()
    cell(page, 4).scroll_into_view_if_needed()
    final.locator(".aigc-lens-cell").last.hover()
    tip = lens.locator(".aigc-lens-tip")
    tip.wait_for(state="visible", timeout=5000)
    assert '" Paris"' in tip.inner_text() and "%" in tip.inner_text()
    shot(page, "teach-lens", cell(page, 4))

    # ---- hostile token strings are text
    hostile = cell(page, 5).locator(".aigc-next")
    assert XSS in hostile.locator(".aigc-next-prompt").text_content()
    assert hostile.locator(".aigc-next img, .aigc-steps img, .aigc-lens img").count() == 0
    assert page.evaluate("window.__aigc_xss") is None
    assert dialogs == []
    assert not problems, problems


def test_teaching_views_in_notebook7(page, lab, lab_root):
    problems: list[str] = []  # Notebook 7 itself throws one settings error on load: only ours count
    page.on("pageerror", lambda error: re.search(r"aigc|anywidget", f"{error} {error.stack}")
            and problems.append(str(error)))
    name = write_notebook(lab_root, "teaching_nb7.ipynb", CELLS)
    page.goto(f"{lab}/notebooks/{name}?token={TOKEN}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60000)
    page.wait_for_timeout(2000)
    run_all(page)
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    for index, root in enumerate(ROOTS, start=1):
        cells.nth(index).locator(root).first.wait_for(timeout=LONG)
    cells.nth(4).locator(".aigc-lens-final").wait_for(timeout=LONG)
    assert cells.nth(1).locator(".aigc-next-bar[data-token-id]").count() >= 10
    assert "√" in cells.nth(2).locator(".aigc-steps-formula").inner_text()
    assert cells.nth(3).locator(".aigc-pe-heatmap").evaluate(DRAWN) > 10000
    assert cells.nth(4).locator(".aigc-lens-grid tbody tr").count() == 31
    cells.nth(1).scroll_into_view_if_needed()
    shot(page, "teach-notebook7")
    assert page.evaluate("window.__aigc_xss") is None
    assert not problems, problems
