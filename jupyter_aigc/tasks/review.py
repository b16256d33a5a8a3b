"""Human review of an evaluation: a person's pass/fail, 1–5 score and note per answer, and how well each
automatic metric (or the judge) agrees with people.

A rating is stored in the history store under the cell's answer key together with a digest of the answer it
rated: a re-run (or a kernel restart) finds it again for the same answer, and an answer that changed is a new
answer to rate. Ratings become two metrics, ``human`` (the 1–5 score) and ``human_pass`` (1 for pass, 0 for
fail), summarised like any other. Agreement is pooled over every rated answer counted in the means:
Cohen's kappa (scikit-learn) between people's pass/fail and the metric's pass (its score in the upper half of
its range), and Spearman's rho (scipy) between people's scores and the metric's values.
"""

from __future__ import annotations

import hashlib
import math

from ..core.errors import AigcError
from .metrics import Metric

HUMAN = [Metric("human", lambda *a: None, higher=True, label="people's 1–5 score"),
         Metric("human_pass", lambda *a: None, higher=True, label="people's pass (1) or fail (0)")]
HUMAN_NAMES = {m.name for m in HUMAN}
RATING_COLUMNS = ("human", "human_pass", "human_note")  # the DataFrame's columns for ratings
NOTE_LIMIT = 2000
# Score ranges of the built-in metrics: a score in the upper half of its range is a pass (for kappa and the
# grid's pass filters). A notebook function's metric whose scores all lie in 0..1 is taken as 0..1.
RANGES = {"acc": (0, 1), "acc_norm": (0, 1), "exact": (0, 1), "contains": (0, 1), "rouge": (0, 1),
          "json": (0, 1), "judge": (1, 5), "bleu": (0, 100), "chrf": (0, 100), "pass": (0, 1), "score": (0, 1),
          "human": (1, 5), "human_pass": (0, 1)}
UNRANGED = {"length", "latency", "tokens", "cost"}


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def rateable(cell) -> bool:
    """An answer a person can rate: one that came back (finished, cut off or stopped), not a failure."""
    return cell.response is not None and cell.response.finish_reason != "error"


def checked(rating) -> dict:
    """A rating from the browser or Python, checked: {"pass": True/False/None, "score": 1..5/None, "note": str}."""
    if not isinstance(rating, dict):
        raise AigcError("A rating is a dict with pass, score and note.", 'For example {"pass": True, "score": 4}.')
    unknown = sorted(set(rating) - {"pass", "score", "note"})
    if unknown:
        raise AigcError(f"A rating has no {', '.join(unknown)}.", "Give pass (True/False), score (1–5) and note.")
    verdict, score, note = rating.get("pass"), rating.get("score"), rating.get("note") or ""
    if verdict is not None and not isinstance(verdict, bool):
        raise AigcError(f"pass is {verdict!r}.", "Give True, False or None.")
    if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
        raise AigcError(f"score is {score!r}.", "Give a whole number from 1 to 5, or None.")
    if not isinstance(note, str):
        raise AigcError(f"note is a {type(note).__name__}.", "Give the note as text.")
    return {"pass": verdict, "score": None if score is None else int(score), "note": note[:NOTE_LIMIT]}


def apply(cell, rating: dict | None) -> None:
    """Set the cell's rating and its human metrics (an empty rating clears them)."""
    empty = rating is None or (rating["pass"] is None and rating["score"] is None and not rating["note"])
    cell.rating = None if empty else rating
    for name, value in (("human", None if empty else rating["score"]),
                        ("human_pass", None if empty or rating["pass"] is None else float(rating["pass"]))):
        if value is None:
            cell.scores.pop(name, None)
        else:
            cell.scores[name] = float(value)


def load(history, cell) -> None:
    """The stored rating of this cell's answer, if a person rated this very answer before."""
    if not rateable(cell):
        return
    stored = history.rating(cell.key, digest(cell.response.text))
    if stored is None:
        return
    try:
        apply(cell, checked(stored))
    except AigcError:
        return  # a row in another shape (another version's, a damaged one): as if unrated


def store(history, cell, rating) -> None:
    """Rate a cell's answer now (during a run too) and keep it in the history store."""
    if not rateable(cell):
        raise AigcError(f"Example {cell.row + 1} has no answer to rate yet.",
                        "Rate it once its answer is there (a failed answer cannot be rated).")
    rating = checked(rating)
    apply(cell, rating)
    history.store_rating(cell.key, digest(cell.response.text), rating)


def rated(evaluation) -> bool:
    return any(c.rating is not None for c in evaluation.cells)


def score_range(name: str, values: list[float]) -> tuple[float, float] | None:
    if name.startswith("regex:"):
        return (0, 1)
    if name in RANGES:
        return RANGES[name]
    if name in UNRANGED or not values:
        return None
    return (0, 1) if all(0 <= v <= 1 for v in values) else None


def ranges(evaluation) -> dict:
    """Each metric's score range, or None where it has none (the grid colours and filters by it)."""
    return {name: score_range(name, [c.scores[name] for c in evaluation.cells
                                     if isinstance(c.scores.get(name), (int, float))])
            for name in evaluation.metrics}


def _kappa(people: list[int], metric: list[int]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if len(people) < 2 or (len(set(people)) == 1 and set(people) == set(metric)):
        return None  # one label on both sides: agreement by chance is certain, kappa undefined
    return float(cohen_kappa_score(people, metric))


def _rho(people: list[float], metric: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(people) < 3 or len(set(people)) == 1 or len(set(metric)) == 1:
        return None  # too few pairs, or a constant side: no rank correlation
    value = float(spearmanr(people, metric).statistic)
    return None if math.isnan(value) else value


def agreement(evaluation) -> dict:
    """Per automatic metric: {"kappa": κ, "kappa_n": pairs, "rho": ρ, "rho_n": pairs} over the rated answers."""
    if not rated(evaluation):
        return {}
    counted = [c for c in evaluation.cells if c.rating is not None and rateable(c)
               and (evaluation.include_partial or not c.partial)]
    span = ranges(evaluation)
    result = {}
    for name in evaluation.metrics:
        if name in HUMAN_NAMES:
            continue
        low_high = span.get(name)
        verdicts = [(int(c.rating["pass"]), int((c.scores[name] - low_high[0]) / (low_high[1] - low_high[0]) >= 0.5))
                    for c in counted if low_high and c.rating["pass"] is not None
                    and isinstance(c.scores.get(name), (int, float))]
        scores = [(float(c.rating["score"]), float(c.scores[name])) for c in counted
                  if c.rating["score"] is not None and isinstance(c.scores.get(name), (int, float))]
        result[name] = {"kappa": _kappa(*map(list, zip(*verdicts))) if verdicts else None,
                        "kappa_n": len(verdicts),
                        "rho": _rho(*map(list, zip(*scores))) if scores else None, "rho_n": len(scores)}
    return result
