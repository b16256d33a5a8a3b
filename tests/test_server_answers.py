"""What a server sends that is off the protocol's happy path, and options a user gets wrong: each is either
handled or one line in the cell, never a traceback or a silent wrong result. The server is ``HostileServer``
on 127.0.0.1 (tests/hostile_server.py); the magics run in a real IPython InteractiveShell."""

from __future__ import annotations

import os
import stat

import pytest

from conftest import run_gpt
from hostile_server import HostileServer


@pytest.fixture(scope="module")
def server():
    with HostileServer() as hostile:
        yield hostile


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_logprob_that_is_not_a_number_is_one_line(shell, server, capsys):
    result = run_gpt(shell, f"-m nan-logprob --base-url {server.url} --logprobs -o answer", "hi")
    err = one_line(capsys.readouterr().err)
    assert not result.success and "Traceback" not in err
    assert "sent a token log-probability that is not a number" in err and "without --logprobs" in err


def test_usage_counts_sent_as_strings_are_counted(shell, server, capsys):
    result = run_gpt(shell, f"-m string-usage --base-url {server.url}", "hi")
    out = one_line(capsys.readouterr().out)
    assert result.success and "7 in → 2 out" in out
    assert shell._jupyter_aigc_session.history[-1]["usage"]["completion_tokens"] == 2


def test_content_filter_after_half_a_word_is_marked_and_fails_the_cell(shell, server, capsys):
    result = run_gpt(shell, f"-m content-filter --base-url {server.url} -o answer", "hi")
    captured = capsys.readouterr()
    assert not result.success
    assert "content filter stopped it" in one_line(captured.err)
    assert "cut off by the server (content_filter)" in one_line(captured.out)
    assert shell.user_ns["answer"] == "Half a wo", "the part that came is kept"
    assert shell._jupyter_aigc_session.history[-1]["finish_reason"] == "content_filter"


def test_a_server_that_ignores_max_tokens_is_marked(shell, server, capsys):
    result = run_gpt(shell, f"-m ignore-max --base-url {server.url} --max-tokens 4", "hi")
    out = one_line(capsys.readouterr().out)
    assert result.success and "more than --max-tokens 4: the server ignored it" in out


def test_raw_on_a_chat_only_server_says_so(shell, server, capsys):
    result = run_gpt(shell, f"-m chat-only --base-url {server.url} --raw", "hi")
    err = one_line(capsys.readouterr().err)
    assert not result.success and "has no Completion API" in err and "drop --raw" in err
    assert "has no model" not in err


def test_an_output_name_that_is_not_a_variable_is_refused(shell, server, capsys):
    sent = len(server.requests)
    result = run_gpt(shell, f"-m ok --base-url {server.url} -o 'not valid'", "hi")
    err = capsys.readouterr().err
    assert not result.success and "-o 'not valid' is not a Python variable name" in one_line(err)
    assert "not valid" not in shell.user_ns and len(server.requests) == sent, "refused before anything is asked"


@pytest.mark.parametrize("value", ["float('inf')", "float('nan')"])
def test_a_budget_that_is_not_finite_is_refused(shell, caplog, value):
    before = shell._jupyter_aigc_session.cache.budget_bytes
    shell.run_cell(f"%config AigcConfig.cache_budget_gb = {value}")
    err = one_line(caplog.text)  # IPython's %config logs a refused value as one line
    assert "is not a finite number" in err and "Traceback" not in err
    assert shell._jupyter_aigc_session.config.cache_budget_gb == 8.0
    assert shell._jupyter_aigc_session.cache.budget_bytes == before


def test_key_env_with_a_trailing_newline_works(shell, server, capsys, monkeypatch):
    monkeypatch.setenv("NEWLINE_KEY", "zz-newline-key-123456\n")
    result = run_gpt(shell, f"-m echo-auth --base-url {server.url} --key-env NEWLINE_KEY -o answer", "hi")
    assert result.success, capsys.readouterr().err
    sent = [r for r in server.requests if r["method"] == "POST"][-1]["headers"]["authorization"]
    assert sent == "Bearer zz-newline-key-123456"
    assert "zz-newline-key-123456" not in shell.user_ns["answer"]


def test_the_fallback_cache_folder_is_private(tmp_path, monkeypatch):
    """Another local user could plant a converted model in a predictable /tmp path: such a folder is not used."""
    from jupyter_aigc.core import config

    monkeypatch.setattr(config.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(config, "_fallbacks", {})
    planted = tmp_path / f"jupyter_aigc-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    folder = config.fallback_cache_dir("test")
    assert folder != planted and folder.parent == tmp_path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    monkeypatch.setattr(config, "_fallbacks", {})
    planted.rmdir()
    (tmp_path / "elsewhere").mkdir()
    planted.symlink_to(tmp_path / "elsewhere")
    assert config.fallback_cache_dir("test") != planted

    monkeypatch.setattr(config, "_fallbacks", {})
    planted.unlink()
    folder = config.fallback_cache_dir("test")
    assert folder == planted and stat.S_IMODE(planted.stat().st_mode) == 0o700, "made here: private, used"

    monkeypatch.setattr(config, "_fallbacks", {})
    planted.chmod(0o755)  # ours, and only we could write in it: closed to others and used
    assert config.fallback_cache_dir("test") == planted and stat.S_IMODE(planted.stat().st_mode) == 0o700


def test_a_schema_pattern_that_backtracks_cannot_hang_the_cell(shell, server, capsys):
    """With Python's re (as jsonschema matches), ^(a+)+$ on 29 a's and a '!' holds the GIL for about 10 s."""
    import time

    schema = '{"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}}'
    started = time.monotonic()
    result = run_gpt(shell, f"-m json-a --base-url {server.url} --schema '{schema}'", "hi")
    took = time.monotonic() - started
    err = one_line(capsys.readouterr().err)
    assert not result.success and "does not follow the schema" in err and "does not match '^(a+)+$'" in err
    assert took < 5, f"the cell took {took:.1f} s"
