"""%%aigc_eval when things go wrong: failed and partial answers, metrics that hang, raise or return nonsense,
bad files and tables, judges that do not follow the rubric, damaged stored answers, and Kernel → Interrupt.

The answers come from real sockets on 127.0.0.1: ``HostileServer`` (tests/hostile_server.py) for failures and
cut-off streams, and ``ScriptedServer`` below, an OpenAI-compatible server whose answer is fixed per model name.
"""

from __future__ import annotations

import _thread

import json
import re
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_cell
from hostile_server import HostileServer

ANSWERS = {
    "hello": "Hello from the server.",
    "aaa": "a" * 28 + "!",  # 29 characters: `^(a+)+$` backtracks without end on this with Python's re
    "judge-seven": '{"score": 7, "reason": "Better than perfect."}',
    "judge-prose": "This answer is fine, I would say 4 out of 5 overall.",
    "judge-fenced": 'Here is my verdict:\n```json\n{"score": 4, "reason": "Close enough."}\n```',
    "judge-word": '{"score": "excellent", "reason": "Well put."}',
    "judge-cut": '{"score": 3, "reason": "It goes on and on and on',  # cut off by max tokens: the score stands
}
QA = [{"question": f"Question {i}?", "answer": f"answer {i}"} for i in range(6)]
SLOW_REGEX = r"regex:^(.|\w|[a-z])+\d"  # exponential on 'Hello from the server.' even for the regex package
ASKED: list[dict] = []  # the bodies the scripted server was sent


