"""The evaluation task behind %%aigc_eval: a prompt template × variants × a dataset, scored.

Every (row, variant) cell is one request through the text runner (bounded per model, so llama.cpp's
parallel slots and servers' concurrency are used). Answers are stored under a key of (model, engine,
prompt, settings, seed); a re-run reuses them and computes only what changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.errors import AigcError
from ..core.template import checked_text
from ..core.types import Request, Response
from ..options import placeholder_pattern
from .gpt import sampling_grid
from .metrics import Metric, build, judge_prompt, judge_verdict, JUDGE_SCHEMA
from .runner import Variant

BATCH = 64  # completions per runner pass (each waits in a thread of its own)
Z95 = statistics.NormalDist().inv_cdf(0.975)


def load_rows(source, namespace: dict) -> tuple[list[dict], str]:
    """Rows as dicts from a list of dicts, a DataFrame, a datasets.Dataset, or a .csv/.jsonl/.json path."""
    label = str(source)
    if isinstance(source, str) and source in namespace:
        label, source = source, namespace[source]
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise AigcError(f"--data '{source}' is neither a variable nor a file.",
                            "Give the name of a list of dicts, a DataFrame or a Dataset, or a .csv/.jsonl path.")
        source = _read_file(path)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas DataFrame
        rows = source.to_dict("records")
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):  # datasets.Dataset
        rows = source.to_list()
    elif isinstance(source, (list, tuple)) and all(isinstance(r, dict) for r in source):
        rows = [dict(r) for r in source]
    else:
        raise AigcError(f"--data {label} is a {type(source).__name__}, not a table.",
                        "Give a list of dicts, a pandas DataFrame, a datasets.Dataset, or a .csv/.jsonl path.")
    if not rows:
        raise AigcError(f"--data {label} has no rows.", "Give at least one example.")
    return rows, label


def _read_file(path: Path) -> list[dict]:
    import csv

    try:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise AigcError(f"Could not read {path}: {exc}.", "Check the file's format.") from None
    raise AigcError(f"--data {path}: unknown file type '{path.suffix}'.", "Use a .csv, .jsonl or .json file.")


def columns_of(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def fill(template: str, row: dict, namespace: dict) -> str:
    """``{column}`` from the row (then from the notebook); ``{{x}}`` gives ``{x}``; other braces stay."""

    def replace_one(match) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        name, path = match.group(2), match.group(3)
        if name in row and not path:
            return str(row[name])
        if name in namespace:
            from ..core.template import interpolate

            return interpolate(match.group(0), namespace)
        return match.group(0)

    return checked_text(placeholder_pattern().sub(replace_one, template))


def check_template(template: str, columns: list[str], namespace: dict) -> None:
    for match in placeholder_pattern().finditer(template):
        name = match.group(2)
        if name is not None and name not in columns and name not in namespace:
            raise AigcError(f"The template uses {{{name}}}, which is not a column of the data.",
                            f"Columns: {', '.join(columns)}. Write {{{{{name}}}}} for a literal brace.")


def cell_key(variant: Variant, prompt: str) -> str:
    """The stored answer's key: model, engine, server, prompt and every setting that changes the answer."""
    request = variant.request
    data = {"model": variant.ref.source, "engine": variant.ref.engine, "base_url": variant.ref.base_url,
            "prompt": prompt, "system": request.messages[:-1], "max_tokens": request.max_tokens,
            "temperature": request.temperature, "top_p": request.top_p, "seed": request.seed,
            "stop": request.stop, "schema": request.schema}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Cell:
    row: int
    variant: int
    prompt: str
    key: str
    response: Response | None = None
    reused: bool = False
    scores: dict = field(default_factory=dict)
    reason: str = ""


@dataclass
class Evaluation:
    rows: list[dict]
    titles: list[str]
    metrics: list[str]
    cells: list[Cell]
    summary: dict = field(default_factory=dict)
    reused: int = 0
    stopped: bool = False


