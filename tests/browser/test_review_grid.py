"""Human review in %%aigc_eval's grid, in a real JupyterLab driven in headless Chromium, on the real default model:
ten answers rated from the keyboard alone (JupyterLab's own shortcuts untouched), a note, the ratings in -o's
DataFrame, the agreement figures equal to scikit-learn's and scipy's on the same ratings, the ratings there
again after a kernel restart and a re-run; blind mode hides the names and scores, then reveals them."""

import json
import math
import uuid

import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QA = [{"question": "What is the capital of France?", "answer": "Paris"},
      {"question": "What is 2 + 2?", "answer": "4"},
      {"question": "What colour is the sky on a clear day?", "answer": "blue"},
      {"question": "How many legs does a spider have?", "answer": "eight"},
      {"question": "Which animal says moo?", "answer": "cow"},
      {"question": "What is the opposite of hot?", "answer": "cold"}]
DUMP = ("import json\nprint('AIGC_REVIEW=' + json.dumps(df[['variant', 'contains', 'rouge', 'human', 'human_pass', "
        "'human_note']].to_dict('records')))")
LONG = 600000
# the path the keyboard takes: down the first column (j), across (→), back up the second (k)
PATH = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (5, 1), (4, 1), (3, 1), (2, 1)]
KEYS = [("5", "p"), ("2", "f"), ("4", "p"), ("1", "f"), ("3", "p"), ("2", "f"), ("4", "p"), ("5", "p"), ("1", "f"),
        ("3", "f")]


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def template() -> str:
    return f"Answer in one or two words (review {uuid.uuid4().hex[:6]}). {{question}}"


def finished(page, grid, total: int, reused: int | None = None) -> None:
    grid.locator(f".aigc-eval-progress[data-total='{total}'][data-done='{total}']").wait_for(timeout=LONG)
    page.wait_for_function("el => el.disabled", arg=grid.locator(".aigc-eval-stop").element_handle(), timeout=LONG)
    if reused is not None:
        grid.locator(".aigc-eval-reused", has_text=f"{reused} reused").wait_for(timeout=LONG)


def dump(page, index: int) -> list[dict]:
    output = cell(page, index).locator(".jp-OutputArea-output").filter(has_text="AIGC_REVIEW=").first
    output.wait_for(timeout=LONG)
    return json.loads(output.inner_text().split("AIGC_REVIEW=", 1)[1].strip())


