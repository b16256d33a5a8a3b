"""Evaluation metrics: scores from well-kept libraries (sacrebleu, rouge-score), plus user functions.

A metric is ``score(output, reference, row, response) -> float | None``. Names: ``exact``, ``contains``,
``regex:PATTERN``, ``bleu``, ``chrf``, ``rouge``, ``json``, ``length``, ``latency``, ``tokens``, ``cost``,
``judge``, or the name of a notebook function ``f(output, row) -> float | bool``.

``exact`` and ``contains`` compare after normalisation: lower case, Unicode NFKC, whitespace collapsed,
punctuation stripped at both ends, and a final full stop ignored.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ..core.errors import AigcError
from ..core.types import Response
from ..record.pricing import cost

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
    """A named score; ``higher`` says which way is better (None: neither, e.g. length)."""

    name: str
    score: Callable[[str, str | None, dict, Response], float | None]
    higher: bool | None = True
    needs_reference: bool = False


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
    def score(output: str, reference, row, response) -> float | None:
        try:
            value = function(output, row)
        except Exception as exc:
            raise AigcError(f"The metric {name}() raised {type(exc).__name__}: {exc}.",
                            f"Fix {name}(output, row); it gets the answer text and the row as a dict.") from None
        if value is None:
            return None
        if isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise AigcError(f"The metric {name}() returned {value!r}, not a number or a bool.",
                            f"Make {name}(output, row) return a number, a bool or None.") from None

    return Metric(name, score)


def build(names: list[str], namespace: dict, schema: dict | None, reference: str | None) -> list[Metric]:
    """The metrics for ``--metrics``, checked: unknown names and a missing ``--reference`` are refused."""
    metrics = []
    for name in names:
        if name.startswith("regex:"):
            try:
                pattern = re.compile(name[6:])
            except re.error as exc:
                raise AigcError(f"--metrics {name}: the pattern is not a regular expression ({exc}).",
                                "Quote the option, e.g. --metrics 'regex:^\\d+$'.") from None
            metrics.append(Metric(name, lambda o, r, row, resp, p=pattern: float(p.search(o) is not None)))
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
    """(score, reason) from a judge's answer: JSON when the engine follows the schema, else the first digit."""
    try:
        data = json.loads(text)
        return float(data["score"]), str(data.get("reason", ""))
    except (ValueError, KeyError, TypeError):
        match = re.search(r"\b([1-5])\b", text)
        return (float(match.group(1)) if match else None), text.strip()[:300]
