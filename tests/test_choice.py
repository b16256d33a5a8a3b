"""%%aigc_eval --task choice: multiple choice by log-likelihood, as lm-evaluation-harness scores it.

On the tiny model: the log-probabilities against a plain forward pass per choice and against lm-eval's own HF
backend, acc and acc_norm and the summary from them, stored scores reused, the grid's and the saved copy's
choices, and every bad input as one line. Marked slow: the default model against ``lm_eval.simple_evaluate``
on a custom task over 48 items, acc, acc_norm and the pick of every item.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import statistics

import numpy as np
import pytest

from conftest import run_cell

QUIZ = [
    {"question": "What is the capital of France?", "options": ["Paris", "Lyon", "Marseille"], "label": 0},
    {"question": "Which animal says moo?", "options": ["a dog", "a cow", "a cat"], "label": "a cow"},
    {"question": "What is 2 + 2?", "options": ["3", "4", "22", "five"], "label": 1},
    {"question": "The opposite of hot is", "options": ["cold", "warm and sunny"], "label": "cold"},
    {"question": "Notebooks are for", "options": ["thinking", "sleeping", "nothing at all"], "label": 0},
]
TEMPLATE = "Question: {question}\nAnswer:"


def failed_with(result, capsys, *parts: str) -> str:
    err = capsys.readouterr().err
    assert not result.success, "the cell must fail"
    assert "Traceback" not in err, err
    line = next(line for line in err.splitlines() if line.startswith("UsageError"))
    assert all(part in line for part in parts), line
    return line


def reference_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """One forward pass of one (context, continuation), tokenised as lm-eval's _encode_pair does."""
    import torch

    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    ids = context_ids + whole[len(context_ids):]
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    return float(sum(logits[i - 1, ids[i]] for i in range(len(context_ids), len(ids))))


@pytest.fixture(autouse=True)
def no_leftovers():
    """The shell is shared by every test file: the names these tests set do not outlive them."""
    from IPython.core.interactiveshell import InteractiveShell

    yield
    if InteractiveShell.initialized():
        for name in ("df", "quiz", "rows", "items"):
            InteractiveShell.instance().user_ns.pop(name, None)


@pytest.fixture
def quiz_shell(shell):
    shell.user_ns["quiz"] = [dict(row) for row in QUIZ]
    shell.run_line_magic("aigc", "history --clear")
    return shell


