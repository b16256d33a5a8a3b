"""%aigc_eval --promptfoo in a real JupyterLab: each test's pass/fail and every assertion's verdict show in the
grid (✓/✗ per assertion, the full table in the detail), a hostile assertion value stays text, and people can
rate the answers as in any evaluation. promptfoo's `echo` provider answers with the prompt (no model needed)."""

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__aigc_xss=1">'
SUITE = {"prompts": ["Tell me about {{ topic }}."], "providers": ["echo"],
         "tests": [{"description": "cats", "vars": {"topic": "cats"},
                    "assert": [{"type": "icontains", "value": "CATS"}, {"type": "not-contains", "value": "dogs"},
                               {"type": "starts-with", "value": "Tell"}]},
                   {"description": "hostile", "vars": {"topic": "dogs"},
                    "assert": [{"type": "contains", "value": XSS}, {"type": "regex", "value": "\\d+"}]}]}


def test_the_grid_shows_each_tests_and_assertions_verdict(page, lab, lab_root):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    name = write_notebook(lab_root, "promptfoo_grid.ipynb",
                          ["%load_ext jupyter_aigc", f"suite = {SUITE!r}", "%aigc_eval --promptfoo suite -o results"])
    open_notebook(page, lab, name)
    run_all(page)
    grid = page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".aigc-eval")
    grid.locator(".aigc-eval-progress[data-total='2'][data-done='2']").wait_for(timeout=300000)
    wait_idle(page)
    rows = grid.locator(".aigc-eval-grid tbody tr")
    first = rows.nth(0).locator(".aigc-eval-check")
    assert first.evaluate_all("els => els.map(e => [e.dataset.type, e.dataset.pass])") == [
        ["icontains", "1"], ["not-contains", "1"], ["starts-with", "1"]]
    second = rows.nth(1).locator(".aigc-eval-check")
    assert second.evaluate_all("els => els.map(e => [e.dataset.type, e.dataset.pass])") == [
        ["contains", "0"], ["regex", "0"]]
    assert XSS in second.nth(0).inner_text(), "the value is shown as text"
    assert [b.get_attribute("data-value") for b in
            grid.locator(".aigc-eval-grid .aigc-eval-badge[data-metric='pass']").all()] == ["1", "0"]
    shot(page, "promptfoo-grid", grid)
    rows.nth(1).locator(".aigc-eval-cell").click()
    detail = grid.locator(".aigc-eval-detail table.aigc-eval-checks tr")
    detail.first.wait_for(timeout=10000)
    assert detail.count() == 2
    assert page.evaluate("window.__aigc_xss") is None and dialogs == [] and grid.locator("img").count() == 0
    shot(page, "promptfoo-grid-detail", grid)
