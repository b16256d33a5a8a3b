"""%aigc class in a real JupyterLab: the teacher's dashboard of a running class server shows the students and
their counts as they ask, its switch pauses the class (a student's request is refused) and resumes it, and the
revoke button refuses a student's token."""

import httpx
import pytest

from browser.conftest import open_notebook, run_all, shot, wait_idle, write_notebook
from class_server import ClassServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def ask(server, student: str) -> httpx.Response:
    return server.post("v1/chat/completions", server.tokens[student],
                       {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 6, "temperature": 0})


def test_the_dashboard_counts_students_pauses_the_class_and_revokes_a_token(page, lab, lab_root, tmp_path):
    server = ClassServer(tmp_path, "--students", "3", "--slots", "3")
    try:
        for student in ("student01", "student02", "student02"):
            assert ask(server, student).status_code == 200
        name = write_notebook(lab_root, "class_dashboard.ipynb", ["%load_ext jupyter_aigc", f"%aigc class {server.url}"])
        open_notebook(page, lab, name)
        run_all(page)
        prompt = page.locator(".jp-Stdin-input")  # the token is asked without echo, never typed into a cell
        prompt.wait_for(timeout=60000)
        prompt.fill(server.teacher)
        prompt.press("Enter")
        wait_idle(page)
        board = page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".aigc-class")
        board.wait_for(timeout=60000)
        board.locator(".aigc-class-students tr[data-student='student02'] td:nth-child(2)", has_text="2").wait_for(
            timeout=30000)
        assert board.locator(".aigc-class-figure[data-key='connected'] .aigc-class-value").inner_text() == "2"
        assert board.locator(".aigc-class-switch").inner_text().strip() == "Answers on"
        shot(page, "class-dashboard", board)

        board.locator(".aigc-class-switch input").click()
        board.locator(".aigc-class-switch", has_text="Answers paused").wait_for(timeout=30000)
        refused = ask(server, "student03")
        assert refused.status_code == 403 and "paused" in refused.json()["error"]["message"]
        board.locator(".aigc-class-students tr[data-student='student03'] td:nth-child(4)", has_text="1").wait_for(
            timeout=30000)
        shot(page, "class-dashboard-paused", board)
        board.locator(".aigc-class-switch input").click()
        board.locator(".aigc-class-switch", has_text="Answers on").wait_for(timeout=30000)
        assert ask(server, "student03").status_code == 200

        board.locator(".aigc-class-revoke[data-student='student01']").click()
        page.wait_for_function("() => true")
        for _ in range(50):
            if server.get("v1/models", server.tokens["student01"]).status_code == 401:
                break
            page.wait_for_timeout(200)
        assert server.get("v1/models", server.tokens["student01"]).status_code == 401
        page.keyboard.press("Control+s")
        page.wait_for_timeout(1000)
        assert server.teacher not in (lab_root / name).read_text(), "the token is not in the saved notebook"
        assert server.teacher not in board.inner_text()
    finally:
        server.stop()
