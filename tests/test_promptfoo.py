"""%%aigc_eval --promptfoo: promptfoo suites in a real IPython shell, checked against promptfoo itself.

Unit tests of assertions.py: every type, its not- form, thresholds and weights, the test's pass and score. Bad
suites fail in one line. Parity on the very same outputs: a suite on promptfoo's ``echo`` provider (the answer is
the prompt) with texts chosen to catch JavaScript/Python differences, run by ``promptfoo eval`` and by the magic:
the same pass and score per test and per assertion. Marked slow: the default model's greedy answers from one
llama.cpp server (one slot, no prompt cache: answers do not depend on the order requests arrive) through promptfoo
and through the magic: the same answers, the same pass/fail and scores per test and per assertion, llm-rubric
graded by the same server included. ``cost`` is in the echo parity only: promptfoo knows no price for a local
server's model and stops that test with an error, where we refuse the suite before it runs.

promptfoo comes from npm (tests/promptfoo/package.json, installed by scripts/install_promptfoo.sh, which
scripts/test.sh runs); a missing install fails these tests with the command to run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, start_llama_server

from jupyter_aigc.tasks import assertions as A
from jupyter_aigc.tasks.jstext import extract_json_objects, js_regex, levenshtein, treebank_tokens


def promptfoo_command() -> str:
    spec = ROOT / "tests" / "promptfoo" / "package.json"
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jupyter-aigc" / \
        f"promptfoo-{hashlib.sha256(spec.read_bytes()).hexdigest()[:12]}"
    command = os.environ.get("AIGC_PROMPTFOO") or str(folder / "node_modules" / ".bin" / "promptfoo")
    if not os.access(command, os.X_OK):
        pytest.fail(f"promptfoo is not installed at {command}: run `bash scripts/install_promptfoo.sh` "
                    "(scripts/test.sh does), or set AIGC_PROMPTFOO to its command.")
    return command


def promptfoo_eval(folder: Path, home: Path, concurrency: int = 4) -> list[dict]:
    """``promptfoo eval`` on folder/promptfooconfig.yaml: no telemetry, update check, cache or sharing; its config
    folder under ``home``; python assertions run by this interpreter. Its results, one per test × variant."""
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
           "PROMPTFOO_CACHE_ENABLED": "false", "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_CONFIG_DIR": str(home),
           "PROMPTFOO_PYTHON": sys.executable, "OPENAI_API_KEY": "not-a-key", "NO_COLOR": "1"}
    done = subprocess.run([promptfoo_command(), "eval", "-c", "promptfooconfig.yaml", "-o", "out.json", "--no-cache",
                           "--no-table", "--no-progress-bar", "--no-write", "--no-share", "-j", str(concurrency)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert (folder / "out.json").is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((folder / "out.json").read_text())["results"]["results"]


def evaluate(shell, line: str):
    """Run %%aigc_eval LINE (an empty body) as a notebook cell; (its ExecutionResult, the Evaluation)."""
    session = shell._jupyter_aigc_session
    captured, run = [], session.evaluate.run
    session.evaluate.run = lambda *a, **k: captured.append(run(*a, **k)) or captured[-1]
    try:
        result = shell.run_cell(f"%%aigc_eval {line}\n\n")
    finally:
        session.evaluate.run = run
    return result, captured[-1] if captured else None


def differences(evaluation, results: list[dict]) -> list[str]:
    """Where our cells and promptfoo's results differ: answer, test pass and score, each assertion's."""
    out, width = [], len(evaluation.titles)
    for theirs in results:
        cell = evaluation.cells[theirs["testIdx"] * width + theirs["promptIdx"]]
        where = f"test {theirs['testIdx']} variant {theirs['promptIdx']}"
        if theirs["response"]["output"] != cell.response.text:
            out.append(f"{where} answer: {theirs['response']['output'][:80]!r} vs {cell.response.text[:80]!r}")
        if (cell.scores["pass"] == 1.0) != theirs["success"] or not math.isclose(cell.scores["score"], theirs["score"]):
            out.append(f"{where}: pass {theirs['success']} score {theirs['score']} vs {cell.scores} ({cell.reason})")
        component = (theirs.get("gradingResult") or {}).get("componentResults", [])
        if len(component) != len(cell.checks):
            out.append(f"{where}: {len(component)} assertions vs {len(cell.checks)}")
        for number, (their, our) in enumerate(zip(component, cell.checks)):
            if their["pass"] != our["pass"] or not math.isclose(their["score"], our["score"]):
                out.append(f"{where} assertion {number} {their['assertion']['type']}: {their['pass']} {their['score']} "
                           f"({their['reason'][:60]}) vs {our['pass']} {our['score']} ({our['reason'][:60]})")
    return out


@pytest.fixture
def pf_shell(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("aigc", "history --clear")
    yield shell
    shell.user_ns.pop("suite", None)


def failed_line(result, capsys) -> str:
    err = capsys.readouterr().err
    assert not result.success and "Traceback" not in err, err
    return next(line for line in err.splitlines() if line.startswith("UsageError"))


# assertions.py, type by type: (type, value, threshold, output) → (pass, score)
CASES = [
    ("equals", "Paris", None, "Paris", True, 1), ("equals", "Paris", None, "Paris.", False, 0),
    ("not-equals", "Paris", None, "Paris.", True, 1), ("equals", 4.0, None, "4", True, 1),
    ("equals", {"a": 1}, None, '{"a": 1.0}', True, 1), ("equals", {"a": 1}, None, '{"a": true}', False, 0),
    ("not-equals", {"a": 1}, None, "not json", True, 1),
    ("contains", "Par", None, "Paris", True, 1), ("not-contains", "Par", None, "Paris", False, 0),
    ("icontains", "PAR", None, "Paris", True, 1), ("not-icontains", "lyon", None, "Paris", True, 1),
    ("contains-any", 'x, "y, z", Par', None, "Paris", True, 1), ("contains-any", ["x", 5], None, "Paris", False, 0),
    ("not-contains-any", ["x", "y"], None, "Paris", True, 1), ("icontains-any", ["PARIS"], None, "paris", True, 1),
    ("contains-all", "Pa,ri", None, "Paris", True, 1), ("contains-all", ["Pa", "zz"], None, "Paris", False, 0),
    ("not-contains-all", ["Pa", "zz"], None, "Paris", True, 1), ("icontains-all", ["PA", "IS"], None, "paris", True, 1),
    ("starts-with", "Pa", None, "Paris", True, 1), ("not-starts-with", "Pa", None, "Paris", False, 0),
    ("regex", r"^\d+$", None, "42", True, 1), ("regex", r"^\d+$", None, "42\n", False, 0),
    ("regex", r"\d", None, "٣", False, 0), ("not-regex", "a.b", None, "a\nb", True, 1),
    ("regex", "(?i)paris", None, "Paris", False, 0), ("not-regex", "(?i)paris", None, "Paris", False, 0),
    ("is-json", None, None, ' {"a": [1, 2]} ', True, 1), ("is-json", None, None, "NaN", False, 0),
    ("not-is-json", None, None, "Paris", True, 1),
    ("is-json", {"type": "object", "required": ["b"]}, None, '{"a": 1}', False, 0),
    ("not-is-json", "{type: object, required: [b]}", None, '{"a": 1}', True, 1),
    ("contains-json", None, None, "Here: {a: 1} ok", True, 1), ("contains-json", None, None, '{"a": "}"}', False, 0),
    ("not-contains-json", None, None, "no braces", True, 1),
    ("contains-json", {"required": ["b"]}, None, '{"a": 1} {"b": 2}', True, 1),
    ("levenshtein", "kitten", None, "sitting", True, 1), ("levenshtein", "kitten", 2, "sitting", False, 0),
    ("not-levenshtein", "kitten", 2, "sitting", True, 1), ("levenshtein", "a", 1, "😀", False, 0),
    ("rouge-n", "the cat sat", None, "The cat sat.", True, 6 / 7),
    ("rouge-n", "the cat sat", 0.9, "The cat sat.", False, 6 / 7),
    ("not-rouge-n", "the cat sat", None, "The cat sat.", False, 1 / 7),
    ("not-rouge-n", "dog", None, "The cat", True, 1),
]


@pytest.mark.parametrize("kind, value, threshold, output, passed, score", CASES)
def test_each_assertion_type_and_its_not_form(kind, value, threshold, output, passed, score):
    base, inverse = A.split_type(kind)
    result = A.grade(base, inverse, output, value, threshold)
    assert (result["pass"], result["score"]) == (passed, pytest.approx(score)), result


def test_latency_cost_and_weights_make_the_tests_score():
    fast = A.grade("latency", False, "x", None, 500, latency_ms=120)
    slow = A.grade("latency", False, "x", None, 100, latency_ms=120)
    assert fast["pass"] and not slow["pass"] and "120ms" in slow["reason"]
    assert not A.grade("latency", True, "x", None, 500, latency_ms=120)["pass"]
    assert A.grade("cost", False, "x", None, 0.01, cost=0.002)["pass"]
    assert not A.grade("cost", True, "x", None, 0.01, cost=0.002)["pass"]
    assert not A.grade("cost", False, "x", None, 0.01, cost=None)["pass"], "an unknown cost fails"
    zero = A.weighed({"pass": False, "score": 0.0, "reason": "no"}, 0)
    assert zero["pass"], "weight 0 always passes"
    parts = [({"pass": True, "score": 1.0, "reason": A.PASSED}, 1.0, "accuracy"),
             ({"pass": False, "score": 0.25, "reason": "low"}, 3.0, "accuracy"), (zero, 0.0, None)]
    outcome = A.test_result(parts)
    assert outcome == {"pass": False, "score": pytest.approx(1.75 / 4), "reason": "low",
                       "named": {"accuracy": pytest.approx(1.75 / 4)}}
    assert A.test_result(parts, threshold=0.4)["pass"] and not A.test_result(parts, threshold=0.5)["pass"]
    assert A.test_result([]) == {"pass": True, "score": 1.0, "reason": "No assertions", "named": {}}


@pytest.mark.parametrize("returned, threshold, inverse, passed, score", [
    (True, None, False, True, 1), (False, None, True, True, 1), ("TRUE", None, False, True, 1),
    (0.4, None, False, True, 0.4), (0.0, None, False, False, 0), (0.4, 0.5, False, False, 0.4),
    (0.4, 0.5, True, True, 0.4), ("0.7 points", None, False, True, 0.7),
    ({"pass": True, "score": 0.3, "reason": "ok"}, None, False, True, 0.3),
    ({"pass_": True, "score": 0.3, "reason": "ok"}, 0.5, False, False, 0.3),
    ('{"pass": false, "score": 0, "reason": "no"}', None, True, True, 0),
])
def test_python_results_read_as_promptfoo_reads_them(returned, threshold, inverse, passed, score):
    result = A.run_python(lambda output, context: returned, "out", {}, threshold, inverse)
    assert (result["pass"], result["score"]) == (passed, pytest.approx(score))


def test_python_failures_fail_whatever_not_says():
    for returned in (None, [1], {"pass": True}, "words"):
        result = A.run_python(lambda output, context, r=returned: r, "out", {}, None, True)
        assert not result["pass"] and result["reason"].startswith("Python code execution failed")
    boom = A.run_python(lambda output, context: 1 / 0, "out", {}, None, True)
    assert not boom["pass"] and "ZeroDivisionError" in boom["reason"]
    assert A.python_source("len(output) > 3").endswith("    return len(output) > 3\n")
    scope = {}
    exec(A.python_source("  n = len(output)\n  return n > 3"), scope)
    assert scope["main"]("abcd", {}) is True


@pytest.mark.parametrize("text, threshold, inverse, passed, score", [
    ('{"reason": "fine", "pass": true, "score": 0.8}', None, False, True, 0.8),
    ('Sure. {"reason": "fine", "pass": true, "score": 0.8}', 0.9, False, False, 0.8),
    ('{"reason": "fine", "pass": "yes"}', None, False, True, 1),
    ('{"reason": "bad", "pass": false, "score": 0.2}', None, True, True, 0.8),
    ("no verdict at all", None, True, False, 0), ("", None, False, False, 0),
])
def test_llm_rubric_verdicts(text, threshold, inverse, passed, score):
    result = A.rubric_result(text, threshold, inverse)
    assert (result["pass"], result["score"]) == (passed, pytest.approx(score))


def test_javascript_text_rules():
    assert treebank_tokens("\"Quoted,\" he said. Can't cannot!") == \
        ["``", "Quoted", ",", "''", "he", "said.", "Ca", "n't", "can", "not", "!"], "js-rouge's own tokens"
    assert levenshtein("😀", "") == 2 and levenshtein("kitten", "sitting") == 3
    assert extract_json_objects('a {"x": 1} b {y: [1, 2]} c {broken') == [{"x": 1}, {"y": [1, 2]}, {"broken": None}]
    with pytest.raises(ValueError):
        js_regex("a++")
    assert js_regex(r"(?<y>\d{4})-\k<y>").search("2020-2020")


ECHO_SUITE = {
    "description": "every deterministic assertion type on texts chosen to catch JavaScript/Python differences",
    "prompts": ["{{ out }}", {"raw": "Q: {{ out }}", "label": "prefixed"}],
    "providers": [{"id": "echo", "label": "echo"}],
    "defaultTest": {"assert": [{"type": "latency", "threshold": 60000}, {"type": "cost", "threshold": 0.001}]},
    "tests": [
        {"description": "plain", "vars": {"out": "The capital of France is Paris."}, "assert": [
            {"type": "equals", "value": "The capital of France is Paris."}, {"type": "not-equals", "value": "Paris"},
            {"type": "contains", "value": "Paris"}, {"type": "not-contains", "value": "London"},
            {"type": "icontains", "value": "PARIS"}, {"type": "not-icontains", "value": "paris"},
            {"type": "contains-any", "value": "London, Paris"}, {"type": "not-contains-any", "value": ["Rome"]},
            {"type": "contains-all", "value": 'capital, "France is"'},
            {"type": "not-contains-all", "value": ["a", "zz"]},
            {"type": "icontains-any", "value": ["PARIS"]}, {"type": "icontains-all", "value": ["PARIS", "france"]},
            {"type": "starts-with", "value": "The"}, {"type": "not-starts-with", "value": "Q:"},
            {"type": "regex", "value": "Paris\\.$"}, {"type": "not-regex", "value": "^\\d+$"},
            {"type": "levenshtein", "value": "The capital of France is Lyon.", "threshold": 5},
            {"type": "not-levenshtein", "value": "The capital of Spain is Madrid."},
            {"type": "rouge-n", "value": "the capital city of france is paris"},
            {"type": "not-rouge-n", "value": "berlin is in germany", "threshold": 0.2, "weight": 2},
            {"type": "is-json"}, {"type": "not-is-json"}, {"type": "contains-json"}, {"type": "not-contains-json"},
            {"type": "python", "value": "'Paris' in output"}, {"type": "not-python", "value": "len(output) / 100"},
            {"type": "python", "value": "file://check.py"},
            {"type": "python", "value": "file://check.py:longish", "threshold": 1.2},
            {"type": "not-cost", "threshold": 0.01}, {"type": "not-latency", "threshold": 60000}]},
        {"description": "json in text", "threshold": 0.6,
         "vars": {"out": 'Here: {"name": "Ada", "age": 36} and {bad: yes} // note'}, "assert": [
             {"type": "contains-json", "value": "file://schema.json"},
             {"type": "not-contains-json", "value": {"type": "object", "required": ["zzz"]}},
             {"type": "is-json"}, {"type": "equals", "value": {"name": "Ada"}},
             {"type": "regex", "value": '\\{"name"'}, {"type": "rouge-n", "value": "here name ada age 36", "weight": 0},
             {"type": "contains", "value": 36},
             {"type": "python", "value": "{'pass': True, 'score': 0.3, 'reason': 'ok'}",
                                                 "threshold": 0.5, "metric": "custom"}]},
        {"vars": {"out": '{"name": "Bo", "n": 1.0}'}, "assert": [
            {"type": "is-json", "value": "file://schema.json"},
            {"type": "not-is-json", "value": "{type: object, required: [zzz]}"},
            {"type": "equals", "value": {"name": "Bo", "n": 1}},
            {"type": "not-equals", "value": {"name": "Bo", "n": True}},
            {"type": "contains-json", "metric": "custom"}, {"type": "levenshtein", "value": '{"name": "Bo", "n": 1}',
                                                            "threshold": 1}]},
        {"vars": {"out": ["A café — naïve 😀 text", "it's \"quoted\", isn't it? Dr. Who's U.S. trip...",
                          "ends with newline\n\n", "٣ digits and\u00a0spaces\u2003here",
                          "just {broken text"]}, "assert": [
            {"type": "icontains", "value": "CAFÉ"},
            {"type": "levenshtein", "value": "A cafe - naive :) text", "threshold": 6},
            {"type": "rouge-n", "value": "isn't it quoted trip", "threshold": 0.3},
            {"type": "regex", "value": "\\w+é"},
            {"type": "not-regex", "value": "\\s😀"}, {"type": "regex", "value": "newline$"},
            {"type": "regex", "value": "\\d"}, {"type": "regex", "value": "and\\sspaces\\s"},
            {"type": "contains-any", "value": '"isn\'t", "na, ive"'}, {"type": "python", "value": '"0.7"'},
            {"type": "starts-with", "value": "{{ out | first }}"}, {"type": "not-contains", "value": "{{ missing }}x"},
            {"type": "contains-json"}, {"type": "is-json"}]},
        {"vars": {"out": "42"}, "options": {"disableDefaultAsserts": True}, "assert": [
            {"type": "equals", "value": 42}, {"type": "equals", "value": 42.0}, {"type": "is-json"},
            {"type": "contains", "value": 4}, {"type": "not-equals", "value": "{{ out }}"},
            {"type": "python", "value": "int(output) * 2 == 84"},
            {"type": "python", "value": "json.loads(output) - 41"},
            {"type": "python", "value": "undefined_name"}, {"type": "regex", "value": "[unclosed"}]},
        {"description": "no assertions", "vars": {"out": "anything"}, "options": {"disableDefaultAsserts": True}},
    ],
}
CHECK_PY = '''def get_assert(output, context):
    return {"pass": "Paris" in output, "score": 0.5, "reason": "looked for Paris in " + context["vars"]["out"][:10]}


def longish(output, context):
    return len(output) / 20
'''


def write_suite(folder: Path, suite: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "promptfooconfig.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True, sort_keys=False))
    (folder / "check.py").write_text(CHECK_PY)
    (folder / "schema.json").write_text('{"type": "object", "properties": {"name": {"type": "string"}}, '
                                        '"required": ["name"]}')


def test_the_same_outputs_pass_and_score_as_in_promptfoo(pf_shell, tmp_path, capsys):
    """Every deterministic type and its not- form on promptfoo's echo provider: 20 test runs, 278 assertions."""
    write_suite(tmp_path / "suite", ECHO_SUITE)
    theirs = promptfoo_eval(tmp_path / "suite", tmp_path / "promptfoo-home")
    result, evaluation = evaluate(pf_shell, f"--promptfoo {tmp_path / 'suite'} -o df")
    assert result.success, capsys.readouterr().err
    assert len(theirs) == len(evaluation.cells) == 20 and sum(len(c.checks) for c in evaluation.cells) == 278
    assert differences(evaluation, theirs) == []
    assert {(c.scores["pass"], c.scores["score"] != 1) for c in evaluation.cells} >= {(0.0, True), (1.0, False)}
    df = pf_shell.user_ns["df"]
    assert len(df) == 20 and {"description", "out", "variant", "output", "pass", "score", "custom"} <= set(df)
    assert list(df["variant"].unique()) == ["echo · {{ out }}", "echo · prefixed"]
    assert evaluation.task == "promptfoo" and evaluation.metrics == ["pass", "score", "custom"]
    first = evaluation.cells[0].checks
    assert first[2] == {"type": "equals", "value": "The capital of France is Paris.", "pass": True, "score": 1.0,
                        "reason": "Assertion passed", "weight": 1.0, "threshold": None, "metric": None}
    out = capsys.readouterr().out
    assert "python assertion failed to run" in out and "undefined_name" in out


