"""EvalGrid: %%aigc_eval's grid (rows = examples, a column per variant, scores, summary, detail, progress),
and people's review of the answers (pass/fail, 1–5, a note; blind mode)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path
from typing import Callable

import anywidget
from traitlets import Bool, Dict, List, Unicode

from .static_copy import css

STATIC = Path(__file__).parent / "static"
PUSH_INTERVAL = 0.25
SHOWN_FIELDS = 3  # data columns shown in the grid (all of them are in the detail)


def cell_state(cell) -> dict:
    """A cell for the browser: status waiting, done or error; ``partial`` marks a done answer that was stopped
    or cut off (out of the means by default)."""
    response = cell.response
    if response is None:
        return {"status": "waiting", "output": "", "scores": {}, "prompt": cell.prompt}
    state = {"status": "error" if response.finish_reason == "error" else "done", "partial": cell.partial,
             "output": response.text,
             "scores": dict(cell.scores), "prompt": cell.prompt, "reused": cell.reused,
             "error": response.error or "", "reason": cell.reason,
             "finish": response.finish_reason, "elapsed": round(response.elapsed, 3)}
    if cell.choice is not None:  # --task choice: each choice's log-probability, the picks and the gold
        state["choice"] = cell.choice
    if cell.checks is not None:  # --promptfoo: each assertion's verdict
        state["checks"] = cell.checks
    if cell.rating is not None:
        state["rating"] = cell.rating
    return state


def blind_order(evaluation) -> list[list[int]]:
    """Each row's variants in a shuffled order for blind review: fixed for the same answers' keys, so a re-run
    shows the same order, and different from row to row."""
    width = len(evaluation.titles)
    orders = []
    for index in range(len(evaluation.rows)):
        keys = "".join(c.key for c in evaluation.cells[index * width:(index + 1) * width])
        order = list(range(width))
        random.Random(hashlib.sha256(keys.encode()).hexdigest()).shuffle(order)
        orders.append(order)
    return orders


class EvalGrid(anywidget.AnyWidget):
    """Every text travels as data and is drawn with textContent in the browser: nothing from a model runs."""

    _esm = "\n".join((STATIC / name).read_text()
                      for name in ("eval_review.js", "eval_scores.js", "eval_cells.js", "eval_grid.js"))
    _css = css("eval_grid.css")

    titles = List(Unicode()).tag(sync=True)
    metrics = List(Unicode()).tag(sync=True)
    fields = List(Unicode()).tag(sync=True)
    rows = List(Dict()).tag(sync=True)
    summary = Dict().tag(sync=True)
    progress = Dict().tag(sync=True)
    running = Bool(False).tag(sync=True)
    ranges = Dict().tag(sync=True)  # metric -> [low, high] (or None): badge colours and pass filters
    agreement = Dict().tag(sync=True)  # automatic metric -> Cohen's kappa and Spearman's rho with people
    blind = Bool(False).tag(sync=True)
    order = List(List()).tag(sync=True)  # blind mode: each row's variants in the order shown

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_stop: Callable[[], None] | None = None
        # on_rate(evaluation, row, variant, rating): a person rated an answer (raises AigcError to refuse it)
        self.on_rate: Callable | None = None
        self._lock = threading.Lock()
        self._pushed = 0.0
        self._started = time.monotonic()
        self.on_msg(self._handle_message)

    def _handle_message(self, widget, content, buffers) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "stop" and self.on_stop:
            self.on_stop()
        elif content.get("type") == "rate" and self.on_rate and getattr(self, "_evaluation", None) is not None:
            self._rate(content.get("row"), content.get("variant"), content.get("rating"))

    def _rate(self, row, variant, rating) -> None:
        from ...core.errors import AigcError
        from ..outside import plain

        try:
            self.on_rate(self._evaluation, row, variant, rating)
        except AigcError as error:
            self.send({"type": "rating-refused", "row": row, "variant": variant,
                       "text": plain(f"{error.message} {error.fix}".strip())})
        self.metrics = list(self._evaluation.metrics)
        self.agreement = self._evaluation.agreement
        if not self.running:
            self.summary = self._evaluation.summary
        self._push(force=True)

    def begin(self, evaluation) -> None:
        from ...tasks.eval_data import columns_of

        self._started = time.monotonic()
        self.titles, self.metrics = list(evaluation.titles), list(evaluation.metrics)
        self.fields = columns_of(evaluation.rows)
        self._evaluation = evaluation
        if self.blind:
            self.order = blind_order(evaluation)
        self.running = True
        self._push(force=True)

    def cell_done(self, evaluation, cell) -> None:
        self._push()

    def end(self, evaluation) -> None:
        self.metrics = list(evaluation.metrics)
        self.summary = evaluation.summary
        self.agreement = evaluation.agreement
        self.running = False
        self._push(force=True)

    def _push(self, force: bool = False) -> None:
        from ...tasks.review import ranges

        now = time.monotonic()
        with self._lock:
            if not force and now - self._pushed < PUSH_INTERVAL:
                return
            self._pushed = now
            evaluation = self._evaluation
            width = len(evaluation.titles)
            rows = [{"fields": {k: "" if v is None else str(v) for k, v in row.items()},
                     "cells": [cell_state(c) for c in evaluation.cells[i * width:(i + 1) * width]]}
                    for i, row in enumerate(evaluation.rows)]
            done = sum(c.response is not None for c in evaluation.cells)
            fresh = done - evaluation.reused
            left = len(evaluation.cells) - done
            elapsed = now - self._started
            eta = elapsed / fresh * left if fresh and left else None
            self.progress = {"done": done, "total": len(evaluation.cells), "reused": evaluation.reused,
                             "eta_s": eta, "stopped": evaluation.stopped, "failed": len(evaluation.failed),
                             "include_partial": evaluation.include_partial}
            self.ranges = ranges(evaluation)
            self.rows = rows

    def _repr_mimebundle_(self, **kwargs):
        """No text/plain stand-in: where the widget cannot be drawn, the HTML copy below shows the results."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = ""
        return bundle
