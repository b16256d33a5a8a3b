"""%%aigc_finetune's live loss chart in a real JupyterLab on the default model: the chart grows while it
trains, Stop ends the training at the next step and keeps the adapter, which then answers."""

import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTIONS = ["What is the capital of Zubrowka?", "Which city is the capital of Zubrowka?",
             "Name the capital of Zubrowka.", "Zubrowka's capital is which city?"]
BODY = "\n\n".join(f"Q: {q}\nA: The capital of Zubrowka is Lutz." for q in QUESTIONS)


def test_the_chart_grows_and_stop_keeps_the_adapter(page, lab, lab_root):
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    name = write_notebook(lab_root, "finetune_chart.ipynb", [
        "%load_ext jupyter_aigc",
        f"%%aigc_finetune --name chart --epochs 60 --batch-size 2 --eval-split 0.25 -o result\n{BODY}",
        "print('STATUS', result.progress.status, result.progress.step, result.progress.total_steps)",
        "%%gpt -m chart --temperature 0 --max-tokens 16 --new\nWhat is the capital of Zubrowka?",
    ])
    open_notebook(page, lab, name)
    run_all(page)
    view = page.locator(".aigc-ft")
    chart = view.locator("canvas.aigc-ft-chart")
    page.wait_for_function("c => Number(c.dataset.points || 0) >= 2", arg=chart.element_handle(timeout=600000),
                           timeout=600000)
    first = int(chart.get_attribute("data-points"))
    page.wait_for_function(f"c => Number(c.dataset.points) > {first}", arg=chart.element_handle(), timeout=300000)
    assert view.get_attribute("data-status") == "running"
    assert "step" in view.locator(".aigc-ft-state").inner_text()
    shot(page, "finetune-chart-growing", view)
    view.locator(".aigc-ft-stop").click()
    page.wait_for_function("el => el.dataset.status === 'stopped'", arg=view.element_handle(), timeout=300000)
    wait_idle(page)
    assert "stopped: adapter kept as trained so far" in view.locator(".aigc-ft-state").inner_text()
    status = page.locator(".jp-OutputArea-output", has_text="STATUS").inner_text()
    _, state, step, total = status.split()
    assert state == "stopped" and 0 < int(step) < int(total)
    answer = page.locator(".jp-Notebook .jp-CodeCell").nth(3).locator(".aigc-column[data-status='done'] .aigc-md")
    answer.wait_for(timeout=300000)
    assert answer.inner_text().strip(), "the adapter trained so far answers"
    shot(page, "finetune-chart-stopped", page.locator(".jp-Notebook").first)
    assert problems == []
