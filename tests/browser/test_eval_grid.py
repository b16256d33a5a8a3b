"""The %%aigc_eval grid in a real JupyterLab, driven in headless Chromium, on the real default model:
progress, summary, grid and badges, sorting, the A-fails-B-passes filter, the detail panel, hostile data
shown as text, and a re-run that reuses every stored answer."""

import json
from pathlib import Path

import jupyterlab
import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__aigc_xss=1">'
QA = [{"question": "What is the capital of France?", "answer": "Paris"},
      {"question": "What is 2 + 2?", "answer": "4"},
      {"question": "What colour is the sky on a clear day?", "answer": "blue"},
      {"question": "How many legs does a spider have?", "answer": "eight"},
      {"question": "Which animal says moo?", "answer": "cow"},
      {"question": f"Repeat this tag exactly: {XSS}", "answer": "img"}]
TEMPLATE = "Answer in one word. {question}"
EVAL = ("%%aigc_eval --data qa --reference answer --metrics exact,contains,rouge --temperature 0,0.8 --seed 1 "
        f"--max-tokens 24 -o df\n{TEMPLATE}")
DUMP = ("import json\nprint('AIGC_DF=' + json.dumps(df[['question', 'variant', 'output', 'exact', 'contains', "
        "'rouge']].to_dict('records')))")
LONG = 600000


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def wait_finished(page, grid, reused: int | None = None) -> None:
    """The run is over: every answer is in, the Stop button is off (and so many were reused)."""
    grid.locator(".aigc-eval-progress[data-total='12'][data-done='12']").wait_for(timeout=LONG)
    page.wait_for_function("el => el.disabled", arg=grid.locator(".aigc-eval-stop").element_handle(), timeout=LONG)
    if reused is not None:
        page.wait_for_function("([el, text]) => el.textContent === text",
                               arg=[grid.locator(".aigc-eval-reused").element_handle(), f"{reused} reused"],
                               timeout=LONG)


def column_values(grid, variant: int, metric: str) -> list[float]:
    """The badges' values of one variant's column, in the rows' shown order."""
    return [float(v) for v in grid.locator(
        f".aigc-eval-grid tbody tr .aigc-eval-cell[data-variant='{variant}'] .aigc-eval-badge[data-metric='{metric}']"
    ).evaluate_all("els => els.map(e => e.dataset.value)")]


def kernel_frame(page) -> list[dict]:
    output = cell(page, 3).locator(".jp-OutputArea-output").filter(has_text="AIGC_DF=").first
    output.wait_for(timeout=LONG)
    text = output.inner_text()
    return json.loads(text.split("AIGC_DF=", 1)[1].strip())


