"""%%gpt against a real OpenAI-compatible server: llama.cpp's own server (xllamacpp) serving SmolLM2 on 127.0.0.1."""

import time

import httpx
import nbformat
import pytest

from conftest import free_port, run_gpt, start_llama_server

pytestmark = pytest.mark.slow


def session(ip):
    return ip._jupyter_aigc_session


def test_streams_paris_in_several_chunks_with_server_usage(shell, llama_server):
    url, _ = llama_server
    from jupyter_aigc.core.models import resolve
    from jupyter_aigc.core.types import Request

    spec = resolve("smollm2", {}, url)
    request = Request(messages=[{"role": "user", "content": "What is the capital of France?"}], model="smollm2",
                      temperature=0, max_tokens=32)
    import threading

    chunks = list(session(shell).engines['openai'].stream(request, spec, threading.Event()))
    assert len([c for c in chunks if c.text]) > 1, "streamed in more than one chunk"
    run_gpt(shell, f"-m smollm2 --base-url {url} --temperature 0 --max-tokens 32 -o answer --new",
            "What is the capital of France?")
    assert "Paris" in shell.user_ns["answer"]
    usage = session(shell).history[-1]["usage"]
    # ask the server directly, without streaming, for its own count of the same greedy request
    raw = httpx.post(f"{url}/chat/completions", json={
        "model": "smollm2", "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0, "max_tokens": 32}, timeout=60).json()
    assert raw["choices"][0]["message"]["content"] == shell.user_ns["answer"]
    assert usage["completion_tokens"] == raw["usage"]["completion_tokens"]
    assert usage["prompt_tokens"] == raw["usage"]["prompt_tokens"] and not usage.get("counted")


def test_chat_memory_across_cells_and_backends(shell, llama_server, capsys):
    url, _ = llama_server
    shell.run_line_magic("aigc", f"alias server smollm2 --base-url {url}")
    run_gpt(shell, "-m server --temperature 0 --max-tokens 32 --new", "Remember the word: banana.")
    run_gpt(shell, "-m server --temperature 0 --max-tokens 32 -o answer", "What word did I ask you to remember?")
    assert "banana" in shell.user_ns["answer"].lower()
    # switch to the local backend mid-conversation: it sees both earlier turns
    run_gpt(shell, "--temperature 0 --max-tokens 32 -o answer", "Which fruit did we talk about?")
    assert [t.model for t in session(shell).chat.turns] == ["smollm2", "smollm2", "SmolLM2-135M-Instruct"]
    assert session(shell).history[-1]["usage"]["prompt_tokens"] > 60, "the local model got the earlier turns"


def test_n_completions(shell, llama_server):
    url, _ = llama_server
    run_gpt(shell, f"-m smollm2 --base-url {url} -n 2 --temperature 1 --seed 3 --max-tokens 12 -o answer --new",
            "Name a colour.")
    answers = shell.user_ns["answer"]
    assert isinstance(answers, list) and len(answers) == 2 and all(answers)


def test_local_and_server_render_the_same_way(shell, llama_server, capsys):
    url, _ = llama_server
    run_gpt(shell, f"-m smollm2 --base-url {url} --temperature 0 --max-tokens 16 --new", "What is 2+2?")
    server_out = capsys.readouterr().out
    run_gpt(shell, "--temperature 0 --max-tokens 16 --new", "What is 2+2?")
    local_out = capsys.readouterr().out
    for out, engine in ((server_out, "openai"), (local_out, "llama.cpp")):
        assert f"· {engine} ·" in out and " out" in out and "tok/s" in out


def test_logprobs_from_the_server(shell, llama_server):
    url, _ = llama_server
    import threading

    from jupyter_aigc.core.models import resolve
    from jupyter_aigc.core.types import Request

    request = Request(messages=[{"role": "user", "content": "Hi"}], model="smollm2", temperature=0,
                      max_tokens=5, logprobs=True)
    chunks = list(session(shell).engines['openai'].stream(request, resolve("smollm2", {}, url), threading.Event()))
    tokens = [t for c in chunks for t in c.tokens]
    assert tokens and all(0 < t.prob <= 1 and t.top for t in tokens)


def test_models_lists_the_server(shell, llama_server, capsys):
    url, _ = llama_server
    shell.run_line_magic("aigc", f"models --base-url {url}")
    assert "smollm2" in capsys.readouterr().out


def test_wrong_port_names_the_url(shell, capsys):
    port = free_port()
    run_gpt(shell, f"-m smollm2 --base-url http://127.0.0.1:{port}/v1 --new", "hi")
    out = capsys.readouterr()
    assert f"Could not connect to http://127.0.0.1:{port}/v1: connection refused" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_unknown_model_lists_available(shell, llama_server, capsys):
    """llama.cpp's server answers any model name with its one model, so 404 is checked on its routes."""
    url, _ = llama_server
    import openai

    from jupyter_aigc.core.models import resolve
    from jupyter_aigc.engines.openai import OpenAIEngine

    error = OpenAIEngine().translate(openai.NotFoundError("nope", response=httpx.Response(
        404, request=httpx.Request("POST", url)), body=None), resolve("gpt-nope", {}, url), time.monotonic())
    assert "has no model 'gpt-nope' (404)" in str(error) and "smollm2" in str(error)


def test_server_killed_mid_stream_keeps_partial_text_marked_cut_off(shell, default_gguf, capsys, monkeypatch):
    server = start_llama_server(default_gguf)
    url, proc = next(server)
    import threading

    from jupyter_aigc.views.text import TerminalRenderer

    streaming = threading.Event()  # the first text reached the view (on a busy machine that can take seconds)
    append = TerminalRenderer.append

    def noted(self, *args):
        streaming.set()
        return append(self, *args)

    monkeypatch.setattr(TerminalRenderer, "append", noted)

    def kill_mid_stream():
        if streaming.wait(120):
            time.sleep(0.5)
        proc.kill()

    killer = threading.Thread(target=kill_mid_stream, daemon=True)
    killer.start()
    result = run_gpt(shell, f"-m smollm2 --base-url {url} --temperature 0.8 --max-tokens 3000 -o answer --new",
                     "Write a very long story about a dragon.")
    killer.join(timeout=5)
    out = capsys.readouterr()
    assert shell.user_ns["answer"], "partial text kept"
    assert "broke off the answer" in out.out + out.err and "cut off" in out.out
    assert not result.success, "a cut-off answer fails the cell"
    assert session(shell).history[-1]["finish_reason"] == "incomplete"
    assert session(shell).chat.turns[-1].cut_off, "chat memory keeps it, marked"
    server.close()
    run_gpt(shell, "--temperature 0 --max-tokens 8 -o answer", "Say hi.")
    assert session(shell).history[-1]["finish_reason"] in ("stop", "length")


def test_key_rejected_is_401_and_key_never_shown(shell, default_gguf, capsys, monkeypatch):
    secret = "sk-test-SECRET-0123456789abcdef"
    server = start_llama_server(default_gguf, key="right-key-0123456789")
    url, _ = next(server)
    try:
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        run_gpt(shell, f"-m smollm2 --base-url {url} --max-tokens 4 --new", "hi")
        out = capsys.readouterr()
        assert "rejected the API key (401)" in out.out + out.err
        assert secret not in out.out + out.err
        shell.run_line_magic("aigc", "config")
        shell.run_line_magic("aigc", "history")
        assert secret not in capsys.readouterr().out
        monkeypatch.setenv("OPENAI_API_KEY", "right-key-0123456789")
        run_gpt(shell, f"-m smollm2 --base-url {url} --max-tokens 4 -o answer", "hi")
        assert session(shell).history[-1]["finish_reason"] in ("stop", "length")
    finally:
        server.close()


def test_missing_key_for_openai_says_how_to_set_one(shell, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run_gpt(shell, "-m openai:gpt-4o-mini", "hi")
    out = capsys.readouterr()
    assert "No API key for openai" in out.out + out.err and "%aigc key openai" in out.out + out.err


def test_saved_notebook_contains_no_key(llama_server, tmp_path):
    """Run a notebook that uses a key in a real kernel, save it, and search the file for the key."""
    from nbclient import NotebookClient

    url, _ = llama_server
    secret = "sk-live-NOTEBOOK-SECRET-42424242"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_aigc"),
        nbformat.v4.new_code_cell(f"import os; os.environ['OPENAI_API_KEY'] = '{secret[:10]}' + '{secret[10:]}'"),
        nbformat.v4.new_code_cell(f"%%gpt -m smollm2 --base-url {url} --max-tokens 8\nHello"),
        nbformat.v4.new_code_cell("%aigc config"),
        nbformat.v4.new_code_cell("%aigc history"),
        nbformat.v4.new_code_cell("%%gpt -m openai:gpt-4o-mini --base-url http://127.0.0.1:9/v1\nHello"),
    ]
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True).execute()
    assert nb.cells[-1].outputs, "the last cell failed with a message (no server on port 9)"
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    assert secret not in path.read_text()
