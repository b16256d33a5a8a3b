"""%%aigc_eval --task choice in a real JupyterLab: each choice's log-probability in the grid, the pick and the
gold marked, the detail's table equal to the kernel's DataFrame, a hostile choice shown as text."""

import json

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__aigc_xss=1">'
QUIZ = [{"question": "What is the capital of France?", "options": ["Paris", "Lyon", "Marseille"], "label": 0},
        {"question": "Which animal says moo?", "options": ["a dog", "a cow", "a cat"], "label": "a cow"},
        {"question": "What is 2 + 2?", "options": ["3", "4", "22"], "label": 1},
        {"question": "Which is a tag?", "options": [XSS, "a word"], "label": 0}]
EVAL = "%%aigc_eval --task choice --data quiz --choices options --answer label -o mc\nQuestion: {question}\nAnswer:"
DUMP = "import json\nprint('AIGC_MC=' + json.dumps(mc[['logprobs', 'pick', 'pick_norm', 'gold']].to_dict('records')))"
LONG = 600000


def test_choice_grid_shows_each_choice_with_its_log_probability(page, lab, lab_root):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    name = write_notebook(lab_root, "choice_grid.ipynb", ["%load_ext jupyter_aigc", f"quiz = {QUIZ!r}", EVAL, DUMP])
    open_notebook(page, lab, name)
    run_all(page)
    out = page.locator(".jp-Notebook .jp-CodeCell").nth(2)
    grid = out.locator(".aigc-eval")
    grid.locator(".aigc-eval-progress[data-total='4'][data-done='4']").wait_for(timeout=LONG)
    wait_idle(page, LONG)
    out.locator(".jp-OutputArea-output", has_text="on the transformers engine").wait_for(timeout=LONG)
    dump = page.locator(".jp-Notebook .jp-CodeCell").nth(3).locator(".jp-OutputArea-output").filter(
        has_text="AIGC_MC=").first
    dump.wait_for(timeout=LONG)
    frame = json.loads(dump.inner_text().split("AIGC_MC=", 1)[1].strip())

    assert [t.strip().split(" ")[0] for t in grid.locator(".aigc-eval-summary tbody th").all_inner_texts()] == [
        "acc", "acc_norm"]
    rows = grid.locator(".aigc-eval-grid tbody tr")
    assert rows.count() == 4
    for index, (row, item) in enumerate(zip(frame, QUIZ)):
        choices = rows.nth(index).locator(".aigc-eval-choices .aigc-eval-choice")
        assert choices.count() == len(item["options"])
        assert choices.locator(".aigc-eval-choice-text").all_text_contents() == [f"{c}: " for c in item["options"]]
        shown = [float(v) for v in choices.locator(".aigc-eval-choice-logprob").all_text_contents()]
        assert shown == pytest.approx(row["logprobs"], rel=1e-2)
        assert rows.nth(index).locator(".aigc-eval-choice[data-picked='1']").get_attribute("data-choice") == \
            str(row["pick"])
        assert rows.nth(index).locator(".aigc-eval-choice[data-gold='1']").get_attribute("data-choice") == \
            str(row["gold"])
    assert page.evaluate("window.__aigc_xss") is None and dialogs == [] and grid.locator("img").count() == 0
    shot(page, "choice-grid", out)

    rows.nth(3).locator(".aigc-eval-cell").click()
    detail = grid.locator(".aigc-eval-detail")
    detail.wait_for(state="visible", timeout=10000)
    table = detail.locator("table.aigc-eval-choices tr")
    assert table.count() == 2 and table.nth(0).locator(".aigc-eval-choice-text").text_content() == XSS
    assert [float(v) for v in detail.locator(".aigc-eval-choice-logprob").all_text_contents()] == pytest.approx(
        frame[3]["logprobs"], rel=1e-4)
    assert page.evaluate("window.__aigc_xss") is None
    shot(page, "choice-grid-detail", out)
