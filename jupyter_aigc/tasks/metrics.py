"""Evaluation metrics: scores from well-kept libraries (sacrebleu, rouge-score), plus user functions.

A metric is ``score(output, reference, row, response) -> float | None``. Names: ``exact``, ``contains``,
``regex:PATTERN``, ``bleu``, ``chrf``, ``rouge``, ``json``, ``length``, ``latency``, ``tokens``, ``cost``,
``judge``, or the name of a notebook function ``f(output, row) -> float | bool``. A score is a finite number;
None or NaN is no score (the row is left out of that metric's mean); inf or a number too large for a float is
refused. ``Scorer`` runs them row by row, checking the cell's cancel event between rows.

``exact`` and ``contains`` compare after normalisation: lower case, Unicode NFKC, whitespace collapsed,
punctuation stripped at both ends, and a final full stop ignored.
"""

from __future__ import annotations

import json
import math
import re
import string
import threading
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ..core.errors import AigcError
from ..core.types import Response
from ..record.pricing import cost

REGEX_TIMEOUT = 0.5  # seconds per match: a pattern that backtracks without end is stopped (regex's timeout=)
AFTER_CANCEL = 0.5  # after Stop or an interrupt, rows finishing within this long are still scored
RETURN_FIX = "Return a finite number, a bool, or None (or NaN) for no score."
NEEDS_REFERENCE = {"exact", "contains", "bleu", "chrf", "rouge"}
LOWER_IS_BETTER = {"latency", "cost", "tokens", "length"}
BUILT_IN = ["exact", "contains", "regex:PATTERN", "bleu", "chrf", "rouge", "json", "length", "latency", "tokens",
            "cost", "judge"]


