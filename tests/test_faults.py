"""Faults a user meets: hostile or broken servers, interrupts, leaked secrets, bad values and bad settings.

The servers here are real sockets on 127.0.0.1: ``HostileServer`` (tests/hostile_server.py) answers the way
a broken or malicious OpenAI-compatible server would, chosen by the model name. The magics run in a real
IPython InteractiveShell (terminal rendering with rich) or in a real ipykernel (widget and HTML outputs,
comm messages), the way notebooks run them.
"""

from __future__ import annotations

import _thread
import base64
import json
import queue
import re
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import run_gpt
from hostile_server import HostileServer, dangerous_markup
from kernel import Kernel

KEY = "zz-custom-Key-9f8e7d6c5b4a"  # a key of no known shape: only "remember every key used" can mask it
PASSWORD = "pa55word-secret"
XSS_TEXT = "&lt;script&gt;window.__aigc_xss=1&lt;/script&gt;"  # the first XSS piece, escaped
GPT_VIEW = "GptView"


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server():
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture(scope="module")
def kernel():
    """One real ipykernel with the extension, for tests that only look at what a cell sends."""
    k = Kernel()
    try:
        out = k.run("%load_ext jupyter_aigc")
        assert out["status"] == "ok", out
        yield k
    finally:
        k.close()


@pytest.fixture
def own_history(tmp_path, monkeypatch) -> Path:
    """A history file of this test alone (request it before ``shell``: the session opens it at load)."""
    path = tmp_path / "history" / "history.sqlite"
    monkeypatch.setenv("JUPYTER_AIGC_HISTORY", str(path))
    return path


def session(ip):
    return ip._jupyter_aigc_session


def posts(server: HostileServer, model: str | None = None) -> list[dict]:
    """The completion requests the server received (for ``model``, or all)."""
    return [r for r in list(server.requests) if r["method"] == "POST"
            and (model is None or (r["body"] or {}).get("model") == model)]


def one_line(text: str) -> str:
    """rich wraps long lines in the terminal; join them to compare messages."""
    return " ".join(text.split())


