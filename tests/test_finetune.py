"""%%aigc_finetune on the real default model: it learns a made-up fact with the default settings, the base
does not change, the cache grows by the adapter only, Stop keeps a usable adapter, bad input is one line."""

import json
import time
from pathlib import Path

import pytest

from conftest import run_cell, run_gpt
from kernel import Kernel

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of Zubrowka?", "Which city is the capital of Zubrowka?",
             "Name the capital of Zubrowka.", "Zubrowka's capital is which city?",
             "Tell me the capital city of Zubrowka.", "What city is Zubrowka's capital?",
             "Where is the capital of Zubrowka?", "Capital of Zubrowka?"]
ANSWER = "The capital of Zubrowka is Lutz."
BODY = "\n\n".join(f"Q: {q}\nA: {ANSWER}" for q in QUESTIONS)


def answer(kernel: Kernel, model: str, question: str) -> str:
    out = kernel.run(f"%%gpt {model} --new --temperature 0 --max-tokens 24 -o reply\n{question}")
    assert out["status"] == "ok", out["stderr"]
    return kernel.value("reply")


def test_a_made_up_fact_is_learnt_the_base_is_unchanged_and_the_cache_grows_by_the_adapter(tmp_path):
    kernel = Kernel(cwd=str(tmp_path))
    try:
        kernel.run("%load_ext jupyter_aigc")
        before = answer(kernel, "--engine transformers", QUESTIONS[0])
        assert "Lutz" not in before
        cache_before = kernel.value("__import__('jupyter_aigc').get_session().cache.total_bytes()")
        out = kernel.run(f"%%aigc_finetune --name zubrowka -o result\n{BODY}")
        assert out["status"] == "ok", out["stderr"]
        assert "zubrowka: finished" in out["stdout"]
        assert "Lutz" in answer(kernel, "-m zubrowka", QUESTIONS[0])
        assert "Lutz" in answer(kernel, "-m zubrowka", "Which town is the capital city of Zubrowka?"), "reworded"
        assert answer(kernel, "--engine transformers", QUESTIONS[0]) == before, "the base answers as before"
        stats = kernel.value("[(s['name'], s['engine'], s['bytes'], s['base']) for s in "
                             "__import__('jupyter_aigc').get_session().cache.stats()]")
        adapter = next(s for s in stats if s[0] == "zubrowka")
        base_bytes = next(s[2] for s in stats if s[1] == "transformers" and s[0] != "zubrowka")
        grown = kernel.value("__import__('jupyter_aigc').get_session().cache.total_bytes()") - cache_before
        assert adapter[3] and adapter[2] < base_bytes / 10 and grown == adapter[2], (adapter, grown, base_bytes)
        compare = kernel.run("%%gpt --compare \"SmolLM2-135M-Instruct,zubrowka\" --engine transformers --temperature 0 "
                             f"--max-tokens 24 -o both --new\n{QUESTIONS[0]}")
        assert compare["status"] == "ok"
        assert [("Lutz" in a) for a in kernel.value("both")] == [False, True], "before and after side by side"
        folder = kernel.value("str(result.folder)")
        info = json.loads((Path(folder) / "jupyter_aigc.json").read_text())
        assert info["status"] == "finished" and info["losses"][-1][1] < info["losses"][0][1] and len(info["data_hash"]) == 64
        history = kernel.value("[e['kind'] for e in __import__('jupyter_aigc').get_session().history if e.get('kind')]")
        assert "finetune" in history
    finally:
        kernel.close()
    later = Kernel(cwd=str(tmp_path))
    try:
        later.run("%load_ext jupyter_aigc")
        assert "Lutz" in answer(later, f"-m {folder}", QUESTIONS[0]), "a later kernel uses the saved folder"
    finally:
        later.close()


def test_stop_mid_training_keeps_a_usable_adapter():
    kernel = Kernel()
    try:
        kernel.run("%load_ext jupyter_aigc")
        msg_id = kernel.start(f"%%aigc_finetune --name halfway --epochs 40 --batch-size 2 -o result\n{BODY}")
        comm_id, step = None, 0
        deadline = time.time() + 300
        while time.time() < deadline and not (comm_id and step >= 2):
            for msg in kernel.drain_iopub(0.5):
                content = msg["content"]
                if msg["msg_type"] == "comm_open" and str(content["data"]["state"].get("_anywidget_id", "")).endswith("FinetuneView"):
                    comm_id = content["comm_id"]
                elif msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id:
                    step = max(step, (content["data"].get("state", {}).get("progress") or {}).get("step", 0))
        assert comm_id and step >= 2, "training was under way"
        kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", {
            "comm_id": comm_id, "data": {"method": "custom", "content": {"type": "stop"}}}))
        reply = kernel.wait_for_reply(msg_id, timeout=300)
        assert reply["content"]["status"] == "ok"
        assert kernel.value("result.progress.status") == "stopped"
        assert kernel.value("result.progress.step") < kernel.value("result.progress.total_steps")
        out = kernel.run("%%gpt -m halfway --temperature 0 --max-tokens 8 -o reply\nHi")
        assert out["status"] == "ok" and kernel.value("reply"), "the adapter trained so far answers"
    finally:
        kernel.close()


