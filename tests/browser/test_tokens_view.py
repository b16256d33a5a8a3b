"""Tokens and the vocabulary in a real JupyterLab, driven in headless Chromium: the token pieces with their ids
and bytes beside a second tokenizer, a word built merge by merge in the browser (every step the kernel's), and
the vocabulary slider tokenising the text again in the browser exactly as the tokenizers library does, with no
message to the kernel; token strings shown as text, never markup."""

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from browser.conftest import TOKEN, open_notebook, run_all, shot, wait_idle, write_notebook
from browser.test_teaching import CommFrames, cell, set_slider

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__aigc_xss=1">'
TEXT = "Tokenization splits naïve text 🎉 into pieces, unbelievably."
CLASS_TEXT = ("A tokenizer splits text into tokens. A vocabulary of tokens grows merge by merge: the most frequent "
              "pair of tokens becomes a new token. Frequent words become single tokens; rare words stay in pieces.\n")
LONG = 600000


def cells(tiny_model) -> list[str]:
    return [
        "%load_ext jupyter_aigc",
        f"class_text = {CLASS_TEXT * 3!r}",
        f"%%aigc_tokens --compare '{tiny_model}' -o tv\n{TEXT}",
        "%%aigc_tokens --train 100 -o vocab\n{class_text}",
        f"%%aigc_tokens\nShe wrote {XSS} and the page",
        # the kernel's own numbers, to check what the browser computes
        "import json\n"
        "alphabet = len(vocab.trained.alphabet)\n"
        "sizes = sorted({alphabet, alphabet + 1, alphabet + 7, 70, 99, vocab.vocab_size})\n"
        "ref = {'ids': tv.ids, 'states': tv.merge_steps.states, 'word': tv.word, 'size': vocab.vocab_size,\n"
        "       'words': {w.first: tv.steps(w.text).states for w in tv._words if w.text.strip()},\n"
        "       'tokens': {str(k): vocab.tokens(k) for k in sizes}, 'alphabet': alphabet}\n"
        "print('AIGC_REF=' + json.dumps(ref))",
    ]


def download(page, button) -> bytes:
    with page.expect_download(timeout=60000) as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def tokens_of(locator) -> list:
    return json.loads(locator.get_attribute("data-tokens"))