def test_a_suite_from_a_variable_with_notebook_functions_and_the_cell_as_prompt(pf_shell, capsys):
    pf_shell.user_ns["short"] = lambda output, context: len(output) < 20
    pf_shell.user_ns["suite"] = {
        "providers": ["echo"], "tests": [
            {"vars": {"name": "Ada"}, "assert": [
                {"type": "python", "value": "short"},
                {"type": "python", "value": lambda output, context: context["vars"]["name"] in output}]},
            {"vars": {"name": "a very long name indeed"}, "threshold": 0.5,
             "assert": [{"type": "python", "value": "short"}, {"type": "contains", "value": "Hello"}]}]}
    result = pf_shell.run_cell("%%aigc_eval --promptfoo suite -o df\nHello {{ name }}!")
    assert result.success, capsys.readouterr().err
    df = pf_shell.user_ns["df"]
    assert df["output"].tolist() == ["Hello Ada!", "Hello a very long name indeed!"]
    assert df["pass"].tolist() == [1.0, 1.0] and df["score"].tolist() == [1.0, 0.5]
    assert "2 of 2 answers passed" in capsys.readouterr().out


def test_stop_keeps_the_finished_answers(pf_shell):
    """The view's Stop (the cancel event) ends the run between answers; the finished ones keep their checks."""
    import threading

    session = pf_shell._jupyter_aigc_session
    pf_shell.user_ns["suite"] = {"providers": ["echo"], "prompts": ["{{ n }}"],
                                 "tests": [{"vars": {"n": str(i)}, "assert": [{"type": "contains", "value": "1"}]}
                                           for i in range(10)]}
    args = pf_shell._jupyter_aigc_magics.aigc_eval.parser.parse_args(["--promptfoo", "suite"])
    cancel, seen = threading.Event(), []

    class Stopping:
        def begin(self, evaluation):
            pass

        def cell_done(self, evaluation, cell):
            seen.append(cell.row)
            if len(seen) == 3:
                cancel.set()

        def end(self, evaluation):
            pass

    evaluation = session.evaluate.run(args, "\n", pf_shell.user_ns, cancel, Stopping())
    assert evaluation.stopped and seen == [0, 1, 2]
    assert [c.scores.get("pass") for c in evaluation.cells] == [0.0, 1.0, 0.0] + [None] * 7
    assert session.history[-1]["finish_reason"] == "stopped"