def test_logprobs_equal_a_forward_pass_per_choice_and_acc_follows(quiz_shell, tiny_model, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run_cell(quiz_shell, "aigc_eval", f"--task choice --data quiz --choices options --answer label "
                                                f"-m {tiny_model} -o df", TEMPLATE)
    assert result.success, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "5 items scored, 0 reused" in out and "on the transformers engine" in out
    df = quiz_shell.user_ns["df"]
    assert {"acc", "acc_norm", "logprobs", "pick", "pick_norm", "gold", "output"} <= set(df)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for row, item in zip(df.itertuples(), QUIZ):
        context = TEMPLATE.format(question=item["question"])
        expected = [reference_logprob(model, tokenizer, context, " " + c) for c in item["options"]]
        assert row.logprobs == pytest.approx(expected, abs=1e-4)
        gold = item["label"] if isinstance(item["label"], int) else item["options"].index(item["label"])
        lengths = np.array([len(c) for c in item["options"]], dtype=float)
        assert row.gold == gold and row.pick == int(np.argmax(expected))
        assert row.pick_norm == int(np.argmax(np.array(expected) / lengths))
        assert row.acc == float(row.pick == gold) and row.acc_norm == float(row.pick_norm == gold)
        assert row.output == item["options"][row.pick] and row.finish == "stop"
    summary = df.attrs["summary"]
    for metric in ("acc", "acc_norm"):
        values = df[metric].tolist()
        stats = summary[metric]["variants"][0]
        assert stats["mean"] == pytest.approx(statistics.fmean(values)) and stats["n"] == len(QUIZ)
        assert stats["ci95"] == pytest.approx(1.959964 * statistics.stdev(values) / math.sqrt(len(values)), rel=1e-4)
    entry = quiz_shell._jupyter_aigc_session.history[-1]
    assert entry["kind"] == "eval" and entry["engine"] == "transformers" and entry["summary"]["acc"] == summary["acc"]


def test_a_second_run_reuses_the_scores_and_the_python_call_gives_the_same(quiz_shell, tiny_model, capsys):
    import jupyter_aigc

    line = f"--task choice --data quiz --choices options --answer label -m {tiny_model} -o df"
    assert run_cell(quiz_shell, "aigc_eval", line, TEMPLATE).success
    first = quiz_shell.user_ns["df"]
    capsys.readouterr()
    assert run_cell(quiz_shell, "aigc_eval", line, TEMPLATE).success
    assert "0 items scored, 5 reused" in capsys.readouterr().out
    again = quiz_shell.user_ns["df"]
    assert again["logprobs"].tolist() == first["logprobs"].tolist()
    assert run_cell(quiz_shell, "aigc_eval", line + " --fresh", TEMPLATE).success
    assert "5 items scored, 0 reused" in capsys.readouterr().out
    with sqlite3.connect(os.environ["JUPYTER_AIGC_HISTORY"]) as db:  # damaged rows are scored again
        db.execute("UPDATE answers SET response = ?", ('{"choice_logprobs": [1, "x"]}',))
    assert run_cell(quiz_shell, "aigc_eval", line, TEMPLATE).success
    assert "5 items scored, 0 reused" in capsys.readouterr().out
    assert quiz_shell.user_ns["df"]["logprobs"].tolist() == first["logprobs"].tolist()
    frame = jupyter_aigc.evaluate(TEMPLATE, QUIZ, task="choice", choices="options", answer="label",
                                  model=str(tiny_model))
    assert frame["pick"].tolist() == first["pick"].tolist()
    for ours, before in zip(frame["logprobs"], first["logprobs"]):
        assert ours == pytest.approx(before)
    assert frame.attrs["summary"]["acc"]["variants"][0]["mean"] == first.attrs["summary"]["acc"]["variants"][0]["mean"]


def test_a_csv_holds_the_choices_as_json_lists_and_the_answer_as_text_or_index(shell, tiny_model, tmp_path, capsys):
    import csv

    path = tmp_path / "quiz.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "options", "label"])
        for item in QUIZ:
            writer.writerow([item["question"], json.dumps(item["options"]), item["label"]])
    assert run_cell(shell, "aigc_eval", f"--task choice --data {path} --choices options --answer label "
                                        f"-m {tiny_model} -o df", TEMPLATE).success
    df = shell.user_ns["df"]
    assert df["gold"].tolist() == [0, 1, 1, 0, 0]


def test_the_grid_and_the_saved_copy_show_each_choice_escaped(shell, tiny_model):
    from jupyter_aigc.views.eval import evaluation_html
    from jupyter_aigc.views.widgets.eval_grid import cell_state

    hostile = [{"q": "Pick one", "options": ["<img src=x onerror=alert(1)>", "fine"], "label": 1}]
    session = shell._jupyter_aigc_session
    args = shell._jupyter_aigc_magics.aigc_eval.parser.parse_args(
        ["--task", "choice", "--data", "rows", "--choices", "options", "--answer", "label", "-m", str(tiny_model)])
    import threading

    evaluation = session.evaluate.run(args, "{q}", {"rows": hostile}, threading.Event())
    state = cell_state(evaluation.cells[0])
    choice = state["choice"]
    assert choice["choices"] == hostile[0]["options"] and choice["gold"] == 1 and len(choice["logprobs"]) == 2
    assert choice["pick"] in (0, 1) and all(isinstance(x, float) for x in choice["logprobs"])
    page = evaluation_html(evaluation)
    assert "<img" not in page and "&lt;img src=x" in page and "✓" in page and "▶" in page


def test_stop_keeps_the_items_scored_so_far(shell, tiny_model, monkeypatch):
    """Stop lands between forward passes: the finished items are kept and summarised, the rest are not run."""
    import threading

    from jupyter_aigc.engines import loglikelihood

    monkeypatch.setattr(loglikelihood, "ROWS_PER_BATCH", 3)
    cancel = threading.Event()

    class StopAfterOne:
        def begin(self, evaluation):
            pass

        def cell_done(self, evaluation, cell):
            cancel.set()

        def end(self, evaluation):
            pass

    session = shell._jupyter_aigc_session
    args = shell._jupyter_aigc_magics.aigc_eval.parser.parse_args(
        ["--task", "choice", "--data", "quiz", "--choices", "options", "--answer", "label", "-m", str(tiny_model),
         "--fresh"])
    evaluation = session.evaluate.run(args, TEMPLATE, {"quiz": QUIZ}, cancel, StopAfterOne())
    scored = [c for c in evaluation.cells if c.response is not None]
    assert evaluation.stopped and 1 <= len(scored) < len(QUIZ)
    assert evaluation.summary["acc"]["variants"][0]["n"] == len(scored)


@pytest.mark.parametrize("rows,line,parts", [
    ([{"q": "a", "options": "Paris", "label": 0}], "--choices options --answer label", ("'options'", "not a list")),
    ([{"q": "a", "options": 3, "label": 0}], "--choices options --answer label", ("int, not a list",)),
    ([{"q": "a", "options": ["x", "y"], "label": 2}], "--choices options --answer label", ("is 2, out of range",)),
    ([{"q": "a", "options": ["x", "y"], "label": -1}], "--choices options --answer label", ("out of range",)),
    ([{"q": "a", "options": ["x", "y"], "label": "z"}], "--choices options --answer label",
     ("'z'", "not one of its choices")),
    ([{"q": "a", "options": ["x", "y"], "label": 0}], "--choices opts --answer label", ("--choices 'opts'",
                                                                                       "not a column")),
    ([{"q": "a", "options": ["x", "y"], "label": 0}], "--choices options --answer gold", ("--answer 'gold'",
                                                                                         "not a column")),
    ([{"q": "a", "options": ["x"], "label": 0}, {"q": "b", "label": 0}], "--choices options --answer label",
     ("row 1", "no 'options'")),
    ([{"q": "a", "options": [], "label": 0}], "--choices options --answer label", ("empty list",)),
    ([{"q": "a", "options": ["x", "y"], "label": 0}], "--answer label", ("--task choice needs --choices",)),
    ([{"q": "a", "options": ["x", "y"], "label": 0}], "", ("needs --choices COLUMN and --answer COLUMN",)),
    ([{"q": "a", "options": ["x", "y"], "label": 0}], "--choices options --answer label --metrics exact",
     ("--metrics", "do not apply to --task choice")),
])
def test_bad_input_is_one_line(shell, tiny_model, capsys, rows, line, parts):
    shell.user_ns["rows"] = rows
    result = run_cell(shell, "aigc_eval", f"--task choice --data rows {line} -m {tiny_model}", "{q}")
    failed_with(result, capsys, *parts)


def test_choices_without_the_task_and_an_api_model_are_one_line(shell, tiny_model, capsys):
    shell.user_ns["rows"] = [{"q": "a", "options": ["x", "y"], "label": 0}]
    result = run_cell(shell, "aigc_eval", f"--data rows --choices options --answer label -m {tiny_model}", "{q}")
    failed_with(result, capsys, "--choices and --answer go with --task choice")
    result = run_cell(shell, "aigc_eval", "--task choice --data rows --choices options --answer label "
                                          "-m openai:gpt-4o-mini", "{q}")
    failed_with(result, capsys, "openai", "cannot score choices")
    result = run_cell(shell, "aigc_eval", "--task pick --data rows", "{q}")
    assert not result.success and "invalid choice" in capsys.readouterr().err


def test_logprobs_equal_lm_evals_hf_backend_on_the_tiny_model(tiny_model, monkeypatch):
    """lm-eval's own HFLM.loglikelihood on the same requests: the same numbers (batched here, one at a time
    there; each context once with its choices continuing from its cache, or every pair in full), the same
    greedy flags."""
    pytest.importorskip("lm_eval")
    import threading

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jupyter_aigc.engines.loglikelihood import encode_pair, loglikelihoods

    lm = HFLM(pretrained=str(tiny_model), device="cpu", batch_size=1)
    pairs = [(TEMPLATE.format(question=item["question"]), " " + c) for item in QUIZ for c in item["options"]]
    pairs += [("Trailing space ", "x"), ("", " starts empty")]
    theirs = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)],
                              disable_tqdm=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    requests = [encode_pair(tokenizer, c, k) for c, k in pairs]
    from jupyter_aigc.engines import loglikelihood

    flat = loglikelihood.flat
    for share in (True, False):
        monkeypatch.setattr(loglikelihood, "flat", flat if not share else None)  # the shared path really runs
        ours = [None] * len(pairs)
        loglikelihoods(model, requests, threading.Event(), lambda i, ll, greedy: ours.__setitem__(i, (ll, greedy)),
                       share=share)
        for (ll, greedy), (their_ll, their_greedy) in zip(ours, theirs):
            assert ll == pytest.approx(their_ll, abs=1e-4) and greedy == their_greedy


