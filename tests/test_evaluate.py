"""%%aigc_eval on the real default model: scores against sacrebleu and rouge-score computed here, the
summary against the rows, stored answers reused (never across adapters or re-trainings), one changed variant
recomputed, Stop, bad input."""

import json
import math
import re
import statistics
import time

import pytest

from conftest import run_cell
from kernel import Kernel

pytestmark = pytest.mark.slow

QA = [{"question": "What is the capital of France?", "answer": "Paris"},
      {"question": "What is 2 + 2?", "answer": "4"},
      {"question": "What colour is the sky on a clear day?", "answer": "blue"},
      {"question": "How many legs does a spider have?", "answer": "eight"},
      {"question": "What is the opposite of hot?", "answer": "cold"},
      {"question": "Which animal says moo?", "answer": "a cow"}]
TEMPLATE = "Answer in one or two words. {question}"


def run_eval(shell, line: str, template: str = TEMPLATE):
    return run_cell(shell, "aigc_eval", line, template)


@pytest.fixture
def qa_shell(shell):
    shell.user_ns["qa"] = [dict(row) for row in QA]
    shell.run_line_magic("aigc", "history --clear")
    return shell


def test_scores_equal_the_libraries_and_the_summary_equals_the_rows(qa_shell, capsys):
    import sacrebleu
    from rouge_score import rouge_scorer

    result = run_eval(qa_shell, "--data qa --reference answer --metrics exact,contains,bleu,chrf,rouge,length "
                                "--temperature 0,0.9 --seed 3 --max-tokens 24 -o df")
    assert result.success
    df = qa_shell.user_ns["df"]
    assert len(df) == len(QA) * 2 and set(df["variant"]) == {"temperature 0.0", "temperature 0.9"}
    assert {"question", "answer", "variant", "output", "exact", "contains", "bleu", "chrf", "rouge"} <= set(df)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for _, row in df.iterrows():
        assert row["bleu"] == pytest.approx(sacrebleu.sentence_bleu(row["output"], [row["answer"]]).score)
        assert row["chrf"] == pytest.approx(sacrebleu.sentence_chrf(row["output"], [row["answer"]]).score)
        assert row["rouge"] == pytest.approx(scorer.score(row["answer"], row["output"])["rougeL"].fmeasure)
        assert row["contains"] == float(row["answer"].lower() in row["output"].lower().strip(".! "))
        assert row["length"] == len(row["output"].split())
    summary = df.attrs["summary"]
    for metric in ("exact", "contains", "bleu", "rouge"):
        for index, variant in enumerate(["temperature 0.0", "temperature 0.9"]):
            values = df[df["variant"] == variant][metric].tolist()
            stats = summary[metric]["variants"][index]
            assert stats["mean"] == pytest.approx(statistics.fmean(values)) and stats["n"] == len(values)
            expected_ci = 1.959964 * statistics.stdev(values) / math.sqrt(len(values))
            assert stats["ci95"] == pytest.approx(expected_ci, rel=1e-4)
    rouge = summary["rouge"]
    if rouge["best"] is not None:
        means = [v["mean"] for v in rouge["variants"]]
        assert rouge["best"] == means.index(max(means))
    assert "Paris" in df[(df["variant"] == "temperature 0.0")]["output"].iloc[0]
    entry = qa_shell._jupyter_aigc_session.history[-1]
    assert entry["kind"] == "eval" and entry["rows"] == len(QA) and entry["summary"]["rouge"] == rouge
    assert len(entry["data_hash"]) == 64


def test_a_second_run_reuses_every_answer_and_a_changed_variant_is_asked_again(qa_shell, capsys):
    line = "--data qa --reference answer --temperature 0,0.7 --seed 5 --max-tokens 16 -o df"
    started = time.perf_counter()
    assert run_eval(qa_shell, line).success
    first = time.perf_counter() - started
    first_outputs = qa_shell.user_ns["df"]["output"].tolist()
    assert f"{len(QA) * 2} answers asked, 0 reused" in capsys.readouterr().out
    started = time.perf_counter()
    assert run_eval(qa_shell, line).success
    again = time.perf_counter() - started
    assert f"0 answers asked, {len(QA) * 2} reused" in capsys.readouterr().out
    assert qa_shell.user_ns["df"]["output"].tolist() == first_outputs and qa_shell.user_ns["df"].attrs["reused"] == 12
    assert again < first / 3, f"reusing took {again:.2f} s against {first:.2f} s"
    assert run_eval(qa_shell, line.replace("0,0.7", "0,0.3")).success
    assert f"{len(QA)} answers asked, {len(QA)} reused" in capsys.readouterr().out, "only the changed variant"
    assert run_eval(qa_shell, line + " --fresh").success
    assert f"{len(QA) * 2} answers asked, 0 reused" in capsys.readouterr().out


def test_metrics_from_a_function_regex_json_and_a_judge(qa_shell, capsys):
    qa_shell.user_ns["short"] = lambda output, row: len(output) < 40
    result = run_eval(qa_shell, "--data qa --metrics short,regex:\\d,json --max-tokens 16 --temperature 0 "
                                "--judge SmolLM2-135M-Instruct --reference answer -o df")
    assert result.success, capsys.readouterr().err
    df = qa_shell.user_ns["df"]
    assert set(df["short"]) <= {0.0, 1.0} and set(df["json"]) <= {0.0, 1.0}
    assert df["judge"].between(1, 5).all() and df["judge_reason"].str.len().gt(0).all()