@pytest.mark.parametrize("suite, line, message", [
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"assert": [{"type": "similar", "value": "x"}]}]}, "",
     "the assertion type 'similar' is not supported. Supported: equals, contains,"),
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"assert": [{"type": "not-javascript", "value": "1"}]}]}, "",
     "Test 1, assertion 1: the assertion type 'not-javascript' is not supported"),
    ({"providers": ["anthropic:messages:claude-3"], "prompts": ["x"]}, "",
     "Provider 1 'anthropic:messages:claude-3' is not a provider this project can call. Use openai:MODEL"),
    ({"providers": ["openai:embedding:text-embedding-3-small"], "prompts": ["x"]}, "",
     "is not a provider this project"),
    ({"providers": [{"id": "openai:chat:x", "config": {"apiKey": "sk-abc"}}], "prompts": ["x"]}, "",
     "has an apiKey in the suite"),
    ({"providers": [{"id": "echo", "config": {"response_format": "json"}}], "prompts": ["x"]}, "",
     "'response_format' is not supported here"),
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"assert": [{"type": "latency"}]}]}, "",
     "latency must have a threshold in milliseconds"),
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"assert": [{"type": "contains"}]}]}, "",
     "contains must have a string or number value"),
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"assert": [{"type": "contains-any", "value": '"a, b'}]}]},
     "", "Unterminated quoted field"),
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"assert": [{"type": "is-json", "value": {"type": 5}}]}]},
     "", "has an invalid JSON schema"),
    ({"providers": ["SmolLM2-135M-Instruct"], "prompts": ["x"],
      "tests": [{"assert": [{"type": "cost", "threshold": 1}]}]}, "",
     "cost assertions need the price of SmolLM2-135M-Instruct"),
    ({"providers": ["SmolLM2-135M-Instruct"], "prompts": ["x"], "tests": [{"assert": [{"type": "llm-rubric",
                                                                                        "value": "nice"}]}]},
     "", "is llm-rubric, which needs a grader. Give --judge MODEL"),
    ({"providers": ["echo"], "prompts": ['[{"role": "user", "content": "hi"}]']}, "", "is in chat format"),
    ({"providers": ["echo"], "prompts": ["x"], "scenarios": []}, "", "The suite's 'scenarios' is not supported here"),
    ({"providers": ["echo"], "prompts": ["x"], "tests": [{"vars": {}, "options": {"transform": "output"}}]}, "",
     "the option 'transform' is not supported here"),
    ({"providers": ["echo"], "prompts": ["{{ x "]}, "", ""),
    ({"providers": ["echo"], "prompts": ["x"]}, "-m SmolLM2-135M-Instruct", "--model does not apply"),
    ({"providers": ["echo"], "prompts": ["x"]}, "--data rows", "--data does not apply with --promptfoo"),
    ({"providers": ["echo"], "prompts": ["{% if %}"]}, "", "Prompt 1 with test 1: the template cannot be rendered"),
    ({"providers": [{"id": "SmolLM2-135M-Instruct", "config": {"temperature": 9}}], "prompts": ["x"]}, "",
     "config.temperature 9.0 is out"),
])
def test_bad_suites_are_one_line(pf_shell, suite, line, message, capsys):
    pf_shell.user_ns["suite"] = suite
    result, _ = evaluate(pf_shell, f"--promptfoo suite {line}")
    if not message:  # a lone {{ is text, as in promptfoo
        assert result.success
        return
    assert message in failed_line(result, capsys)