def test_eval_grid_progress_summary_sort_filter_detail_and_reuse(page, lab, lab_root):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    name = write_notebook(lab_root, "eval_grid.ipynb", ["%load_ext jupyter_aigc", f"qa = {QA!r}", EVAL, DUMP])
    open_notebook(page, lab, name)
    run_all(page)
    out = cell(page, 2)
    grid = out.locator(".aigc-eval")
    grid.wait_for(timeout=LONG)
    shot(page, "eval-grid-running", out)  # whatever the run shows by now: the first answers, or all
    wait_finished(page, grid)
    wait_idle(page, LONG)
    assert grid.locator(".aigc-eval-count").inner_text() == "12 / 12"
    assert grid.locator(".aigc-eval-eta").inner_text() == "", "no time left is shown once the run is over"
    out.locator(".jp-OutputArea-output", has_text="12 answers asked, 0 reused").wait_for(timeout=LONG)
    frame = kernel_frame(page)
    assert len(frame) == 12

    # summary: 3 metrics × 2 variants, the best marked
    summary = grid.locator(".aigc-eval-summary tbody tr")
    assert summary.count() == 3
    assert [summary.nth(i).get_attribute("data-metric") for i in range(3)] == ["exact", "contains", "rouge"]
    for i in range(3):
        assert summary.nth(i).locator(".aigc-eval-stat").count() == 2
        assert " ± " in summary.nth(i).locator(".aigc-eval-stat").first.inner_text()
    best = grid.locator(".aigc-eval-summary .aigc-eval-best")
    assert best.count() >= 1 and all("★" in t for t in best.all_inner_texts())
    assert grid.locator(".aigc-eval-summary .aigc-eval-variant").all_inner_texts() == [
        "temperature 0.0", "temperature 0.8"]

    # the grid: 6 rows × 2 answers, 3 badges each, values as in the kernel's DataFrame
    rows = grid.locator(".aigc-eval-grid tbody tr")
    assert rows.count() == 6
    for i in range(6):
        row = rows.nth(i)
        assert row.locator(".aigc-eval-cell").count() == 2
        assert row.locator(".aigc-eval-cell[data-status='done']").count() == 2
        assert row.locator(".aigc-eval-badge").count() == 6
    for variant in (0, 1):
        expected = [r["rouge"] for r in frame if r["variant"] == f"temperature {'0.0' if variant == 0 else '0.8'}"]
        assert column_values(grid, variant, "rouge") == pytest.approx(expected)
    assert grid.locator(".aigc-eval-badge[data-scale='range']").count() == 36, "0..1 metrics are coloured"

    # hostile data is text, nothing runs
    assert page.evaluate("window.__aigc_xss") is None and dialogs == []
    assert grid.locator(".aigc-eval-field-value", has_text=XSS).count() == 1
    assert grid.locator(".aigc-eval img").count() == 0
    assert page.locator(".jp-OutputArea-output img[src='x']").count() == 0
    shot(page, "eval-grid", out)

    # sorting: a summary cell sorts by that variant's score, first descending, then ascending
    rouge0 = grid.locator(".aigc-eval-summary .aigc-eval-stat[data-metric='rouge'][data-variant='0']")
    rouge0.click()
    values = column_values(grid, 0, "rouge")
    assert values == sorted(values, reverse=True) and len(values) == 6
    head = grid.locator(".aigc-eval-grid thead th[data-variant='0']")
    assert "aigc-eval-sorted" in head.get_attribute("class") and head.get_attribute("data-dir") == "desc"
    assert rouge0.get_attribute("data-dir") == "desc"
    shot(page, "eval-grid-sorted", out)
    rouge0.click()
    values = column_values(grid, 0, "rouge")
    assert values == sorted(values) and head.get_attribute("data-dir") == "asc"
    head.click()  # the header sorts by the chosen metric (rouge, picked by the summary click): desc again
    assert column_values(grid, 0, "rouge") == sorted(values, reverse=True)
    grid.locator(".aigc-eval-grid thead th[data-reset]").click()
    assert grid.locator(".aigc-eval-sorted").count() == 0

    # detail: the exact prompt and the full answer of the hostile row, as text
    xss_row = grid.locator(".aigc-eval-grid tbody tr", has=page.locator(".aigc-eval-field-value", has_text=XSS))
    xss_row.locator(".aigc-eval-cell[data-variant='1']").click()
    detail = grid.locator(".aigc-eval-detail")
    detail.wait_for(state="visible", timeout=10000)
    question = QA[-1]["question"]
    assert detail.locator(".aigc-eval-prompt").text_content() == f"Answer in one word. {question}"
    answer = next(r for r in frame if r["question"] == question and r["variant"] == "temperature 0.8")
    assert detail.locator(".aigc-eval-full-output").text_content() == answer["output"]
    assert detail.locator(".aigc-eval-detail-scores td[data-metric]").count() == 3
    assert "finish:" in detail.locator(".aigc-eval-meta").inner_text()
    assert "asked in this run" in detail.locator(".aigc-eval-meta").inner_text()
    assert detail.locator(".aigc-eval-detail-value[data-field='question']", has_text=XSS).count() == 1
    assert page.evaluate("window.__aigc_xss") is None
    shot(page, "eval-grid-detail", out)
    # the detail stays open while sorting and filtering redraw the grid
    grid.locator(".aigc-eval-summary .aigc-eval-stat[data-metric='exact'][data-variant='1']").click()
    assert detail.is_visible() and grid.locator(".aigc-eval-selected").count() == 1

    # filter: contains, A = variant 0 fails and B = variant 1 passes
    assert [grid.locator(f".aigc-eval-{x}").input_value() for x in "ab"] == ["0", "1"], "A and B differ at first"
    grid.locator(".aigc-eval-metric").select_option("contains")
    grid.locator(".aigc-eval-a").select_option("0")
    grid.locator(".aigc-eval-b").select_option("1")
    a = column_values(grid, 0, "contains")  # all rows still shown, in the same order for both columns
    b = column_values(grid, 1, "contains")
    expected = sum(x < 0.5 and y >= 0.5 for x, y in zip(a, b))
    by_kernel = {r["question"]: r["contains"] for r in frame if r["variant"] == "temperature 0.0"}
    by_kernel_b = {r["question"]: r["contains"] for r in frame if r["variant"] == "temperature 0.8"}
    assert expected == sum(by_kernel[q] < 0.5 and by_kernel_b[q] >= 0.5 for q in by_kernel)
    grid.locator(".aigc-eval-failpass").check()
    assert grid.locator(".aigc-eval-shown").inner_text() == f"{expected} of 6 rows"
    assert rows.count() == expected
    for x, y in zip(column_values(grid, 0, "contains"), column_values(grid, 1, "contains")):
        assert x < 0.5 <= y
    grid.locator(".aigc-eval-failpass").uncheck()
    grid.locator(".aigc-eval-disagree").check()
    disagreeing = sum((x >= 0.5) != (y >= 0.5) for x, y in zip(a, b))
    assert grid.locator(".aigc-eval-shown").inner_text() == f"{disagreeing} of 6 rows"
    grid.locator(".aigc-eval-disagree").uncheck()
    assert grid.locator(".aigc-eval-shown").inner_text() == "6 of 6 rows"
    grid.locator(".aigc-eval-close").click()
    assert not detail.is_visible()

    # run the cell again: every answer comes from the store
    out.scroll_into_view_if_needed()
    out.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    out.locator(".jp-OutputArea-output", has_text="0 answers asked, 12 reused").wait_for(timeout=LONG)
    wait_idle(page, LONG)
    grid = out.locator(".aigc-eval")
    wait_finished(page, grid, reused=12)
    assert grid.locator(".aigc-eval-grid tbody tr").count() == 6
    grid.locator(".aigc-eval-cell").first.click()
    assert "reused from an earlier run" in grid.locator(".aigc-eval-meta").inner_text()
    assert page.evaluate("window.__aigc_xss") is None and dialogs == []
    shot(page, "eval-grid-reused", out)
    # the dark theme's colours, in this page only (the user's theme setting is left alone)
    dark = Path(jupyterlab.__file__).parent / "themes" / "@jupyterlab" / "theme-dark-extension" / "index.css"
    page.evaluate("css => document.body.append(Object.assign(document.createElement('style'), {textContent: css}))",
                  dark.read_text())  # after the theme's own <link> in the body, so these colours win
    assert page.evaluate("getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim()") == "#111"
    page.wait_for_timeout(1500)
    shot(page, "eval-grid-dark", out)


