"""The evaluation task behind %%aigc_eval: a prompt template × variants × a dataset, scored.

Every (row, variant) cell is one request through the text runner (bounded per model, so llama.cpp's
parallel slots and servers' concurrency are used). Answers are stored under a key of (model, adapter, weights,
engine, prompt, settings, seed); a re-run reuses them and computes only what changed. Answers that were stopped
or cut off ("partial") are kept and marked, and left out of the means unless --include-partial.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.errors import AigcError
from ..core.types import Request, Response
from ..views.outside import say
from .eval_data import check_template, columns_of, fill, load_rows
from .gpt import sampling_grid
from . import review
from .metrics import JUDGE_SCHEMA, Metric, Scorer, build, judge_prompt, judge_verdict
from .runner import Variant

BATCH = 64  # completions per runner pass (each waits in a thread of its own)
Z95 = statistics.NormalDist().inv_cdf(0.975)
PARTIAL = {"stopped", "incomplete"}  # answers that did not end: kept and marked, out of the means by default
STORED = {"stop", "length"}  # answers worth storing and reusing ("length" is the --max-tokens asked for)
WEIGHT_FILES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
CHOICE_COLUMNS = ("logprobs", "pick", "pick_norm", "gold")  # -o columns of --task choice


def cell_key(variant: Variant, prompt: str, weights: str | None = None) -> str:
    """The stored answer's key: model, adapter, weights, engine, server, prompt and every setting that changes
    the answer. ``weights`` is ``weights_fingerprint(variant.ref)``."""
    request = variant.request
    data = {"model": variant.ref.source, "engine": variant.ref.engine, "base_url": variant.ref.base_url,
            "adapter": variant.ref.adapter, "weights": weights,
            "prompt": prompt, "system": request.messages[:-1], "max_tokens": request.max_tokens,
            "temperature": request.temperature, "top_p": request.top_p, "seed": request.seed,
            "stop": request.stop, "schema": request.schema}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


_HASHES: dict[tuple, str] = {}


def weights_fingerprint(ref, saved: bool = True) -> str | None:
    """What tells these weights from others of the same name: an adapter's weight files hashed (they are
    small), a local model's weight files by size and time (re-training into the same folder changes both).
    Weights not ``saved`` (still training, or a failed save) get a new fingerprint each time: never reused."""
    unsaved = "unsaved:" + uuid.uuid4().hex
    if not saved:
        return unsaved
    if ref.adapter is not None:
        folder = Path(ref.adapter_path) if ref.adapter_path else None
        if folder is not None and (folder / ref.adapter / "adapter_config.json").is_file():
            folder = folder / ref.adapter  # peft saves a named adapter in a folder of its name
        files = [*sorted(folder.glob("adapter_model.*")), folder / "adapter_config.json"] if folder else []
        try:
            stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())
            if stamp and stamp not in _HASHES:
                data = b"".join(Path(f).read_bytes() for f, *_ in stamp)
                _HASHES[stamp] = "sha256:" + hashlib.sha256(data).hexdigest()
        except OSError:
            return unsaved
        return _HASHES[stamp] if stamp else unsaved
    if ref.base_url or ref.engine not in ("transformers", "llama.cpp"):
        return None
    path = Path(ref.source)
    try:
        files = sorted(f for f in path.iterdir() if f.suffix in WEIGHT_FILES) if path.is_dir() else [path]
        return ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.is_file()) or None
    except OSError:
        return None


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
    choice: dict | None = None  # --task choice: the choices, their log-probabilities, the picks and the gold
    checks: list[dict] | None = None  # --promptfoo: each assertion's type, pass, score and reason
    rating: dict | None = None  # human review: {"pass": bool | None, "score": 1..5 | None, "note": str}

    @property
    def partial(self) -> bool:
        """Stopped or cut off: there is some text, but the answer did not end."""
        return self.response is not None and self.response.finish_reason in PARTIAL


@dataclass
class Evaluation:
    rows: list[dict]
    titles: list[str]
    metrics: list[str]
    cells: list[Cell]
    summary: dict = field(default_factory=dict)
    reused: int = 0
    stopped: bool = False
    include_partial: bool = False
    task: str = "generate"
    directions: dict = field(default_factory=dict)  # metric name -> higher is better (True, False or None)
    agreement: dict = field(default_factory=dict)  # automatic metric -> agreement with people's ratings
    frames: list = field(default_factory=list)  # the DataFrames made of it (-o): ratings given later reach them

    @property
    def failed(self) -> list[Cell]:
        return [c for c in self.cells if c.response is not None and c.response.finish_reason == "error"]

    def first_error(self) -> str:
        failed = self.failed
        first = (failed[0].response.error or "no reason given").strip() if failed else ""
        return (first.splitlines() or [""])[0][:300]

    def failures(self) -> str:
        """'3 of 96 answers failed: <the first error>', or '' when none did."""
        answered = sum(c.response is not None for c in self.cells)
        return f"{len(self.failed)} of {answered} answers failed: {self.first_error()}" if self.failed else ""


def summarise(evaluation: Evaluation, metrics: list[Metric]) -> dict:
    """Per metric and variant: mean, 95% interval (normal approximation), count, partial answers left out;
    and the best variant. People's ratings, where there are any, join as the metrics human and human_pass, and
    ``evaluation.agreement`` is worked out anew."""
    if review.rated(evaluation):
        metrics = [m for m in metrics if m.name not in review.HUMAN_NAMES] + review.HUMAN
        evaluation.metrics = [m.name for m in metrics]
    evaluation.directions = {m.name: m.higher for m in metrics}
    evaluation.agreement = review.agreement(evaluation)
    summary = {}
    for metric in metrics:
        per_variant = []
        for index in range(len(evaluation.titles)):
            scored = [c for c in evaluation.cells if c.variant == index and c.scores.get(metric.name) is not None]
            counted = [c for c in scored if evaluation.include_partial or not c.partial]
            values = [c.scores[metric.name] for c in counted]
            mean = statistics.fmean(values) if values else None
            spread = Z95 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
            per_variant.append({"mean": mean, "ci95": spread if values else None, "n": len(values),
                                "partial": len(scored) - len(counted)})
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
        weights = [weights_fingerprint(v.ref, self._saved(v.ref)) for v in variants]
        cells = []
        for r, row in enumerate(rows):
            prompt = fill(template, row, namespace)
            for v, variant in enumerate(variants):
                messages = ([{"role": "system", "content": system}] if system else []) + \
                    [{"role": "user", "content": prompt}]
                cells.append(Cell(r, v, prompt, cell_key(replace(variant, request=replace(
                    variant.request, messages=messages)), prompt, weights[v])))
        return rows, variants, cells

    def _saved(self, ref) -> bool:
        """False for weights fine-tuned in this kernel that are not (yet) saved."""
        result = getattr(self.session.finetune, "results", {}).get(ref.name)
        return result is None or result.saved or result.ref != ref

    def run(self, args, template: str, namespace: dict, cancel: threading.Event, view=None) -> Evaluation:
        from .choice import check_args, run_choice

        check_args(args)
        if getattr(args, "promptfoo", None):
            from .promptfoo import run_promptfoo

            return run_promptfoo(self, args, template, namespace, cancel, view)
        if getattr(args, "task", None) == "choice":
            return run_choice(self, args, template, namespace, cancel, view)
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
        evaluation = Evaluation(rows, titles, [m.name for m in metrics], cells,
                                include_partial=bool(getattr(args, "include_partial", False)))
        scorer = Scorer(metrics, rows, args.reference, cancel)

        def done(cell: Cell) -> None:
            scorer.score(cell)
            if scorer.problem is not None:
                cancel.set()  # a metric that cannot score: stop asking, the cell fails with its message
            if view is not None:
                view.cell_done(evaluation, cell)

        if not args.fresh:
            self._reuse(cells, scorer)
        evaluation.reused = sum(c.reused for c in cells)
        if view is not None:
            view.begin(evaluation)
        todo = [c for c in cells if c.response is None]
        if todo and scorer.problem is None:
            self.session.gpt.prepare(variants, args.key_env)
        system = args.system if args.system is not None else self.session.config.system
        for start in range(0, len(todo), BATCH):
            if cancel.is_set() or scorer.problem is not None:
                break
            self._answer(todo[start:start + BATCH], variants, system, cancel, args.key_env, done)
        evaluation.stopped = cancel.is_set() and scorer.problem is None
        answered = [c for c in cells if c.response is not None]
        all_failed = bool(answered) and len(evaluation.failed) == len(answered)
        if judge is not None and not cancel.is_set() and not all_failed and scorer.problem is None:
            self._judge(evaluation, judge, args, cancel)
        evaluation.summary = summarise(evaluation, metrics)
        self._record(evaluation, template, variants, failed=scorer.problem is not None or all_failed)
        if view is not None:
            view.end(evaluation)
        if scorer.problem is not None:
            raise scorer.problem
        if all_failed:
            raise AigcError(f"All {len(answered)} answers failed: {evaluation.first_error()}",
                            "Nothing was scored; fix that and run the cell again.")
        if evaluation.failed:
            say(evaluation.failures())
        return evaluation

    def _reuse(self, cells: list[Cell], scorer: Scorer) -> None:
        """Stored answers for the cells that have one (a row in another shape is asked again), scored."""
        for cell in cells:
            try:
                stored = self.session.history.answer(cell.key)
            except (ValueError, TypeError):
                stored = None
            response = response_from(stored) if stored is not None else None
            if response is not None:
                cell.response, cell.reused = response, True
                scorer.score(cell)
                review.load(self.session.history, cell)

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
            if response.finish_reason in STORED and not response.error:
                self.session.history.store_answer(cell.key, response.metadata())
            review.load(self.session.history, cell)
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

    def rate(self, evaluation: Evaluation, row: int, variant: int, rating: dict) -> Cell:
        """A person's rating of one answer (``{"pass": bool, "score": 1..5, "note": str}``, None for each part
        not given), kept in the history store; during a run too. The summary, the agreement and the DataFrames
        made with -o follow."""
        width = len(evaluation.titles)
        if not (isinstance(row, int) and isinstance(variant, int) and 0 <= row < len(evaluation.rows)
                and 0 <= variant < width):
            raise AigcError(f"There is no answer at example {row}, variant {variant}.",
                            f"Examples count from 0 to {len(evaluation.rows) - 1}, variants from 0 to {width - 1}.")
        cell = evaluation.cells[row * width + variant]
        review.store(self.session.history, cell, rating)
        if review.rated(evaluation):
            evaluation.metrics = [n for n in evaluation.metrics if n not in review.HUMAN_NAMES] + \
                [m.name for m in review.HUMAN]
        if evaluation.summary:  # the run has ended: summarise again (while it runs, its end does)
            evaluation.summary = summarise(evaluation, [Metric(name, lambda *a: None, higher)
                                                        for name, higher in evaluation.directions.items()])
        else:
            evaluation.agreement = review.agreement(evaluation)
        index = row * width + variant
        for frame in evaluation.frames:
            if index in frame.index:
                for column, value in zip(review.RATING_COLUMNS, rating_values(cell)):
                    frame.at[index, column] = value
            frame.attrs["summary"], frame.attrs["agreement"] = evaluation.summary, evaluation.agreement
        return cell

    def _record(self, evaluation: Evaluation, template: str, variants: list[Variant], failed: bool) -> None:
        data_hash = hashlib.sha256(json.dumps(evaluation.rows, sort_keys=True, default=str).encode()).hexdigest()
        self.session.history.append({
            "time": time.time(), "kind": "eval", "prompt": template, "model": ", ".join(evaluation.titles),
            "engine": ", ".join(sorted({v.ref.engine for v in variants})), "data_hash": data_hash,
            "rows": len(evaluation.rows), "variants": evaluation.titles, "summary": evaluation.summary,
            "reused": evaluation.reused, "failed": len(evaluation.failed),
            "finish_reason": "error" if failed else "stopped" if evaluation.stopped else "stop"})

    @staticmethod
    def dataframe(evaluation: Evaluation):
        """One row per example × variant: the data's columns, variant, output, finish, one column per metric
        (with --task choice also logprobs, pick, pick_norm and gold; with --promptfoo checks), and the people's
        ratings (human, human_pass, human_note), which follow ratings given later. A data column named like one of
        these keeps its values as ``data_NAME`` (``.attrs['renamed']``)."""
        import pandas as pd

        scores = [name for name in evaluation.metrics if name not in review.HUMAN_NAMES]
        ours = ["variant", "output", "finish", *scores] + \
            (["judge_reason"] if "judge" in evaluation.metrics else []) + \
            (list(CHOICE_COLUMNS) if evaluation.task == "choice" else []) + \
            (["checks"] if evaluation.task == "promptfoo" else []) + list(review.RATING_COLUMNS)
        columns = columns_of(evaluation.rows)
        renamed = {}
        for name in columns:
            if name in ours:
                new = "data_" + name
                while new in ours or new in columns:
                    new = "data_" + new
                renamed[name] = new
        records = []
        for cell in evaluation.cells:
            record = {renamed.get(k, k): v for k, v in evaluation.rows[cell.row].items()}
            record["variant"] = evaluation.titles[cell.variant]
            record["output"] = cell.response.text if cell.response is not None else None
            record["finish"] = cell.response.finish_reason if cell.response is not None else None
            record.update({name: cell.scores.get(name) for name in scores})
            if "judge" in evaluation.metrics:
                record["judge_reason"] = cell.reason
            if evaluation.task == "choice":
                record.update({column: (cell.choice or {}).get(column) for column in CHOICE_COLUMNS})
            if evaluation.task == "promptfoo":
                record["checks"] = cell.checks
            record.update(zip(review.RATING_COLUMNS, rating_values(cell)))
            records.append(record)
        frame = pd.DataFrame.from_records(records).astype({"human": float, "human_pass": object, "human_note": object})
        evaluation.frames.append(frame)
        frame.attrs["summary"], frame.attrs["agreement"] = evaluation.summary, evaluation.agreement
        frame.attrs["reused"] = evaluation.reused
        frame.attrs["renamed"] = renamed
        for old, new in renamed.items():
            say(f"The data's column '{old}' is '{new}' in the DataFrame ('{old}' is the evaluation's own).")
        return frame


def rating_values(cell) -> tuple:
    """(human score 1–5, human pass True/False, note) of a cell, None where not given."""
    rating = cell.rating or {}
    return rating.get("score"), rating.get("pass"), rating.get("note") or None


def response_from(stored) -> Response | None:
    """A stored answer as a Response; one in another shape (another version's, a damaged row) is None."""
    if not isinstance(stored, dict):
        return None
    fields = {k: v for k, v in stored.items() if k in Response.__dataclass_fields__ and k != "tokens"}
    try:
        response = Response(**fields)
    except TypeError:
        return None
    shapes = [(response.text, str), (response.model, str), (response.engine, str), (response.params, dict),
              (response.usage, dict), (response.elapsed, (int, float)), (response.ttft, (int, float, type(None))),
              (response.queued, (int, float))]
    good = all(isinstance(value, kind) for value, kind in shapes)
    return response if good and response.finish_reason in STORED and response.error is None else None


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