def normalise(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return text.strip(string.punctuation + " ")


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def bleu(output: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_bleu(output, [reference]).score


def chrf(output: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_chrf(output, [reference]).score


def rouge_l(output: str, reference: str) -> float:
    return _rouge().score(reference, output)["rougeL"].fmeasure


@dataclass
class Metric:
    """A named score; ``higher`` says which way is better (None: neither, e.g. length); ``label`` names it
    in messages (``f()`` for a notebook function)."""

    name: str
    score: Callable[[str, str | None, dict, Response], float | None]
    higher: bool | None = True
    needs_reference: bool = False
    label: str = ""


class MetricFailure(Exception):
    """What went wrong in one metric call, and the fix; the ``Scorer`` adds which metric and which row."""

    def __init__(self, what: str, fix: str):
        super().__init__(what)
        self.what, self.fix = what, fix


def number(value) -> float | None:
    """A metric's value as a score: None and NaN are no score; inf, huge numbers and non-numbers are refused."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise MetricFailure(f"returned the text {value[:40]!r}, not a number", RETURN_FIX)
    try:
        score = float(value)
    except OverflowError:
        digits = int(value.bit_length() * math.log10(2)) + 1 if isinstance(value, int) else "many"
        raise MetricFailure(f"returned an integer of about {digits} digits, too large for a float",
                            RETURN_FIX) from None
    except (TypeError, ValueError):
        raise MetricFailure(f"returned {repr(value)[:60]}, not a number or a bool", RETURN_FIX) from None
    if math.isnan(score):
        return None
    if math.isinf(score):
        raise MetricFailure(f"returned {score}", RETURN_FIX)
    return score


def regex_metric(name: str) -> Metric:
    """1.0 when the pattern is found in the answer; each match may take ``REGEX_TIMEOUT`` seconds at most."""
    import regex

    try:
        pattern = regex.compile(name[6:])
    except regex.error as exc:
        raise AigcError(f"--metrics {name}: the pattern is not a regular expression ({exc}).",
                        "Quote the option, e.g. --metrics 'regex:^\\d+$'.") from None

    def score(output: str, reference, row, response) -> float:
        try:
            return float(pattern.search(output, timeout=REGEX_TIMEOUT, concurrent=True) is not None)
        except TimeoutError:
            raise MetricFailure(f"took longer than {REGEX_TIMEOUT:g} s",
                                "Simplify the pattern: nested repeats such as (a+)+ can take forever.") from None

    return Metric(name, score)


def json_metric(schema: dict | None) -> Callable:
    def score(output: str, reference, row, response) -> float:
        try:
            value = json.loads(output)
        except ValueError:
            return 0.0
        if schema is None:
            return 1.0
        import jsonschema

        return float(jsonschema.validators.validator_for(schema)(schema).is_valid(value))

    return score


def user_metric(name: str, function: Callable) -> Metric:
    def score(output: str, reference, row, response):
        try:
            return function(output, row)
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            raise MetricFailure(f"raised {type(exc).__name__}: {first}",
                                f"Fix {name}(output, row); it gets the answer text and the row as a dict.") from None

    return Metric(name, score, label=f"{name}()")


def build(names: list[str], namespace: dict, schema: dict | None, reference: str | None) -> list[Metric]:
    """The metrics for ``--metrics``, checked: unknown names and a missing ``--reference`` are refused."""
    metrics = []
    for name in names:
        if name.startswith("regex:"):
            metrics.append(regex_metric(name))
        elif name in ("exact", "contains"):
            compare = (lambda o, r: normalise(o) == normalise(r)) if name == "exact" else \
                (lambda o, r: normalise(r) in normalise(o))
            metrics.append(Metric(name, lambda o, r, row, resp, c=compare: float(c(o, r)), needs_reference=True))
        elif name in ("bleu", "chrf", "rouge"):
            function = {"bleu": bleu, "chrf": chrf, "rouge": rouge_l}[name]
            metrics.append(Metric(name, lambda o, r, row, resp, f=function: f(o, r), needs_reference=True))
        elif name == "json":
            metrics.append(Metric(name, json_metric(schema)))
        elif name == "length":
            metrics.append(Metric(name, lambda o, r, row, resp: float(len(o.split())), higher=None))
        elif name == "latency":
            metrics.append(Metric(name, lambda o, r, row, resp: resp.elapsed, higher=False))
        elif name == "tokens":
            metrics.append(Metric(name, lambda o, r, row, resp: resp.usage.get("completion_tokens"), higher=None))
        elif name == "cost":
            metrics.append(Metric(name, lambda o, r, row, resp: cost(resp), higher=False))
        elif name == "judge":
            metrics.append(Metric(name, lambda o, r, row, resp: None))  # scored by the judge pass
        elif callable(namespace.get(name)):
            metrics.append(user_metric(name, namespace[name]))
        else:
            raise AigcError(f"Unknown metric '{name}'.",
                            f"Use {', '.join(BUILT_IN)}, or the name of a function f(output, row) in the notebook.")
    if reference is None:
        wanting = [m.name for m in metrics if m.needs_reference]
        if wanting:
            raise AigcError(f"The metrics {', '.join(wanting)} compare with a reference answer.",
                            "Name the data's column that holds it with --reference COLUMN.")
    return metrics


JUDGE_RUBRIC = ("Judge the ANSWER to the QUESTION{reference_hint}. Give a score from 1 (wrong or useless) to 5 "
                "(correct and complete) and a one-sentence reason.")
JUDGE_SCHEMA = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                                   "reason": {"type": "string"}},
                "required": ["score", "reason"]}


def judge_prompt(rubric: str | None, question: str, answer: str, reference: str | None) -> str:
    hint = ", using the REFERENCE answer" if reference is not None else ""
    text = (rubric or JUDGE_RUBRIC).replace("{reference_hint}", hint)
    parts = [text, f"QUESTION:\n{question}", f"ANSWER:\n{answer}"]
    if reference is not None:
        parts.append(f"REFERENCE:\n{reference}")
    parts.append('Reply in JSON: {"score": 1-5, "reason": "..."}')
    return "\n\n".join(parts)


def judge_verdict(text: str) -> tuple[float | None, str]:
    """(score, reason) from a judge's answer: a JSON object with a score from 1 to 5 (alone, in a code fence or
    in other text; or cut off after its "score" field). Anything else, prose or a score outside 1–5, is no
    score, with the judge's text as the reason."""
    data = _json_object(text)
    if data is None:
        cut = re.search(r'"score"\s*:\s*"?(\d+(?:\.\d+)?)"?\s*[,}\n]', text)
        score, reason = (float(cut.group(1)) if cut else None), text.strip()
    else:
        score, reason = data.get("score"), data.get("reason")
        if isinstance(score, str) and score.strip().isdigit():
            score = int(score)
        reason = "" if reason is None else str(reason)
    if isinstance(score, (int, float)) and not isinstance(score, bool) and 1 <= score <= 5:
        return float(score), reason
    return None, text.strip()


def _json_object(text: str) -> dict | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


class Scorer:
    """Scores answered cells one row at a time with every metric but the judge's. The first failure is kept
    as ``problem`` (naming the metric and the row) and scoring stops; after ``cancel`` rows are scored for
    ``AFTER_CANCEL`` seconds more, then no longer, so Stop and interrupts land between rows."""

    def __init__(self, metrics: list[Metric], rows: list[dict], reference_column: str | None,
                 cancel: threading.Event):
        self.metrics = [m for m in metrics if m.name != "judge"]
        self.rows, self.reference_column, self.cancel = rows, reference_column, cancel
        self.problem: AigcError | None = None
        self._until: float | None = None

    def score(self, cell) -> None:
        """Fill ``cell.scores``; an answer that failed scores nothing."""
        if self.problem is not None or cell.response is None or cell.response.finish_reason == "error":
            return
        if self.cancel.is_set():
            self._until = self._until or time.monotonic() + AFTER_CANCEL
            if time.monotonic() > self._until:
                return
        row = self.rows[cell.row]
        reference = row.get(self.reference_column) if self.reference_column else None
        for metric in self.metrics:
            try:
                cell.scores[metric.name] = number(metric.score(
                    cell.response.text, None if reference is None else str(reference), row, cell.response))
            except Exception as exc:  # a built-in metric on an answer it cannot take is one line too
                failure = exc if isinstance(exc, MetricFailure) else MetricFailure(
                    f"raised {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
                    "Leave this metric out for these answers, or compute it yourself from -o.")
                self.problem = AigcError(f"The metric {metric.label or metric.name} {failure.what} on data row "
                                         f"{cell.row} (counting from 0).", failure.fix)
                return