def execute(kernel: Kernel, code: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    """Run ``code`` in the kernel; the reply content and every iopub message the cell caused."""
    messages: list[dict] = []
    reply = kernel.kc.execute_interactive(code, output_hook=messages.append, timeout=timeout)
    return reply["content"], messages


def stderr_of(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def html_outputs(messages: list[dict]) -> list[str]:
    """Every text/html the cell displayed (first display and in-place updates)."""
    return [m["content"]["data"]["text/html"] for m in messages
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result")
            and "text/html" in m["content"].get("data", {})]


def gpt_view_comms(messages: list[dict]) -> set[str]:
    return {m["content"]["comm_id"] for m in messages if m["msg_type"] == "comm_open"
            and str(m["content"]["data"].get("state", {}).get("_anywidget_id", "")).endswith(GPT_VIEW)}


def widget_states(messages: list[dict], comm_ids: set[str]) -> list[dict]:
    """The GptView's synced state, in order: the opening state, then each update."""
    states = []
    for m in messages:
        content = m["content"]
        if m["msg_type"] in ("comm_open", "comm_msg") and content.get("comm_id") in comm_ids:
            state = (content.get("data") or {}).get("state")
            if isinstance(state, dict):
                states.append(state)
    return states


def column_htmls(states: list[dict]) -> list[str]:
    return [column.get("html", "") for state in states for column in state.get("columns") or []]


def wait_for_iopub(kernel: Kernel, predicate, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        if predicate(msg):
            return msg
    raise AssertionError("the kernel sent no such message")


# ------------------------------------------------------------------------- 1. hostile markup never runs


@pytest.mark.slow
@pytest.mark.parametrize("widget", [True, False], ids=["widget", "html-renderer"])
def test_streamed_xss_is_shown_as_inert_text(kernel, server, widget):
    execute(kernel, f"%config AigcConfig.widget = {widget}")
    try:
        reply, messages = execute(kernel, f"%%gpt -m xss --base-url {server.url} --new\nSay something.")
    finally:
        execute(kernel, "%config AigcConfig.widget = True")
    assert reply["status"] == "ok", "a hostile answer is still an answer"
    htmls = html_outputs(messages)
    assert htmls, "the answer was displayed as HTML"
    for html in htmls:
        assert dangerous_markup(html) == [], html
    final = htmls[-1]
    assert XSS_TEXT in final, "the markup is shown, escaped, as text"
    assert ("aigc-fallback" in final) == widget, "the widget's static copy carries the fallback marker"
    comms = gpt_view_comms(messages)
    assert bool(comms) == widget
    if widget:
        htmls = column_htmls(widget_states(messages, comms))
        assert any(XSS_TEXT in h for h in htmls), "the widget streamed the escaped text"
        for html in htmls:
            assert dangerous_markup(html) == [], html


@pytest.mark.slow
def test_xss_in_a_server_error_fails_the_cell_and_stays_text(kernel, server):
    reply, messages = execute(kernel, f"%%gpt -m xss-error --base-url {server.url} --new\nhi")
    assert reply["status"] == "error" and reply["ename"] == "UsageError"
    assert "refused the request (400)" in reply["evalue"]
    htmls = html_outputs(messages) + column_htmls(widget_states(messages, gpt_view_comms(messages)))
    assert htmls
    for html in htmls:
        assert dangerous_markup(html) == [], html
    assert any("&lt;img src=x onerror" in html for html in htmls), "the error is in the static copy, escaped"


# ------------------------------------------------------------------------------ 2. a server that hangs


@pytest.mark.slow
def test_kernel_interrupt_ends_a_hanging_request_at_once(server):
    k = Kernel()
    try:
        assert k.run("%load_ext jupyter_aigc")["status"] == "ok"
        assert k.run("%config AigcConfig.timeout = 60")["status"] == "ok"
        before = len(posts(server, "hang"))
        msg_id = k.start(f"%%gpt -m hang --base-url {server.url} --new -o answer\nhi")
        deadline = time.time() + 60
        while len(posts(server, "hang")) == before and time.time() < deadline:
            time.sleep(0.1)
        assert len(posts(server, "hang")) > before, "the request reached the server"
        time.sleep(2)  # the server holds the request, as a hung server does
        interrupted = time.time()
        k.km.interrupt_kernel()
        reply = k.wait_for_reply(msg_id, timeout=60)
        ended = time.time() - interrupted
        assert ended < 3, f"Kernel → Interrupt ends the cell within about a second (took {ended:.1f} s)"
        assert reply["content"]["status"] == "error", "the cell is marked failed, so Run All stops"
        assert "Interrupted" in reply["content"]["evalue"], reply["content"]
        out = k.run("1+1")
        results = [o["data"]["text/plain"] for o in out["outputs"] if "execution_count" in o]
        assert out["status"] == "ok" and results == ["2"], out
    finally:
        k.close()


def test_terminal_interrupt_ends_a_hanging_request_at_once(shell, server, capsys):
    shell.run_line_magic("config", "AigcConfig.timeout = 60")
    timer = threading.Timer(2, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        result = run_gpt(shell, f"-m hang --base-url {server.url} --new", "hi")
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
    assert not result.success
    assert "UsageError: Interrupted." in capsys.readouterr().err
    assert elapsed < 2 + 2, "the interrupt ended the cell within about a second"
    assert session(shell).history[-1]["finish_reason"] == "stopped"


# -------------------------------------------------------------------- 3. timeouts say what really happened


def test_timeout_message_counts_the_retries_and_the_real_wait(shell, server, capsys):
    shell.run_line_magic("config", "AigcConfig.timeout = 1")
    shell.run_line_magic("config", "AigcConfig.max_retries = 1")
    before = len(posts(server, "hang"))
    started = time.monotonic()
    result = run_gpt(shell, f"-m hang --base-url {server.url} --new", "hi")
    waited = time.monotonic() - started
    err = capsys.readouterr().err
    assert not result.success
    message = next(line for line in err.splitlines() if line.startswith("UsageError:"))
    found = re.search(r"did not answer \((\d+) attempts in (\d+) s, 1 s each\)", message)
    assert found, message
    attempts, said = int(found[1]), int(found[2])
    assert attempts == 2 and len(posts(server, "hang")) - before == 2, "one try and one retry reached the server"
    assert said >= 2, "two attempts of 1 s each take at least 2 s"
    assert abs(said - waited) <= 1, f"the message says {said} s, the cell waited {waited:.1f} s"


# ----------------------------------------------------------------------------- 4.-9. broken streams


def test_connection_cut_mid_answer_keeps_the_part_and_marks_it_cut_off(shell, server, capsys):
    result = run_gpt(shell, f"-m close-mid --base-url {server.url} --new -o answer", "hi")
    captured = capsys.readouterr()
    assert not result.success
    assert shell.user_ns["answer"] == "Partial answer"
    assert session(shell).history[-1]["finish_reason"] == "incomplete"
    assert "cut off" in one_line(captured.out)
    assert "broke off the answer" in captured.err and "Traceback" not in captured.err
    assert session(shell).chat.turns[-1].answer == "Partial answer"
    assert session(shell).chat.turns[-1].cut_off is True


def test_html_page_instead_of_an_api(shell, server, capsys):
    result = run_gpt(shell, f"-m html --base-url {server.url} --new", "hi")
    err = capsys.readouterr().err
    assert not result.success
    line = next(line for line in err.splitlines() if line.startswith("UsageError:"))
    assert "text/html" in line and "Welcome to nginx" in line and "Check --base-url" in line
    assert session(shell).history[-1]["finish_reason"] == "error", "nothing is marked done"
    assert session(shell).chat.turns == [], "a page is not an answer to remember"


def test_event_that_is_not_json(shell, server, capsys):
    result = run_gpt(shell, f"-m bad-json --base-url {server.url} --new", "hi")
    err = capsys.readouterr().err
    assert not result.success and "sent an event that is not JSON" in err and "Traceback" not in err
    assert session(shell).history[-1]["finish_reason"] == "error"


@pytest.mark.slow
def test_answer_for_a_completion_never_asked_for(kernel, server):
    reply, messages = execute(kernel, f"%%gpt -m bad-index --base-url {server.url} --new\nhi")
    assert reply["status"] == "error"
    assert "sent an answer for completion #6, but one was asked for" in reply["evalue"]
    assert "completion #6" in stderr_of(messages)
    states = widget_states(messages, gpt_view_comms(messages))
    running = [state["running"] for state in states if "running" in state]
    assert running and running[-1] is False, "the widget stops showing the answer as running"
    columns = [state["columns"] for state in states if state.get("columns")]
    assert columns[-1][0]["status"] == "error"


def test_empty_answer_says_so_and_why(shell, server, capsys):
    result = run_gpt(shell, f"-m empty --base-url {server.url} --new -o answer", "hi")
    err = capsys.readouterr().err
    assert not result.success
    assert "The model returned an empty answer (finish reason 'stop', 0 tokens)" in err
    assert "answer" not in shell.user_ns, "a cell that got nothing leaves -o as it was"


def test_max_tokens_reached_is_an_answer_with_a_note(shell, server, capsys):
    result = run_gpt(shell, f"-m length --base-url {server.url} --new -o answer", "hi")
    captured = capsys.readouterr()
    assert result.success and shell.user_ns["answer"] == "Cut"
    assert session(shell).history[-1]["finish_reason"] == "length"
    assert "hit max tokens" in one_line(captured.out) and "UsageError" not in captured.err


# ------------------------------------------------------------------------------------- 10.-11. secrets


def history_bytes(path: Path) -> bytes:
    """The history database with its write-ahead log: everything SQLite wrote to disk."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_key_from_key_env_is_not_shown_in_errors_or_history(own_history, shell, server, monkeypatch, capsys):
    assert session(shell).history.path == own_history, "the session writes this test's history file"
    monkeypatch.setenv("MYKEY", KEY)
    run_gpt(shell, f"-m echo-auth --base-url {server.url} --key-env MYKEY --new", "hi")
    assert posts(server, "echo-auth")[-1]["headers"]["authorization"] == f"Bearer {KEY}", "the key was used"
    capsys.readouterr()  # the echoed answer itself: see test_key_echoed_in_an_answer_is_masked
    result = run_gpt(shell, f"-m echo-auth-error --base-url {server.url} --key-env MYKEY -o answer", "hi")
    assert not result.success
    shell.run_line_magic("aigc", "history")
    captured = capsys.readouterr()
    assert "Bad key: Bearer" in captured.err, "the server's error is shown, masked"
    assert "echo-auth-error" in captured.out and captured.out.count("echo-auth") >= 2, "history lists both cells"
    assert KEY not in captured.out + captured.err
    assert KEY not in str(shell.user_ns.get("answer", ""))
    assert all(KEY not in json.dumps(entry) for entry in session(shell).history)
    assert own_history.exists() and KEY.encode() not in history_bytes(own_history)


def test_key_echoed_in_an_answer_is_masked(shell, server, monkeypatch, capsys):
    monkeypatch.setenv("MYKEY", KEY)
    result = run_gpt(shell, f"-m echo-auth --base-url {server.url} --key-env MYKEY --new -o answer", "hi")
    captured = capsys.readouterr()
    assert result.success and "Your header was" in shell.user_ns["answer"]
    assert KEY not in captured.out + captured.err
    assert KEY not in str(shell.user_ns.get("answer", ""))


def base_url_with_password(server: HostileServer, port: str | None = None) -> str:
    host = server.url.split("://", 1)[1]
    if port is not None:
        host = re.sub(r":\d+/", f":{port}/", host)
    return f"http://user:{PASSWORD}@{host}"


BASIC = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
@pytest.mark.parametrize("mode, port", [
    ("ok", None),
    ("html", None),
    ("echo-auth-error", None),
    ("hang", None),
    ("ok", "1"),
], ids=["ok", "html", "echo-auth-error", "timeout", "refused"])
def test_password_in_base_url_is_never_shown(own_history, shell, server, monkeypatch, capsys, mode, port):
    assert session(shell).history.path == own_history, "the session writes this test's history file"
    monkeypatch.setenv("MYKEY", KEY)
    shell.run_line_magic("config", "AigcConfig.timeout = 1")
    shell.run_line_magic("config", "AigcConfig.max_retries = 0")
    run_gpt(shell, f"-m {mode} --base-url {base_url_with_password(server, port)} --key-env MYKEY --new -o answer",
            "hi")
    shell.run_line_magic("aigc", "history")
    captured = capsys.readouterr()
    shown = captured.out + captured.err + json.dumps(list(session(shell).history)) + str(shell.user_ns.get("answer", ""))
    assert session(shell).history[-1]["model"] == mode
    assert PASSWORD not in shown and BASIC not in shown
    stored = history_bytes(own_history)
    assert PASSWORD.encode() not in stored and BASIC.encode() not in stored


def saved_notebook(tmp_path: Path, cells: list[str]) -> str:
    """Run ``cells`` with nbclient (as a CI job would, no stdin) and return the saved .ipynb text."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    return path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [
    "echo-auth-error",
    "echo-auth",
])
def test_saved_notebook_holds_no_key(tmp_path, server, monkeypatch, mode):
    monkeypatch.setenv("MYKEY", KEY)
    text = saved_notebook(tmp_path, [
        "%load_ext jupyter_aigc",
        f"%%gpt -m {mode} --base-url {server.url} --key-env MYKEY -o answer\nhi",
        "print(answer)",
        "%aigc history 5",
    ])
    assert posts(server, mode)[-1]["headers"]["authorization"] == f"Bearer {KEY}", "the key was used"
    assert "Bad key: Bearer" in text if mode == "echo-auth-error" else "Your header was" in text, "the cells ran"
    assert KEY not in text


def test_history_file_is_readable_by_its_owner_only(own_history, shell, server):
    assert session(shell).history.path == own_history, "the session writes this test's history file"
    result = run_gpt(shell, f"-m ok --base-url {server.url} --new", "hi")
    assert result.success
    files = list(own_history.parent.glob(own_history.name + "*"))
    assert own_history in files
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, f"{path.name} is {oct(path.stat().st_mode & 0o777)}"


# ----------------------------------------------------------------------------------- 12. stop sequences


@pytest.mark.slow
def test_stop_at_newline_as_typed_in_a_cell(shell, capsys):
    prompt = "List three fruits, one per line."
    run_gpt(shell, "--temperature 0 --max-tokens 48 --new -o answer", prompt)
    assert "\n" in shell.user_ns["answer"].strip(), "without --stop the answer has several lines"
    result = run_gpt(shell, '--temperature 0 --max-tokens 48 --new -o answer --stop "\\n"', prompt)
    assert result.success
    answer = shell.user_ns["answer"]
    assert answer and "\n" not in answer, answer
    assert session(shell).history[-1]["params"]["stop"] == ["\n"]
    assert session(shell).history[-1]["finish_reason"] == "stop"


def test_empty_stop_sequence_is_refused(shell, server, capsys):
    before = len(posts(server))
    result = run_gpt(shell, f'-m ok --base-url {server.url} --stop ""', "hi")
    err = capsys.readouterr().err
    assert not result.success and "--stop got an empty string" in err
    assert len(posts(server)) == before, "nothing was sent"


# ---------------------------------------------------------------------------------- 13. interpolation


class Unprintable:
    def __str__(self):
        raise ValueError("no text for you")


@pytest.mark.parametrize("name, value, message", [
    ("bad", Unprintable(), "{bad} could not be turned into text: ValueError: no text for you."),
    ("s", "\ud800", "a lone surrogate, U+D800"),
], ids=["str-raises", "lone-surrogate"])
def test_a_value_that_cannot_be_sent_is_one_line(shell, server, capsys, name, value, message):
    shell.user_ns[name] = value
    before = len(posts(server))
    result = run_gpt(shell, f"-m ok --base-url {server.url} --new", f"Tell me about {{{name}}}.")
    captured = capsys.readouterr()
    assert not result.success
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError:") and message in lines[0], lines
    assert len(posts(server)) == before, "nothing was sent"


# ------------------------------------------------------------------------------- 14. config validation


@pytest.mark.slow
@pytest.mark.parametrize("name, value, message", [
    ("dtype", "'bogus'", "'bogus'"),
    ("device", "'cuda'", "0 CUDA device(s)"),
    ("temperature", "5", "should not be greater than 2"),
])
def test_a_bad_setting_is_refused_and_changes_nothing(kernel, name, value, message):
    if name == "device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA device, so 'cuda' is a valid setting")
    config = "get_ipython()._jupyter_aigc_session.config"
    before = kernel.value(f"{config}.{name}")
    reply, messages = execute(kernel, f"%config AigcConfig.{name} = {value}")
    err = stderr_of(messages)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert kernel.value(f"{config}.{name}") == before
    assert kernel.run("%config AigcConfig.max_tokens = 17")["status"] == "ok"
    assert kernel.value(f"{config}.max_tokens") == 17, "later settings still apply"
    kernel.run("%config AigcConfig.max_tokens = 256")


# --------------------------------------------------------------------------------- 15. no stdin for a key


@pytest.mark.slow
def test_key_prompt_without_stdin_fails_with_one_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in ["%load_ext jupyter_aigc", "%aigc key openai", "1+1"]]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[1].outputs
    text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError: This frontend cannot ask for the key"), outputs
    assert "OPENAI_API_KEY" in lines[0] and "--key-env" in lines[0]
    assert not any(o.get("output_type") == "error" for o in outputs), "no traceback"
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "2", "the kernel goes on"