def summarise(evaluation: Evaluation, metrics: list[Metric]) -> dict:
    """Per metric and variant: mean, 95% interval (normal approximation), count; and the best variant."""
    summary = {}
    for metric in metrics:
        per_variant = []
        for index in range(len(evaluation.titles)):
            values = [c.scores[metric.name] for c in evaluation.cells
                      if c.variant == index and c.scores.get(metric.name) is not None]
            mean = statistics.fmean(values) if values else None
            spread = Z95 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
            per_variant.append({"mean": mean, "ci95": spread if values else None, "n": len(values)})
        means = [(v["mean"], i) for i, v in enumerate(per_variant) if v["mean"] is not None]
        best = None
        if metric.higher is not None and len(means) > 1 and len({m for m, _ in means}) > 1:
            best = (max if metric.higher else min)(means)[1]
        summary[metric.name] = {"variants": per_variant, "best": best, "higher_is_better": metric.higher}
    return summary


class EvalTask:
    """Plans the cells, reuses stored answers, runs the rest, scores and summarises."""

    def __init__(self, session):
        self.session = session

    def plan(self, args, template: str, namespace: dict) -> tuple[list[dict], list[Variant], list[Cell]]:
        rows, _ = load_rows(args.data, namespace)
        columns = columns_of(rows)
        if args.reference is not None and args.reference not in columns:
            raise AigcError(f"--reference '{args.reference}' is not a column of the data.",
                            f"Columns: {', '.join(columns)}.")
        check_template(template, columns, namespace)
        variants = sampling_grid(self.session, args, namespace)
        system = args.system if args.system is not None else self.session.config.system
        cells = []
        for r, row in enumerate(rows):
            prompt = fill(template, row, namespace)
            for v, variant in enumerate(variants):
                messages = ([{"role": "system", "content": system}] if system else []) + \
                    [{"role": "user", "content": prompt}]
                cells.append(Cell(r, v, prompt, cell_key(replace(variant, request=replace(
                    variant.request, messages=messages)), prompt)))
        return rows, variants, cells

    def run(self, args, template: str, namespace: dict, cancel: threading.Event, view=None) -> Evaluation:
        rows, variants, cells = self.plan(args, template.strip(), namespace)
        default = "exact,contains,rouge" if args.reference else "length,latency,tokens"
        names = [m.strip() for m in (args.metrics or default).split(",") if m.strip()]
        if args.judge and "judge" not in names:
            names.append("judge")
        metrics = build(names, namespace, variants[0].request.schema, args.reference)
        if "judge" in names and not args.judge:
            raise AigcError("The judge metric needs a judge model.", "Name it with --judge MODEL.")
        judge = self.judge_model(args.judge, args.key_env) if args.judge else None
        titles = [v.title or v.ref.name for v in variants]
        if len(set(titles)) < len(titles):
            titles = [f"{chr(65 + i)}: {t}" for i, t in enumerate(titles)]
        evaluation = Evaluation(rows, titles, [m.name for m in metrics], cells)
        def done(cell: Cell) -> None:
            self._score(evaluation, cell, metrics, args.reference)
            if view is not None:
                view.cell_done(evaluation, cell)

        if not args.fresh:
            for cell in cells:
                stored = self.session.history.answer(cell.key)
                if stored is not None:
                    cell.response, cell.reused = response_from(stored), True
                    self._score(evaluation, cell, metrics, args.reference)
        evaluation.reused = sum(c.reused for c in cells)
        if view is not None:
            view.begin(evaluation)
        self.session.gpt.prepare(variants, args.key_env)
        todo = [c for c in cells if c.response is None]
        system = args.system if args.system is not None else self.session.config.system
        for start in range(0, len(todo), BATCH):
            if cancel.is_set():
                break
            self._answer(todo[start:start + BATCH], variants, system, cancel, args.key_env, done)
        evaluation.stopped = cancel.is_set()
        if judge is not None and not cancel.is_set():
            self._judge(evaluation, judge, args, cancel)
        evaluation.summary = summarise(evaluation, metrics)
        self._record(evaluation, args, template, variants)
        if view is not None:
            view.end(evaluation)
        return evaluation

    def judge_model(self, name: str, key_env: str | None):
        """The judge's ModelRef, loaded now: a judge that cannot answer is refused before any work."""
        from ..engines.base import GENERATE

        try:
            ref = self.session.resolve(name)
            engine, ref = self.session.registry.serving(ref, GENERATE)
            engine.prepare(ref, key_env)
        except AigcError as error:
            raise AigcError(f"The judge '{name}' is not available: {error.message}", error.fix) from None
        return ref

    def _answer(self, batch: list[Cell], variants, system, cancel, key_env, done) -> None:
        planned = []
        for cell in batch:
            messages = ([{"role": "system", "content": system}] if system else []) + \
                [{"role": "user", "content": cell.prompt}]
            variant = variants[cell.variant]
            planned.append(replace(variant, request=replace(variant.request, messages=messages)))
        def finished(index: int, response: Response) -> None:
            cell = batch[index]
            if response.finish_reason == "stopped" and not response.text:
                return  # never started: stays to do
            cell.response = response
            if response.finish_reason in ("stop", "length") and not response.error:
                self.session.history.store_answer(cell.key, response.metadata())
            done(cell)

        self.session.begin()
        try:
            self.session.runner.run(planned, BatchView(finished), cancel, key_env)
        finally:
            self.session.end()

    def _judge(self, evaluation: Evaluation, judge, args, cancel) -> None:
        """One judge request per answered cell (its verdict is scored, with its reason kept)."""
        from ..engines.base import SCHEMA

        engine = self.session.registry.engine(judge)
        schema = JUDGE_SCHEMA if SCHEMA in engine.capabilities else None
        cells = [c for c in evaluation.cells if c.response is not None and c.response.text]
        planned = []
        for cell in cells:
            reference = evaluation.rows[cell.row].get(args.reference) if args.reference else None
            prompt = judge_prompt(args.rubric, cell.prompt, cell.response.text,
                                  None if reference is None else str(reference))
            planned.append(Variant(judge, Request(messages=[{"role": "user", "content": prompt}], model=judge.name,
                                                  max_tokens=200, temperature=0.0, schema=schema)))
        responses = self.session.runner.run(planned, BatchView(), cancel, args.key_env)
        failed = [r for r in responses if r.finish_reason == "error"]
        if responses and len(failed) == len(responses):
            raise AigcError(f"The judge {judge.name} could not answer: {failed[0].error}", "")
        for cell, response in zip(cells, responses):
            score, reason = judge_verdict(response.text)
            cell.scores["judge"], cell.reason = score, reason or (response.error or "")

    @staticmethod
    def _score(evaluation: Evaluation, cell: Cell, metrics: list[Metric], reference_column: str | None) -> None:
        """Every metric but the judge's, for one answered cell (an answer that failed scores nothing)."""
        if cell.response is None or cell.response.finish_reason == "error":
            return
        row = evaluation.rows[cell.row]
        reference = row.get(reference_column) if reference_column else None
        for metric in metrics:
            if metric.name != "judge":
                cell.scores[metric.name] = metric.score(cell.response.text, None if reference is None
                                                        else str(reference), row, cell.response)

    def _record(self, evaluation: Evaluation, args, template: str, variants: list[Variant]) -> None:
        data_hash = hashlib.sha256(json.dumps(evaluation.rows, sort_keys=True, default=str).encode()).hexdigest()
        self.session.history.append({
            "time": time.time(), "kind": "eval", "prompt": template, "model": ", ".join(evaluation.titles),
            "engine": ", ".join(sorted({v.ref.engine for v in variants})), "data_hash": data_hash,
            "rows": len(evaluation.rows), "variants": evaluation.titles, "summary": evaluation.summary,
            "reused": evaluation.reused, "finish_reason": "stopped" if evaluation.stopped else "stop"})

    @staticmethod
    def dataframe(evaluation: Evaluation):
        """One row per example × variant: the data's columns, variant, output and one column per metric."""
        import pandas as pd

        records = []
        for cell in evaluation.cells:
            record = dict(evaluation.rows[cell.row])
            record["variant"] = evaluation.titles[cell.variant]
            record["output"] = cell.response.text if cell.response is not None else None
            record.update({name: cell.scores.get(name) for name in evaluation.metrics})
            if "judge" in evaluation.metrics:
                record["judge_reason"] = cell.reason
            records.append(record)
        frame = pd.DataFrame.from_records(records)
        frame.attrs["summary"] = evaluation.summary
        frame.attrs["reused"] = evaluation.reused
        return frame


def response_from(stored: dict) -> Response:
    fields = {k: v for k, v in stored.items() if k in Response.__dataclass_fields__ and k != "tokens"}
    return Response(**fields)


class BatchView:
    """The runner's view for a batch of evaluation cells: ``finished(index, response)`` as each one ends."""

    def __init__(self, finished=None):
        self.finished = finished
        self.metadata: dict = {}

    def start(self, titles) -> None:
        pass

    def append(self, index, text, tokens) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish_column(self, index: int, response: Response) -> None:
        if self.finished is not None:
            self.finished(index, response)

    def finish(self) -> None:
        pass