@pytest.mark.parametrize("line, message", [
    ("--data qa --reference nope", "--reference 'nope' is not a column of the data. Columns: question, answer."),
    ("--data nothing_here", "--data 'nothing_here' is neither a variable nor a file"),
    ("--data empty", "--data empty has no rows"),
    ("--data qa --metrics wat", "Unknown metric 'wat'"),
    ("--data qa --metrics exact", "compare with a reference answer"),
    ("--data qa --metrics judge", "The judge metric needs a judge model"),
    ("--data qa --judge openai:gpt-4o-mini", "The judge 'openai:gpt-4o-mini' is not available: No API key"),
    ("--data qa --judge no/such-model-zz", "The judge 'no/such-model-zz' is not available"),
    ("", "%%aigc_eval needs --data"),
])
def test_bad_input_is_one_line(qa_shell, line, message, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    qa_shell.user_ns["empty"] = []
    result = run_eval(qa_shell, line)
    err = capsys.readouterr().err
    assert not result.success and message in err and "Traceback" not in err, err


def test_a_template_field_that_is_not_in_the_data(qa_shell, capsys):
    result = run_eval(qa_shell, "--data qa", "Answer: {questoin}")
    err = capsys.readouterr().err
    assert not result.success and "{questoin}, which is not a column" in err and "question, answer" in err


def test_csv_jsonl_dataframe_and_dataset_sources(qa_shell, tmp_path):
    import csv

    import datasets
    import pandas as pd

    with open(tmp_path / "qa.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerows(QA[:2])
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in QA[:2]))
    qa_shell.user_ns["frame"] = pd.DataFrame(QA[:2])
    qa_shell.user_ns["dataset"] = datasets.Dataset.from_list(QA[:2])
    for source in (tmp_path / "qa.csv", tmp_path / "qa.jsonl", "frame", "dataset"):
        assert run_eval(qa_shell, f"--data {source} --reference answer --temperature 0 --max-tokens 8 -o df").success
        assert qa_shell.user_ns["df"]["question"].tolist() == [r["question"] for r in QA[:2]]


def test_stop_in_the_widget_keeps_finished_rows():
    """In a real kernel: the grid's Stop message ends the run; finished answers are kept in -o."""
    kernel = Kernel()
    try:
        kernel.run("%load_ext jupyter_aigc\n%aigc history --clear")
        kernel.run(f"qa = {QA * 4!r}")
        msg_id = kernel.start("%%aigc_eval --data qa --reference answer --temperature 0.9 --seed 1 --max-tokens 96 "
                              f"-o df --fresh\n{TEMPLATE} Then explain at length.")
        comm_id, done = None, 0
        deadline = time.time() + 240
        while time.time() < deadline and not (comm_id and done >= 3):
            for msg in kernel.drain_iopub(0.5):
                content = msg["content"]
                if msg["msg_type"] == "comm_open" and str(content["data"]["state"].get("_anywidget_id", "")).endswith("EvalGrid"):
                    comm_id = content["comm_id"]
                elif msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id:
                    done = max(done, content["data"].get("state", {}).get("progress", {}).get("done", 0))
        assert comm_id and done >= 3, "answers were coming into the grid"
        stop = kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom",
                                                                              "content": {"type": "stop"}}})
        kernel.kc.shell_channel.send(stop)
        reply = kernel.wait_for_reply(msg_id, timeout=60)
        assert reply["content"]["status"] == "ok"
        kept = kernel.value("int(df['output'].notna().sum())")
        assert 3 <= kept < len(QA) * 4, "finished rows kept, the rest not run"
        assert kernel.value("__import__('jupyter_aigc').get_session().history[-1]['finish_reason']") == "stopped"
    finally:
        kernel.close()


def test_an_adapter_is_never_answered_from_its_base_or_from_an_earlier_training(shell, tiny_model, tmp_path, capsys):
    """Stored answers are keyed by the adapter and a hash of its weights: not the base's, not a re-trained
    adapter's of the same name; the same weights reopened from their folder are reused."""
    shell.user_ns["qa"] = [dict(row) for row in QA[:3]]
    shell.run_line_magic("aigc", "history --clear")
    line = "--data qa --temperature 0 --max-tokens 6 -o df"
    body = "\n\n".join(f"Q: {row['question']}\nA: {row['answer']}" for row in QA)
    tune = f"-m {tiny_model} --name evaltuned --epochs 1 --save {tmp_path / 'evaltuned'}"

    def asked(model: str) -> str:
        assert run_eval(shell, f"-m {model} {line}").success, capsys.readouterr().err
        return re.search(r"\d+ answers asked, \d+ reused", capsys.readouterr().out).group(0)

    assert asked(str(tiny_model)) == "3 answers asked, 0 reused"
    assert run_cell(shell, "aigc_finetune", tune, body).success, capsys.readouterr().err
    assert asked("evaltuned") == "3 answers asked, 0 reused", "not the base model's answers"
    assert asked("evaltuned") == "0 answers asked, 3 reused"
    assert asked(str(tmp_path / "evaltuned")) == "0 answers asked, 3 reused", "the same weights, from the folder"
    assert run_cell(shell, "aigc_finetune", tune + " --lr 0.01", body).success, capsys.readouterr().err
    assert asked("evaltuned") == "3 answers asked, 0 reused", "not the answers of the adapter trained before"
    assert asked(str(tiny_model)) == "0 answers asked, 3 reused"