# --------------------------------------------------------------------- 16. regenerate checks its controls


def send_regenerate(kernel: Kernel, comm_id: str, controls) -> None:
    """The message the widget's Regenerate sends (an anywidget custom message on its comm)."""
    msg = kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
        "method": "custom", "content": {"type": "regenerate", "controls": controls}}})
    kernel.kc.shell_channel.send(msg)


def error_in_columns(comm_id: str, text: str = ""):
    """A predicate for ``wait_for_iopub``: a state update of that widget with an error containing ``text``."""
    def found(msg: dict) -> bool:
        content = msg["content"]
        if msg["msg_type"] != "comm_msg" or content.get("comm_id") != comm_id:
            return False
        columns = (content["data"].get("state") or {}).get("columns") or []
        return any(text in (column.get("error") or "") and column.get("error") for column in columns)

    return found


@pytest.mark.slow
def test_regenerate_refuses_controls_out_of_range(kernel, server):
    reply, messages = execute(kernel, f"%%gpt -m ok --base-url {server.url} --new\nhi")
    assert reply["status"] == "ok"
    (comm_id,) = gpt_view_comms(messages)
    before = len(posts(server, "ok"))

    def regenerate(controls: dict) -> None:
        send_regenerate(kernel, comm_id, controls)

    error_column = error_in_columns(comm_id)
    regenerate({"temperature": 1e308, "top_p": 1, "max_tokens": 5, "seed": None})
    update = wait_for_iopub(kernel, error_column)
    error = update["content"]["data"]["state"]["columns"][0]["error"]
    assert "out of range" in error and "temperature" in error, error
    time.sleep(0.5)  # a request, had one been started, would have reached the server by now
    assert len(posts(server, "ok")) == before, "nothing was sent"
    assert not any((r["body"] or {}).get("temperature") == 1e308 for r in posts(server))
    # the same message with values in range does regenerate: the refusal above was the range check
    regenerate({"temperature": 0.5, "top_p": 1, "max_tokens": 5, "seed": None})
    deadline = time.time() + 30
    while len(posts(server, "ok")) == before and time.time() < deadline:
        time.sleep(0.1)
    sent = posts(server, "ok")[-1]["body"]
    assert len(posts(server, "ok")) == before + 1 and sent["temperature"] == 0.5 and sent["max_tokens"] == 5