def test_bad_files_are_one_line(pf_shell, tmp_path, capsys):
    result, _ = evaluate(pf_shell, f"--promptfoo {tmp_path / 'nowhere.yaml'}")
    assert "--promptfoo '" in failed_line(result, capsys)
    (tmp_path / "broken.yaml").write_text("prompts:\n  - x\nproviders: [echo\ntests:\n  - vars: {a: 1}\n")
    result, _ = evaluate(pf_shell, f"--promptfoo {tmp_path / 'broken.yaml'}")
    line = failed_line(result, capsys)
    assert "broken.yaml line 4, column" in line and "is not valid YAML" in line
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    result, _ = evaluate(pf_shell, f"--promptfoo {tmp_path / 'list.yaml'}")
    assert "is a list, not a suite" in failed_line(result, capsys)
    (tmp_path / "files.yaml").write_text("prompts: [x]\nproviders: [echo]\ntests: file://missing.yaml\n")
    result, _ = evaluate(pf_shell, f"--promptfoo {tmp_path / 'files.yaml'}")
    assert "tests: no file at" in failed_line(result, capsys)


PARITY_PY = '''def get_assert(output, context):
    return {"pass": len(output.split()) <= 40, "score": min(1.0, 10 / max(1, len(output.split()))),
            "reason": "words: %d" % len(output.split())}


def mentions(output, context):
    return context["vars"]["topic"].lower() in output.lower()
'''