class ScriptedHandler(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: streams ``ANSWERS[model]`` as two pieces, then usage; HTTP/1.0, so the
    connection's end ends the body."""

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._send(200, "application/json", json.dumps({"object": "list", "data": [
            {"id": name, "object": "model"} for name in ANSWERS]}).encode())

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        ASKED.append(body)
        text = ANSWERS.get(body.get("model"))
        if text is None:
            return self._send(404, "application/json", b'{"error": {"message": "no such model"}}')
        envelope = {"id": "scripted", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        half = len(text) // 2
        events = [{**envelope, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                  for piece in (text[:half], text[half:])]
        events.append({**envelope, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({**envelope, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2,
                                                            "total_tokens": 7}})
        raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self._send(200, "text/event-stream", raw)

    def _send(self, status: int, kind: str, raw: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture(scope="module")
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hostile():
    with HostileServer() as server:
        yield server.url


@pytest.fixture
def ev(shell):
    shell.user_ns["qa"] = [dict(row) for row in QA]
    shell.user_ns.pop("df", None)  # the shell is shared: another file's test may have left one
    shell.run_line_magic("aigc", "history --clear")
    return shell


def run_eval(shell, line: str, template: str = "Answer: {question}"):
    return run_cell(shell, "aigc_eval", line, template)


def failed_with(result, capsys, *parts: str) -> str:
    err = capsys.readouterr().err
    assert not result.success, "the cell must fail"
    assert "Traceback" not in err and all(part in err for part in parts), err
    line = next(line for line in err.splitlines() if line.startswith("UsageError"))
    assert all(part in line for part in parts), "one line says it all"
    return err


# ----------------------------------------------------------------------------- failed answers fail the cell

def test_when_every_answer_failed_the_cell_fails_with_the_first_error(ev, hostile, capsys):
    result = run_eval(ev, f"--data qa -m html --base-url {hostile} -o df")
    failed_with(result, capsys, f"All {len(QA)} answers failed:", "text/html", "Welcome to nginx!")
    assert "df" not in ev.user_ns
    assert ev._jupyter_aigc_session.history[-1]["finish_reason"] == "error"


def test_when_some_answers_failed_the_cell_says_how_many_and_succeeds(ev, hostile, capsys):
    result = run_eval(ev, f"--data qa --compare ok,html --base-url {hostile} -o df")
    out = capsys.readouterr().out
    assert result.success
    assert f"{len(QA)} of {2 * len(QA)} answers failed: The server at" in out and "text/html" in out
    df = ev.user_ns["df"]
    assert df[df["variant"] == "html"]["finish"].eq("error").all()
    assert df[df["variant"] == "ok"]["output"].eq("Hello from the server.").all()


# ----------------------------------------------------------------------------- partial answers

def test_partial_answers_are_marked_and_left_out_of_the_means_unless_asked(ev, hostile, capsys):
    line = f"--data qa --compare ok,close-mid --base-url {hostile} --metrics length -o df"
    assert run_eval(ev, line).success
    df = ev.user_ns["df"]
    assert set(df[df["variant"] == "close-mid"]["finish"]) == {"incomplete"}
    assert set(df[df["variant"] == "ok"]["finish"]) == {"stop"}
    assert df[df["variant"] == "close-mid"]["length"].eq(2).all(), "partial answers are still scored, row by row"
    ok, partial = df.attrs["summary"]["length"]["variants"]
    assert ok == {"mean": 4.0, "ci95": 0.0, "n": len(QA), "partial": 0}
    assert partial == {"mean": None, "ci95": None, "n": 0, "partial": len(QA)}
    out = capsys.readouterr().out
    assert f"{len(QA)} partial left out" in out and "--include-partial counts them" in out

    assert run_eval(ev, line + " --include-partial").success
    assert f"{len(QA)} answers asked, {len(QA)} reused" in capsys.readouterr().out, "partial answers are not stored"
    partial = ev.user_ns["df"].attrs["summary"]["length"]["variants"][1]
    assert partial == {"mean": 2.0, "ci95": 0.0, "n": len(QA), "partial": 0}


def test_the_grid_and_the_saved_copy_mark_partial_answers(ev, hostile):
    from argparse import Namespace

    from jupyter_aigc.views.eval import evaluation_html
    from jupyter_aigc.views.widgets.eval_grid import EvalGrid

    session = ev._jupyter_aigc_session
    parser = ev._jupyter_aigc_magics.aigc_eval.parser
    args = parser.parse_args(["--data", "qa", "--compare", "ok,close-mid", "--base-url", hostile])
    grid = EvalGrid()
    evaluation = session.evaluate.run(Namespace(**vars(args)), "Answer: {question}", ev.user_ns,
                                      threading.Event(), grid)
    states = [[(cell["status"], cell["partial"], cell["finish"]) for cell in row["cells"]] for row in grid.rows]
    assert states == [[("done", False, "stop"), ("done", True, "incomplete")]] * len(QA)
    assert grid.progress["include_partial"] is False
    html = evaluation_html(evaluation)
    assert html.count("<em>partial (incomplete)</em>") == len(QA) and "left out of the means" in html


# ----------------------------------------------------------------------------- regex metrics cannot hang

def test_the_nested_repeat_from_the_issue_scores_at_once(ev, scripted, capsys):
    started = time.perf_counter()
    assert run_eval(ev, f"--data qa -m aaa --base-url {scripted} --metrics 'regex:^(a+)+$' -o df").success
    assert time.perf_counter() - started < 5
    assert ev.user_ns["df"]["regex:^(a+)+$"].eq(0.0).all()


def test_a_regex_that_takes_too_long_is_one_line_naming_the_metric_and_row(ev, scripted, capsys):
    ev.user_ns["qa"] = [dict(row) for row in QA * 4]
    started = time.perf_counter()
    result = run_eval(ev, f"--data qa -m hello --base-url {scripted} --metrics '{SLOW_REGEX}'")
    elapsed = time.perf_counter() - started
    failed_with(result, capsys, f"The metric {SLOW_REGEX} took", "took longer than 0.5 s on data row",
                "Simplify the pattern")
    assert elapsed < 6, f"the first slow match ends the run ({elapsed:.1f} s for {len(QA) * 4} rows)"


def interrupt_when(condition, timeout: float = 30) -> dict:
    """An interrupt of the main thread once ``condition()`` holds (``_thread.interrupt_main``: what SIGINT does to
    Python, whatever an earlier test in this process did to the signal's disposition); when it was sent. A real
    SIGINT from Kernel → Interrupt is tested in a kernel of its own (tests/test_interrupts.py)."""
    sent = {}

    def watch():
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        sent["at"] = time.perf_counter()
        _thread.interrupt_main()

    threading.Thread(target=watch, daemon=True).start()
    return sent


def test_interrupt_lands_while_a_regex_is_matching(ev, scripted, capsys, monkeypatch):
    """Python's re held the GIL through a catastrophic match, so Kernel → Interrupt waited 9–11 s for it.

    The match may run for 20 s here, so the interrupt surely lands while it runs, however busy the machine."""
    from jupyter_aigc.tasks import metrics

    monkeypatch.setattr(metrics, "REGEX_TIMEOUT", 20.0)
    asked = len(ASKED)
    sent = interrupt_when(lambda: len(ASKED) >= asked + len(QA) and time.sleep(0.15) is None)
    result = run_eval(ev, f"--data qa -m hello --base-url {scripted} --metrics '{SLOW_REGEX}'")
    ended = time.perf_counter()
    err = capsys.readouterr().err
    assert not result.success and "Interrupted" in err and "Traceback" not in err, err
    assert ended - sent["at"] < 3, f"the cell ended {ended - sent['at']:.1f} s after the interrupt"


@pytest.mark.parametrize("stored", [False, True], ids=["fresh answers", "stored answers"])
def test_interrupt_stops_a_slow_metric_function_between_rows(ev, scripted, capsys, stored):
    calls = []

    def slow(output, row):
        calls.append(time.perf_counter())
        time.sleep(0.3)
        return 1.0

    ev.user_ns["slow"] = slow
    ev.user_ns["qa"] = [dict(row) for row in QA * 4]
    line = f"--data qa -m hello --base-url {scripted}"
    if stored:  # the answers come from the store at once, and are scored one after another
        assert run_eval(ev, line + " --metrics length").success
    sent = interrupt_when(lambda: len(calls) >= 2)
    result = run_eval(ev, line + " --metrics slow")
    ended = time.perf_counter()
    err = capsys.readouterr().err
    assert not result.success and "Interrupted" in err and "Traceback" not in err, err
    assert ended - sent["at"] < 3, f"the cell ended {ended - sent['at']:.1f} s after the interrupt"
    time.sleep(1.5)
    settled = len(calls)
    time.sleep(1.0)
    assert len(calls) == settled < len(QA) * 4, "no metric runs on in the background after the interrupt"


# ----------------------------------------------------------------------------- metric values

@pytest.mark.parametrize("value, message", [
    ("float('inf')", "returned inf on data row "),
    ("10**400", "returned an integer of about 401 digits, too large for a float on data row "),
    ("'0.5'", "returned the text '0.5', not a number on data row "),
    ("1 / 0", "raised ZeroDivisionError: division by zero on data row "),
])
def test_a_metric_that_returns_no_number_is_refused_naming_the_row(ev, scripted, capsys, value, message):
    ev.run_cell(f"def score(output, row):\n    return {value}")
    result = run_eval(ev, f"--data qa -m hello --base-url {scripted} --metrics score")
    err = failed_with(result, capsys, f"The metric score() {message}")
    assert re.search(r"on data row [0-5] \(counting from 0\)\. (Return a finite number|Fix score\(output, row\))", err)


def test_a_metric_returning_nan_means_no_score_for_that_row(ev, scripted, capsys):
    ev.user_ns["half"] = lambda output, row: float("nan") if row["question"].endswith(("0?", "1?")) else 1.0
    assert run_eval(ev, f"--data qa -m hello --base-url {scripted} --metrics half -o df").success
    df = ev.user_ns["df"]
    assert df["half"].isna().sum() == 2 and df["half"].dropna().eq(1.0).all()
    assert df.attrs["summary"]["half"]["variants"][0] == {"mean": 1.0, "ci95": 0.0, "n": 4, "partial": 0}


# ----------------------------------------------------------------------------- files and tables

def test_a_csv_line_with_an_extra_field_is_named(ev, tmp_path, capsys):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat is 2 + 2?,4\nName a colour,red, green\n")
    failed_with(run_eval(ev, f"--data {path}"), capsys, f"{path} line 3 has 3 fields; the header has 2.",
                "Put quotes around a field that holds a comma")


def test_a_csv_with_a_byte_order_mark_has_its_first_column(ev, scripted, tmp_path, capsys):
    path = tmp_path / "bom.csv"
    path.write_text("question,answer\nWhat is 2 + 2?,4\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert run_eval(ev, f"--data {path} -m hello --base-url {scripted} --reference answer -o df").success
    assert ev.user_ns["df"]["question"].tolist() == ["What is 2 + 2?"]


def test_a_bad_jsonl_line_is_named_by_its_real_number(ev, tmp_path, capsys):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "a"}\n\n{"question": "b"}\n{"question": "c",}\n')
    failed_with(run_eval(ev, f"--data {path}"), capsys, f"{path} line 4 is not JSON")
    path.write_text('{"question": "a"}\n["not", "an", "object"]\n')
    failed_with(run_eval(ev, f"--data {path}"), capsys, f"{path} line 2 is a JSON list, not an object.")


def test_integer_column_names_work(ev, scripted, capsys):
    import pandas as pd

    ev.user_ns["frame"] = pd.DataFrame({0: ["What is 2 + 2?", "Name a colour"], 1: ["4", "red"]})
    line = f"--data frame -m hello --base-url {scripted} --reference 1 --metrics contains -o df"
    assert run_eval(ev, line, "Column {{0}} holds: {0}").success, capsys.readouterr().err
    df = ev.user_ns["df"]
    assert df["0"].tolist() == ["What is 2 + 2?", "Name a colour"] and df["contains"].tolist() == [0.0, 0.0]
    prompts = sorted(body["messages"][-1]["content"] for body in ASKED[-2:])
    assert prompts == ["Column {0} holds: Name a colour", "Column {0} holds: What is 2 + 2?"]


def test_a_data_column_named_like_ours_is_kept(ev, scripted, capsys):
    ev.user_ns["qa"] = [{"question": "Why?", "output": "the user's own", "finish": "theirs", "length": 7}]
    assert run_eval(ev, f"--data qa -m hello --base-url {scripted} --metrics length -o df").success
    out = capsys.readouterr().out
    df = ev.user_ns["df"]
    row = df.iloc[0]
    assert row["output"] == "Hello from the server." and row["data_output"] == "the user's own"
    assert row["finish"] == "stop" and row["data_finish"] == "theirs"
    assert row["length"] == 4 and row["data_length"] == 7
    assert df.attrs["renamed"] == {"output": "data_output", "finish": "data_finish", "length": "data_length"}
    assert "The data's column 'output' is 'data_output' in the DataFrame" in out


# ----------------------------------------------------------------------------- judges

def test_a_judge_score_outside_one_to_five_or_in_prose_is_no_score_with_the_text_kept(ev, scripted, capsys):
    for judge, score, reason in [("judge-seven", None, ANSWERS["judge-seven"]),
                                 ("judge-prose", None, ANSWERS["judge-prose"]),
                                 ("judge-word", None, ANSWERS["judge-word"]),
                                 ("judge-fenced", 4.0, "Close enough."),
                                 ("judge-cut", 3.0, ANSWERS["judge-cut"])]:
        ev.run_line_magic("aigc", f"alias j-{judge} {judge} --base-url {scripted}")
        result = run_eval(ev, f"--data qa -m hello --base-url {scripted} --judge j-{judge} -o df")
        assert result.success, capsys.readouterr().err
        df = ev.user_ns["df"]
        if score is None:
            assert df["judge"].isna().all(), judge
        else:
            assert df["judge"].eq(score).all(), judge
        assert df["judge_reason"].eq(reason).all(), judge


# ----------------------------------------------------------------------------- stored answers

@pytest.mark.parametrize("stored", ['{"text": 5}', "[1, 2]", '{"model": "x"}', "not json at all",
                                    '{"text": "hi", "model": "m", "engine": "e", "params": {}, '
                                    '"finish_reason": "running"}',
                                    '{"text": "hi", "model": "m", "engine": "e", "params": [], "elapsed": "x"}'])
def test_a_stored_answer_in_another_shape_is_asked_again(ev, scripted, capsys, stored):
    line = f"--data qa -m hello --base-url {scripted} --metrics length -o df"
    assert run_eval(ev, line).success
    capsys.readouterr()
    with sqlite3.connect(ev._jupyter_aigc_session.history.path) as db:
        db.execute("UPDATE answers SET response = ?", (stored,))
    assert run_eval(ev, line).success, capsys.readouterr().err
    assert f"{len(QA)} answers asked, 0 reused" in capsys.readouterr().out
    assert ev.user_ns["df"]["output"].eq("Hello from the server.").all()