@pytest.mark.slow
def test_a_shared_control_moved_retitles_every_column(kernel, server):
    """A --temperature 0,1.0 comparison titles its columns by temperature; after the shared slider moves to 0.5
    every column is asked again at 0.5, and the titles say so (they kept "0.0" and "1.0")."""
    reply, messages = execute(kernel, f"%%gpt -m ok --base-url {server.url} --temperature 0,1.0 --new\nhi")
    assert reply["status"] == "ok"
    (comm_id,) = gpt_view_comms(messages)
    first = [m for m in messages if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id
             and (m["content"]["data"].get("state") or {}).get("columns")]
    assert [c["title"] for c in first[-1]["content"]["data"]["state"]["columns"]] == [
        "temperature 0.0", "temperature 1.0"]

    def retitled(msg: dict) -> bool:
        content = msg["content"]
        columns = (content.get("data", {}).get("state") or {}).get("columns") or []
        return (msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id and len(columns) == 2
                and all(c.get("title") == "temperature 0.5" for c in columns))

    before = len(posts(server, "ok"))
    send_regenerate(kernel, comm_id, {"temperature": 0.5, "top_p": 1, "max_tokens": 5, "seed": None})
    wait_for_iopub(kernel, retitled)
    deadline = time.time() + 30
    while len(posts(server, "ok")) < before + 2 and time.time() < deadline:
        time.sleep(0.1)
    assert [p["body"]["temperature"] for p in posts(server, "ok")[before:]] == [0.5, 0.5]


@pytest.mark.slow
def test_regenerate_answers_whatever_it_is_sent_and_stays_usable(kernel, server):
    """A regenerate message whose controls are not even a dict used to raise inside the handler and keep its
    lock: the widget waited forever and ignored every later click. It answers with a message now, and the next
    regenerate works."""
    reply, messages = execute(kernel, f"%%gpt -m ok --base-url {server.url} --new\nhi")
    assert reply["status"] == "ok"
    (comm_id,) = gpt_view_comms(messages)
    before = len(posts(server, "ok"))

    send_regenerate(kernel, comm_id, [1, 2])
    wait_for_iopub(kernel, error_in_columns(comm_id, "Regenerate failed"))
    send_regenerate(kernel, comm_id, {"temperature": 0.5, "top_p": 1, "max_tokens": 5, "seed": None})
    deadline = time.time() + 30
    while len(posts(server, "ok")) == before and time.time() < deadline:
        time.sleep(0.1)
    assert len(posts(server, "ok")) == before + 1, "the next regenerate was not ignored"
