"""Fine-tuning when things go wrong, on tiny random models made here: --full end to end, saves that fail
(/proc, a file in the way, a full disk), an interrupt mid-step, and data a user gets wrong."""

import _thread
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import make_tokenizer, run_cell, run_gpt

BODY = "\n\n".join(f"Q: {q}\nA: The capital of Zubrowka is Lutz." for q in (
    "What is the capital of Zubrowka?", "Which city is the capital of Zubrowka?", "Name the capital of Zubrowka.",
    "Zubrowka's capital is which city?"))
ASK = "--temperature 0 --max-tokens 8 --new"


def later_session(shell) -> None:
    """What a later kernel has: the extension loaded afresh, nothing in memory."""
    shell.run_line_magic("unload_ext", "jupyter_aigc")
    shell._jupyter_aigc_session.cache.clear()
    del shell._jupyter_aigc_session
    shell.run_line_magic("load_ext", "jupyter_aigc")


def one_line_error(err: str, message: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if message in line]
    assert len(lines) == 1 and lines[0].startswith("UsageError: "), err


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_full_fine_tune_answers_by_name_and_its_folder_answers_in_a_later_session(shell, tiny_model, tmp_path, capsys):
    assert run_gpt(shell, f"-m {tiny_model} {ASK} -o before", "Capital?").success
    assert run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name lora_first --epochs 1", BODY).success, \
        "a LoRA adapter on the same base first: the full copy must not carry its layers"
    folder = tmp_path / "whole"
    line = f"-m {tiny_model} --name whole --full --epochs 4 --lr 1e-2 --batch-size 2 --save {folder} -o result"
    assert run_cell(shell, "aigc_finetune", line, BODY).success, capsys.readouterr().err
    result = shell.user_ns["result"]
    assert result.saved and result.progress.status == "finished"
    assert result.progress.losses[-1][1] < result.progress.losses[0][1]
    assert (folder / "config.json").is_file() and not (folder / "adapter_config.json").exists()
    assert json.loads((folder / "jupyter_aigc.json").read_text())["settings"]["full"] is True
    trained, base = weights(folder), weights(tiny_model)
    assert set(trained) == set(base), "a plain model: no LoRA layers"
    assert any(not trained[k].equal(base[k]) for k in base), "every weight was trainable"
    assert run_gpt(shell, f"-m whole {ASK} -o by_name", "Capital?").success
    assert run_gpt(shell, f"-m {tiny_model} {ASK} -o after", "Capital?").success
    assert shell.user_ns["after"] == shell.user_ns["before"], "the cached base did not change"
    by_name = shell.user_ns["by_name"]
    later_session(shell)
    assert run_gpt(shell, f"-m {folder} {ASK} -o by_folder", "Capital?").success, capsys.readouterr().err
    assert shell.user_ns["by_folder"] == by_name


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_a_save_to_proc_fails_in_one_line_and_the_model_still_answers(shell, tiny_model, tmp_path, capsys, full):
    target = "/proc/aigc-cannot-be-made/adapter"
    line = f"-m {tiny_model} --name kept --epochs 2 --lr 1e-2 --save {target}" + (" --full" if full else "")
    assert not run_cell(shell, "aigc_finetune", line, BODY).success
    err = capsys.readouterr().err
    one_line_error(err, f"could not be saved to {target}")
    assert "it answers to -m kept in this kernel" in err and "finetune.save('kept', 'FOLDER')" in err
    assert run_gpt(shell, f"-m kept {ASK} -o in_memory", "Capital?").success, capsys.readouterr().err
    saved = shell._jupyter_aigc_session.finetune.save("kept", tmp_path / "again")
    assert run_gpt(shell, f"-m kept {ASK} -o after_saving", "Capital?").success
    assert shell.user_ns["after_saving"] == shell.user_ns["in_memory"]
    later_session(shell)
    assert run_gpt(shell, f"-m {saved} {ASK} -o from_disk", "Capital?").success, capsys.readouterr().err
    assert shell.user_ns["from_disk"] == shell.user_ns["in_memory"]


def test_an_existing_file_at_the_save_path_is_refused_before_training(shell, tiny_model, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert not run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name never --save {target}", BODY).success
    one_line_error(capsys.readouterr().err, f"Cannot save to {target}: {target} is a file.")
    assert "never" not in shell._jupyter_aigc_session.adapters and target.read_text() == "mine"


def test_a_file_that_appears_at_the_save_path_during_training_is_kept_and_so_is_the_adapter(
        shell, tiny_model, tmp_path, capsys, monkeypatch):
    from jupyter_aigc.tasks import finetune

    target = tmp_path / "adapter"
    real_train = finetune.train

    def train_while_someone_writes_a_file(*args, **kwargs):
        progress = real_train(*args, **kwargs)
        target.write_text("someone else's")
        return progress

    monkeypatch.setattr(finetune, "train", train_while_someone_writes_a_file)
    assert not run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name late --epochs 1 --save {target}", BODY).success
    one_line_error(capsys.readouterr().err, f"could not be saved to {target}")
    assert target.read_text() == "someone else's"
    assert run_gpt(shell, f"-m late {ASK}", "Capital?").success


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs filled to the last byte (needs root and mount rights; skipped elsewhere)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if not shutil.which("mount") or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                                   capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root), so a full disk cannot be made")
    try:
        try:
            with open(folder / "filler", "wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:  # no space left: that is the point
            pass
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_save_to_a_full_disk_fails_in_one_line_and_leaves_no_half_folder(shell, tiny_model, full_disk, capsys):
    target = full_disk / "adapter"
    assert not run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name roomless --epochs 1 --save {target}",
                        BODY).success
    err = capsys.readouterr().err
    one_line_error(err, f"could not be saved to {target}")
    assert "No space left on device" in err and not target.exists()
    assert run_gpt(shell, f"-m roomless {ASK}", "Capital?").success