def rerun_cell(page, index: int) -> None:
    """Run one cell again from JupyterLab's command mode (click its prompt, Shift+Enter)."""
    cell(page, index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    wait_idle(page, LONG)


def shown_ratings(grid) -> dict:
    return {(int(r), int(v)): (s, p) for r, v, s, p in grid.locator(".aigc-eval-grid tbody .aigc-eval-cell").evaluate_all(
        "els => els.map(e => [e.dataset.row, e.dataset.variant, e.dataset.score, e.dataset.pass])")}


def test_ten_answers_rated_from_the_keyboard_survive_a_restart_and_agree_with_the_libraries(page, lab, lab_root):
    evaluation = ("%%aigc_eval --data qa --reference answer --metrics contains,rouge --temperature 0,0.8 --seed 1 "
                  f"--max-tokens 16 -o df\n{template()}")
    name = write_notebook(lab_root, "review_grid.ipynb", ["%load_ext jupyter_aigc", f"qa = {QA!r}", evaluation, DUMP])
    open_notebook(page, lab, name)
    run_all(page)
    grid = cell(page, 2).locator(".aigc-eval")
    finished(page, grid, 12)
    wait_idle(page, LONG)
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()

    # the keyboard alone: focus lands on the first answer, then keys only
    grid.locator(".aigc-eval-cell[data-row='0'][data-variant='0']").focus()
    expected = {}
    for step, ((row, variant), (score, verdict)) in enumerate(zip(PATH, KEYS)):
        focused = page.evaluate("() => [document.activeElement.dataset.row, document.activeElement.dataset.variant]")
        assert focused == [str(row), str(variant)], f"step {step}: the focus is on the answer to rate"
        page.keyboard.press(score)
        page.keyboard.press(verdict)
        expected[(row, variant)] = (score, "1" if verdict == "p" else "0")
        if step == 3:  # a note, typed in the detail, then back to the grid with Escape
            page.keyboard.press("n")
            page.keyboard.type("too short, but right")
            page.keyboard.press("Escape")
        if step + 1 < len(PATH):
            (next_row, next_variant) = PATH[step + 1]
            page.keyboard.press("j" if next_row > row else "k" if next_row < row else "ArrowRight")
    grid.locator(".aigc-eval-rated", has_text="10 / 12 rated").wait_for(timeout=30000)
    # JupyterLab's shortcuts (j/k move cells, 1–5 make headings, f finds) did nothing
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before
    assert page.locator(".jp-Notebook .jp-MarkdownCell").count() == 0
    page.wait_for_function("() => document.querySelectorAll('.aigc-eval-summary tr[data-metric=human]').length === 1",
                           timeout=30000)
    shown = shown_ratings(grid)
    assert {k: shown[k] for k in expected} == expected and shown[(0, 1)] == ("", "") and shown[(1, 1)] == ("", "")
    shot(page, "review-keyboard", cell(page, 2))

    # the kernel has them: -o's DataFrame follows the ratings
    rerun_cell(page, 3)
    frame = dump(page, 3)
    for (row, variant), (score, verdict) in expected.items():
        record = frame[row * 2 + variant]
        assert record["human"] == int(score) and record["human_pass"] is (verdict == "1")
    assert frame[3 * 2]["human_note"] == "too short, but right"
    assert math.isnan(frame[1]["human"]) and math.isnan(frame[3]["human"]) and frame[1]["human_pass"] is None

    # the agreement figures equal scikit-learn's and scipy's on the same ratings
    rated = [r for r in frame if not math.isnan(r["human"])]
    people_pass = [int(r["human_pass"]) for r in rated]
    kappa = cohen_kappa_score(people_pass, [int(r["contains"] >= 0.5) for r in rated])
    rho = spearmanr([r["human"] for r in rated], [r["rouge"] for r in rated]).statistic
    agreement = grid.locator(".aigc-eval-agreement")
    agreement.wait_for(timeout=30000)
    shown_kappa = agreement.locator("tr[data-metric='contains'] td[data-kind='kappa']")
    shown_rho = agreement.locator("tr[data-metric='rouge'] td[data-kind='rho']")
    assert float(shown_kappa.get_attribute("data-value")) == pytest.approx(kappa)
    assert float(shown_rho.get_attribute("data-value")) == pytest.approx(rho)
    assert shown_kappa.get_attribute("data-n") == "10" and shown_rho.get_attribute("data-n") == "10"
    shot(page, "review-agreement", grid.locator(".aigc-eval-summary"))

    # restart the kernel, run everything again: the stored answers come back with their ratings
    page.click(".lm-MenuBar-itemLabel:text-is('Kernel')")
    page.click(".lm-Menu-item[data-command='kernelmenu:restart']")
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60000)
    run_all(page)
    grid = cell(page, 2).locator(".aigc-eval")
    finished(page, grid, 12, reused=12)
    wait_idle(page, LONG)
    grid.locator(".aigc-eval-rated", has_text="10 / 12 rated").wait_for(timeout=30000)
    assert {k: v for k, v in shown_ratings(grid).items() if k in expected} == expected
    again = dump(page, 3)
    assert [r["human_pass"] for r in again] == [r["human_pass"] for r in frame]
    assert [r["human"] for r in again if not math.isnan(r["human"])] == [r["human"] for r in rated]
    shot(page, "review-after-restart", cell(page, 2))


def test_blind_mode_hides_the_names_and_scores_then_reveals_them(page, lab, lab_root):
    evaluation = ("%%aigc_eval --data qa --reference answer --metrics contains --temperature 0,0.6,1.2 --seed 4 "
                  f"--max-tokens 12 --blind\n{template()}")
    name = write_notebook(lab_root, "review_blind.ipynb", ["%load_ext jupyter_aigc", f"qa = {QA!r}", evaluation])
    open_notebook(page, lab, name)
    run_all(page)
    grid = cell(page, 2).locator(".aigc-eval")
    finished(page, grid, 18)
    wait_idle(page, LONG)
    names = ["temperature 0.0", "temperature 0.6", "temperature 1.2"]
    heads = grid.locator(".aigc-eval-grid thead th.aigc-eval-variant-head")
    assert heads.all_inner_texts() == ["answer 1", "answer 2", "answer 3"]
    widget_text = grid.inner_text()
    assert not any(n in widget_text for n in names), "no variant's name shows"
    assert grid.locator(".aigc-eval-badge").count() == 0 and grid.locator(".aigc-eval-summary tr").count() == 0
    orders = grid.locator(".aigc-eval-grid tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.querySelectorAll('.aigc-eval-cell')].map(td => Number(td.dataset.variant)))")
    assert all(sorted(o) == [0, 1, 2] for o in orders) and any(o != [0, 1, 2] for o in orders), orders
    # rating blind works as anywhere
    grid.locator(".aigc-eval-grid tbody tr").first.locator(".aigc-eval-cell").first.focus()
    page.keyboard.press("4")
    grid.locator(".aigc-eval-rated", has_text="1 / 18 rated").wait_for(timeout=30000)
    shot(page, "review-blind", cell(page, 2))

    grid.locator(".aigc-eval-reveal").click()
    assert heads.all_inner_texts() == names
    assert grid.locator(".aigc-eval-badge").count() == 18
    shot(page, "review-revealed", cell(page, 2))
    grid.locator(".aigc-eval-summary tr[data-metric='human']").wait_for(timeout=30000)
    assert grid.locator(".aigc-eval-reveal").inner_text() == "Hide names"
    shot(page, "review-revealed", cell(page, 2))