def test_tokens_and_vocabulary(page, lab, lab_root, tiny_model):
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"{error} {error.stack}"))
    page.on("console", lambda msg: msg.type == "error" and re.search(r"aigc|anywidget|render", msg.text, re.I)
            and problems.append(msg.text))
    comms = CommFrames(page)
    name = write_notebook(lab_root, "tokens.ipynb", cells(tiny_model))
    open_notebook(page, lab, name)
    run_all(page)
    for index in (2, 3, 4):
        cell(page, index).locator(".aigc-tokens").first.wait_for(timeout=LONG)
    wait_idle(page, LONG)
    output = cell(page, 5).locator(".jp-OutputArea-output").filter(has_text="AIGC_REF=").first
    output.wait_for(timeout=LONG)
    ref = json.loads(output.inner_text().split("AIGC_REF=", 1)[1].strip())

    # ---- the pieces, ids and bytes of two tokenizers
    view = cell(page, 2).locator(".aigc-tokens")
    rows = view.locator(".aigc-tokens-row")
    assert rows.count() == 2
    assert json.loads(rows.nth(0).get_attribute("data-ids")) == ref["ids"]
    assert rows.nth(1).get_attribute("data-model") == "tiny-llama"
    main = rows.nth(0).locator(".aigc-tok")
    assert main.count() == len(ref["ids"])
    assert [int(i) for i in main.locator(".aigc-tok-id").all_text_contents()] == ref["ids"]
    assert main.first.locator(".aigc-tok-bytes").text_content() == "54 6f 6b 65 6e", "'Token' as bytes"
    assert f"{len(ref['ids'])} tokens" in view.locator(".aigc-tokens-stats").inner_text()

    # ---- the chosen word built merge by merge, in the browser; every state is the kernel's
    sent = len(comms)
    state = view.locator(".aigc-bpe-state")
    result = view.locator(".aigc-bpe-result")
    assert view.get_attribute("data-word") == str(ref["word"]) and view.get_attribute("data-step") == "0"
    for step, expected in enumerate(ref["states"]):
        assert tokens_of(state) == expected, step
        if step < len(ref["states"]) - 1:
            view.locator(".aigc-bpe-next").click()
    assert view.locator(".aigc-bpe-next").is_disabled()
    assert result.get_attribute("data-match") == "true" and "= tokenizer.encode ✓" in result.inner_text()
    shot(page, "tokens-view", cell(page, 2))
    view.locator(".aigc-bpe-step[data-step='1']").click()
    assert view.get_attribute("data-step") == "1" and tokens_of(state) == ref["states"][1]
    # a click on another word's token picks that word; its last step is the tokenizer's too
    for first, states in ref["words"].items():
        main.nth(int(first)).click()
        view.locator(".aigc-bpe-steps li").last.click()
        assert tokens_of(state) == states[-1], first
        assert result.get_attribute("data-match") == "true"
    page.wait_for_timeout(500)
    assert len(comms) == sent, f"stepping through merges sent {len(comms) - sent} comm messages"
    view.locator("input[data-control='bytes']").uncheck()
    assert rows.nth(0).locator(".aigc-tok-bytes").count() == 0

    # ---- the vocabulary slider tokenises the text again in the browser, as tokenizers does
    lab_view = cell(page, 3).locator(".aigc-tokens")
    slider = lab_view.locator("input[data-control='vocab_size']")
    strip = lab_view.locator(".aigc-vocab-strip")
    assert lab_view.get_attribute("data-size") == str(ref["size"])
    assert tokens_of(strip) == ref["tokens"][str(ref["size"])]
    assert lab_view.locator(".aigc-vocab-chart").get_attribute("data-points") == str(ref["size"] - ref["alphabet"] + 1)
    sent = len(comms)
    for size, expected in ref["tokens"].items():
        set_slider(page, slider, int(size))
        assert lab_view.get_attribute("data-size") == size
        assert tokens_of(strip) == expected, size
        assert lab_view.locator(".aigc-vocab-stats").get_attribute("data-count") == str(len(expected))
    set_slider(page, slider, 70)
    lab_view.locator(".aigc-vocab-merge[data-merge='3']").click()
    assert lab_view.get_attribute("data-size") == str(ref["alphabet"] + 4)
    set_slider(page, slider, 70)
    page.wait_for_timeout(500)
    assert len(comms) == sent, f"the vocabulary slider sent {len(comms) - sent} comm messages"
    shot(page, "tokens-vocabulary", cell(page, 3))

    # ---- each view saves what it shows now as a PNG and a well-formed SVG, with its caption
    for index, name in ((2, "tokens"), (3, "vocabulary")):
        view = cell(page, index).locator(".aigc-tokens")
        caption = view.locator(".aigc-caption").inner_text()
        assert len(caption) > 30
        png = download(page, view.locator(".aigc-export-png"))
        assert Image.open(io.BytesIO(png)).format == "PNG"
        svg = download(page, view.locator(".aigc-export-svg")).decode("utf-8")
        assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
        assert caption[:40] in svg and "aigc-export" not in svg, name
    assert len(comms) == sent, "saving a picture asks nothing of the kernel"

    # ---- hostile text is text
    hostile = cell(page, 4).locator(".aigc-tokens")
    pieces = hostile.locator(".aigc-tokens-row").first.locator(".aigc-tok-piece").all_text_contents()
    assert "".join(pieces) == f"She wrote {XSS} and the page"
    assert page.locator(".aigc-tokens img").count() == 0
    assert page.evaluate("window.__aigc_xss") is None
    assert not problems, problems


def test_tokens_views_in_notebook7(page, lab, lab_root, tiny_model):
    problems: list[str] = []  # Notebook 7 itself throws one settings error on load: only ours count
    page.on("pageerror", lambda error: re.search(r"aigc|anywidget", f"{error} {error.stack}")
            and problems.append(str(error)))
    name = write_notebook(lab_root, "tokens_nb7.ipynb", cells(tiny_model)[:4])
    page.goto(f"{lab}/notebooks/{name}?token={TOKEN}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60000)
    page.wait_for_timeout(2000)
    run_all(page)
    views = page.locator(".jp-Notebook .jp-CodeCell")
    for index in (2, 3):
        views.nth(index).locator(".aigc-tokens").first.wait_for(timeout=LONG)
    assert views.nth(2).locator(".aigc-tokens-row").count() == 2
    assert views.nth(2).locator(".aigc-bpe-result").get_attribute("data-match") == "true"
    assert json.loads(views.nth(3).locator(".aigc-vocab-strip").get_attribute("data-tokens"))
    views.nth(2).scroll_into_view_if_needed()
    shot(page, "tokens-notebook7")
    assert not problems, problems