RUBRIC_SYSTEM = A.DEFAULT_RUBRIC_PROMPT[0]  # the tiny model gives more verdicts with these two rubric prompts
RUBRIC_TAIL = "<Output>\n{{ output }}\n</Output>\n<Rubric>\n{{ rubric }}\n</Rubric>\nReply with the JSON object only."
RUBRIC_TEXT = ("Output: {{ output }}\nRubric: {{ rubric }}\nGrade the output by the rubric. Reply with JSON like "
               '{"reason": "...", "pass": true, "score": 1.0}')


def parity_suite(url: str) -> dict:
    server = {"apiBaseUrl": url, "temperature": 0, "max_tokens": 40}
    tests = [
        {"description": "capital", "vars": {"question": "What is the capital of France?", "topic": "Paris"}, "assert": [
            {"type": "contains", "value": "Paris"}, {"type": "not-contains", "value": "London"},
            {"type": "icontains", "value": "{{ topic }}"}, {"type": "starts-with", "value": "The"},
            {"type": "not-starts-with", "value": "{"}, {"type": "regex", "value": "Paris[.!]?"},
            {"type": "levenshtein", "value": "The capital of France is Paris.", "threshold": 12},
            {"type": "not-levenshtein", "value": "Paris", "threshold": 3},
            {"type": "rouge-n", "value": "The capital of France is Paris.", "threshold": 0.5},
            {"type": "not-rouge-n", "value": "bananas are yellow"}]},
        {"description": "sum", "vars": {"question": "What is 2 + 2?", "topic": "4"}, "assert": [
            {"type": "contains-any", "value": "4, four"}, {"type": "not-contains-any", "value": ["five", "22"]},
            {"type": "contains-all", "value": ["2", "4"]}, {"type": "not-contains-all", "value": ["4", "purple"]},
            {"type": "icontains-any", "value": ["FOUR", "4"]}, {"type": "icontains-all", "value": ["2"]},
            {"type": "regex", "value": "\\b4\\b"}, {"type": "not-regex", "value": "^\\d+$"},
            {"type": "equals", "value": 4}, {"type": "not-equals", "value": "5"}]},
        {"description": "json", "vars": {"question": 'Reply only with JSON like {"city": "...", "country": "..."} '
                                                     "for the capital of Italy.", "topic": "Rome"},
         "assert": [{"type": "is-json"}, {"type": "not-is-json"}, {"type": "contains-json"},
                    {"type": "not-contains-json"},
                    {"type": "contains-json", "value": {"type": "object", "required": ["city"]}},
                    {"type": "is-json", "value": {"type": "object", "required": ["country"]}},
                    {"type": "not-contains-json", "value": {"type": "object", "required": ["zzz"]}},
                    {"type": "icontains", "value": "rome"}]},
        {"description": "python", "vars": {"question": "Name three primary colors.", "topic": "red"}, "assert": [
            {"type": "python", "value": "len(output) < 200"}, {"type": "not-python", "value": "'purple' in output"},
            {"type": "python", "value": "file://check.py"}, {"type": "python", "value": "file://check.py:mentions"},
            {"type": "python", "value": "len(output.split()) / 10", "threshold": 0.5, "weight": 2},
            {"type": "latency", "threshold": 600000}, {"type": "not-latency", "threshold": 600000}]},
        {"description": "weights and a threshold", "threshold": 0.5,
         "vars": {"question": "Say hello in Spanish.", "topic": "hola"}, "assert": [
             {"type": "icontains", "value": "hola", "weight": 3}, {"type": "contains", "value": "Bonjour"},
             {"type": "not-icontains", "value": "ciao", "weight": 0},
             {"type": "rouge-n", "value": "Hola", "weight": 2}]},
        {"description": "rubric", "vars": {"question": "Say hello and welcome a guest.", "topic": "welcome"},
         "options": {"rubricPrompt": [RUBRIC_SYSTEM, {"role": "user", "content": RUBRIC_TAIL}]},
         "assert": [{"type": "llm-rubric", "value": "The text is a greeting."},
                    {"type": "not-llm-rubric", "value": "The text is a greeting.", "threshold": 0.5},
                    {"type": "llm-rubric", "value": "The text is about fishing."}]},
        {"description": "rubric in text", "vars": {"question": "Say hello and welcome a guest.", "topic": "hello"},
         "options": {"rubricPrompt": RUBRIC_TEXT},
         "assert": [{"type": "llm-rubric", "value": "The text is a greeting."},
                    {"type": "not-llm-rubric", "value": "The text is about fishing."}]},
    ]
    return {"prompts": ["Answer in one short sentence. {{ question }}", {"raw": "{{ question }}", "label": "bare"}],
            "providers": [{"id": "openai:chat:smollm2", "label": "smollm2", "config": server}],
            "defaultTest": {"options": {"provider": {"id": "openai:chat:smollm2",
                                                     "config": {**server, "max_tokens": 120}}},
                            "assert": [{"type": "python", "value": "file://check.py:mentions", "weight": 0.5}]},
            "tests": tests}