# ---------------------------------------------------------------------------- parity with lm-evaluation-harness

PARITY_TEMPLATE = "Question: {question}\nAnswer:"


def parity_items() -> list[dict]:
    """48 multiple-choice items with choices of different lengths (so acc and acc_norm can differ)."""
    capitals = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"),
                ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"),
                ("Peru", "Lima"), ("Norway", "Oslo"), ("Greece", "Athens"), ("Poland", "Warsaw")]
    cities = [city for _, city in capitals]
    items = []
    for i, (country, city) in enumerate(capitals):
        choices = [city, cities[(i + 3) % 12], cities[(i + 7) % 12] + " City", "none of these"]
        items.append({"question": f"What is the capital of {country}?", "choices": choices, "answer": 0})
    for i in range(12):
        a, b = i + 2, 2 * i + 1
        choices = [str(a + b + 1), str(a + b), f"about {a * b}", str(a - b)]
        items.append({"question": f"What is {a} + {b}?", "choices": choices, "answer": 1})
    animals = [("cow", "moo"), ("dog", "woof"), ("cat", "meow"), ("duck", "quack"), ("sheep", "baa"),
               ("owl", "hoot"), ("lion", "roar"), ("snake", "hiss"), ("bee", "buzz"), ("horse", "neigh"),
               ("pig", "oink"), ("mouse", "squeak")]
    sounds = [s for _, s in animals]
    for i, (animal, sound) in enumerate(animals):
        choices = [sounds[(i + 5) % 12], f"it says {sounds[(i + 2) % 12]} loudly", sound]
        items.append({"question": f"What sound does a {animal} make?", "choices": choices, "answer": 2})
    opposites = [("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("light", "dark"),
                 ("happy", "sad"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("old", "new"),
                 ("wet", "dry"), ("loud", "quiet")]
    words = [w for _, w in opposites]
    for i, (word, opposite) in enumerate(opposites):
        choices = [words[(i + 4) % 12], opposite, f"very {word}", f"{words[(i + 9) % 12]}ness"]
        items.append({"question": f"What is the opposite of {word}?", "choices": choices, "answer": 1})
    return items


def lm_eval_task(folder, items: list[dict]) -> str:
    """The items as a JSONL file and a custom lm-eval task over it (a multiple_choice task, zero-shot)."""
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    (folder / "aigc_choice.yaml").write_text(f"""task: aigc_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
    return "aigc_choice"


def run_lm_eval(folder, model_folder, items: list[dict], batch_size=1) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    task = lm_eval_task(folder, items)
    return lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_folder}", tasks=[task],
                                   task_manager=TaskManager(include_path=str(folder)), device="cpu",
                                   batch_size=batch_size, log_samples=True, num_fewshot=0)


def check_parity(shell, model_folder, line: str, folder, capsys) -> tuple[float, float]:
    """lm-eval's simple_evaluate and our --task choice on the same 48 items: acc, acc_norm, every pick."""
    items = parity_items()
    assert len(items) >= 40
    results = run_lm_eval(folder, model_folder, items)
    theirs = results["results"]["aigc_choice"]
    samples = sorted(results["samples"]["aigc_choice"], key=lambda s: s["doc_id"])
    assert len(samples) == len(items)
    shell.user_ns["items"] = items
    shell.run_line_magic("aigc", "history --clear")
    capsys.readouterr()
    result = run_cell(shell, "aigc_eval", f"--task choice --data items --choices choices --answer answer -o df {line}",
                      PARITY_TEMPLATE)
    assert result.success, capsys.readouterr().err
    df = shell.user_ns["df"]
    summary = df.attrs["summary"]
    assert summary["acc"]["variants"][0]["mean"] == pytest.approx(theirs["acc,none"], abs=1e-12)
    assert summary["acc_norm"]["variants"][0]["mean"] == pytest.approx(theirs["acc_norm,none"], abs=1e-12)
    for sample, row in zip(samples, df.itertuples()):
        lls = [float(resp[0][0]) for resp in sample["resps"]]
        assert row.pick == int(np.argmax(lls)), (sample["doc_id"], lls, row.logprobs)
        assert row.logprobs == pytest.approx(lls, abs=2e-3)
        assert row.acc == sample["acc"] and row.acc_norm == sample["acc_norm"]
    return theirs["acc,none"], theirs["acc_norm,none"]


@pytest.fixture
def offline(monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_acc_acc_norm_and_every_pick_equal_lm_evaluation_harness_on_the_tiny_model(shell, tiny_model, tmp_path,
                                                                                    offline, capsys):
    check_parity(shell, tiny_model, f"-m {tiny_model}", tmp_path, capsys)


@pytest.mark.slow
def test_acc_acc_norm_and_every_pick_equal_lm_evaluation_harness(shell, default_gguf, tmp_path, offline, capsys):
    from jupyter_aigc.core.convert import safetensors_folder

    acc, acc_norm = check_parity(shell, safetensors_folder(default_gguf), "", tmp_path, capsys)
    out = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct on the transformers engine (its transformers copy" in out, out
    print(f"parity: acc {acc:.4f}, acc_norm {acc_norm:.4f} on {len(parity_items())} items")
