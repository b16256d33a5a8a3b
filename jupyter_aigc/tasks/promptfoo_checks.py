"""Checking a promptfoo suite's answers: each cell's assertions as promptfoo checks them (``Grader``), a python
assertion's function (inline code, file://check.py[:fn], or a notebook function, run in the kernel), and
llm-rubric through its grader with promptfoo's grading prompt, verdicts stored and reused like answers.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import replace

from ..core.errors import AigcError
from ..core.types import Response
from ..record.pricing import cost
from . import assertions as A
from .evaluate import BATCH, STORED, BatchView, Cell, Evaluation, cell_key, response_from, weights_fingerprint
from .jstext import js_json, json_parse
from .promptfoo_suite import Suite, render, shown_value


def python_function(value, namespace: dict, base, cache: dict):
    """A python assertion's function: a callable, a notebook function's name, file://check.py[:fn] (promptfoo's
    default fn is get_assert), or inline code (one expression, or a body that returns), run in the kernel."""
    if callable(value):
        return value
    if value in cache:
        return cache[value]
    if callable(namespace.get(value)):
        function = namespace[value]
    elif value.startswith("file://"):
        path, _, name = value[7:].partition(":")
        path = base / path
        if path.suffix != ".py" or not path.is_file():
            raise AigcError(f"python assertion: no Python file at {path}.",
                            "Give file://check.py or file://check.py:fn.")
        spec = importlib.util.spec_from_file_location(f"promptfoo_check_{len(cache)}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise AigcError(f"python assertion: {path.name} raised {type(exc).__name__} on import: {exc}.",
                            "Fix the file.") from None
        function = getattr(module, name or "get_assert", None)
        if not callable(function):
            raise AigcError(f"python assertion: {path.name} has no function {name or 'get_assert'}.",
                            "Define it: def get_assert(output, context) -> bool | float | dict.")
    else:
        scope = dict(namespace)
        try:
            exec(compile(A.python_source(value), "<python assertion>", "exec"), scope)  # noqa: S102 - the user's code
        except SyntaxError as exc:
            raise AigcError(f"python assertion: its code is not Python ({exc.msg}): {value[:60]!r}.",
                            "Write an expression (len(output) < 80) or a body that returns.") from None
        function = scope["main"]
    cache[value] = function
    return function


class Grader:
    """Checks each answered cell as promptfoo checks it (``score(cell)``, as a Scorer's); llm-rubric is left
    for ``judge`` and the cell finished there."""

    def __init__(self, suite: Suite, providers, prompts, values, functions, graders, evaluation: Evaluation):
        self.suite, self.providers, self.prompts, self.values = suite, providers, prompts, values
        self.functions, self.graders, self.evaluation = functions, graders, evaluation
        self.results: dict[int, list] = {}
        self.failed_code: str | None = None

    def score(self, cell: Cell) -> None:
        response = cell.response
        if response is None or response.finish_reason == "error":
            return
        test, provider = self.suite.tests[cell.row], self.providers[cell.variant // len(self.prompts)]
        latency = round(max(response.elapsed - response.queued, 0.0) * 1000)
        spent = 0.0 if provider.echo else cost(response)
        results = []
        for number, (item, value) in enumerate(zip(test.checks, self.values[cell.row])):
            if item.base == "llm-rubric":
                result = None
            elif item.base == "python":
                context = {"prompt": cell.prompt, "vars": test.vars, "config": item.config,
                           "test": {"vars": test.vars, "description": test.description, "options": test.options},
                           "provider": {"id": provider.id, "label": provider.label}, "logProbs": None,
                           "providerResponse": {"output": response.text, "cached": cell.reused,
                                                "tokenUsage": dict(response.usage)}}
                result = A.run_python(self.functions[cell.row][number], response.text, context, item.threshold,
                                      item.inverse)
                if result["reason"].startswith("Python code execution failed") and self.failed_code is None:
                    self.failed_code = f"test {cell.row + 1}: {result['reason']}"
            else:
                result = A.grade(item.base, item.inverse, response.text, value, item.threshold, latency, spent)
            results.append(result)
        self.results[id(cell)] = results
        if all(r is not None for r in results):
            self.finish(cell)

    def pending(self) -> list[tuple[Cell, int]]:
        return [(c, n) for c in self.evaluation.cells for n, r in enumerate(self.results.get(id(c), [])) if r is None]

    def finish(self, cell: Cell) -> None:
        test = self.suite.tests[cell.row]
        results = [A.weighed(r, item.weight) for r, item in zip(self.results[id(cell)], test.checks)]
        metrics = [render(item.metric, test.vars, "metric") if item.metric else None for item in test.checks]
        outcome = A.test_result([(r, item.weight, m) for r, item, m in zip(results, test.checks, metrics)],
                                test.threshold)
        cell.checks = [{"type": item.kind, "value": shown_value(value), "pass": bool(r["pass"]),
                        "score": float(r["score"]), "reason": r["reason"], "weight": item.weight,
                        "threshold": item.threshold, "metric": m}
                       for item, value, r, m in zip(test.checks, self.values[cell.row], results, metrics)]
        ungraded = any(r.get("ungraded") for r in results)  # stopped before its llm-rubric: not scored
        cell.scores = {} if ungraded else {"pass": float(outcome["pass"]), "score": float(outcome["score"]),
                                           **outcome["named"]}
        cell.reason = "Not graded: the run was stopped first." if ungraded else outcome["reason"]


def _rubric_messages(test, value, output: str, where: str) -> list[dict]:
    """promptfoo's grading prompt (or the suite's rubricPrompt) filled in: messages for the grader."""
    prompt = test.options.get("rubricPrompt") or A.DEFAULT_RUBRIC_PROMPT
    context = A.rubric_context(output, value, test.vars)
    if isinstance(prompt, str):
        try:
            prompt = json_parse(prompt)
        except ValueError:
            text = render(prompt, context, where + " rubricPrompt")
            try:
                parsed = json_parse(text)
            except ValueError:
                parsed = None
            return parsed if isinstance(parsed, list) else [{"role": "user", "content": text}]
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "content" in m for m in prompt):
        raise AigcError(f"{where}: rubricPrompt is not a list of messages.",
                        'e.g. [{"role": "user", "content": "…"}]')
    return [{**m, "content": render(str(m["content"]), context, where + " rubricPrompt")} for m in prompt]


def judge(task, args, grader: Grader, cancel: threading.Event) -> None:
    """Every pending llm-rubric through its grader (stored verdicts reused), then those cells finished."""
    session, pending = task.session, grader.pending()
    planned, keys, key_envs = [], [], []
    for cell, number in pending:
        test = grader.suite.tests[cell.row]
        where = f"Test {cell.row + 1}, assertion {number + 1}"
        provider = grader.graders[cell.row][number]
        messages = _rubric_messages(test, grader.values[cell.row][number], cell.response.text, where)
        planned.append(replace(provider.variant, request=replace(provider.variant.request, messages=messages)))
        keys.append(cell_key(planned[-1], js_json(messages), weights_fingerprint(provider.variant.ref)))
        key_envs.append(provider.key_env or args.key_env)
    verdicts: list[Response | None] = [None] * len(planned)
    for index, key in enumerate(keys):
        try:
            stored = None if args.fresh else session.history.answer(key)
        except (ValueError, TypeError):
            stored = None
        verdicts[index] = response_from(stored) if stored is not None else None
    groups: dict = {}
    for index, verdict in enumerate(verdicts):
        if verdict is None:
            groups.setdefault(key_envs[index], []).append(index)
    for key_env, todo in groups.items():
        session.gpt.prepare([planned[i] for i in todo], key_env)
        for start in range(0, len(todo), BATCH):
            if cancel.is_set():
                break
            chunk = todo[start:start + BATCH]
            for index, response in zip(chunk, session.runner.run([planned[i] for i in chunk], BatchView(), cancel,
                                                                  key_env)):
                verdicts[index] = response
                if response.finish_reason in STORED and not response.error:
                    session.history.store_answer(keys[index], response.metadata())
    for (cell, number), response in zip(pending, verdicts):
        item = grader.suite.tests[cell.row].checks[number]
        if response is not None and response.finish_reason == "stopped" and not response.text:
            response = None  # Stop came before this verdict started
        text = response.text if response is not None and response.finish_reason != "error" else None
        result = A.rubric_result(text, item.threshold, item.inverse) if response is not None else \
            {"pass": False, "score": 0.0, "reason": "Not graded: the run was stopped first.", "ungraded": True}
        if response is not None and response.finish_reason == "error":
            result["reason"] = f"The grader failed: {response.error}"
        grader.results[id(cell)][number] = result
    for cell in {id(c): c for c, _ in pending}.values():
        grader.finish(cell)