@pytest.fixture(scope="module")
def one_slot_server(default_gguf):
    """One slot, no prompt cache: greedy answers that do not depend on the order requests arrive."""
    from jupyter_aigc.core.convert import f16_gguf

    yield from start_llama_server(f16_gguf(default_gguf), slots=1, cache_prompt=False)


@pytest.mark.slow
def test_greedy_answers_from_one_server_give_promptfoos_pass_fail(pf_shell, one_slot_server, tmp_path, capsys):
    """The default model on llama.cpp's server, through promptfoo and through the magic: the same answers and the
    same pass, fail and score per test and per assertion (7 tests × 2 prompts, 102 assertions)."""
    url, _ = one_slot_server
    folder = tmp_path / "suite"
    write_suite(folder, parity_suite(url))
    (folder / "check.py").write_text(PARITY_PY)
    theirs = promptfoo_eval(folder, tmp_path / "promptfoo-home")
    errors = [t["error"][:300] for t in theirs if t.get("failureReason") == 2]  # ResultFailureReason.ERROR
    assert not errors, errors
    result, evaluation = evaluate(pf_shell, f"--promptfoo {folder / 'promptfooconfig.yaml'}")
    assert result.success, capsys.readouterr().err
    assert len(theirs) == len(evaluation.cells) == 14
    assert differences(evaluation, theirs) == []
    passes = [c["pass"] for cell in evaluation.cells for c in cell.checks]
    assert len(passes) == 102 and any(passes) and not all(passes)
    verdicts = [c for cell in evaluation.cells for c in cell.checks if c["type"].endswith("llm-rubric")
                and not c["reason"].startswith(("Could not extract JSON", "No output"))]
    assert len(verdicts) >= 4 and any(c["pass"] for c in verdicts), "the grader gave verdicts, not only failures"
    assert "14 answers asked, 0 reused" in capsys.readouterr().out
    result, again = evaluate(pf_shell, f"--promptfoo {folder / 'promptfooconfig.yaml'}")
    assert result.success and "0 answers asked, 14 reused" in capsys.readouterr().out
    assert [c.checks for c in again.cells] == [c.checks for c in evaluation.cells], "stored verdicts too"


