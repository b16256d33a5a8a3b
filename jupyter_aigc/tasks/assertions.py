"""promptfoo's assertion types, computed as promptfoo 0.121.20 computes them (src/assertions/*.ts; the test's
result as AssertionsResult in src/assertions/index.ts), on an answer's text.

Each type gives ``{"pass", "score", "reason"}``. ``not-TYPE`` inverts the pass (and, where promptfoo does, the
score: rouge-n and llm-rubric give ``1 - score``). ``threshold`` means per type what promptfoo means: the largest
edit distance for levenshtein (default 5), the smallest score for rouge-n (0.75), python and llm-rubric, the
largest milliseconds or dollars for latency and cost (required). An assertion of weight 0 always passes and
counts nothing. The test's score is the weighted mean of its assertions' scores; it passes when every assertion
passes, or, with a test ``threshold``, when its score reaches the threshold.
"""

from __future__ import annotations

import math
import re
from typing import Callable

from .jstext import extract_json_objects, js_json, js_regex, js_string, json_parse, levenshtein, treebank_tokens
from .metrics import REGEX_TIMEOUT

TYPES = ("equals", "contains", "icontains", "contains-any", "icontains-any", "contains-all", "icontains-all",
         "starts-with", "regex", "is-json", "contains-json", "levenshtein", "rouge-n", "latency", "cost", "python",
         "llm-rubric")
PASSED = "Assertion passed"


def split_type(kind: str) -> tuple[str, bool]:
    """'not-contains' → ('contains', True)."""
    return (kind[4:], True) if kind.startswith("not-") else (kind, False)


def simple(passed: bool, failure: str) -> dict:
    return {"pass": passed, "score": 1.0 if passed else 0.0, "reason": PASSED if passed else failure}


def _not(inverse: bool) -> str:
    return "not " if inverse else ""


def same(a, b) -> bool:
    """util.isDeepStrictEqual for JSON values: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def comma_list(text: str) -> list[str]:
    """promptfoo's parseCommaSeparatedValues: 'a, "b, c"' → ['a', 'b, c']; repeated commas are skipped."""
    fields, i = [], 0
    while True:
        while i < len(text) and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= len(text):
            return fields
        if text[i] != '"':
            end = text.find(",", i)
            end = len(text) if end < 0 else end
            fields.append(text[i:end].strip())
            i = end
            continue
        field, i = "", i + 1
        while i < len(text) and text[i] != '"' or text[i:i + 2] == '""':
            if text[i] == "\\" and text[i + 1:i + 2] in ('"', "\\") or text[i:i + 2] == '""':
                field, i = field + text[i + 1], i + 2
            else:
                field, i = field + text[i], i + 1
        if i >= len(text):
            raise ValueError("Unterminated quoted field in contains assertion value")
        fields.append(field)
        i += 1
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] != ",":
            raise ValueError("Expected comma after quoted field in contains assertion value")


def items_of(value) -> list:
    """A -any/-all value's items: a list, or text of comma-separated values."""
    return comma_list(value) if isinstance(value, str) else list(value)


def _contains(base: str, output: str, value, inverse: bool) -> dict:
    fold = base.startswith("i")
    text = output.lower() if fold else output
    if base in ("contains", "icontains"):
        wanted = js_string(value)
        passed = ((wanted.lower() if fold else wanted) in text) != inverse
        return simple(passed, f'Expected output to {_not(inverse)}contain "{wanted}"')
    items = [js_string(v) for v in items_of(value)]
    found = [(v.lower() if fold else v) in text for v in items]
    if base.endswith("-any"):
        return simple(any(found) != inverse, f'Expected output to {_not(inverse)}contain one of "{", ".join(items)}"')
    missing = [v for v, hit in zip(items, found) if not hit]
    return simple((not missing) != inverse, f"Expected output to {_not(inverse)}contain all of [{', '.join(items)}]. "
                                            f"Missing: [{', '.join(missing)}]")


def _equals(output: str, value, inverse: bool) -> dict:
    if value is None or isinstance(value, (dict, list)):
        try:
            passed = same(value, json_parse(output)) != inverse
        except ValueError:
            passed = inverse
        shown = js_json(value)
    else:
        shown = js_string(value)
        passed = (shown == output) != inverse
    return simple(passed, f'Expected output "{output}" to {_not(inverse)}equal "{shown}"')


