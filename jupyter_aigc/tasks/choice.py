"""%%aigc_eval --task choice: multiple choice scored by log-likelihood, as lm-evaluation-harness scores a
``multiple_choice`` task.

The filled template is the context; each choice is the continuation ``" " + choice`` (lm-eval's default
``target_delimiter``), scored by its total log-probability under the model. ``acc`` is 1 when the most likely
choice is the gold one; ``acc_norm`` when the most likely per character of the choice (lm-eval divides by
``len(choice)``, characters; its ``acc_bytes`` divides by UTF-8 bytes). Ties go to the first choice (numpy's
argmax). The prompt is plain text: no chat template, as lm-eval runs without ``--apply_chat_template``.

Scores need the weights: the transformers engine computes them; a GGUF model (llama.cpp) is scored on its
transformers copy, since llama.cpp's server gives log-probabilities of generated tokens only, not of the
prompt's. Each (model, weights, prompt, choices) is stored like an answer and reused on a re-run.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time

import numpy as np

from ..core.errors import AigcError
from ..core.types import Request, Response
from ..engines.base import SCORES
from ..engines.loglikelihood import encode_pair, loglikelihoods
from ..views.outside import say
from .eval_data import check_template, columns_of, fill, load_rows
from .evaluate import Cell, Evaluation, summarise, weights_fingerprint
from .metrics import Metric
from .runner import Variant

DELIMITER = " "  # lm-eval's target_delimiter
METRICS = [Metric("acc", lambda *a: None), Metric("acc_norm", lambda *a: None)]
LIST_FIX = 'Give each row a list of choices, e.g. ["Paris", "Lyon"] (a JSON list in a CSV cell).'


def choices_of(value, column: str, index: int) -> list[str]:
    """The row's choices as a list of texts: a list, tuple or array, or a JSON list in a text cell."""
    where = f"--choices '{column}' in data row {index} (counting from 0)"
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value.strip().startswith("[") else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise AigcError(f"{where} is the text {value[:60]!r}, not a list.", LIST_FIX)
        value = parsed
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise AigcError(f"{where} is a {type(value).__name__}, not a list.", LIST_FIX)
    if not value:
        raise AigcError(f"{where} is an empty list.", "Give every row at least one choice.")
    texts = []
    for number, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise AigcError(f"{where}: choice {number} is a {type(item).__name__}, not text.", LIST_FIX)
        texts.append(item if isinstance(item, str) else str(item))
    return texts


def gold_of(value, choices: list[str], column: str, index: int) -> int:
    """The gold choice's index: an index, or the choice's text (a text of digits not among the choices is an
    index, as in a CSV file)."""
    where = f"--answer '{column}' in data row {index} (counting from 0)"
    if isinstance(value, str):
        if value in choices:
            return choices.index(value)
        if not value.strip().isdigit():
            raise AigcError(f"{where} is {value[:60]!r}, which is not one of its choices ({_listed(choices)}).",
                            "Give the answer as one of the choices' texts exactly, or as its index from 0.")
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise AigcError(f"{where} is a {type(value).__name__}, not an index or a choice's text.",
                        "Give the answer as an index from 0 or as one of the choices' texts.")
    if not 0 <= value < len(choices):
        raise AigcError(f"{where} is {value}, out of range for its {len(choices)} choices.",
                        f"Use an index from 0 to {len(choices) - 1}.")
    return int(value)


def _listed(choices: list[str]) -> str:
    shown = ", ".join(repr(c[:30]) for c in choices[:6])
    return shown + (", …" if len(choices) > 6 else "")


def check_args(args) -> None:
    """--task choice needs --choices and --answer; they mean nothing for generated answers."""
    task = getattr(args, "task", None) or "generate"
    if task not in ("generate", "choice"):
        raise AigcError(f"--task {task!r} is not a task.", "Use --task generate (the default) or --task choice.")
    if task == "generate":
        given = [f"--{n}" for n in ("choices", "answer") if getattr(args, n, None) is not None]
        if given:
            raise AigcError(f"{' and '.join(given)} go with --task choice.", "Add --task choice, or leave them out.")
        return
    missing = [f"--{n} COLUMN" for n in ("choices", "answer") if getattr(args, n, None) is None]
    if missing:
        raise AigcError(f"--task choice needs {' and '.join(missing)}.",
                        "Name the data's column holding each row's list of choices, and the one with the answer.")
    extra = [flag for flag, name in (("--metrics", "metrics"), ("--reference", "reference"), ("--judge", "judge"))
             if getattr(args, name, None)]
    if extra:
        raise AigcError(f"{', '.join(extra)} do not apply to --task choice.",
                        "It reports acc and acc_norm from the choices' log-probabilities; leave them out.")