@pytest.mark.slow
def test_local_models_by_our_names_and_a_judge_for_llm_rubric(pf_shell, capsys):
    pf_shell.user_ns["suite"] = {
        "prompts": ["Answer in one word. {{ q }}"],
        "providers": [{"id": "SmolLM2-135M-Instruct", "config": {"max_tokens": 12}},
                      {"id": "SmolLM2-135M-Instruct", "config": {"max_tokens": 12, "temperature": 0.9, "seed": 3}}],
        "tests": [{"vars": {"q": "What is the capital of France?"},
                   "assert": [{"type": "icontains", "value": "paris"},
                              {"type": "llm-rubric", "value": "Names a city", "metric": "judged"}]}]}
    result, evaluation = evaluate(pf_shell, "--promptfoo suite --judge SmolLM2-135M-Instruct -o df")
    assert result.success, capsys.readouterr().err
    assert evaluation.titles == ["SmolLM2-135M-Instruct · temperature 0.0",
                                 "SmolLM2-135M-Instruct · temperature 0.9 · seed 3"]
    for cell in evaluation.cells:
        assert [c["type"] for c in cell.checks] == ["icontains", "llm-rubric"] and cell.checks[1]["reason"]
        assert "judged" in cell.scores and 0 <= cell.scores["score"] <= 1
    assert evaluation.metrics == ["pass", "score", "judged"]