def _regex(output: str, value: str, inverse: bool) -> dict:
    try:
        pattern = js_regex(value)
    except ValueError as exc:
        return {"pass": False, "score": 0.0, "reason": f"Invalid regex pattern: {exc}"}
    try:
        found = pattern.search(output, timeout=REGEX_TIMEOUT, concurrent=True) is not None
    except TimeoutError:
        return {"pass": False, "score": 0.0, "reason": f"The pattern took longer than {REGEX_TIMEOUT:g} s on this "
                                                       "answer (nested repeats such as (a+)+ can take forever)"}
    return simple(found != inverse, f'Expected output to {_not(inverse)}match regex "{value}"')


def schema_of(value):
    """A JSON schema given inline: a dict, or YAML/JSON text."""
    import yaml

    return yaml.safe_load(value) if isinstance(value, str) else value


def _valid(schema, value) -> tuple[bool, str]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    error = jsonschema.exceptions.best_match(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    return error is None, "" if error is None else error.message


def truthy(value) -> bool:
    """JavaScript's truthiness for what YAML gives (an empty list or mapping is true)."""
    return not (value is None or value is False or value == "" or (isinstance(value, (int, float)) and value == 0))


def _is_json(output: str, value, inverse: bool) -> dict:
    try:
        parsed, ok = json_parse(output), True
    except ValueError:
        parsed, ok = None, False
    passed = ok != inverse
    if ok and truthy(value):
        valid, problem = _valid(schema_of(value), parsed)
        passed = valid != inverse
        if not passed:
            return {"pass": False, "score": 0.0, "reason": "Output is JSON that conforms to the provided schema"
                    if inverse else f"JSON does not conform to the provided schema. Errors: {problem}"}
    return simple(passed, "Expected output to be valid JSON")


def _contains_json(output: str, value, inverse: bool) -> dict:
    found = extract_json_objects(output)
    passed, message = (not found) if inverse else bool(found), "Expected output to contain valid JSON"
    if truthy(value):
        schema = schema_of(value)
        for item in found:
            valid, problem = _valid(schema, item)
            passed = valid != inverse
            if valid:
                message = "Output contains JSON conforming to the provided schema" if inverse else message
                break
            message = f"JSON does not conform to the provided schema. Errors: {problem}"
    return simple(passed, message)


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """promptfoo's rougeNScore: clipped n-gram overlap of js-rouge's tokens, F1 as js-rouge's fMeasure."""
    from collections import Counter

    ours, theirs = treebank_tokens(candidate), treebank_tokens(reference)
    if len(ours) < n or len(theirs) < n:
        return 0.0
    grams = Counter(" ".join(ours[i:i + n]) for i in range(len(ours) - n + 1))
    reference_grams = Counter(" ".join(theirs[i:i + n]) for i in range(len(theirs) - n + 1))
    overlap = sum(min(count, reference_grams[gram]) for gram, count in grams.items())
    if overlap == 0:
        return 0.0
    p, r = overlap / (len(ours) - n + 1), overlap / (len(theirs) - n + 1)
    if p == r:
        return p
    return min(p, r * (2 / (1 + r / p))) if p > r else min(r, p * (2 / (1 + p / r)))


def _rouge(output: str, value: str, threshold, inverse: bool) -> dict:
    score, limit = rouge_n(output.lower(), value.lower()), 0.75 if threshold is None else threshold
    return {"pass": (score >= limit) != inverse, "score": 1 - score if inverse else score,
            "reason": f"ROUGE-N score {score:.2f} is {'greater than or equal to' if score >= limit else 'less than'} "
                      f"threshold {js_string(limit)}"}


def _at_most(what: str, amount, threshold, inverse: bool, unit: str = "") -> dict:
    if amount is None:
        return {"pass": False, "score": 0.0, "reason": f"No {what.lower()} is known for this answer"}
    return simple((amount <= threshold) != inverse, f"{what} {js_string(amount)}{unit} is "
                  f"{'less than or equal to' if inverse else 'greater than'} threshold {js_string(threshold)}{unit}")


def grade(base: str, inverse: bool, output: str, value, threshold=None, latency_ms=None, cost=None) -> dict:
    """One deterministic assertion on an answer (python and llm-rubric have their own steps)."""
    if base in ("contains", "icontains", "contains-any", "icontains-any", "contains-all", "icontains-all"):
        return _contains(base, output, value, inverse)
    if base == "equals":
        return _equals(output, value, inverse)
    if base == "starts-with":
        return simple(output.startswith(value) != inverse, f'Expected output to {_not(inverse)}start with "{value}"')
    if base == "regex":
        return _regex(output, value, inverse)
    if base == "is-json":
        return _is_json(output, value, inverse)
    if base == "contains-json":
        return _contains_json(output, value, inverse)
    if base == "levenshtein":
        distance, limit = levenshtein(output, value), 5 if threshold is None else threshold
        return simple((distance <= limit) != inverse, f"Levenshtein distance {distance} is "
                      f"{'less than or equal to' if inverse else 'greater than'} threshold {js_string(limit)}")
    if base == "rouge-n":
        return _rouge(output, value, threshold, inverse)
    if base == "latency":
        return _at_most("Latency", latency_ms, threshold, inverse, "ms")
    if base == "cost":
        return _at_most("Cost", cost, threshold, inverse)
    raise ValueError(f"'{base}' is not a deterministic assertion type")


def python_source(code: str) -> str:
    """promptfoo's buildPythonScript: one line is returned; several lines are the body of main(output, context)."""
    if "\n" in code:
        found = re.search(r"^(?!\s*$)\s+", code, re.MULTILINE)
        indent = found.group() if found else "    "
        return "import json\n\ndef main(output, context):\n" + "\n".join(indent + line for line in code.split("\n"))
    return f"import json\n\ndef main(output, context):\n    return {code}\n"


def _js_float(text: str) -> float:
    """parseFloat: the longest number at the start; NaN when there is none."""
    found = re.match(r"\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))", text)
    return float(found.group(1).replace("Infinity", "inf")) if found else math.nan


def script_result(result, threshold, inverse: bool, label: str = "Python code") -> dict:
    """What a python assertion's function returned, as promptfoo's normalizeScriptResult reads it: a bool, a
    number (passes above 0, or at the threshold), or {pass, score, reason}. ValueError for anything else."""
    result = result.item() if hasattr(result, "item") and not isinstance(result, (dict, list, str)) else result
    wrong = ("Python assertion must return a boolean, number, or {pass, score, reason} object. "
             f"Got instead: {str(result)[:200]}")
    if isinstance(result, str) and result.lower() in ("true", "false"):
        result = result.lower() == "true"
    elif isinstance(result, str) and result.startswith("{"):
        result = json_parse(result)
    if isinstance(result, bool):
        passed = result != inverse
        return {"pass": passed, "score": float(passed), "reason": PASSED if passed else f"{label} returned "
                f"{js_string(result)}"}
    if isinstance(result, dict):
        result = dict(result)
        for snake, camel in (("pass_", "pass"), ("named_scores", "namedScores")):
            if snake in result and camel not in result:
                result[camel] = result[snake]
        score = result.get("score")
        if not (isinstance(result.get("pass"), bool) and isinstance(score, (int, float)) and not isinstance(score, bool)
                and isinstance(result.get("reason"), str)):
            raise ValueError(wrong)
        raw, reason = result["pass"], result["reason"]
        if threshold is not None and score < threshold:
            raw, reason = False, f"Python score {js_string(score)} is less than threshold {js_string(threshold)}" + \
                (f": {reason}" if reason else "")
        passed = raw != inverse
        return {"pass": passed, "score": float(score),
                "reason": reason if passed == raw else PASSED if passed else f"{label} returned {js_string(raw)}"}
    if result is None or isinstance(result, (list, tuple)):
        raise ValueError(wrong)
    score = float(result) if isinstance(result, (int, float)) else _js_float(str(result))
    if math.isnan(score):
        raise ValueError(wrong)
    raw = score > 0 if threshold is None else score >= threshold
    passed = raw != inverse
    return {"pass": passed, "score": score, "reason": PASSED if passed else f"{label} returned {js_string(raw)}"}


def run_python(function: Callable, output: str, context: dict, threshold, inverse: bool) -> dict:
    """Call a python assertion's function; an exception (or a result of the wrong kind) fails the assertion,
    whatever ``not-`` says, with promptfoo's reason."""
    try:
        return script_result(function(output, context), threshold, inverse)
    except Exception as exc:  # noqa: BLE001 - the user's code: its failure is the assertion's
        first = (str(exc).splitlines() or [""])[0][:300]
        return {"pass": False, "score": 0.0, "reason": f"Python code execution failed: {type(exc).__name__}: {first}"}


DEFAULT_RUBRIC_PROMPT = [
    {"role": "system", "content": (
        "You are grading output according to a user-specified rubric. If the statement in the rubric is true, then "
        "the output passes the test. You respond with a JSON object with this structure: {reason: string, pass: "
        "boolean, score: number}\n\nExamples:\n\n<Output>Hello world</Output>\n<Rubric>Content contains a greeting"
        "</Rubric>\n{\"reason\": \"the content contains the word 'Hello'\", \"pass\": true, \"score\": 1.0}\n\n"
        "<Output>Avast ye swabs, repel the invaders!</Output>\n<Rubric>Does not speak like a pirate</Rubric>\n"
        "{\"reason\": \"'avast ye' is a common pirate term\", \"pass\": false, \"score\": 0.0}")},
    {"role": "user", "content": "<Output>\n{{ output }}\n</Output>\n<Rubric>\n{{ rubric }}\n</Rubric>"}]


def rubric_context(output: str, rubric, vars_: dict) -> dict:
    """The grading prompt's variables, as promptfoo fills them: objects as JSON text, the output parsed if JSON."""
    try:
        parsed = json_parse(output)
    except ValueError:
        parsed = output
    context = {**vars_, "output": parsed, "rubric": rubric}
    return {k: js_json(v) if isinstance(v, dict) else [js_json(i) if isinstance(i, (dict, list)) else i for i in v]
            if isinstance(v, list) else v for k, v in context.items()}


def _number(value) -> float:
    """JavaScript's Number(value) for what a JSON verdict may hold."""
    if value is None or value is False:
        return 0.0
    if value is True:
        return 1.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else 0.0
        except ValueError:
            return math.nan
    return math.nan


def rubric_result(text: str | None, threshold, inverse: bool) -> dict:
    """An llm-rubric verdict from the grader's answer (its first JSON object: pass, score, reason), as promptfoo's
    runJsonGradingPrompt and handleLlmRubric read it. A grader that gave no verdict fails, whatever not- says."""
    if not text:
        return {"pass": False, "score": 0.0, "reason": "No output", "grader_failed": True}
    found = extract_json_objects(text)
    if not found or not isinstance(found[0], dict):
        return {"pass": False, "score": 0.0, "reason": "Could not extract JSON from llm-rubric response",
                "grader_failed": True}
    verdict = found[0]
    passed = True if verdict.get("pass") is None else verdict["pass"]
    if not isinstance(passed, bool):
        passed = re.fullmatch(r"true|yes|pass|y", js_string(passed), re.IGNORECASE) is not None
    score = verdict.get("score", ...)
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        score = math.nan if score is ... else _number(score)
        score = score if math.isfinite(score) else float(passed)
    if threshold is not None:
        passed = passed and score >= threshold
    reason = verdict.get("reason") or ("Grading passed" if passed else f"Score {js_string(score)} below threshold "
                                                                        f"{js_string(threshold)}")
    if inverse:
        score = min(1.0, max(0.0, 1 - score)) if math.isfinite(score) else 1.0
    return {"pass": passed != inverse, "score": float(score), "reason": js_string(reason)}


def weighed(result: dict, weight: float) -> dict:
    """runAssertion's last step: an assertion of weight 0 passes."""
    return {**result, "pass": True} if weight == 0 else result


def test_result(results: list[tuple[dict, float, str | None]], threshold=None) -> dict:
    """The test's pass, score (the weighted mean) and reason, and the named metrics' weighted means, from
    (result, weight, metric) per assertion: promptfoo's AssertionsResult."""
    if not results:
        return {"pass": True, "score": 1.0, "reason": "No assertions", "named": {}}
    total_weight = sum(weight for _, weight, _ in results)
    score = sum(r["score"] * weight for r, weight, _ in results) / total_weight if total_weight > 0 else 0.0
    failed = [r["reason"] for r, _, _ in results if not r["pass"]]
    passed, reason = not failed, failed[-1] if failed else "All assertions passed"
    if threshold is not None:
        passed = score >= threshold
        reason = f"Aggregate score {score:.2f} {'≥' if passed else '<'} {js_string(threshold)} threshold"
    named: dict[str, list[float]] = {}
    for r, weight, metric in results:
        if metric:
            sums = named.setdefault(metric, [0.0, 0.0])
            sums[0], sums[1] = sums[0] + r["score"] * weight, sums[1] + weight
    return {"pass": passed, "score": score, "reason": reason,
            "named": {m: (s / w if w > 0 else 0.0) for m, (s, w) in named.items()}}