def test_eval_grid_stop_keeps_finished_rows(page, lab, lab_root):
    name = write_notebook(lab_root, "eval_stop.ipynb", [
        "%load_ext jupyter_aigc",
        "topics = [{'topic': f'the number {i}', 'answer': str(i)} for i in range(40)]",
        "%%aigc_eval --data topics --reference answer --metrics contains --temperature 0,0.8 --seed 2 "
        "--max-tokens 96 -o stopped\nWrite a long story about {topic}.",
    ])
    open_notebook(page, lab, name)
    run_all(page)
    out = cell(page, 2)
    grid = out.locator(".aigc-eval")
    grid.locator(".aigc-eval-cell[data-status='done']").first.wait_for(timeout=LONG)
    stop = grid.locator(".aigc-eval-stop")
    assert stop.is_enabled(), "the run is still going after the first answer"
    stop.click()
    out.locator(".jp-OutputArea-output", has_text="stopped: finished rows kept").first.wait_for(timeout=LONG)
    wait_idle(page, LONG)
    assert stop.is_disabled()
    assert grid.locator(".aigc-eval-note").inner_text() == "stopped: finished rows kept"
    bar = grid.locator(".aigc-eval-progress")
    done, total = int(bar.get_attribute("data-done")), int(bar.get_attribute("data-total"))
    assert total == 80 and 1 <= done < total
    assert grid.locator(".aigc-eval-grid tbody tr").count() == 40
    assert grid.locator(".aigc-eval-cell[data-status='done']").count() == done
    assert grid.locator(".aigc-eval-cell[data-status='not-run']").count() == total - done
    assert grid.locator(".aigc-eval-spinner").count() == 0, "nothing looks as if it still ran"
    shot(page, "eval-grid-stopped", out)
