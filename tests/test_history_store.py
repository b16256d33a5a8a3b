"""%aigc history: answers kept in SQLite across kernels, searchable, clearable, with keys masked."""

import sqlite3

import pytest

from conftest import run_gpt
from kernel import Kernel
from jupyter_aigc.record.history import HistoryStore


def test_history_outlives_the_kernel(tiny_model):
    first = Kernel()
    try:
        first.run("%load_ext jupyter_aigc")
        first.run(f"%%gpt -m {tiny_model} --max-tokens 4\nRemember the lighthouse.")
        assert first.value("len(__import__('jupyter_aigc').get_session().history)") == 1
    finally:
        first.close()
    second = Kernel()
    try:
        second.run("%load_ext jupyter_aigc")
        assert second.value("len(__import__('jupyter_aigc').get_session().history)") == 0, "this kernel's own"
        out = second.run("%aigc history 50")
        shown = out["stdout"] + "".join(o["data"].get("text/plain", "") for o in out["outputs"])  # rich → display
        assert "Remember the lighthouse." in shown and "tiny-llama" in shown
    finally:
        second.close()


def test_grep_kernel_filter_and_clear(shell, tiny_model, capsys):
    run_gpt(shell, f"-m {tiny_model} --max-tokens 3", "Tell me about owls.")
    run_gpt(shell, f"-m {tiny_model} --max-tokens 3", "Tell me about ravens.")
    capsys.readouterr()
    shell.run_line_magic("aigc", "history 20 --grep owls --kernel")
    out = capsys.readouterr().out
    assert "owls" in out and "ravens" not in out
    store = shell._jupyter_aigc_session.history
    assert store[-1]["prompt"] == "Tell me about ravens." and store[-2]["prompt"] == "Tell me about owls."
    assert [e["prompt"] for e in store[-2:]] == ["Tell me about owls.", "Tell me about ravens."]
    shell.run_line_magic("aigc", "history --clear")
    assert "Deleted" in capsys.readouterr().out
    assert len(store) == 0 and store.recent(10) == []
    run_gpt(shell, f"-m {tiny_model} --max-tokens 3", "After the clear.")
    assert store[-1]["prompt"] == "After the clear.", "history keeps working after a clear"


def test_bad_history_arguments_give_a_short_error(shell, capsys):
    result = shell.run_cell("%aigc history --bogus")
    err = capsys.readouterr().err
    assert not result.success and "UsageError: %aigc history: unrecognized arguments: --bogus" in err
    assert "Traceback" not in err


def test_keys_are_masked_before_anything_is_written(tmp_path, monkeypatch):
    key = "sk-test-" + "x" * 40
    monkeypatch.setenv("OPENAI_API_KEY", key)
    store = HistoryStore(tmp_path / "h.sqlite")
    store.append({"time": 1.0, "prompt": f"my key is {key}", "model": "m", "engine": "openai",
                  "text": f"echo {key}", "finish_reason": "stop"})
    assert key not in (tmp_path / "h.sqlite").read_bytes().decode("latin-1")
    for table_row in sqlite3.connect(tmp_path / "h.sqlite").execute("SELECT prompt, entry FROM history"):
        assert key not in "".join(table_row)
    assert store[-1]["prompt"].startswith("my key is sk-")


def test_unwritable_file_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = HistoryStore(blocker / "history.sqlite")
    assert store.persistent is False
    store.append({"time": 1.0, "prompt": "p", "model": "m", "engine": "transformers", "finish_reason": "stop"})
    assert store[-1]["prompt"] == "p" and len(store) == 1
    with pytest.raises(IndexError):
        store[5]