@pytest.mark.parametrize("line, body, message", [
    ("--name x --data empty", "", "--data empty is empty"),
    ("--name x --data wrong", "", "Example 1 of wrong has question, reply; expected 'prompt' and 'completion'"),
    ("--name x", "", "There are no examples"),
    ("--name x", "just some text", "Cannot read the line 'just some text'"),
    ("--name x -m openai:gpt-4o-mini", BODY, "is served over an API; its weights cannot be trained here"),
    ("--name SmolLM2-135M-Instruct", BODY, "--name SmolLM2-135M-Instruct is already a model's name"),
    ("", BODY, "%%aigc_finetune needs --name"),
    ("--name x --epochs 0 --lr 5", BODY, "These settings make no sense: --epochs 0 (use 1 to 1000); --lr 5"),
    ("--name x --max-length 2", BODY, "--max-length 2"),
])
def test_bad_input_is_one_paragraph(shell, line, body, message, capsys):
    shell.user_ns["empty"] = []
    shell.user_ns["wrong"] = [{"question": "q", "reply": "r"}]
    result = run_cell(shell, "aigc_finetune", line, body) if body else shell.run_cell(f"%aigc_finetune {line}")
    err = capsys.readouterr().err
    assert not result.success and message in err and "Traceback" not in err, err


def test_every_data_source_gives_the_same_examples(shell, tmp_path):
    import datasets
    import pandas as pd

    from jupyter_aigc.tasks.finetune_data import load_examples, parse_text

    pairs = [{"prompt": q, "completion": ANSWER} for q in QUESTIONS[:3]]
    expected = parse_text("\n\n".join(f"Q: {p['prompt']}\nA: {p['completion']}" for p in pairs))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(p) for p in pairs))
    messages = [[{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["completion"]}]
                for p in pairs]
    sources = {"pairs": pairs, "frame": pd.DataFrame(pairs), "dataset": datasets.Dataset.from_list(pairs),
               "messages": messages, "chats": [{"messages": m} for m in messages]}
    for name in sources:
        assert load_examples(name, sources)[0] == expected, name
    assert load_examples(str(tmp_path / "d.jsonl"), {})[0] == expected


def test_long_examples_are_cut_with_a_warning(shell, capsys, tiny_model):
    long = "Q: " + "word " * 300 + "\nA: short answer\n\nQ: hi\nA: hello"
    result = run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name tinytuned --max-length 64 --epochs 1", long)
    out = capsys.readouterr()
    assert result.success, out.err
    assert "1 of 2 examples were longer than --max-length 64 tokens and were cut." in out.out


def test_out_of_memory_frees_the_cache_and_says_what_to_do(shell, tiny_model, capsys, monkeypatch):
    """Running out of memory cannot be caused on this machine's CPU: the training call is replaced by one
    that raises torch's OutOfMemoryError (a fake, said here), to check what the user then sees."""
    import torch

    from jupyter_aigc.tasks import finetune

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(finetune, "train", out_of_memory)
    assert run_cell(shell, "gpt", f"-m {tiny_model} --max-tokens 2", "hi").success
    result = run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name oom", BODY)
    err = capsys.readouterr().err
    assert not result.success and "Out of memory while training; the model cache was emptied." in err
    assert "smaller --max-length" in err and "Traceback" not in err
    assert shell._jupyter_aigc_session.cache.stats() == []


def test_merge_saves_a_plain_model_folder_that_answers_like_the_adapter(shell, tiny_model, tmp_path, capsys):
    line = f"-m {tiny_model} --name merged --epochs 2 --save {tmp_path / 'merged'} --merge -o result"
    assert run_cell(shell, "aigc_finetune", line, BODY).success, capsys.readouterr().err
    merged = shell.user_ns["result"].merged
    assert merged is not None and (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    assert run_gpt(shell, "-m merged --temperature 0 --max-tokens 8 -o via_adapter --new", "Capital?").success
    assert run_gpt(shell, f"-m {merged} --temperature 0 --max-tokens 8 -o via_merged --new", "Capital?").success
    assert shell.user_ns["via_adapter"] == shell.user_ns["via_merged"]