def scorer_of(session, name: str, base_url, engine):
    """(engine, ref serving the weights, the model's ref) for a model that can score choices."""
    ref = session.resolve(name, base_url, engine)
    try:
        scoring, served = session.registry.serving(ref, SCORES)
    except AigcError:
        raise AigcError(f"{ref.name} runs on the {ref.engine} engine, which gives no log-probabilities of a "
                        "prompt's tokens, so it cannot score choices.",
                        "Use a local model (a folder, Hub id or .gguf file) with --task choice.") from None
    return scoring, served, ref


def choice_key(ref, weights: str | None, scoring: str, context: str, choices: list[str]) -> str:
    data = {"task": "choice", "model": ref.source, "adapter": ref.adapter, "weights": weights, "engine": scoring,
            "context": context, "continuations": [DELIMITER + c for c in choices]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def picks(logprobs: list[float], choices: list[str]) -> tuple[int, int]:
    """(argmax of the log-probabilities, argmax of log-probability per character), as lm-eval computes them."""
    lls = np.array(logprobs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return int(np.argmax(lls)), int(np.argmax(lls / np.array([float(len(c)) for c in choices])))


def run_choice(task, args, template: str, namespace: dict, cancel: threading.Event, view=None) -> Evaluation:
    """Score every row's choices with every model (``task`` is the EvalTask: stored answers, the record)."""
    session = task.session
    check_args(args)
    template = template.strip()
    rows, _ = load_rows(args.data, namespace)
    columns = columns_of(rows)
    for flag, column in (("--choices", args.choices), ("--answer", args.answer)):
        if column not in columns:
            raise AigcError(f"{flag} '{column}' is not a column of the data.", f"Columns: {', '.join(columns)}.")
    check_template(template, columns, namespace)
    items = []
    for index, row in enumerate(rows):
        for flag, column in (("--choices", args.choices), ("--answer", args.answer)):
            value = row.get(column)
            if value is None or isinstance(value, float) and math.isnan(value):
                raise AigcError(f"Data row {index} (counting from 0) has no '{column}' ({flag}).",
                                "Fill it in, or drop that row.")
        choices = choices_of(row[args.choices], args.choices, index)
        items.append((fill(template, row, namespace), choices, gold_of(row[args.answer], choices, args.answer, index)))
    names = [m.strip() for m in args.compare.split(",") if m.strip()] if args.compare else [args.model]
    models = []
    for name in names:
        scoring, served, ref = scorer_of(session, name, args.base_url, args.engine)
        if all(m[1] != served for m in models):
            models.append((scoring, served, ref))
    titles = [ref.name for _, _, ref in models]
    if len(set(titles)) < len(titles):
        titles = [f"{chr(65 + i)}: {t}" for i, t in enumerate(titles)]
    weights = [weights_fingerprint(ref, task._saved(ref)) for _, _, ref in models]
    cells = []
    for r, (context, choices, _) in enumerate(items):
        for v, (scoring, served, ref) in enumerate(models):
            cells.append(Cell(r, v, context, choice_key(ref, weights[v], scoring.name, context, choices)))
    evaluation = Evaluation(rows, titles, [m.name for m in METRICS], cells, task="choice")
    if not args.fresh:
        for cell in cells:
            try:
                stored = session.history.answer(cell.key)
            except (ValueError, TypeError):
                stored = None
            logprobs = stored.get("choice_logprobs") if isinstance(stored, dict) else None
            greedy = stored.get("greedy") if isinstance(stored, dict) else None
            count = len(items[cell.row][1])
            if isinstance(logprobs, list) and len(logprobs) == count and \
                    all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in logprobs):
                if not (isinstance(greedy, list) and len(greedy) == count):
                    greedy = [False] * count
                _finish(cell, items[cell.row], models[cell.variant], [float(x) for x in logprobs],
                        [g is True for g in greedy], 0.0)
                cell.reused = True
    evaluation.reused = sum(c.reused for c in cells)
    if view is not None:
        view.begin(evaluation)
    session.begin()
    try:
        for v, model in enumerate(models):
            todo = [c for c in cells if c.variant == v and c.response is None]
            if todo and not cancel.is_set():
                _score(session, model, todo, items, cancel, lambda cell: view and view.cell_done(evaluation, cell))
    finally:
        session.end()
    evaluation.stopped = cancel.is_set()
    evaluation.summary = summarise(evaluation, METRICS)
    variants = [Variant(served, Request(messages=[], model=ref.name), title) for (_, served, ref), title
                in zip(models, titles)]
    task._record(evaluation, template, variants, failed=False)
    if view is not None:
        view.end(evaluation)
    engines = sorted({f"{ref.name} on the {scoring.name} engine" + (" (its transformers copy: llama.cpp gives no "
                      "prompt log-probabilities)" if ref.engine != scoring.name else "")
                      for scoring, _, ref in models})
    say(f"Choices scored by log-likelihood: {'; '.join(engines)}.")
    return evaluation


def _score(session, model, todo: list[Cell], items, cancel, shown) -> None:
    """Every choice of the ``todo`` cells in batched forward passes; a cell is done once all its choices are."""
    from ..engines.transformers import context_length, is_causal

    scoring, served, ref = model
    started = time.perf_counter()
    with scoring.use(served) as (network, tokenizer):
        if not is_causal(network):
            raise AigcError(f"{ref.name} is not a causal language model, so it gives no log-probabilities of "
                            "a continuation.", "Use a text-generation model with --task choice.")
        requests, owner = [], []
        for cell in todo:
            context, choices, _ = items[cell.row]
            for number, choice in enumerate(choices):
                requests.append(encode_pair(tokenizer, context, DELIMITER + choice))
                owner.append((cell, number))
                if not requests[-1][1]:
                    raise AigcError(f"Choice {number} of data row {cell.row} ({choice[:40]!r}) adds no token "
                                    "to the prompt.", "Give every choice some text.")
        results = {id(cell): [None] * len(items[cell.row][1]) for cell in todo}
        greedy = {id(cell): [False] * len(items[cell.row][1]) for cell in todo}
        prompt_tokens = {id(cell): 0 for cell in todo}

        def done(index: int, logprob: float, is_greedy: bool) -> None:
            cell, number = owner[index]
            results[id(cell)][number], greedy[id(cell)][number] = logprob, is_greedy
            prompt_tokens[id(cell)] += len(requests[index][0]) + len(requests[index][1])
            if all(x is not None for x in results[id(cell)]):
                _finish(cell, items[cell.row], model, results[id(cell)], greedy[id(cell)],
                        time.perf_counter() - started, prompt_tokens[id(cell)])
                session.history.store_answer(cell.key, {"choice_logprobs": results[id(cell)],
                                                        "greedy": greedy[id(cell)]})
                shown(cell)

        loglikelihoods(network, requests, cancel, done, context_length(network))


def _finish(cell: Cell, item, model, logprobs: list[float], greedy: list[bool], elapsed: float,
            tokens: int = 0) -> None:
    """The cell as a scored answer: the picked choice as its text, acc and acc_norm, every log-probability."""
    _, choices, gold = item
    scoring, _, ref = model
    pick, pick_norm = picks(logprobs, choices)
    cell.response = Response(text=choices[pick], model=ref.name, engine=scoring.name, params={"task": "choice"},
                             usage={"prompt_tokens": tokens}, elapsed=elapsed)
    cell.scores = {"acc": float(pick == gold), "acc_norm": float(pick_norm == gold)}
    cell.choice = {"choices": choices, "logprobs": [x if math.isfinite(x) else None for x in logprobs],
                   "greedy": [bool(g) for g in greedy], "pick": pick, "pick_norm": pick_norm, "gold": gold}