def test_a_stop_abandons_the_step_under_way_and_frees_the_model(tiny_model):
    """train() itself: Stop arrives in the middle of step 3's forward pass; the weights stay those of step 2,
    and the model works again at once (no hook left behind)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jupyter_aigc.engines.training import Settings, train
    from jupyter_aigc.tasks.finetune_data import parse_text, tokenize

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows, _ = tokenize(parse_text(BODY), tokenizer, 128)
    cancel, snapshots, forwards = threading.Event(), {}, []

    def report(progress):
        if progress.status == "running":
            snapshots[progress.step] = {k: v.clone() for k, v in model.state_dict().items()}

    def count_forward(module, args):
        forwards.append(cancel.is_set())
        if len(forwards) == 3:
            cancel.set()

    hook = model.register_forward_pre_hook(count_forward)
    progress = train(model, tokenizer, rows, [], Settings(epochs=10, batch_size=4, learning_rate=1e-2), "cpu",
                     report, cancel)
    hook.remove()
    assert progress.status == "stopped" and progress.step == 2 and forwards == [False, False, False]
    assert all(v.equal(snapshots[2][k]) for k, v in model.state_dict().items()), "the abandoned step changed nothing"
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert model(torch.tensor([[1, 2, 3]])).logits.shape[-1] == len(tokenizer), "no stop hook is left"


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    """A random Llama big enough that one training step takes seconds on 2 cores."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("models") / "slow-llama"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_an_interrupted_fine_tune_answers_to_its_name_the_moment_the_cell_ends(shell, slow_model, capsys):
    session = shell._jupyter_aigc_session
    answer = "The Zubr runs past Lutz and its mills. " * 6
    body = "\n\n".join(f"Q: Tell me about the river Zubr, part {i}.\nA: {answer}" for i in range(16))
    steps_seen = []

    def interrupt_after_the_first_step():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            result = session.finetune.results.get("cut")
            if result is not None and result.progress.step >= 1:
                steps_seen.append(result.progress.step)
                _thread.interrupt_main()  # what Kernel → Interrupt does to the cell
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt_after_the_first_step, daemon=True).start()
    cell = run_cell(shell, "aigc_finetune", f"-m {slow_model} --name cut --epochs 50 --max-length 256", body)
    err = capsys.readouterr().err
    assert not cell.success and steps_seen, err
    one_line_error(err, "Interrupted.")
    assert run_gpt(shell, f"-m cut {ASK}", "Zubr?").success, capsys.readouterr().err
    assert run_gpt(shell, f"-m {slow_model} {ASK}", "Zubr?").success, "the base is free again"
    result = session.finetune.results["cut"]
    assert result.progress.status == "stopped", result.progress
    assert result.progress.step <= steps_seen[0] + 1, (steps_seen, result.progress)
    deadline = time.monotonic() + 60
    while not result.saved and time.monotonic() < deadline:
        time.sleep(0.1)
    assert result.saved and (result.folder / "jupyter_aigc.json").is_file()


@pytest.mark.parametrize("data, line, message", [
    ([{"messages": '[{"role": "user", "content": "Capital?"}, {"role": "assistant", "content": "Lutz"}]'}], "",
     "Example 1 of data has 'messages' as a str '[{\"role\": \"user\", \"content\": \"Capital?…, not a list of "
     "turns. Make each messages value a list of {'role': …, 'content': …} dicts (json.loads it"),
    ([{"messages": ["Capital?", "Lutz"]}], "",
     "Example 1 of data has a turn that is not {'role': …, 'content': '…'}: the str 'Capital?'."),
    ("frame", "", "Row 11 of data has no completion (it is NaN). Fill it in, or drop such rows first"),
    ([{"prompt": "Capital?", "completion": "Lutz"}], "--eval-split 0.2",
     "--eval-split 0.2 holds out 1 of the 1 usable examples, leaving none to train on."),
    ([{"prompt": "Capital?", "completion": "Lutz"}] * 2, "--eval-split 0.8",
     "--eval-split 0.8 holds out 2 of the 2 usable examples, leaving none to train on."),
])
def test_bad_data_is_one_line_that_says_what_to_fix(shell, tiny_model, capsys, data, line, message):
    import numpy as np
    import pandas as pd

    if data == "frame":
        data = pd.DataFrame({"prompt": ["Capital?", "River?"], "completion": ["Lutz", np.nan]}, index=[10, 11])
    shell.user_ns["data"] = data
    assert not shell.run_cell(f"%aigc_finetune -m {tiny_model} --name bad --data data {line}").success
    one_line_error(capsys.readouterr().err, message)
    assert "bad" not in shell._jupyter_aigc_session.adapters


def test_a_csv_messages_column_is_text_and_says_so(shell, tiny_model, tmp_path, capsys):
    import pandas as pd

    path = tmp_path / "chats.csv"
    pd.DataFrame({"messages": [json.dumps([{"role": "user", "content": "Capital?"},
                                           {"role": "assistant", "content": "Lutz"}])]}).to_csv(path, index=False)
    assert not shell.run_cell(f"%aigc_finetune -m {tiny_model} --name bad --data {path}").success
    err = capsys.readouterr().err
    one_line_error(err, f"Example 1 of {path} has 'messages' as a str")
    assert "json.loads" in err


def test_a_small_eval_split_holds_out_one_example_and_charts_its_loss(shell, tiny_model, capsys):
    assert run_cell(shell, "aigc_finetune", f"-m {tiny_model} --name held --epochs 2 --eval-split 0.05 -o result",
                    BODY).success, capsys.readouterr().err
    assert shell.user_ns["result"].progress.eval_losses, "one of the 4 examples was held out and evaluated"
